"""The framework floor of ``interest-stream bench``: the worker's Faust app (:func:`stream.worker.app.make_app`:
the same transport, fetch wait, producer linger, buffers and sensors) with one agent that takes the
posts a fetch at a time, as the posts agent does, and forwards each one's bytes unchanged, sent
without awaiting each, as the posts agent publishes. No decoding, model or learning: what Faust and
the clients cost per event in this setup, which no pipeline built on them can beat. Not used by the worker; run as
``python -m stream.tools.bench_floor`` with the benchmark's ``STREAM_*`` settings and ``BENCH_OUTPUT``.
"""

from __future__ import annotations

import os
import sys

import faust
from prometheus_client import CollectorRegistry

from stream.settings import Settings
from stream.worker.app import make_app
from stream.worker.topics import batched_topic


def build(settings: Settings, output: str) -> faust.App:
    app = make_app(settings, CollectorRegistry())
    source = batched_topic(app, settings, settings.topic_posts)
    sink = app.topic(output, value_serializer="raw", partitions=settings.partitions)

    @app.agent(source, name="floor")
    async def floor(stream: faust.StreamT) -> None:
        send, name = app.producer.send, sink.get_topic_name()
        async for records in stream:
            for record in records:
                await send(name, record.key, record.value, None, None, None)

    return app


def main() -> None:
    app = build(Settings.from_env(), os.environ["BENCH_OUTPUT"])
    sys.argv = ["bench-floor", "worker", "--loglevel", "warn"]
    app.main()


if __name__ == "__main__":
    main()
