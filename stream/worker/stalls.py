"""Input partitions that a worker holds and no longer reads: the policy of the worker's stall watchdog
(``stream.worker.tasks``), apart from the consumer it watches (:mod:`stream.worker.transport`)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)


class StallWatch(Generic[P]):
    """Which partitions have records past the one the worker reads next, and have not moved on from it
    for ``after`` seconds.

    Each call to :meth:`observe` gives, for every partition the worker holds, the offset it reads next
    and the partition's end offset as the broker reports it. A partition that is read up to its end, or
    whose next offset moved, starts over; one found stalled starts over too, so that it is reported
    again only after another ``after`` seconds without moving. A new ``epoch`` (the consumer group's
    generation: the partitions were sought again) and :meth:`reset` start every partition over.

    >>> watch = StallWatch(after=30.0)
    >>> watch.observe(0.0, {"p0": (100, 150), "p1": (40, 40)})  # p0 has 50 records to read
    []
    >>> watch.observe(20.0, {"p0": (100, 180), "p1": (40, 90)})  # p0 has not moved for 20 s
    []
    >>> watch.observe(30.0, {"p0": (100, 190), "p1": (45, 95)})  # 30 s: stalled; p1 reads on
    ['p0']
    >>> watch.observe(40.0, {"p0": (100, 190), "p1": (95, 95)})  # counted again from the report
    []
    >>> watch.observe(60.0, {"p0": (100, 190), "p1": (95, 95)})
    ['p0']
    >>> watch.observe(61.0, {"p0": (190, 190)})  # read to its end; p1 is no longer held
    []
    >>> watch.observe(70.0, {"p0": (190, 200)}, epoch=1), watch.observe(100.0, {"p0": (190, 200)}, epoch=2)
    ([], [])
    >>> watch.observe(130.0, {"p0": (190, 200)}, epoch=2)  # 30 s in the same generation
    ['p0']
    """

    def __init__(self, after: float) -> None:
        if after <= 0:
            raise ValueError(f"after={after} must be positive")
        self.after = after
        self._since: dict[P, tuple[int, float]] = {}  # partition -> (next offset, since when it has not moved)
        self._epoch: Hashable = None

    def observe(self, now: float, positions: Mapping[P, tuple[int, int]], epoch: Hashable = None) -> list[P]:
        """The partitions of ``positions`` (partition → (next offset to read, end offset)) stalled at
        ``now`` (seconds)."""
        if epoch != self._epoch:
            self.reset()
            self._epoch = epoch
        stalled: list[P] = []
        since = self._since
        for partition in [p for p in since if p not in positions]:
            del since[partition]
        for partition, (next_offset, end) in positions.items():
            if end <= next_offset:
                since.pop(partition, None)
                continue
            seen = since.get(partition)
            if seen is None or seen[0] != next_offset:
                since[partition] = (next_offset, now)
            elif now - seen[1] >= self.after:
                stalled.append(partition)
                since[partition] = (next_offset, now)
        return stalled

    def reset(self) -> None:
        """Start every partition over (the worker did not read meanwhile for a reason of its own)."""
        self._since.clear()
