"""Learn once per cluster, predict everywhere: the learner role and every worker's model follower.

- **The learner** (:class:`LearnerRole`) runs in the one worker that Kafka's group assignment gives
  partition 0 of the one-partition role topic (``STREAM_TOPIC_LEARNER``); the assignment moves it
  when that worker dies. It loads the newest snapshot from the model topic, replays the training
  topic from the snapshot's offset (deterministic: the same records give the same model), writes a
  snapshot of a new *epoch*, then applies joined examples as they come and publishes **sparse
  deltas** (the rows that changed, :mod:`models.delta`) every ``STREAM_DELTA_INTERVAL`` and a whole
  snapshot every ``STREAM_CHECKPOINT_INTERVAL`` (and when a drift replaced the model, with a new
  epoch).
- **Every worker** (the learner's too) runs a :class:`Follower`: it reads the model topic from the
  newest snapshot on, loads it into its :class:`~stream.pipeline.modelview.ModelView` and applies
  the deltas of that epoch; a snapshot of a newer epoch is loaded, older epochs' records (a learner
  that lost the role) are skipped. The posts are predicted with that view (an aggregates worker's
  keeps the erasures and the learner's figures, not the interest model).

Every model record is one part of a signed whole of at most ``STREAM_MAX_MESSAGE_BYTES``
(:func:`models.persistence.split`): data only, never unpickled, verified as one before it is used.
A record of another format or key is refused with a log line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import OffsetOutOfRangeError

from models.persistence import CheckpointError, Reassembler, dump, load, part_header, read_meta, split
from stream.clients import aio_consumer, aio_producer, client_options, true_end_offsets
from stream.pipeline.learner import CHECKPOINT_CLASSES, Learner
from stream.pipeline.modelview import ModelView
from stream.settings import Settings
from stream.stats import Latency, Stats

log = logging.getLogger(__name__)

APPLY_SLICE = 64  # training records applied between two yields to the event loop (a few ms)
RECORD_OVERHEAD = 1024  # a Kafka record's key, headers and batch framing, within the size limit
# How long the broker may hold a fetch of the model topic or the training log (the embedded broker holds
# it that long even when records come): a few fetches a second, each adding at most this to staleness.
FOLLOW_WAIT_MS = 250
FETCH_BYTES = 16 * 1024 * 1024


def new_epoch() -> str:
    """A learner run's epoch: ordered by start time, unique (``"<ms>-<random>"``).

    >>> a = new_epoch(); time.sleep(0.002); b = new_epoch()
    >>> a < b, len(a.split("-")[0])
    (True, 13)
    """
    return f"{int(time.time() * 1000):013d}-{os.urandom(3).hex()}"


def encode_delta(delta: dict[str, Any], meta: dict[str, Any], key: bytes) -> bytes:
    """A delta as a signed, compressed, data-only whole (the same container as a snapshot; the fastest
    compression: a delta is sent every second and read once)."""
    return dump(delta, meta, key, level=1)


def _consumer(settings: Settings) -> AIOKafkaConsumer:
    return aio_consumer(
        settings,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="none",  # a log shorter than what was read is an error, not a silent jump
        fetch_max_wait_ms=max(settings.fetch_wait_ms, FOLLOW_WAIT_MS),
        max_partition_fetch_bytes=FETCH_BYTES,
        fetch_max_bytes=FETCH_BYTES,
    )


async def _end(settings: Settings, consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
    return (await true_end_offsets(client_options(settings), await consumer.end_offsets([tp])))[tp]


async def _start_offset(consumer: AIOKafkaConsumer, tp: TopicPartition, end: int) -> int:
    """Where the newest snapshot starts, as the last record of the model topic says (every record
    names the offset of the newest snapshot its writer knew); 0 when it says nothing usable."""
    if end <= 0:
        return 0
    consumer.seek(tp, end - 1)
    record = await consumer.getone()
    try:
        at = part_header(record.value).get("snapshot_at")
    except CheckpointError:
        return 0
    return at if isinstance(at, int) and 0 <= at < end else 0


class Follower:
    """Keeps a :class:`ModelView` current from the model topic (every worker runs one).

    Parameters
    ----------
    settings
        Broker, topics, checkpoint key.
    view
        The model the posts are predicted with.
    """

    def __init__(self, settings: Settings, view: ModelView):
        self.settings = settings
        self.view = view
        self.key = settings.checkpoint_key.encode()
        self.tp = TopicPartition(settings.topic_model, 0)
        self.ready = asyncio.Event()  # set once the model topic is read up to its end at start
        self.staleness = Latency(recent=2000)  # label applied by the learner → applied here
        self.deltas = 0
        self.snapshots = 0
        self.refused = 0
        self.lost: str | None = None  # why the broker's data is gone, once noticed
        self._assembler = Reassembler()
        self._position = -1

    async def run(self) -> None:
        """Read the newest snapshot and the deltas after it, then follow the topic for ever."""
        consumer = _consumer(self.settings)
        await consumer.start()
        try:
            consumer.assign([self.tp])
            end_at_start = await _end(self.settings, consumer, self.tp)
            consumer.seek(self.tp, await _start_offset(consumer, self.tp, end_at_start))
            if end_at_start == 0:
                log.info("no model in %s yet: predicting with a fresh model", self.settings.topic_model)
                self.ready.set()
            while True:
                try:
                    batches = await consumer.getmany(self.tp, timeout_ms=200, max_records=500)
                except OffsetOutOfRangeError:
                    self._lost()
                    await asyncio.sleep(1.0)
                    continue
                for record in batches.get(self.tp, []):
                    self._position = record.offset
                    await self.take(record.value, record.offset)
                if not self.ready.is_set() and self._position + 1 >= end_at_start:
                    log.info(
                        "model caught up: version %d (training offset %d, epoch %s)",
                        self.view.figures()["model"]["version"],
                        self.view.offset,
                        self.view.epoch,
                    )
                    self.ready.set()
        finally:
            await consumer.stop()

    def _lost(self) -> None:
        if self.lost is None:
            self.lost = (
                f"the model topic {self.settings.topic_model} ends before offset {self._position + 1}, which this "
                f"worker read: the broker lost its data"
            )
            log.critical("%s", self.lost)

    async def take(self, value: bytes, offset: int = -1) -> None:
        """One record of the model topic: a part; the whole it completes is used."""
        try:
            whole = self._assembler.add(value)
        except CheckpointError as exc:
            self._refuse(offset, exc)
            return
        if whole is None:
            return
        try:
            hint = read_meta(whole)[0]
        except CheckpointError as exc:
            self._refuse(offset, exc)
            return
        kind, epoch = hint.get("kind"), hint.get("epoch")
        if not isinstance(epoch, str):
            self._refuse(offset, CheckpointError("model record without an epoch"))
            return
        view = self.view
        if kind == "snapshot":
            if view.epoch is not None and epoch <= view.epoch:
                return  # this epoch's deltas cover it (or a learner that lost the role wrote it)
            try:
                meta, state = await asyncio.to_thread(load, whole, self.key, CHECKPOINT_CLASSES, view.unread)
                view.load(state, epoch, meta.get("figures"))
            except (CheckpointError, ValueError, KeyError) as exc:
                self._refuse(offset, exc)
                return
            self.snapshots += 1
            log.info(
                "model snapshot loaded: version %s, training offset %s, epoch %s",
                meta.get("version"),
                meta.get("offset"),
                epoch,
            )
        elif kind == "delta" and epoch == view.epoch:
            try:
                # in a thread: decompressing (7 of the 9 ms that decoding a second of labels at 4,000
                # labels/s takes) and checking the signature release the GIL; the event loop goes on
                meta, delta = await asyncio.to_thread(load, whole, self.key)
                view.apply(delta, epoch)
            except (CheckpointError, ValueError, KeyError, TypeError) as exc:
                self._refuse(offset, exc)
                return
            self.deltas += 1
            first = meta.get("first_at")
            if self.ready.is_set() and isinstance(first, int):
                self.staleness.observe(max(0.0, time.time() - first / 1000))

    def _refuse(self, offset: int, exc: Exception) -> None:
        self.refused += 1
        log.error("refusing model record at %s offset %d: %s", self.settings.topic_model, offset, exc)

    def status(self) -> dict[str, Any]:
        """Staleness and counts, for the metrics snapshot."""
        return {
            "staleness_ms": self.staleness.quantiles(),
            "updates": {"snapshots": self.snapshots, "deltas": self.deltas, "refused": self.refused},
            "epoch": self.view.epoch,
        }


class LearnerRole:
    """The cluster's one learner, while this worker holds the role.

    Parameters
    ----------
    settings
        Broker, topics, key, intervals.
    stats
        The worker's counters (learned labels, duplicates, ...).
    on_event
        Called with each drift event (JSON), for the metrics topic.
    """

    def __init__(self, settings: Settings, stats: Stats, on_event: Callable[[bytes], Awaitable[None]]):
        self.settings = settings
        self.stats = stats
        self.on_event = on_event
        self.key = settings.checkpoint_key.encode()
        self.learner: Learner | None = None
        self.epoch: str | None = None
        self.snapshot_at = -1  # offset of the first part of the newest snapshot written
        self.bytes_sent = 0
        self.deltas_sent = 0
        self.snapshots_sent = 0
        self.caught_up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()  # of the current run: each start has its own
        self._producer: AIOKafkaProducer | None = None
        self._first_at: int | None = None  # when the oldest record not yet in a delta was applied
        self._uncheckpointable = False
        self.lost: str | None = None  # why the broker's data is gone, once noticed
        self.failures = 0
        self._written = -1  # the offset of the last model record this learner wrote
        self._snapshot_offset = -2  # the training offset of the last snapshot written

    @property
    def active(self) -> bool:
        """Whether this worker holds the role (a learner that is giving it up does not)."""
        return self._task is not None and not self._task.done() and not self._stop.is_set()

    def start(self) -> None:
        """Take the role (a no-op when it is held already). A run that is still giving the role up
        finishes first (its last snapshot), then the new one starts from the newest snapshot."""
        if self.active:
            return
        previous, self._stop = self._task, asyncio.Event()
        self.caught_up.clear()
        self._task = asyncio.ensure_future(self._supervise(self._stop, previous))

    async def stop(self, reason: str = "shutdown") -> None:
        """Give the role up: a last delta and a snapshot (10 s at most), then stop."""
        task = self._task
        if task is None or task.done() or self._stop.is_set():
            return
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=10.0)
        except (TimeoutError, Exception):  # a stop must not raise
            task.cancel()
        log.info("learner role given up (%s)", reason)

    async def _supervise(self, stop: asyncio.Event, previous: asyncio.Task[None] | None) -> None:
        """Run the learner until ``stop``; after a failure, start again from the newest snapshot (5 s
        later)."""
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        while not stop.is_set():
            try:
                await self._run(stop)
                return
            except OffsetOutOfRangeError:
                self.lost = (
                    f"the training log {self.settings.topic_training} ends before offset "
                    f"{(self.learner.offset if self.learner else -1) + 1}, which the learner applied: the broker lost "
                    f"its data"
                )
                log.critical("%s", self.lost)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failures += 1
                log.exception("the learner failed; it starts again from the newest snapshot in 5 s")
                await asyncio.sleep(5.0)

    async def _run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        self._producer = aio_producer(settings, max_request_size=settings.max_message_bytes, linger_ms=5)
        await self._producer.start()
        consumer = _consumer(settings)
        await consumer.start()
        try:
            from models.kernels import warm_up  # numba's compiled updates: the learner's alone

            await asyncio.to_thread(warm_up)
            learner = self.learner = Learner(settings, stats=self.stats)
            await self._restore(consumer, learner)
            tp = TopicPartition(settings.topic_training, 0)
            consumer.assign([tp])
            if learner.offset >= 0:
                consumer.seek(tp, learner.offset + 1)
            else:
                await consumer.seek_to_beginning(tp)
            end = await _end(settings, consumer, tp)
            started = time.monotonic()
            while learner.offset + 1 < end and not stop.is_set():
                await self._apply(await consumer.getmany(tp, timeout_ms=200, max_records=2000), tp, learner)
            self._new_epoch(learner)
            await self._snapshot(learner, "takeover")
            log.info(
                "learner role taken: version %d, training offset %d, caught up in %.1f s, epoch %s",
                learner.model.version,
                learner.offset,
                time.monotonic() - started,
                self.epoch,
            )
            self.caught_up.set()
            interval = settings.delta_interval
            next_delta = time.monotonic() + interval
            next_snapshot = time.monotonic() + settings.checkpoint_interval
            while not stop.is_set():
                wait_ms = max(1, int(1000 * (next_delta - time.monotonic())))
                batches = await consumer.getmany(tp, timeout_ms=min(200, wait_ms), max_records=2000)
                await self._apply(batches, tp, learner)
                now = time.monotonic()
                if now >= next_delta:
                    next_delta = now + interval
                    await self._delta(learner)
                if now >= next_snapshot:
                    next_snapshot = now + settings.checkpoint_interval
                    if learner.offset != self._snapshot_offset:
                        await self._snapshot(learner, "periodic")
                    else:  # nothing learned since: the last snapshot stands, a small mark says the learner lives
                        await self._send(dump({}, {"kind": "mark", "epoch": self.epoch}, self.key), "mark")
            await self._delta(learner)
            await self._snapshot(learner, "shutdown")
        finally:
            await consumer.stop()
            await self._producer.stop()
            self._producer = None

    async def _restore(self, consumer: AIOKafkaConsumer, learner: Learner) -> None:
        """The newest snapshot that verifies (the highest training offset) into ``learner``."""
        tp = TopicPartition(self.settings.topic_model, 0)
        consumer.assign([tp])
        end = await _end(self.settings, consumer, tp)
        start = await _start_offset(consumer, tp, end)
        consumer.seek(tp, start)
        assembler, best, position, first = Reassembler(), None, start - 1, -1
        while position + 1 < end:
            for record in (await consumer.getmany(tp, timeout_ms=500, max_records=200)).get(tp, []):
                position = record.offset
                try:
                    if part_header(record.value)["part"] == 0:
                        first = record.offset
                    whole = assembler.add(record.value)
                    if whole is None or read_meta(whole)[0].get("kind") != "snapshot":
                        continue
                    meta, state = await asyncio.to_thread(load, whole, self.key, CHECKPOINT_CLASSES)
                except CheckpointError as exc:
                    log.error("refusing model record at %s offset %d: %s", tp.topic, record.offset, exc)
                    continue
                if best is None or meta.get("offset", -1) >= best[0].get("offset", -1):
                    best = (meta, state)
                    self.snapshot_at = first
        if best is None:
            log.info("no snapshot in %s: learning from the training log's beginning", tp.topic)
            return
        try:
            learner.restore(best[1])
        except ValueError as exc:
            log.error(
                "cannot use the snapshot of version %s: %s; learning from the training log's beginning",
                best[0].get("version"),
                exc,
            )
            return
        log.info("learner restored: version %s, training offset %s", best[0].get("version"), best[0].get("offset"))

    async def _apply(self, batches: dict[TopicPartition, list[Any]], tp: TopicPartition, learner: Learner) -> None:
        records = batches.get(tp, [])
        for start in range(0, len(records), APPLY_SLICE):
            for record in records[start : start + APPLY_SLICE]:
                event = learner.apply(record.offset, record.value, record.timestamp)
                if event is not None:
                    await self.on_event(event)
            if self._first_at is None:
                self._first_at = int(time.time() * 1000)
            await asyncio.sleep(0)

    async def _send(self, blob: bytes, kind: str) -> int:
        """Send ``blob`` in parts; the offset of the first part."""
        assert self._producer is not None
        hint = {"kind": kind, "epoch": self.epoch, "snapshot_at": self.snapshot_at}
        parts = split(blob, self.settings.max_message_bytes - RECORD_OVERHEAD, hint)
        first = -1
        for part in parts:
            meta = await self._producer.send_and_wait(self.settings.topic_model, part, key=kind.encode(), partition=0)
            first = meta.offset if first < 0 else first
            self.bytes_sent += len(part)
            if meta.offset <= self._written and self.lost is None:
                self.lost = (
                    f"the model topic {self.settings.topic_model} took a record at offset {meta.offset}, after this "
                    f"learner wrote offset {self._written}: the broker lost its data"
                )
                log.critical("%s", self.lost)
            self._written = meta.offset
        return first

    def _new_epoch(self, learner: Learner) -> None:
        """Start an epoch: its snapshot holds everything learned so far, its deltas what comes after."""
        self.epoch = new_epoch()
        learner.track()
        self._first_at = None

    async def _delta(self, learner: Learner) -> None:
        if self._first_at is None:
            return  # nothing learned since the last delta
        delta = learner.take_delta()
        if delta is None:  # the model was replaced after a drift: a snapshot of a new epoch
            self._new_epoch(learner)
            await self._snapshot(learner, "drift")
            return
        now = int(time.time() * 1000)
        meta = {
            "kind": "delta",
            "epoch": self.epoch,
            "offset": learner.offset,
            "version": learner.model.version,
            "first_at": self._first_at,
            "taken_at": now,
        }
        self._first_at = None
        await self._send(encode_delta(delta, meta, self.key), "delta")
        self.deltas_sent += 1

    async def _snapshot(self, learner: Learner, reason: str) -> None:
        meta = {
            **learner.metadata(),
            "kind": "snapshot",
            "epoch": self.epoch,
            "reason": reason,
            "written_at": int(time.time() * 1000),
            "figures": learner.figures(),
        }
        try:
            # encoded, compressed and signed in a thread; learning waits for it (this task applies it)
            blob = await asyncio.to_thread(dump, learner.state(), meta, self.key, CHECKPOINT_CLASSES)
        except CheckpointError as exc:
            if not self._uncheckpointable:
                log.warning("%s: the predictors cannot follow this model", exc)
                self._uncheckpointable = True
            return
        # a replica skips a snapshot of the epoch it follows: what was learned since the last delta
        # still goes out in the next delta (``_first_at`` stays), or the replicas would never see it
        self._snapshot_offset = learner.offset
        self.snapshot_at = await self._send(blob, "snapshot")
        self.snapshots_sent += 1
        log.info(
            "snapshot (%s): version %d, training offset %d, %.1f MB, epoch %s",
            reason,
            meta["version"],
            meta["offset"],
            len(blob) / 1e6,
            self.epoch,
        )

    def status(self) -> dict[str, Any]:
        """What the learner did, for the metrics snapshot (only the role holder has one)."""
        return {
            "active": self.active,
            "epoch": self.epoch,
            "bytes_sent": self.bytes_sent,
            "deltas_sent": self.deltas_sent,
            "snapshots_sent": self.snapshots_sent,
            "version": self.learner.model.version if self.learner is not None else None,
            "training_offset": self.learner.offset if self.learner is not None else None,
        }
