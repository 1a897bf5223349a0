"""The worker's background tasks and timers: the model replica, checkpoints, the event-loop probe
and the metrics snapshots."""

from __future__ import annotations

import socket
from typing import Any

import faust
import orjson

from stream.pipeline.processor import Processor
from stream.settings import Settings
from stream.worker.live import LiveHistory
from stream.worker.publisher import Publisher
from stream.worker.replica import Replica
from stream.worker.topics import Topics


def register_tasks(
    app: faust.App,
    settings: Settings,
    topics: Topics,
    processor: Processor,
    publisher: Publisher,
    replica: Replica,
    history: LiveHistory,
) -> None:
    """Follow the training log, checkpoint (the leader, and every worker on a clean stop), probe the
    event loop, and publish a metrics snapshot every ``STREAM_METRICS_INTERVAL``."""

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

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # faust types receivers as (sender, *args, signal, **kwargs)
    async def last_checkpoint(app: faust.App, **kwargs: Any) -> None:
        if replica.ready.is_set():
            await replica.close()

    worker = f"{socket.gethostname()}:{settings.web_port}"

    @app.timer(settings.metrics_interval, name="metrics")
    async def metrics() -> None:
        snapshot = processor.snapshot()
        snapshot["worker"] = worker  # each worker publishes its own figures: consumers sum them by worker
        snapshot["model"].update(replica.status())
        history.record(snapshot)
        await publisher.send(topics.metrics, [(None, orjson.dumps(snapshot))])
