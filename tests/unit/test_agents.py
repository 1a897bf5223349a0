"""The Faust agents with Faust's own test context (no broker): thin loops around the processor."""
import uuid

import orjson
import pytest

from stream.agents import Publisher
from stream.app import create_app
from stream.settings import Settings


class RecordingPublisher(Publisher):
    """Collects what the agents publish instead of handing it to a producer."""

    sent: list = []

    async def send(self, topic, records):
        self.sent.extend((topic.get_topic_name(), k, v) for k, v in records)


@pytest.fixture()
def stream(monkeypatch):
    monkeypatch.setattr("stream.agents.Publisher", RecordingPublisher)
    RecordingPublisher.sent = []
    settings = Settings(broker="127.0.0.1:9", app_id=f"test-{uuid.uuid4().hex[:8]}", batch_within=0.01)
    s = create_app(settings)
    s.app.finalize()
    s.app.flow_control.resume()
    return s


async def test_posts_agent_predicts_and_dead_letters(stream):
    posts = stream.app.agents["posts"]
    async with posts.test_context() as agent:
        for i in range(5):
            body = {"id": i, "user_id": "u", "text": f"brady threw pass {i}", "created_at": 1, "interest": "sports"}
            await agent.put(value=orjson.dumps(body), key=str(i).encode())
        await agent.put(value=b"{broken", key=b"x")
    by_topic = {}
    for topic, _, value in RecordingPublisher.sent:
        by_topic.setdefault(topic, []).append(orjson.loads(value))
    assert [p["post_id"] for p in by_topic["interest.predictions"]] == ["0", "1", "2", "3", "4"]
    assert by_topic["interest.predictions"][-1]["interest"] == "sports"
    assert [d["reason"] for d in by_topic["social.posts.dlq"]] == ["malformed_json"]
    assert stream.processor.model.version == 5


async def test_feedback_agent_learns_delayed_labels(stream):
    async with stream.app.agents["posts"].test_context() as posts:
        await posts.put(value=orjson.dumps({"id": "a", "user_id": "u", "text": "new iphone", "created_at": 1}))
    assert stream.processor.model.version == 0
    async with stream.app.agents["feedback"].test_context() as feedback:
        await feedback.put(value=orjson.dumps({"post_id": "a", "interest": "technology"}))
    assert stream.processor.model.version == 1
