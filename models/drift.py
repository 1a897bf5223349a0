"""Concept drift on the error stream: an ADWIN detector that only counts a *rise* in the error rate,
and :class:`ClassDrift`, which tells a change of meaning from a new class or a burst.

ADWIN also fires when the error falls (a model still learning), which must not unlearn a model that is
getting better, so the detector here ignores falls.

>>> d = DriftDetector()
>>> rises = [d.update(i >= 1500) for i in range(3000)]
>>> at = next(i for i, r in enumerate(rises) if r is not None)
>>> 1500 < at < 1600, any(r is not None for r in rises[:1500]), round(rises[at], 2)
(True, False, 0.02)
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Hashable, Mapping

import numpy as np
from river import base
from river._river_rust.drift import AdaptiveWindowing


class ADWIN(base.DriftDetector):
    """River's ADWIN detector (``river.drift.ADWIN`` of River 0.2x): the same Rust window,
    parameters and state, so that checkpoints name it as River's class, which this version and
    earlier ones read (see ``stream.pipeline.learner.CHECKPOINT_CLASSES``). It is defined here
    because importing ``river.drift`` imports scipy and scikit-learn for its other detectors:
    about 95 MB in every worker process, which uses none of them.

    Parameters
    ----------
    delta
        Significance value (larger: earlier and more often).
    clock, max_buckets, min_window_length, grace_period
        As River's.

    >>> d = ADWIN()
    >>> at = [i for i in range(2000) if (d.update(1.0 if i >= 1000 else 0.0), d.drift_detected)[1]]
    >>> 1000 < at[0] < 1100, round(d.estimation, 2)
    (True, 1.0)
    """

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ):
        super().__init__()
        self.delta = delta
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self._helper = AdaptiveWindowing(
            delta=self.delta,
            clock=self.clock,
            max_buckets=self.max_buckets,
            min_window_length=self.min_window_length,
            grace_period=self.grace_period,
        )

    @property
    def width(self) -> int:
        """Items in the window."""
        return int(self._helper.get_width())

    @property
    def estimation(self) -> float:
        """The mean of the window."""
        width = self.width
        return float(self._helper.get_total()) / width if width else 0.0

    def update(self, x: int | float) -> None:
        """Add ``x`` to the window; :attr:`drift_detected` says whether it showed a change."""
        if self.drift_detected:
            self._reset()
        self._drift_detected = self._helper.update(x)


class DriftDetector:
    """``update(error)`` returns the error rate the window had when it is found to have risen (the
    window then starts again), else ``None``.

    Parameters
    ----------
    delta
        ADWIN's confidence (larger: earlier and more often).
    """

    def __init__(self, delta: float = 0.002):
        self.delta = delta
        self._drift = ADWIN(delta=delta)

    def update(self, error: bool) -> float | None:
        before = self._drift.estimation
        self._drift.update(float(error))
        if self._drift.drift_detected and self._drift.estimation > before:
            self._drift = ADWIN(delta=self.delta)
            return float(before)
        return None

    @property
    def error_rate(self) -> float:
        """The error rate over the detector's current window."""
        return float(self._drift.estimation)


class ClassDrift:
    """Concept drift told apart from a new class and from a change of the label mix.

    The errors are counted per class of the true label, each class on its own detector
    (:class:`DriftDetector`: only a rise counts), and only once the class is established (the model
    has learned ``established`` of its labels): the first labels of a new class are errors that are
    no drift. A burst of one class changes nothing for the others' detectors, since their labels do
    not come. A drift is the error of a known class rising: the same words now carry another label.
    Only that class is then unlearned (:meth:`update` says so); the others keep what they know.

    >>> d = ClassDrift(established=20)
    >>> {d.update("a", None if i == 0 else "b") for i in range(20)}  # a new class: not counted
    {None}
    >>> ok = [d.update(y, y) for _ in range(300) for y in "ab"]  # both learned, then a burst of "a":
    >>> {d.update("a", "a") for _ in range(2000)}  # no drift from a change of the mix
    {None}
    >>> rises = [d.update("b", "a") for _ in range(200)]  # "b" now means what "a" meant
    >>> next(i for i, r in enumerate(rises) if r is not None)
    39
    """

    def __init__(self, established: int = 30, delta: float = 0.002):
        self.established = established
        self.delta = delta
        self.learned: Counter[Hashable] = Counter()
        self.detectors: dict[Hashable, DriftDetector] = {}

    def update(self, y: Hashable, predicted: Hashable | None) -> float | None:
        """Count the label ``y`` and what the model predicted before learning it (``None``: nothing to
        score). When the class of ``y`` drifted, returns the error rate it rose from (and forgets its
        history); else ``None``."""
        known = self.learned[y] >= self.established
        self.learned[y] += 1
        if not known or predicted is None:
            return None
        detector = self.detectors.get(y)
        if detector is None:
            detector = self.detectors[y] = DriftDetector(self.delta)
        rose_from = detector.update(predicted != y)
        if rose_from is not None:
            self.forget(y)
        return rose_from

    def forget(self, y: Hashable) -> None:
        """Start ``y`` again as a new class."""
        self.learned.pop(y, None)
        self.detectors.pop(y, None)


