"""The learner role in a process of its own, beside the worker that holds it.

Learning every label costs about as much CPU as predicting a post. In the worker's own process it
shared one core and one event loop with the predictions: at a steady load the loop was saturated and
predictions waited, and the learner's state and its compiled updates (numba, ~150 MB) sat in the
predicting process. :class:`LearnerProcess` has the interface of
:class:`~stream.worker.modelsync.LearnerRole` (``start``, ``stop``, ``active``, ``caught_up``,
``lost``, ``status``) and runs the role in a child process (``python -m stream.worker.learnerproc``),
with the worker's settings:

- the child runs a :class:`~stream.worker.modelsync.LearnerRole` (its own Kafka clients; drift events
  go to the metrics topic) and reports a JSON line on its standard output every
  :data:`STATUS_EVERY` seconds: caught up, data lost, the role's status and its counters, which the
  worker adds to its own (``stream_events_total`` for learned labels, drifts);
- the worker gives the role up by closing the child's standard input: the child sends its last delta
  and snapshot and exits. A worker that dies closes it too (the kernel closes its pipes), so a learner
  never outlives its worker for long; one that does anyway is fenced by the epochs of the model topic;
- a child that exits while the worker holds the role is started again 5 s later (counted in
  ``failures``), from the newest snapshot, as the role restarts after a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Any

import orjson

from stream.logs import configure as configure_logging
from stream.settings import Settings, settings_env
from stream.stats import Stats
from stream.worker.collect import collect_less
from stream.worker.logfilter import RepeatFilter

log = logging.getLogger(__name__)

STATUS_EVERY = 0.5  # seconds between two status lines of the child
STOP_TIMEOUT = 20.0  # seconds the child has for its last snapshot once told to stop
RESTART_AFTER = 5.0  # seconds before a child that exited is started again


class LearnerProcess:
    """The learner role run by a child process (see the module's docstring).

    Parameters
    ----------
    settings
        The worker's settings, passed on to the child.
    stats
        The worker's counters: the child's (labels learned, drifts, ...) are added to them.
    """

    def __init__(self, settings: Settings, stats: Stats):
        self.settings = settings
        self.stats = stats
        self.caught_up = asyncio.Event()
        self.lost: str | None = None
        self.failures = 0
        self._status: dict[str, Any] = {}
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._seen: dict[str, int] = {}  # the current child's counters, as last added
        self._seen_drifts = 0

    @property
    def active(self) -> bool:
        """Whether this worker holds the role (a learner that is giving it up does not)."""
        return self._task is not None and not self._task.done() and not self._stopping

    def start(self) -> None:
        """Take the role (a no-op when it is held already)."""
        if self.active:
            return
        self._stopping = False
        self.caught_up.clear()
        self._task = asyncio.ensure_future(self._supervise(self._task))

    async def stop(self, reason: str = "shutdown") -> None:
        """Give the role up: the child sends a last delta and snapshot (:data:`STOP_TIMEOUT` at most)."""
        task = self._task
        if task is None or task.done() or self._stopping:
            return
        self._stopping = True
        self.caught_up.clear()
        proc = self._proc
        if proc is not None and proc.stdin is not None:
            proc.stdin.close()  # the child's signal to give the role up
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=STOP_TIMEOUT)
        except (TimeoutError, Exception):  # a stop must not raise
            if proc is not None and proc.returncode is None:
                proc.kill()
            task.cancel()
        log.info("learner role given up (%s)", reason)

    async def _supervise(self, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        while not self._stopping:
            proc = self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                __name__,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=settings_env(self.settings),
            )
            self._seen, self._seen_drifts = {}, 0
            log.info("learner process %d started", proc.pid)
            if self._stopping and proc.stdin is not None:  # given up while it started
                proc.stdin.close()
            try:
                assert proc.stdout is not None
                async for line in proc.stdout:
                    try:
                        status = orjson.loads(line)
                    except orjson.JSONDecodeError:  # not a status line (something printed): passed on
                        log.warning("learner process: %s", line.decode(errors="replace").rstrip())
                        continue
                    self.update(status)
                code = await proc.wait()
            except asyncio.CancelledError:
                if proc.returncode is None:
                    proc.kill()
                raise
            self.caught_up.clear()
            self._proc = None
            if self._stopping:
                return
            self.failures += 1
            log.error("the learner process exited (code %s); another starts in %.0f s", code, RESTART_AFTER)
            await asyncio.sleep(RESTART_AFTER)

    def update(self, line: dict[str, Any]) -> None:
        """Take a status line of the child: its state, and its counters' growth into the worker's.

        >>> from stream.stats import Stats
        >>> p = LearnerProcess(Settings(), Stats())
        >>> p.update({"caught_up": True, "lost": None, "outcomes": {"learned_inline": 5}, "drifts": 1, "status": {}})
        >>> p.update({"caught_up": True, "lost": None, "outcomes": {"learned_inline": 7}, "drifts": 1, "status": {}})
        >>> p.stats.outcomes["learned_inline"], p.stats.drifts, p.caught_up.is_set()
        (7, 1, True)
        """
        if line.get("caught_up") and not self._stopping:
            self.caught_up.set()
        else:
            self.caught_up.clear()
        self.lost = line.get("lost")
        outcomes = self.stats.outcomes
        for key, value in line.get("outcomes", {}).items():
            outcomes[key] += value - self._seen.get(key, 0)
            self._seen[key] = value
        drifts = line.get("drifts", 0)
        self.stats.drifts += drifts - self._seen_drifts
        self._seen_drifts = drifts
        self._status = line.get("status", {})

    def status(self) -> dict[str, Any]:
        """What the learner did, for the metrics snapshot."""
        return {**self._status, "active": self.active, "failures": self.failures}


async def _child(settings: Settings) -> None:
    from aiokafka.errors import KafkaError

    from stream.clients import aio_producer
    from stream.worker.modelsync import LearnerRole

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches the worker, which stops us

    def watch_stdin() -> None:  # returns when the worker closes our standard input, or dies
        # os.read, not sys.stdin: a daemon thread blocked in a buffered read holds its lock, and the
        # interpreter then aborts at exit (SIGABRT) whenever the child ends on its own
        while os.read(0, 4096):
            pass
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, name="stdin", daemon=True).start()

    producer = aio_producer(settings)
    try:
        await producer.start()
    except KafkaError as exc:
        await producer.stop()
        raise SystemExit(f"learner process: {exc}") from None

    async def on_event(event: bytes) -> None:  # a drift, for the metrics topic
        await producer.send(settings.topic_metrics, event)

    stats = Stats()
    role = LearnerRole(settings, stats, on_event)

    def report() -> None:
        line = {
            "caught_up": role.active and role.caught_up.is_set(),
            "lost": role.lost,
            "outcomes": {k: v for k, v in stats.outcomes.items() if v},
            "drifts": stats.drifts,
            "status": role.status(),
        }
        try:
            sys.stdout.buffer.write(orjson.dumps(line) + b"\n")
            sys.stdout.buffer.flush()
        except OSError:  # the worker is gone (a broken pipe): stdin's end stops us too
            stop.set()

    role.start()
    try:
        while not stop.is_set():
            report()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=STATUS_EVERY)
        await role.stop("the worker gave the role up")
        report()
    finally:
        await producer.stop()


def main() -> None:
    """The child: the learner role until its standard input closes or it gets SIGTERM."""
    settings = Settings.from_env()
    configure_logging(settings)
    for handler in logging.getLogger().handlers:  # a lost broker makes the clients log every few ms
        handler.addFilter(RepeatFilter())
    collect_less()  # as the worker: a label's decoded record and arrays are freed by reference counting
    asyncio.run(_child(settings))


if __name__ == "__main__":
    main()
