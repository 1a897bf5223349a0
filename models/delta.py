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

>>> import numpy as np
>>> changed_rows([np.array([5, 1]), np.array([1, 9])]).tolist()
[1, 5, 9]
>>> changed_rows([]).tolist()
[]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class Tracking:
    """What the replicable classifiers share: from :meth:`track` on, ``_touched`` collects what each
    learning step changed (row indices, or feature keys), and :meth:`take_touched` hands it over for a
    delta. It is a replication detail: never part of the pickled or checkpointed state.

    >>> t = Tracking(); t.track(); t._touched.append([1])
    >>> t.take_touched(), t.take_touched(), "_touched" in t.__getstate__()
    ([[1]], [], False)
    """

    _touched: list[Any] | None = None

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


def changed_rows(parts: Sequence[np.ndarray] | None) -> np.ndarray:
    """The distinct row indices of ``parts`` (each the rows of one learned example), sorted."""
    if not parts:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.concatenate(parts)).astype(np.int64)
