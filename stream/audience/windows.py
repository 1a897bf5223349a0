"""Live audience windows per segment: event-time tumbling and hopping windows, late data, spikes
and campaign triggers, with a JSON-able state (no Kafka here).

Posts are tallied into event-time *buckets* (``WindowSpec.bucket_ms`` wide) per *segment*
(``"all"``, ``"interest:<name>"``, ``"campaign:<name>"``, ``"hashtag:<tag>"``) by :func:`partials`;
a :class:`SegmentState` merges the buckets of its segment and, when the caller's watermark passes
a window's end plus the allowed lateness, closes the window: a record, its spikes
(:mod:`stream.audience.spikes`) and the triggers it fires (:mod:`stream.audience.rules`).

>>> spec = WindowSpec(tumbling_s=60, hopping_size_s=120, hopping_step_s=60, lateness_s=10)
>>> parts = partials([(5_000, 1.0, "positive", "music", None, ["coachella"]),
...                   (65_000, -1.0, "negative", "music", None, [])], spec)
>>> sorted(parts), sorted(parts["all"])
(['all', 'hashtag:coachella', 'interest:music'], [0, 60000])
>>> state = SegmentState.from_dict(None, "all")
>>> state.add(parts["all"], spec)
0
>>> out = state.advance(70_000, spec)
>>> [(w["kind"], w["start"], w["end"], w["volume"]) for w in out.windows]
[('tumbling', 0, 60000, 1), ('hopping', -60000, 60000, 1)]
>>> state.add(parts["all"], spec)  # the 0-60 s bucket is still open in the hopping window [0, 120 s)
0
>>> [(w["kind"], w["start"], w["volume"]) for w in state.advance(130_000, spec).windows]
[('tumbling', 60000, 2), ('hopping', 0, 4)]
>>> state.add(parts["all"], spec), state.late  # now every window of the 0-60 s bucket is closed
(1, 1)
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stream.audience.rules import Rule, rule_fires, trigger_record
from stream.audience.segments import WINDOW_KINDS

if TYPE_CHECKING:
    from stream.settings import Settings

from stream.audience.spikes import Baseline, SpikeParams, detect
from stream.schemas import SCHEMA_VERSION

STATE_VERSION = 1
DEFAULT_SPIKE_PARAMS = SpikeParams()  # frozen: one instance serves every default


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """Window sizes in seconds of event time (whole seconds).

    >>> WindowSpec().bucket_ms, WindowSpec(tumbling_s=90).bucket_ms
    (60000, 30000)
    >>> WindowSpec(hopping_size_s=300, hopping_step_s=120)
    Traceback (most recent call last):
    ...
    ValueError: hopping window size (300 s) must be a multiple of its step (120 s)
    """

    tumbling_s: int = 60
    hopping_size_s: int = 300
    hopping_step_s: int = 60
    lateness_s: int = 10

    def __post_init__(self) -> None:
        for name in ("tumbling_s", "hopping_size_s", "hopping_step_s", "lateness_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "lateness_s" else 1):
                what = (
                    "a whole number of seconds >= 0" if name == "lateness_s" else "a positive whole number of seconds"
                )
                raise ValueError(f"window {name} must be {what}, not {v!r}")
        if self.hopping_size_s % self.hopping_step_s:
            raise ValueError(
                f"hopping window size ({self.hopping_size_s} s) must be a multiple of its step "
                f"({self.hopping_step_s} s)"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> WindowSpec:
        """The windows ``STREAM_WINDOW_*`` ask for."""
        return cls(settings.window_tumbling, settings.window_hopping, settings.window_hop, settings.window_lateness)

    @property
    def bucket_ms(self) -> int:
        """Width of the event-time buckets: the gcd of the window sizes and step."""
        return 1000 * math.gcd(self.tumbling_s, self.hopping_size_s, self.hopping_step_s)

    @property
    def lateness_ms(self) -> int:
        return 1000 * self.lateness_s

    def kinds(self) -> tuple[tuple[str, int, int], ...]:
        """``(kind, size_ms, step_ms)`` of each window kind."""
        return (
            ("tumbling", 1000 * self.tumbling_s, 1000 * self.tumbling_s),
            ("hopping", 1000 * self.hopping_size_s, 1000 * self.hopping_step_s),
        )

    def bucket(self, ts_ms: int) -> int:
        """Start of the bucket of an event time.

        >>> WindowSpec().bucket(125_000), WindowSpec().bucket(-1)
        (120000, -60000)
        """
        return ts_ms - ts_ms % self.bucket_ms

    def signature(self) -> list[int]:
        return [self.tumbling_s, self.hopping_size_s, self.hopping_step_s, self.lateness_s]


class Tally:
    """Counts of the posts of one bucket (or window) of one segment.

    >>> t = Tally(); t.add(1.0, "positive", "music"); t.add(-0.5, "negative", None)
    >>> t.to_dict()
    {'n': 2, 's': 0.5, 'pos': 1, 'neu': 0, 'neg': 1, 'interests': {'music': 1}}
    >>> u = Tally.from_dict(t.to_dict()); u.merge(t); (u.n, u.s, u.interests)
    (4, 1.0, {'music': 2})
    """

    __slots__ = ("interests", "n", "neg", "neu", "pos", "s")

    def __init__(
        self,
        n: int = 0,
        s: float = 0.0,
        pos: int = 0,
        neu: int = 0,
        neg: int = 0,
        interests: dict[str, int] | None = None,
    ):
        self.n = n
        self.s = s
        self.pos = pos
        self.neu = neu
        self.neg = neg
        self.interests: dict[str, int] = interests if interests is not None else {}

    def add(self, score: float, label: str | None, interest: str | None) -> None:
        """Count one post: its sentiment score in [-1, 1], its label (``positive``/``neutral``/
        ``negative``; anything else counts in no share) and its interest (``None``: unknown)."""
        self.n += 1
        self.s += score
        if label == "positive":
            self.pos += 1
        elif label == "neutral":
            self.neu += 1
        elif label == "negative":
            self.neg += 1
        if interest:
            self.interests[interest] = self.interests.get(interest, 0) + 1

    @property
    def mean_sentiment(self) -> float | None:
        """The posts' mean sentiment score, to 4 places (``None``: no post)."""
        return round(self.s / self.n, 4) if self.n else None

    def merge(self, other: Tally) -> None:
        self.n += other.n
        self.s += other.s
        self.pos += other.pos
        self.neu += other.neu
        self.neg += other.neg
        for k, v in other.interests.items():
            self.interests[k] = self.interests.get(k, 0) + v

    def copy(self) -> Tally:
        return Tally(self.n, self.s, self.pos, self.neu, self.neg, dict(self.interests))

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "s": self.s,
            "pos": self.pos,
            "neu": self.neu,
            "neg": self.neg,
            "interests": dict(self.interests),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Tally:
        return cls(
            int(d.get("n", 0)),
            float(d.get("s", 0.0)),
            int(d.get("pos", 0)),
            int(d.get("neu", 0)),
            int(d.get("neg", 0)),
            {str(k): int(v) for k, v in d.get("interests", {}).items()},
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tally) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Tally({self.to_dict()})"


