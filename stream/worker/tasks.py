"""The worker's background tasks and timers: the model follower, the learner role, the event-loop
probe, the stall watchdog and the metrics snapshots."""

from __future__ import annotations

import gc
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
from stream.stats import Stats
from stream.worker.learnerproc import LearnerProcess
from stream.worker.live import LiveHistory
from stream.worker.logfilter import RepeatFilter
from stream.worker.modelsync import Follower
from stream.worker.publisher import Publisher
from stream.worker.stalls import StallWatch
from stream.worker.topics import Topics

log = logging.getLogger(__name__)

EXIT_UNDELIVERABLE = 75  # EX_TEMPFAIL: a supervisor restarts the worker
FETCH_LOOP_S = 5.0  # Faust's fetch loop asks for records at least every second while it is not waiting


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
    """Follow the model topic, hold the learner role while the group assigns it here (a worker that runs
    the posts), probe the event loop, and publish a metrics snapshot every ``STREAM_METRICS_INTERVAL``."""

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

    @app.task
    async def freeze_start_up() -> None:
        # Everything built until the model replica has caught up (the app, Faust, the models, the
        # replayed state) lives as long as the worker: keep it out of the garbage collector's full
        # passes, which scanned it for 20-95 ms every few seconds (measured) and were most of the event
        # loop's stalls. The posts and profiles agents wait for the replica before their first event.
        await replica.ready.wait()
        gc.freeze()

    if settings.runs_posts:  # the learner learns what the posts workers predicted: it is one of theirs
        register_learner_role(app, settings, topics, learner)

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

    if settings.stall_timeout:
        register_stall_watchdog(app, settings, processor, publisher, replica)

    @app.timer(settings.metrics_interval, name="metrics")
    async def metrics() -> None:
        snapshot = processor.snapshot()
        snapshot["worker"] = worker  # each worker publishes its own figures: consumers sum them by worker
        snapshot["model"].update(replica.status())
        snapshot["learner"] = learner.status()
        history.record(snapshot)
        await publisher.send(topics.metrics, [(None, orjson.dumps(snapshot))])


def register_stall_watchdog(
    app: faust.App, settings: Settings, processor: Processor, publisher: Publisher, replica: Follower
) -> None:
    """Every few seconds, run :func:`restart_stalled` with a watch of ``STREAM_STALL_TIMEOUT``, once the
    agents take records (they wait for the model replica first) and while nothing waits to be delivered."""
    watch: StallWatch[TP] = StallWatch(settings.stall_timeout)
    interval = min(5.0, settings.stall_timeout / 3)

    @app.timer(interval, name="stall-watchdog")
    async def stall_watchdog() -> None:
        reading = replica.ready.is_set() and publisher.stalled_for() is None
        await restart_stalled(app, watch, processor.stats, time.monotonic(), interval / 2, reading=reading)


async def restart_stalled(
    app: Any,
    watch: StallWatch[TP],
    stats: Stats,
    now: float,
    timeout: float,
    reading: bool = True,
) -> list[TP]:
    """Find the partitions the worker holds that have records it has not read for ``watch.after``
    seconds without its read position moving (:class:`~stream.worker.stalls.StallWatch`), while Faust's
    fetch loop went on asking for records; log what Faust and the Kafka client hold of each, and fetch
    it again (:meth:`~stream.worker.transport.BatchingConsumer.restart_fetch`). Returns those
    partitions.

    A worker that does not read as a whole is not watched meanwhile, and its partitions start over:
    during a rebalance (Faust seeks every partition then), before its agents take records
    (``reading``), and while Faust's fetch loop waits, which it does when an agent's queue is full or
    the producer's buffer is: that is the agents' pace, or the delivery watchdog's concern. Nor while
    the broker does not give the end offsets within ``timeout`` seconds (below the watchdog's interval,
    so that a silent broker does not make its timer overlap)."""
    consumer = app.consumer
    fetched_at = consumer.fetched_at
    if (
        not reading
        or app.rebalancing
        or app.in_recovery
        or not consumer.flow_active
        or fetched_at is None
        or now - fetched_at > FETCH_LOOP_S
    ):
        watch.reset()
        return []
    generation = app.consumer_generation_id
    try:
        positions = await consumer.input_positions(timeout)
    except Exception as exc:  # a broker that does not answer (within ``timeout``): the delivery watchdog's concern
        log.debug("stall watchdog: no end offsets (%r)", exc)
        return []
    restarted = []
    for tp in watch.observe(now, positions, epoch=generation):
        if app.consumer_generation_id != generation or app.rebalancing or tp not in consumer.assignment():
            watch.reset()  # a rebalance began while the end offsets were asked for
            break
        next_offset, end = positions[tp]
        state = consumer.fetch_state(tp)
        try:
            offset = await consumer.restart_fetch(tp)
        except Exception as exc:  # revoked meanwhile, or the broker did not answer: the next round sees
            log.warning("%s[%d] could not be fetched again: %r", tp.topic, tp.partition, exc)
            continue
        stats.outcomes["input_partitions_restarted"] += 1
        restarted.append(tp)
        log.error(
            "%s[%d]: %d offsets left to read from offset %d, and none read for %.0f s; fetching it again "
            "from offset %d (%s)",
            tp.topic,
            tp.partition,
            end - next_offset,
            next_offset,
            watch.after,
            offset,
            state,
        )
    return restarted


def register_learner_role(app: faust.App, settings: Settings, topics: Topics, learner: LearnerProcess) -> None:
    """Hold the learner role (run the learner process) while the group assigns this worker the one
    partition of ``STREAM_TOPIC_LEARNER``; give it up on another assignment and at shutdown."""

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
