"""Spike detection per segment: a robust z-score of a closed window against its trailing baseline.

A window's value (its volume, or its mean sentiment) is compared with the same segment's previous
``baseline`` windows of the same kind: ``z = (value - median) / scale`` where ``scale`` is the
median absolute deviation scaled by 1.4826 (the standard deviation for normal data), floored so a
flat baseline cannot give an infinite z. A spike fires when ``|z| >= threshold`` in an allowed
direction and at least ``min_history`` windows are in the baseline.

>>> p = SpikeParams(min_history=5)
>>> h = Baseline()
>>> for v in (10, 11, 9, 10, 12, 10):
...     h.push(v, None, p)
>>> robust_z(40, h.volume, floor_abs=1.0, floor_rel=0.1)
(10.0, 1.0, 30.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median
from typing import TYPE_CHECKING, Any

from stream.schemas import SCHEMA_VERSION

if TYPE_CHECKING:
    from stream.settings import Settings

MAD_SCALE = 1.4826  # MAD of a normal distribution → its standard deviation
Z_MARGIN = 1e-3  # more than the rounding of z to 4 places: :func:`may_spike` never misses a spike
SPIKE_METRICS = ("volume", "sentiment")


@dataclass(frozen=True, slots=True)
class SpikeParams:
    """How spikes are detected (one set for every segment).

    Parameters
    ----------
    baseline : int
        Windows of the same segment and kind in the trailing baseline (also the most zero-volume
        windows filled in after a silence).
    min_history : int
        Windows needed in the baseline before any spike can fire.
    threshold : float
        Smallest ``|z|`` that is a spike.
    volume_floor : float
        Smallest scale of the volume baseline, in posts.
    volume_floor_rel : float
        Smallest scale of the volume baseline, as a share of its median.
    sentiment_floor : float
        Smallest scale of the sentiment baseline (mean sentiment lies in [-1, 1]).
    sentiment_min_volume : int
        Windows with fewer posts neither enter the sentiment baseline nor raise a sentiment spike.
    volume_down : bool
        Also report volume drops (only windows with posts are tested: a silent window is no record).

    >>> SpikeParams(min_history=0)
    Traceback (most recent call last):
    ...
    ValueError: spike min_history must be between 1 and baseline (30), not 0
    """

    baseline: int = 30
    min_history: int = 10
    threshold: float = 3.5
    volume_floor: float = 1.0
    volume_floor_rel: float = 0.1
    sentiment_floor: float = 0.05
    sentiment_min_volume: int = 20
    volume_down: bool = False

    def __post_init__(self) -> None:
        if self.baseline < 1:
            raise ValueError(f"spike baseline must be a positive number of windows, not {self.baseline}")
        if not 1 <= self.min_history <= self.baseline:
            raise ValueError(
                f"spike min_history must be between 1 and baseline ({self.baseline}), not {self.min_history}"
            )
        if not self.threshold > 0:
            raise ValueError(f"spike threshold must be positive, not {self.threshold}")
        if self.volume_floor <= 0 or self.sentiment_floor <= 0 or self.volume_floor_rel < 0:
            raise ValueError("spike scale floors must be positive")
        if self.sentiment_min_volume < 1:
            raise ValueError(f"spike sentiment_min_volume must be positive, not {self.sentiment_min_volume}")

    @classmethod
    def from_settings(cls, settings: Settings) -> SpikeParams:
        """The detection ``STREAM_SPIKE_*`` asks for (the other parameters at their defaults).

        >>> from stream.settings import Settings
        >>> p = SpikeParams.from_settings(Settings(spike_history=5, spike_threshold=3.0))
        >>> p.baseline, p.min_history, p.threshold
        (5, 5, 3.0)
        """
        history = settings.spike_history
        return cls(baseline=history, threshold=settings.spike_threshold, min_history=min(10, history))


def robust_z(
    value: float, history: Sequence[float], floor_abs: float, floor_rel: float = 0.0
) -> tuple[float, float, float]:
    """``(median, scale, z)`` of ``value`` against ``history`` (not empty).

    ``scale = max(1.4826 * MAD, floor_abs, floor_rel * |median|)``; results rounded to 4 places.

    >>> robust_z(5, [5, 5, 5, 5], floor_abs=1.0)
    (5.0, 1.0, 0.0)
    >>> robust_z(-0.6, [0.1, 0.0, 0.2, 0.3, 0.1], floor_abs=0.05)
    (0.1, 0.1483, -4.7214)
    """
    med = float(median(history))
    mad = float(median(abs(x - med) for x in history))
    scale = max(MAD_SCALE * mad, floor_abs, floor_rel * abs(med))
    return round(med, 4), round(scale, 4), round((value - med) / scale, 4)


def may_spike(value: float, history: Sequence[float], floor_abs: float, floor_rel: float, threshold: float) -> bool:
    """Whether ``|z|`` of ``value`` against ``history`` can reach ``threshold``, from the median alone.

    The scale of :func:`robust_z` is at least its floors, so when ``|value - median|`` is below
    ``threshold`` times the floors no spike is possible and the MAD need not be computed (most closed
    windows: a quiet hashtag's single post against a baseline of silence).

    >>> may_spike(3, [0] * 20, 1.0, 0.1, 3.5), may_spike(4, [0] * 20, 1.0, 0.1, 3.5)
    (False, True)
    >>> may_spike(125, [100] * 20, 1.0, 0.1, 3.5), may_spike(135, [100] * 20, 1.0, 0.1, 3.5)
    (False, True)
    """
    med = median(history)
    return abs(value - med) >= (threshold - Z_MARGIN) * max(floor_abs, floor_rel * abs(med))


class Baseline:
    """The trailing baseline of one segment and window kind: recent volumes and mean sentiments.

    Lists, oldest first, each at most ``params.baseline`` long; JSON-able via :meth:`to_dict`.

    >>> h = Baseline(); p = SpikeParams(baseline=3, min_history=1)
    >>> for v in range(5):
    ...     h.push(v * 10, 0.5 if v % 2 else None, p)
    >>> h.to_dict(), Baseline.from_dict(h.to_dict()).to_dict() == h.to_dict()
    ({'volume': [20, 30, 40], 'sentiment': [0.5, 0.5]}, True)
    """

    __slots__ = ("sentiment", "volume")

    def __init__(self, volume: list[float] | None = None, sentiment: list[float] | None = None):
        self.volume: list[float] = volume if volume is not None else []
        self.sentiment: list[float] = sentiment if sentiment is not None else []

    def push(self, volume: float, sentiment: float | None, params: SpikeParams) -> None:
        """Add a closed window (``sentiment`` ``None``: too few posts to count)."""
        self.volume.append(volume)
        if len(self.volume) > params.baseline:
            del self.volume[: len(self.volume) - params.baseline]
        if sentiment is not None:
            self.sentiment.append(sentiment)
            if len(self.sentiment) > params.baseline:
                del self.sentiment[: len(self.sentiment) - params.baseline]

    def push_zeros(self, count: int, params: SpikeParams) -> None:
        """Add ``count`` silent windows (at most ``params.baseline`` are kept, so the work is capped)."""
        count = min(count, params.baseline)
        if count > 0:
            self.volume.extend([0] * count)
            if len(self.volume) > params.baseline:
                del self.volume[: len(self.volume) - params.baseline]

    def to_dict(self) -> dict[str, list[float]]:
        return {"volume": list(self.volume), "sentiment": list(self.sentiment)}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Baseline:
        d = d or {}
        return cls(list(d.get("volume", [])), list(d.get("sentiment", [])))


@dataclass(frozen=True, slots=True)
class Spike:
    """A closed window whose volume or mean sentiment is far from the segment's baseline."""

    segment: str
    kind: str
    window_start: int
    window_end: int
    metric: str  # "volume" | "sentiment"
    observed: float
    baseline: float  # the median of the trailing windows
    scale: float
    z: float
    direction: str  # "up" | "down"
    history: int  # windows in the baseline

    @property
    def id(self) -> str:
        return f"{self.segment}|{self.kind}|{self.window_start}|{self.metric}"

    def to_record(self) -> dict[str, Any]:
        """The JSON record published for the spike.

        >>> Spike("all", "tumbling", 0, 60000, "volume", 90, 60.0, 6.0, 5.0, "up", 30).to_record()["id"]
        'all|tumbling|0|volume'
        """
        return {
            "type": "spike",
            "segment": self.segment,
            "kind": self.kind,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "metric": self.metric,
            "observed": self.observed,
            "baseline": self.baseline,
            "scale": self.scale,
            "z": self.z,
            "direction": self.direction,
            "history": self.history,
            "id": self.id,
            "schema_version": SCHEMA_VERSION,
        }


def detect(
    segment: str,
    kind: str,
    start: int,
    end: int,
    volume: int,
    mean_sentiment: float | None,
    history: Baseline,
    params: SpikeParams,
) -> list[Spike]:
    """Spikes of one closed window with posts, against ``history`` (the windows before it).

    Does not change ``history``: push the window afterwards.

    >>> p = SpikeParams(min_history=3, sentiment_min_volume=5)
    >>> h = Baseline([20, 21, 19, 20], [0.2, 0.25, 0.2, 0.15])
    >>> [(s.metric, s.direction, s.z) for s in detect("all", "tumbling", 0, 60, 45, -0.5, h, p)]
    [('volume', 'up', 12.5), ('sentiment', 'down', -14.0)]
    >>> detect("all", "tumbling", 0, 60, 45, -0.5, Baseline([20, 21]), p)  # too little history
    []
    """
    out: list[Spike] = []
    if len(history.volume) >= params.min_history and may_spike(
        volume, history.volume, params.volume_floor, params.volume_floor_rel, params.threshold
    ):
        med, scale, z = robust_z(volume, history.volume, params.volume_floor, params.volume_floor_rel)
        if z >= params.threshold or (params.volume_down and z <= -params.threshold):
            out.append(
                Spike(
                    segment,
                    kind,
                    start,
                    end,
                    "volume",
                    volume,
                    med,
                    scale,
                    z,
                    "up" if z > 0 else "down",
                    len(history.volume),
                )
            )
    if (
        mean_sentiment is not None
        and volume >= params.sentiment_min_volume
        and len(history.sentiment) >= params.min_history
        and may_spike(mean_sentiment, history.sentiment, params.sentiment_floor, 0.0, params.threshold)
    ):
        med, scale, z = robust_z(mean_sentiment, history.sentiment, params.sentiment_floor)
        if abs(z) >= params.threshold:
            out.append(
                Spike(
                    segment,
                    kind,
                    start,
                    end,
                    "sentiment",
                    mean_sentiment,
                    med,
                    scale,
                    z,
                    "up" if z > 0 else "down",
                    len(history.sentiment),
                )
            )
    return out
