"""Post sentiment: the VADER lexicon, and an online model that learns from sentiment labels.

Every post gets a :class:`Sentiment`: a label (``negative``, ``neutral``, ``positive``), a score in
``[-1, 1]`` and a ``cold`` flag. The learned model is an online multinomial logistic regression
(:class:`SentimentClassifier`, a River classifier, AdaGrad steps) over two groups of features:

* the lexicon: VADER's ``(compound, pos, neu, neg)`` of the *raw* text, and the compound in
  one-hot bins, so that what VADER knows about words it has never seen in a label carries over
  to other sources;
* the words: the hashed word counts among the interest model's features ``x`` (of
  :class:`models.features.PostFeaturizer`; its bigrams, hashtags and platform are left out: they
  tell the topic and the source more than the sentiment, and carry less to another source),
  re-hashed into ``2**bits`` rows so that memory is bounded, l2-normalised and scaled
  (``word_scale``): they correct the lexicon where the labels disagree with it;
* the words again, per interest (``interest_words``): a second copy of each word, re-hashed with
  the post's interest, so that what a word means in one interest ("delayed" in travel) is
  learned apart from what it means everywhere (Daumé's feature augmentation). A post learns its
  interest's copy when its interest label is known; a prediction uses it only when the interest
  model is sure of the interest (``interest_min_proba``), so posts from a source unlike anything
  learned are scored with the shared words alone.

While it has seen fewer than ``warmup`` labels, :class:`SentimentModel` blends the learned
probabilities with the lexicon's, the lexicon's weight falling linearly from 1 to 0.

>>> lex = lexicon_scores("What a GREAT flight :)")
>>> lexicon_label(lex[0]), lex[0] > 0.5
('positive', True)
>>> model = SentimentModel(warmup=2)
>>> s = model.predict({}, lex)
>>> s.label, s.cold, s.score == lex[0]
('positive', True, True)
>>> for _ in range(3):
...     model.learn({1: 1.0}, lex, "negative")
>>> s = model.predict({1: 1.0}, lex)
>>> s.label, s.cold, -1.0 <= s.score < 0
('negative', False, True)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from river import base

from models.delta import NOT_TRACKED, Tracking, marked_rows
from models.features import stable_hash, words_of
from models.labels import SENTIMENTS

__all__ = [
    "Features",
    "LexScores",
    "Sentiment",
    "SentimentClassifier",
    "SentimentModel",
    "lex_from_list",
    "lex_to_list",
    "lexicon_features",
    "lexicon_label",
    "lexicon_proba",
    "lexicon_scores",
]

Features = dict[int, float]
LexScores = tuple[float, float, float, float]  # VADER (compound, pos, neu, neg)
NEUTRAL_BAND = 0.05  # VADER's standard thresholds: compound >= 0.05 positive, <= -0.05 negative
# Compound bin edges for one-hot lexicon features (the compound is far from linear in the odds).
BIN_EDGES = (-0.75, -0.5, -0.25, -NEUTRAL_BAND, NEUTRAL_BAND, 0.25, 0.5, 0.75)
N_LEX = 7 + len(BIN_EDGES) + 2  # bias, compound, pos, neu, neg, any-pos, any-neg, bins, zero


@lru_cache(maxsize=1)
def _analyzer() -> Any:
    """VADER's analyzer (:class:`models.vader.FastVader`: VADER's scores, faster), built once per
    process (it reads its lexicon files; read-only after)."""
    from models.vader import FastVader

    return FastVader()


LEXICON_MAX_CHARS = 1_000  # VADER's cost grows with the text: a 10,000-word post would stall the loop


def lexicon_scores(text: str, max_chars: int = LEXICON_MAX_CHARS) -> LexScores:
    """VADER's ``(compound, pos, neu, neg)`` of a raw post text (caps, punctuation and emoticons
    matter to VADER: do not give it the cleaned text). Only the first ``max_chars`` characters are
    read (about 170 words; every tweet whole): long forum posts cost no more than a few tweets.

    >>> lexicon_scores("I love it!!")[0] > lexicon_scores("I love it")[0] > 0
    True
    >>> lexicon_scores("")
    (0.0, 0.0, 0.0, 0.0)
    >>> lexicon_scores("great! " * 5000) == lexicon_scores(("great! " * 5000)[:1000])
    True
    """
    s = _analyzer().polarity_scores(text[:max_chars])
    return (s["compound"], s["pos"], s["neu"], s["neg"])


def lexicon_label(compound: float) -> str:
    """VADER's label of a compound score: ``>= 0.05`` positive, ``<= -0.05`` negative.

    >>> [lexicon_label(c) for c in (-0.05, -0.049, 0.0, 0.049, 0.05)]
    ['negative', 'neutral', 'neutral', 'neutral', 'positive']
    """
    if compound >= NEUTRAL_BAND:
        return "positive"
    if compound <= -NEUTRAL_BAND:
        return "negative"
    return "neutral"


def lexicon_proba(compound: float) -> dict[str, float]:
    """Class probabilities that stand for the lexicon: their argmax is :func:`lexicon_label` and
    ``P(positive) - P(negative)`` is the compound.

    >>> {k: round(v, 3) for k, v in lexicon_proba(0.4).items()}
    {'negative': 0.2, 'neutral': 0.2, 'positive': 0.6}
    >>> {k: round(v, 3) for k, v in lexicon_proba(0.0).items()}
    {'negative': 0.05, 'neutral': 0.9, 'positive': 0.05}
    """
    c = min(max(compound, -1.0), 1.0)
    if c >= NEUTRAL_BAND:
        rest = (1.0 - c) / 3.0
        return {"negative": rest, "neutral": rest, "positive": rest + c}
    if c <= -NEUTRAL_BAND:
        rest = (1.0 + c) / 3.0
        return {"negative": rest - c, "neutral": rest, "positive": rest}
    return {"negative": (0.1 - c) / 2.0, "neutral": 0.9, "positive": (0.1 + c) / 2.0}


def lex_to_list(lex: Sequence[float], digits: int = 4) -> list[float]:
    """Lexicon scores as a JSON-ready list (they travel in training-log records).

    >>> lex_to_list((0.123456, 0.5, 0.5, 0.0))
    [0.1235, 0.5, 0.5, 0.0]
    """
    return [round(float(v), digits) for v in lex]


def lex_from_list(values: Iterable[Any]) -> LexScores:
    """The inverse of :func:`lex_to_list`; raises ``ValueError`` unless there are 4 numbers.

    >>> lex_from_list([0.5, 0.4, 0.6, 0])
    (0.5, 0.4, 0.6, 0.0)
    """
    out = tuple(float(v) for v in values)
    if len(out) != 4:
        raise ValueError(f"lexicon scores: expected 4 numbers, got {len(out)}")
    return out


def lexicon_features(lex: Sequence[float]) -> dict[int, float]:
    """Dense features ``0 .. N_LEX-1`` of the lexicon scores (a bias term included).

    >>> f = lexicon_features((0.6, 0.5, 0.5, 0.0))
    >>> f[0], f[1], f[5], f[6], sorted(k for k in f if k >= 7)
    (1.0, 0.6, 1.0, 0.0, [14])
    >>> sorted(k for k in lexicon_features((0.0, 0.0, 1.0, 0.0)) if k >= 7)
    [16]
    """
    compound, pos, neu, neg = lex
    f = {0: 1.0, 1: compound, 2: pos, 3: neu, 4: neg, 5: 1.0 if pos > 0 else 0.0, 6: 1.0 if neg > 0 else 0.0}
    if compound == 0.0 and pos == 0.0 and neg == 0.0:
        f[7 + len(BIN_EDGES) + 1] = 1.0  # no lexicon word at all
    else:
        f[7 + sum(compound > e for e in BIN_EDGES)] = 1.0
    return f


def lexicon_matrix(lex: np.ndarray) -> np.ndarray:
    """:func:`lexicon_features` of many posts at once, dense (posts × ``N_LEX``), from their lexicon
    scores (posts × 4).

    >>> m = lexicon_matrix(np.array([(0.6, 0.5, 0.5, 0.0), (0.0, 0.0, 1.0, 0.0)]))
    >>> [{k: v for k, v in lexicon_features(l).items() if v} == {k: v for k, v in enumerate(row) if v}
    ...  for l, row in zip([(0.6, 0.5, 0.5, 0.0), (0.0, 0.0, 1.0, 0.0)], m.tolist())]
    [True, True]
    """
    n = lex.shape[0]
    out = np.zeros((n, N_LEX))
    compound, pos, neg = lex[:, 0], lex[:, 1], lex[:, 3]
    out[:, 0] = 1.0
    out[:, 1:5] = lex
    out[:, 5] = pos > 0
    out[:, 6] = neg > 0
    none = (compound == 0.0) & (pos == 0.0) & (neg == 0.0)  # no lexicon word at all
    column = np.where(none, 7 + len(BIN_EDGES) + 1, 7 + np.searchsorted(BIN_EDGES, compound, side="left"))
    out[np.arange(n), column] = 1.0
    return out


def lexicon_proba_matrix(compound: np.ndarray) -> np.ndarray:
    """:func:`lexicon_proba` of many compound scores (posts × classes, in ``SENTIMENTS`` order).

    >>> c = [0.4, 0.0, -0.3, 1.5]
    >>> bool(np.allclose(lexicon_proba_matrix(np.array(c)), [list(lexicon_proba(x).values()) for x in c]))
    True
    """
    c = np.clip(compound, -1.0, 1.0)
    positive, negative = c >= NEUTRAL_BAND, c <= -NEUTRAL_BAND
    rest = np.where(positive, (1.0 - c) / 3.0, (1.0 + c) / 3.0)
    return np.where(
        positive[:, None],
        np.stack([rest, rest, rest + c], axis=1),
        np.where(
            negative[:, None],
            np.stack([rest - c, rest, rest], axis=1),
            np.stack([(0.1 - c) / 2.0, np.full_like(c, 0.9), (0.1 + c) / 2.0], axis=1),
        ),
    )


class SentimentClassifier(Tracking, base.Classifier):
    """Online multinomial logistic regression over sparse features, with AdaGrad steps and a
    fixed-size weight table (features are hashed into ``2**bits`` rows).

    Parameters
    ----------
    bits
        Rows of the weight table: ``2**bits`` (integer keys are masked, other keys hashed).
    lr
        AdaGrad base learning rate.
    l2
        L2 penalty, applied to the weights of the features of each example as it is learned.

    >>> clf = SentimentClassifier(bits=8)
    >>> clf.predict_proba_one({"good": 1.0})
    {}
    >>> for _ in range(20):
    ...     clf.learn_one({"good": 1.0}, "positive")
    ...     clf.learn_one({"bad": 1.0}, "negative")
    >>> clf.predict_one({"good": 1.0}), clf.predict_one({"bad": 1.0})
    ('positive', 'negative')
    """

    def __init__(self, bits: int = 18, lr: float = 0.1, l2: float = 0.0):
        self.bits = bits
        self.lr = lr
        self.l2 = l2
        self._mask = (1 << bits) - 1
        self.classes: list[base.typing.ClfTarget] = []
        # One row per hashed feature, one column per class: weights and AdaGrad's squared-gradient sums.
        self._w = np.zeros((1 << bits, 0))
        self._g = np.zeros((1 << bits, 0))

    @property
    def _multiclass(self) -> bool:
        return True

    def take_delta(self) -> dict[str, Any]:
        """The classes and the rows of weights learned since the last call (AdaGrad's sums only
        matter to learning)."""
        rows = marked_rows(self._touched)
        return {"classes": list(self.classes), "rows": rows, "w": self._w[rows]}

    def track(self) -> None:
        """Mark from now on the rows that learning changes (in a boolean array, by the compiled step)."""
        self._touched = np.zeros(self._w.shape[0], dtype=np.bool_)

    def apply_delta(self, delta: dict[str, Any]) -> None:
        """Overwrite this replica's weights with a :meth:`take_delta` of the learner's."""
        for y in delta["classes"][len(self.classes) :]:
            self._add_class(y)
        self._w[np.asarray(delta["rows"], dtype=np.intp)] = delta["w"]

    def _index(self, f: Hashable) -> int:
        if isinstance(f, int):
            return f & self._mask
        from models.features import stable_hash

        return stable_hash(str(f), self._mask)

    def _vector(self, x: Mapping[Any, float]) -> tuple[np.ndarray, np.ndarray]:
        """Row indices (distinct: colliding features are summed) and values of the non-zero features."""
        mask = self._mask
        rows: dict[int, float] = {}
        for f, v in x.items():
            if v:
                i = f & mask if type(f) is int else self._index(f)
                rows[i] = rows.get(i, 0.0) + float(v)
        n = len(rows)
        return (np.fromiter(rows.keys(), dtype=np.intp, count=n), np.fromiter(rows.values(), dtype=np.float64, count=n))

    def _add_class(self, y: base.typing.ClfTarget) -> None:
        self.classes.append(y)
        # A new class starts with the weights of class 0 (so it changes no other prediction).
        first = self._w[:, :1] if self.classes[1:] else np.zeros((self._w.shape[0], 1))
        self._w = np.hstack([self._w, first])
        self._g = np.hstack([self._g, np.zeros((self._g.shape[0], 1))])

    def _softmax(self, z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max())
        return e / e.sum()

    def proba_arrays(self, idx: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Class probabilities (in ``classes`` order) of the features ``v`` at distinct rows ``idx``."""
        return self._softmax(v @ self._w[idx])

    def predict_proba_one(self, x: Mapping[Any, float], **kwargs: Any) -> dict[base.typing.ClfTarget, float]:
        if not self.classes:
            return {}
        return dict(zip(self.classes, self.proba_arrays(*self._vector(x)).tolist(), strict=True))

    def learn_one(self, x: Mapping[Any, float], y: base.typing.ClfTarget, w: float = 1.0) -> None:
        """Learn one example; ``w`` weighs its gradient."""
        if y not in self.classes:
            self._add_class(y)
        if len(self.classes) < 2:
            return  # a softmax over one class has nothing to learn
        self.learn_arrays(*self._vector(x), self.classes.index(y), w)

    def learn_arrays(self, idx: np.ndarray, v: np.ndarray, y: int, w: float = 1.0) -> None:
        """Learn the features ``v`` at distinct rows ``idx`` with label ``classes[y]`` and weight ``w``."""
        # softmax(v · W[idx]) minus the one-hot label is the error; grad = v ⊗ error × w (+ l2 W[idx]);
        # AdaGrad: G[idx] += grad², W[idx] -= lr grad / sqrt(G[idx]); compiled (models.kernels)
        from models.kernels import softmax_adagrad_learn  # compiled (numba): loaded by learners only

        touched = NOT_TRACKED if self._touched is None else self._touched
        softmax_adagrad_learn(idx, v, y, w, self._w, self._g, self.lr, self.l2, touched)


