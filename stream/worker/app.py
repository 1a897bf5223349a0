"""The Faust application: built from :class:`~stream.settings.Settings`, no module-global state.

``interest-stream worker`` (see :mod:`stream.cli`) calls :func:`main`.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import faust
from prometheus_client import CollectorRegistry

from models.factory import WORKER_MODELS
from stream.audience.rules import load_rules
from stream.pipeline.modelview import ModelView
from stream.pipeline.processor import Processor
from stream.settings import ConfigError, Settings
from stream.worker.agents import register_input_agents
from stream.worker.aggregates import register_audience_agent, register_profiles_agent
from stream.worker.learnerproc import LearnerProcess
from stream.worker.live import LiveHistory
from stream.worker.modelsync import Follower
from stream.worker.prometheus import StatsCollector, model_gauges
from stream.worker.publisher import Publisher
from stream.worker.sensors import setup_sensors
from stream.worker.tasks import register_tasks
from stream.worker.topics import Topics, declare_topics
from stream.worker.transport import InterestApp, check_faust_version, partition_router
from stream.worker.web import register_pages


@dataclass
class InterestStream:
    """The app and the objects it runs, kept together so that tests can reach them."""

    app: faust.App
    settings: Settings
    processor: Processor
    topics: Topics
    registry: CollectorRegistry
    history: LiveHistory
    replica: Follower
    learner: LearnerProcess


def make_app(settings: Settings, registry: CollectorRegistry) -> InterestApp:
    """The worker's Faust app, configured from ``settings``, its sensors reporting to ``registry``
    (served on ``/metrics``), with no agents yet: the benchmark's framework floor runs it as it is.
    Raises :class:`~stream.worker.transport.FaustVersionError` (one line) on another Faust release
    than the one the transport is written for."""
    check_faust_version()
    app = InterestApp(
        settings.app_id,
        broker=settings.broker_url,
        autodiscover=False,
        store="memory://",
        datadir=settings.data_dir,
        web_enabled=True,
        web_host=settings.web_host,
        web_port=settings.web_port,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        consumer_auto_offset_reset="earliest",
        # The embedded broker completes a group join after half the session timeout.
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=max(0.5, settings.session_timeout / 4),
        broker_rebalance_timeout=max(30.0, settings.session_timeout * 2),
        # Batched produce: one request per few ms instead of one per record.
        producer_linger_ms=5,
        producer_max_request_size=settings.max_message_bytes,
        producer_request_timeout=settings.delivery_timeout,  # a lost send surfaces (Faust's default: 20 min)
        stream_buffer_maxsize=max(4096, settings.batch_size * 4),
        stream_wait_empty=False,
    )
    app.fetch_max_wait_ms = settings.fetch_wait_ms
    setup_sensors(app, registry)
    return app


def create_app(settings: Settings, processor: Processor | None = None) -> InterestStream:
    """A configured Faust app with the stream's agents, timers and ``/metrics`` page.

    Raises :class:`~stream.audience.rules.RuleError` (one line) when the trigger rules file is invalid."""
    rules = load_rules(settings.trigger_rules) if settings.trigger_rules else ()
    registry = CollectorRegistry(auto_describe=True)
    app = make_app(settings, registry)
    processor = processor or Processor(settings, view=ModelView(settings))
    if not processor.model.replicable:
        raise ConfigError(
            f"STREAM_MODEL={settings.model} cannot be replicated to the workers (River's stock models are for "
            f"`interest-stream evaluate`); the worker runs {', '.join(WORKER_MODELS)}"
        )
    processor.route = partition_router(settings.partitions)
    topics = declare_topics(app, settings)
    history = LiveHistory()
    publisher = Publisher(app, topics, processor.stats, settings.max_message_bytes)
    app.commit_guard = publisher  # asked before each offset commit, told around it
    replica = Follower(settings, processor.view)  # type: ignore[arg-type]  # a worker's view is a ModelView
    learner = LearnerProcess(settings, processor.stats)  # the role, when the group gives it: a child process
    register_tasks(app, settings, topics, processor, publisher, replica, learner, history)
    register_input_agents(app, settings, topics, processor, publisher, replica)
    register_audience_agent(app, settings, topics, processor.stats, publisher, history, rules)
    register_profiles_agent(app, settings, topics, processor.stats, publisher, replica, processor.view.is_erased)
    register_pages(app, replica, history, publisher, learner)
    registry.register(StatsCollector(processor.stats, lambda: model_gauges(processor, replica.view.offset)))
    return InterestStream(app, settings, processor, topics, registry, history, replica, learner)


def main(argv: Sequence[str] = (), settings: Settings | None = None) -> None:
    """Run a worker; ``argv`` are extra ``faust worker`` options."""
    settings = settings or Settings.from_env()
    stream = create_app(settings)
    args = list(argv)
    if not any(a in ("-l", "--loglevel") or a.startswith("--loglevel=") for a in args):
        args = ["--loglevel", settings.log_level, *args]
    sys.argv = ["interest-stream", "worker", *args]
    # What is built so far (modules, the app, the models' weights) lives as long as the worker: keep it
    # out of the garbage collector's full passes, which scanned it at start-up for up to 80 ms at a
    # time (measured) while the first posts were coming in. The posts agent freezes again once the
    # model replica has caught up.
    gc.freeze()
    stream.app.main()
