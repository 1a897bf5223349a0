"""The publisher never crashes an agent and never lets a commit pass an undelivered record."""

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import orjson

from stream.stats import Stats
from stream.worker.publisher import Publisher


class Producer:
    """A producer whose sends can be refused at once, or fail at delivery (at the next flush)."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, bytes | None, bytes | None, int | None]] = []
        self.pending: list[tuple[asyncio.Future[None], Any]] = []
        self.refuse = 0  # the next sends raise
        self.lose = 0  # the next deliveries fail

    async def send(self, topic, key, value, partition, timestamp, headers):
        if self.refuse:
            self.refuse -= 1
            raise RuntimeError("producer refused")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((fut, (topic, key, value, partition)))
        return fut

    async def flush(self) -> None:
        pending, self.pending = self.pending, []
        for fut, record in pending:
            if self.lose:
                self.lose -= 1
                fut.set_exception(RuntimeError("broker gone"))
            else:
                fut.set_result(None)
                self.delivered.append(record)


def topic(name: str) -> Any:
    return SimpleNamespace(get_topic_name=lambda: name)


def publisher(max_bytes: int = 1_000_000) -> tuple[Publisher, Producer]:
    producer = Producer()
    app: Any = SimpleNamespace(producer=producer)
    topics: Any = SimpleNamespace(dlq=topic("dlq"))
    return Publisher(app, topics, Stats(), max_bytes), producer


def records(n: int) -> Iterator[tuple[bytes, bytes]]:
    return ((f"k{i}".encode(), f"v{i}".encode()) for i in range(n))


def test_failed_deliveries_hold_the_commit_until_they_are_sent_again():
    async def scenario() -> None:
        pub, producer = publisher()
        producer.lose = 7  # all five lost, and two of them again when the gate sends them again at once
        await pub.send(topic("predictions"), list(records(5)))
        assert await pub.delivery_gate() is False  # no commit
        assert pub.stats.outcomes["publish_errors"] == 7 and pub.failing_since is not None and len(pub.failed) == 2
        assert await pub.delivery_gate() is True  # sent again, delivered: commit
        assert sorted(v or b"" for _, _, v, _ in producer.delivered) == sorted(v for _, v in records(5))
        assert pub.failing_since is None and not pub.failed

    asyncio.run(scenario())


def test_a_refused_send_does_not_raise_into_the_agent():
    async def scenario() -> None:
        pub, producer = publisher()
        producer.refuse = 1
        await pub.send(topic("predictions"), list(records(3)))  # no exception
        assert pub.stats.outcomes["publish_errors"] == 1
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
