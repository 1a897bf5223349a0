"""The stall watchdog: a partition the worker holds, with records it does not read, is fetched again
from its read offset, through Faust's own consumer and fetch loop."""

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

from aiokafka.structs import ConsumerRecord
from faust.types import TP
from prometheus_client import CollectorRegistry

from stream.settings import Settings
from stream.stats import Stats
from stream.worker.app import make_app
from stream.worker.stalls import StallWatch
from stream.worker.tasks import restart_stalled

POSTS, OTHER, NEVER, MARKED = TP("posts", 0), TP("other", 0), TP("posts", 1), TP("posts", 2)


def _app():
    app = make_app(Settings(broker="127.0.0.1:9", app_id="test-stalls"), CollectorRegistry())
    app.topics.add(app.topic("other", value_serializer="raw"))
    table = app.Table("counts", default=int)
    return app, TP(table.changelog_topic.get_topic_name(), 0)


class FakeThread:
    """The consumer thread's side: the broker's first and end offsets, and the client's seeks."""

    def __init__(self, ends, starts, positions):
        self.ends, self.starts, self.seeks = ends, starts, []
        states = {
            tp: SimpleNamespace(has_valid_position=True, position=p, highwater=p, paused=False)
            for tp, p in positions.items()
        }
        assignment = SimpleNamespace(state_value=states.get)
        subscriptions = SimpleNamespace(subscription=SimpleNamespace(assignment=assignment))
        self._consumer = SimpleNamespace(_fetcher=SimpleNamespace(_subscriptions=subscriptions, _records={}))

    async def reported_end_offsets(self, partitions):
        return {tp: self.ends[tp] for tp in partitions if tp in self.ends}

    async def earliest_offsets(self, *partitions):
        return {tp: self.starts[tp] for tp in partitions}

    def seek(self, tp, offset):  # Faust's thread seeks the client at once (aiokafka's seek is synchronous)
        self.seeks.append((tp, offset))


def test_a_partition_faust_no_longer_fetches_is_fetched_again_from_its_read_offset_and_nothing_is_skipped():
    asyncio.run(_a_stalled_partition_fetched_again())


async def _a_stalled_partition_fetched_again():  # in one event loop: Faust's app binds its events to it
    app, changelog = _app()
    consumer: Any = app.consumer
    ends = {OTHER: 100, POSTS: 30, NEVER: 9, MARKED: 20, changelog: 500}
    # the client's positions: what it hands Faust next; it has none yet of OTHER and NEVER
    consumer._thread = thread = FakeThread(ends, {NEVER: 5}, {POSTS: 30, MARKED: 20})
    consumer.assignment = lambda: {OTHER, POSTS, NEVER, MARKED, changelog}
    consumer._active_partitions = {POSTS}  # OTHER was left out of the fetches: it is paused and held back
    consumer._paused_partitions, consumer._buffered_partitions = {OTHER}, {OTHER}
    consumer._read_offset.update({OTHER: 40, POSTS: 29, MARKED: 17})  # 18, 19: a transaction's markers

    positions = await consumer.input_positions()
    # without the client's position: one past Faust's read offset, or with nothing committed nor read, the
    # partition's first offset (records before it deleted); no changelog: Faust's recovery reads those
    assert positions == {OTHER: (41, 100), POSTS: (30, 30), NEVER: (5, 9), MARKED: (20, 20)}
    assert "active=False paused=True buffered=True read=40" in consumer.fetch_state(OTHER)
    assert "the client holds no state of it" in consumer.fetch_state(OTHER)
    assert "client: position=30 highwater=30 paused=False fetched_undelivered=False" in consumer.fetch_state(POSTS)

    assert await consumer.restart_fetch(OTHER) == 40
    assert await consumer.restart_fetch(NEVER) == 5
    assert thread.seeks == [(OTHER, 40), (NEVER, 5)]
    assert OTHER in consumer._get_active_partitions()
    assert OTHER not in consumer._paused_partitions and OTHER not in consumer._buffered_partitions

    # Faust's fetch loop hands on the record at the read offset again (at least once), and the rest
    fetches = [{OTHER: [ConsumerRecord("other", 0, o, 0, 0, None, b"v", None, 1, 0, ()) for o in (40, 41, 42)]}]
    fetcher = SimpleNamespace(_stopped=asyncio.Event())

    async def getmany(active_partitions, timeout):
        if not fetches:
            fetcher._stopped.set()
            return {}
        assert OTHER in active_partitions
        return fetches.pop(0)

    delivered = []

    async def on_message(message):
        delivered.append(message.offset)

    consumer._getmany, consumer.highwater, consumer.callback = getmany, lambda tp: 100, on_message
    app.flow_control.resume()  # as at the end of a rebalance: the watchdog runs only then
    await asyncio.wait_for(consumer._drain_messages(fetcher), 10)
    assert delivered == [40, 41, 42]


class FakeConsumer:
    def __init__(self, positions):
        self.positions, self.flow_active, self.restarts = positions, True, []

    async def input_positions(self):
        return dict(self.positions)

    def fetch_state(self, tp):
        return "active=False"

    async def restart_fetch(self, tp):
        self.restarts.append(tp)
        return self.positions[tp][0] - 1


def test_the_watchdog_restarts_only_what_stalled_counts_it_and_says_so(caplog):
    consumer = FakeConsumer({POSTS: (500, 951), OTHER: (10, 12)})
    app = SimpleNamespace(consumer=consumer, rebalancing=False, in_recovery=False)
    watch: StallWatch[TP] = StallWatch(30.0)
    stats = Stats()

    def check(now):
        return asyncio.run(restart_stalled(app, watch, stats, now))

    assert check(0.0) == []
    consumer.positions[OTHER] = (12, 12)  # read on
    assert check(29.0) == []
    app.rebalancing = True  # never during a rebalance: Faust seeks every partition itself then
    assert check(31.0) == [] and consumer.restarts == []
    app.rebalancing = False
    with caplog.at_level(logging.ERROR, logger="stream.worker.tasks"):
        assert check(32.0) == [POSTS]
    assert consumer.restarts == [POSTS] and stats.outcomes["input_partitions_restarted"] == 1
    assert "posts[0] has 451 records from offset 500 on that the worker has not read for 30 s" in caplog.text
    assert "fetching it again from offset 499 (active=False)" in caplog.text
    consumer.positions[POSTS] = (951, 951)  # read on since
    assert check(70.0) == [] and stats.outcomes["input_partitions_restarted"] == 1


def test_the_watchdog_asks_the_broker_for_its_end_offsets_in_one_request_not_the_checked_ones():
    """The watchdog runs every few seconds: the end offsets come from one request of the worker's own
    client, not from the probe that checks them for a table's recovery (a client of its own each time)."""

    async def scenario():
        app, _ = _app()
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