class ClassCentroids:
    """What each class's posts have looked like over its life: told apart from what they look like now,
    a change of meaning is known from forgetting and from a new sub-topic.

    When a class's error rises (:class:`ClassDrift`), either its posts now carry the meaning another
    class had (a change of meaning: its recent posts look like that class's), or the model forgot the
    class during a long burst of others, or the class gained a sub-topic the model has not learned yet
    (in both, its recent posts still look more like its own past than like any other class). Only the
    first is a drift to unlearn. :meth:`nearest` says which class the recent posts of a class are
    closest to, by cosine against each class's centroid.

    A centroid is the sum of L2-normalised posts folded into ``2**bits`` dimensions (a collision in a
    post drops one of its words: a direction needs no more): of every one of the first ``dense`` posts
    of the class, then of one in every ``sample`` (a mean needs no more; folding a post costs ~12 µs,
    which would add 40% to the cost of learning a label); the last ``recent`` posts of each class are
    kept as they are (the dictionaries the featurizer made).

    >>> c = ClassCentroids(bits=8, dense=1, sample=1, recent=4)
    >>> for i in range(20):
    ...     c.add({1: 1.0, 2: 1.0, 100 + i % 3: 0.5}, "sports"); c.add({50: 1.0, 51: 1.0}, "music")
    >>> c.nearest("sports")  # its posts still look like its own
    'sports'
    >>> for _ in range(4):
    ...     c.add({50: 1.0, 51: 1.0}, "sports")  # what "music" meant now comes labelled "sports"
    >>> c.nearest("sports")
    'music'
    """

    def __init__(self, bits: int = 14, dense: int = 64, sample: int = 32, recent: int = 16):
        self.mask = (1 << bits) - 1
        self.dense = dense
        self.sample = sample
        self.sums: dict[Hashable, np.ndarray] = {}
        self.seen: dict[Hashable, int] = {}
        self.recent: dict[Hashable, deque[Mapping[int, float]]] = {}
        self.n_recent = recent

    def _vector(self, x: Mapping[int, float]) -> tuple[np.ndarray, np.ndarray]:
        idx = np.fromiter(x.keys(), np.int64, len(x)) & self.mask
        w = np.fromiter(x.values(), np.float32, len(x))
        norm = math.sqrt(float(w @ w))
        return idx, (w / norm if norm else w)

    def add(self, x: Mapping[int, float], y: Hashable) -> None:
        """A post ``x`` (hashed features) learned with label ``y``."""
        ring = self.recent.get(y)
        if ring is None:
            ring = self.recent[y] = deque(maxlen=self.n_recent)
        ring.append(x)
        n = self.seen.get(y, 0)
        self.seen[y] = n + 1
        if (n >= self.dense and n % self.sample) or not x:
            return
        total = self.sums.get(y)
        if total is None:
            total = self.sums[y] = np.zeros(self.mask + 1, np.float32)
        idx, w = self._vector(x)
        total[idx] += w

    def nearest(self, y: Hashable) -> Hashable | None:
        """The class whose centroid the recent posts of ``y`` are closest to; ``None`` without a
        centroid of ``y`` and of one other class to compare with."""
        ring = self.recent.get(y)
        if not ring or y not in self.sums or len(self.sums) < 2:
            return None
        now = np.zeros(self.mask + 1, np.float32)
        for x in ring:
            if x:
                idx, w = self._vector(x)
                now[idx] += w

        def cosine(total: np.ndarray) -> float:
            norms = float(np.linalg.norm(total) * np.linalg.norm(now))
            return float(total @ now) / norms if norms else 0.0

        return max(self.sums, key=lambda c: cosine(self.sums[c]))

    def forget(self, y: Hashable) -> None:
        """Start ``y`` again: its centroid is what it means from now on."""
        self.sums.pop(y, None)
        self.seen.pop(y, None)
        self.recent.pop(y, None)
