"""The prequential figures equal River's metrics (overall and rolling) on random and real streams."""

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from river import metrics, utils

from models.metrics import Prequential


def river_figures(pairs, window):
    overall = (metrics.Accuracy(), metrics.MacroF1(), metrics.CohenKappa())
    rolling = tuple(
        utils.Rolling(m, window_size=window) for m in (metrics.Accuracy(), metrics.MacroF1(), metrics.CohenKappa())
    )
    for y, p in pairs:
        for m in overall:
            m.update(y, p)
        for r in rolling:
            r.update(y, p)
    value = lambda m: float(m.get()) if m.get() == m.get() else 0.0  # noqa: E731
    return [value(m) for m in overall], [value(m) for m in rolling]


def close(a, b):
    return all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) for x, y in zip(a, b, strict=True))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from("abcde")), max_size=60),
    st.integers(min_value=1, max_value=20),
)
def test_same_figures_as_river(pairs, window):
    q = Prequential(window=window)
    for y, p in pairs:
        q.update(y, p)
    snap = q.snapshot()
    overall, rolling = river_figures(pairs, window)
    assert close([snap["accuracy"], snap["macro_f1"], snap["kappa"]], overall), (snap, overall)
    r = snap["rolling"]
    assert close([r["accuracy"], r["macro_f1"], r["kappa"]], rolling), (r, rolling)


def test_same_figures_as_river_on_a_long_skewed_stream():
    rng = random.Random(0)
    labels = ["travel"] * 8 + ["sports"] * 3 + ["health"]
    pairs = []
    for _ in range(5000):
        y = rng.choice(labels)
        pairs.append((y, y if rng.random() < 0.8 else rng.choice(labels)))
    q = Prequential(window=1000)
    q.update("travel", None)  # unscored: before any class was known
    for y, p in pairs:
        q.update(y, p)
    snap = q.snapshot()
    overall, rolling = river_figures(pairs, 1000)
    assert snap["n"] == 5000 and snap["unscored"] == 1
    assert close([snap["accuracy"], snap["macro_f1"], snap["kappa"]], overall)
    assert close([snap["rolling"][k] for k in ("accuracy", "macro_f1", "kappa")], rolling)


def test_a_checkpoint_of_the_incremental_window_reads_back_with_the_same_figures():
    """Checkpoints of 0.13 and before hold the window's counts too (``_rolling``) and its pairs in an
    unbounded deque: read back, they give the same figures and keep the window bounded."""
    from collections import deque

    from models.metrics import Confusion

    pairs = [("a", "a"), ("b", "a"), ("b", "b"), ("a", "b"), ("a", "a")]
    fresh = Prequential(window=3)
    for y, p in pairs:
        fresh.update(y, p)
    recent = deque(pairs[-3:])  # as 0.13 kept it: no maxlen
    old_state = {
        "window": 3,
        "n": 5,
        "unscored": 0,
        "_overall": fresh._overall,
        "_rolling": Confusion.of(recent),
        "_recent": recent,
    }
    restored = Prequential.__new__(Prequential)
    restored.__setstate__(old_state)  # as the checkpoint codec builds it
    assert restored.snapshot() == fresh.snapshot()
    for q in (restored, fresh):
        q.update("b", "b")
    assert restored.snapshot() == fresh.snapshot() and len(restored._recent) == 3
