"""The commit hook of the worker's consumer: what acknowledged posts left to send is drained before
the offsets to commit are taken, and sent before they are committed."""

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import pytest

from stream.worker.transport import transport_class


def _consumer(log, acked, hook):
    consumer_class: Any = transport_class(50).Consumer  # faust types it as ConsumerT, without _commit_tps
    fake = SimpleNamespace(app=SimpleNamespace(before_commit=hook))

    def offsets(tps):
        log.append(("offsets", sorted(acked)))
        return dict.fromkeys(acked, 1)

    async def attached(offsets):
        log.append(("attached", sorted(offsets)))

    async def commit(offsets, start_new_transaction=True):
        log.append(("commit", sorted(offsets)))
        return True

    fake._filter_committable_offsets, fake._handle_attached, fake._commit_offsets = offsets, attached, commit
    return lambda tps: consumer_class._commit_tps(fake, tps, True)


def test_aggregates_are_drained_before_offsets_are_taken_and_sent_before_the_commit():
    log, acked = [], {"posts-0"}

    def before_commit():
        log.append("drained")

        async def send():
            await asyncio.sleep(0)  # meanwhile the posts agent acknowledges another post...
            acked.add("posts-1")
            log.append("sent")

        return send()

    assert asyncio.run(_consumer(log, acked, before_commit)(["posts-0"])) is True
    # ...whose offset is not in this commit: its aggregates were not in the drain
    assert log == ["drained", ("offsets", ["posts-0"]), "sent", ("attached", ["posts-0"]), ("commit", ["posts-0"])]


def test_without_a_hook_or_anything_acknowledged():
    log: list[Any] = []
    assert asyncio.run(_consumer(log, {"posts-0"}, None)(["posts-0"])) is True
    assert log == [("offsets", ["posts-0"]), ("attached", ["posts-0"]), ("commit", ["posts-0"])]
    log.clear()
    assert asyncio.run(_consumer(log, set(), lambda: None)([])) is False
    assert log == [("offsets", [])]


def test_no_commit_while_the_delivery_gate_says_something_is_undelivered():
    log: list[Any] = []
    answers = [False, True]

    async def gate():
        log.append("gate")
        return answers.pop(0)

    consumer_class: Any = transport_class(50).Consumer
    guard = SimpleNamespace(delivery_gate=gate, commit_started=lambda: None, commit_result=lambda ok: None)
    fake = SimpleNamespace(app=SimpleNamespace(before_commit=None, commit_guard=guard))
    fake._filter_committable_offsets = lambda tps: {"posts-0": 1}

    async def attached(offsets):
        log.append("attached")

    async def committed(offsets, start_new_transaction=True):
        log.append("commit")
        return True

    fake._handle_attached, fake._commit_offsets = attached, committed
    assert asyncio.run(consumer_class._commit_tps(fake, ["posts-0"], True)) is False
    assert log == ["gate"]  # nothing committed: the posts will be committed once their outputs are in Kafka
    assert asyncio.run(consumer_class._commit_tps(fake, ["posts-0"], True)) is True
    assert log == ["gate", "gate", "attached", "commit"]


# Delivery a fetch at a time, run through Faust's own fetch loop and offset bookkeeping.


def _record(topic, partition, offset):
    from aiokafka.structs import ConsumerRecord

    return ConsumerRecord(topic, partition, offset, 1_000 + offset, 0, None, b"v%d" % offset, None, 2, 0, ())


