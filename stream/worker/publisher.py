"""Hands the records of a batch to the worker's producer, without awaiting each delivery."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import faust
import orjson

from stream.audience.aggregator import AudienceOutputs
from stream.pipeline.processor import Outputs
from stream.stats import Stats
from stream.worker.topics import Topics

log = logging.getLogger(__name__)

Records = Sequence[tuple[bytes | None, bytes | None]]


class Publisher:
    """Sends records through the app's producer.

    Faust flushes the producer before it commits input offsets, so a record is delivered before
    the post that caused it is marked consumed: at-least-once. A failed delivery is counted as
    ``publish_errors`` and logged.
    """

    def __init__(self, app: faust.App, topics: Topics, stats: Stats):
        self.app = app
        self.topics = topics
        self.stats = stats

    def _delivered(self, fut: asyncio.Future) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            self.stats.outcomes["publish_errors"] += 1
            log.error("could not publish a record: %r", fut.exception())

    async def send(self, topic: faust.TopicT, records: Records, partition: int | None = None) -> None:
        send = self.app.producer.send
        name = topic.get_topic_name()
        for key, value in records:
            fut = await send(name, key, value, partition, None, None)
            fut.add_done_callback(self._delivered)  # type: ignore[attr-defined]  # a Future, typed Awaitable

    async def audience(self, out: AudienceOutputs) -> None:
        """Closed windows and spikes (keyed by segment) and fired triggers (keyed by trigger id)."""
        audience = [(w["segment"].encode(), orjson.dumps(w)) for w in out.windows]
        audience += [(s["segment"].encode(), orjson.dumps(s)) for s in out.spikes]
        await self.send(self.topics.audience, audience)
        await self.send(self.topics.triggers, [(t["id"].encode(), orjson.dumps(t)) for t in out.triggers])

    async def outputs(self, out: Outputs) -> None:
        """Everything a batch of the processor produced."""
        await self.send(self.topics.predictions, out.predictions)
        await self.send(self.topics.dlq, out.dead_letters)
        # the training log has one order: partition 0, whatever the topic's partition count
        await self.send(self.topics.training, out.training, partition=0)
        await self.send(self.topics.metrics, [(None, e) for e in out.events])
        for partition, value in out.partials:
            await self.send(self.topics.partials, [(b"partials", value)], partition=partition)
        for partition, value in out.profile_updates:
            await self.send(self.topics.profile_updates, [(b"users", value)], partition=partition)
