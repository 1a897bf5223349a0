"""The topics of the stream, declared once from the settings.

Values stay raw bytes: the processor decodes them with orjson and keeps the original bytes for
the dead-letter topic, instead of letting Faust decode (and drop) what it cannot read. The input
agents' topics are delivered a fetch at a time: each of their values is a list of records (see
:mod:`stream.worker.transport`).
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from stream.settings import Settings
from stream.worker.transport import BatchSchema


@dataclass(frozen=True)
class Topics:
    posts: faust.TopicT
    feedback: faust.TopicT
    predictions: faust.TopicT
    metrics: faust.TopicT
    dlq: faust.TopicT
    training: faust.TopicT
    model: faust.TopicT
    audience: faust.TopicT
    triggers: faust.TopicT
    profiles: faust.TopicT
    erasure: faust.TopicT
    partials: faust.TopicT
    profile_updates: faust.TopicT
    learner: faust.TopicT
    feedback_keyed: faust.TopicT
    feedback_in: faust.TopicT  # what the feedback agent reads: the feedback topic and the re-keyed labels

    @property
    def outputs(self) -> tuple[faust.TopicT, ...]:
        return (
            self.predictions,
            self.metrics,
            self.dlq,
            self.training,
            self.model,
            self.audience,
            self.triggers,
            self.profiles,
            self.feedback_keyed,
        )


WEEK_MS = 7 * 24 * 3600 * 1000
# Configs of the topics the app creates (the setting that names each topic → its Kafka configs);
# ops/kafka/create-topics.sh creates the same (a test compares them).
TOPIC_CONFIGS: dict[str, dict[str, str]] = {
    "topic_posts": {"retention.ms": str(WEEK_MS)},
    "topic_feedback": {"retention.ms": str(WEEK_MS)},
    "topic_predictions": {"retention.ms": str(WEEK_MS)},
    "topic_metrics": {"retention.ms": str(WEEK_MS)},
    "topic_dlq": {"retention.ms": str(4 * WEEK_MS)},
    # replayed from the newest snapshot by a learner that takes over: kept long
    "topic_training": {"retention.ms": str(4 * WEEK_MS)},
    # snapshots and deltas: NOT compacted (deltas share keys); segments small enough that the newest
    # snapshot (every STREAM_CHECKPOINT_INTERVAL) always stays
    "topic_model": {"retention.ms": str(WEEK_MS), "retention.bytes": str(2**31), "segment.bytes": str(2**26)},
    "topic_learner": {"retention.ms": str(WEEK_MS)},
    "topic_feedback_keyed": {"retention.ms": str(WEEK_MS)},
    "topic_audience": {"retention.ms": str(4 * WEEK_MS)},
    "topic_triggers": {"retention.ms": str(4 * WEEK_MS)},
    # the newest profile of each user stays; an erasure's tombstone removes the user (and is itself
    # kept a day)
    "topic_profiles": {"cleanup.policy": "compact", "delete.retention.ms": "86400000", "min.compaction.lag.ms": "0"},
    "topic_erasure": {"retention.ms": str(4 * WEEK_MS)},
    "topic_partials": {"retention.ms": str(WEEK_MS)},
    "topic_profile_updates": {"retention.ms": str(WEEK_MS)},
}
# no size of ours: written by other producers, or (the re-keyed labels) read with them by one agent
NOT_SIZED = ("topic_posts", "topic_feedback", "topic_erasure", "topic_feedback_keyed")


def topic_config(settings: Settings, name: str) -> dict[str, str]:
    """The Kafka configs of the topic named by setting ``name``: :data:`TOPIC_CONFIGS`, and on every topic
    the worker writes, ``max.message.bytes`` to fit its largest record (``STREAM_MAX_MESSAGE_BYTES``).

    >>> topic_config(Settings(), "topic_profiles")["cleanup.policy"]
    'compact'
    >>> topic_config(Settings(max_message_bytes=2_000_000), "topic_model")["max.message.bytes"]
    '2000000'
    >>> "max.message.bytes" in topic_config(Settings(), "topic_posts")
    False
    """
    config = dict(TOPIC_CONFIGS[name])
    if name not in NOT_SIZED:
        config["max.message.bytes"] = str(settings.max_message_bytes)
    return config


BATCHES_QUEUED = 4  # fetches waiting in an agent's queue (any partitions) before Faust pauses fetching


def batched_topic(
    app: faust.App, settings: Settings, *names: str, config: dict[str, str] | None = None
) -> faust.TopicT:
    """An input topic delivered a fetch at a time: each value of its stream is the list of records of one
    partition from one fetch (needs an :class:`~stream.worker.transport.InterestApp`); ``config``: its
    Kafka configs if the app creates it."""
    app.batched_topics = frozenset((*getattr(app, "batched_topics", ()), *names))  # type: ignore[attr-defined]
    return app.topic(
        *names,
        schema=BatchSchema(key_serializer="raw", value_serializer="raw"),
        partitions=settings.partitions,
        replicas=settings.replication,
        maxsize=BATCHES_QUEUED,
        config=config,
    )


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    """The topics; the input agents' ones (posts, feedback, erasure requests) are named in the app's
    ``batched_topics`` (an :class:`~stream.worker.transport.InterestApp` delivers them a fetch at a time)."""

    def topic(field: str, partitions: int | None = None) -> faust.TopicT:
        return app.topic(
            getattr(settings, field),
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions or settings.partitions,
            replicas=settings.replication,
            config=topic_config(settings, field),
        )

    def batched(field: str) -> faust.TopicT:
        return batched_topic(app, settings, getattr(settings, field), config=topic_config(settings, field))

    return Topics(
        posts=batched("topic_posts"),
        feedback=topic("topic_feedback"),
        predictions=topic("topic_predictions"),
        metrics=topic("topic_metrics", partitions=1),
        dlq=topic("topic_dlq"),
        training=topic("topic_training", partitions=1),
        model=topic("topic_model", partitions=1),
        audience=topic("topic_audience"),
        triggers=topic("topic_triggers"),
        profiles=topic("topic_profiles"),
        erasure=batched("topic_erasure"),
        partials=topic("topic_partials"),
        profile_updates=topic("topic_profile_updates"),
        learner=topic("topic_learner", partitions=1),
        feedback_keyed=topic("topic_feedback_keyed"),
        # two topics read by one agent, with the same configs
        feedback_in=batched_topic(
            app,
            settings,
            settings.topic_feedback,
            settings.topic_feedback_keyed,
            config=topic_config(settings, "topic_feedback"),
        ),
    )
