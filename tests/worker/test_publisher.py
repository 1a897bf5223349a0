"""The publisher never crashes an agent and never lets a commit pass an undelivered record."""

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import orjson

from stream.stats import Stats
from stream.worker.publisher import Publisher


class Batch:
    """A record batch of at most three records (aiokafka's ``BatchBuilder`` fills up by size)."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes | None]] = []

    def append(self, *, key, value, timestamp):
        if len(self.records) == 3:
            return None
        self.records.append((key, value))
        return object()  # the record's metadata


class Producer:
    """aiokafka's producer as the publisher uses it, whose sends can be refused at once, or fail at
    delivery (at the next flush): ``lose`` counts lost deliveries (a batch's records are lost with it)."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, bytes | None, bytes | None, int | None]] = []
        self.pending: list[tuple[asyncio.Future[None], list[Any]]] = []
        self.batches: list[tuple[str, int, int]] = []  # topic, partition, records of each batch sent
        self.refuse = 0  # the next sends raise
        self.lose = 0  # the next deliveries fail

    def _ensure_producer(self) -> "Producer":  # the Kafka client under Faust's producer: this one
        return self

    def _queue(self, records: list[Any]) -> asyncio.Future[None]:
        if self.refuse:
            self.refuse -= 1
            raise RuntimeError("producer refused")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((fut, records))
        return fut

    async def send(self, topic, value=None, key=None, partition=None):
        return self._queue([(topic, key, value, partition)])

    def create_batch(self) -> Batch:
        return Batch()

    async def send_batch(self, batch, topic, *, partition):
        fut = self._queue([(topic, k, v, partition) for k, v in batch.records])
        self.batches.append((topic, partition, len(batch.records)))
        return fut

    async def partitions_for(self, topic):
        return {0, 1, 2, 3}

    async def flush(self) -> None:
        pending, self.pending = self.pending, []
        for fut, records in pending:
            if self.lose:
                self.lose -= 1
                fut.set_exception(RuntimeError("broker gone"))
            else:
                fut.set_result(None)
                self.delivered.extend(records)


def topic(name: str) -> Any:
    return SimpleNamespace(get_topic_name=lambda: name)


def publisher(max_bytes: int = 1_000_000) -> tuple[Publisher, Producer]:
    producer = Producer()
    app: Any = SimpleNamespace(producer=producer)  # Faust's producer, and the client under it
    topics: Any = SimpleNamespace(dlq=topic("dlq"))
    return Publisher(app, topics, Stats(), max_bytes), producer


def records(n: int) -> Iterator[tuple[bytes, bytes]]:
    return ((f"k{i}".encode(), f"v{i}".encode()) for i in range(n))


def test_failed_deliveries_hold_the_commit_until_they_are_sent_again():
    async def scenario() -> None:
        pub, producer = publisher()
        producer.lose = 100  # every batch lost...
        await pub.send(topic("predictions"), list(records(5)))
        assert await pub.delivery_gate() is False  # ...no commit
        assert pub.stats.outcomes["publish_errors"] >= 5 and pub.failing_since is not None and pub.failed
        producer.lose = 0
        assert await pub.delivery_gate() is True  # sent again, delivered: commit
        assert sorted(v or b"" for _, _, v, _ in producer.delivered) == sorted(v for _, v in records(5))
        assert pub.failing_since is None and not pub.failed and pub.in_flight == 0

    asyncio.run(scenario())


def test_records_go_in_batches_to_the_partition_of_their_key():
    from stream.worker.transport import key_partition

    async def scenario() -> None:
        pub, producer = publisher()
        await pub.send(topic("predictions"), list(records(20)))
        await pub.send(topic("metrics"), [(None, b"a"), (None, b"b")])
        await pub.send(topic("training"), [(None, b"t1"), (None, b"t2")], partition=0)
        assert await pub.delivery_gate() is True
        keyed = [(k, p) for t, k, _, p in producer.delivered if t == "predictions"]
        assert sorted(keyed) == sorted((k, key_partition(k, 4)) for k, _ in records(20))
        assert all(n <= 3 for _, _, n in producer.batches)  # full batches are sent, new ones started
        assert len([b for b in producer.batches if b[0] == "predictions"]) < 20  # not one per record
        assert len({p for t, _, _, p in producer.delivered if t == "metrics"}) == 2  # unkeyed: in turn
        assert [(v, p) for t, _, v, p in producer.delivered if t == "training"] == [(b"t1", 0), (b"t2", 0)]

    asyncio.run(scenario())


def test_a_refused_send_does_not_raise_into_the_agent():
    async def scenario() -> None:
        pub, producer = publisher()
        producer.refuse = 1
        await pub.send(topic("predictions"), list(records(3)))  # no exception
        assert pub.stats.outcomes["publish_errors"] >= 1  # the records of the refused batch
        assert await pub.delivery_gate() is True
        assert len(producer.delivered) == 3

    asyncio.run(scenario())


def test_a_record_over_the_limit_is_replaced_by_a_dead_letter():
    async def scenario() -> None:
        pub, producer = publisher(max_bytes=70_000)
        await pub.send(topic("user.interests"), [(b"u1", b"x" * 100_000), (b"u2", b"small")])
        assert await pub.delivery_gate() is True
        (dlq,) = [orjson.loads(v or b"") for t, _, v, _ in producer.delivered if t == "dlq"]
        assert dlq["reason"] == "output_too_large" and dlq["detail"].startswith("100002 bytes")  # key and value
        assert dlq["original_size"] == 100_000  # the value, as in every dead letter
        assert dlq["source"]["topic"] == "user.interests"
        assert [k for t, k, _, _ in producer.delivered if t == "user.interests"] == [b"u2"]
        assert pub.stats.outcomes["outputs_too_large"] == 1

    asyncio.run(scenario())


def test_a_commit_that_does_not_end_is_a_stall_and_a_refused_one_is_not():
    pub, _ = publisher()
    pub.commit_started()
    pub.commit_result(False)  # refused at once (partitions revoked): nothing stalls
    assert pub.stalled_for() is None
    pub.commit_started()  # and never ends: a broker that lost the consumer group
    assert pub.stalled_for() is None
    assert (pub.stalled_for(now=pub.commit_pending_since + 11) or 0) >= 11  # type: ignore[operator]


def test_a_send_after_a_long_quiet_is_no_stall():
    async def scenario() -> None:
        pub, producer = publisher()
        pub.last_delivered -= 600  # ten quiet minutes
        await pub.send(topic("predictions"), list(records(1)))
        assert pub.stalled_for() is None  # in flight for a moment: fine
        assert (pub.stalled_for(now=pub.busy_since + 11) or 0) >= 11  # in flight for 11 s: a stall
        await producer.flush()
        await asyncio.sleep(0)
        assert pub.stalled_for() is None and pub.in_flight == 0

    asyncio.run(scenario())
