"""The aggregating agents: live audience windows (``audience.partials`` → ``audience.sentiment`` and
``campaign.triggers``) and user-interest profiles (``user.updates`` → ``user.interests``), each with
its state in a Faust table whose changelog restores it after a restart or a rebalance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import faust

from stream.audience.aggregator import Aggregator
from stream.audience.profiles import ProfileBook
from stream.audience.rules import Rule
from stream.settings import Settings
from stream.stats import Stats
from stream.worker.live import LiveHistory
from stream.worker.modelsync import Follower
from stream.worker.publisher import Publisher
from stream.worker.query import LatestWindows
from stream.worker.tables import BufferedTable
from stream.worker.topics import Topics


def register_audience_agent(
    app: faust.App,
    settings: Settings,
    topics: Topics,
    stats: Stats,
    publisher: Publisher,
    history: LiveHistory,
    rules: Sequence[Rule] = (),
) -> None:
    """The audience agent: merges partials into windows, spikes and triggers."""
    table = BufferedTable(app.Table("audience", default=None, partitions=settings.partitions))
    rows = LatestWindows(table)  # rows keep their segment's latest published windows (GET /audience/...)
    aggregator = Aggregator.from_settings(rows, settings, rules, stats)

    @app.agent(topics.partials, name="audience")
    async def audience(stream: faust.StreamT) -> None:
        async for event in stream.events():  # one event: a batch's partials for this partition
            m = event.message
            out = aggregator.on_record(m.partition, m.offset, event.value)
            rows.record(out.windows)
            await table.flush(publisher, m.partition)
            await publisher.audience(out)
            history.record_audience(out)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # faust types receivers as (sender, *args, signal, **kwargs)
    async def forget_revoked(app: faust.App, revoked: Any, **kwargs: Any) -> None:
        name = topics.partials.get_topic_name()
        aggregator.forget({tp.partition for tp in revoked if tp.topic == name})


def register_profiles_agent(
    app: faust.App,
    settings: Settings,
    topics: Topics,
    stats: Stats,
    publisher: Publisher,
    replica: Follower,
    is_erased: Callable[[str], bool],
) -> None:
    """The profiles agent: applies profile updates and erasures, publishes profiles and tombstones."""
    table = BufferedTable(app.Table("profiles", default=None, partitions=settings.partitions))
    book = ProfileBook.from_settings(table, settings, is_erased, counts=stats.outcomes)

    @app.agent(topics.profile_updates, name="profiles")
    async def profiles(stream: faust.StreamT) -> None:
        await replica.ready.wait()  # erasures are known once the model replica is caught up
        async for event in stream.events():  # one event: a batch's updates for this partition's users
            published = book.apply_record(event.value, event.message.offset)
            await table.flush(publisher, event.message.partition)
            await publisher.send(topics.profiles, published)
