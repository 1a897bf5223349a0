"""Checkpoints: signed, data only (nothing read runs code), and a learner survives the round trip."""

from typing import Any

import orjson
import pytest

from models.persistence import CheckpointError, dump, load
from stream.pipeline.learner import CHECKPOINT_CLASSES, Learner
from stream.pipeline.processor import Processor
from stream.pipeline.records import Message
from stream.settings import Settings


class Boom:
    """Unpickling this would create a file: proof that a payload was unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def posts(n: int, unlabelled_every: int = 0) -> list[Message]:
    """Posts about two interests; every ``unlabelled_every``-th one without its label."""
    events = [
        {
            "id": f"p{i}",
            "user_id": "u",
            "text": f"brady deflated {i} balls" if i % 2 else f"my flight {i} late",
            "created_at": 1,
            **({} if unlabelled_every and i % unlabelled_every == 0 else {"interest": "sports" if i % 2 else "travel"}),
        }
        for i in range(n)
    ]
    return [Message(orjson.dumps(e)) for e in events]


def test_tampered_checkpoints_are_refused():
    blob = bytearray(dump({"ok": [1, 2, 3]}, {"version": 1, "offset": 1}, key=b"right"))
    with pytest.raises(CheckpointError, match="signature"):
        load(bytes(blob), key=b"wrong")
    blob[-3] ^= 0xFF  # one flipped byte in the payload
    with pytest.raises(CheckpointError, match="signature"):
        load(bytes(blob), key=b"right")
    with pytest.raises(CheckpointError):
        load(b"not a checkpoint", key=b"right")


def test_a_pickled_checkpoint_signed_with_the_right_key_runs_no_code(tmp_path):
    """The earlier format was a pickle: a forged one, signed with the key a worker uses (the public
    default, say), is refused without being read."""
    import pickle
    import zlib

    import models.persistence as persistence

    evil = tmp_path / "unpickled"
    payload = zlib.compress(pickle.dumps({"model": Boom(str(evil))}))
    forged = (
        persistence.PICKLED_MAGIC + persistence.seal(payload, {"version": 9, "offset": 9}, b"dev-only-change-me")[5:]
    )
    with pytest.raises(CheckpointError, match="pickled format"):
        load(forged, b"dev-only-change-me", CHECKPOINT_CLASSES)
    assert not evil.exists()


def test_a_checkpoint_that_names_a_function_is_refused(tmp_path):
    """A record in the current format cannot name a callable either: only allowed classes are built."""
    import zlib

    import models.persistence as persistence

    evil = tmp_path / "called"
    doc = orjson.dumps({"$o": "builtins.open", "a": [str(evil), "w"], "s": None})
    payload = zlib.compress(len(doc).to_bytes(4, "big") + doc + (0).to_bytes(4, "big"))
    forged = persistence.seal(payload, {"version": 9}, b"k")
    with pytest.raises(CheckpointError, match="not allowed"):
        load(forged, b"k", CHECKPOINT_CLASSES)
    assert not evil.exists()
    with pytest.raises(CheckpointError, match="cannot be checkpointed"):
        dump({"model": Boom(str(evil))}, {"version": 1}, b"k", CHECKPOINT_CLASSES)


def test_a_learner_continues_from_its_checkpoint():
    settings = Settings()
    proc = Processor(settings)
    proc.run_locally(proc.process_posts(posts(50)))
    classes = CHECKPOINT_CLASSES
    meta, state = load(dump(proc.learner.state(), proc.learner.metadata(), b"k", classes), b"k", classes)
    restored = Learner(settings)
    restored.restore(state)
    assert meta["version"] == restored.model.version == 50 and meta["offset"] == restored.offset == 49
    assert restored.model.predict({1: 1.0}) == proc.model.predict({1: 1.0})  # the same model
    assert restored.apply(49, b"{}", 0) is None and restored.offset == 49  # already applied: skipped


@pytest.mark.parametrize("chunk", [7, 4096, 1 << 20])
def test_checkpoints_stream_through_the_compressor_and_back(monkeypatch, chunk):
    """Written and read in pieces (the encoded state never whole in memory): the state comes back
    equal, arrays writeable, whatever the chunk boundaries."""
    import numpy as np

    import models.persistence as persistence

    monkeypatch.setattr(persistence._Decompressor, "CHUNK", chunk)
    rng = np.random.default_rng(1)
    state: dict[str, Any] = {
        "weights": rng.random((3000, 6), dtype=np.float32),
        "room": np.ones((5000, 8), np.float32),
        "lines": ["a\nb", "\n" * 50, "x" * 70_000],
        "ids": {f"p{i}": (i, b"\x00\n" * 3) for i in range(2000)},
    }
    meta, back = load(dump(state, {"version": 3}, b"k"), b"k")
    assert meta == {"version": 3} and back["lines"] == state["lines"] and back["ids"] == state["ids"]
    assert all(np.array_equal(back[k], state[k]) and back[k].flags.writeable for k in ("weights", "room"))


def test_the_decompressor_reads_buffers_across_chunks(monkeypatch):
    import zlib

    import models.persistence as persistence

    monkeypatch.setattr(persistence._Decompressor, "CHUNK", 3)
    data = bytes(range(256)) * 3
    f = persistence._Decompressor(zlib.compress(data))
    assert f.read(11) == data[:11]
    target = bytearray(300)
    assert f.readinto(target) == 300 and bytes(target) == data[11:311]
    assert f.read() == data[311:] and f.read() == b""


def test_a_large_buffer_is_read_a_chunk_at_a_time(monkeypatch):
    """Reading a 1 MB array never holds more than about two chunks of decompressed bytes besides it,
    and skipping one keeps none of it."""
    import zlib

    import numpy as np

    import models.persistence as persistence

    monkeypatch.setattr(persistence._Decompressor, "CHUNK", 4096)
    data = np.random.default_rng(2).integers(0, 255, 1 << 20, dtype=np.uint8).tobytes() * 2
    f = persistence._Decompressor(zlib.compress(data))
    most = 0
    available = f._available

    def watched(n: int) -> int:
        nonlocal most
        got = available(n)
        most = max(most, len(f._buffer))
        return got

    monkeypatch.setattr(f, "_available", watched)
    target = bytearray(1 << 20)
    assert f.readinto(target) == 1 << 20 and bytes(target) == data[: 1 << 20]
    assert f.skip(1 << 20) == 1 << 20 and f.read() == b""
    assert 0 < most <= 3 * 4096


def test_a_replica_decodes_a_snapshot_without_what_only_learning_reads():
    """A replica's load leaves AROW's variances and the kept posts unread: they decode as zeros that
    take no memory, the replica drops them, and it predicts what a full decode predicts."""
    import numpy as np

    from stream.pipeline.modelview import LEARNING_ONLY, ModelView, unread_by_replica

    settings = Settings()
    proc = Processor(settings)
    proc.run_locally(proc.process_posts(posts(60)))
    blob = dump(proc.learner.state(), proc.learner.metadata(), b"k", CHECKPOINT_CLASSES)
    _, full = load(blob, b"k", CHECKPOINT_CLASSES)
    _, lean = load(blob, b"k", CHECKPOINT_CLASSES, unread_by_replica)
    learner_var = proc.learner.model.classifier._var_buf  # type: ignore[attr-defined]  # an AROWClassifier
    assert np.array_equal(full["model"].classifier._var_buf, learner_var) and (learner_var != 0).any()
    assert not lean["model"].classifier._var_buf.any()  # unread: zeros
    kept = [post for ring in lean["model"].replay._posts.values() for post in ring]
    assert kept and not any(any(post) for post in kept)  # unread: zero bytes
    assert np.array_equal(lean["model"].classifier._mean_buf, full["model"].classifier._mean_buf)
    a, b = ModelView(settings), ModelView(settings)
    a.load(full, "e1")
    b.load(lean, "e1")
    assert a.model.predict({1: 1.0, 7: 2.0}) == b.model.predict({1: 1.0, 7: 2.0}) != {}
    for cls, attribute in LEARNING_ONLY:  # what the replica drops is what it need not read
        owner = b.model if cls.endswith("OnlineModel") else b.model.classifier
        value = getattr(owner, attribute)
        assert value is None or value.size == 0


@pytest.mark.parametrize("model", ["arow", "nb"])
def test_a_view_that_predicts_nothing_reads_no_interest_model(model):
    """An aggregates worker's view leaves the interest model's arrays unread (zeros on fresh pages),
    keeps a placeholder of two rows, and takes the erasures, the sentiment model (decoded as in full:
    nothing it holds is shared with the interest model), the offset and the learner's figures (from
    the model itself when the snapshot has none)."""
    import numpy as np

    from models.sentiment import lexicon_scores
    from stream.pipeline.modelview import PLACEHOLDER_BITS, ModelView
    from stream.pipeline.privacy import erased_token
    from stream.pipeline.records import training_erase

    settings = Settings(model=model)
    proc = Processor(settings)
    labelled = [orjson.loads(m.value or b"") for m in posts(60)]
    for i, event in enumerate(labelled):
        event["sentiment"] = "positive" if i % 3 else "negative"
    proc.run_locally(proc.process_posts([Message(orjson.dumps(e)) for e in labelled]))
    proc.learner.apply(10_000, training_erase(erased_token("u9")), 0)
    blob = dump(proc.learner.state(), proc.learner.metadata(), b"k", CHECKPOINT_CLASSES)
    view = ModelView(settings, predicts=False)
    _, state = load(blob, b"k", CHECKPOINT_CLASSES, view.unread)
    _, full = load(blob, b"k", CHECKPOINT_CLASSES)
    if model == "arow":  # naive Bayes' counts are dicts in the document, not buffers
        arrays = [v for v in vars(state["model"].classifier).values() if isinstance(v, np.ndarray) and v.size > 1000]
        assert arrays and not any(a.any() for a in arrays)  # unread: zeros
        assert full["model"].classifier._mean_buf.any()
    view.load(state, "e1", proc.learner.figures())
    placeholder = [v.nbytes for v in vars(view.model.classifier).values() if isinstance(v, np.ndarray)]
    assert view.model.version == 0 and PLACEHOLDER_BITS == 1 and sum(placeholder) < 4096
    assert view.is_erased("u9") and view.offset == 10_000
    assert view.figures()["model"]["version"] == proc.model.version == 60
    assert view.sentiment.n_labels == full["sentiment"].n_labels > 0
    kept, whole = vars(view.sentiment.classifier), vars(full["sentiment"].classifier)
    names = [k for k, v in kept.items() if isinstance(v, np.ndarray)]
    assert names and all(np.array_equal(kept[k], whole[k]) for k in names)
    without = ModelView(settings, predicts=False)  # a snapshot without figures: the model's own
    without.load(load(blob, b"k", CHECKPOINT_CLASSES, without.unread)[1], "e1")
    model_figures = without.figures()["model"]
    assert (model_figures["version"], model_figures["classes"]) == (60, ["sports", "travel"])
    x, lex = {1: 1.0, 7: 2.0}, lexicon_scores("a great day")
    assert view.sentiment.predict_many([x], [lex]) == full["sentiment"].predict_many([x], [lex])


@pytest.mark.parametrize("model", ["arow", "arow-balanced", "arow-nb", "nb", "nb-balanced", "river-nb", "logreg"])
def test_every_worker_model_round_trips_and_river_candidates_are_rebuilt_instead(model):
    """The worker's own models (and drift detectors, metrics) come back equal; River's stock
    candidates hold functions, are refused by the codec, and are rebuilt from the training log."""
    settings = Settings(model=model)
    proc = Processor(settings)
    proc.run_locally(proc.process_posts(posts(90, unlabelled_every=3)))  # a third wait for a label
    if model in ("river-nb", "logreg"):
        with pytest.raises(CheckpointError, match="cannot be checkpointed"):
            dump(proc.learner.state(), proc.learner.metadata(), b"k", CHECKPOINT_CLASSES)
        return
    blob = dump(proc.learner.state(), proc.learner.metadata(), b"k", CHECKPOINT_CLASSES)
    restored = Learner(settings)
    restored.restore(load(blob, b"k", CHECKPOINT_CLASSES)[1])
    assert len(proc.joiner.pending) == 30  # waiting in the predictor, not in the learner
    for x in ({1: 1.0}, {2: 1.0, 3: 2.0}):
        assert restored.model.predict(x) == proc.model.predict(x)
    joined = proc.joiner.label("p0", "travel", None, proc.clock())
    assert joined is not None
    proc.learner.apply(1000, joined.record(), 0)
    restored.apply(1000, joined.record(), 0)  # a joined example learned after the restore as before it
    assert restored.model.version == proc.model.version == 61
    assert restored.quality.snapshot() == proc.learner.quality.snapshot()
