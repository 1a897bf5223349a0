"""A class-balanced memory of labelled posts, replayed so that a model learns every class all along.

Social streams come in bursts (a match day is hours of sports). A linear one-vs-rest model that sees
only one class for hours learns that everything is that class: the other classes' weights only ever
see negatives. :class:`ReplayBuffer` keeps the last posts of each class and, after each label, hands
back one post of the class away the longest, to be learned again: whatever order the labels come in,
half of what the model learns is spread evenly over the classes. Measured on the forum posts (8
interests, the file sorted by newsgroup), frozen macro-F1 on later posts went from 0.58 (a replay only
of classes away 50 labels, at most one per five labels) to 0.81 in file order, 0.74 to 0.82 in bursts
of 200, and 0.870 to 0.871 shuffled (``docs/models.md``).

While a burst keeps some class away (no label of it for ``burst_away`` labels, and for four times its
mean gap between labels), ``burst_rate`` posts are replayed per label, each of another class: the
classes the burst pushes down come back twice as often. Measured on the same posts in bursts of 50 to
500 (nine orders), macro-F1 went from 0.8272 to 0.8424 on average, for one more replay per label while
the burst lasts; in a mixed stream no class is away that long and nothing changes.

>>> buf = ReplayBuffer(per_class=2, away=3, rate=1.0)
>>> buf.add({9: 1.0}, "b")
>>> replays = []
>>> for i in range(8):  # a burst of "a": "b" comes back each time it has been away 3 labels
...     buf.add({i: 1.0}, "a")
...     replays += buf.due("a")
>>> replays
[({9: 1.0}, 'b'), ({9: 1.0}, 'b')]

After a mixed start, a burst of "a": two posts a label once "b" (10 of the first 40 labels, the last
of them 2 labels before the burst) has been away 20 labels and four times its mean gap, 24 labels in:

>>> buf = ReplayBuffer(per_class=2, burst_away=20)
>>> for i in range(40):
...     buf.add({i: 1.0}, "abcd"[i % 4]); _ = buf.due("abcd"[i % 4])
>>> per_label = []
>>> for i in range(30):
...     buf.add({100 + i: 1.0}, "a"); per_label.append(len(buf.due("a")))
>>> per_label.index(2) + 1, per_label[-3:]
(24, [2, 2, 2])
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable, Mapping
from typing import Any

__all__ = ["ReplayBuffer"]

BURST_GAPS = 4  # a class away this many times its mean gap between labels (and burst_away) is kept away

POLICY = 2  # the replay policy of the defaults below (1: 0.6 and before)
Kept = Mapping[Any, float] | bytes  # a post as the model keeps it (see AROWClassifier.keep)


class ReplayBuffer:
    """The last ``per_class`` posts of each class, and which to learn again after each label.

    Parameters
    ----------
    per_class
        Posts kept per class (the most recent ones: after a drift the old meaning is not replayed).
    away
        A class is replayed only once this many labels of other classes came since it was last
        learned or replayed (0: the class away the longest, whenever the rate allows).
    rate
        At most this many replays per label learned (on average): the bound on the extra learning cost.
    burst_rate
        The same while a burst keeps some class away (see :meth:`in_burst`).
    burst_away
        A class is kept away by a burst once it has had no label for this many labels (and for four
        times its mean gap between labels, so that a rare class of a mixed stream is not).
    """

    def __init__(
        self, per_class: int = 512, away: int = 0, rate: float = 1.0, burst_rate: float = 2.0, burst_away: int = 200
    ):
        self.per_class = per_class
        self.away = away
        self.rate = rate
        self.burst_rate = burst_rate
        self.burst_away = burst_away
        self._labelled: dict[Hashable, int] = {}  # when each class last had a label (a replay is none)
        self._count: dict[Hashable, int] = {}  # labels of each class
        self._posts: dict[Hashable, deque[Kept]] = {}
        self._seen: dict[Hashable, int] = {}
        self._labels = 0
        self._credit = 0.0
        self._turn: dict[Hashable, int] = {}  # the kept posts of a class are replayed in turn
        self.replayed = 0
        self.policy = POLICY

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        fresh = ReplayBuffer()  # the current defaults, for what an earlier checkpoint lacks
        if "_labelled" not in state:  # checkpoints of 0.15 and before: no burst replays yet
            self.burst_rate, self.burst_away = fresh.burst_rate, fresh.burst_away
            self._labelled = dict(self._seen)  # the last label or replay of each class: near enough
            self._count = dict.fromkeys(self._seen, 1 + self._labels // max(1, len(self._seen)))
        if state.get("policy") != POLICY:  # checkpoints of 0.6 and before: 32 posts a class, replayed
            # only while away 50 labels; the kept posts carry on under this policy
            self.per_class, self.away, self.rate, self.policy = fresh.per_class, fresh.away, fresh.rate, POLICY
            self._posts = {y: deque(ring, maxlen=self.per_class) for y, ring in self._posts.items()}

    def add(self, x: Kept, y: Hashable) -> None:
        """Keep ``x`` (learned with label ``y``), in place of the oldest post of ``y`` once full."""
        ring = self._posts.get(y)
        if ring is None:
            ring = self._posts[y] = deque(maxlen=self.per_class)
        ring.append(x)  # as it is (the caller keeps a compact form, or a dict nothing else holds)
        self._labels += 1
        self._seen[y] = self._labelled[y] = self._labels
        self._count[y] = self._count.get(y, 0) + 1

    def in_burst(self) -> bool:
        """Whether a burst keeps some class away: the class labelled the longest ago has had no label
        for :attr:`burst_away` labels and for four times its mean gap between labels."""
        if not self._labelled:
            return False
        c = min(self._labelled, key=self._labelled.__getitem__)
        away = self._labels - self._labelled[c]
        return away >= self.burst_away and away * self._count[c] >= BURST_GAPS * self._labels

    def due(self, y: Hashable, bursting: bool | None = None) -> list[tuple[Kept, Hashable]]:
        """The posts to learn again now that a label of ``y`` was learned, with their labels: one per
        class, the classes away the longest first, as many as the rate allows (:attr:`burst_rate` in
        a burst); each class's kept posts in turn. ``bursting``: :meth:`in_burst`, if the caller
        already asked."""
        if bursting is None:
            bursting = self.in_burst()
        rate = self.burst_rate if bursting else self.rate
        self._credit = min(self._credit + rate, max(1.0, math.ceil(rate)))
        due: list[tuple[Kept, Hashable]] = []
        while self._credit >= 1.0 and self._seen:
            c = min(self._seen, key=self._seen.__getitem__)
            if c == y or self._labels - self._seen[c] < self.away:
                break
            self._credit -= 1.0
            self._seen[c] = self._labels
            self.replayed += 1
            ring, turn = self._posts[c], self._turn.get(c, 0)
            self._turn[c] = turn + 1
            due.append((ring[turn % len(ring)], c))
        return due

    def forget(self, y: Hashable) -> None:
        """Drop what is kept of ``y`` (its meaning changed)."""
        self._posts.pop(y, None)
        self._seen.pop(y, None)
        self._turn.pop(y, None)
        self._labelled.pop(y, None)
        self._count.pop(y, None)
