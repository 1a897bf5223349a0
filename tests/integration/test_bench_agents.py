"""The bench's baselines run for real on the embedded broker: what ``interest-stream bench`` compares
the worker with must itself work (their speed is the bench's business, not a test's)."""

import orjson
import pytest
from kafka import KafkaConsumer

from stream.tools.bench import bench_agent
from stream.tools.data import tweets_stream


def read_all(settings, topic, want):
    consumer = KafkaConsumer(
        topic, bootstrap_servers=settings.bootstrap_servers, auto_offset_reset="earliest", consumer_timeout_ms=5_000
    )
    try:
        records = []
        for record in consumer:
            records.append(record)
            if len(records) == want:
                break
        return records
    finally:
        consumer.close()


@pytest.mark.parametrize("name", ["peer", "floor"])
def test_a_bench_baseline_answers_every_post(name, settings, tmp_path):
    events = tweets_stream()[:300]
    result = bench_agent(settings, events, len(events), tmp_path, name)
    assert result["events"] == len(events) and result["eps"] > 0 and result["rss_mb"] > 0
    records = read_all(settings, result["topic"], len(events))
    assert sorted(r.key for r in records) == sorted(e["id"].encode() for e in events)
    if name == "peer":  # predict then learn: one prediction per post, from what it learned before it
        predictions = [orjson.loads(r.value) for r in records]
        assert {p["interest"] for p in predictions} - {None} <= {e["interest"] for e in events}
        assert sum(p["interest"] is not None for p in predictions) >= len(events) - 1


@pytest.mark.parametrize("rate", [1000.0, None])
def test_the_load_is_sent_whole_by_the_cheaper_client(settings, rate):
    """The bench's fixed load (paced) and the pipeline's backlog (``None``: as fast as it can): every
    post reaches the posts topic, keyed by its id, sent by confluent-kafka (installed with the ``dev``
    extra)."""
    from stream.tools.bench import offer

    events = tweets_stream()[:200]
    assert offer(settings, events, rate=rate) == "confluent-kafka"
    records = read_all(settings, settings.topic_posts, len(events))
    assert sorted(r.key for r in records) == sorted(e["id"].encode() for e in events)
    assert {orjson.loads(r.value)["id"] for r in records} == {e["id"] for e in events}
