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


class Evaluation:
    """The full picture of a prequential run: overall figures with log-loss and calibration,
    per-class precision / recall, consecutive blocks of the stream, and per-segment figures (so a
    skew against one group of users shows).

    Each :meth:`update` is one scored prediction made *before* the model learned the label.

    >>> ev = Evaluation(blocks=2)
    >>> for i, (y, p) in enumerate([("a", {"a": .9, "b": .1}), ("b", {"a": .6, "b": .4}),
    ...                             ("b", {"a": .2, "b": .8}), ("a", {"a": .7, "b": .3})]):
    ...     ev.update(y, p, at_ms=i * 1000, segments={"platform": "x" if i < 2 else "y"})
    >>> r = ev.report()
    >>> r["n"], round(r["accuracy"], 2), round(r["log_loss"], 3), r["per_class"]["b"]["recall"]
    (4, 0.75, 0.4, 0.5)
    >>> [b["accuracy"] for b in r["blocks"]], {k: v["n"] for k, v in r["segments"]["platform"].items()}
    ([0.5, 1.0], {'x': 2, 'y': 2})
    """

    EPS = 1e-15

    def __init__(self, blocks: int = 10, calibration_bins: int = 10):
        self.n_blocks = blocks
        self.bins = calibration_bins
        self.rows: list[tuple[Hashable, Hashable, float, float, int, dict[str, str]]] = []
        self.unscored = 0

    def update(self, y_true: Hashable, proba: dict[Hashable, float], at_ms: int = 0,
               segments: dict[str, str | None] | None = None) -> None:
        """One prediction (class probabilities, empty before the model knows any class) and its label."""
        if not proba:
            self.unscored += 1
            return
        y_pred = max(proba, key=proba.__getitem__)
        self.rows.append((y_true, y_pred, float(proba.get(y_true, 0.0)), float(proba[y_pred]), at_ms,
                          {k: str(v) for k, v in (segments or {}).items() if v is not None}))

    @staticmethod
    def _figures(rows: list[Any]) -> dict[str, Any]:
        acc, f1, kappa = metrics.Accuracy(), metrics.MacroF1(), metrics.CohenKappa()
        for y, p, *_ in rows:
            for m in (acc, f1, kappa):
                m.update(y, p)
        return {"n": len(rows), "accuracy": _value(acc), "macro_f1": _value(f1), "kappa": _value(kappa)}

    def report(self) -> dict[str, Any]:
        """Everything, JSON-ready."""
        import math

        rows = self.rows
        out: dict[str, Any] = {**self._figures(rows), "unscored": self.unscored}
        out["log_loss"] = sum(-math.log(max(r[2], self.EPS)) for r in rows) / len(rows) if rows else 0.0
        # calibration: top-class confidence against accuracy, in equal-width bins (ECE)
        bins: list[list[tuple[float, bool]]] = [[] for _ in range(self.bins)]
        for y, p, _, conf, *_ in rows:
            bins[min(int(conf * self.bins), self.bins - 1)].append((conf, y == p))
        out["calibration"] = {
            "ece": sum(abs(sum(c for c, _ in b) / len(b) - sum(ok for _, ok in b) / len(b)) * len(b)
                       for b in bins if b) / len(rows) if rows else 0.0,
            "bins": [{"confidence": sum(c for c, _ in b) / len(b), "accuracy": sum(ok for _, ok in b) / len(b),
                      "n": len(b)} for b in bins if b],
        }
        classes = sorted({r[0] for r in rows} | {r[1] for r in rows}, key=str)
        per_class = {}
        for c in classes:
            tp = sum(1 for y, p, *_ in rows if y == c and p == c)
            predicted = sum(1 for _, p, *_ in rows if p == c)
            support = sum(1 for y, *_ in rows if y == c)
            precision = tp / predicted if predicted else 0.0
            recall = tp / support if support else 0.0
            per_class[str(c)] = {"precision": precision, "recall": recall, "support": support,
                                 "f1": 2 * precision * recall / (precision + recall) if tp else 0.0}
        out["per_class"] = per_class
        size = max(1, -(-len(rows) // self.n_blocks))
        out["blocks"] = [{**self._figures(rows[i:i + size]), "from_ms": rows[i][4],
                          "to_ms": rows[min(i + size, len(rows)) - 1][4]} for i in range(0, len(rows), size)]
        segments: dict[str, dict[str, list[Any]]] = {}
        for r in rows:
            for name, value in r[5].items():
                segments.setdefault(name, {}).setdefault(value, []).append(r)
        out["segments"] = {name: {v: self._figures(rs) for v, rs in sorted(groups.items())}
                           for name, groups in sorted(segments.items())}
        return out
