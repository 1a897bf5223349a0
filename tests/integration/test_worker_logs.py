"""The worker's own options work as its ``--help`` says (``worker -l warning``), Python's level names are
accepted in ``STREAM_LOG_LEVEL``, and ``STREAM_LOG_FORMAT=json`` gives one JSON object per line, from
the worker and its learner process alike."""

import subprocess
import sys
import time
import urllib.request

import orjson
import pytest

from stream.settings import settings_env

pytestmark = pytest.mark.integration


def start_worker(settings, log, *args):
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "stream", "worker", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=settings_env(settings),
        )


def wait_learner(settings, proc, timeout=90.0):
    url = f"http://127.0.0.1:{settings.web_port}/ready"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if orjson.loads(urllib.request.urlopen(url, timeout=1).read()).get("learner"):
                return
        except (OSError, orjson.JSONDecodeError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"the worker was not ready (exit code {proc.poll()})")


def stop(proc):
    proc.terminate()
    return proc.wait(timeout=60)


def test_json_logs_are_one_object_per_line(settings, tmp_path):
    settings = settings.replace(log_format="json", log_level="debug")
    log = tmp_path / "worker.log"
    proc = start_worker(settings, log)
    try:
        wait_learner(settings, proc)
    finally:
        assert stop(proc) == 0
    lines = log.read_text().splitlines()
    records = [orjson.loads(line) for line in lines if line.strip()]  # fails on any line that is not JSON
    assert len(records) > 20 and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert {"debug", "info"} <= {r["level"] for r in records}
    pids = {r["pid"] for r in records}
    assert len(pids) >= 2, "the learner process logs in JSON too"  # the worker and its learner child


def test_worker_dash_l_warning_as_its_help_says(settings, tmp_path):
    log = tmp_path / "worker.log"
    proc = start_worker(settings.replace(log_level="debug"), log, "-l", "warning")
    try:
        wait_learner(settings, proc)
    finally:
        assert stop(proc) == 0
    text = log.read_text()
    # the option wins over STREAM_LOG_LEVEL=debug: Faust's info lines (its start-up banner's "ready") are gone
    assert "[INFO]" not in text and "[DEBUG]" not in text and "Traceback" not in text
