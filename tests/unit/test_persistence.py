"""Checkpoints: signed, verified before anything is unpickled, and a learner survives the round trip."""

import orjson
import pytest

from models.persistence import CheckpointError, dump, load
from stream.learner import Learner
from stream.processor import Message, Processor
from stream.settings import Settings


class Boom:
    """Unpickling this would create a file: proof that a payload was unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_tampered_checkpoints_are_refused_before_unpickling(tmp_path):
    evil = tmp_path / "unpickled"
    blob = bytearray(dump({"ok": Boom(str(evil))}, {"version": 1, "offset": 1}, key=b"right"))
    with pytest.raises(CheckpointError):
        load(bytes(blob), key=b"wrong")
    blob[-3] ^= 0xFF  # one flipped byte in the payload
    with pytest.raises(CheckpointError):
        load(bytes(blob), key=b"right")
    with pytest.raises(CheckpointError):
        load(b"not a checkpoint", key=b"right")
    assert not evil.exists()


def test_a_learner_continues_from_its_checkpoint():
    settings = Settings()
    proc = Processor(settings)
    events = [{"id": f"p{i}", "user_id": "u", "text": f"brady deflated {i} balls" if i % 2 else f"my flight {i} late",
               "created_at": 1, "interest": "sports" if i % 2 else "travel"} for i in range(50)]
    proc.run_locally(proc.process_posts([Message(orjson.dumps(e)) for e in events]))
    meta, state = load(dump(proc.learner.state(), proc.learner.metadata(), b"k"), b"k")
    restored = Learner(settings)
    restored.restore(state)
    assert meta["version"] == restored.model.version == 50 and meta["offset"] == restored.offset == 49
    assert restored.model.predict({1: 1.0}) == proc.model.predict({1: 1.0})  # the same model
    assert restored.apply(49, b"{}", 0) is None and restored.offset == 49  # already applied: skipped
