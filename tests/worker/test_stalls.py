"""The stall watchdog: a partition the worker holds, with records it does not read, is fetched again
from its read offset, through Faust's own consumer and fetch loop."""

import asyncio
import contextlib
import gc
import logging
from types import SimpleNamespace
from typing import Any, cast

from aiokafka.consumer.subscription_state import TopicPartitionState
from aiokafka.structs import ConsumerRecord
from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from prometheus_client import CollectorRegistry

from stream.settings import Settings
from stream.stats import Stats
from stream.worker.app import make_app
from stream.worker.stalls import StallWatch
from stream.worker.tasks import restart_stalled

POSTS, OTHER, NEVER, MARKED = TP("posts", 0), TP("other", 0), TP("posts", 1), TP("posts", 2)


async def _app():
    from stream.worker.topics import batched_topic

    settings = Settings(broker="127.0.0.1:9", app_id="test-stalls")
    app = make_app(settings, CollectorRegistry())
    app.topics.add(batched_topic(app, settings, "posts"))
    app.topics.add(app.topic("other", value_serializer="raw"))
    table = app.Table("counts", default=int)
    await cast(Any, app.topics)._update_indices()  # what Faust does before subscribing: acks enabled
    return app, TP(table.changelog_topic.get_topic_name(), 0)


def _state(position):
    """aiokafka's state of a partition (``TopicPartitionState``) at ``position`` (None: awaiting a reset)."""
    state = TopicPartitionState(assignment=None)
    if position is not None:
        state.reset_to(position)
    return state


class FakeThread:
    """The consumer thread's side: the broker's first and end offsets, the client's positions and its
    seeks, made by Faust's own ``_seek_wait``."""

    def __init__(self, consumer, ends, starts, positions):
        self.consumer, self.app, self.log = consumer, consumer.app, consumer.log
        self.ends, self.starts, self.seeks = ends, starts, []
        states = {tp: _state(p) for tp, p in positions.items()}
        assignment = SimpleNamespace(state_value=states.get)
        subscriptions = SimpleNamespace(subscription=SimpleNamespace(assignment=assignment))
        self._consumer = SimpleNamespace(_fetcher=SimpleNamespace(_subscriptions=subscriptions, _records={}))

    async def reported_end_offsets(self, partitions):
        return {tp: self.ends[tp] for tp in partitions if tp in self.ends}

    async def earliest_offsets(self, *partitions):
        return {tp: self.starts[tp] for tp in partitions}

    async def seek_wait(self, partitions):  # Faust's, in the client's thread: here, the test's loop
        async def position(tp):
            return partitions[tp]

        client = SimpleNamespace(seek=lambda tp, offset: self.seeks.append((tp, offset)), position=position)
        await driver.AIOKafkaConsumerThread._seek_wait(cast(Any, self), client, partitions)


def test_a_partition_faust_no_longer_fetches_is_fetched_again_from_its_read_offset_and_nothing_is_skipped():
    asyncio.run(_a_stalled_partition_fetched_again())


