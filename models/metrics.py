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

from collections import Counter, deque
from collections.abc import Hashable, Iterable
from typing import Any


class Confusion:
    """Counts of (truth, prediction) pairs, from which accuracy, macro-F1 and Cohen's kappa are
    computed with River's definitions (:mod:`river.metrics`), only when asked: updating is three
    dict increments (a worker scores every label; River's metrics keep a confusion matrix each).

    >>> cm = Confusion()
    >>> for y, p in [("a", "a"), ("a", "b"), ("b", "b"), ("c", "b")]:
    ...     cm.add(y, p)
    >>> {k: round(v, 4) for k, v in cm.figures().items()}
    {'accuracy': 0.5, 'macro_f1': 0.3889, 'kappa': 0.2727}
    >>> cm.add("c", "b", -1); round(cm.figures()["macro_f1"], 4)   # reverted (a rolling window)
    0.6667
    """

    def __init__(self) -> None:
        self.pairs: dict[tuple[Hashable, Hashable], int] = {}
        self.rows: dict[Hashable, int] = {}
        self.cols: dict[Hashable, int] = {}
        self.total = 0
        self.correct = 0

    @classmethod
    def of(cls, pairs: Iterable[tuple[Hashable, Hashable]]) -> Confusion:
        """The counts of ``pairs`` of (truth, prediction), counted at once.

        >>> Confusion.of([("a", "a"), ("a", "b"), ("a", "a")]).figures()["accuracy"]
        0.6666666666666666
        """
        cm = cls()
        for (y, p), n in Counter(pairs).items():
            cm.add(y, p, n)
        return cm

    def add(self, y_true: Hashable, y_pred: Hashable, n: int = 1) -> None:
        key = (y_true, y_pred)
        self.pairs[key] = self.pairs.get(key, 0) + n
        self.rows[y_true] = self.rows.get(y_true, 0) + n
        self.cols[y_pred] = self.cols.get(y_pred, 0) + n
        self.total += n
        if y_true == y_pred:
            self.correct += n

    def _precision_recall_f1(self, c: Hashable) -> tuple[float, float, float]:
        tp, predicted, support = self.pairs.get((c, c), 0), self.cols.get(c, 0), self.rows.get(c, 0)
        p = tp / predicted if predicted else 0.0
        r = tp / support if support else 0.0
        return p, r, 2 * p * r / (p + r) if tp else 0.0

    def per_class(self) -> dict[str, dict[str, float]]:
        """Precision, recall, F1 and support of each class seen (as truth or as prediction)."""
        out = {}
        for c in sorted(set(self.rows) | set(self.cols), key=str):
            p, r, f1 = self._precision_recall_f1(c)
            out[str(c)] = {"precision": p, "recall": r, "support": self.rows.get(c, 0), "f1": f1}
        return out

    def figures(self) -> dict[str, float]:
        rows, cols, total = self.rows, self.cols, self.total
        classes = {c for c, n in rows.items() if n} | {c for c, n in cols.items() if n}
        f1 = 0.0
        pe = 0.0
        for c in classes:
            f1 += self._precision_recall_f1(c)[2]
            pe += (rows.get(c, 0) / total) * (cols.get(c, 0) / total)
        p0 = self.correct / total if total else 0.0
        return {
            "accuracy": p0,
            "macro_f1": f1 / len(classes) if classes else 0.0,
            "kappa": (p0 - pe) / (1 - pe) if pe != 1 else 0.0,
        }


