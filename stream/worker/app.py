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
from stream.audience.rules import configured_rules
from stream.clients import check_connection, faust_credentials
from stream.logs import faust_logging_config
from stream.pipeline.modelview import ModelView
from stream.pipeline.processor import Processor
from stream.settings import LOG_LEVELS, ConfigError, Settings
from stream.worker.agents import register_input_agents
from stream.worker.aggregates import register_audience_agent, register_profiles_agent
from stream.worker.collect import collect_less
from stream.worker.learnerproc import LearnerProcess
from stream.worker.live import LiveHistory
from stream.worker.modelsync import Follower
from stream.worker.prometheus import StatsCollector, fetch_gauge, model_gauges
from stream.worker.publisher import Publisher
from stream.worker.query import register_query_pages
from stream.worker.sensors import setup_sensors
from stream.worker.tasks import register_tasks
from stream.worker.topics import Topics, declare_topics
from stream.worker.transport import GroupTable, InterestApp, check_faust_version, partition_router
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
        settings.group_id,  # the aggregates workers have a group of their own
        Table=GroupTable,  # whose changelogs keep the names the posts workers' group gives them
        changelog_group=settings.app_id,
        broker=settings.broker_url,
        broker_credentials=faust_credentials(settings),  # the same connection as every other client's
        logging_config=faust_logging_config(settings),
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
    app.fetch_min_bytes = settings.fetch_min_bytes
    app.fetch_gather_s = settings.fetch_gather_ms / 1000
    setup_sensors(app, registry)
    return app


def create_app(settings: Settings, processor: Processor | None = None) -> InterestStream:
    """A configured Faust app with the stream's agents, timers and ``/metrics`` page.

    Raises :class:`~stream.audience.rules.RuleError` (one line) when the trigger rules file is invalid."""
    rules = configured_rules(settings) if settings.runs_aggregates else ()  # read where they are used
    registry = CollectorRegistry(auto_describe=True)
    app = make_app(settings, registry)
    processor = processor or Processor(settings, view=ModelView(settings, predicts=settings.runs_posts))
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
    if settings.runs_posts:
        register_input_agents(app, settings, topics, processor, publisher, replica)
    if settings.runs_aggregates:
        register_audience_agent(app, settings, topics, processor.stats, publisher, history, rules)
        register_profiles_agent(app, settings, topics, processor.stats, publisher, replica, processor.view.is_erased)
        register_query_pages(app, settings)  # /profiles/{user_id}, /audience/{segment}: routed to the key's owner
    register_pages(app, replica, history, publisher, learner)
    registry.register(
        StatsCollector(
            processor.stats,
            lambda: [
                *model_gauges(processor, replica.view.offset),
                fetch_gauge(app.fetch_min_bytes_now, app.fetch_min_bytes),
            ],
            model=settings.model,
        )
    )
    return InterestStream(app, settings, processor, topics, registry, history, replica, learner)


DEFAULT_CHECKPOINT_KEY = Settings.__dataclass_fields__["checkpoint_key"].default
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def check_production_keys(settings: Settings) -> None:
    """Refuse (one line) the public default checkpoint key on a broker that is not on this machine's
    loopback, where the embedded broker of the demo and the tests runs: anyone who knows the default
    could sign a model the workers would load.

    >>> check_production_keys(Settings(broker="127.0.0.1:9092"))
    >>> check_production_keys(Settings(broker="kafka-1:9092"))
    Traceback (most recent call last):
    ...
    stream.settings.ConfigError: STREAM_CHECKPOINT_KEY is the public default: set your own secret (broker kafka-1:9092)
    """
    remote = [h for h in settings.bootstrap_servers if h.rpartition(":")[0] not in LOOPBACK]
    if settings.checkpoint_key == DEFAULT_CHECKPOINT_KEY and remote:
        raise ConfigError(f"STREAM_CHECKPOINT_KEY is the public default: set your own secret (broker {remote[0]})")


def worker_args(argv: Sequence[str], settings: Settings) -> tuple[list[str], str]:
    """The ``faust worker`` options and the level they set: ``argv`` with level names as Python spells
    them accepted (``-l warning``), and ``STREAM_LOG_LEVEL`` when no level is given.

    >>> worker_args(["-l", "warning"], Settings())
    (['-l', 'WARN'], 'WARN')
    >>> worker_args(["--loglevel=critical", "--web-port", "7000"], Settings(log_level="debug"))
    (['--loglevel=CRIT', '--web-port', '7000'], 'CRIT')
    >>> worker_args([], Settings(log_level="Error"))
    (['--loglevel', 'ERROR'], 'ERROR')
    >>> worker_args(["-l", "loud"], Settings())
    Traceback (most recent call last):
    ...
    stream.settings.ConfigError: worker -l 'loud' is not one of crit, critical, debug, error, info, warn, warning
    """
    args, level = list(argv), None
    names = ", ".join(sorted(LOG_LEVELS))
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if flag not in ("-l", "--loglevel"):
            continue
        if not eq:
            if i + 1 == len(args):
                raise ConfigError(f"worker {flag} needs a level: one of {names}")
            value = args[i + 1]
        if value.lower() not in LOG_LEVELS:
            raise ConfigError(f"worker {flag} {value!r} is not one of {names}")
        level = LOG_LEVELS[value.lower()]
        if eq:
            args[i] = f"{flag}={level}"
        else:
            args[i + 1] = level
    if level is None:
        return ["--loglevel", settings.faust_log_level, *args], settings.faust_log_level
    return args, level


def main(argv: Sequence[str] = (), settings: Settings | None = None) -> None:
    """Run a worker; ``argv`` are extra ``faust worker`` options (see :func:`worker_args`).

    Refuses the default checkpoint key on a remote broker, and a TLS or SASL setting the broker
    rejects, with one line naming the setting (:class:`~stream.settings.ConfigError`)."""
    settings = settings or Settings.from_env()
    args, level = worker_args(argv, settings)
    settings = settings.replace(log_level=level.lower())  # the learner process logs at the same level
    check_production_keys(settings)
    check_connection(settings)
    stream = create_app(settings)
    quiet = ["--quiet"] if settings.log_format == "json" else []  # Faust's banner is no log line
    sys.argv = ["interest-stream", *quiet, "worker", *args]
    # What is built so far (modules, the app, the models' weights) lives as long as the worker: keep it
    # out of the garbage collector's full passes, which scanned it at start-up for up to 80 ms at a
    # time (measured) while the first posts were coming in. A task freezes again once the model
    # replica has caught up (see stream.worker.tasks). Its youngest objects are collected less often
    # (see stream.worker.collect).
    gc.freeze()
    collect_less()
    stream.app.main()
