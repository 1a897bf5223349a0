"""Prequential (test-then-train) quality: every label is scored against the prediction that was
made *before* the model learned from it.

>>> q = Prequential(window=2)
>>> for truth, pred in [("a", "a"), ("b", "a"), ("b", "b")]:
...     q.update(truth, pred)
>>> s = q.snapshot()
>>> s["n"], round(s["accuracy"], 3), round(s["rolling"]["accuracy"], 3)
(3, 0.667, 0.5)
"""
from __future__ import annotations

from typing import Any, Hashable

from river import metrics, utils


def _value(metric: Any) -> float:
    v = metric.get()
    return float(v) if v == v else 0.0  # NaN (nothing seen yet) reads as 0


class Prequential:
    """Accuracy, macro-F1 and Cohen's kappa, overall and over the last ``window`` labels.

    Predictions of ``None`` (a model that has seen no label yet) are not scored, as in
    :func:`river.evaluate.progressive_val_score`; they are counted in ``unscored``.
    """

    def __init__(self, window: int = 1000):
        self.window = window
        self.n = 0
        self.unscored = 0
        self._overall = (metrics.Accuracy(), metrics.MacroF1(), metrics.CohenKappa())
        self._rolling = tuple(utils.Rolling(m, window_size=window) for m in
                              (metrics.Accuracy(), metrics.MacroF1(), metrics.CohenKappa()))

    def update(self, y_true: Hashable, y_pred: Hashable | None) -> None:
        if y_pred is None:
            self.unscored += 1
            return
        self.n += 1
        for m in self._overall:
            m.update(y_true, y_pred)
        for m in self._rolling:
            m.update(y_true, y_pred)

    @property
    def classes(self) -> list[Hashable]:
        return sorted(self._overall[0].cm.classes, key=str)

    def snapshot(self) -> dict[str, Any]:
        """Figures as a JSON-ready dict."""
        acc, f1, kappa = (_value(m) for m in self._overall)
        racc, rf1, rkappa = (_value(m) for m in self._rolling)
        return {
            "n": self.n,
            "unscored": self.unscored,
            "accuracy": acc,
            "macro_f1": f1,
            "kappa": kappa,
            "rolling": {"window": self.window, "accuracy": racc, "macro_f1": rf1, "kappa": rkappa},
        }
