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

from collections import Counter
from collections.abc import Hashable

from river import drift


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
        self._drift = drift.ADWIN(delta=delta)

    def update(self, error: bool) -> float | None:
        before = self._drift.estimation
        self._drift.update(float(error))
        if self._drift.drift_detected and self._drift.estimation > before:
            self._drift = drift.ADWIN(delta=self.delta)
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
