"""Log output of the worker, its learner process and the tools: plain text, or one JSON object per line
(``STREAM_LOG_FORMAT=json``) for log pipelines that index fields.

>>> record = logging.LogRecord("stream.worker", logging.WARNING, __file__, 1, "lag %d", (5,), None)
>>> line = orjson.loads(JsonFormatter().format(record))
>>> line["level"], line["logger"], line["message"]
('warning', 'stream.worker', 'lag 5')
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from stream.settings import Settings

PYTHON_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRIT": logging.CRITICAL,
}
TEXT_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, ``pid``,
    and ``exception`` (the formatted traceback) when there is one. Never more than one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process or os.getpid(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


def python_level(settings: Settings) -> int:
    """``STREAM_LOG_LEVEL`` as a :mod:`logging` level number.

    >>> python_level(Settings(log_level="warn")) == logging.WARNING
    True
    """
    return PYTHON_LEVELS[settings.faust_log_level]


def faust_logging_config(settings: Settings) -> dict[str, Any] | None:
    """The Faust worker's ``logging_config``: merged into the one Faust builds, so that with
    ``STREAM_LOG_FORMAT=json`` its handler writes JSON lines (``None``: Faust's own text)."""
    if settings.log_format != "json":
        return None
    formatter = {"()": f"{__name__}.JsonFormatter"}
    return {"version": 1, "merge": True, "formatters": {"default": formatter, "colored": formatter}}


def configure(settings: Settings, stream: Any = None, level: int | None = None) -> None:
    """Log to ``stream`` (standard error) in ``STREAM_LOG_FORMAT``, at ``level`` (default
    ``STREAM_LOG_LEVEL``): for the processes Faust does not set up (the learner process and the tools)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(python_level(settings) if level is None else level)