PostTuple = tuple[int, float, str | None, str | None, str | None, Sequence[str]]


def partials(posts: Iterable[PostTuple], spec: WindowSpec) -> dict[str, dict[int, Tally]]:
    """The buckets of a batch per segment. A post is ``(created_at_ms, score, label, interest,
    campaign, hashtags)``; it counts in ``"all"``, ``"interest:<interest>"``,
    ``"campaign:<campaign>"`` and ``"hashtag:<tag>"`` for each distinct tag.

    >>> p = partials([(61_000, 0.5, "positive", "sports", "spring", ["nfl", "nfl"])], WindowSpec())
    >>> {seg: {b: t.n for b, t in buckets.items()} for seg, buckets in p.items()}
    {'all': {60000: 1}, 'interest:sports': {60000: 1}, 'campaign:spring': {60000: 1}, 'hashtag:nfl': {60000: 1}}
    """
    out: dict[str, dict[int, Tally]] = {}
    width = spec.bucket_ms
    for created_at, score, label, interest, campaign, hashtags in posts:
        bucket = created_at - created_at % width
        segments = ["all"]
        if interest:
            segments.append("interest:" + interest)
        if campaign:
            segments.append("campaign:" + campaign)
        segments.extend(dict.fromkeys("hashtag:" + t for t in hashtags if t))
        for seg in segments:
            buckets = out.setdefault(seg, {})
            tally = buckets.get(bucket)
            if tally is None:
                tally = buckets[bucket] = Tally()
            tally.add(score, label, interest)
    return out


