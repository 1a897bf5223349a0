"""The worker's background tasks and timers: the model follower, the learner role, the event-loop
probe and the metrics snapshots."""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

import faust
import orjson
from faust.types import TP

from stream.pipeline.processor import Processor
from stream.settings import Settings
from stream.worker.learnerproc import LearnerProcess
from stream.worker.live import LiveHistory
from stream.worker.modelsync import Follower
from stream.worker.publisher import Publisher
from stream.worker.topics import Topics

log = logging.getLogger(__name__)

EXIT_UNDELIVERABLE = 75  # EX_TEMPFAIL: a supervisor restarts the worker


CLIENT_LOGGERS = ("aiokafka", "kafka", "faust", "mode")  # the libraries' loggers; the stream's own pass


class RepeatFilter(logging.Filter):
    """Lets a message of the Kafka clients and Faust (by logger and template) through at most once per
    ``every`` seconds, and says how many were held back: a lost broker makes them log the same error
    every few ms. The stream's own messages always pass.

    >>> f, record = RepeatFilter(every=60), logging.LogRecord("aiokafka", 40, "", 0, "down: %s", ("x",), None)
    >>> [f.filter(record) for _ in range(3)], f.held
    ([True, False, False], {('aiokafka', 'down: %s'): 2})
    >>> own = logging.LogRecord("stream.worker.replica", 40, "", 0, "refusing %s", ("x",), None)
    >>> [f.filter(own) for _ in range(2)]
    [True, True]
    """

    def __init__(self, every: float = 10.0):
        super().__init__()
        self.every = every
        self.last: dict[tuple[str, str], float] = {}
        self.held: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(CLIENT_LOGGERS):
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        if now - self.last.get(key, -self.every) < self.every:
            self.held[key] = self.held.get(key, 0) + 1
            return False
        if len(self.last) > 1000:  # bounded: forget the templates seen so far
            self.last.clear()
        self.last[key] = now
        held = self.held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this in the last {self.every:.0f} s)"
        return True


def register_tasks(
    app: faust.App,
    settings: Settings,
    topics: Topics,
    processor: Processor,
    publisher: Publisher,
    replica: Follower,
    learner: LearnerProcess,
    history: LiveHistory,
) -> None:
    """Follow the model topic, hold the learner role while the group assigns it here, probe the event
    loop, and publish a metrics snapshot every ``STREAM_METRICS_INTERVAL``."""

    @app.task
    async def loop_lag() -> None:
        for handler in logging.getLogger().handlers:  # set up by Faust by now: a lost broker floods them
            handler.addFilter(RepeatFilter())
        await processor.stats.loop.watch()

    @app.task
    async def model_replica() -> None:
        for topic in topics.outputs:
            await topic.maybe_declare()
        await replica.run()

    @app.agent(topics.learner, name="learner-role")
    async def learner_role(stream: faust.StreamT) -> None:
        async for _ in stream.events():  # nothing is written there: the assignment of its partition is the role
            pass

    role = TP(settings.topic_learner, 0)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # faust types receivers as (sender, *args, signal, **kwargs)
    async def take_or_give_up_role(app: faust.App, assigned: Any, **kwargs: Any) -> None:
        if role in app.consumer.assignment():
            learner.start()
        elif learner.active:
            await learner.stop("the group assigned the learner role to another worker")

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def give_up_role(app: faust.App, **kwargs: Any) -> None:
        await learner.stop("shutdown")

    worker = f"{socket.gethostname()}:{settings.web_port}"

    @app.timer(min(5.0, settings.delivery_timeout / 4), name="delivery-watchdog")
    async def delivery_watchdog() -> None:
        lost = replica.lost or learner.lost
        reason = (
            f"{lost}: exiting so that a restart starts from what the broker holds now"
            if lost is not None
            else publisher.give_up_reason(settings.delivery_timeout)
        )
        if reason is not None:
            log.critical("%s", reason)
            logging.shutdown()
            os._exit(EXIT_UNDELIVERABLE)

    @app.timer(settings.metrics_interval, name="metrics")
    async def metrics() -> None:
        snapshot = processor.snapshot()
        snapshot["worker"] = worker  # each worker publishes its own figures: consumers sum them by worker
        snapshot["model"].update(replica.status())
        snapshot["learner"] = learner.status()
        history.record(snapshot)
        await publisher.send(topics.metrics, [(None, orjson.dumps(snapshot))])
