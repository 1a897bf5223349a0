"""Hands the records of a batch to the worker's producer, without awaiting each delivery: one Kafka
record batch per output partition, built at once, instead of one send (and one delivery future) per
record."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Sequence
from typing import Any

import faust

from stream.audience.aggregator import AudienceOutputs
from stream.pipeline.events import Rejected
from stream.pipeline.processor import Outputs
from stream.pipeline.records import Message, dead_letter
from stream.stats import Stats
from stream.worker.topics import Topics
from stream.worker.transport import kafka_producer, key_partitions

log = logging.getLogger(__name__)

Records = Sequence[tuple[bytes | None, bytes | None]]


RECORD_OVERHEAD = 512  # bytes a record costs in a produce request beyond its key and value
FAILED_CAPACITY = 100_000  # undelivered records kept for a retry; past it the worker stops committing
LOG_EVERY_S = 10.0  # a repeating delivery error is logged at most this often
KEPT_KEY_BYTES = 256  # of an oversized record's key, in its dead letter's key
STALL_S = 10.0  # records in flight this long without any delivery: the worker is not delivering

Failed = tuple[str, bytes | None, bytes | None, int | None]  # topic, key, value, partition


class Publisher:
    """Sends records through the app's producer, without awaiting each delivery.

    Nothing it is given can crash the agent that gives it:

    - a record over the producer's limit (``STREAM_MAX_MESSAGE_BYTES``) is not sent; a small
      ``output_too_large`` dead letter (topic, key, size, SHA-256) takes its place, counted as
      ``outputs_too_large``;
    - a send or a delivery that fails is counted (``publish_errors``), logged at a bounded rate and
      kept; :meth:`delivery_gate`, which the consumer awaits before every offset commit, flushes the
      producer, sends what failed again, and allows the commit only once everything is delivered. A
      post is never marked consumed before what it caused is in Kafka: at-least-once.
    """

    def __init__(self, app: faust.App, topics: Topics, stats: Stats, max_bytes: int = 1_000_000):
        self.app = app
        self.topics = topics
        self.stats = stats
        self.max_bytes = max_bytes
        self.failed: list[Failed] = []
        self.failing_since: float | None = None  # monotonic time of the first failure not yet resent
        self.dropped = 0  # failures past FAILED_CAPACITY: the worker must not commit again
        self.in_flight = 0  # records handed to the producer, not yet delivered or failed
        self.last_delivered = time.monotonic()
        self.busy_since = self.last_delivered  # when the records now in flight started to be
        self.commit_pending_since: float | None = None
        self._logged_at = -LOG_EVERY_S
        self._unlogged = 0
        self._next_partition = -1  # the last partition an unkeyed record went to

    def _failure(self, record: Failed, exc: BaseException) -> None:
        self.stats.outcomes["publish_errors"] += 1
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        if len(self.failed) < FAILED_CAPACITY:
            self.failed.append(record)
        else:
            self.dropped += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_S:
            more = f" (and {self._unlogged} more since the last report)" if self._unlogged else ""
            log.error(
                "could not publish a record to %s: %r%s; it is sent again before the next commit", record[0], exc, more
            )
            self._logged_at, self._unlogged = now, 0
        else:
            self._unlogged += 1

    @property
    def undelivered(self) -> int:
        """Records handed over and not known to be delivered."""
        return len(self.failed) + self.dropped + self.in_flight

    def give_up_reason(self, timeout: float, now: float | None = None) -> str | None:
        """Why the worker should exit (one line), once deliveries or commits stall for over ``timeout``
        seconds; ``None`` until then.

        >>> pub = Publisher(None, None, None)  # type: ignore[arg-type]
        >>> pub.commit_started(); pub.give_up_reason(20.0) is None
        True
        >>> pub.give_up_reason(20.0, now=pub.commit_pending_since + 25)[:44]
        'nothing delivered to Kafka or committed for '
        """
        stalled = self.stalled_for(now)
        if stalled is None or stalled <= timeout:
            return None
        return (
            f"nothing delivered to Kafka or committed for {stalled:.0f} s ({self.undelivered} records waiting; "
            f"STREAM_DELIVERY_TIMEOUT={timeout:.0f}): exiting so that a restart reconnects and declares its "
            "topics again (nothing past the delivered posts was committed)"
        )

    def commit_started(self) -> None:
        """An offset commit begins (the consumer reports each): one that does not end (the Kafka client
        retries it for ever) is a broker that takes records, auto-creating topics, yet has lost the
        consumer group and the input topics."""
        self.commit_pending_since = time.monotonic()

    def commit_result(self, committed: bool) -> None:
        """The offset commit last started has ended (committed or not: a commit refused at once, such as
        one for partitions a rebalance took away, is no stall)."""
        self.commit_pending_since = None

    def stalled_for(self, now: float | None = None) -> float | None:
        """Seconds since the last delivery while records wait (failed, or in flight for over
        :data:`STALL_S`), or since an offset commit that has not ended started (for over :data:`STALL_S`);
        ``None`` while deliveries and commits keep up."""
        now = time.monotonic() if now is None else now
        if self.commit_pending_since is not None and now - self.commit_pending_since >= STALL_S:
            return now - self.commit_pending_since
        if self.failed or self.dropped:  # undelivered records: not ready at once
            return now - max(self.last_delivered, self.failing_since or now)
        if self.in_flight:  # counted from the later of the last delivery and the first record now in flight
            stalled = now - max(self.last_delivered, self.busy_since)
            return stalled if stalled >= STALL_S else None
        return None

    @property
    def producer(self) -> Any:
        """The Kafka client under the app's producer (started with the app)."""
        return kafka_producer(self.app)

    def _in_flight(self, records: int) -> None:
        if self.in_flight == 0:
            self.busy_since = time.monotonic()
        self.in_flight += records

    async def _send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None) -> None:
        """One record on its own (a dead letter for an oversized record, and records sent again)."""
        record = (topic, key, value, partition)
        try:
            fut = await self.producer.send(topic, value, key=key, partition=partition)
        except Exception as exc:  # refused before it was queued (the producer is stopped, ...)
            self._failure(record, exc)
            return
        self._in_flight(1)
        fut.add_done_callback(functools.partial(self._delivered, [record]))

    async def _send_batch(self, topic: str, partition: int, records: list[tuple[bytes | None, bytes | None]]) -> None:
        """``records`` to one partition, in as few Kafka record batches as their size allows."""
        producer, start = self.producer, 0
        while start < len(records):
            batch = producer.create_batch()
            batch.append(key=records[start][0], value=records[start][1], timestamp=None)  # a first always fits
            end = start + 1
            while end < len(records) and batch.append(key=records[end][0], value=records[end][1], timestamp=None):
                end += 1
            sent = [(topic, k, v, partition) for k, v in records[start:end]]
            start = end
            try:
                fut = await producer.send_batch(batch, topic, partition=partition)
            except Exception as exc:  # refused before it was queued
                for record in sent:
                    self._failure(record, exc)
                continue
            self._in_flight(len(sent))
            fut.add_done_callback(functools.partial(self._delivered, sent))

    def _delivered(self, records: Sequence[Failed], fut: asyncio.Future[object]) -> None:
        self.in_flight -= len(records)
        if not fut.cancelled() and fut.exception() is not None:
            for record in records:
                self._failure(record, fut.exception())  # type: ignore[arg-type]
        else:
            self.last_delivered = time.monotonic()

    async def _too_large(self, topic: str, key: bytes | None, value: bytes | None, size: int) -> None:
        self.stats.outcomes["outputs_too_large"] += 1
        self.stats.dead_letters["output_too_large"] += 1
        log.error("a record of %d bytes for %s is over STREAM_MAX_MESSAGE_BYTES: dead-lettered", size, topic)
        rejected = Rejected("output_too_large", f"{size} bytes, STREAM_MAX_MESSAGE_BYTES is {self.max_bytes}")
        letter = dead_letter(Message(value, topic=topic), rejected, time.time(), keep_bytes=0)
        await self._send(self.topics.dlq.get_topic_name(), (key or b"")[:KEPT_KEY_BYTES] or None, letter, None)

    async def send(self, topic: faust.TopicT, records: Records, partition: int | None = None) -> None:
        """Hand ``records`` to the producer: to ``partition``, or to the partition the Kafka clients'
        default partitioner gives each key (unkeyed records in turn to each partition)."""
        name = topic.get_topic_name()
        limit = self.max_bytes - RECORD_OVERHEAD
        kept: list[tuple[bytes | None, bytes | None]] = []
        for key, value in records:
            size = (len(key) if key else 0) + (len(value) if value else 0)
            if size > limit:
                await self._too_large(name, key, value, size)
            else:
                kept.append((key, value))
        if not kept:
            return
        by_partition: dict[int, list[tuple[bytes | None, bytes | None]]] = {}
        if partition is not None:
            by_partition[partition] = kept
        else:
            try:
                count = len(await self.producer.partitions_for(name))
            except Exception as exc:  # no metadata: sent again, one by one, before the next commit
                for key, value in kept:
                    self._failure((name, key, value, None), exc)
                return
            hashed = iter(key_partitions([key for key, _ in kept if key is not None], count))
            for key, value in kept:
                if key is None:
                    p = self._next_partition = (self._next_partition + 1) % count
                else:
                    p = next(hashed)
                by_partition.setdefault(p, []).append((key, value))
        for p, batch in by_partition.items():
            await self._send_batch(name, p, batch)

    async def delivery_gate(self) -> bool:
        """Whether the input offsets may be committed: the producer flushed, and every record that
        failed sent again and delivered (the consumer awaits this before each commit)."""
        await self.producer.flush()
        await asyncio.sleep(0)  # the delivery callbacks of the flushed records
        if self.failed:
            retry, self.failed = self.failed, []
            for record in retry:
                await self._send(*record)
            await self.producer.flush()
            await asyncio.sleep(0)
        if self.failed or self.dropped:
            return False
        if self.failing_since is not None:
            log.info("every record delivered again after %.0f s of failures", time.monotonic() - self.failing_since)
            self.failing_since = None
        return True

    async def audience(self, out: AudienceOutputs) -> None:
        """Closed windows and spikes (keyed by segment) and fired triggers (keyed by trigger id)."""
        audience, triggers = out.keyed()
        await self.send(self.topics.audience, audience)
        await self.send(self.topics.triggers, triggers)

    async def outputs(self, out: Outputs) -> None:
        """Everything a batch of the processor produced."""
        await self.send(self.topics.predictions, out.predictions)
        await self.send(self.topics.dlq, out.dead_letters)
        # the training log has one order: partition 0, whatever the topic's partition count
        await self.send(self.topics.training, out.training, partition=0)
        await self.send(self.topics.feedback_keyed, out.repartition)  # keyed by post id: its post's partition
        await self.send(self.topics.metrics, [(None, e) for e in out.events])
        for partition, value in out.partials:
            await self.send(self.topics.partials, [(b"partials", value)], partition=partition)
        for partition, value in out.profile_updates:
            await self.send(self.topics.profile_updates, [(b"users", value)], partition=partition)