class Prequential:
    """Accuracy, macro-F1 and Cohen's kappa, overall and over the last ``window`` labels.

    Predictions of ``None`` (a model that has seen no label yet) are not scored, as in
    :func:`river.evaluate.progressive_val_score`; they are counted in ``unscored``.

    An update counts the pair overall and keeps it among the last ``window``; those are counted only
    when a :meth:`snapshot` asks (a learner scores every label, and takes a snapshot once a second).
    """

    def __init__(self, window: int = 1000):
        self.window = window
        self.n = 0
        self.unscored = 0
        self._overall = Confusion()
        self._recent: deque[tuple[Hashable, Hashable]] = deque(maxlen=window)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Checkpoints of 0.13 and before also kept the window's counts, and the pairs without a bound.
        state.pop("_rolling", None)
        state["_recent"] = deque(state["_recent"], maxlen=state["window"])
        self.__dict__.update(state)

    def update(self, y_true: Hashable, y_pred: Hashable | None) -> None:
        if y_pred is None:
            self.unscored += 1
            return
        self.n += 1
        self._overall.add(y_true, y_pred)
        self._recent.append((y_true, y_pred))

    @property
    def classes(self) -> list[Hashable]:
        return sorted((c for c, n in self._overall.rows.items() if n), key=str)

    def snapshot(self) -> dict[str, Any]:
        """Figures as a JSON-ready dict."""
        return {
            "n": self.n,
            "unscored": self.unscored,
            **self._overall.figures(),
            "rolling": {"window": self.window, **Confusion.of(self._recent).figures()},
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

    def update(
        self,
        y_true: Hashable,
        proba: dict[Hashable, float],
        at_ms: int = 0,
        segments: dict[str, str | None] | None = None,
    ) -> None:
        """One prediction (class probabilities, empty before the model knows any class) and its label."""
        if not proba:
            self.unscored += 1
            return
        y_pred = max(proba, key=proba.__getitem__)
        self.rows.append(
            (
                y_true,
                y_pred,
                float(proba.get(y_true, 0.0)),
                float(proba[y_pred]),
                at_ms,
                {k: str(v) for k, v in (segments or {}).items() if v is not None},
            )
        )

    @staticmethod
    def _confusion(rows: list[Any]) -> Confusion:
        cm = Confusion()
        for y, p, *_ in rows:
            cm.add(y, p)
        return cm

    @classmethod
    def _figures(cls, rows: list[Any]) -> dict[str, Any]:
        return {"n": len(rows), **cls._confusion(rows).figures()}

    def report(self) -> dict[str, Any]:
        """Everything, JSON-ready."""
        import math

        rows = self.rows
        overall = self._confusion(rows)
        out: dict[str, Any] = {"n": len(rows), **overall.figures(), "unscored": self.unscored}
        out["log_loss"] = sum(-math.log(max(r[2], self.EPS)) for r in rows) / len(rows) if rows else 0.0
        # calibration: top-class confidence against accuracy, in equal-width bins (ECE)
        bins: list[list[tuple[float, bool]]] = [[] for _ in range(self.bins)]
        for y, p, _, conf, *_ in rows:
            bins[min(int(conf * self.bins), self.bins - 1)].append((conf, y == p))
        out["calibration"] = {
            "ece": sum(abs(sum(c for c, _ in b) / len(b) - sum(ok for _, ok in b) / len(b)) * len(b) for b in bins if b)
            / len(rows)
            if rows
            else 0.0,
            "bins": [
                {"confidence": sum(c for c, _ in b) / len(b), "accuracy": sum(ok for _, ok in b) / len(b), "n": len(b)}
                for b in bins
                if b
            ],
        }
        out["per_class"] = overall.per_class()
        size = max(1, -(-len(rows) // self.n_blocks))
        out["blocks"] = [
            {**self._figures(rows[i : i + size]), "from_ms": rows[i][4], "to_ms": rows[min(i + size, len(rows)) - 1][4]}
            for i in range(0, len(rows), size)
        ]
        segments: dict[str, dict[str, list[Any]]] = {}
        for r in rows:
            for name, value in r[5].items():
                segments.setdefault(name, {}).setdefault(value, []).append(r)
        out["segments"] = {
            name: {v: self._figures(rs) for v, rs in sorted(groups.items())}
            for name, groups in sorted(segments.items())
        }
        return out
