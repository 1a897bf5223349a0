"""The learner's child process on its own: how it ends when it cannot start."""

from __future__ import annotations

import subprocess
import sys

from stream.settings import Settings, settings_env
from stream.tools.broker import free_port


def test_a_learner_process_that_cannot_reach_the_broker_exits_with_one_line_not_an_abort(tmp_path):
    settings = Settings(broker=f"kafka://127.0.0.1:{free_port()}", data_dir=str(tmp_path))  # nothing listens
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream.worker.learnerproc"],
        env=settings_env(settings),
        stdin=subprocess.PIPE,  # kept open, as the worker does: the child's reader thread is blocked in it
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        proc.wait(timeout=120)  # not communicate(): that would close the standard input first
        err = proc.stderr.read() if proc.stderr else b""
    finally:
        proc.kill()
        if proc.stdin:
            proc.stdin.close()
    last = err.decode().strip().splitlines()[-1]
    assert proc.returncode == 1, (proc.returncode, err.decode()[-2000:])  # -6 was an abort at interpreter exit
    assert last.startswith("learner process: ") and "Unable to bootstrap" in last, last
    assert "Traceback" not in err.decode()


def test_the_learner_process_imports_no_faust():
    """The learner's child process runs the model sync alone (aiokafka clients): Faust and what it
    brings (mode, aiohttp, ...) would take about 19 MB more of its memory."""
    code = (
        "import sys, stream.worker.learnerproc, stream.worker.modelsync;"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in ('faust', 'mode', 'aiohttp')}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
