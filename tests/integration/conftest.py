"""Real parts: the embedded Tansu broker over TCP and worker processes. Unique names per test."""
import uuid
from pathlib import Path

import pytest

from stream.broker import EmbeddedBroker, free_port
from stream.settings import Settings


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_file=log) as b:
        yield b


@pytest.fixture()
def settings(broker, tmp_path: Path) -> Settings:
    """Settings with topic and group names no other test uses."""
    run = uuid.uuid4().hex[:8]
    return Settings(
        broker=broker.bootstrap, app_id=f"it-{run}", topic_posts=f"posts-{run}",
        topic_feedback=f"feedback-{run}", topic_predictions=f"predictions-{run}",
        topic_metrics=f"metrics-{run}", topic_dlq=f"dlq-{run}", topic_training=f"training-{run}",
        topic_model=f"model-{run}", web_port=free_port(),
        metrics_interval=1.0, session_timeout=6.0, data_dir=str(tmp_path / "data"),
    )
