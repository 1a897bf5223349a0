"""A multinomial naive Bayes with River's maths, written for speed.

River's :class:`river.naive_bayes.MultinomialNB` computes, for every class and every feature,
``log((n_fc + alpha) / (n_c + alpha * n_terms))`` through method calls and ``Counter`` lookups.
This one computes the same joint log-likelihood as

``log P(c) + sum_f x_f log(alpha) + sum_{f seen with c} x_f (log(n_fc + alpha) - log(alpha))
- (sum_f x_f) log(n_c + alpha * n_terms)``

so that it touches only the (feature, class) pairs that were seen, in one pass over ``x``.
Probabilities equal River's to floating-point rounding (``tests/unit/test_nb.py``).

>>> model = MultinomialNB()
>>> model.learn_one({"ball": 2, "goal": 1}, "sports")
>>> model.learn_one({"vote": 2, "law": 1}, "politics")
>>> model.predict_one({"goal": 1})
'sports'
>>> {c: round(p, 3) for c, p in model.predict_proba_one({"vote": 1}).items()}
{'sports': 0.25, 'politics': 0.75}
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any

from river import base

from models.delta import Tracking

__all__ = ["MultinomialNB"]


class MultinomialNB(Tracking, base.Classifier):
    """Multinomial naive Bayes for count features, same maths as River's.

    Parameters
    ----------
    alpha
        Additive (Laplace/Lidstone) smoothing parameter.
    prior
        ``"empirical"`` (River's: each class's share of the labels) or ``"uniform"``: every known
        class equally likely a priori, so that a rare interest is not outvoted by its rarity alone
        (class imbalance; the likelihoods still come from the counts).

    >>> empirical, uniform = MultinomialNB(), MultinomialNB(prior="uniform")
    >>> for nb in (empirical, uniform):
    ...     for _ in range(9):
    ...         nb.learn_one({"a": 1.0, "b": 1.0}, "common")
    ...     nb.learn_one({"a": 1.0, "c": 1.0}, "rare")
    >>> x = {"a": 1.0}   # as typical of either class
    >>> round(empirical.predict_proba_one(x)["rare"], 3), round(uniform.predict_proba_one(x)["rare"], 3)
    (0.085, 0.457)
    """

    def __init__(self, alpha: float = 1.0, prior: str = "empirical"):
        if prior not in ("empirical", "uniform"):
            raise ValueError(f"prior must be 'empirical' or 'uniform', not {prior!r}")
        self.alpha = alpha
        self.prior = prior
        self.class_counts: dict[base.typing.ClfTarget, int] = {}
        self.class_totals: dict[base.typing.ClfTarget, float] = {}
        self.feature_counts: dict[Hashable, dict[base.typing.ClfTarget, float]] = {}

    @property
    def _multiclass(self) -> bool:
        return True

    def take_delta(self) -> dict[str, Any]:
        """The class counts and totals, and the counts of the features learned since the last call.

        >>> learner, replica = MultinomialNB(), MultinomialNB()
        >>> learner.track(); learner.learn_one({"a": 1.0}, "x"); learner.learn_one({"b": 2.0}, "y")
        >>> replica.apply_delta(learner.take_delta())
        >>> replica.predict_proba_one({"b": 1.0}) == learner.predict_proba_one({"b": 1.0})
        True
        """
        keys = {f for part in self.take_touched() for f in part}
        fc = self.feature_counts
        return {
            "class_counts": dict(self.class_counts),
            "class_totals": dict(self.class_totals),
            "features": [[f, dict(fc[f])] for f in keys],
        }

    def apply_delta(self, delta: dict[str, Any]) -> None:
        """Take over a :meth:`take_delta` of the learner's model (on a read-only replica)."""
        self.class_counts = dict(delta["class_counts"])
        self.class_totals = dict(delta["class_totals"])
        for f, counts in delta["features"]:
            self.feature_counts[f] = dict(counts)

    def _more_tags(self) -> set[str]:
        from river.base import tags

        return {tags.POSITIVE_INPUT}

    @property
    def classes_(self) -> list[base.typing.ClfTarget]:
        return list(self.class_counts)

    @property
    def n_terms(self) -> int:
        return len(self.feature_counts)

    def learn_one(self, x: Mapping[Any, float], y: base.typing.ClfTarget) -> None:
        if self._touched is not None:
            self._touched.append(list(x))
        self.class_counts[y] = self.class_counts.get(y, 0) + 1
        fc = self.feature_counts
        total = 0.0
        for f, v in x.items():
            per_class = fc.get(f)
            if per_class is None:
                fc[f] = {y: v}
            else:
                per_class[y] = per_class.get(y, 0.0) + v
            total += v
        self.class_totals[y] = self.class_totals.get(y, 0.0) + total

    def forget_class(self, y: base.typing.ClfTarget) -> None:
        """Unlearn class ``y``: its counts dropped (its meaning changed)."""
        if self.class_counts.pop(y, None) is None:
            return
        self.class_totals.pop(y, None)
        for per_class in self.feature_counts.values():
            per_class.pop(y, None)

    def joint_log_likelihood(self, x: Mapping[Any, float]) -> dict[base.typing.ClfTarget, float]:
        if not self.class_counts:
            return {}
        log = math.log
        alpha = self.alpha
        log_alpha = log(alpha)
        fc = self.feature_counts
        extra = dict.fromkeys(self.class_counts, 0.0)
        mass = 0.0
        for f, v in x.items():
            mass += v
            per_class = fc.get(f)
            if per_class is not None:
                for c, n in per_class.items():
                    extra[c] += v * (log(n + alpha) - log_alpha)
        n_docs = sum(self.class_counts.values())
        smooth = alpha * len(fc)
        base_ll = mass * log_alpha
        uniform = getattr(self, "prior", "empirical") == "uniform"  # checkpoints from before the option
        return {
            c: (0.0 if uniform else log(n_c / n_docs)) + base_ll + extra[c] - mass * log(self.class_totals[c] + smooth)
            for c, n_c in self.class_counts.items()
        }

    def predict_proba_one(self, x: Mapping[Any, float], **kwargs: Any) -> dict[base.typing.ClfTarget, float]:
        jll = self.joint_log_likelihood(x)
        if not jll:
            return {}
        top = max(jll.values())
        exp = {c: math.exp(ll - top) for c, ll in jll.items()}
        z = sum(exp.values())
        return {c: e / z for c, e in exp.items()}
