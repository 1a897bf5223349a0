"""An online linear text classifier that learns in one pass what a batch linear SVM learns in many.

:class:`AROWClassifier` is one-vs-rest AROW (adaptive regularisation of weight vectors, Crammer,
Kulesza & Dredze 2009) over TF-IDF weights computed online. AROW keeps, besides each weight, a
variance that shrinks as the feature is seen: rare words move fast, frequent ones settle. That is
what lets one pass over a stream come close to a batch model.

The input is the hashed counts of :class:`models.features.PostFeaturizer` (any numeric dict works:
other keys are hashed). Each post becomes ``log(1 + count) * idf``, normalised to unit length, with
the document frequencies counted as labels arrive. Weights live in numpy arrays of
``2**hash_bits`` columns per class, so memory is fixed whatever the vocabulary.

Scores are turned into probabilities by a softmax whose temperature is itself learned online, from
the log-loss of each prediction made before its label is learned (temperature scaling).

With ``nb_weight`` above 0, the model also counts each class's features, as multinomial naive Bayes
does, and adds ``nb_weight`` times naive Bayes' log-likelihood of the post to the scaled margins.
Counts do not depend on the order the labels came in: when each class of long posts arrives as one
long burst, AROW's weights of the early classes are pushed down by the later ones, and the counts hold
what they knew. Added always (the ``arow-nb`` model), they slow the start on long posts; with
``nb_in_bursts`` (the default ``arow``) they are added only while :attr:`AROWClassifier.bursting` is
set, which the learner sets while a burst keeps some class away (the figures are in
``docs/models.md``).

>>> model = AROWClassifier(hash_bits=10)
>>> for _ in range(3):
...     model.learn_one({"goal": 2.0, "match": 1.0}, "sports")
...     model.learn_one({"vote": 2.0, "senate": 1.0}, "politics")
>>> model.predict_one({"goal": 1.0})
'sports'
>>> proba = model.predict_proba_one({"senate": 1.0})
>>> max(proba, key=proba.get), round(sum(proba.values()), 6)
('politics', 1.0)
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from river import base

from models.delta import NOT_TRACKED, Tracking, marked_rows

__all__ = ["AROWClassifier", "tfidf_unit", "tfidf_units"]


def _tfidf(counts: np.ndarray, df: np.ndarray, n_docs: int) -> np.ndarray:
    """Sub-linear term frequency times scikit-learn's smoothed idf, not normalised."""
    w = np.sign(counts) * np.log1p(np.abs(counts))
    w *= np.log((1.0 + n_docs) / (1.0 + df)) + 1.0
    return w


def tfidf_unit(counts: np.ndarray, df: np.ndarray, n_docs: int) -> np.ndarray:
    """Sub-linear TF-IDF of one document, scaled to unit length (scikit-learn's smoothed idf).

    Parameters
    ----------
    counts
        The document's feature values (negative values keep their sign).
    df
        How many documents so far had each of these features.
    n_docs
        How many documents so far.

    >>> w = tfidf_unit(np.array([1.0, 3.0]), np.array([9, 0]), 9)
    >>> [round(float(v), 3) for v in w], round(float(w @ w), 6)
    ([0.15, 0.989], 1.0)
    """
    w = _tfidf(counts, df, n_docs)
    norm = math.sqrt(float(w @ w))
    return w / norm if norm > 0 else w