def window_record(segment: str, kind: str, start: int, end: int, tally: Tally) -> dict[str, Any]:
    """The JSON record published for a closed window (shares of the window's posts, 4 places).

    >>> window_record("all", "tumbling", 0, 60000, Tally(4, -1.0, 1, 1, 2, {"travel": 3}))
    ... # doctest: +NORMALIZE_WHITESPACE
    {'type': 'window', 'segment': 'all', 'kind': 'tumbling', 'start': 0, 'end': 60000, 'volume': 4,
     'mean_sentiment': -0.25, 'positive_share': 0.25, 'neutral_share': 0.25, 'negative_share': 0.5,
     'interest_share': {'travel': 0.75}, 'id': 'all|tumbling|0', 'schema_version': 1}
    """
    volume = tally.n
    n = volume or 1
    return {
        "type": "window",
        "segment": segment,
        "kind": kind,
        "start": start,
        "end": end,
        "volume": volume,
        "mean_sentiment": tally.mean_sentiment,
        "positive_share": round(tally.pos / n, 4),
        "neutral_share": round(tally.neu / n, 4),
        "negative_share": round(tally.neg / n, 4),
        "interest_share": {k: round(v / n, 4) for k, v in sorted(tally.interests.items())},
        "id": f"{segment}|{kind}|{start}",
        "schema_version": SCHEMA_VERSION,
    }


@dataclass(frozen=True, slots=True)
class Emitted:
    """What closing windows produced: records in event-time order (window end, then kind)."""

    windows: tuple[dict[str, Any], ...] = ()
    spikes: tuple[dict[str, Any], ...] = ()
    triggers: tuple[dict[str, Any], ...] = ()
    quiet: dict[str, int] = field(default_factory=dict)  # by kind: windows closed without a record

    def __bool__(self) -> bool:
        return bool(self.windows or self.spikes or self.triggers)

    def records(self) -> list[dict[str, Any]]:
        """Every record, in event-time order; at one window end: windows, then spikes, then triggers.

        >>> Emitted(({"type": "window", "end": 2},), (), ({"type": "trigger", "fired_at_event_ms": 1},)).records()
        [{'type': 'trigger', 'fired_at_event_ms': 1}, {'type': 'window', 'end': 2}]
        """

        def key(r: Mapping[str, Any]) -> tuple[int, int]:
            end = r.get("end", r.get("window_end", r.get("fired_at_event_ms", 0)))
            return end, ("window", "spike", "trigger").index(r["type"])

        return sorted([*self.windows, *self.spikes, *self.triggers], key=key)


def _floor(x: int, step: int) -> int:
    return x - x % step


def _in_order(items: list[tuple[int, int, dict[str, Any]]]) -> tuple[dict[str, Any], ...]:
    """The records of ``(window end, kind index, record)`` items, by window end, then kind.

    >>> _in_order([(120, 0, "a"), (180, 0, "b"), (120, 1, "c")])
    ('a', 'c', 'b')
    """
    if len(items) < 2:
        return tuple(r for *_, r in items)
    return tuple(r for *_, r in sorted(items, key=lambda item: (item[0], item[1])))