async def _drain(fetches, committed=None):
    """The consumer of a worker's app (nothing started), its batched topic ``posts``, and the messages
    Faust's fetch loop (``Consumer._drain_messages``) hands on for ``fetches``."""
    from faust.types import TP
    from prometheus_client import CollectorRegistry

    from stream.settings import Settings
    from stream.worker.app import make_app
    from stream.worker.topics import batched_topic

    settings = Settings(broker="127.0.0.1:9", app_id="test-transport")
    app = make_app(settings, CollectorRegistry())
    app.topics.add(batched_topic(app, settings, "posts"))
    app.topics.add(app.topic("other", value_serializer="raw"))
    await cast(Any, app.topics)._update_indices()  # what Faust does before subscribing: acks enabled for both
    consumer: Any = app.consumer  # Faust's aiokafka consumer: its internals are what is tested here
    tps = {TP("posts", 0), TP("other", 0)}
    for tp in tps:
        consumer._committed_offset[tp] = consumer._read_offset[tp] = committed
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    fetches = list(fetches)

    async def getmany(active_partitions, timeout):
        if not fetches:
            fetcher._stopped.set()
            return {}
        return {TP(t, p): [_record(t, p, o) for o in offsets] for (t, p), offsets in fetches.pop(0).items()}

    consumer._getmany, consumer._get_active_partitions = getmany, lambda: tps
    consumer.highwater = lambda tp: 100
    delivered = []

    async def on_message(message):
        consumer.track_message(message)  # as Faust's conductor and channel do
        message.incref()
        delivered.append(message)

    consumer.callback = on_message
    await consumer._drain_messages(fetcher)
    return consumer, delivered


def test_a_fetch_of_a_batched_topic_is_one_message_whose_value_is_its_records():
    from stream.pipeline.records import Message
    from stream.worker.transport import BatchMessage

    _, delivered = asyncio.run(_drain([{("posts", 0): range(10, 13), ("other", 0): range(10, 12)}], committed=10))
    [batch] = [m for m in delivered if m.topic == "posts"]
    assert isinstance(batch, BatchMessage) and (batch.first_offset, batch.offset) == (10, 12)
    assert cast(Any, batch.value) == [Message(b"v%d" % o, None, "posts", 0, o, 1_000 + o) for o in (10, 11, 12)]
    others = [m for m in delivered if m.topic == "other"]  # not batched: a message per record, as Faust's
    assert [(m.offset, m.value) for m in others] == [(10, b"v10"), (11, b"v11")]
    assert not any(isinstance(m, BatchMessage) for m in others)


@pytest.mark.parametrize("committed", [None, 10])  # a partition never committed, and one read from its commit
def test_a_batch_is_committed_whole_once_acknowledged_and_never_before(committed):
    from faust.types import TP

    # the last fetch comes after offsets with no record (transaction markers, compacted records)
    fetches = [{("posts", 0): range(10, 13)}, {("posts", 0): range(13, 16)}, {("posts", 0): [19]}]
    consumer, (a, b, c) = asyncio.run(_drain(fetches, committed))
    tp = TP("posts", 0)
    assert consumer._new_offset(tp) is None  # fetched, none processed: nothing to commit
    a.ack(consumer)  # the agent is done with the first fetch (and acknowledges in order)
    assert consumer._new_offset(tp) == 13
    consumer._committed_offset[tp] = 13  # as Faust's commit records it
    b.ack(consumer)
    c.ack(consumer)
    assert consumer._new_offset(tp) == 20  # the other two fetches, every offset, in one commit
    assert consumer._acked[tp] == [] and not consumer._gap[tp]  # nothing left to hold the next commit back


def test_after_a_rebalance_a_partition_with_no_committed_offset_is_read_from_the_beginning():
    """Faust drops a fetch a rebalance interrupted and relies on the seek to committed offsets that
    follows; with nothing committed (a new partition, a broker that came back empty) aiokafka's seek
    does nothing, the fetched records would be skipped, and Faust would keep its old committed offset."""
    from faust.types import TP
    from prometheus_client import CollectorRegistry

    from stream.settings import Settings
    from stream.worker.app import make_app

    app = make_app(Settings(broker="127.0.0.1:9", app_id="test-seek"), CollectorRegistry())
    table = app.Table("counts", default=int)
    consumer: Any = app.consumer
    never, committed, changelog = TP("posts", 0), TP("posts", 1), TP(table.changelog_topic.get_topic_name(), 0)
    seeks: list[Any] = []

    async def seek_to_committed():  # what the broker answers, as aiokafka's seek_to_committed returns it
        return {never: None, committed: 25, changelog: None}

    async def seek_to_beginning(*tps):
        seeks.extend(tps)

    consumer._thread = SimpleNamespace(seek_to_committed=seek_to_committed, seek_to_beginning=seek_to_beginning)
    consumer._committed_offset[never] = consumer._committed_offset[committed] = 25  # committed on a broker before
    asyncio.run(consumer.perform_seek())  # Faust's own, run after each rebalance
    assert seeks == [never]  # not the changelog: Faust's recovery positions those itself
    assert consumer._committed_offset[never] is None and consumer._committed_offset[committed] == 25
    assert consumer._read_offset[never] is None and consumer._read_offset[committed] == 25


