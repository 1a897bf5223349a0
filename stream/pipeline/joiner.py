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

import sys
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from models.online import Features
from stream.pipeline.records import training_post
from stream.pipeline.state import TTLStore

PackedFeatures = bytes | Features


def pack_features(features: Mapping[Any, Any]) -> PackedFeatures:
    """Features packed into bytes for a post waiting for its label: 4 bytes per hash, and 1 byte per
    value when all are whole counts under 256 (the featurizer's), else 8. Anything but integer hashes
    stays a dict.

    >>> packed = pack_features({7: 1.0, 2**27: 2.0})
    >>> len(packed), unpack_features(packed)
    (11, {7: 1.0, 134217728: 2.0})
    >>> unpack_features(pack_features({7: 0.5})), unpack_features(pack_features({7: 300.0, 8: -1.0}))
    ({7: 0.5}, {7: 300.0, 8: -1.0})
    >>> pack_features({"word": 1.0})
    {'word': 1.0}
    """
    try:
        keys, values = array("I", features.keys()), list(features.values())
        try:
            packed = array("B", map(int, values))  # OverflowError outside 0..255
            if packed.tolist() != values:  # not whole numbers (1 == 1.0, 1 != 1.5)
                packed = array("d", values)
        except OverflowError:
            packed = array("d", values)
    except (TypeError, OverflowError, ValueError):
        return dict(features)
    return packed.typecode.encode() + keys.tobytes() + packed.tobytes()


def unpack_features(packed: PackedFeatures) -> Features:
    """The dict :func:`pack_features` packed."""
    if not isinstance(packed, bytes):
        return packed
    values = array(packed[:1].decode())
    n = (len(packed) - 1) // (4 + values.itemsize)
    keys = array("I")
    keys.frombytes(packed[1 : 1 + 4 * n])
    values.frombytes(packed[1 + 4 * n :])
    return dict(zip(keys, map(float, values), strict=True))


@dataclass(frozen=True, slots=True)
class Pending:
    """What a post left behind for its delayed labels: features, lexicon scores, the predictions made."""

    features: PackedFeatures
    predicted: str | None
    lex: tuple[float, ...] | bytes | None = None  # bytes: packed doubles (see :meth:`Pending.compact`)
    sentiment_predicted: str | None = None
    words: int | None = None  # the first ``words`` features are the post's words (None: all of them)

    def __setstate__(self, state: Sequence[Any]) -> None:
        # a post checkpointed by an earlier version, without the later fields: their defaults
        all_fields = fields(self)
        for f, value in zip(all_fields, [*state, *(f.default for f in all_fields[len(state) :])], strict=True):
            object.__setattr__(self, f.name, value)

    def compact(self) -> Pending:
        """The same, smaller, for a post that may wait an hour for its label: features and lexicon
        scores packed into bytes, labels interned (a few hundred bytes instead of ~800)."""
        return Pending(
            pack_features(self.features) if isinstance(self.features, dict) else self.features,
            sys.intern(self.predicted) if self.predicted else self.predicted,
            array("d", self.lex).tobytes() if isinstance(self.lex, tuple) else self.lex,
            sys.intern(self.sentiment_predicted) if self.sentiment_predicted else self.sentiment_predicted,
            self.words,
        )

    def lexicon(self) -> tuple[float, ...] | None:
        """The lexicon scores, unpacked."""
        if isinstance(self.lex, bytes):
            return tuple(array("d", self.lex))
        return self.lex


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
            words=p.words,
        )


class Joiner:
    """Posts waiting for their labels and labels waiting for their posts, TTL and capacity bounded.

    Parameters
    ----------
    ttl
        Seconds either half waits for the other.
    capacity
        Most entries of each kind (the oldest are dropped, counted as expired).
    pending, early
        Stores to use instead of new ones (the learner's, for a training log of the earlier format).
    """

    def __init__(
        self,
        ttl: float,
        capacity: int,
        pending: TTLStore[Pending] | None = None,
        early: TTLStore[tuple[str | None, str | None]] | None = None,
    ):
        self.pending: TTLStore[Pending] = TTLStore(ttl, capacity) if pending is None else pending
        self.early: TTLStore[tuple[str | None, str | None]] = TTLStore(ttl, capacity) if early is None else early

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
