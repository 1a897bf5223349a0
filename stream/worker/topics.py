"""The topics of the stream, declared once from the settings.

Values stay raw bytes: the processor decodes them with orjson and keeps the original bytes for
the dead-letter topic, instead of letting Faust decode (and drop) what it cannot read.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from stream.settings import Settings


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


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    def topic(*names: str, partitions: int | None = None) -> faust.TopicT:
        return app.topic(
            *names,
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions or settings.partitions,
            replicas=settings.replication,
        )

    return Topics(
        posts=topic(settings.topic_posts),
        feedback=topic(settings.topic_feedback),
        predictions=topic(settings.topic_predictions),
        metrics=topic(settings.topic_metrics, partitions=1),
        dlq=topic(settings.topic_dlq),
        training=topic(settings.topic_training, partitions=1),
        model=topic(settings.topic_model, partitions=1),
        audience=topic(settings.topic_audience),
        triggers=topic(settings.topic_triggers),
        profiles=topic(settings.topic_profiles),
        erasure=topic(settings.topic_erasure),
        partials=topic(settings.topic_partials),
        profile_updates=topic(settings.topic_profile_updates),
        learner=topic(settings.topic_learner, partitions=1),
        feedback_keyed=topic(settings.topic_feedback_keyed),
        feedback_in=topic(settings.topic_feedback, settings.topic_feedback_keyed),
    )
