"""The Faust agents: thin loops that hand batches to the :class:`~stream.processor.Processor`
and publish what it returns. All logic lives in plain, tested code; nothing here holds state.
"""
from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any, Awaitable, Iterator, MutableMapping, Sequence

import faust
import orjson

from stream.audience import Aggregator, AudienceOutputs
from stream.live import History, page_html
from stream.privacy import erased_token
from stream.processor import Message, Outputs, Processor
from stream.profiles import ProfileBook
from stream.replica import Replica
from stream.rules import Rule
from stream.settings import Settings
from stream.spikes import SpikeParams
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

    async def send(self, topic: faust.TopicT, records: Sequence[tuple[bytes | None, bytes | None]],
                   partition: int | None = None) -> None:
        send = self.app.producer.send
        name = topic.get_topic_name()
        for key, value in records:
            fut = await send(name, key, value, partition, None, None)
            fut.add_done_callback(self._delivered)

    async def audience(self, out: AudienceOutputs) -> None:
        audience = [(w["segment"].encode(), orjson.dumps(w)) for w in out.windows]
        audience += [(s["segment"].encode(), orjson.dumps(s)) for s in out.spikes]
        await self.send(self.topics.audience, audience)
        await self.send(self.topics.triggers, [(t["id"].encode(), orjson.dumps(t)) for t in out.triggers])

    async def outputs(self, out: Outputs) -> None:
        await self.send(self.topics.predictions, out.predictions)
        await self.send(self.topics.dlq, out.dead_letters)
        # the training log has one order: partition 0, whatever the topic's partition count
        await self.send(self.topics.training, out.training, partition=0)
        await self.send(self.topics.metrics, [(None, e) for e in out.events])
        for partition, value in out.partials:
            await self.send(self.topics.partials, [(b"partials", value)], partition=partition)
        for partition, value in out.profile_updates:
            await self.send(self.topics.profile_updates, [(b"users", value)], partition=partition)


class BufferedTable(MutableMapping[str, Any]):
    """A Faust table written in bulk.

    Changes go to the table's store at once and to its changelog when :meth:`flush` is called,
    through the same producer as every output (the last value of each key only). Faust's own
    per-change path queues every change in a buffer that stalls the stream once more than 100 wait,
    which an agent that updates hundreds of segments or users per event hits all the time.
    Recovery is Faust's: the changelog records are the same (JSON key and value, ``None`` deletes).
    """

    def __init__(self, table: Any):
        self.table = table
        self.pending: dict[str, Any] = {}

    @property
    def store(self) -> Any:
        return self.table.data  # Faust's store (created on first use)

    def __getitem__(self, key: str) -> Any:
        return self.store[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.store[key] = value
        self.pending[key] = value

    def __delitem__(self, key: str) -> None:
        del self.store[key]
        self.pending[key] = None

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.store.keys()))

    def __len__(self) -> int:
        return len(self.store)

    async def flush(self, publisher: "Publisher", partition: int) -> None:
        """Send the changes since the last flush to the changelog partition of the event's partition."""
        if self.pending:
            records = [(orjson.dumps(k), None if v is None else orjson.dumps(v)) for k, v in self.pending.items()]
            self.pending = {}
            await publisher.send(self.table.changelog_topic, records, partition=partition)


def assignment_state(app: faust.App) -> dict[str, Any]:
    """Whether the worker consumes: partitions assigned and no rebalance under way."""
    try:
        assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in app.consumer.assignment())
    except Exception:  # the consumer is not started yet
        assigned = []
    return {"ready": bool(assigned) and not app.rebalancing, "rebalancing": app.rebalancing,
            "leader": app.is_leader(), "assigned": assigned}


def register_agents(app: faust.App, settings: Settings, topics: Topics, processor: Processor,
                    history: History, rules: Sequence[Rule] = ()) -> Replica:
    """Attach the stream's agents, tables, timers and web pages to ``app``; returns the model replica."""
    publisher = Publisher(app, topics, processor)

    async def publish_event(event: bytes) -> None:
        await publisher.send(topics.metrics, [(None, event)])

    replica = Replica(settings, processor.learner, publish_event)

    @app.task
    async def loop_lag() -> None:
        await processor.stats.loop.watch()

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
        # Everything built so far (the app, Faust, the models, the replayed state) lives as long as the
        # worker: keep it out of the garbage collector's full passes, which scanned it for 20-95 ms
        # every few seconds (measured) and were most of the event loop's stalls.
        gc.freeze()
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within):
            for i in range(0, len(events), SLICE):
                batch = [to_message(e) for e in events[i:i + SLICE]]
                await publisher.outputs(processor.process_posts(batch))
                await asyncio.sleep(0)  # sending does not suspend: let the other tasks run

    def send_aggregates() -> Awaitable[None]:
        """Drain the posts' partial aggregates and profile updates now; send them when awaited.
        Sent on a timer, and before every offset commit (``InterestApp.before_commit``), so that
        small batches of predictions do not each cost the aggregating agents a round of records."""
        return publisher.outputs(processor.drain_aggregates())

    app.before_commit = send_aggregates  # type: ignore[attr-defined]

    @app.timer(settings.aggregate_interval, name="aggregates")
    async def aggregates() -> None:
        await send_aggregates()

    @app.agent(topics.feedback, name="feedback")
    async def feedback(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within):
            await publisher.outputs(processor.process_feedback([to_message(e) for e in events]))

    audience_table = BufferedTable(app.Table("audience", default=None, partitions=settings.partitions))
    aggregator = Aggregator(audience_table, processor.window_spec,
                            SpikeParams(baseline=settings.spike_history, threshold=settings.spike_threshold,
                                        min_history=min(10, settings.spike_history)),
                            rules, processor.stats, settings.window_min_hashtag_volume)

    @app.agent(topics.partials, name="audience")
    async def audience(stream: faust.StreamT) -> None:
        async for event in stream.events():  # one event: a batch's partials for this partition
            m, record = event.message, orjson.loads(event.value)
            out = aggregator.on_partials(m.partition, m.offset, record["segments"], record["max_ts"])
            await audience_table.flush(publisher, m.partition)
            await publisher.audience(out)
            history.record_audience(out)

    @app.on_partitions_revoked.connect
    async def forget_revoked(app: faust.App, revoked: Any, **kwargs: Any) -> None:
        name = topics.partials.get_topic_name()
        aggregator.forget({tp.partition for tp in revoked if tp.topic == name})

    @app.agent(topics.erasure, name="erasure")
    async def erasure(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within):
            await publisher.outputs(processor.process_erasures([to_message(e) for e in events]))

    profile_table = BufferedTable(app.Table("profiles", default=None, partitions=settings.partitions))
    book = ProfileBook(profile_table, settings.profile_half_life, settings.profile_top_k,
                       is_erased=lambda user: erased_token(user) in processor.learner.erased,
                       counts=processor.stats.outcomes)

    @app.agent(topics.profile_updates, name="profiles")
    async def profiles(stream: faust.StreamT) -> None:
        await replica.ready.wait()  # erasures are known once the training log is caught up
        async for event in stream.events():  # one event: a batch's updates for this partition's users
            published = book.apply_batch(orjson.loads(event.value)["users"], event.message.offset)
            await profile_table.flush(publisher, event.message.partition)
            await publisher.send(topics.profiles, published)

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
