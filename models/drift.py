"""Concept drift on the error stream: ADWIN detectors that only count a *rise* in the error rate.

A warning (a sensitive detector) starts a background model; a drift (a strict detector) replaces
the live model by it. ADWIN also fires when the error falls (a model still learning), which must
not replace a model that is getting better, so the detectors here ignore falls.

>>> d = DriftDetector()
>>> states = [d.update(i >= 1500) for i in range(3000)]
>>> 1500 < states.index("drift") < 1600, states[:1500].count("drift")
(True, 0)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable

from river import drift


class DriftDetector:
    """``update(error)`` returns ``None``, ``"warning"`` or ``"drift"``.

    Parameters
    ----------
    warning_delta
        ADWIN confidence of the warning detector (larger: earlier and more often).
    drift_delta
        ADWIN confidence of the drift detector.
    """

    def __init__(self, warning_delta: float = 0.01, drift_delta: float = 0.002):
        self.warning_delta = warning_delta
        self.drift_delta = drift_delta
        self.reset()

    def reset(self) -> None:
        self._warning = drift.ADWIN(delta=self.warning_delta)
        self._drift = drift.ADWIN(delta=self.drift_delta)

    @staticmethod
    def _rose(detector: drift.ADWIN, error: bool) -> bool:
        before = detector.estimation
        detector.update(float(error))
        return detector.drift_detected and detector.estimation > before

    def update(self, error: bool) -> str | None:
        warned = self._rose(self._warning, error)
        if self._rose(self._drift, error):
            self.reset()
            return "drift"
        return "warning" if warned else None

    @property
    def error_rate(self) -> float:
        """The error rate over the drift detector's current window."""
        return float(self._drift.estimation)


class ClassDrift:
    """Concept drift told apart from a new class and from a change of the label mix.

    The errors are counted per class of the true label, each class on its own detector
    (:class:`DriftDetector`: only a rise counts), and only once the class is established (the model
    has learned ``established`` of its labels): the first labels of a new class are errors that are
    no drift. A burst of one class changes nothing for the others' detectors, since their labels do
    not come. A drift is the error of a known class rising: the same words now carry another label.
    Only that class is then unlearned (:meth:`update` returns it); the others keep what they know.

    >>> d = ClassDrift(established=20)
    >>> [d.update("a", None if i == 0 else "b") for i in range(20)].count(None)  # new: not counted
    20
    >>> ok = [d.update(y, y) for _ in range(300) for y in "ab"]  # both learned, then a burst of "a":
    >>> [d.update("a", "a") for _ in range(2000)].count(None)  # no drift from a change of the mix
    2000
    >>> changes = [d.update("b", "a") for _ in range(200)]  # "b" now means what "a" meant
    >>> next(i for i, c in enumerate(changes) if c), changes[next(i for i, c in enumerate(changes) if c)]
    (39, 'b')
    """

    def __init__(self, established: int = 30, warning_delta: float = 0.01, drift_delta: float = 0.002):
        self.established = established
        self.warning_delta = warning_delta
        self.drift_delta = drift_delta
        self.learned: Counter[Hashable] = Counter()
        self.detectors: dict[Hashable, DriftDetector] = {}

    def update(self, y: Hashable, predicted: Hashable | None) -> Hashable | None:
        """Count the label ``y`` and what the model predicted before learning it (``None``: nothing to
        score); returns ``y`` when its class drifted (and forgets its history), else ``None``."""
        known = self.learned[y] >= self.established
        self.learned[y] += 1
        if not known or predicted is None:
            return None
        detector = self.detectors.get(y)
        if detector is None:
            detector = self.detectors[y] = DriftDetector(self.warning_delta, self.drift_delta)
        if detector.update(predicted != y) != "drift":
            return None
        self.forget(y)
        return y

    def error_rate(self, y: Hashable) -> float:
        """The error rate over the window of ``y``'s detector (0 before it is established)."""
        detector = self.detectors.get(y)
        return detector.error_rate if detector is not None else 0.0

    def forget(self, y: Hashable) -> None:
        """Start ``y`` again as a new class."""
        self.learned.pop(y, None)
        self.detectors.pop(y, None)
