"""The agents that consume the input topics: posts, delayed labels and erasure requests.

Thin loops: each hands a batch of raw records to the :class:`~stream.pipeline.processor.Processor`
and the :class:`~stream.worker.publisher.Publisher` sends what it returns. Nothing here holds state.
Each value of their streams is the list of records of one partition from one fetch (see
:mod:`stream.worker.transport`). The agents take the fetches of all partitions that come within
``STREAM_BATCH_WITHIN`` (at low load a fetch has a record or two, and each batch has a fixed cost).
Faust acknowledges what an agent took once the loop body is done with it; its offsets are committed
only after what its records caused is delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence

import faust

from stream.pipeline.processor import Processor
from stream.pipeline.records import Message
from stream.settings import Settings
from stream.worker.modelsync import Follower
from stream.worker.publisher import Publisher
from stream.worker.topics import Topics

FETCHES = 4  # fetches (of any partitions) an agent takes at once


def slices(fetches: Sequence[Sequence[Message]], size: int) -> Iterator[Sequence[Message]]:
    """The records of ``fetches``, in order, in slices of at most ``size``.

    >>> [len(s) for s in slices([[1, 2, 3], [4], [5]], 2)]
    [2, 2, 1]
    """
    records = fetches[0] if len(fetches) == 1 else [r for fetch in fetches for r in fetch]
    for start in range(0, len(records), size):
        yield records[start : start + size]


def take(stream: faust.StreamT, settings: Settings) -> AsyncIterator[list[Sequence[Message]]]:
    """The fetches that reach ``stream`` within ``STREAM_BATCH_WITHIN`` (at most :data:`FETCHES`)."""
    return stream.take(FETCHES, within=settings.batch_within)


def register_input_agents(
    app: faust.App, settings: Settings, topics: Topics, processor: Processor, publisher: Publisher, replica: Follower
) -> None:
    """The posts, feedback and erasure agents, and the timer (and commit hook) that sends the
    posts' partial aggregates and profile updates."""

    @app.agent(topics.posts, name="posts")
    async def posts(stream: faust.StreamT) -> None:
        await replica.ready.wait()  # predict with the cluster's model, never from scratch
        async for fetches in take(stream, settings):
            for batch in slices(fetches, settings.batch_size):
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

    @app.agent(topics.feedback_in, name="feedback")  # the feedback topic and the labels re-keyed by post id
    async def feedback(stream: faust.StreamT) -> None:
        async for fetches in take(stream, settings):
            for batch in slices(fetches, settings.batch_size):
                await publisher.outputs(processor.process_feedback(batch))
                await asyncio.sleep(0)

    @app.agent(topics.erasure, name="erasure")
    async def erasure(stream: faust.StreamT) -> None:
        async for fetches in take(stream, settings):
            for batch in slices(fetches, settings.batch_size):
                await publisher.outputs(processor.process_erasures(batch))