async def _a_stalled_partition_fetched_again():  # in one event loop: Faust's app binds its events to it
    app, changelog = await _app()
    consumer: Any = app.consumer
    ends = {OTHER: 100, POSTS: 35, NEVER: 9, MARKED: 20, changelog: 500}
    # the client's positions, the offsets it hands Faust next: none yet of OTHER (awaiting a reset) and NEVER
    positions = {POSTS: 30, MARKED: 20, OTHER: None}
    consumer._thread = thread = FakeThread(consumer, ends, {NEVER: 5}, positions)
    consumer.assignment = lambda: {OTHER, POSTS, NEVER, MARKED, changelog}
    consumer._active_partitions = {POSTS}  # OTHER was left out of the fetches: it is paused and held back
    consumer._paused_partitions, consumer._buffered_partitions = {OTHER}, {OTHER}
    consumer._read_offset.update({OTHER: 40, POSTS: 29, MARKED: 17})  # 18, 19: a transaction's markers

    # without the client's position: one past Faust's read offset, or with nothing committed nor read, the
    # partition's first offset (records before it deleted); no changelog: Faust's recovery reads those
    assert await consumer.input_positions(timeout=1) == {
        OTHER: (41, 100),
        POSTS: (30, 35),
        NEVER: (5, 9),
        MARKED: (20, 20),
    }
    assert "active=False paused=True buffered=True read=40 committed=None; client: position=None" in (
        consumer.fetch_state(OTHER)
    )
    assert "the client holds no state of it" in consumer.fetch_state(NEVER)
    assert "client: position=30 highwater=None paused=False fetched_undelivered=False" in consumer.fetch_state(POSTS)

    assert [await consumer.restart_fetch(tp) for tp in (OTHER, NEVER, POSTS)] == [40, 5, 29]
    assert thread.seeks == [(OTHER, 40), (NEVER, 5), (POSTS, 29)]
    assert {OTHER, POSTS} <= consumer._get_active_partitions()
    assert OTHER not in consumer._paused_partitions and OTHER not in consumer._buffered_partitions

    # Faust's fetch loop hands on the records from the read offset: nothing skipped, the first one again
    def records(tp, offsets):
        return [ConsumerRecord(tp.topic, tp.partition, o, 0, 0, None, b"v", None, 1, 0, ()) for o in offsets]

    fetches = [{OTHER: records(OTHER, (40, 41, 42)), POSTS: records(POSTS, (29, 30, 31))}]
    fetcher = SimpleNamespace(_stopped=asyncio.Event())

    async def getmany(active_partitions, timeout):
        if not fetches:
            fetcher._stopped.set()
            return {}
        assert {OTHER, POSTS} <= active_partitions
        return fetches.pop(0)

    delivered = []

    async def on_message(message):
        delivered.append((message.topic, getattr(message, "first_offset", None), message.offset))

    consumer._getmany, consumer.highwater, consumer.callback = getmany, lambda tp: 100, on_message
    app.flow_control.resume()  # as at the end of a rebalance: the watchdog runs only then
    await asyncio.wait_for(consumer._drain_messages(fetcher), 10)
    assert sorted(delivered) == [("other", None, 40), ("other", None, 41), ("other", None, 42), ("posts", 29, 31)]


class FakeConsumer:
    def __init__(self, positions):
        self.positions, self.flow_active, self.restarts, self.fails = positions, True, [], False
        self.fetched_at: float | None = None

    def assignment(self):
        return set(self.positions)

    async def input_positions(self, timeout):
        return dict(self.positions)

    def fetch_state(self, tp):
        return "active=False"

    async def restart_fetch(self, tp):
        if self.fails:
            raise RuntimeError("the broker did not answer")
        self.restarts.append(tp)
        return self.positions[tp][0] - 1


def _watchdog(positions):
    consumer = FakeConsumer(positions)
    app = SimpleNamespace(consumer=consumer, rebalancing=False, in_recovery=False, consumer_generation_id=1)
    watch: StallWatch[TP] = StallWatch(30.0)
    stats = Stats()

    def check(now, reading=True, waiting=False):
        consumer.fetched_at = now - (10.0 if waiting else 1.0)  # when Faust's fetch loop last asked for records
        return asyncio.run(restart_stalled(app, watch, stats, now, 1.0, reading=reading))

    return app, consumer, stats, check


def test_the_watchdog_restarts_only_what_stalled_counts_it_and_says_so(caplog):
    _, consumer, stats, check = _watchdog({POSTS: (500, 951), OTHER: (10, 12)})
    assert check(0.0) == []
    consumer.positions[OTHER] = (12, 12)  # read on
    assert check(29.0) == []
    with caplog.at_level(logging.ERROR, logger="stream.worker.tasks"):
        assert check(30.0) == [POSTS]
    assert consumer.restarts == [POSTS] and stats.outcomes["input_partitions_restarted"] == 1
    assert "posts[0]: 451 offsets left to read from offset 500, and none read for 30 s" in caplog.text
    assert "fetching it again from offset 499 (active=False)" in caplog.text
    consumer.positions[POSTS] = (951, 951)  # read on since
    assert check(70.0) == [] and stats.outcomes["input_partitions_restarted"] == 1


