"""Checkpoints: signed, verified before anything is unpickled, and a learner survives the round trip."""

from typing import Any

import orjson
import pytest

from models.persistence import CheckpointError, dump, load
from stream.pipeline.learner import Learner
from stream.pipeline.processor import Processor
from stream.pipeline.records import Message
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
    events = [
        {
            "id": f"p{i}",
            "user_id": "u",
            "text": f"brady deflated {i} balls" if i % 2 else f"my flight {i} late",
            "created_at": 1,
            "interest": "sports" if i % 2 else "travel",
        }
        for i in range(50)
    ]
    proc.run_locally(proc.process_posts([Message(orjson.dumps(e)) for e in events]))
    meta, state = load(dump(proc.learner.state(), proc.learner.metadata(), b"k"), b"k")
    restored = Learner(settings)
    restored.restore(state)
    assert meta["version"] == restored.model.version == 50 and meta["offset"] == restored.offset == 49
    assert restored.model.predict({1: 1.0}) == proc.model.predict({1: 1.0})  # the same model
    assert restored.apply(49, b"{}", 0) is None and restored.offset == 49  # already applied: skipped


@pytest.mark.parametrize("chunk", [7, 4096, 1 << 20])
def test_checkpoints_stream_through_the_compressor_and_back(monkeypatch, chunk):
    """Written and read in pieces (the pickled state never whole in memory): the state comes back
    equal, arrays writeable, whatever the chunk boundaries; a checkpoint compressed in one go (by
    an earlier version) reads the same."""
    import pickle
    import zlib

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
    earlier = persistence.seal(zlib.compress(pickle.dumps(state, protocol=5), 3), {"version": 4}, b"k")
    assert load(earlier, b"k")[1]["ids"] == state["ids"]


def test_the_decompressor_reads_lines_and_buffers_across_chunks(monkeypatch):
    """``pickle.load`` may call ``read``, ``readinto`` and ``readline`` in any order."""
    import zlib

    import models.persistence as persistence

    monkeypatch.setattr(persistence._Decompressor, "CHUNK", 3)
    data = b"first line\n" + bytes(range(11, 256)) * 3 + b"\nlast, no newline"  # no other newline
    f = persistence._Decompressor(zlib.compress(data))
    assert f.readline() == b"first line\n"
    target = bytearray(300)
    assert f.readinto(target) == 300 and bytes(target) == data[11:311]
    assert f.read(5) == data[311:316]
    rest = data[316:]
    assert f.readline() == rest[: rest.index(b"\n") + 1]
    assert f.readline() == b"last, no newline" and f.read() == b"" and f.readline() == b""
