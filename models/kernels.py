"""The learning steps of the worker's two models, compiled (numba).

A label updates ~40 rows of a few columns; written with numpy that is a few dozen calls, each costing
1–3.5 µs on small arrays whatever their size, so the call overhead was most of a label's cost. These
loops do the same arithmetic in one compiled call (the maths is in :mod:`models.arow` and
:mod:`models.sentiment`; ``tests/models`` checks them against the numpy formulas).

Compiled code is cached next to this module (``cache=True``, or in ``NUMBA_CACHE_DIR``): the first
call in a fresh install compiles for a few seconds. The models import this module only when they
learn: numba and the compiled code take ~150 MB, which a worker that only predicts does not load; the
learner loads them in a thread when it takes the role (:func:`warm_up`).

>>> import numpy as np
>>> from models.delta import NOT_TRACKED
>>> df, mean, var = np.zeros(4, np.int32), np.zeros((4, 2), np.float32), np.ones((4, 2), np.float32)
>>> x, counts = np.array([1, 2]), np.array([1.0, 2.0])
>>> t = arow_learn(x, counts, df, 1, mean, var, 2, 0, 0.1, 5.0, 0.0, NOT_TRACKED, True, NO_OFFSETS, 0.0)
>>> df.tolist(), bool(mean[1, 0] > 0 > mean[1, 1]), t
([0, 1, 1, 0], True, 5.0)

Learning a post again (``new_doc=False``, a replay) moves the weights and leaves the counts alone:

>>> _ = arow_learn(x, counts, df, 1, mean, var, 2, 0, 0.1, 5.0, 0.0, NOT_TRACKED, False, NO_OFFSETS, 0.0)
>>> df.tolist()
[0, 1, 1, 0]
"""

from __future__ import annotations

import math

import numba
import numpy as np

from models.delta import NOT_TRACKED

__all__ = ["NO_OFFSETS", "arow_learn", "nb_count", "softmax_adagrad_learn", "warm_up"]

NO_OFFSETS = np.zeros(0)  # arow_learn's offsets when it learns none (offset_rate 0)


@numba.njit(cache=True)
def arow_learn(
    idx: np.ndarray,
    counts: np.ndarray,
    df: np.ndarray,
    n_docs: int,
    mean: np.ndarray,
    var: np.ndarray,
    k: int,
    c: int,
    r: float,
    temperature: float,
    calibration_rate: float,
    touched: np.ndarray,
    new_doc: bool,
    offsets: np.ndarray,
    offset_rate: float,
) -> float:  # pragma: no cover - compiled; covered through AROWClassifier.learn_one
    """One one-vs-rest AROW step on label ``c`` of ``k`` classes, in place: document frequencies
    ``df`` and the rows ``idx`` of ``mean`` and ``var`` (their first ``k`` columns), marked in
    ``touched`` (unless it is empty). ``n_docs`` counts this document. Returns the temperature after
    one online calibration step (unchanged when ``calibration_rate`` is 0 or there is one class).
    ``new_doc=False`` learns a post counted before (a replay): ``df`` already counts it and stays.
    With ``offset_rate`` above 0, the classes' ``offsets`` (added to the scaled scores) first take one
    gradient step on the log-loss of the post's label under the scores before the update."""
    n = idx.shape[0]
    if touched.shape[0]:
        for i in range(n):
            touched[idx[i]] = True
    w = np.empty(n)
    norm = 0.0
    for i in range(n):  # sub-linear TF-IDF, unit length
        j = idx[i]
        d = df[j]
        if new_doc:
            d += 1
            df[j] = d
        v = counts[i]
        x = math.log1p(abs(v))
        if v < 0:
            x = -x
        x *= math.log((1.0 + n_docs) / (1.0 + d)) + 1.0
        w[i] = x
        norm += x * x
    if norm > 0.0:
        norm = math.sqrt(norm)
        for i in range(n):
            w[i] /= norm
    scores = np.zeros(k)
    spread = np.zeros(k)
    for i in range(n):
        j = idx[i]
        wi = w[i]
        w2 = wi * wi
        for col in range(k):
            scores[col] += wi * mean[j, col]
            spread[col] += w2 * var[j, col]
    if offset_rate > 0.0 and k > 1:  # gradient of the log-loss in the offsets: p - onehot(c)
        top = -math.inf
        for col in range(k):
            top = max(top, temperature * scores[col] + offsets[col])
        p = np.empty(k)
        total = 0.0
        for col in range(k):
            p[col] = math.exp(temperature * scores[col] + offsets[col] - top)
            total += p[col]
        for col in range(k):
            offsets[col] -= offset_rate * (p[col] / total - (1.0 if col == c else 0.0))
    if calibration_rate > 0.0 and k > 1:  # gradient of the log-loss in the temperature: E_p[score] - score[c]
        top = scores.max()
        total = 0.0
        weighted = 0.0
        for col in range(k):
            e = math.exp(temperature * (scores[col] - top))
            total += e
            weighted += e * scores[col]
        temperature = min(100.0, max(0.1, temperature - calibration_rate * (weighted / total - scores[c])))
    alpha = np.zeros(k)
    beta = np.zeros(k)
    update = False
    for col in range(k):
        sign = 1.0 if col == c else -1.0
        margin = sign * scores[col]
        if margin < 1.0:  # classes within the margin: no update
            b = 1.0 / (spread[col] + r)
            beta[col] = b
            alpha[col] = (1.0 - margin) * b * sign
            update = True
    if update:
        for i in range(n):
            j = idx[i]
            wi = w[i]
            w2 = wi * wi
            for col in range(k):
                s = var[j, col]
                mean[j, col] += wi * alpha[col] * s
                var[j, col] = s - w2 * beta[col] * s * s
    return temperature


