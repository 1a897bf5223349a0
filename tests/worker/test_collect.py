"""The garbage collector's thresholds in the worker's process and in its learner process."""

from __future__ import annotations

import subprocess
import sys

from stream.settings import Settings, settings_env
from stream.worker.collect import THRESHOLDS

# Each process runs up to where it would start its work, which prints the collector's thresholds instead.
WORKER = """
import gc, types
import stream.worker.app as app
app.check_connection = lambda settings: None
started = types.SimpleNamespace(main=lambda: print(gc.get_threshold()))
app.create_app = lambda settings: types.SimpleNamespace(app=started)
app.main()
"""
LEARNER = """
import asyncio, gc
import stream.worker.learnerproc as learnerproc
asyncio.run = lambda coro: (coro.close(), print(gc.get_threshold()))
learnerproc.main()
"""


def _thresholds(code: str) -> str:
    env = settings_env(Settings(broker="kafka://127.0.0.1:1"))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_the_worker_and_its_learner_process_collect_their_youngest_objects_less_often():
    assert THRESHOLDS[0] > 700  # CPython's default
    assert _thresholds(WORKER) == str(THRESHOLDS)
    assert _thresholds(LEARNER) == str(THRESHOLDS)
