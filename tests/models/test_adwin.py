"""The ADWIN the worker runs is River's, without importing ``river.drift`` (scipy, scikit-learn)."""

import random
import subprocess
import sys

from river import drift

from models.codec import decode, encode
from models.drift import ADWIN
from stream.pipeline.learner import CHECKPOINT_CLASSES


def _stream(n: int = 6000, seed: int = 3) -> list[float]:
    rng = random.Random(seed)
    return [float(rng.random() < (0.1 if i < n // 3 else 0.4 if i < 2 * n // 3 else 0.05)) for i in range(n)]


def test_it_detects_what_rivers_adwin_detects_where_it_does():
    ours, rivers = ADWIN(delta=0.002), drift.ADWIN(delta=0.002)
    detections = []
    for i, x in enumerate(_stream()):
        ours.update(x)
        rivers.update(x)
        assert ours.drift_detected == rivers.drift_detected and ours.estimation == rivers.estimation
        assert ours.width == rivers.width
        detections += [i] if ours.drift_detected else []
    assert len(detections) >= 2  # the rise and the fall of the error rate


def test_a_checkpoint_holding_rivers_adwin_loads_as_this_one_and_carries_on():
    stream = _stream()
    rivers = drift.ADWIN()
    for x in stream[:2500]:
        rivers.update(x)
    doc, views = encode({"d": rivers}, {**CHECKPOINT_CLASSES, "river.drift.adwin.ADWIN": drift.ADWIN})
    loaded = decode(doc, [bytes(v) for v in views], CHECKPOINT_CLASSES)["d"]
    assert type(loaded) is ADWIN and loaded.width == rivers.width
    for x in stream[2500:]:
        loaded.update(x)
        rivers.update(x)
        assert loaded.drift_detected == rivers.drift_detected and loaded.estimation == rivers.estimation


def test_a_worker_imports_neither_scipy_stats_nor_scikit_learn():
    """River's drift detectors, stock models and metrics import them: about 95 MB per worker process."""
    code = (
        "import sys, stream.worker.app, stream.pipeline.learner, stream.worker.learnerproc;"
        "print(sorted({m.split('.')[0] + '.' + m.split('.')[1] for m in sys.modules"
        " if m.startswith(('scipy.stats', 'sklearn.', 'river.drift', 'river.metrics'))}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_checkpoints_name_it_as_rivers_so_that_an_earlier_version_reads_them():
    """A rolling upgrade: workers of 0.7 allow River's ADWIN only, and read this version's."""
    ours = ADWIN()
    stream = _stream()
    for x in stream[:2500]:
        ours.update(x)
    doc, views = encode({"d": ours}, CHECKPOINT_CLASSES)
    assert doc["$d"][0][1]["$o"] == "river.drift.adwin.ADWIN"
    earlier = {
        **{k: v for k, v in CHECKPOINT_CLASSES.items() if v is not ADWIN},
        "river.drift.adwin.ADWIN": drift.ADWIN,
    }
    theirs = decode(doc, [bytes(v) for v in views], earlier)["d"]
    assert type(theirs) is drift.ADWIN and theirs.width == ours.width
    for x in stream[2500:]:
        ours.update(x)
        theirs.update(x)
        assert ours.drift_detected == theirs.drift_detected and ours.estimation == theirs.estimation
