"""Real parts: the embedded Tansu broker over TCP and worker processes. Unique names per test."""

import dataclasses
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from stream.settings import Settings
from stream.tools.broker import EmbeddedBroker, free_port
from stream.tools.produce import produce


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_file=log) as b:
        yield b


def unique_settings(broker: EmbeddedBroker, data_dir: Path, prefix: str = "it", **overrides) -> Settings:
    """Settings whose topic and group names no other test uses."""
    run = uuid.uuid4().hex[:8]
    topics = {
        f.name: f"{f.name.removeprefix('topic_')}-{run}"
        for f in dataclasses.fields(Settings)
        if f.name.startswith("topic_")
    }
    values = dict(
        broker=broker.bootstrap,
        app_id=f"{prefix}-{run}",
        web_port=free_port(),
        metrics_interval=1.0,
        session_timeout=6.0,
        data_dir=str(data_dir),
        **topics,
    )
    return Settings(**{**values, **overrides})


@pytest.fixture(scope="session")
def make_settings(broker):
    """A factory of :func:`unique_settings` for module-scoped scenarios."""
    return lambda data_dir, **overrides: unique_settings(broker, data_dir, **overrides)


@pytest.fixture
def settings(broker, tmp_path: Path) -> Settings:
    """Settings with topic and group names no other test uses."""
    return unique_settings(broker, tmp_path / "data")


class BackgroundLoad:
    """``interest-stream produce`` in a thread of its own; :meth:`join` waits for it and raises with its
    error (``BrokerError``: records the broker did not take), so that a test blames the load generator,
    not the workers, for what it did not send."""

    def __init__(self, settings: Settings, events: list[dict[str, Any]], **options: Any):
        self.errors: list[Exception] = []

        def send() -> None:
            try:
                produce(settings, events, progress=False, **options)
            except Exception as exc:
                self.errors.append(exc)

        self.thread = threading.Thread(target=send)
        self.thread.start()

    def join(self) -> None:
        self.thread.join()
        assert not self.errors, f"the load generator: {self.errors[0]}"
