"""Which River models the stream can run, by name.

The worker keeps the featurizer and the classifier apart (it stores the features it predicted
with, to learn from them when a delayed label arrives); :func:`make_pipeline` joins them into one
River pipeline for offline use.

>>> sorted(CANDIDATES)
['arow', 'arow-balanced', 'arow-nb', 'logreg', 'nb', 'nb-balanced', 'pa', 'river-nb', 'softmax']
>>> make_pipeline("nb")
Pipeline (
  PostFeaturizer (
    hash_bits=20
    bigrams=True
  ),
  MultinomialNB (
    alpha=0.5
    prior="empirical"
  )
)
"""

from __future__ import annotations

from collections.abc import Callable

from river import base, compose

from models.arow import AROWClassifier
from models.features import PostFeaturizer
from models.nb import MultinomialNB


def _fast_nb() -> base.Classifier:
    return MultinomialNB(alpha=0.5)


def _balanced_nb() -> base.Classifier:
    return MultinomialNB(alpha=0.5, prior="uniform")


def _arow(hash_bits: int = 20) -> base.Classifier:
    return AROWClassifier(r=0.1, hash_bits=hash_bits, nb_weight=0.03, nb_in_bursts=True, burst_offset_rate=0.1)


def _arow_nb(hash_bits: int = 20) -> base.Classifier:
    return AROWClassifier(r=0.1, hash_bits=hash_bits, nb_weight=0.03)


def _balanced_arow(hash_bits: int = 20) -> base.Classifier:
    return AROWClassifier(r=0.1, hash_bits=hash_bits, balanced=True)


# River's stock models are imported when one is made: their modules import scipy and scikit-learn,
# about 95 MB in a worker, which runs the models of this package.


def _river_nb() -> base.Classifier:
    from river import naive_bayes

    return naive_bayes.MultinomialNB(alpha=0.5)


# A River pipeline that ends in a classifier is a classifier (River dispatches on its last step), but
# its type is compose.Pipeline, which River does not declare a base.Classifier: hence the ignores.


def _logreg() -> base.Classifier:
    from river import linear_model, multiclass, optim, preprocessing

    return preprocessing.Normalizer() | multiclass.OneVsRestClassifier(  # type: ignore[return-value]
        linear_model.LogisticRegression(optimizer=optim.SGD(2.0), l2=0.0)
    )


def _softmax() -> base.Classifier:
    from river import linear_model, optim, preprocessing

    return preprocessing.Normalizer() | linear_model.SoftmaxRegression(optimizer=optim.SGD(2.0))  # type: ignore[return-value]


def _pa() -> base.Classifier:
    from river import linear_model, multiclass, preprocessing

    return preprocessing.Normalizer() | multiclass.OneVsRestClassifier(linear_model.PAClassifier(C=0.5, mode=1))  # type: ignore[return-value]


def _no_change() -> base.Classifier:
    from river import dummy

    return dummy.NoChangeClassifier()


def _prior() -> base.Classifier:
    from river import dummy

    return dummy.PriorClassifier()


CANDIDATES: dict[str, Callable[..., base.Classifier]] = {
    "nb": _fast_nb,
    "nb-balanced": _balanced_nb,
    "arow": _arow,
    "arow-balanced": _balanced_arow,
    "arow-nb": _arow_nb,
    "river-nb": _river_nb,
    "logreg": _logreg,
    "softmax": _softmax,
    "pa": _pa,
}
# What a worker runs: the models that send sparse deltas to the other workers (models.delta).
WORKER_MODELS = ("arow", "arow-balanced", "arow-nb", "nb", "nb-balanced")
# Models with a weight table of 2^hash_bits rows (the others keep a dict of the features they saw).
SIZED_MODELS = frozenset({"arow", "arow-balanced", "arow-nb"})

# Reference points for comparisons, not for the worker.
BASELINES: dict[str, Callable[..., base.Classifier]] = {
    "no-change": _no_change,
    "prior": _prior,
}
DESCRIPTIONS = {
    "no-change": "baseline: repeats the last label seen (high on streams sorted by label)",
    "prior": "baseline: always the most frequent label so far",
    "nb": "multinomial naive Bayes, River's maths, hand-optimised (models/nb.py)",
    "nb-balanced": "nb with a uniform class prior (rare interests not outvoted by their rarity)",
    "arow": "one-vs-rest AROW over online TF-IDF, temperature-scaled, naive Bayes' counts in bursts (models/arow.py)",
    "arow-balanced": "arow with labels weighted inversely to their class's share",
    "arow-nb": "arow with naive Bayes' counts added always, not only in bursts",
    "river-nb": "river.naive_bayes.MultinomialNB (stock)",
    "logreg": "l2-normalise → one-vs-rest river LogisticRegression (SGD)",
    "softmax": "l2-normalise → river SoftmaxRegression (SGD)",
    "pa": "l2-normalise → one-vs-rest river PAClassifier (PA-I)",
}


def make_classifier(name: str, hash_bits: int = 20) -> base.Classifier:
    """A fresh classifier that takes the features of :class:`PostFeaturizer` of ``hash_bits``
    (a weight table has as many rows: ``2**hash_bits``).

    >>> make_classifier("arow", hash_bits=12)._mean_buf.shape[0]
    4096
    """
    try:
        factory = {**CANDIDATES, **BASELINES}[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(CANDIDATES)}") from None
    return factory(hash_bits) if name in SIZED_MODELS else factory()


def make_pipeline(name: str, hash_bits: int = 20) -> compose.Pipeline:
    """Featurizer and classifier as one River pipeline (cleaned post in, class out)."""
    return compose.Pipeline(PostFeaturizer(hash_bits=hash_bits), make_classifier(name, hash_bits))
