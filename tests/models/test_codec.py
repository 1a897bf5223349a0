"""The codec of snapshots and deltas (``models.codec``): what it leaves behind once it returns."""

from __future__ import annotations

import gc

import numpy as np

from models.codec import attribute_buffers, decode, encode, qualified_name


class Box:
    def __init__(self) -> None:
        self.big, self.small = np.zeros(64), b"ab"


def test_encoding_and_decoding_leave_no_reference_cycle_behind():
    """What ``encode`` and ``decode`` used (the objects encoded, the buffers read) is freed when they
    return, not at the garbage collector's next pass: a learner's snapshot references the model's
    tables, and a worker decodes a delta every second."""
    allowed = {qualified_name(Box): Box}
    array = np.arange(1000.0)
    value = [Box(), {"a": array, "b": [1, 2, {"c": b"x" * 5000}]}]
    gc.collect()
    gc.disable()
    try:
        doc, buffers = encode(value, allowed)
        decoded = decode(doc, [bytes(b) for b in buffers], allowed)
        attribute_buffers(doc, {(qualified_name(Box), "big")})
        assert gc.collect() == 0  # no unreachable object: nothing waited for a collection
    finally:
        gc.enable()
    assert np.array_equal(decoded[1]["a"], array) and isinstance(decoded[0], Box)