def test_a_worker_that_does_not_read_as_a_whole_is_not_watched_meanwhile(caplog):
    app, consumer, stats, check = _watchdog({POSTS: (500, 951)})
    assert check(0.0) == []
    assert check(31.0, reading=False) == []  # its agents wait for the model replica, or for deliveries
    assert check(32.0) == []  # and the partition starts over
    assert check(63.0, waiting=True) == []  # Faust's fetch loop waits: an agent's queue or the producer is full
    assert check(64.0) == []
    app.rebalancing = True  # Faust seeks every partition itself then
    assert check(95.0) == []
    app.rebalancing = False
    assert check(96.0) == []
    app.consumer_generation_id = 2  # a rebalance came and went between two checks
    assert check(127.0) == []
    assert consumer.restarts == [] and check(157.0) == [POSTS]
    consumer.fails = True  # revoked meanwhile, or the broker did not answer: said, not counted, no crash
    with caplog.at_level(logging.WARNING, logger="stream.worker.tasks"):
        assert check(187.0) == []
    assert "posts[0] could not be fetched again: RuntimeError('the broker did not answer')" in caplog.text
    assert stats.outcomes["input_partitions_restarted"] == 1


def test_the_client_position_is_read_as_aiokafka_keeps_it():
    """What the watchdog reads of the Kafka client from Faust's thread: the position aiokafka keeps for a
    partition (None while it awaits a reset), as it hands the records on."""

    async def scenario():  # the state makes a future of the running loop
        state = _state(None)
        assert state._position is None and not state.has_valid_position
        state.reset_to(7)
        state.consumed_to(9)
        assert state._position == state.position == 9

    asyncio.run(scenario())


def test_the_watchdog_asks_the_broker_for_its_end_offsets_in_one_request_not_the_checked_ones():
    """The watchdog runs every few seconds: the end offsets come from one request of the worker's own
    client, not from the probe that checks them for a table's recovery (a client of its own each time)."""

    async def scenario():
        app, _ = await _app()
        thread: Any = app.consumer._new_consumer_thread()
        asked = []

        async def end_offsets(partitions):
            asked.append(list(partitions))
            return dict.fromkeys(partitions, 7)

        async def call_thread(fun, *args):  # the consumer thread's loop, here the test's
            return await fun(*args)

        thread._ensure_consumer = lambda: SimpleNamespace(end_offsets=end_offsets)
        thread.call_thread = call_thread
        thread.consumer = SimpleNamespace(in_transaction=False)
        return await thread.reported_end_offsets([POSTS]), asked

    assert asyncio.run(scenario()) == ({POSTS: 7}, [[POSTS]])


def test_end_offsets_the_broker_does_not_give_are_waited_for_briefly_and_asked_for_once():
    """A broker that went away answers no request until the client's request timeout (minutes): the
    watchdog gives up on the answer after a few seconds, and asks again only once the request ended."""

    async def scenario():
        app, _ = await _app()
        consumer: Any = app.consumer
        consumer._thread = thread = FakeThread(consumer, {POSTS: 35}, {}, {POSTS: 30})
        consumer.assignment = lambda: {POSTS}
        answer, asked = asyncio.Event(), []

        async def reported_end_offsets(partitions):
            asked.append(list(partitions))
            await answer.wait()
            return {POSTS: 35}

        thread.reported_end_offsets = reported_end_offsets  # type: ignore[method-assign]
        for _ in range(2):
            try:
                await consumer.input_positions(timeout=0.05)
                raise AssertionError("a request the broker does not answer must time out")
            except TimeoutError:
                pass
        assert len(asked) == 1  # the second call waited for the first request
        answer.set()
        await asyncio.wait_for(asyncio.shield(consumer._positions), 1)  # answered, after both calls gave up
        assert await consumer.input_positions(timeout=1) == {POSTS: (30, 35)}
        assert len(asked) == 2  # the answer to the abandoned request is old: asked again

    asyncio.run(scenario())


