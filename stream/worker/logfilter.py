"""A log filter for the Kafka clients' and Faust's repeated errors, used by the worker and its learner
process."""

from __future__ import annotations

import logging
import time

CLIENT_LOGGERS = ("aiokafka", "kafka", "faust", "mode")  # the libraries' loggers; the stream's own pass


class RepeatFilter(logging.Filter):
    """Lets a message of the Kafka clients and Faust (by logger and template) through at most once per
    ``every`` seconds, and says how many were held back: a lost broker makes them log the same error
    every few ms. The stream's own messages always pass.

    >>> f, record = RepeatFilter(every=60), logging.LogRecord("aiokafka", 40, "", 0, "down: %s", ("x",), None)
    >>> [f.filter(record) for _ in range(3)], f.held
    ([True, False, False], {('aiokafka', 'down: %s'): 2})
    >>> own = logging.LogRecord("stream.worker.replica", 40, "", 0, "refusing %s", ("x",), None)
    >>> [f.filter(own) for _ in range(2)]
    [True, True]
    """

    def __init__(self, every: float = 10.0):
        super().__init__()
        self.every = every
        self.last: dict[tuple[str, str], float] = {}
        self.held: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(CLIENT_LOGGERS):
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        if now - self.last.get(key, -self.every) < self.every:
            self.held[key] = self.held.get(key, 0) + 1
            return False
        if len(self.last) > 1000:  # bounded: forget the templates seen so far
            self.last.clear()
        self.last[key] = now
        held = self.held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this in the last {self.every:.0f} s)"
        return True
