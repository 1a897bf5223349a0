"""The record formats of the internal topics (``stream.audience.records``)."""

from __future__ import annotations

import gc

import orjson

from stream.audience.records import by_partition


def test_records_split_to_fit_leave_no_reference_cycle_behind():
    """The records a batch's aggregates make are freed once sent, not at the garbage collector's next
    pass (a worker makes them several times a second)."""
    items = {f"user{i}": {"posts": [[i, {"music": 1.0}]] * 20} for i in range(300)}
    gc.collect()
    gc.disable()
    try:
        records = by_partition(items, "users", 4, max_bytes=4_000)
        assert gc.collect() == 0
    finally:
        gc.enable()
    assert len(records) > 4 and all(len(v) <= 4_000 for _, v in records)
    assert sorted(k for _, v in records for k in orjson.loads(v)["users"]) == sorted(items)
    assert [p for p, _ in records] == sorted(p for p, _ in records)  # in partition order
