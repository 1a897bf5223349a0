"""The record formats of the two internal topics, in one place: written by the posts agent
(:meth:`~stream.pipeline.processor.Processor.drain_aggregates`), read by the audience and profiles
agents.

``audience.partials``, one record per partition that owns some of the batch's segments::

    {"segments": {"<segment>": {"<bucket start ms>": <tally>}}, "max_ts": <newest event time, ms>}

``user.updates``, one record per partition that owns some of the batch's users::

    {"users": {"<user>": {"posts": [[<event time ms>, {"<interest>": <probability>}]]} | {"erase": true}}}

Segments and users are routed to partitions by :func:`route`, so every table row is written from
its own partition and the aggregating agents handle one record per partition and interval.

>>> spec = WindowSpec()
>>> [(p, v)] = encode_partials([(61_000, 0.5, "positive", "sports", None, ())], spec, partitions=1)
>>> segments, max_ts = decode_partials(v)
>>> p, sorted(segments), max_ts
(0, ['all', 'interest:sports'], 61000)
>>> segments["all"]
{60000: Tally({'n': 1, 's': 0.5, 'pos': 1, 'neu': 0, 'neg': 0, 'interests': {'sports': 1}})}
>>> segments["interest:sports"] == segments["all"]
True
>>> [(p, decode_profile_updates(v)) for p, v in encode_profile_updates({"u1": [(0, {"music": 1.0})]}, 1)]
[(0, {'u1': {'posts': [[0, {'music': 1.0}]]}})]
>>> [decode_profile_updates(v) for _, v in encode_erasures(["u1"], 1)]
[{'u1': {'erase': True}}]
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from stream.audience.windows import PostTuple, Tally, WindowSpec, partials

ProfilePosts = Sequence[tuple[int, Mapping[str, float]]]  # (event time ms, interest probabilities)


def route(key: str, partitions: int) -> int:
    """The partition of the internal topics that owns a segment or a user (stable across processes).

    >>> route("interest:travel", 4) == route("interest:travel", 4), 0 <= route("u1", 4) < 4
    (True, True)
    """
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % partitions


MAX_RECORD_BYTES = 512 * 1024  # a record is split below this: well under Kafka's default limit (1 MB)


def by_partition(
    items: Mapping[str, Any], field: str, partitions: int, max_bytes: int = MAX_RECORD_BYTES, **extra: Any
) -> list[tuple[int, bytes]]:
    """``items`` (key → record) grouped into JSON records ``{field: {key: record}, **extra}``, one per
    partition that owns some of them (in partition order), split in halves until each is at most
    ``max_bytes`` long (an item that alone is longer stays one record).

    >>> items = {f"user{i}": {"x": "y" * 100} for i in range(100)}
    >>> records = by_partition(items, "users", 1, max_bytes=2_000)
    >>> len(records) > 1, all(len(v) <= 2_000 for _, v in records)
    (True, True)
    >>> sorted(k for _, v in records for k in orjson.loads(v)["users"]) == sorted(items)
    True
    """
    grouped: dict[int, dict[str, Any]] = {}
    for key, item in items.items():
        grouped.setdefault(route(key, partitions), {})[key] = item
    out: list[tuple[int, bytes]] = []
    for partition, group in sorted(grouped.items()):
        _emit(out, partition, group, field, extra, max_bytes)
    return out


def _emit(
    out: list[tuple[int, bytes]],
    partition: int,
    group: dict[str, Any],
    field: str,
    extra: Mapping[str, Any],
    max_bytes: int,
) -> None:
    """Append ``group`` to ``out`` as one record of ``partition``, split in halves while it is longer than
    ``max_bytes``. (A function of the module, not a closure: a recursive closure refers to itself through
    its cell, and that cycle would keep every record made alive until the garbage collector's next pass.)"""
    value = orjson.dumps({field: group, **extra})
    if len(value) <= max_bytes or len(group) == 1:
        out.append((partition, value))
        return
    keys = list(group)
    half = len(keys) // 2
    _emit(out, partition, {k: group[k] for k in keys[:half]}, field, extra, max_bytes)
    _emit(out, partition, {k: group[k] for k in keys[half:]}, field, extra, max_bytes)


def encode_buckets(buckets: Mapping[int, Tally]) -> dict[str, Any]:
    """One segment's buckets in JSON form (``{"<ms>": tally}``).

    >>> decode_buckets(orjson.loads(orjson.dumps(encode_buckets({0: Tally(1, 1.0, 1)})))) == {0: Tally(1, 1.0, 1)}
    True
    """
    return {str(b): t.to_dict() for b, t in buckets.items()}


def decode_buckets(buckets: Mapping[str, Any]) -> dict[int, Tally]:
    """The inverse of :func:`encode_buckets`."""
    return {int(b): Tally.from_dict(t) for b, t in buckets.items()}


def encode_partials(
    posts: Sequence[PostTuple], spec: WindowSpec, partitions: int, max_bytes: int = MAX_RECORD_BYTES
) -> list[tuple[int, bytes]]:
    """The ``audience.partials`` records of some posts, as ``(partition, value)``; none for no posts."""
    if not posts:
        return []
    segments = {segment: encode_buckets(buckets) for segment, buckets in partials(posts, spec).items()}
    return by_partition(segments, "segments", partitions, max_bytes, max_ts=max(p[0] for p in posts))


def decode_partials(value: bytes) -> tuple[dict[str, dict[int, Tally]], int]:
    """``(segment → buckets, newest event time)`` of one ``audience.partials`` record."""
    record = orjson.loads(value)
    return {str(s): decode_buckets(b) for s, b in record["segments"].items()}, int(record["max_ts"])


def encode_profile_updates(
    posts: Mapping[str, ProfilePosts], partitions: int, max_bytes: int = MAX_RECORD_BYTES
) -> list[tuple[int, bytes]]:
    """The ``user.updates`` records of users' new posts (user → ``[(event time ms, probabilities)]``)."""
    return by_partition({user: {"posts": p} for user, p in posts.items()}, "users", partitions, max_bytes)


def encode_erasures(users: Iterable[str], partitions: int) -> list[tuple[int, bytes]]:
    """The ``user.updates`` records that delete these users' profiles."""
    return by_partition({user: {"erase": True} for user in users}, "users", partitions)


def decode_profile_updates(value: bytes) -> dict[str, dict[str, Any]]:
    """User → update (``{"posts": [...]}`` or ``{"erase": True}``) of one ``user.updates`` record."""
    return dict(orjson.loads(value)["users"])