def tfidf_units(counts: np.ndarray, df: np.ndarray, n_docs: int, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """:func:`tfidf_unit` of several documents in a few array operations: their values come one
    document after the other, each starting at ``starts`` and ``lengths`` long (none empty).

    >>> counts, df = np.array([1.0, 3.0, 2.0]), np.array([9, 0, 4])
    >>> w = tfidf_units(counts, df, 9, np.array([0, 2]), np.array([2, 1]))
    >>> [bool(np.allclose(w[a:b], tfidf_unit(counts[a:b], df[a:b], 9))) for a, b in ((0, 2), (2, 3))]
    [True, True]
    """
    w = _tfidf(counts, df, n_docs)
    norms = np.sqrt(np.add.reduceat(w * w, starts))
    w /= np.repeat(np.where(norms > 0, norms, 1.0), lengths)
    return w


CLASS_ROOM = 8  # columns of weights allocated at first (more are added by doubling)


class AROWClassifier(Tracking, base.Classifier):
    """One-vs-rest AROW over online TF-IDF, with online temperature scaling.

    Parameters
    ----------
    r
        AROW's regularisation: larger values make smaller, more conservative updates.
    hash_bits
        Features are folded into ``2**hash_bits`` rows of weights (one column per class).
    calibration_rate
        Step size of the online temperature update (``0`` keeps the initial temperature).
    temperature
        The initial temperature: probabilities are ``softmax(temperature * margins)``.
    balanced
        Weigh each label by ``n / (k n_y)`` over the labels seen so far (at most 10): the update
        of a rare class's own weights is as large as if its class were as frequent as the others.
    nb_weight
        Weight of naive Bayes' log-likelihood of the post's counts in the class scores (``0``: AROW
        alone, and no counts are kept).
    nb_alpha
        Naive Bayes' additive smoothing of the counts.
    nb_in_bursts
        Add naive Bayes' term only while :attr:`bursting` is set (the counts are kept all along).
    burst_offset_rate
        Step size of the classes' burst offsets (``0``: none). While :attr:`bursting` is set, each
        post learned again (:meth:`rehearse_one`, a replay of a class the burst keeps away) moves
        one offset per class by a gradient step on its label's log-loss, and the offsets are added to
        the scaled scores: they take back the pull of the burst's own class on the posts of the
        others. Labels as they come do not move them: their mix is the burst's, not the classes'.
        They are fitted to AROW's scaled scores (in the compiled step, without naive Bayes' term,
        which does not depend on the order and is added beside them).

    Examples
    --------
    A class that appears mid-stream is learned from its first label on:

    >>> model = AROWClassifier(hash_bits=8)
    >>> model.learn_one({"a": 1.0}, "x")
    >>> model.learn_one({"b": 1.0}, "y")
    >>> sorted(model.predict_proba_one({"b": 1.0})), model.predict_one({"b": 1.0})
    (['x', 'y'], 'y')
    """

    def __init__(
        self,
        r: float = 0.1,
        hash_bits: int = 20,
        calibration_rate: float = 0.05,
        temperature: float = 5.0,
        balanced: bool = False,
        nb_weight: float = 0.0,
        nb_alpha: float = 0.5,
        nb_in_bursts: bool = False,
        burst_offset_rate: float = 0.0,
    ):
        self.r = r
        self.balanced = balanced
        self.nb_weight = nb_weight
        self.nb_alpha = nb_alpha
        self.nb_in_bursts = nb_in_bursts
        self.burst_offset_rate = float(burst_offset_rate)  # a float: the compiled step's one signature
        self._offsets = np.zeros(0)  # one per class, with room as the weights (see _make_room)
        self.bursting = False  # set by the learner (see nb_in_bursts); replicas receive it in deltas
        self._counts: list[int] = []
        self.hash_bits = hash_bits
        self.calibration_rate = calibration_rate
        self._mask = (1 << hash_bits) - 1
        self._classes: list[base.typing.ClfTarget] = []
        self._index: dict[base.typing.ClfTarget, int] = {}
        # One row per hashed feature, one column per class: a post's rows are gathered at once.
        # ``_mean`` and ``_var`` are views of the first columns of buffers with room for more classes.
        self._mean_buf = np.zeros((1 << hash_bits, 0), dtype=np.float32)
        self._var_buf = np.ones((1 << hash_bits, 0), dtype=np.float32)
        self._mean, self._var = self._mean_buf, self._var_buf
        # naive Bayes: each class's summed feature counts (rows × classes, like the weights) and totals
        self._nb_buf = np.zeros((1 << hash_bits, 0), dtype=np.float32)
        self._nb = self._nb_buf
        self._nb_total: list[float] = []
        self._df = np.full(1 << hash_bits, 0, dtype=np.int32)  # written now (see _make_room)
        self.n_docs = 0
        self.temperature = temperature

    @property
    def uses_bursts(self) -> bool:
        """Whether the learner should set :attr:`bursting` (naive Bayes' term or offsets in bursts)."""
        return self.nb_in_bursts or self.burst_offset_rate > 0

    @property
    def _multiclass(self) -> bool:
        return True

    @property
    def classes_(self) -> list[base.typing.ClfTarget]:
        return list(self._classes)

    # -- replication (see models.delta) -----------------------------------------------------
    def track(self) -> None:
        """Mark from now on the rows that learning changes (in a boolean array, by the compiled step)."""
        self._touched = np.zeros(self._df.shape[0], dtype=np.bool_)

    def take_delta(self) -> dict[str, Any]:
        """What a replica needs to predict as this model does now, given it had the previous delta:
        the classes, their counts, the document count, the temperature, and the rows of means and
        document frequencies learned since (the variances only matter to learning), with naive Bayes'
        counts of those rows when the model keeps them."""
        rows = marked_rows(self._touched)
        delta = {
            "classes": list(self._classes),
            "counts": list(self._counts),
            "n_docs": self.n_docs,
            "temperature": self.temperature,
            "rows": rows,
            "mean": self._mean[rows],
            "df": self._df[rows],
        }
        if self.nb_weight:  # naive Bayes' counts of the same rows
            delta.update(nb=self._nb[rows], nb_total=list(self._nb_total), bursting=self.bursting)
        if self.burst_offset_rate:
            delta.update(offsets=self._offsets[: len(self._classes)].tolist(), bursting=self.bursting)
        return delta

    def for_prediction(self) -> None:
        """Drop what only learning reads (the variances, half the memory): for a replica that predicts
        and applies deltas, and never learns."""
        self._var_buf = np.ones((self._var_buf.shape[0], 0), dtype=np.float32)
        self._var = self._var_buf
        self._predict_only = True

    _predict_only = False

    def apply_delta(self, delta: dict[str, Any]) -> None:
        """Overwrite this replica's state with a :meth:`take_delta` of the learner's.

        >>> learner, replica = AROWClassifier(hash_bits=6), AROWClassifier(hash_bits=6)
        >>> learner.track()
        >>> learner.learn_one({1: 1.0}, "a"); learner.learn_one({2: 1.0}, "b")
        >>> replica.apply_delta(learner.take_delta())
        >>> replica.predict_proba_one({2: 1.0}) == learner.predict_proba_one({2: 1.0})
        True
        """
        for y in delta["classes"][len(self._classes) :]:
            self._add_class(y)
        self._counts = list(delta["counts"])
        self.n_docs = int(delta["n_docs"])
        self.temperature = float(delta["temperature"])
        rows = np.asarray(delta["rows"], dtype=np.intp)
        self._mean[rows] = delta["mean"]
        self._df[rows] = delta["df"]
        if "nb" in delta and self.nb_weight:  # a learner of 0.8 and before sends no counts
            self._nb[rows] = delta["nb"]
            self._nb_total = [float(t) for t in delta["nb_total"]]
            self.bursting = bool(delta.get("bursting", False))
        if "offsets" in delta:  # a learner of 0.15 and before sends none
            self._offsets[: len(delta["offsets"])] = delta["offsets"]
            self.bursting = bool(delta.get("bursting", False))

    def _vector(self, x: Mapping[Any, float]) -> tuple[np.ndarray, np.ndarray]:
        n, mask = len(x), self._mask
        if set(map(type, x)) <= {int}:  # the featurizer's hashes: no folding needed if in range
            if n <= 64:  # a tweet's few keys: Python's min and max cost less than numpy's two reductions
                if n == 0 or (min(x) >= 0 and max(x) <= mask):
                    return np.fromiter(x.keys(), dtype=np.intp, count=n), np.fromiter(x.values(), np.float64, n)
            else:
                try:
                    idx = np.fromiter(x.keys(), dtype=np.intp, count=n)
                    if idx.min() >= 0 and idx.max() <= mask:
                        return idx, np.fromiter(x.values(), dtype=np.float64, count=n)
                except OverflowError:
                    pass
        folded: dict[int, float] = {}
        for k, v in x.items():
            h = (k if type(k) is int else zlib.crc32(str(k).encode("utf-8", "surrogatepass"))) & mask
            folded[h] = folded.get(h, 0.0) + v
        n = len(folded)
        return (
            np.fromiter(folded.keys(), dtype=np.intp, count=n),
            np.fromiter(folded.values(), dtype=np.float64, count=n),
        )

    def _vectors(self, xs: Sequence[Mapping[Any, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`_vector` of each post, concatenated, and how many rows each has; in one pass over all
        of them when every key is an integer in range (the featurizer's hashes).

        >>> model = AROWClassifier(hash_bits=4)
        >>> idx, counts, lengths = model._vectors([{3: 1.0, 5: 2.0}, {"a": 1.0}, {20: 1.0}])
        >>> idx.tolist(), counts.tolist(), lengths.tolist()
        ([3, 5, 3, 4], [1.0, 2.0, 1.0, 1.0], [2, 1, 1])
        """
        lengths = np.fromiter(map(len, xs), dtype=np.intp, count=len(xs))
        keys = itertools.chain.from_iterable(xs)
        if set(map(type, keys)) <= {int}:
            total = int(lengths.sum())
            try:
                idx = np.fromiter(itertools.chain.from_iterable(xs), dtype=np.intp, count=total)
            except OverflowError:
                idx = None
            if idx is not None and (total == 0 or (idx.min() >= 0 and idx.max() <= self._mask)):
                values = itertools.chain.from_iterable(x.values() for x in xs)
                return idx, np.fromiter(values, dtype=np.float64, count=total), lengths
        vectors = [self._vector(x) for x in xs]
        lengths = np.fromiter((len(i) for i, _ in vectors), dtype=np.intp, count=len(vectors))
        if not vectors:
            return np.zeros(0, dtype=np.intp), np.zeros(0), lengths
        return np.concatenate([i for i, _ in vectors]), np.concatenate([c for _, c in vectors]), lengths

    def _add_class(self, y: base.typing.ClfTarget) -> int:
        self._index[y] = len(self._classes)
        self._classes.append(y)
        self._counts.append(0)
        self._nb_total.append(0.0)
        k = len(self._classes)
        if k > self._mean_buf.shape[1]:
            # Room for 8 classes at first, then twice as many: copying 2^20 rows once per new class
            # held the event loop for 45-60 ms each time (measured), over 200 ms for the first six.
            self._make_room(max(CLASS_ROOM, 2 * self._mean_buf.shape[1]))
        self._views()
        return self._index[y]

    def _views(self) -> None:
        """The classes' columns of the buffers."""
        k = len(self._classes)
        self._mean, self._var, self._nb = self._mean_buf[:, :k], self._var_buf[:, :k], self._nb_buf[:, :k]

    def _make_room(self, room: int) -> None:
        """New buffers with ``room`` columns, the current classes' weights copied in."""
        rows, k = self._mean_buf.shape[0], self._mean.shape[1]
        # Written now, zeros included: np.zeros leaves its pages to be mapped on their first write,
        # which made a fresh worker's first label take 50-80 ms on the event loop (measured).
        mean = np.full((rows, room), 0.0, dtype=np.float32)
        mean[:, :k] = self._mean
        if self._predict_only:  # a replica has no variances
            var = self._var_buf
        else:
            var = np.full((rows, room), 1.0, dtype=np.float32)
            var[:, :k] = self._var
        nb = np.full((rows, room if self.nb_weight else 0), 0.0, dtype=np.float32)  # no table if unused
        if nb.shape[1]:
            nb[:, : self._nb.shape[1]] = self._nb
        offsets = np.zeros(room)
        offsets[:k] = self._offsets[:k]
        self._mean_buf, self._var_buf, self._nb_buf, self._offsets = mean, var, nb, offsets
        self._views()

    def reserve(self) -> None:
        """Allocate the weights of the first :data:`CLASS_ROOM` classes now (64 MB at 2^20 rows, 96 MB
        with naive Bayes' counts) rather than at the first label: a worker calls it before its event
        loop runs, where writing that much fresh memory held the loop for 80 ms (measured)."""
        if self._mean_buf.shape[1] == 0:
            self._make_room(CLASS_ROOM)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled with its buffers as they are, room included: no copy of the weights is made (a
        checkpoint streams them into its compressor, where the spare columns cost next to nothing),
        and a model restored from a checkpoint has its room for new classes already."""
        state = super().__getstate__()
        del state["_mean"], state["_var"], state["_nb"]  # views of the buffers
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "_mean_buf" not in state:  # pickled by an earlier version: the classes' columns only
            self._mean_buf, self._var_buf = self._mean, self._var
        if "_nb_buf" not in state:  # pickled by 0.8 or before: AROW alone
            self.nb_weight, self.nb_alpha = 0.0, 0.5
            self._nb_buf = np.zeros((self._mean_buf.shape[0], 0), dtype=np.float32)
            self._nb_total = [0.0] * len(self._classes)
        if "nb_in_bursts" not in state:  # pickled by 0.15 or before: counts added always, if kept
            self.nb_in_bursts, self.bursting = False, False
        if "_offsets" not in state:  # pickled before the burst offsets: none, and none learned
            self.burst_offset_rate, self._offsets = 0.0, np.zeros(self._mean_buf.shape[1])
        self._views()

    def count_features(self, nb_weight: float, in_bursts: bool) -> None:
        """Start keeping naive Bayes' counts (from zero) on a model that kept none, weighted as
        ``nb_weight`` and ``nb_in_bursts`` say: a model learned by an earlier version gains them.

        >>> model = AROWClassifier(hash_bits=6)
        >>> model.learn_one({1: 1.0}, "a")
        >>> model.count_features(0.03, in_bursts=True)
        >>> model.learn_one({2: 3.0}, "a")
        >>> model._nb_total, model._nb.shape
        ([3.0], (64, 1))
        """
        if self.nb_weight:
            return
        self.nb_weight, self.nb_in_bursts = nb_weight, in_bursts
        self._nb_buf = np.full(self._mean_buf.shape, 0.0, dtype=np.float32)  # written now (see _make_room)
        self._nb_total = [0.0] * len(self._classes)
        self._views()

    @property
    def _nb_scale(self) -> float:
        """The weight of naive Bayes' term in the scores now (``0``: AROW's margins alone)."""
        return self.nb_weight if self.bursting or not self.nb_in_bursts else 0.0

    @property
    def _offsets_now(self) -> np.ndarray | None:
        """The classes' burst offsets to add to the scaled scores now (``None``: no burst, or none kept)."""
        return self._offsets[: len(self._classes)] if self.bursting and self.burst_offset_rate else None

    @staticmethod
    def _softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max())
        return e / e.sum()

    def learn_one(self, x: Mapping[Any, float], y: base.typing.ClfTarget) -> None:
        self._learn(*self._vector(x), y)

    def learn_and_keep(self, x: Mapping[Any, float], y: base.typing.ClfTarget) -> bytes:
        """:meth:`learn_one`, and ``x`` as :meth:`keep` keeps it (its rows hashed once for both)."""
        idx, counts = self._vector(x)
        self._learn(idx, counts, y)
        return self._pack(idx, counts)

    def _learn(self, idx: np.ndarray, counts: np.ndarray, y: base.typing.ClfTarget) -> None:
        if self._predict_only:
            raise RuntimeError("this model is a replica for prediction (for_prediction): it does not learn")
        touched = NOT_TRACKED if self._touched is None else self._touched
        c = self._index.get(y)
        if c is None:
            c = self._add_class(y)
        self.n_docs += 1
        self._counts[c] += 1
        if self.nb_weight:
            from models.kernels import nb_count  # compiled (numba): loaded by learners only

            self._nb_total[c] += nb_count(idx, counts, self._nb_buf, c)
        k = len(self._classes)
        weight = min(self.n_docs / (k * self._counts[c]), 10.0) if self.balanced else 1.0
        if weight != 1.0:
            if self._touched is not None:
                self._touched[idx] = True
            self._learn_weighted(idx, counts, c, weight)
            return
        from models.kernels import arow_learn  # compiled (numba): loaded by learners only

        # the maths below (learn_weighted), compiled
        self.temperature = arow_learn(
            idx,
            counts,
            self._df,
            self.n_docs,
            self._mean_buf,
            self._var_buf,
            k,
            c,
            self.r,
            self.temperature,
            self.calibration_rate,
            touched,
            True,
            self._offsets,
            0.0,  # labels as they come: their mix is the stream's, the offsets learn from replays alone
        )

    keep_on_drift = 0.7  # measured: 0.7 recovers from a renaming as the drift test asks; 1.0 does not

    def forget_class(self, y: base.typing.ClfTarget) -> None:
        """Make class ``y`` as quick to move as a new one (its variances back to 1), keeping its weights:
        its meaning changed, and its new labels now move it as far as its first ones did. Zeroing the
        weights too would throw away what a class that merely gained a new sub-topic still knows.
        Its burst offset stays: it weighs the class against the others' scores, not its words, and
        the replays keep moving it (set to 0 here, bursts of 200 forum posts lost 0.006 of macro-F1)."""
        c = self._index.get(y)
        if c is not None:
            self._mean[:, c] *= self.keep_on_drift
            self._var[:, c] = 1.0
            if self.nb_weight:
                self._nb[:, c] *= self.keep_on_drift
                self._nb_total[c] *= self.keep_on_drift

    def keep(self, x: Mapping[Any, float]) -> bytes:
        """``x`` in the compact form :meth:`rehearse_one` takes: its rows (4-byte integers) then its
        values (4-byte floats), a few hundred bytes for a tweet where the dict takes a few kilobytes.

        >>> model = AROWClassifier(hash_bits=8)
        >>> len(model.keep({3: 1.0, 300: 2.0}))  # 300 folds into row 300 % 256
        16
        """
        return self._pack(*self._vector(x))

    @staticmethod
    def _pack(idx: np.ndarray, counts: np.ndarray) -> bytes:
        return idx.astype(np.int32).tobytes() + counts.astype(np.float32).tobytes()

    def rehearse_one(self, kept: bytes | Mapping[Any, float], y: base.typing.ClfTarget) -> None:
        """The AROW step of :meth:`learn_one` on a post learned before (a replayed one, as
        :meth:`keep` made it): the weights of a known class ``y`` move, the document frequencies,
        counts and temperature do not (the post is no new document, and no new prediction was scored).

        >>> model = AROWClassifier(hash_bits=8)
        >>> model.learn_one({1: 1.0}, "a"); model.learn_one({2: 1.0}, "b")
        >>> before, df = model.decision_function({1: 1.0}), model._df.copy()
        >>> model.rehearse_one(model.keep({1: 1.0}), "a")
        >>> bool(model.decision_function({1: 1.0})[0] > before[0]), bool((model._df == df).all())
        (True, True)
        """
        if not isinstance(kept, bytes):  # a dict, as checkpoints of 0.6 and before kept them
            kept = self.keep(kept)
        n = len(kept) // 8
        from models.kernels import arow_learn  # compiled for these read-only 4-byte arrays too

        arow_learn(
            np.frombuffer(kept, dtype=np.int32, count=n),
            np.frombuffer(kept, dtype=np.float32, offset=4 * n),
            self._df,
            self.n_docs,
            self._mean_buf,
            self._var_buf,
            len(self._classes),
            self._index[y],
            self.r,
            self.temperature,
            0.0,
            NOT_TRACKED if self._touched is None else self._touched,
            False,
            self._offsets,
            self.burst_offset_rate if self.bursting else 0.0,
        )

    def _learn_weighted(self, idx: np.ndarray, counts: np.ndarray, c: int, weight: float) -> None:
        """The AROW step with label ``c`` weighed ``weight`` (``balanced``), in numpy."""
        df = self._df[idx] + 1
        self._df[idx] = df
        self._step(idx, tfidf_unit(counts, df, self.n_docs), c, weight, calibrate=True)

    def _step(self, idx: np.ndarray, w: np.ndarray, c: int, weight: float, calibrate: bool) -> None:
        mean = self._mean[idx]  # features × classes
        scores = w @ mean
        if calibrate and self.calibration_rate and len(self._classes) > 1:
            # Temperature scaling, online: one gradient step on this label's log-loss, whose gradient
            # in the temperature is E_p[score] - score[y] (p the softmax of temperature × scores).
            e = np.exp(self.temperature * (scores - scores.max()))
            gradient = float(e @ scores) / float(e.sum()) - float(scores[c])
            self.temperature = min(100.0, max(0.1, self.temperature - self.calibration_rate * gradient))
        margin = -scores  # y's own score counts positively, the others' negatively
        margin[c] = scores[c]
        violated = margin < 1.0
        if not violated.any():
            return
        var = self._var[idx]
        w2 = w * w
        beta = np.where(violated, 1.0 / (w2 @ var + self.r), 0.0)  # classes within the margin: no update
        alpha = (margin - 1.0) * beta  # times the sign: -1 for the others...
        alpha[c] = -alpha[c]  # ... +1 for y
        alpha[c] *= weight
        spread = float(w2 @ var[:, c])
        if spread > 0:  # at most 1 / spread: the variances stay non-negative
            beta[c] = min(beta[c] * weight, 1.0 / spread)
        self._mean[idx] = mean + (w[:, None] * alpha) * var
        self._var[idx] = var - (w2[:, None] * beta) * (var * var)

    def decision_function(self, x: Mapping[Any, float]) -> np.ndarray:
        """One margin per class, in the order of :attr:`classes_` (AROW's alone)."""
        return self._margins(*self._vector(x))

    def _margins(self, idx: np.ndarray, counts: np.ndarray) -> np.ndarray:
        return tfidf_unit(counts, self._df[idx], self.n_docs) @ self._mean[idx]

    def _nb_log_likelihood(self, idx: np.ndarray, counts: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Naive Bayes' log-likelihood in each class (posts × classes) of the posts whose rows ``idx``
        and counts (negative ones count as none) start at ``starts``:
        ``sum_f n_f log(N_cf + a) - (sum_f n_f) log(N_c + a D)``."""
        alpha = self.nb_alpha
        seen = np.maximum(counts, 0.0)
        totals = np.log(np.asarray(self._nb_total, dtype=np.float64) + alpha * self._nb.shape[0])
        per_row = np.add.reduceat(np.log(self._nb[idx] + np.float32(alpha)) * seen[:, None], starts, axis=0)
        return per_row - np.add.reduceat(seen, starts)[:, None] * totals

    def _logits(self, x: Mapping[Any, float]) -> np.ndarray:
        """The softmax's input: the scaled margins plus the weighted naive Bayes log-likelihood."""
        idx, counts = self._vector(x)
        z = self.temperature * self._margins(idx, counts)
        if (offsets := self._offsets_now) is not None:
            z += offsets
        if (scale := self._nb_scale) and idx.shape[0]:
            z += scale * self._nb_log_likelihood(idx, counts, np.zeros(1, dtype=np.intp))[0]
        return z

    many_dicts = True  # predict_proba_many takes a list of dicts (River's takes a DataFrame)

    def predict_proba_many(self, xs: Sequence[Mapping[Any, float]]) -> list[dict[base.typing.ClfTarget, float]]:
        """:meth:`predict_proba_one` of each post, computed for all of them in a few array operations
        (a worker predicts a whole batch before the model learns from it)."""
        if not self._classes or not xs:
            return [{} for _ in xs] if not self._classes else []
        idx, counts, lengths = self._vectors(xs)
        if not lengths.all():  # an empty post: reduceat cannot take empty segments
            return [self.predict_proba_one(x) for x in xs]
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        w = tfidf_units(counts, self._df[idx], self.n_docs, starts, lengths)
        z = self.temperature * np.add.reduceat(self._mean[idx] * w[:, None], starts, axis=0)
        if scale := self._nb_scale:
            z += scale * self._nb_log_likelihood(idx, counts, starts)
        if (offsets := self._offsets_now) is not None:
            z += offsets
        e = np.exp(z - z.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        classes = self._classes
        return [dict(zip(classes, row, strict=True)) for row in p.tolist()]

    def predict_proba_one(self, x: Mapping[Any, float], **kwargs: Any) -> dict[base.typing.ClfTarget, float]:
        if not self._classes:
            return {}
        p = self._softmax(self._logits(x))
        return dict(zip(self._classes, p.tolist(), strict=True))
