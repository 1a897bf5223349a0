"""The stream's own Prometheus metrics (``stream_*``), read from :class:`~stream.stats.Stats` and the
learner at scrape time: the hot path only increments plain numbers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from stream.pipeline.processor import Processor
from stream.stats import STALL_SECONDS, Latency, Stats


class StatsCollector(Collector):
    """Exports :class:`Stats` and model figures to Prometheus at scrape time.

    ``gauges`` returns extra gauges as (name, help, value) when called, e.g. model quality.
    """

    def __init__(self, stats: Stats, gauges: Callable[[], list[tuple[str, str, float]]], prefix: str = "stream"):
        self.stats = stats
        self.gauges = gauges
        self.prefix = prefix

    def _counter(self, name: str, doc: str, label: str, values: Iterable[tuple[str, int]]) -> CounterMetricFamily:
        fam = CounterMetricFamily(f"{self.prefix}_{name}", doc, labels=[label])
        for key, value in values:
            fam.add_metric([key], value)
        return fam

    def _histogram(self, name: str, doc: str, histogram: Latency) -> HistogramMetricFamily:
        buckets, acc = [], 0
        for bound, n in zip([*map(str, histogram.buckets), "+Inf"], histogram.counts, strict=True):
            acc += n
            buckets.append((bound, acc))
        return HistogramMetricFamily(f"{self.prefix}_{name}", doc, buckets=buckets, sum_value=histogram.sum)

    def collect(self) -> Iterator[Any]:
        s = self.stats
        yield self._counter("events", "Events by outcome.", "outcome", s.outcomes.items())
        yield self._counter(
            "dead_letters", "Events sent to the dead-letter topic, by reason.", "reason", s.dead_letters.items()
        )
        yield self._counter("duplicates", "Duplicate posts dropped, by kind.", "kind", s.duplicates.items())
        yield self._counter(
            "predictions", "Predictions published, by top interest.", "interest", s.predicted_interest.items()
        )
        yield self._counter(
            "sentiment_predictions", "Predictions published, by sentiment.", "sentiment", s.predicted_sentiment.items()
        )
        yield self._counter(
            "windows_closed", "Audience windows closed and published, by window kind.", "kind", s.windows_closed.items()
        )
        triggers = CounterMetricFamily(
            f"{self.prefix}_triggers", "Campaign triggers fired.", labels=["rule", "campaign"]
        )
        for (rule, campaign), n in s.triggers.items():
            triggers.add_metric([rule, campaign], n)
        yield triggers
        spikes = CounterMetricFamily(
            f"{self.prefix}_spikes", "Volume and sentiment spikes detected.", labels=["segment_kind", "metric"]
        )
        for (kind, metric), n in s.spikes.items():
            spikes.add_metric([kind, metric], n)
        yield spikes
        names = ("volume", "mean_sentiment", "positive_share", "negative_share")
        docs = (
            "Posts in the last closed tumbling window",
            "Mean sentiment score (-1..1) in the last closed tumbling window",
            "Share of positive posts in the last closed tumbling window",
            "Share of negative posts in the last closed tumbling window",
        )
        for i, (name, doc) in enumerate(zip(names, docs, strict=True)):
            fam = GaugeMetricFamily(
                f"{self.prefix}_audience_{name}",
                f"{doc}, per segment (all, interest, campaign).",
                labels=["segment_kind", "segment"],
            )
            for (kind, segment), figures in list(s.audience.items()):
                fam.add_metric([kind, segment], figures[i])
            yield fam
        drifts = CounterMetricFamily(f"{self.prefix}_drifts", "Concept drifts detected in the error stream.")
        drifts.add_metric([], s.drifts)
        yield drifts
        yield self._histogram(
            "event_latency_seconds",
            "From the post's Kafka timestamp to its prediction being handed to the producer.",
            s.latency,
        )
        yield self._histogram(
            "event_loop_lag_seconds",
            f"How late the event loop wakes a task that sleeps {s.loop.interval} s (time other work held it).",
            s.loop.histogram,
        )
        stalls = CounterMetricFamily(
            f"{self.prefix}_event_loop_stalls", f"Event-loop wake-ups later than {STALL_SECONDS} s."
        )
        stalls.add_metric([], s.loop.stalls)
        yield stalls
        for name, doc, value in self.gauges():
            yield GaugeMetricFamily(f"{self.prefix}_{name}", doc, value=value)


def model_gauges(processor: Processor, training_offset: int) -> list[tuple[str, str, float]]:
    """(name, help, value) of the model's gauges for Prometheus: the worker's model replica, with the
    learner's figures as of its last delta, and the posts waiting here for their labels."""
    figures = processor.view.figures()
    q, model = figures["quality"], figures["model"]
    sentiment, lexicon = figures["sentiment_quality"], figures["lexicon_quality"]
    view, joiner = processor.view, processor.joiner
    return [
        ("model_version", "Labels the model has learned.", float(view.model.version)),
        ("model_classes", "Interest classes the model knows.", float(len(view.model.classes))),
        ("model_drifts", "Drifts the model adapted to.", float(model["drifts"])),
        ("model_error_rate", "Error rate over the drift detector's window.", model["error_rate"]),
        (
            "training_offset",
            "Last offset of the training log the learner had applied to this model.",
            float(training_offset),
        ),
        ("prequential_accuracy", "Prequential accuracy since start.", q["accuracy"]),
        ("prequential_macro_f1", "Prequential macro-F1 since start.", q["macro_f1"]),
        ("prequential_kappa", "Prequential Cohen's kappa since start.", q["kappa"]),
        ("rolling_accuracy", "Prequential accuracy over the rolling window.", q["rolling"]["accuracy"]),
        ("rolling_macro_f1", "Prequential macro-F1 over the rolling window.", q["rolling"]["macro_f1"]),
        ("rolling_kappa", "Prequential kappa over the rolling window.", q["rolling"]["kappa"]),
        ("sentiment_accuracy", "Prequential accuracy of the sentiment the worker publishes.", sentiment["accuracy"]),
        ("sentiment_macro_f1", "Prequential macro-F1 of the sentiment the worker publishes.", sentiment["macro_f1"]),
        ("lexicon_macro_f1", "Macro-F1 of the lexicon alone on the same labels (the reference).", lexicon["macro_f1"]),
        ("sentiment_labels", "Sentiment labels the sentiment model has learned.", float(view.sentiment.n_labels)),
        ("erased_users", "Users erased on request (their posts are ignored).", float(len(view.erased))),
        ("pending_labels", "Posts waiting here for a delayed label.", float(len(joiner.pending))),
        ("labels_expired", "Posts whose delayed label never came within the TTL.", float(joiner.pending.expired)),
        ("early_labels", "Delayed labels waiting here for their post.", float(len(joiner.early))),
        ("early_labels_expired", "Delayed labels whose post never came within the TTL.", float(joiner.early.expired)),
    ]
