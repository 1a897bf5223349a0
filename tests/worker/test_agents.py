"""The Faust agents with Faust's own test context (no broker): thin loops around the processor."""

import uuid
from typing import Any, ClassVar

import orjson
import pytest

from stream.pipeline.records import Message
from stream.settings import Settings
from stream.worker.app import create_app
from stream.worker.publisher import Publisher
from stream.worker.transport import partition_router


class RecordingPublisher(Publisher):
    """Collects what the agents publish instead of handing it to a producer."""

    sent: ClassVar[list[tuple[Any, ...]]] = []

    async def send(self, topic, records, partition=None):
        self.sent.extend((topic.get_topic_name(), partition, k, v) for k, v in records)


@pytest.fixture
def stream(monkeypatch):
    monkeypatch.setattr("stream.worker.app.Publisher", RecordingPublisher)
    RecordingPublisher.sent = []
    settings = Settings(broker="127.0.0.1:9", app_id=f"test-{uuid.uuid4().hex[:8]}")
    s = create_app(settings)
    s.replica.ready.set()  # no broker here: no model topic to follow
    s.app.finalize()
    s.app.flow_control.resume()
    return s


def fetch(topic, *records, partition=0):
    """One fetch of a partition as the transport delivers it: the list of its records."""
    return [Message(value, key, topic, partition, offset, 1_000) for offset, (key, value) in enumerate(records)]


def published(topic):
    return [(p, orjson.loads(v)) for t, p, _, v in RecordingPublisher.sent if t == topic]


async def test_posts_agent_predicts_dead_letters_and_logs_training_records(stream):
    posts = stream.app.agents["posts"]
    bodies = [
        {"id": i, "user_id": "u", "text": f"brady threw pass {i}", "created_at": 1, "interest": "sports"}
        for i in range(5)
    ]
    async with posts.test_context() as agent:
        await agent.put(value=fetch("social.posts", *((str(b["id"]).encode(), orjson.dumps(b)) for b in bodies[:3])))
        await agent.put(value=fetch("social.posts", *((str(b["id"]).encode(), orjson.dumps(b)) for b in bodies[3:])))
        await agent.put(value=fetch("social.posts", (b"x", b"{broken")))
    assert [p["post_id"] for _, p in published("interest.predictions")] == ["0", "1", "2", "3", "4"]
    assert [d["reason"] for _, d in published("social.posts.dlq")] == ["malformed_json"]
    training = published("interest.training")
    assert [(part, t["k"], t["id"], t["y"]) for part, t in training] == [
        (0, "post", str(i), "sports") for i in range(5)
    ]
    assert stream.processor.model.version == 0  # predictors do not learn: the cluster's one learner does


async def test_feedback_is_joined_where_its_post_waits_and_other_partitions_labels_are_sent_on(stream):
    route = partition_router(stream.settings.partitions)
    async with stream.app.agents["posts"].test_context() as posts:
        body = {"id": "a", "user_id": "u", "text": "new phone and a laptop", "created_at": 1}
        await posts.put(value=fetch("social.posts", (b"a", orjson.dumps(body)), partition=route("a")))
    assert published("interest.training") == []  # no label yet: the post waits in this worker
    async with stream.app.agents["feedback"].test_context() as feedback:
        label = orjson.dumps({"post_id": "a", "interest": "technology"})
        await feedback.put(value=fetch("interest.feedback", (None, label), partition=route("a")))
        wrong = (route("c") + 1) % stream.settings.partitions  # keyed by something else than the post id
        other = orjson.dumps({"post_id": "c", "interest": "music"})
        unlabelled = orjson.dumps({"post_id": "b"})
        await feedback.put(value=fetch("interest.feedback", (b"u", other), (None, unlabelled), partition=wrong))
    [(part, example)] = published("interest.training")
    assert part == 0 and (example["k"], example["id"], example["y"], example["j"]) == ("post", "a", "technology", 1)
    assert example["x"] and example["p"] is None  # the features and prediction of the post, joined
    [(_, key, value)] = [(p, k, v) for t, p, k, v in RecordingPublisher.sent if t == "interest.feedback.by-post"]
    assert key == b"c" and orjson.loads(value)["post_id"] == "c"  # keyed by post id: its post's partition
    assert [d["reason"] for _, d in published("social.posts.dlq")] == ["missing_field"]