@dataclass(frozen=True, slots=True)
class Sentiment:
    """The sentiment of one post."""

    label: str  # negative | neutral | positive
    score: float  # P(positive) - P(negative), in [-1, 1]
    cold: bool  # fewer than `warmup` labels learned: the lexicon still weighs in

    def to_dict(self, digits: int = 4) -> dict[str, Any]:
        """JSON-ready.

        >>> Sentiment("positive", 0.123456, False).to_dict()
        {'label': 'positive', 'score': 0.1235, 'cold': False}
        """
        return {"label": self.label, "score": round(self.score, digits), "cold": self.cold}


FEW_POSTS = 8
"""Below this many posts, :meth:`SentimentModel.predict_many` works post by post: its array operations
over a batch cost about 60 µs whatever its size (measured: 20 µs per post in batches of 4, 12 post by
post; 5 µs in batches of 64)."""


class SentimentModel:
    """The lexicon plus a :class:`SentimentClassifier` that learns from sentiment labels.

    Parameters
    ----------
    warmup
        Labels after which the learned model alone decides; before, its probabilities are
        blended with the lexicon's with weight ``n_labels / warmup``.
    interest_words
        Learn and use the per-interest copy of the words (see the module's docstring).
    interest_min_proba
        The interest model's probability from which a prediction uses that interest's words
        (see :meth:`interest_of`).
    bits
        The classifier's weight table has ``2**bits`` rows per class: the lexicon features and
        the words' hashed features, re-hashed into the remaining rows.
    word_scale
        Norm of the word features (the lexicon features are not scaled).
    lr, l2
        Of the classifier (:class:`SentimentClassifier`).
    balanced
        Weigh each label inversely to its class's share so far (see :meth:`weight`).
    """

    def __init__(
        self,
        warmup: int = 200,
        bits: int = 16,
        word_scale: float = 1.0,
        lr: float = 0.03,
        l2: float = 0.0,
        balanced: bool = True,
        interest_words: bool = True,
        interest_min_proba: float = 0.95,
    ):
        self.warmup = warmup
        self.interest_words = interest_words
        self.interest_min_proba = interest_min_proba
        self.balanced = balanced
        self.label_counts = dict.fromkeys(SENTIMENTS, 0)
        self.bits = bits
        self.word_scale = word_scale
        self.lr = lr
        self.l2 = l2
        self.classifier = SentimentClassifier(bits=bits, lr=lr, l2=l2)
        self.n_labels = 0
        self._word_rows = (1 << bits) - N_LEX  # rows 0 .. N_LEX-1 are the lexicon's

    def track(self) -> None:
        """Remember from now on what learning changes (see :mod:`models.delta`)."""
        self.classifier.track()

    def take_delta(self) -> dict[str, Any]:
        """The label counts and the classifier's :meth:`SentimentClassifier.take_delta`."""
        return {
            "n_labels": self.n_labels,
            "label_counts": dict(self.label_counts),
            "classifier": self.classifier.take_delta(),
        }

    def apply_delta(self, delta: dict[str, Any]) -> None:
        """Take over a :meth:`take_delta` of the learner's model (on a read-only replica)."""
        self.n_labels = int(delta["n_labels"])
        self.label_counts = dict(delta["label_counts"])
        self.classifier.apply_delta(delta["classifier"])

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Checkpoints from before the per-interest words: the copies start empty and learn from here.
        state.setdefault("interest_words", True)
        state.setdefault("interest_min_proba", 0.95)
        self.__dict__.update(state)

    def interest_of(self, scores: Mapping[Any, float]) -> str | None:
        """The interest whose words a prediction uses: the interest model's top class when its
        probability is at least ``interest_min_proba``, else ``None`` (the shared words only).

        >>> m = SentimentModel(interest_min_proba=0.9)
        >>> m.interest_of({"travel": 0.95, "music": 0.05}), m.interest_of({"travel": 0.6, "music": 0.4})
        ('travel', None)
        >>> m.interest_of({}) is None
        True
        """
        if not self.interest_words or not scores:
            return None
        top = max(scores, key=scores.__getitem__)
        return str(top) if scores[top] >= self.interest_min_proba else None

    def interests_of(self, tops: Sequence[Any], probas: Sequence[float]) -> list[str | None]:
        """:meth:`interest_of` of a batch, given each post's top interest (``None``: none) and its
        probability, as :func:`stream.pipeline.records.score_batch` gives them.

        >>> m = SentimentModel(interest_min_proba=0.9)
        >>> m.interests_of(["travel", "music", None], [0.95, 0.6, 0.0])
        ['travel', None, None]
        """
        if not self.interest_words:
            return [None] * len(tops)
        least = self.interest_min_proba
        return [None if t is None or p < least else str(t) for t, p in zip(tops, probas, strict=True)]

    def rows(
        self, x: Features, lex: Sequence[float], interest: str | None = None, words: int | None = None
    ) -> tuple[list[int], list[float]]:
        """The classifier's rows and values of a post, in order: the lexicon features (non-zero
        ones), then the words re-hashed into the remaining rows and l2-normalised to ``word_scale``,
        then (given an ``interest``) the same values again at rows re-hashed with the interest
        (two words may share a row: :meth:`features` sums them). The words are the first
        ``words`` features of ``x`` (:func:`models.features.words_of`)."""
        post_words = words_of(x, words)
        lexf = lexicon_features(lex)
        rows = [f for f, v in lexf.items() if v]
        values = [v for v in lexf.values() if v]
        norm = math.sqrt(sum(v * v for v in post_words.values()))
        if norm > 0:
            k, word_rows = self.word_scale / norm, self._word_rows
            rows += [N_LEX + f % word_rows for f in post_words]
            scaled = [v * k for v in post_words.values()]
            values += scaled
            if interest is not None and self.interest_words:
                salt = stable_hash(str(interest), 0xFFFFFFFF)
                rows += [N_LEX + (f * 1_000_003 + salt) % word_rows for f in post_words]
                values += scaled
        return rows, values

    def features(
        self, x: Features, lex: Sequence[float], interest: str | None = None, words: int | None = None
    ) -> dict[int, float]:
        """The classifier's features as a dict (rows shared by two words summed)."""
        out: dict[int, float] = {}
        for row, v in zip(*self.rows(x, lex, interest, words), strict=True):
            out[row] = out.get(row, 0.0) + v
        return out

    def arrays(
        self, x: Features, lex: Sequence[float], interest: str | None = None, words: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`features` as the classifier's row indices and values (equal to
        ``classifier._vector(features(x, lex, interest, words))``), without building the dict when
        no rows collide."""
        rows, values = self.rows(x, lex, interest, words)
        if len(set(rows)) < len(rows) or not all(values):  # colliding words, zero counts
            return self.classifier._vector(self.features(x, lex, interest, words))
        return np.array(rows, dtype=np.intp), np.array(values, dtype=np.float64)

    def _share(self) -> float:
        """Weight of the learned probabilities in the blend (1 once ``warmup`` labels are learned;
        0 before the first label, whatever ``warmup``)."""
        if not self.classifier.classes:
            return 0.0
        return min(self.n_labels / self.warmup, 1.0) if self.warmup > 0 else 1.0

    def _blend(self, learned: Sequence[float], lex: Sequence[float], share: float) -> dict[str, float]:
        lexp = lexicon_proba(lex[0])
        if share == 0.0:
            return lexp
        return {c: share * p + (1.0 - share) * lexp[c] for c, p in zip(SENTIMENTS, learned, strict=True)}

    def proba(
        self, x: Features, lex: Sequence[float], interest: str | None = None, words: int | None = None
    ) -> dict[str, float]:
        """Blended class probabilities (over :data:`models.labels.SENTIMENTS`)."""
        share = self._share()
        learned = self.classifier.proba_arrays(*self.arrays(x, lex, interest, words)).tolist() if share else ()
        return self._blend(learned, lex, share)

    def _sentiment(self, p: dict[str, float]) -> Sentiment:
        label = max(SENTIMENTS, key=p.__getitem__)
        score = min(max(p["positive"] - p["negative"], -1.0), 1.0)
        return Sentiment(label, score, self.n_labels < self.warmup)

    def predict(
        self, x: Features, lex: Sequence[float], interest: str | None = None, words: int | None = None
    ) -> Sentiment:
        """The sentiment of a post; ``interest`` as given by :meth:`interest_of`, ``words`` as by
        :meth:`models.features.PostFeaturizer.transform_words`."""
        return self._sentiment(self.proba(x, lex, interest, words))

    def predict_many(
        self,
        xs: Sequence[Features],
        lexes: Sequence[Sequence[float]],
        interests: Sequence[str | None] | None = None,
        words: Sequence[int | None] | None = None,
    ) -> list[Sentiment]:
        """:meth:`predict` of each post, the learned part computed for all of them in a few array
        operations (equal to one at a time up to the order of float additions)."""
        share = self._share()
        if not share or not xs:
            return [self._sentiment(self._blend((), lex, share)) for lex in lexes]
        n = len(xs)
        if n < FEW_POSTS:  # the array operations below cost more than they save
            return self._predict_few(xs, lexes, interests, words, share)
        w = self.classifier._w
        lex = np.array(lexes, dtype=np.float64).reshape(n, 4)
        z = lexicon_matrix(lex) @ w[:N_LEX]  # the lexicon's features, dense
        # the words: every post's in one array, each scaled to the post's word_scale
        keys: list[int] = []
        values: list[float] = []
        lengths: list[int] = []
        for x, count in zip(xs, words or itertools.repeat(None), strict=False):
            post_words = words_of(x, count)
            keys += post_words
            values += post_words.values()
            lengths.append(len(post_words))
        post = np.repeat(np.arange(n), lengths)
        v = np.array(values, dtype=np.float64)
        norm = np.sqrt(np.bincount(post, weights=v * v, minlength=n))
        v *= (self.word_scale / np.where(norm > 0, norm, 1.0))[post]
        idx = np.array(keys, dtype=np.int64)
        word_rows = self._word_rows
        rows = N_LEX + idx % word_rows
        if interests is not None and self.interest_words and any(i is not None for i in interests):
            # the same words again at the rows of the post's interest (when it has one)
            salts = {i: stable_hash(str(i), 0xFFFFFFFF) for i in set(interests) if i is not None}
            salt = np.array([salts.get(i, -1) if i is not None else -1 for i in interests], dtype=np.int64)[post]
            own = salt >= 0
            rows = np.concatenate((rows, N_LEX + (idx[own] * 1_000_003 + salt[own]) % word_rows))
            v = np.concatenate((v, v[own]))
            post = np.concatenate((post, post[own]))
        np.add.at(z, post, w[rows] * v[:, None])
        e = np.exp(z - z.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        if share < 1.0:
            p = share * p + (1.0 - share) * lexicon_proba_matrix(lex[:, 0])
        top = p.argmax(axis=1).tolist()
        score = np.clip(p[:, 2] - p[:, 0], -1.0, 1.0).tolist()
        cold = self.n_labels < self.warmup
        return [Sentiment(SENTIMENTS[t], sc, cold) for t, sc in zip(top, score, strict=True)]

    def _predict_few(
        self,
        xs: Sequence[Features],
        lexes: Sequence[Sequence[float]],
        interests: Sequence[str | None] | None,
        words: Sequence[int | None] | None,
        share: float,
    ) -> list[Sentiment]:
        """:meth:`predict_many` of a few posts: each post's :meth:`rows`, one gather and one sum."""
        rows: list[int] = []
        values: list[float] = []
        starts: list[int] = []
        nones = [None] * len(xs)
        for x, lex, interest, n in zip(xs, lexes, interests or nones, words or nones, strict=True):
            starts.append(len(rows))  # the lexicon's bias row is always there: no post is empty
            post_rows, post_values = self.rows(x, lex, interest, n)
            rows += post_rows
            values += post_values
        z = np.add.reduceat(
            self.classifier._w[np.array(rows, dtype=np.intp)] * np.array(values)[:, None],
            np.array(starts, dtype=np.intp),
            axis=0,
        )
        e = np.exp(z - z.max(axis=1, keepdims=True))
        learned = (e / e.sum(axis=1, keepdims=True)).tolist()
        return [self._sentiment(self._blend(p, lex, share)) for p, lex in zip(learned, lexes, strict=True)]

    def learn(
        self, x: Features, lex: Sequence[float], y: str, interest: str | None = None, words: int | None = None
    ) -> None:
        """Learn one label (and, given the post's ``interest``, that interest's words); labels
        outside :data:`models.labels.SENTIMENTS` raise ``ValueError``."""
        if y not in SENTIMENTS:
            raise ValueError(f"sentiment label {y!r} is not one of {', '.join(SENTIMENTS)}")
        if not self.classifier.classes:
            for c in SENTIMENTS:  # fixed class order: same weights whatever label comes first
                self.classifier._add_class(c)
        self.label_counts[y] += 1
        self.n_labels += 1
        self.classifier.learn_arrays(*self.arrays(x, lex, interest, words), SENTIMENTS.index(y), self.weight(y))

    def weight(self, y: str) -> float:
        """Weight of a label of class ``y``: with ``balanced``, ``n / (3 n_y)`` over the labels
        seen so far (at most 10), so that the classes weigh the same whatever their shares in
        this stream: another stream's shares are unknown.

        >>> m = SentimentModel()
        >>> m.label_counts.update(negative=6, neutral=3, positive=1); m.n_labels = 10
        >>> [round(m.weight(c), 3) for c in ("negative", "neutral", "positive")]
        [0.556, 1.111, 3.333]
        """
        if not self.balanced:
            return 1.0
        return min(self.n_labels / (len(SENTIMENTS) * max(self.label_counts[y], 1)), 10.0)
