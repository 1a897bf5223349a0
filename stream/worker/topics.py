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


BATCHES_QUEUED = 4  # fetches waiting in an agent's queue (any partitions) before Faust pauses fetching


def batched_topic(app: faust.App, settings: Settings, *names: str) -> faust.TopicT:
    """An input topic delivered a fetch at a time: each value of its stream is the list of records of one
    partition from one fetch (needs an :class:`~stream.worker.transport.InterestApp`)."""
    app.batched_topics = frozenset((*getattr(app, "batched_topics", ()), *names))  # type: ignore[attr-defined]
    return app.topic(
        *names,
        schema=BatchSchema(key_serializer="raw", value_serializer="raw"),
        partitions=settings.partitions,
        replicas=settings.replication,
        maxsize=BATCHES_QUEUED,
    )


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    """The topics; the input agents' ones (posts, feedback, erasure requests) are named in the app's
    ``batched_topics`` (an :class:`~stream.worker.transport.InterestApp` delivers them a fetch at a time)."""

    def topic(*names: str, partitions: int | None = None) -> faust.TopicT:
        return app.topic(
            *names,
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions or settings.partitions,
            replicas=settings.replication,
        )

    def batched(*names: str) -> faust.TopicT:
        return batched_topic(app, settings, *names)

    return Topics(
        posts=batched(settings.topic_posts),
        feedback=topic(settings.topic_feedback),
        predictions=topic(settings.topic_predictions),
        metrics=topic(settings.topic_metrics, partitions=1),
        dlq=topic(settings.topic_dlq),
        training=topic(settings.topic_training, partitions=1),
        model=topic(settings.topic_model, partitions=1),
        audience=topic(settings.topic_audience),
        triggers=topic(settings.topic_triggers),
        profiles=topic(settings.topic_profiles),
        erasure=batched(settings.topic_erasure),
        partials=topic(settings.topic_partials),
        profile_updates=topic(settings.topic_profile_updates),
        learner=topic(settings.topic_learner, partitions=1),
        feedback_keyed=topic(settings.topic_feedback_keyed),
        feedback_in=batched(settings.topic_feedback, settings.topic_feedback_keyed),
    )
