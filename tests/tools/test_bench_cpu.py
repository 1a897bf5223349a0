"""The bench's reading of the CPU its processes waited for (``proc_cpu_wait``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stream.tools.bench import cpu_usage, proc_cpu, proc_cpu_wait


def _task(proc: Path, pid: int, tid: int, schedstat: str, children: str = "") -> None:
    task = proc / str(pid) / "task" / str(tid)
    task.mkdir(parents=True)
    (task / "schedstat").write_text(schedstat)
    (task / "children").write_text(children)


def test_the_wait_sums_every_thread_of_the_process_and_of_its_children(tmp_path):
    _task(tmp_path, 10, 10, "5000 2000000000 3\n", children="20 ")
    _task(tmp_path, 10, 11, "100 500000000 2\n")
    _task(tmp_path, 10, 12, "")  # a thread that ended while it was read: skipped
    _task(tmp_path, 20, 20, "0 250000000 1\n")  # the child (a worker's learner process)
    _task(tmp_path, 30, 30, "0 9000000000 1\n")  # not a child: not counted

    assert proc_cpu_wait(10, proc=tmp_path) == pytest.approx(2.75)
    assert proc_cpu_wait(10, children=False, proc=tmp_path) == pytest.approx(2.5)


def test_the_cpu_of_a_process_alone_or_with_its_children(tmp_path):
    def stat(pid, utime, stime, cutime, cstime):
        fields = ["S", "1", *["0"] * 9, str(utime), str(stime), str(cutime), str(cstime), "20"]
        (tmp_path / str(pid)).mkdir(exist_ok=True)
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (python3 (x)) " + " ".join(fields) + "\n")

    _task(tmp_path, 10, 10, "", children="20 ")
    stat(10, 300, 100, 50, 50)  # its own 400 ticks, and 100 of children it has waited for
    stat(20, 200, 0, 0, 0)  # a live child (a worker's learner process)
    ticks = os.sysconf("SC_CLK_TCK")
    assert proc_cpu(10, proc=tmp_path) == pytest.approx(700 / ticks)
    assert proc_cpu(10, children=False, proc=tmp_path) == pytest.approx(400 / ticks)


SPIN = """
import os, sys, time
os.sched_setaffinity(0, {%d})
start = time.process_time()
while time.process_time() - start < 0.4:
    pass
sys.stdout.write("spun\\n"); sys.stdout.flush()
sys.stdin.readline()
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or not Path("/proc/self/schedstat").exists(), reason="Linux")
def test_two_processes_that_share_one_cpu_wait_for_it():
    cpu = min(os.sched_getaffinity(0))
    spinners = [
        subprocess.Popen([sys.executable, "-c", SPIN % cpu], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        for spinner in spinners:
            assert spinner.stdout is not None and spinner.stdout.readline() == "spun\n"
        ran = sum(proc_cpu(s.pid) for s in spinners)
        waited = sum(proc_cpu_wait(s.pid) for s in spinners)
        # 0.8 s of CPU wanted at once from one CPU: while one ran, the other waited
        assert ran >= 0.7  # each spun 0.4 s of its own CPU time (read here in clock ticks)
        assert waited >= 0.2, (ran, waited)
        usage = cpu_usage({"spinner": spinners[0].pid})  # the bench's reading: each process, and itself
        assert list(usage) == ["spinner", "load"] and usage["spinner"][0] == proc_cpu(spinners[0].pid)
    finally:
        for spinner in spinners:
            spinner.communicate("\n", timeout=30)
