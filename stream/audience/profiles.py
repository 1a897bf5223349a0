"""User-interest profiles: exponentially decayed interest scores per user.

A profile is a decayed sum of the interest probabilities of a user's posts, relative to the newest
post seen (event time). A post ``dt`` seconds older than that counts ``2 ** (-dt / half_life)``, so
the result does not depend on the order posts arrive in, and a user who stops posting about a topic
drifts away from it.

>>> p = Profile.new()
>>> p = p.add({"sports": 0.9, "music": 0.1}, at_ms=0, half_life_s=3600)
>>> p = p.add({"music": 1.0}, at_ms=3_600_000, half_life_s=3600)   # one half-life later
>>> {k: round(v, 3) for k, v in sorted(p.scores.items())}
{'music': 1.05, 'sports': 0.45}
>>> p.top(1)
[('music', 1.05)]
>>> q = Profile.new().add({"music": 1.0}, 3_600_000, 3600).add({"sports": 0.9, "music": 0.1}, 0, 3600)
>>> q.scores == p.scores
True
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from stream.audience.records import decode_profile_updates
from stream.schemas import SCHEMA_VERSION

if TYPE_CHECKING:
    from stream.settings import Settings

MIN_SCORE = 1e-4  # scores decayed below this are dropped (bounds a profile's size)


@dataclass(frozen=True, slots=True)
class Profile:
    """Decayed interest scores as of ``updated_ms`` (the newest post's event time)."""

    scores: dict[str, float]
    updated_ms: int
    posts: int

    @classmethod
    def new(cls) -> Profile:
        return cls({}, -(2**62), 0)

    def add(self, probabilities: Mapping[str, float], at_ms: int, half_life_s: float) -> Profile:
        """The profile with one more post's interest probabilities (any event-time order)."""
        if self.posts == 0 or at_ms >= self.updated_ms:
            factor = 0.0 if self.posts == 0 else 2.0 ** (-(at_ms - self.updated_ms) / 1000 / half_life_s)
            scores = {k: w for k, v in self.scores.items() if (w := v * factor) >= MIN_SCORE}
            weight, updated = 1.0, at_ms
        else:  # an older post: it counts less, the reference time stays
            scores = dict(self.scores)
            weight, updated = 2.0 ** (-(self.updated_ms - at_ms) / 1000 / half_life_s), self.updated_ms
        for name, p in probabilities.items():
            scores[name] = scores.get(name, 0.0) + p * weight
        return Profile(scores, updated, self.posts + 1)

    def top(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` highest scores, highest first (ties by name)."""
        return sorted(self.scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]

    def to_dict(self) -> dict[str, Any]:
        return {"scores": self.scores, "updated_ms": self.updated_ms, "posts": self.posts}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Profile:
        if not d:
            return cls.new()
        return cls(dict(d["scores"]), int(d["updated_ms"]), int(d["posts"]))


def profile_record(user_id: str, profile: Profile, top_k: int) -> dict[str, Any]:
    """The ``user.interests`` record of a profile: scores, their shares, and the top interests.

    >>> profile_record("u1", Profile({"music": 3.0, "sports": 1.0}, 0, 4), 1)["top"]
    [{'interest': 'music', 'score': 3.0, 'share': 0.75}]
    """
    scores = profile.scores
    total = sum(scores.values()) or 1.0
    rounded = {k: round(scores[k], 5) for k in sorted(scores)}
    return {
        "user_id": user_id,
        "scores": rounded,
        "top": [{"interest": k, "score": rounded[k], "share": round(v / total, 4)} for k, v in profile.top(top_k)],
        "posts": profile.posts,
        "updated_at": profile.updated_ms,
        "schema_version": SCHEMA_VERSION,
    }


class ProfileBook:
    """Applies profile updates and erasures to a table (any mutable mapping: a Faust table in the
    worker, a dict in tests) and says what to publish on ``user.interests``.

    Each stored profile remembers the offset of the last update applied to it, so a redelivered
    update (after a crash, before the offset commit) is not counted twice.

    >>> book = ProfileBook({}, half_life_s=3600, top_k=2, is_erased=lambda user: False)
    >>> outcome, record = book.apply("u1", {"posts": [[0, {"music": 1.0}]]}, offset=5)
    >>> outcome, record["top"][0]["interest"]
    ('updated', 'music')
    >>> book.apply("u1", {"posts": [[0, {"music": 1.0}]]}, offset=5)
    ('skipped_redelivered', None)
    >>> book.apply("u1", {"erase": True}, offset=6), "u1" in book.table
    (('erased', None), False)
    """

    def __init__(
        self,
        table: MutableMapping[str, Any],
        half_life_s: float,
        top_k: int,
        is_erased: Callable[[str], bool],
        counts: Counter[str] | None = None,
    ):
        self.table = table
        self.half_life_s = half_life_s
        self.top_k = top_k
        self.is_erased = is_erased
        self.counts: Counter[str] = Counter() if counts is None else counts  # "profiles_<outcome>"

    @classmethod
    def from_settings(
        cls,
        table: MutableMapping[str, Any],
        settings: Settings,
        is_erased: Callable[[str], bool],
        counts: Counter[str] | None = None,
    ) -> ProfileBook:
        """A book with the half-life and top-k ``STREAM_PROFILE_*`` ask for, over ``table``."""
        return cls(table, settings.profile_half_life, settings.profile_top_k, is_erased=is_erased, counts=counts)

    def apply(self, user: str, update: Mapping[str, Any], offset: int) -> tuple[str, dict[str, Any] | None]:
        """Apply one update; returns the outcome (``updated``: publish the record; ``erased``: publish
        a tombstone; ``skipped_*``: nothing) and the profile record."""
        outcome, record = self._apply(user, update, offset)
        self.counts["profiles_" + outcome] += 1
        return outcome, record

    def apply_batch(self, users: Mapping[str, Mapping[str, Any]], offset: int) -> list[tuple[bytes, bytes | None]]:
        """Apply one ``user.updates`` record (user → update); returns the ``user.interests`` records
        to publish, keyed by user: a profile, or ``None`` (a tombstone) for an erased user.

        >>> book = ProfileBook({}, 3600, 1, is_erased=lambda user: False)
        >>> book.apply_batch({"u1": {"posts": [[0, {"music": 1.0}]]}, "u2": {"erase": True}}, offset=0)[1]
        (b'u2', None)
        >>> dict(book.counts)
        {'profiles_updated': 1, 'profiles_erased': 1}
        """
        out: list[tuple[bytes, bytes | None]] = []
        for user, update in users.items():
            outcome, record = self.apply(user, update, offset)
            if record is not None:
                out.append((user.encode(), orjson.dumps(record)))
            elif outcome == "erased":
                out.append((user.encode(), None))
        return out

    def apply_record(self, value: bytes, offset: int) -> list[tuple[bytes, bytes | None]]:
        """:meth:`apply_batch` of one ``user.updates`` record as it is on the topic."""
        return self.apply_batch(decode_profile_updates(value), offset)

    def _apply(self, user: str, update: Mapping[str, Any], offset: int) -> tuple[str, dict[str, Any] | None]:
        if update.get("erase"):
            self.table.pop(user, None)
            return "erased", None
        if self.is_erased(user):  # an update already in flight when the user was erased
            return "skipped_erased", None
        stored = self.table.get(user)
        if stored is not None and stored.get("offset", -1) >= offset:
            return "skipped_redelivered", None
        profile = Profile.from_dict(stored)
        for at_ms, probabilities in update["posts"]:
            profile = profile.add(probabilities, int(at_ms), self.half_life_s)
        self.table[user] = {**profile.to_dict(), "offset": offset}
        return "updated", profile_record(user, profile, self.top_k)
