"""A small class-balanced memory of labelled posts, replayed while their classes are away.

Social streams come in bursts (a match day is hours of sports). A linear one-vs-rest model that sees
only one class for hours learns that everything is that class: the other classes' weights only ever
see negatives. :class:`ReplayBuffer` keeps the last few posts of each class and, while a class has not
been seen for a while, hands one of them back to be learned again now and then. In a well-mixed stream
no class is ever away long, and nothing is replayed.

>>> buf = ReplayBuffer(per_class=2, away=3, rate=1.0)
>>> buf.add({9: 1.0}, "b")
>>> replays = []
>>> for i in range(8):  # a burst of "a": "b" comes back each time it has been away 3 labels
...     buf.add({i: 1.0}, "a")
...     replays += [buf.due("a")]
>>> [r for r in replays if r]
[({9: 1.0}, 'b'), ({9: 1.0}, 'b')]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Mapping
from typing import Any

__all__ = ["ReplayBuffer"]


class ReplayBuffer:
    """The last ``per_class`` posts of each class, and which to learn again after each label.

    Parameters
    ----------
    per_class
        Posts kept per class (the most recent ones: after a drift the old meaning is not replayed).
    away
        A class is replayed once this many labels of other classes came since it was last learned or
        replayed.
    rate
        At most this many replays per label learned (on average): the bound on the extra learning cost.
    """

    def __init__(self, per_class: int = 32, away: int = 50, rate: float = 0.2):
        self.per_class = per_class
        self.away = away
        self.rate = rate
        self._posts: dict[Hashable, deque[Mapping[Any, float]]] = {}
        self._seen: dict[Hashable, int] = {}
        self._labels = 0
        self._credit = 0.0
        self._turn: dict[Hashable, int] = {}  # the kept posts of a class are replayed in turn
        self.replayed = 0

    def add(self, x: Mapping[Any, float], y: Hashable) -> None:
        """Keep ``x`` (learned with label ``y``), in place of the oldest post of ``y`` once full."""
        ring = self._posts.get(y)
        if ring is None:
            ring = self._posts[y] = deque(maxlen=self.per_class)
        ring.append(x)  # as it is (the featurizer makes a new dict per post): no copy per label
        self._labels += 1
        self._seen[y] = self._labels

    def due(self, y: Hashable) -> tuple[Mapping[Any, float], Hashable] | None:
        """The post to learn again now that a label of ``y`` was learned (and its label), if any: one of
        the class away the longest, while the rate allows (each class's kept posts in turn)."""
        self._credit = min(self._credit + self.rate, 1.0)
        if self._credit < 1.0 or not self._seen:
            return None
        c = min(self._seen, key=self._seen.__getitem__)
        if c == y or self._labels - self._seen[c] < self.away:
            return None
        self._credit -= 1.0
        self._seen[c] = self._labels
        self.replayed += 1
        ring, turn = self._posts[c], self._turn.get(c, 0)
        self._turn[c] = turn + 1
        return ring[turn % len(ring)], c

    def forget(self, y: Hashable) -> None:
        """Drop what is kept of ``y`` (its meaning changed)."""
        self._posts.pop(y, None)
        self._seen.pop(y, None)
        self._turn.pop(y, None)
