"""Event schemas and their validation: raw bytes in, a typed record or a precise rejection out.

Errors are a branch of the pipeline, not exceptions: :func:`parse_post` returns either a
:class:`Post` or a :class:`Rejected` that names the reason and the field.

>>> post = parse_post(b'{"id": 7, "user_id": "u1", "text": "hi", "created_at": "2015-02-24T11:35:52Z"}')
>>> post  # doctest: +ELLIPSIS
Post(id='7', user_id='u1', text='hi', created_at=1424777752000, platform='unknown', lang='und', ...)
>>> post.hashtags, post.likes, post.shares, post.replies, post.followers, post.campaign, post.interest, post.sentiment
((), 0.0, 0.0, 0.0, 0.0, None, None, None)
>>> parse_post(b'{"id": 7, "text": "hi"}')
Rejected(reason='missing_field', detail='user_id')
>>> parse_post(b'{"id": 7, "user_id": "u", "text": 5, "created_at": 1}').detail
'text: expected a string, got int'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from models.labels import SENTIMENTS

REQUIRED = ("id", "user_id", "text", "created_at")
ENGAGEMENT = ("likes", "shares", "replies", "followers")


@dataclass(frozen=True, slots=True)
class Post:
    """A validated post event, types coerced and optional fields defaulted."""

    id: str
    user_id: str
    text: str
    created_at: int  # epoch milliseconds
    platform: str = "unknown"
    lang: str = "und"
    hashtags: tuple[str, ...] = ()
    likes: float = 0.0
    shares: float = 0.0
    replies: float = 0.0
    followers: float = 0.0
    campaign: str | None = None
    interest: str | None = None
    sentiment: str | None = None


@dataclass(frozen=True, slots=True)
class Feedback:
    """A delayed label for a post seen earlier."""

    post_id: str
    interest: str | None = None
    sentiment: str | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why an event was refused; ``reason`` is a short stable code used in metrics."""

    reason: str
    detail: str = ""


class _Invalid(Exception):
    def __init__(self, reason: str, detail: str):
        self.rejected = Rejected(reason, detail)


def _type_name(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _wrong(field: str, expected: str, v: Any) -> _Invalid:
    return _Invalid("wrong_type", f"{field}: expected {expected}, got {_type_name(v)}")


def _ident(obj: dict[str, Any], field: str) -> str:
    v = obj[field]
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise _wrong(field, "a string or integer", v)
    s = str(v).strip()
    if not s:
        raise _Invalid("missing_field", f"{field} is empty")
    return s


def _opt_str(obj: dict[str, Any], field: str, default: str | None) -> str | None:
    v = obj.get(field)
    if v is None:
        return default
    if not isinstance(v, str):
        raise _wrong(field, "a string", v)
    v = v.strip()
    return v or default


def _number(obj: dict[str, Any], field: str) -> float:
    v = obj.get(field)
    if v is None:
        return 0.0
    if isinstance(v, str):
        try:
            v = float(v.strip())
        except ValueError:
            raise _wrong(field, "a number", v) from None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _wrong(field, "a number", v)
    if v != v or v in (float("inf"), float("-inf")):
        raise _Invalid("wrong_type", f"{field}: not a finite number")
    return float(v)


def parse_timestamp(v: Any) -> int:
    """Epoch milliseconds from epoch ms, epoch seconds (< 1e11) or an ISO-8601 string.

    >>> parse_timestamp(1424777752000), parse_timestamp(1424777752), parse_timestamp("2015-02-24")
    (1424777752000, 1424777752000, 1424736000000)
    """
    if isinstance(v, str):
        s = v.strip()
        try:
            return parse_timestamp(float(s))
        except ValueError:
            pass
        try:
            dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            raise _Invalid("bad_timestamp", f"created_at: {v[:40]!r} is not ISO-8601 or epoch") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return int(dt.timestamp() * 1000)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
        raise _wrong("created_at", "epoch ms or ISO-8601", v)
    if not 0 <= v < 1e14:
        raise _Invalid("bad_timestamp", f"created_at: {v} is out of range")
    return int(v * 1000) if v < 1e11 else int(v)


def _label(obj: dict[str, Any], field: str) -> str | None:
    v = _opt_str(obj, field, None)
    return v.lower() if v is not None else None


def _sentiment(obj: dict[str, Any]) -> str | None:
    v = _label(obj, "sentiment")
    if v is not None and v not in SENTIMENTS:
        raise _Invalid("bad_label", f"sentiment: {v[:20]!r} is not one of {', '.join(SENTIMENTS)}")
    return v


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Invalid("malformed_json", str(exc)[:200]) from None
    if not isinstance(obj, dict):
        raise _Invalid("not_an_object", f"top level is {_type_name(obj)}")
    return obj


def _post(obj: dict[str, Any]) -> Post:
    for f in REQUIRED:
        if f not in obj or obj[f] is None:
            raise _Invalid("missing_field", f)
    text = obj["text"]
    if not isinstance(text, str):
        raise _wrong("text", "a string", text)
    tags = obj.get("hashtags")
    if tags is None:
        tags = ()
    elif not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise _wrong("hashtags", "a list of strings", tags)
    return Post(
        id=_ident(obj, "id"),
        user_id=_ident(obj, "user_id"),
        text=text,
        created_at=parse_timestamp(obj["created_at"]),
        platform=(_opt_str(obj, "platform", "unknown") or "unknown").lower(),
        lang=(_opt_str(obj, "lang", "und") or "und").lower(),
        hashtags=tuple(tags),
        likes=_number(obj, "likes"),
        shares=_number(obj, "shares"),
        replies=_number(obj, "replies"),
        followers=_number(obj, "followers"),
        campaign=_opt_str(obj, "campaign", None),
        interest=_label(obj, "interest"),
        sentiment=_sentiment(obj),
    )


def parse_post(raw: bytes) -> Post | Rejected:
    """Decode and validate one post event; never raises."""
    try:
        return _post(_decode(raw))
    except _Invalid as exc:
        return exc.rejected
    except RecursionError:
        return Rejected("malformed_json", "nested too deeply")


def post_from_dict(obj: dict[str, Any]) -> Post | Rejected:
    """Validate an already decoded event (the offline tools use this)."""
    try:
        return _post(obj)
    except _Invalid as exc:
        return exc.rejected


def parse_feedback(raw: bytes) -> Feedback | Rejected:
    """Decode and validate one delayed label; never raises.

    >>> parse_feedback(b'{"post_id": "9", "interest": "Sports"}')
    Feedback(post_id='9', interest='sports', sentiment=None)
    >>> parse_feedback(b'{"post_id": "9"}')
    Rejected(reason='missing_field', detail='interest or sentiment')
    """
    try:
        obj = _decode(raw)
        if obj.get("post_id") is None:
            raise _Invalid("missing_field", "post_id")
        fb = Feedback(_ident(obj, "post_id"), _label(obj, "interest"), _sentiment(obj))
        if fb.interest is None and fb.sentiment is None:
            raise _Invalid("missing_field", "interest or sentiment")
        return fb
    except _Invalid as exc:
        return exc.rejected