class SegmentState:
    """Open buckets, window progress, spike baselines and rule cooldowns of one segment.

    Use: ``state = SegmentState.from_dict(table.get(segment), segment)``, ``state.add(buckets,
    spec, watermark_ms=wm)``, ``emitted = state.advance(wm, spec, rules, params)``, then save
    ``state.to_dict()``. The output depends only on the buckets and watermarks given, not on how
    they are batched between saves (a restored state continues exactly).

    ``next_start[kind]`` is the start of the oldest window of that kind not yet closed (windows
    before it are closed); ``None`` until the segment has data. Silent windows are closed lazily
    (on the next ``advance`` with data to close) and count as zero-volume windows in the volume
    baseline, at most ``params.baseline`` of them.
    """

    __slots__ = (
        "born",
        "buckets",
        "cooldown",
        "history",
        "late",
        "next_start",
        "partly_late",
        "segment",
        "spec",
        "watermark",
    )

    def __init__(self, segment: str):
        self.segment = segment
        self.buckets: dict[int, Tally] = {}
        self.next_start: dict[str, int | None] = dict.fromkeys(WINDOW_KINDS)
        self.watermark: int | None = None
        self.late = 0  # posts dropped: every window of their bucket was closed
        self.born: int | None = None  # the earliest bucket with posts: silent windows before it are not
        # zeros of the segment's baseline (at a stream's start every segment is new, not silent)
        self.partly_late = 0  # posts kept only in the windows still open (some of theirs were closed)
        self.history: dict[str, Baseline] = {k: Baseline() for k in WINDOW_KINDS}
        self.cooldown: dict[str, int] = {}  # rule name -> event time (window end) it last fired
        self.spec: list[int] | None = None

    # -- persistence -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (str keys), deterministic."""
        return {
            "v": STATE_VERSION,
            "segment": self.segment,
            "spec": self.spec,
            "buckets": {str(b): self.buckets[b].to_dict() for b in sorted(self.buckets)},
            "next": dict(self.next_start),
            "watermark": self.watermark,
            "late": self.late,
            "partly_late": self.partly_late,
            "born": self.born,
            "history": {k: h.to_dict() for k, h in self.history.items()},
            "cooldown": dict(sorted(self.cooldown.items())),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, segment: str) -> SegmentState:
        """A state from :meth:`to_dict` output (``None`` or ``{}``: a new segment)."""
        state = cls(segment)
        if not d:
            return state
        if d.get("v") != STATE_VERSION:
            raise ValueError(f"segment state of {segment!r} has version {d.get('v')!r}, expected {STATE_VERSION}")
        state.spec = list(d["spec"]) if d.get("spec") is not None else None
        state.buckets = {int(b): Tally.from_dict(t) for b, t in d.get("buckets", {}).items()}
        nxt = d.get("next", {})
        state.next_start = {k: (None if nxt.get(k) is None else int(nxt[k])) for k in WINDOW_KINDS}
        state.watermark = None if d.get("watermark") is None else int(d["watermark"])
        state.late = int(d.get("late", 0))
        state.partly_late = int(d.get("partly_late", 0))
        state.born = None if d.get("born") is None else int(d["born"])
        hist = d.get("history", {})
        state.history = {k: Baseline.from_dict(hist.get(k)) for k in WINDOW_KINDS}
        state.cooldown = {str(k): int(v) for k, v in d.get("cooldown", {}).items()}
        return state

    # -- input -----------------------------------------------------------------------------
    def _use_spec(self, spec: WindowSpec) -> None:
        sig = spec.signature()
        if self.spec != sig:
            if self.spec is not None:  # the windows changed: their progress and baselines no longer apply
                self.buckets.clear()
                self.next_start = dict.fromkeys(WINDOW_KINDS)
                self.history = {k: Baseline() for k in WINDOW_KINDS}
            self.spec = sig

    def _frontier(self, kind: str, size: int, step: int, lateness: int) -> int | None:
        """Start of the oldest window of ``kind`` that is not closed (by progress or by watermark)."""
        ns = self.next_start[kind]
        if self.watermark is not None:
            by_wm = _floor(self.watermark - lateness - size, step) + step
            ns = by_wm if ns is None else max(ns, by_wm)
        return ns

    def add(self, buckets: Mapping[int, Tally], spec: WindowSpec, watermark_ms: int | None = None) -> int:
        """Merge a partial's buckets; returns how many posts came too late (every window that
        contains their bucket is closed) and were dropped (also counted in ``late``). Posts some of
        whose windows are closed are kept for the open ones and counted in ``partly_late``.

        ``watermark_ms`` (the caller's current watermark) makes the lateness exact for windows
        that would have closed empty but were not advanced yet; it moves ``watermark`` forward.
        """
        self._use_spec(spec)
        if watermark_ms is not None and (self.watermark is None or watermark_ms > self.watermark):
            self.watermark = watermark_ms
        kinds = spec.kinds()
        lateness = spec.lateness_ms
        frontiers = [(kind, size, step, self._frontier(kind, size, step, lateness)) for kind, size, step in kinds]
        dropped = 0
        for bucket, tally in buckets.items():
            if tally.n <= 0:
                continue
            open_ = False
            for _kind, _size, step, front in frontiers:
                if front is None or _floor(bucket, step) >= front:
                    open_ = True
                    break
            if not open_:
                dropped += tally.n
                continue
            if any(
                front is not None and _floor(bucket, step) - size + step < front
                for kind, size, step, front in frontiers
            ):
                self.partly_late += tally.n  # kept, but some of its windows are closed already
            for kind, _size, _step, front in frontiers:
                if self.next_start[kind] is None and front is not None:  # first posts after a watermark
                    self.next_start[kind] = front
            if self.born is None or bucket < self.born:
                self.born = bucket
            mine = self.buckets.get(bucket)
            if mine is None:
                self.buckets[bucket] = tally.copy()
            else:
                mine.merge(tally)
        self.late += dropped
        return dropped

    # -- closing ---------------------------------------------------------------------------
    def next_close_ms(self, spec: WindowSpec) -> int | None:
        """The watermark at which the next window with posts closes (``None``: no posts held, so
        ``advance`` has nothing to emit before more data comes)."""
        if not self.buckets:
            return None
        oldest = min(self.buckets)
        best: int | None = None
        for kind, size, step in spec.kinds():
            ns = self.next_start[kind]
            start = _floor(oldest, step) - size + step
            if ns is not None:
                start = max(start, ns)
            close = start + size + spec.lateness_ms
            best = close if best is None else min(best, close)
        return best

    def _aggregate(self, start: int, size: int, width: int, keys: list[int]) -> Tally | None:
        """The posts of the window ``[start, start + size)``: ``None`` when it has none. ``keys`` are
        the held buckets in order. A window of one bucket is that bucket's own tally, not a copy:
        read it, do not change it."""
        buckets = self.buckets
        if size == width:
            return buckets.get(start)
        lo = bisect_left(keys, start)
        hi = bisect_left(keys, start + size, lo)
        if hi - lo == 1:
            return buckets[keys[lo]]
        if hi == lo:
            return None
        total = Tally()
        for b in keys[lo:hi]:
            total.merge(buckets[b])
        return total

    def advance(
        self,
        watermark_ms: int,
        spec: WindowSpec,
        rules: Sequence[Rule] = (),
        params: SpikeParams = DEFAULT_SPIKE_PARAMS,
        min_record_volume: int = 1,
    ) -> Emitted:
        """Close every window whose end plus the allowed lateness the watermark has reached
        (``watermark_ms >= end + lateness``); returns their records, spikes and fired triggers.

        ``rules`` may be every rule: the ones for other segments are skipped. A rule fires at most
        once per ``cooldown`` of event time (window ends) for this segment.

        A window with fewer posts than ``min_record_volume`` and than every rule's ``min_support``
        (one that is not published and cannot fire) joins the baseline and may spike as any other,
        but gets no record: it is only counted in ``Emitted.quiet``.
        """
        self._use_spec(spec)
        if self.watermark is None or watermark_ms > self.watermark:
            self.watermark = watermark_ms
        watermark = self.watermark
        segment = self.segment
        mine = [r for r in rules if r.matches(segment)] if rules else []
        width = spec.bucket_ms
        lateness = spec.lateness_ms
        min_sentiment = params.sentiment_min_volume
        windows: list[tuple[int, int, dict[str, Any]]] = []
        spikes: list[tuple[int, int, dict[str, Any]]] = []
        triggers: list[tuple[int, int, dict[str, Any]]] = []
        quiet: dict[str, int] = {}
        keys = sorted(self.buckets)  # the buckets do not change until every kind is advanced
        for k_index, (kind, size, step) in enumerate(spec.kinds()):
            ns = first = self.next_start[kind]
            if ns is None:  # posts came before any watermark: start at the first window with posts
                if not self.buckets:
                    continue
                ns = first = _floor(keys[0], step) - size + step
            last = _floor(watermark - lateness - size, step)  # start of the last window that closes
            history = self.history[kind]
            kind_rules = [r for r in mine if r.window == kind]
            recorded = min((min_record_volume, *(r.min_support for r in kind_rules)))
            while ns <= last:
                tally = self._aggregate(ns, size, width, keys)
                if tally is None or not tally.n:  # silent: jump to the next window with posts, counting zeros
                    ns = self._skip_silence(ns, last, size, step, history, params, keys)
                    continue
                end = ns + size
                volume = tally.n
                # the mean sentiment only counts (spikes, baseline) from min_sentiment posts on
                mean = tally.mean_sentiment if volume >= min_sentiment else None
                found = [s.to_record() for s in detect(segment, kind, ns, end, volume, mean, history, params)]
                history.push(volume, mean, params)  # the window joins the baseline it was judged against
                if found:
                    spikes.extend((end, k_index, s) for s in found)
                if volume < recorded:
                    quiet[kind] = quiet.get(kind, 0) + 1
                else:
                    record = window_record(segment, kind, ns, end, tally)
                    windows.append((end, k_index, record))
                    if kind_rules:
                        triggers.extend((end, k_index, t) for t in self._fire(kind_rules, end, record, found))
                ns += step
            if ns != first or self.next_start[kind] is not None:  # else earlier posts may still come
                self.next_start[kind] = ns
        self._prune(spec, mine)
        return Emitted(_in_order(windows), _in_order(spikes), _in_order(triggers), quiet)

    def _skip_silence(
        self, ns: int, last: int, size: int, step: int, history: Baseline, params: SpikeParams, keys: list[int]
    ) -> int:
        """The start of the next window with posts (at most one past ``last``); the silent windows
        skipped count as zero volume in the spike baseline. ``keys``: the held buckets in order."""
        i = bisect_left(keys, ns)
        target = _floor(keys[i], step) - size + step if i < len(keys) else last + step
        target = min(max(target, ns + step), last + step)
        # windows that end before the segment's first post are not silence: no zeros
        since = ns if self.born is None else max(ns, _floor(self.born, step) - size + step)
        history.push_zeros(max(0, (target - since) // step), params)
        return target

    def _fire(
        self, rules: Sequence[Rule], end: int, record: dict[str, Any], spikes: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The triggers a closed window fires: each rule out of its cooldown whose conditions hold."""
        fired = []
        for rule in rules:
            last = self.cooldown.get(rule.name)
            if last is not None and end - last < rule.cooldown_ms:
                continue
            figures = rule_fires(rule, record, spikes)
            if figures is not None:
                self.cooldown[rule.name] = end
                fired.append(trigger_record(rule, record, figures, spikes))
        return fired

    def _prune(self, spec: WindowSpec, rules: Sequence[Rule]) -> None:
        starts = [self.next_start[k] for k in WINDOW_KINDS]
        if all(s is not None for s in starts):
            oldest_open = min(s for s in starts if s is not None)
            for b in [b for b in self.buckets if b < oldest_open]:
                del self.buckets[b]
        # cooldowns: forget the ones that end before any window still to close
        if self.cooldown:
            by_name = {r.name: r for r in rules}
            ends = [s + size for kind, size, _ in spec.kinds() if (s := self.next_start[kind]) is not None]
            next_end = min(ends) if ends else None
            for name in list(self.cooldown):
                rule = by_name.get(name)
                if rule is not None and next_end is not None and next_end - self.cooldown[name] >= rule.cooldown_ms:
                    del self.cooldown[name]