def test_faust_is_the_version_the_transport_is_written_for():
    import tomllib
    from pathlib import Path

    import faust

    from stream.worker.transport import FAUST_VERSION

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert f"faust-streaming=={FAUST_VERSION}" in pyproject["project"]["dependencies"]
    assert faust.__version__ == FAUST_VERSION


def test_keys_hashed_together_go_where_the_kafka_clients_default_partitioner_sends_them():
    import random

    from aiokafka.partitioner import murmur2

    from stream.worker.transport import key_partitions

    rnd = random.Random(7)
    # many keys of each length 0..40 (hashed as arrays), a few of others (one at a time), in a mixed order
    keys = [rnd.randbytes(n) for n in range(41) for _ in range(20)] + [rnd.randbytes(50 + n) for n in range(5)]
    keys += [b"%018d" % rnd.randrange(10**18) for _ in range(200)]
    rnd.shuffle(keys)
    for partitions in (1, 4, 7, 12):
        assert key_partitions(keys, partitions) == [(murmur2(k) & 0x7FFFFFFF) % partitions for k in keys]
    assert key_partitions([], 4) == []


def test_the_worker_consumer_fetches_with_the_wait_and_least_bytes_of_the_settings(monkeypatch):
    """Faust builds the worker's aiokafka consumer with a fixed 1.5 s fetch wait and aiokafka's 1 byte;
    what its fetcher is built with (in ``start()``) must be the settings'."""
    from aiokafka.consumer import consumer as aiokafka_consumer
    from prometheus_client import CollectorRegistry

    from stream.settings import Settings
    from stream.worker.app import make_app

    settings = Settings(broker="127.0.0.1:9", app_id="test-fetch", fetch_wait_ms=70, fetch_min_bytes=4096)
    app = make_app(settings, CollectorRegistry())
    built: dict[str, Any] = {}

    class Built(Exception):
        pass

    def fetcher(*args: Any, **kwargs: Any) -> None:
        built.update(kwargs)
        raise Built  # the fetcher is all this test needs of start()

    monkeypatch.setattr(aiokafka_consumer, "Fetcher", fetcher)

    async def start() -> None:
        consumer: Any = app.consumer
        client = consumer._new_consumer_thread()._create_worker_consumer(app.transport)

        async def offline() -> None:  # no broker: the client's bootstrap and topic wait do nothing
            return None

        client._client.bootstrap, client._wait_topics = offline, offline
        try:
            with pytest.raises(Built):
                await client.start()
        finally:
            await client.stop()

    asyncio.run(start())
    assert built["fetch_max_wait_ms"] == 70 and built["fetch_min_bytes"] == 4096