def test_a_request_given_up_on_is_cancelled_when_the_worker_stops_and_its_error_is_not_logged(caplog, monkeypatch):
    """A request that fails after every caller gave up (the broker went away) leaves no "exception was
    never retrieved" in the log, and one still unanswered when the consumer stops is cancelled."""

    async def scenario():
        app, _ = await _app()
        consumer: Any = app.consumer
        consumer._thread = thread = FakeThread(consumer, {POSTS: 35}, {}, {POSTS: 30})
        consumer.assignment = lambda: {POSTS}
        gone = asyncio.Event()

        async def fails_later(partitions):
            await gone.wait()
            raise ConnectionError("the broker went away")

        async def never_answers(partitions):
            await asyncio.Event().wait()

        thread.reported_end_offsets = fails_later  # type: ignore[method-assign]
        with contextlib.suppress(TimeoutError):
            await consumer.input_positions(timeout=0.05)
        gone.set()
        await asyncio.wait([consumer._positions])
        consumer._positions = None  # nothing holds the failed request any more
        gc.collect()

        thread.reported_end_offsets = never_answers  # type: ignore[method-assign]
        with contextlib.suppress(TimeoutError):
            await consumer.input_positions(timeout=0.05)
        unanswered = consumer._positions
        monkeypatch.setattr(driver.Consumer, "on_stop", _nothing)  # Faust's own: a commit, not the point here
        await consumer.on_stop()
        await asyncio.wait([unanswered], timeout=1)
        return unanswered.cancelled()

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        assert asyncio.run(scenario())
        gc.collect()
    assert "never retrieved" not in caplog.text


async def _nothing(self):
    return None


def test_the_watchdogs_timer_waits_for_end_offsets_half_its_interval_and_reads_only_once_the_replica_is_ready(
    monkeypatch,
):
    from stream.worker import tasks

    timers: dict[str, tuple[float, Any]] = {}
    calls: list[dict[str, Any]] = []

    def timer(interval, name):
        def register(fn):
            timers[name] = (interval, fn)
            return fn

        return register

    async def recorded(app, watch, stats, now, timeout, reading=True):
        calls.append({"after": watch.after, "timeout": timeout, "reading": reading})
        return []

    monkeypatch.setattr(tasks, "restart_stalled", recorded)
    ready, stalled = asyncio.Event(), cast(list[float | None], [None])
    replica: Any = SimpleNamespace(ready=ready)
    publisher: Any = SimpleNamespace(stalled_for=lambda: stalled[0])
    processor: Any = SimpleNamespace(stats=Stats())
    for stall_timeout, interval in ((30.0, 5.0), (6.0, 2.0)):
        timers.clear()
        calls.clear()
        settings = Settings(broker="127.0.0.1:9", stall_timeout=stall_timeout)
        tasks.register_stall_watchdog(cast(Any, SimpleNamespace(timer=timer)), settings, processor, publisher, replica)
        every, check = timers["stall-watchdog"]
        ready.clear()
        asyncio.run(check())  # the agents wait for the model replica: not reading yet
        ready.set()
        asyncio.run(check())
        stalled[0] = 12.0  # a delivery waits: Faust's fetch loop may pause meanwhile
        asyncio.run(check())
        stalled[0] = None
        assert every == interval
        assert calls == [
            {"after": stall_timeout, "timeout": interval / 2, "reading": reading} for reading in (False, True, False)
        ]
