"""Counters of the pipeline, kept as plain numbers on the hot path and exported on demand.

The processor increments plain ints (no lock, no label lookup per event). Prometheus reads them
through :class:`stream.worker.prometheus.StatsCollector` at scrape time, and the metrics topic
through :meth:`Stats.snapshot`, so both always show the same figures.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

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


Figures = tuple[float, float, float, float]  # volume, mean sentiment, positive share, negative share


BOUNDED_KINDS = ("campaign", "hashtag")
"""Segment kinds whose names come from the input: only the busiest get series of their own."""


class AudienceGauges:
    """The last closed tumbling window of ``all``, of each interest and of the ``top`` busiest
    campaigns (and hashtags, were they recorded), for Prometheus; the windows of every other campaign
    are summed into ``campaign:other``, with those of a campaign that falls out of the top. Campaigns
    come from the input, so the series (and the memory behind them) are bounded here. Windows are
    recorded as they close, not per post.

    >>> g = AudienceGauges(top=1)
    >>> g.record("campaign", "big", 0, 10, 0.5, 0.6, 0.1); g.record("campaign", "small", 0, 2, -1.0, 0.0, 1.0)
    >>> g.record("campaign", "tiny", 0, 2, 0.0, 0.5, 0.5)
    >>> sorted(g.latest)
    [('campaign', 'big'), ('campaign', 'other')]
    >>> g["campaign", "other"]
    (4.0, -0.5, 0.25, 0.75)
    >>> g.record("campaign", "tiny", 0, 20, 0.0, 0.5, 0.5)  # the busiest now: "big" joins "other"
    >>> sorted(g.latest), g["campaign", "other"][0]
    ([('campaign', 'other'), ('campaign', 'tiny')], 14.0)
    """

    def __init__(self, top: int = 50):
        self.top = top
        self.latest: dict[tuple[str, str], Figures] = {}
        self._start: dict[tuple[str, str], int] = {}  # the start of the window in latest (bounded kinds)
        self.volume: dict[str, Counter[str]] = {kind: Counter() for kind in BOUNDED_KINDS}  # the busiest so far
        # per bounded kind: the start of the window summed in "other", its volume, and its
        # volume-weighted sentiment, positive and negative ratios
        self._other: dict[str, tuple[int, list[float]]] = {}

    def __getitem__(self, key: tuple[str, str]) -> Figures:
        return self.latest[key]

    def items(self) -> list[tuple[tuple[str, str], Figures]]:
        return list(self.latest.items())

    def record(self, kind: str, name: str, start: int, volume: float, mean: float, pos: float, neg: float) -> None:
        """A closed tumbling window of the segment ``kind:name`` that starts at ``start`` (ms)."""
        volumes = self.volume.get(kind)
        if volumes is None:
            self.latest[(kind, name)] = (volume, mean, pos, neg)
            return
        volumes[name] += int(volume)
        if len(volumes) > 4 * self.top:  # forget the tail, keep the heavy hitters
            volumes = self.volume[kind] = Counter(dict(volumes.most_common(2 * self.top)))
        top = {n for n, _ in volumes.most_common(self.top)}
        if name in top:
            self.latest[(kind, name)] = (volume, mean, pos, neg)
            self._start[(kind, name)] = start
        else:
            self._add_other(kind, start, (volume, mean, pos, neg))
        for key in [k for k in self.latest if k[0] == kind and k[1] != "other" and k[1] not in top]:
            self._add_other(kind, self._start.pop(key), self.latest.pop(key))

    def _add_other(self, kind: str, start: int, figures: Figures) -> None:
        """Add a window to ``kind:other``: the sum starts again with a newer window, an older one is dropped."""
        other = self._other.get(kind)
        if other is None or other[0] < start:
            other = self._other[kind] = (start, [0.0, 0.0, 0.0, 0.0])
        elif other[0] > start:
            return
        volume, mean, pos, neg = figures
        o = other[1]
        o[0] += volume
        o[1] += volume * mean
        o[2] += volume * pos
        o[3] += volume * neg
        n = o[0] or 1.0
        self.latest[(kind, "other")] = (o[0], o[1] / n, o[2] / n, o[3] / n)


class Stats:
    """Everything the pipeline counts."""

    def __init__(self, clock: Callable[[], float] = time.time, top_segments: int = 50):
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
        self.audience = AudienceGauges(top_segments)
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
            "audience": {
                f"{kind}:{value}" if kind != "all" else "all": list(v) for (kind, value), v in self.audience.items()
            },
            "drifts": self.drifts,
            "events_per_s": self.events_per_s(),
            "latency": self.latency.quantiles(),
            "event_loop": {
                "stalls": self.loop.stalls,
                "max_lag_ms": self.loop.max_s * 1e3,
                **self.loop.histogram.quantiles(),
            },
        }