def test_under_load_a_fetch_asks_for_about_the_gather_time_of_the_input_rate(monkeypatch):
    """The consumer counts the bytes of each fetch and, every half second, sets aiokafka's fetcher to ask
    for ``STREAM_FETCH_GATHER_MS`` of that rate; with no input it goes back to ``STREAM_FETCH_MIN_BYTES``."""
    from stream.worker import transport

    clock = iter([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.9, 1.6])  # one call each: a fetch of 5 records, then none
    monkeypatch.setattr(transport.time, "monotonic", lambda: next(clock))
    consumer_class: Any = transport_class(50, fetch_min_bytes=100).Consumer
    fetcher = SimpleNamespace(_fetch_min_bytes=100)
    app = SimpleNamespace(fetch_gather_s=0.02, fetch_min_bytes=100, fetch_min_bytes_now=None)
    thread = SimpleNamespace(_consumer=SimpleNamespace(_fetcher=fetcher))
    consumer = SimpleNamespace(_gather=None, _thread=thread, app=app)
    consumer._fetcher = lambda: consumer_class._fetcher(consumer)  # finds the fetcher under Faust's thread
    record = SimpleNamespace(serialized_value_size=2_000)
    from faust.types import TP

    posts, aggregates = TP("posts", 0), TP("aggregates", 0)
    seen = []
    for fetched in [5, 5, 5, 5, 5, 5, 0, 0]:
        # the worker's own aggregates, in the same fetches, are not the input: not counted
        fetch = {posts: [record] * fetched, aggregates: [record] * 50} if fetched else {}
        consumer_class._follow_rate(consumer, fetch, frozenset({"posts"}))
        seen.append((fetcher._fetch_min_bytes, app.fetch_min_bytes_now))
    # 5 fetches of 10 kB after the first, in 0.5 s: 100 kB/s, 20 ms of it; then 0.5 s with none: the floor
    assert [asked for asked, _ in seen] == [100, 100, 100, 100, 100, 2_000, 2_000, 100]
    assert [shown for _, shown in seen] == [None] * 5 + [2_000, 2_000, 100]  # what /metrics shows


def test_the_fetcher_builds_each_fetch_request_from_the_least_bytes_the_consumer_sets():
    """What :class:`~stream.worker.transport.BatchingConsumer` relies on in the Kafka clients: Faust's
    consumer thread keeps aiokafka's consumer as ``_consumer``, whose fetcher reads ``_fetch_min_bytes``
    each time it builds a fetch request (not once, at its start)."""
    import inspect

    from aiokafka.consumer.fetcher import Fetcher
    from faust.transport.drivers import aiokafka as driver

    assert "self._consumer = self._create_consumer(" in inspect.getsource(driver.AIOKafkaConsumerThread)
    assert "self._fetch_min_bytes," in inspect.getsource(Fetcher._get_actions_per_node)


def test_while_the_app_rebalances_only_the_tables_changelogs_are_fetched():
    """At the end of a rebalance Faust seeks the inputs to their committed offsets and then resumes its
    flow control, which empties the agents' queues: input records handed on in between would be lost
    (the read offset and the client's position are past them). So the consumer asks the Kafka client
    for nothing but the tables' changelogs until the rebalance has ended."""
    from faust.types import TP
    from prometheus_client import CollectorRegistry

    from stream.settings import Settings
    from stream.worker.app import make_app

    async def scenario():
        app = make_app(Settings(broker="127.0.0.1:9", app_id="test-rebalance"), CollectorRegistry())
        table = app.Table("counts", default=int)
        consumer: Any = app.consumer
        changelog, posts = TP(table.changelog_topic.get_topic_name(), 0), TP("posts", 0)
        asked = []

        async def getmany(active_partitions, timeout):  # the consumer thread's fetch
            asked.append(set(active_partitions))
            return {tp: ["a record"] for tp in active_partitions}

        consumer._thread = SimpleNamespace(getmany=getmany)
        app.rebalancing = True
        during = await consumer._getmany({changelog, posts}, 1.0), await consumer._getmany({posts}, 1.0)
        app.rebalancing = False
        after = await consumer._getmany({changelog, posts}, 1.0)
        return changelog, posts, during, after, asked

    changelog, posts, (restoring, inputs_only), after, asked = asyncio.run(scenario())
    assert set(restoring) == {changelog}
    assert inputs_only == {}  # and the client is not asked: no partitions would mean every partition
    assert set(after) == {changelog, posts}
    assert asked == [{changelog}, {changelog, posts}]
