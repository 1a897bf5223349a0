"""Keeps a worker's model in step with the training log, and checkpoints it.

Every worker runs one :class:`Replica`: it loads the newest valid checkpoint from the model topic,
then reads the one-partition training topic from the checkpoint's offset on (no consumer group:
every worker reads all of it) and applies each record to its :class:`~stream.pipeline.learner.Learner`.
The same log in the same order gives the same model everywhere; a worker's staleness is how far it
trails the end of the log (``stream_training_record_age_seconds``). The Faust leader writes a signed
checkpoint every ``STREAM_CHECKPOINT_INTERVAL`` seconds, and every worker writes one when it stops
cleanly. A checkpoint that fails its signature is refused with a log line and the previous one is used.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import OffsetOutOfRangeError

from models.persistence import CheckpointError, dump, load, read_meta
from stream.pipeline.learner import CHECKPOINT_CLASSES, Learner
from stream.settings import Settings
from stream.stats import Latency
from stream.worker.transport import true_end_offsets

log = logging.getLogger(__name__)

CHECKPOINTS_SCANNED = 10  # newest records of the model topic considered at start
APPLY_SLICE = 64  # records applied between two yields to the event loop (~10-20 ms of learning)
MAX_CHECKPOINT_BYTES = 100 * 1024 * 1024


class Replica:
    """The training-log consumer and checkpoint writer of one worker."""

    def __init__(self, settings: Settings, learner: Learner, on_event: Callable[[bytes], Awaitable[None]]):
        self.settings = settings
        self.learner = learner
        self.on_event = on_event
        self.key = settings.checkpoint_key.encode()
        self.ready = asyncio.Event()  # set once the checkpoint is loaded and the log read up to its end
        self.checkpoints_written = 0
        self.checkpoints_refused = 0
        self.staleness = Latency(recent=2000)  # training record written → applied here
        self._producer: AIOKafkaProducer | None = None
        self._uncheckpointable = False  # the model cannot be checkpointed (logged once)
        self.lost: str | None = None  # why the broker's data is gone, once noticed
        # Held while records are applied and while a checkpoint is taken: a checkpoint pickles the
        # live state in another thread, so learning waits (predictions go on: they only read it).
        self._learning = asyncio.Lock()

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="none",  # a log shorter than what was read is an error, not a silent jump
            fetch_max_wait_ms=self.settings.fetch_wait_ms,
            max_partition_fetch_bytes=MAX_CHECKPOINT_BYTES,
            fetch_max_bytes=MAX_CHECKPOINT_BYTES,
        )

    async def load_checkpoint(self) -> dict | None:
        """Restore the newest valid checkpoint (the highest offset among the last few records)."""
        consumer = self._consumer()
        await consumer.start()
        try:
            tp = TopicPartition(self.settings.topic_model, 0)
            consumer.assign([tp])
            end = (await true_end_offsets(self.settings.bootstrap_servers, await consumer.end_offsets([tp])))[tp]
            best: tuple[dict, object] | None = None
            for offset in range(end - 1, max(-1, end - 1 - CHECKPOINTS_SCANNED), -1):
                consumer.seek(tp, offset)
                record = await consumer.getone()
                try:
                    meta, state = load(record.value, self.key, CHECKPOINT_CLASSES)
                except CheckpointError as exc:
                    self.checkpoints_refused += 1
                    try:
                        claimed = read_meta(record.value)[0].get("version")
                    except CheckpointError:
                        claimed = None
                    log.error(
                        "refusing checkpoint at %s offset %d (claims version %s): %s",
                        self.settings.topic_model,
                        offset,
                        claimed,
                        exc,
                    )
                    continue
                if best is None or meta["offset"] > best[0]["offset"]:
                    best = (meta, state)
            if best is None:
                log.info(
                    "no checkpoint in %s: the model starts from the training log's beginning", self.settings.topic_model
                )
                return None
            meta, state = best
            try:
                self.learner.restore(state)  # type: ignore[arg-type]
            except ValueError as exc:
                self.checkpoints_refused += 1
                log.error(
                    "cannot use the checkpoint of version %s: %s; the model starts from the training log's beginning",
                    meta.get("version"),
                    exc,
                )
                return None
            log.info(
                "loaded checkpoint: version %s, training offset %s, macro-F1 %.4f",
                meta["version"],
                meta["offset"],
                meta["macro_f1"],
            )
            return meta
        finally:
            await consumer.stop()

    async def run(self) -> None:
        """Load the checkpoint, then follow the training log for ever."""
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers, max_request_size=MAX_CHECKPOINT_BYTES, linger_ms=5
        )
        await self._producer.start()
        await self.load_checkpoint()
        consumer = self._consumer()
        await consumer.start()
        tp = TopicPartition(self.settings.topic_training, 0)
        consumer.assign([tp])
        if self.learner.offset >= 0:
            consumer.seek(tp, self.learner.offset + 1)
        else:
            await consumer.seek_to_beginning(tp)
        end_at_start = (await true_end_offsets(self.settings.bootstrap_servers, await consumer.end_offsets([tp])))[tp]
        if self.learner.offset + 1 >= end_at_start:
            self.ready.set()
        try:
            while True:
                try:
                    batches = await consumer.getmany(tp, timeout_ms=200, max_records=2000)
                except OffsetOutOfRangeError:
                    await self._log_shorter(consumer, tp)
                    continue
                records = batches.get(tp, [])
                if records and self.ready.is_set():
                    self.staleness.observe(max(0.0, time.time() - records[-1].timestamp / 1000))
                for start in range(0, len(records), APPLY_SLICE):
                    async with self._learning:
                        for record in records[start : start + APPLY_SLICE]:
                            event = self.learner.apply(record.offset, record.value, record.timestamp)
                            if event is not None:
                                await self.on_event(event)
                    await asyncio.sleep(0)
                if not self.ready.is_set() and self.learner.offset + 1 >= end_at_start:
                    log.info("model caught up with the training log at offset %d", self.learner.offset)
                    self.ready.set()
        finally:
            await consumer.stop()

    async def _log_shorter(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
        """The training log ends before the offset the replica reads next. Before the model is ready, the
        checkpoint is ahead of the log (the topic was deleted or lost): the model is rebuilt from the log's
        beginning. Once it is ready, the broker lost its data (a memory-only broker restarted): the
        worker's positions on every topic are meaningless and it must restart (``lost``, read by the
        delivery watchdog, which exits)."""
        if not self.ready.is_set():
            log.error(
                "the checkpoint (training offset %d) is ahead of the training log %s: the model starts from the "
                "log's beginning",
                self.learner.offset,
                self.settings.topic_training,
            )
            self.learner.reset()
            await consumer.seek_to_beginning(tp)
            return
        if self.lost is None:
            self.lost = (
                f"the training log {self.settings.topic_training} ends before offset {self.learner.offset + 1}, "
                f"which this worker reads next: the broker lost its data"
            )
            log.critical("%s", self.lost)
        await asyncio.sleep(1.0)

    def status(self) -> dict[str, object]:
        """Staleness and checkpoint counts, for the metrics snapshot."""
        return {
            "staleness_ms": self.staleness.quantiles(),
            "checkpoints": {"written": self.checkpoints_written, "refused": self.checkpoints_refused},
        }

    async def checkpoint(self, reason: str) -> None:
        """Write a signed checkpoint of the learner's state to the model topic."""
        if self._producer is None or self.learner.offset < 0:
            return
        async with self._learning:  # the state does not change while another thread pickles it
            meta = {**self.learner.metadata(), "written_at": int(time.time() * 1000), "reason": reason}
            # encoded, compressed and signed in a thread (on the event loop it took 60-190 ms)
            try:
                blob = await asyncio.to_thread(dump, self.learner.state(), meta, self.key, CHECKPOINT_CLASSES)
            except CheckpointError as exc:
                if not self._uncheckpointable:
                    log.warning("%s: a restarted worker rebuilds the model from the training log", exc)
                    self._uncheckpointable = True
                return
        await self._producer.send_and_wait(self.settings.topic_model, blob, key=b"checkpoint", partition=0)
        self.checkpoints_written += 1
        log.info(
            "checkpoint (%s): version %d, training offset %d, %.1f MB",
            reason,
            meta["version"],
            meta["offset"],
            len(blob) / 1e6,
        )

    async def close(self) -> None:
        """Write a last checkpoint and stop the producer (clean shutdown)."""
        try:
            await self.checkpoint("shutdown")
        finally:
            if self._producer is not None:
                await self._producer.stop()
                self._producer = None
