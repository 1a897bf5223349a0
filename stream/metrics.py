"""Counters of the pipeline, kept as plain numbers on the hot path and exported on demand.

The processor increments plain ints (no lock, no label lookup per event). Prometheus reads them
through :class:`StatsCollector` at scrape time, and the metrics topic through :meth:`Stats.snapshot`,
so both always show the same figures.
"""
from __future__ import annotations

import bisect
import logging
import time
from collections import Counter, deque
from typing import Any, Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def quantile(sorted_values: list[float], q: float) -> float:
    """The ``q`` quantile of already sorted values (nearest rank); 0 for none.

    >>> quantile([1, 2, 3, 4], 0.5), quantile([1, 2, 3, 4], 0.99), quantile([], 0.5)
    (2, 4, 0.0)
    """
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, int(q * len(sorted_values) + 0.999999) - 1))
    return sorted_values[rank]


class Latency:
    """A cumulative histogram (for Prometheus) and the most recent values (for quantiles)."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS, recent: int = 10_000):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0
        self.recent: deque[float] = deque(maxlen=recent)

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.sum += seconds
        self.count += 1
        self.recent.append(seconds)

    def quantiles(self) -> dict[str, float]:
        values = sorted(self.recent)
        return {"p50_ms": quantile(values, 0.5) * 1e3, "p99_ms": quantile(values, 0.99) * 1e3}


LOOP_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
STALL_SECONDS = 0.1  # a wake-up this late is a stall of the event loop


class LoopLag:
    """How late the event loop wakes a task that sleeps ``interval`` seconds over and over: every
    lag is observed, and one over :data:`STALL_SECONDS` is a stall (some callback held the loop).

    >>> import asyncio, time
    >>> lag = LoopLag(interval=0.01)
    >>> async def main():
    ...     probe = asyncio.ensure_future(lag.watch())
    ...     await asyncio.sleep(0.05)
    ...     time.sleep(0.25)            # a callback that blocks the loop
    ...     await asyncio.sleep(0.05)
    ...     probe.cancel()
    >>> asyncio.run(main())
    >>> lag.stalls >= 1 and lag.max_s >= 0.2
    True
    """

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.histogram = Latency(LOOP_LAG_BUCKETS, recent=1000)
        self.stalls = 0
        self.max_s = 0.0

    def observe(self, lag: float) -> None:
        lag = max(0.0, lag)
        self.histogram.observe(lag)
        self.max_s = max(self.max_s, lag)
        if lag > STALL_SECONDS:
            self.stalls += 1
            log.warning("event loop stalled: a task woke up %.0f ms late", lag * 1000)

    async def watch(self) -> None:
        """Sleep and measure, for ever (run it as a task)."""
        import asyncio

        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.interval)
            self.observe(loop.time() - start - self.interval)


class Stats:
    """Everything the pipeline counts."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.started_at = clock()
        self.outcomes: Counter[str] = Counter()  # posts_in, accepted, predicted, learned, ...
        self.dead_letters: Counter[str] = Counter()  # by reason
        self.duplicates: Counter[str] = Counter()  # by kind: id, text
        self.predicted_interest: Counter[str] = Counter()
        self.predicted_sentiment: Counter[str] = Counter()
        self.triggers: Counter[tuple[str, str]] = Counter()  # by (rule, campaign)
        self.spikes: Counter[tuple[str, str]] = Counter()  # by (segment kind, metric)
        self.windows_closed: Counter[str] = Counter()  # by window kind
        # the last closed tumbling window of each interest / campaign / "all" segment:
        # (segment kind, segment value) -> (volume, mean sentiment, positive share, negative share)
        self.audience: dict[tuple[str, str], tuple[float, float, float, float]] = {}
        self.latency = Latency()
        self.loop = LoopLag()
        self.drifts = 0  # concept drifts detected (and adapted to)
        self.first_event_at: float | None = None
        self.last_event_at: float | None = None

    def saw_events(self, n: int, now: float) -> None:
        if self.first_event_at is None:
            self.first_event_at = now
        self.last_event_at = now
        self.outcomes["posts_in"] += n

    def events_per_s(self) -> float:
        """Posts in per second, from the first to the last batch seen."""
        if self.first_event_at is None or self.last_event_at is None:
            return 0.0
        span = self.last_event_at - self.first_event_at
        return self.outcomes["posts_in"] / span if span > 0 else 0.0

    def snapshot(self) -> dict[str, Any]:
        return {
            "counts": dict(self.outcomes),
            "dead_letters": dict(self.dead_letters),
            "duplicates": dict(self.duplicates),
            "predicted_interest": dict(self.predicted_interest),
            "predicted_sentiment": dict(self.predicted_sentiment),
            "triggers": {f"{rule}|{campaign}": n for (rule, campaign), n in self.triggers.items()},
            "spikes": {f"{kind}|{metric}": n for (kind, metric), n in self.spikes.items()},
            "windows_closed": dict(self.windows_closed),
            "audience": {f"{kind}:{value}" if kind != "all" else "all": list(v)
                         for (kind, value), v in self.audience.items()},
            "drifts": self.drifts,
            "events_per_s": self.events_per_s(),
            "latency": self.latency.quantiles(),
            "event_loop": {"stalls": self.loop.stalls, "max_lag_ms": self.loop.max_s * 1e3,
                           **self.loop.histogram.quantiles()},
        }


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
        for bound, n in zip([*map(str, histogram.buckets), "+Inf"], histogram.counts):
            acc += n
            buckets.append((bound, acc))
        return HistogramMetricFamily(f"{self.prefix}_{name}", doc, buckets=buckets, sum_value=histogram.sum)

    def collect(self) -> Iterator[Any]:
        s = self.stats
        yield self._counter("events", "Events by outcome.", "outcome", s.outcomes.items())
        yield self._counter("dead_letters", "Events sent to the dead-letter topic, by reason.",
                            "reason", s.dead_letters.items())
        yield self._counter("duplicates", "Duplicate posts dropped, by kind.", "kind", s.duplicates.items())
        yield self._counter("predictions", "Predictions published, by top interest.", "interest",
                            s.predicted_interest.items())
        yield self._counter("sentiment_predictions", "Predictions published, by sentiment.", "sentiment",
                            s.predicted_sentiment.items())
        yield self._counter("windows_closed", "Audience windows closed and published, by window kind.", "kind",
                            s.windows_closed.items())
        triggers = CounterMetricFamily(f"{self.prefix}_triggers", "Campaign triggers fired.",
                                       labels=["rule", "campaign"])
        for (rule, campaign), n in s.triggers.items():
            triggers.add_metric([rule, campaign], n)
        yield triggers
        spikes = CounterMetricFamily(f"{self.prefix}_spikes", "Volume and sentiment spikes detected.",
                                     labels=["segment_kind", "metric"])
        for (kind, metric), n in s.spikes.items():
            spikes.add_metric([kind, metric], n)
        yield spikes
        names = ("volume", "mean_sentiment", "positive_share", "negative_share")
        docs = ("Posts in the last closed tumbling window", "Mean sentiment score (-1..1) in the last closed "
                "tumbling window", "Share of positive posts in the last closed tumbling window",
                "Share of negative posts in the last closed tumbling window")
        for i, (name, doc) in enumerate(zip(names, docs)):
            fam = GaugeMetricFamily(f"{self.prefix}_audience_{name}", f"{doc}, per segment (all, interest, "
                                    "campaign).", labels=["segment_kind", "segment"])
            for (kind, value), figures in list(s.audience.items()):
                fam.add_metric([kind, value], figures[i])
            yield fam
        drifts = CounterMetricFamily(f"{self.prefix}_drifts", "Concept drifts detected in the error stream.")
        drifts.add_metric([], s.drifts)
        yield drifts
        yield self._histogram("event_latency_seconds", "From the post's Kafka timestamp to its prediction "
                              "being handed to the producer.", s.latency)
        yield self._histogram("event_loop_lag_seconds", f"How late the event loop wakes a task that sleeps "
                              f"{s.loop.interval} s (time other work held it).", s.loop.histogram)
        stalls = CounterMetricFamily(f"{self.prefix}_event_loop_stalls",
                                     f"Event-loop wake-ups later than {STALL_SECONDS} s.")
        stalls.add_metric([], s.loop.stalls)
        yield stalls
        for name, doc, value in self.gauges():
            yield GaugeMetricFamily(f"{self.prefix}_{name}", doc, value=value)
