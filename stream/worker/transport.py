"""Faust's Kafka transport with two changes: the consumer's fetch wait, and end offsets that are
checked against the log.

- Faust 0.15 hard-codes ``fetch_max_wait_ms=1500`` for its worker consumer. A broker holds a fetch
  until that wait runs out when there is little data, so at moderate load every post waits up to
  1.5 s before the worker sees it. :class:`InterestApp` uses ``STREAM_FETCH_WAIT_MS`` instead.
- Faust commits the input offsets of the events an agent has acknowledged. The posts agent sends
  the partial aggregates of its posts on a timer, not with each batch, so :class:`InterestApp` has a
  ``before_commit`` hook: right before the offsets to commit are taken, it drains what the acknowledged
  posts left (synchronously: no post is acknowledged in between), and the drained records are sent
  before the producer is flushed and the offsets committed; then the app's ``commit_guard`` (see
  :class:`~stream.worker.publisher.Publisher`) sends again whatever failed, and the commit waits until
  it is delivered. A post is never marked consumed before the records it caused are delivered.
- Faust restores a table by reading its changelog up to the end offsets the broker reports. The
  embedded broker (Tansu 0.6) reports the *base offset of the last record batch* instead of the
  offset after the last record (measured: 6 records at offsets 0-5 written in batches [0-3], [4-5]
  give an end offset of 4), so a restarted worker would lose the last changes of its tables.
  :func:`true_end_offsets` reads from the reported end on and moves it past any record found there;
  on Apache Kafka there is none and the answer is unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.exceptions import ProducerSendError
from faust.transport.drivers import aiokafka as driver

PROBE_WAIT_MS = 50


async def true_end_offsets(bootstrap_servers: Any, reported: Mapping[Any, int]) -> dict[Any, int]:
    """The offset after the last record of each partition: ``reported`` (a broker's end offsets,
    keyed by anything with ``topic`` and ``partition``), moved past the records read from there."""
    result = dict(reported)
    if not result:
        return result
    tps = {TopicPartition(tp.topic, tp.partition): tp for tp in result}
    probe = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=PROBE_WAIT_MS
    )
    await probe.start()
    try:
        probe.assign(list(tps))
        for ktp, tp in tps.items():
            probe.seek(ktp, max(0, result[tp]))
        idle = 0
        while idle < 2:
            batches = await probe.getmany(timeout_ms=PROBE_WAIT_MS * 2)
            idle = 0 if batches else idle + 1
            for ktp, records in batches.items():
                if records:
                    tp = tps[ktp]
                    result[tp] = max(result[tp], records[-1].offset + 1)
    finally:
        await probe.stop()
    return result


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    fetch_max_wait_ms: int = 1500
    bootstrap_servers: Iterable[str] = ()

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms  # read by AIOKafkaConsumer.start()
        return consumer

    async def _highwaters(self, partitions: list[Any]) -> Mapping[Any, int]:
        reported = await super()._highwaters(partitions)
        return await true_end_offsets(list(self.bootstrap_servers), reported)


def transport_class(fetch_max_wait_ms: int, bootstrap_servers: Iterable[str] = ()) -> type[driver.Transport]:
    """The aiokafka transport of Faust, with a worker consumer that waits ``fetch_max_wait_ms`` and
    checks the end offsets it is told (see the module's docstring)."""
    thread = type(
        "ConsumerThread",
        (_ConsumerThread,),
        {"fetch_max_wait_ms": fetch_max_wait_ms, "bootstrap_servers": tuple(bootstrap_servers)},
    )

    class Consumer(driver.Consumer):
        def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
            return thread(self, loop=self.loop, beacon=self.beacon)

        async def _commit_tps(self, tps: Iterable[Any], start_new_transaction: bool) -> bool:
            # Faust's own, with the app's before_commit hook called before the offsets are taken.
            hook = getattr(self.app, "before_commit", None)
            drained = hook() if hook is not None else None  # drains now; sends when awaited
            commit_offsets = self._filter_committable_offsets(tps)
            if drained is not None:
                await drained
            if not commit_offsets:
                return False
            guard: CommitGuard | None = getattr(self.app, "commit_guard", None)
            if guard is not None and not await guard.delivery_gate():
                return False  # something these posts caused is not delivered yet: commit later
            try:
                await self._handle_attached(commit_offsets)
            except ProducerSendError as exc:
                await self.crash(exc)
                return False
            if guard is not None:
                guard.commit_started()  # a commit that hangs (a broker that lost the group) shows as a stall
            committed = False
            try:
                committed = await self._commit_offsets(commit_offsets, start_new_transaction=start_new_transaction)
            finally:
                if guard is not None:
                    guard.commit_result(committed)
            return committed

    return type("Transport", (driver.Transport,), {"Consumer": Consumer})


class CommitGuard(Protocol):
    """What the consumer asks before and tells around each offset commit
    (:class:`~stream.worker.publisher.Publisher` is one)."""

    async def delivery_gate(self) -> bool: ...

    def commit_started(self) -> None: ...

    def commit_result(self, committed: bool) -> None: ...


class InterestApp(faust.App):
    """A Faust app whose consumer fetch wait is a setting, with checked end offsets and a hook
    called before each offset commit (see the module's docstring)."""

    fetch_max_wait_ms: int = 1500
    before_commit: Callable[[], Awaitable[Any] | None] | None = None
    commit_guard: CommitGuard | None = None

    def _new_transport(self) -> Any:
        servers = [f"{u.host}:{u.port}" for u in self.conf.broker_consumer]
        return transport_class(self.fetch_max_wait_ms, servers)(self.conf.broker_consumer, self)


def partition_router(partitions: int) -> Callable[[str], int]:
    """The partition the Kafka clients' default partitioner (murmur2, as Java's) gives a record keyed
    by ``key`` on a topic of ``partitions`` partitions: where a post keyed by its id is, and so where
    its delayed label must go.

    >>> route = partition_router(4)
    >>> [route(k) for k in ("p1", "p2", "p3")] == [route(k) for k in ("p1", "p2", "p3")], 0 <= route("x") < 4
    (True, True)
    """
    from aiokafka.partitioner import murmur2

    def route(key: str) -> int:
        return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions

    return route
