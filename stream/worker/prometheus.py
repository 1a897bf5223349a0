"""The stream's own Prometheus metrics (``stream_*``), read from :class:`~stream.stats.Stats` and the
learner at scrape time: the hot path only increments plain numbers.

Every counter is exported from the worker's start: at 0 until its first increment, and so are the
label values known in advance (:data:`OUTCOMES`, the dead-letter reasons, ...). A series that
appears only at its first increment is missed by ``increase()`` and by alerts on a flat zero.

Label values that come from the input are bounded: the audience gauges keep the busiest campaigns
(:class:`~stream.stats.AudienceGauges`), the ``campaign`` label of the trigger counter keeps the first
``top`` campaigns it sees (:class:`TopLabels`); the rest are summed under ``other``.
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from models.labels import SENTIMENTS
from stream.audience.segments import ALL, SEGMENT_KINDS, WINDOW_KINDS
from stream.audience.spikes import SPIKE_METRICS
from stream.pipeline.processor import Processor
from stream.pipeline.records import DEAD_LETTER_REASONS
from stream.stats import STALL_SECONDS, Latency, Stats

OUTCOMES = (
    "posts_in",
    "predicted",
    "duplicates",
    "dead_lettered",
    "erased_user_skipped",
    "posts_not_keyed_by_id",
    "feedback_in",
    "feedback_repartitioned",
    "feedback_early",
    "erasure_requests",
    "erasures_applied",
    "training_malformed",
    "learned_inline",
    "learned_feedback",
    "learned_sentiment",
    "learned_duplicate",
    "labels_refused",
    "publish_errors",
    "input_partitions_restarted",
    "outputs_too_large",
    "partials_redelivered",
    "audience_late_posts",
    "segments_expired",
    "profiles_updated",
    "profiles_erased",
    "profiles_skipped_erased",
    "profiles_skipped_redelivered",
)
"""The ``outcome`` values of ``stream_events_total``, exported at 0 before their first event."""

DUPLICATE_KINDS = ("id", "text")
"""The ``kind`` values of ``stream_duplicates_total``."""

OTHER = "other"
"""The label value that sums the values beyond the top ones."""

K = TypeVar("K", bound=Hashable)


def build_labels(model: str) -> dict[str, str]:
    """The labels of ``stream_build_info``: this package's version, Python's, Faust's, River's, and
    the interest model the worker runs.

    >>> sorted(build_labels("arow"))
    ['faust', 'model', 'python', 'river', 'version']
    >>> build_labels("arow")["model"]
    'arow'
    """

    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    return {
        "version": version("interest-stream"),
        "python": platform.python_version(),
        "faust": version("faust-streaming"),
        "river": version("river"),
        "model": model,
    }


def with_zeros(counts: Mapping[str, int], known: Iterable[str]) -> list[tuple[str, int]]:
    """``counts`` with every ``known`` key, at 0 when not counted yet.

    >>> with_zeros({"b": 2, "z": 1}, ("a", "b"))
    [('a', 0), ('b', 2), ('z', 1)]
    """
    out = dict.fromkeys(known, 0)
    out.update(counts)
    return sorted(out.items())


class TopLabels:
    """Keeps one label's values to ``top``, the rest summed into ``other``, so that every exported
    counter only grows: a value gets its own series the first scrape it is seen at while there is room
    (the busiest first when more are new than there is room for) and keeps it; one seen when the room
    is full is counted under ``other`` for good.

    >>> top = TopLabels(2)
    >>> sorted(top.fold({"a": 1, "b": 5, "c": 3}).items())
    [('b', 5), ('c', 3), ('other', 1)]
    >>> sorted(top.fold({"a": 10, "b": 5, "c": 3, "d": 7}).items())  # "a" overtook: still under "other"
    [('b', 5), ('c', 3), ('other', 17)]
    """

    def __init__(self, top: int):
        self.top = top
        self.kept: set[Hashable] = set()

    def fold(
        self,
        counts: Mapping[K, int],
        label: Callable[[K], Hashable] = lambda key: key,
        other: Callable[[K], Hashable] = lambda key: OTHER,
    ) -> dict[Any, int]:
        """``counts`` with the keys whose ``label`` has no series of its own added up under
        ``other(key)``: by default, keys are the label values and :data:`OTHER` sums the rest."""
        room = self.top - len(self.kept)
        if room > 0:
            new: dict[Hashable, int] = {}
            for key, n in counts.items():
                value = label(key)
                if value not in self.kept:
                    new[value] = new.get(value, 0) + n
            self.kept.update(sorted(new, key=lambda v: (-new[v], str(v)))[:room])
        out: dict[Any, int] = {}
        for key, n in counts.items():
            target = key if label(key) in self.kept else other(key)
            out[target] = out.get(target, 0) + n
        return out


class StatsCollector(Collector):
    """Exports :class:`Stats` and model figures to Prometheus at scrape time.

    ``gauges`` returns the model's figures as (name, help, value) when called (see
    :func:`model_gauges`): a name that ends in ``_total`` is a counter, any other a gauge. ``model``
    (the interest model the worker runs) is a label of ``stream_build_info``.
    """

    def __init__(
        self,
        stats: Stats,
        gauges: Callable[[], list[tuple[str, str, float]]],
        model: str = "unknown",
        prefix: str = "stream",
    ):
        self.stats = stats
        self.gauges = gauges
        self.prefix = prefix
        self.trigger_campaigns = TopLabels(stats.audience.top)
        self.build = build_labels(model)  # read once: the packages' metadata does not change

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

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        yield self._counter("events", "Events by outcome.", "outcome", with_zeros(s.outcomes, OUTCOMES))
        yield self._counter(
            "dead_letters",
            "Events sent to the dead-letter topic, by reason.",
            "reason",
            with_zeros(s.dead_letters, DEAD_LETTER_REASONS),
        )
        yield self._counter(
            "duplicates", "Duplicate posts dropped, by kind.", "kind", with_zeros(s.duplicates, DUPLICATE_KINDS)
        )
        yield self._counter(
            "predictions", "Predictions published, by top interest.", "interest", sorted(s.predicted_interest.items())
        )
        yield self._counter(
            "sentiment_predictions",
            "Predictions published, by sentiment.",
            "sentiment",
            with_zeros(s.predicted_sentiment, SENTIMENTS),
        )
        yield self._counter(
            "windows_closed",
            "Audience windows closed and published, by window kind.",
            "kind",
            with_zeros(s.windows_closed, WINDOW_KINDS),
        )
        triggers = CounterMetricFamily(
            f"{self.prefix}_triggers",
            f"Campaign triggers fired, by rule and campaign (campaigns beyond the first {self.trigger_campaigns.top}"
            f" under {OTHER!r}).",
            labels=["rule", "campaign"],
        )
        folded = self.trigger_campaigns.fold(s.triggers, lambda key: key[1], lambda key: (key[0], OTHER))
        for (rule, campaign), n in sorted(folded.items()):
            triggers.add_metric([rule, campaign], n)
        yield triggers
        spikes = CounterMetricFamily(
            f"{self.prefix}_spikes", "Volume and sentiment spikes detected.", labels=["segment_kind", "metric"]
        )
        known_spikes = {(kind, metric): 0 for kind in (ALL, *SEGMENT_KINDS) for metric in SPIKE_METRICS}
        for (kind, metric), n in sorted({**known_spikes, **s.spikes}.items()):
            spikes.add_metric([kind, metric], n)
        yield spikes
        yield from self._audience()
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
            if name.endswith("_total"):
                yield CounterMetricFamily(f"{self.prefix}_{name}", doc, value=value)
            else:
                yield GaugeMetricFamily(f"{self.prefix}_{name}", doc, value=value)
        info = GaugeMetricFamily(
            f"{self.prefix}_build_info",
            "Always 1: the versions of interest-stream, Python, Faust and River, and the interest model.",
            labels=["version", "python", "faust", "river", "model"],
        )
        info.add_metric([self.build[k] for k in ("version", "python", "faust", "river", "model")], 1)
        yield info

    def _audience(self) -> Iterator[Metric]:
        """The last closed tumbling window's gauges, per segment (``all``, interests, the busiest
        campaigns and ``other``: :class:`~stream.stats.AudienceGauges` bounds them)."""
        names = ("volume", "mean_sentiment", "positive_ratio", "negative_ratio")
        docs = (
            "Posts in the last closed tumbling window",
            "Mean sentiment score (-1..1) in the last closed tumbling window",
            "Ratio of positive posts (0..1) in the last closed tumbling window",
            "Ratio of negative posts (0..1) in the last closed tumbling window",
        )
        audience = sorted(self.stats.audience.items())
        for i, (name, doc) in enumerate(zip(names, docs, strict=True)):
            fam = GaugeMetricFamily(
                f"{self.prefix}_audience_{name}",
                f"{doc}, per segment (all, interest, campaign).",
                labels=["segment_kind", "segment"],
            )
            for (kind, segment), figures in audience:
                fam.add_metric([kind, segment], figures[i])
            yield fam


def model_gauges(processor: Processor, training_offset: int) -> list[tuple[str, str, float]]:
    """(name, help, value) of the model's figures for Prometheus: the worker's model replica, with the
    learner's figures as of its last delta, and the posts waiting here for their labels. Names that
    end in ``_total`` are counters."""
    figures = processor.view.figures()
    q, model = figures["quality"], figures["model"]
    sentiment, lexicon = figures["sentiment_quality"], figures["lexicon_quality"]
    view, joiner = processor.view, processor.joiner
    return [
        ("model_version", "Labels the model has learned.", float(model["version"])),
        ("model_classes", "Interest classes the model knows.", float(model["n_classes"])),
        ("model_drifts_total", "Drifts the model adapted to.", float(model["drifts"])),
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
        (
            "sentiment_accuracy",
            "Prequential accuracy of the sentiment the worker publishes.",
            sentiment["accuracy"],
        ),
        (
            "sentiment_macro_f1",
            "Prequential macro-F1 of the sentiment the worker publishes.",
            sentiment["macro_f1"],
        ),
        (
            "lexicon_macro_f1",
            "Macro-F1 of the lexicon alone on the same labels (the reference).",
            lexicon["macro_f1"],
        ),
        ("sentiment_labels", "Sentiment labels the sentiment model has learned.", float(view.sentiment.n_labels)),
        ("erased_users", "Users erased on request (their posts are ignored).", float(len(view.erased))),
        ("pending_labels", "Posts waiting here for a delayed label.", float(len(joiner.pending))),
        (
            "labels_expired_total",
            "Posts whose delayed label never came within the TTL.",
            float(joiner.pending.expired),
        ),
        ("early_labels", "Delayed labels waiting here for their post.", float(len(joiner.early))),
        (
            "early_labels_expired_total",
            "Delayed labels whose post never came within the TTL.",
            float(joiner.early.expired),
        ),
    ]


def fetch_gauge(asked_now: int | None, floor: int) -> tuple[str, str, float]:
    """(name, help, value) of the least bytes the worker's fetches ask for now (``None``: not yet
    measured, so the ``floor`` of ``STREAM_FETCH_MIN_BYTES``).

    >>> fetch_gauge(None, 1)[2], fetch_gauge(9000, 1)[2]
    (1.0, 9000.0)
    """
    return (
        "fetch_min_bytes",
        "Least bytes each fetch of the worker's inputs asks for now (follows the input rate with "
        "STREAM_FETCH_GATHER_MS).",
        float(floor if asked_now is None else asked_now),
    )
