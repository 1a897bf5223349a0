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
