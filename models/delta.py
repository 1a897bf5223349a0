"""Sparse model deltas: what a learner sends its read-only replicas.

A classifier that supports replication has ``track()`` (from now on, remember which rows of its
weights learning changes), ``take_delta()`` (the rows changed since the last call, with the small
state that goes with them: classes, counts, document totals, calibration) and ``apply_delta()``
(on a replica: overwrite those rows). A delta is plain data (numpy arrays, numbers, strings, lists
and dicts), so it travels in :mod:`models.codec`'s data-only format, and applying it is idempotent:
applying a delta twice, or a delta whose rows were already applied, leaves the same weights.

Replicas only predict: a delta carries what prediction reads (AROW's means and document
frequencies, not its variances; the sentiment weights, not AdaGrad's sums), so a replica's
learning-only state is stale by design and a replica never learns.
"""

from __future__ import annotations

from typing import Any

import numpy as np

NOT_TRACKED = np.zeros(0, dtype=np.bool_)  # the mask of rows a model that is not tracked marks nothing in


class Tracking:
    """What the replicable classifiers share: from :meth:`track` on, ``_touched`` collects what each
    learning step changed (here a list of feature keys, handed over by :meth:`take_touched`; the
    array models override :meth:`track` with a boolean mask of rows, see :func:`marked_rows`). It is
    a replication detail: never part of the pickled or checkpointed state.

    >>> t = Tracking(); t.track(); t._touched.append([1])
    >>> t.take_touched(), t.take_touched(), "_touched" in t.__getstate__()
    ([[1]], [], False)
    """

    _touched: Any = None  # a list of what each step changed, or a boolean mask of rows

    def track(self) -> None:
        """Remember from now on what learning changes."""
        self._touched = []

    def take_touched(self) -> list[Any]:
        """What changed since :meth:`track` or the last call."""
        parts = self._touched or []
        if self._touched is not None:
            self._touched = []
        return parts

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_touched", None)
        return state


def marked_rows(marks: np.ndarray | None) -> np.ndarray:
    """The rows marked in a boolean array, sorted; the marks are cleared (the next delta starts empty).

    >>> marks = np.zeros(8, dtype=bool); marks[[5, 1]] = True
    >>> marked_rows(marks).tolist(), bool(marks.any()), marked_rows(None).tolist()
    ([1, 5], False, [])
    """
    if marks is None:
        return np.empty(0, dtype=np.int64)
    rows = np.flatnonzero(marks)
    marks[rows] = False
    return rows
