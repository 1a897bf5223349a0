"""Live audience sentiment: the partial aggregates of the predictors, merged per segment into
event-time windows, spikes and campaign triggers.

The predictors send one *partial* per segment and batch to ``audience.partials``, keyed by segment,
so that every segment is merged on one partition. :class:`Aggregator` keeps each segment's
:class:`~stream.audience.windows.SegmentState` in a table (a Faust table in the worker: its changelog restores
it after a restart or a rebalance; a dict in tests). The watermark of a partition is the newest event
time seen on it; a window closes when the watermark passes its end plus the allowed lateness.

Each stored state remembers the offset of the last partial applied, so a partial redelivered after a
crash is not counted twice; triggers carry ids derived from rule, segment and window, so a trigger
published twice (a crash between publishing and saving) has the same id both times.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from stream.audience.records import decode_partials
from stream.audience.rules import Rule
from stream.audience.segments import ALL, GAUGE_SEGMENT_KINDS, SEGMENT_KINDS, segment_kind
from stream.audience.spikes import SPIKE_METRICS, SpikeParams
from stream.audience.windows import Emitted, SegmentState, Tally, WindowSpec
from stream.stats import Stats

if TYPE_CHECKING:
    from stream.settings import Settings

EXPIRING_KINDS = ("campaign", "hashtag")  # segments that come from the input, whose rows expire when idle


@dataclass
class AudienceOutputs:
    """Records to publish: windows and spikes (``audience.sentiment``), triggers (``campaign.triggers``)."""

    windows: list[dict[str, Any]] = field(default_factory=list)
    spikes: list[dict[str, Any]] = field(default_factory=list)
    triggers: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, emitted: Emitted, min_volume: int = 1) -> None:
        """Add one segment's records: its windows of at least ``min_volume`` posts (the others are not
        published), its spikes and triggers."""
        self.windows.extend(w for w in emitted.windows if w["volume"] >= min_volume)
        self.spikes.extend(emitted.spikes)
        self.triggers.extend(emitted.triggers)

    def keyed(self) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
        """``(key, value)`` records: windows and spikes keyed by segment (``audience.sentiment``), triggers
        keyed by trigger id (``campaign.triggers``).

        >>> AudienceOutputs([{"segment": "all", "volume": 3}], [], [{"id": "t1"}]).keyed()
        ([(b'all', b'{"segment":"all","volume":3}')], [(b't1', b'{"id":"t1"}')])
        """
        audience = [(r["segment"].encode(), orjson.dumps(r)) for r in (*self.windows, *self.spikes)]
        return audience, [(t["id"].encode(), orjson.dumps(t)) for t in self.triggers]


class Aggregator:
    """Merges partials into segment states and closes windows as event time advances.

    Parameters
    ----------
    table
        Segment key → state dict; every change is written back (``table[key] = ...``).
    spec, spikes, rules
        Window sizes, spike detection parameters, trigger rules.
    min_hashtag_volume
        Hashtag windows with fewer posts are not published (they still feed baselines and rules).
    stats
        Where windows, spikes and triggers are counted.
    """

    def __init__(
        self,
        table: MutableMapping[str, Any],
        spec: WindowSpec,
        spikes: SpikeParams,
        rules: Sequence[Rule],
        stats: Stats | None = None,
        min_hashtag_volume: int = 1,
    ):
        self.table = table
        self.min_hashtag_volume = min_hashtag_volume
        self.spec = spec
        self.spike_params = spikes
        self.rules = tuple(rules)
        self.stats = stats or Stats()
        for rule in self.rules:  # known label values are exported from the start, at zero
            self.stats.triggers[(rule.name, rule.campaign)] += 0
        for kind in (ALL, *SEGMENT_KINDS):
            for metric in SPIKE_METRICS:
                self.stats.spikes[(kind, metric)] += 0
        self.watermarks: dict[int, int] = {}
        # per partition: a queue of (next close time, segment) of segments with an open window, and
        # the close time each segment is queued for (an entry that differs from it is stale)
        self._closing: dict[int, list[tuple[int, str]]] = {}
        self._due: dict[int, dict[str, int]] = {}
        # per partition: campaign and hashtag segments with no post held, by the watermark at which
        # their row is deleted if no post came meanwhile (they come from the input: rows must not pile up)
        self._expiring: dict[int, list[tuple[int, str]]] = {}
        # per segment: the state it was last saved from, with the partition and the saved ``state`` dict.
        # While the row still holds that very dict (no restore, no other writer replaced it), the state is
        # used as it is, instead of being read back from the row on every batch and every window close.
        self._live: dict[str, tuple[int, dict[str, Any], SegmentState]] = {}
        longest = max(spec.tumbling_s, spec.hopping_size_s) * 1000
        step = max(spec.tumbling_s, spec.hopping_step_s) * 1000
        cooldown = max((r.cooldown_ms for r in self.rules), default=0)
        # idle this long, a segment's spike baseline is all silence and its rules' cooldowns are over
        self.idle_ms = longest + spec.lateness_ms + spikes.baseline * step + cooldown

    @classmethod
    def from_settings(
        cls, table: MutableMapping[str, Any], settings: Settings, rules: Sequence[Rule] = (), stats: Stats | None = None
    ) -> Aggregator:
        """The windows, spike detection and hashtag threshold ``STREAM_WINDOW_*`` and ``STREAM_SPIKE_*``
        ask for, over ``table``."""
        spec, spikes = WindowSpec.from_settings(settings), SpikeParams.from_settings(settings)
        return cls(table, spec, spikes, rules, stats, settings.window_min_hashtag_volume)

    def forget(self, partitions: set[int]) -> None:
        """Drop what is held in memory for partitions this worker no longer owns (a rebalance):
        if one comes back, its queue and watermark are rebuilt from the table."""
        for partition in partitions:
            self._closing.pop(partition, None)
            self._due.pop(partition, None)
            self._expiring.pop(partition, None)
            self.watermarks.pop(partition, None)
        self._live = {segment: live for segment, live in self._live.items() if live[0] not in partitions}

    def _index(self, partition: int) -> None:
        """Rebuild a partition's watermark and closing queue from the table (after a restart)."""
        dues: dict[str, int] = {}
        expiring: list[tuple[int, str]] = []
        watermark = self.watermarks.get(partition, 0)
        for segment, stored in list(self.table.items()):
            if stored and stored.get("partition") == partition:
                watermark = max(watermark, stored.get("watermark", 0))
                due = SegmentState.from_dict(stored["state"], segment).next_close_ms(self.spec)
                if due is not None:
                    dues[segment] = due
                elif segment_kind(segment) in EXPIRING_KINDS:
                    expiring.append((stored.get("watermark", 0) + self.idle_ms, segment))
        heap = [(due, segment) for segment, due in dues.items()]
        heapq.heapify(heap)
        heapq.heapify(expiring)
        self._closing[partition], self._due[partition], self._expiring[partition] = heap, dues, expiring
        self.watermarks[partition] = watermark

    def _schedule(self, partition: int, segment: str, due: int | None) -> None:
        dues = self._due[partition]
        if due is None:
            dues.pop(segment, None)
        elif dues.get(segment) != due:
            dues[segment] = due
            heapq.heappush(self._closing[partition], (due, segment))

    def _load(self, segment: str, stored: Mapping[str, Any] | None) -> SegmentState:
        """The segment's state as ``stored`` holds it (taken out of the live states: a failure before
        the next save cannot leave a half-changed state there)."""
        live = self._live.pop(segment, None)
        if live is not None and stored is not None and stored.get("state") is live[1]:
            return live[2]
        return SegmentState.from_dict(stored["state"] if stored else None, segment)

    def _keep(self, segment: str, partition: int, saved: dict[str, Any], state: SegmentState) -> None:
        """Keep ``state`` for :meth:`_load`, valid while the segment's row holds ``saved``."""
        self._live[segment] = (partition, saved, state)

    def _save(self, segment: str, state: SegmentState, partition: int, offset: int) -> None:
        saved = state.to_dict()
        self.table[segment] = {
            "state": saved,
            "partition": partition,
            "offset": offset,
            "watermark": self.watermarks[partition],
        }
        self._keep(segment, partition, saved, state)
        due = state.next_close_ms(self.spec)
        self._schedule(partition, segment, due)
        if due is None and segment_kind(segment) in EXPIRING_KINDS:
            heapq.heappush(self._expiring[partition], (self.watermarks[partition] + self.idle_ms, segment))

    def _advance(self, state: SegmentState, out: AudienceOutputs, partition: int) -> None:
        published = self.min_hashtag_volume if segment_kind(state.segment) == "hashtag" else 1  # posts a window needs
        emitted = state.advance(self.watermarks[partition], self.spec, self.rules, self.spike_params, published)
        out.extend(emitted, published)
        self._count(emitted)

    def on_record(self, partition: int, offset: int, value: bytes) -> AudienceOutputs:
        """:meth:`on_partials` of one ``audience.partials`` record as it is on the topic."""
        return self.on_partials(partition, offset, *decode_partials(value))

    def on_partials(
        self, partition: int, offset: int, segments: Mapping[str, Mapping[int, Tally]], max_ts: int
    ) -> AudienceOutputs:
        """Merge one batch's partials (segment → buckets, as
        :func:`~stream.audience.records.decode_partials` reads them) of one partition, then close every
        window of the partition that the watermark has passed."""
        out = AudienceOutputs()
        if partition not in self._closing:
            self._index(partition)
        before = self.watermarks[partition]
        self.watermarks[partition] = max(before, int(max_ts))
        for segment, buckets in segments.items():
            stored = self.table.get(segment)
            if stored is not None and stored.get("offset", -1) >= offset:
                self.stats.outcomes["partials_redelivered"] += 1
                continue
            state = self._load(segment, stored)
            # lateness is judged against the watermark before this batch moved it
            late = state.add(buckets, self.spec, watermark_ms=before)
            if late:
                self.stats.outcomes["audience_late_posts"] += late
            self._advance(state, out, partition)
            self._save(segment, state, partition, offset)
        self._close_due(partition, out, skip=set(segments))
        self._expire(partition)
        return out

    def _expire(self, partition: int) -> None:
        """Delete the rows of campaign and hashtag segments that stayed idle for ``idle_ms``."""
        heap, watermark = self._expiring[partition], self.watermarks[partition]
        while heap and heap[0][0] <= watermark:
            _, segment = heapq.heappop(heap)
            stored = self.table.get(segment)
            if not stored or stored.get("partition") != partition:
                continue
            if stored.get("watermark", 0) + self.idle_ms > watermark:
                continue  # saved again since: a later entry is queued
            if stored["state"].get("buckets"):  # posts held: a window is still open
                continue
            del self.table[segment]
            self._live.pop(segment, None)
            self.stats.outcomes["segments_expired"] += 1

    def _close_due(self, partition: int, out: AudienceOutputs, skip: set[str]) -> None:
        heap, dues, watermark = self._closing[partition], self._due[partition], self.watermarks[partition]
        deferred = []
        while heap and heap[0][0] <= watermark:
            queued, segment = heapq.heappop(heap)
            if dues.get(segment) != queued:  # stale: the segment was queued again since
                continue
            if segment in skip:  # advanced by this batch already: keep its entry for later
                deferred.append((queued, segment))
                continue
            del dues[segment]
            stored = self.table.get(segment)
            if not stored:
                continue
            state = self._load(segment, stored)
            due = state.next_close_ms(self.spec)
            if due is None or due > watermark:
                self._schedule(partition, segment, due)
                self._keep(segment, partition, stored["state"], state)  # read only: still as saved
                continue
            self._advance(state, out, partition)
            # keep the segment's own offset: only its partials are deduplicated by it
            self._save(segment, state, partition, stored.get("offset", -1))
        for entry in deferred:
            heapq.heappush(heap, entry)

    def _count(self, emitted: Emitted) -> None:
        stats = self.stats
        for kind, closed in emitted.quiet.items():
            stats.windows_closed[kind] += closed
        for w in emitted.windows:
            stats.windows_closed[w["kind"]] += 1
            kind, _, value = w["segment"].partition(":")
            if w["kind"] == "tumbling" and kind in GAUGE_SEGMENT_KINDS:
                stats.audience.record(
                    kind,
                    value or ALL,
                    w["start"],
                    w["volume"],
                    w["mean_sentiment"],
                    w["positive_share"],
                    w["negative_share"],
                )
        for s in emitted.spikes:
            stats.spikes[(segment_kind(s["segment"]), s["metric"])] += 1
        for t in emitted.triggers:
            stats.triggers[(t["rule"], t["campaign"])] += 1
