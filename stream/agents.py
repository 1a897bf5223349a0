"""The Faust agents: thin loops that hand batches to the :class:`~stream.processor.Processor`
and publish what it returns. All logic lives in plain, tested code; nothing here holds state.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Sequence

import faust
import orjson

from stream.live import History, page_html
from stream.processor import Message, Outputs, Processor
from stream.replica import Replica
from stream.settings import Settings
from stream.topics import Topics

log = logging.getLogger(__name__)

SLICE = 32  # events processed between two yields to the event loop


def to_message(event: Any) -> Message:
    """The raw record of a Faust event."""
    m = event.message
    ts = getattr(m, "timestamp", None)
    return Message(m.value, m.key, m.topic, m.partition, m.offset, int(ts * 1000) if ts else None)


class Publisher:
    """Hands records to the app's producer without awaiting each delivery.

    Faust flushes the producer before it commits input offsets, so a record is delivered before
    the post that caused it is marked consumed: at-least-once.
    """

    def __init__(self, app: faust.App, topics: Topics, processor: Processor):
        self.app = app
        self.topics = topics
        self.stats = processor.stats

    def _delivered(self, fut: asyncio.Future) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            self.stats.outcomes["publish_errors"] += 1
            log.error("could not publish a record: %r", fut.exception())

    async def send(self, topic: faust.TopicT, records: Sequence[tuple[bytes | None, bytes]],
                   partition: int | None = None) -> None:
        send = self.app.producer.send
        name = topic.get_topic_name()
        for key, value in records:
            fut = await send(name, key, value, partition, None, None)
            fut.add_done_callback(self._delivered)

    async def outputs(self, out: Outputs) -> None:
        await self.send(self.topics.predictions, out.predictions)
        await self.send(self.topics.dlq, out.dead_letters)
        # the training log has one order: partition 0, whatever the topic's partition count
        await self.send(self.topics.training, out.training, partition=0)
        await self.send(self.topics.metrics, [(None, e) for e in out.events])


def assignment_state(app: faust.App) -> dict[str, Any]:
    """Whether the worker consumes: partitions assigned and no rebalance under way."""
    try:
        assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in app.consumer.assignment())
    except Exception:  # the consumer is not started yet
        assigned = []
    return {"ready": bool(assigned) and not app.rebalancing, "rebalancing": app.rebalancing,
            "leader": app.is_leader(), "assigned": assigned}


def register_agents(app: faust.App, settings: Settings, topics: Topics, processor: Processor,
                    history: History) -> Replica:
    """Attach the stream's agents, timers and web pages to ``app``; returns the model replica."""
    publisher = Publisher(app, topics, processor)

    async def publish_event(event: bytes) -> None:
        await publisher.send(topics.metrics, [(None, event)])

    replica = Replica(settings, processor.learner, publish_event)

    @app.task
    async def model_replica() -> None:
        for topic in topics.outputs:
            await topic.maybe_declare()
        await replica.run()

    @app.timer(settings.checkpoint_interval, on_leader=True, name="checkpoint")
    async def checkpoint() -> None:
        if replica.ready.is_set():
            await replica.checkpoint("periodic")

    @app.on_before_shutdown.connect
    async def last_checkpoint(app: faust.App, **kwargs: Any) -> None:
        if replica.ready.is_set():
            await replica.close()

    @app.agent(topics.posts, name="posts")
    async def posts(stream: faust.StreamT) -> None:
        await replica.ready.wait()  # predict with the checkpointed model, never from scratch
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within):
            for i in range(0, len(events), SLICE):
                batch = [to_message(e) for e in events[i:i + SLICE]]
                await publisher.outputs(processor.process_posts(batch))

    @app.agent(topics.feedback, name="feedback")
    async def feedback(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within):
            await publisher.outputs(processor.process_feedback([to_message(e) for e in events]))

    @app.timer(settings.metrics_interval, name="metrics")
    async def metrics() -> None:
        snapshot = processor.snapshot()
        snapshot["model"].update(replica.status())
        history.record(snapshot)
        await publisher.send(topics.metrics, [(None, orjson.dumps(snapshot))])

    @app.page("/live")
    async def live(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.html(page_html())

    @app.page("/api/live")
    async def live_data(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.bytes(orjson.dumps(history.view()), content_type="application/json")

    @app.page("/ready")
    async def ready(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        """200 once this worker consumes its partitions (not rebalancing), else 503."""
        state = {**assignment_state(app), "model_ready": replica.ready.is_set()}
        state["ready"] = state["ready"] and state["model_ready"]
        return web.json(state, status=200 if state["ready"] else 503)

    return replica
