"""The topics a worker creates on a cluster of the team's own get their configs (compaction of the
profiles, retention, the largest record): the create requests the app sends to the real broker are
recorded and read back (the embedded broker does not report topic configs, so they are checked as sent).
ops/kafka/create-topics.sh creates the same topics with the same configs."""

import re
from pathlib import Path

import aiokafka
import pytest
from aiokafka.protocol.admin import CreateTopicsRequest
from kafka import KafkaAdminClient

from stream.settings import Settings
from stream.worker.app import create_app
from stream.worker.topics import TOPIC_CONFIGS, WEEK_MS, topic_config

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


async def test_every_topic_the_app_creates_gets_its_configs(settings, monkeypatch):
    settings = settings.replace(max_message_bytes=2_000_000)
    sent: dict[str, tuple[int, dict[str, str]]] = {}
    send = aiokafka.AIOKafkaClient.send

    async def recording_send(self, node_id, request, *args, **kwargs):
        if type(request).__name__.startswith(CreateTopicsRequest.__name__):
            for name, partitions, _replication, _assignment, configs in request.create_topic_requests:
                sent[name] = (partitions, dict(configs))
        return await send(self, node_id, request, *args, **kwargs)

    monkeypatch.setattr(aiokafka.AIOKafkaClient, "send", recording_send)
    stream = create_app(settings)
    producer = stream.app.producer
    await producer.start()
    try:
        for topic in [*vars(stream.topics).values()]:
            await topic.declare()
    finally:
        await producer.stop()

    names = {getattr(settings, field): field for field in TOPIC_CONFIGS}
    assert set(sent) == set(names), "a topic of the settings was not created by the app, or one more was"
    for name, (_, configs) in sent.items():
        assert configs == topic_config(settings, names[name]), name
    profiles = sent[settings.topic_profiles][1]
    assert profiles["cleanup.policy"] == "compact" and profiles["max.message.bytes"] == "2000000"
    assert "cleanup.policy" not in sent[settings.topic_model][1]  # deltas share keys: never compacted
    assert sent[settings.topic_training][0] == sent[settings.topic_model][0] == 1
    assert sent[settings.topic_predictions][0] == settings.partitions
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)  # they exist on the broker now
    try:
        assert set(names) <= set(admin.list_topics())
    finally:
        admin.close()


def shell_value(text: str) -> str:
    """A value of the script as the shell expands it with the settings' defaults."""
    text = text.strip('"').replace("$size", "max.message.bytes=${STREAM_MAX_MESSAGE_BYTES:-1000000}")
    text = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", text)
    text = text.replace("$week", str(WEEK_MS))
    return re.sub(r"\$\(\((\d+) \* week\)\)", lambda m: str(int(m.group(1)) * WEEK_MS), text)


def test_the_compose_script_creates_the_same_topics_with_the_same_configs():
    script = (ROOT / "ops/kafka/create-topics.sh").read_text().replace("\\\n", " ")
    configs = {}
    for line in script.splitlines():
        m = re.match(r'create "\$\{STREAM_(TOPIC_\w+):-', line)
        if m:
            pairs = [shell_value(v).split("=", 1) for v in re.findall(r"--config (\S+=\$\(\([^)]*\)\)|\S+)", line)]
            configs[m.group(1).lower()] = dict(pairs)
    assert set(configs) == set(TOPIC_CONFIGS)
    for field, got in configs.items():
        assert got == topic_config(Settings(), field), field