@numba.njit(cache=True)
def nb_count(idx: np.ndarray, counts: np.ndarray, nb: np.ndarray, c: int) -> float:  # pragma: no cover - compiled
    """Add a post's counts (negative values count as none) to the rows ``idx`` of column ``c`` of
    naive Bayes' counts ``nb``; returns what was added in all.

    >>> nb = np.zeros((4, 2), np.float32)
    >>> nb_count(np.array([1, 3]), np.array([2.0, -1.0]), nb, 1), nb[:, 1].tolist()
    (2.0, [0.0, 2.0, 0.0, 0.0])
    """
    added = 0.0
    for i in range(idx.shape[0]):
        v = counts[i]
        if v > 0.0:
            nb[idx[i], c] += v
            added += v
    return added


@numba.njit(cache=True)
def softmax_adagrad_learn(
    idx: np.ndarray,
    v: np.ndarray,
    y: int,
    weight: float,
    w: np.ndarray,
    g: np.ndarray,
    lr: float,
    l2: float,
    touched: np.ndarray,
) -> None:  # pragma: no cover - compiled; covered through SentimentClassifier.learn_arrays
    """One AdaGrad step of multinomial logistic regression on label ``y``, in place: the rows ``idx``
    of the weights ``w`` and of AdaGrad's squared-gradient sums ``g``, for features ``v`` weighed
    ``weight``; the rows are marked in ``touched`` (unless it is empty)."""
    n = idx.shape[0]
    if touched.shape[0]:
        for i in range(n):
            touched[idx[i]] = True
    k = w.shape[1]
    z = np.zeros(k)
    for i in range(n):
        j = idx[i]
        for col in range(k):
            z[col] += v[i] * w[j, col]
    top = z.max()
    total = 0.0
    for col in range(k):
        z[col] = math.exp(z[col] - top)
        total += z[col]
    for col in range(k):
        z[col] = z[col] / total - (1.0 if col == y else 0.0)  # the error, softmax minus one-hot
    for i in range(n):
        j = idx[i]
        for col in range(k):
            grad = v[i] * z[col] * weight + l2 * w[j, col]
            acc = g[j, col] + grad * grad
            g[j, col] = acc
            if acc > 0.0:
                w[j, col] -= lr * grad / math.sqrt(acc)


def warm_up() -> None:
    """Compile (or load from the cache) the kernels for the types the models pass: a worker calls it
    before its event loop runs, so that the first label does not hold the loop for seconds."""
    idx, values = np.array([0, 1], dtype=np.intp), np.array([1.0, 1.0])
    kept = np.array([0, 1], np.int32).tobytes() + np.array([1.0, 1.0], np.float32).tobytes()
    replayed = np.frombuffer(kept, np.int32, count=2), np.frombuffer(kept, np.float32, offset=8)
    for (rows, counts), new_doc in (((idx, values), True), (replayed, False)):  # a label; a kept post
        mean, var = np.zeros((2, 2), np.float32), np.ones((2, 2), np.float32)
        arow_learn(
            rows,
            counts,
            np.zeros(2, np.int32),
            1,
            mean,
            var,
            2,
            0,
            0.1,
            5.0,
            0.05,
            NOT_TRACKED,
            new_doc,
            np.zeros(2),
            0.1,
        )
    nb_count(idx, values, np.zeros((2, 2), np.float32), 0)
    softmax_adagrad_learn(idx, values, 0, 1.0, np.zeros((2, 3)), np.zeros((2, 3)), 0.1, 0.0, NOT_TRACKED)
