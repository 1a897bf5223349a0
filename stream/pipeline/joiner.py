"""Delayed labels joined to their posts where the posts were predicted.

A post that comes without its label leaves what learning will need (its features, lexicon scores
and predictions: a :class:`~stream.pipeline.learner.Pending`) with the :class:`Joiner` of the
worker that owns its partition. The feedback topic is keyed by post id and has as many partitions
as the posts topic, so a post's label reaches the same worker (Faust assigns partition N of both
to one worker), where it is joined. Only joined examples go on to the training topic and the
learner: a post's work (and its wait) happens once, in one worker.

Either half may come first: a label with no post waiting is kept (``early``) until its post comes.
Both wait at most ``STREAM_FEEDBACK_TTL`` seconds and ``STREAM_FEEDBACK_CAPACITY`` entries; what
expires is counted (``labels_expired``, ``early_labels_expired``). Waiting posts live in the
worker's memory: when a partition moves to another worker (a crash, a rebalance), the labels of
the posts that waited in the old one find nothing in the new one, wait as early labels and expire,
counted.

>>> from stream.pipeline.learner import Pending
>>> j = Joiner(ttl=60, capacity=10)
>>> j.post("p1", Pending({1: 1.0}, "sports"), now=0) is None     # waits for its label
True
>>> example = j.label("p1", "travel", None, now=1)
>>> example.predicted, example.label
('sports', 'travel')
>>> j.label("p2", "music", "positive", now=1) is None            # the label came first
True
>>> j.post("p2", Pending({2: 1.0}, "music"), now=2).sentiment
'positive'
"""

from __future__ import annotations

from dataclasses import dataclass

from stream.pipeline.learner import Pending, unpack_features
from stream.pipeline.records import training_post
from stream.pipeline.state import TTLStore


@dataclass(frozen=True, slots=True)
class Joined:
    """A post and its delayed labels, ready for the training topic."""

    post_id: str
    pending: Pending
    label: str | None
    sentiment: str | None

    @property
    def predicted(self) -> str | None:
        return self.pending.predicted

    def record(self) -> bytes:
        """The training-log record of this example (a ``post`` record with its labels, ``joined``)."""
        p = self.pending
        return training_post(
            self.post_id,
            unpack_features(p.features),
            p.predicted,
            self.label,
            p.lexicon(),
            p.sentiment_predicted,
            self.sentiment,
            joined=True,
        )


class Joiner:
    """Posts waiting for their labels and labels waiting for their posts, TTL and capacity bounded.

    Parameters
    ----------
    ttl
        Seconds either half waits for the other.
    capacity
        Most entries of each kind (the oldest are dropped, counted as expired).
    """

    def __init__(self, ttl: float, capacity: int):
        self.pending: TTLStore[Pending] = TTLStore(ttl, capacity)
        self.early: TTLStore[tuple[str | None, str | None]] = TTLStore(ttl, capacity)

    def post(self, post_id: str, pending: Pending, now: float) -> Joined | None:
        """A post without labels: joined with its early label if one waits, else kept (packed)."""
        early = self.early.pop(post_id, now)
        if early is None:
            self.pending.put(post_id, pending.compact(), now)
            return None
        return Joined(post_id, pending, *early)

    def label(self, post_id: str, label: str | None, sentiment: str | None, now: float) -> Joined | None:
        """A delayed label: joined with its waiting post, else kept until the post comes."""
        waiting = self.pending.pop(post_id, now)
        if waiting is None:
            self.early.put(post_id, (label, sentiment), now)
            return None
        return Joined(post_id, waiting, label, sentiment)
