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

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from models.labels import SENTIMENTS

if TYPE_CHECKING:
    from stream.settings import Settings

REQUIRED = ("id", "user_id", "text", "created_at")
ENGAGEMENT = ("likes", "shares", "replies", "followers")
LABEL = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
"""An interest label: a short token (it becomes a class of the model, a Prometheus label, a key)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one event may carry (``STREAM_MAX_*``): a hostile value is stopped here, before
    any model, aggregate, table or metric label sees it."""

    id_chars: int = 256
    name_chars: int = 128
    hashtags: int = 64
    event_ahead_ms: int = 86_400_000

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            settings.max_id_chars, settings.max_name_chars, settings.max_hashtags, int(settings.max_event_ahead * 1000)
        )


DEFAULT_LIMITS = Limits()


def strip_controls(s: str) -> str:
    """``s`` without control, format (bidi overrides, zero-width) and other unprintable characters,
    white space folded to single spaces.

    >>> strip_controls("ac" + chr(0x202E) + "me" + chr(0) + " " + chr(9) + " co")
    'acme co'
    """
    if s.isprintable():
        return s
    return " ".join("".join(ch if ch.isprintable() or ch.isspace() else "" for ch in s).split())


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


def _ident(obj: dict[str, Any], field: str, limit: int) -> str:
    v = obj[field]
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise _wrong(field, "a string or integer", v)
    s = strip_controls(str(v)).strip()
    if not s:
        raise _Invalid("missing_field", f"{field} is empty")
    if len(s) > limit:
        raise _Invalid("field_too_long", f"{field}: {len(s)} characters, at most {limit}")
    return s


def _opt_str(obj: dict[str, Any], field: str, default: str | None, limit: int = 64) -> str | None:
    v = obj.get(field)
    if v is None:
        return default
    if not isinstance(v, str):
        raise _wrong(field, "a string", v)
    v = strip_controls(v).strip()
    if len(v) > limit:
        raise _Invalid("field_too_long", f"{field}: {len(v)} characters, at most {limit}")
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
    """Epoch milliseconds from epoch ms, epoch seconds (< 1e11) or an ISO-8601 string; one rule for
    every form: from 1970 on.

    >>> parse_timestamp(1424777752000), parse_timestamp(1424777752), parse_timestamp("2015-02-24")
    (1424777752000, 1424777752000, 1424736000000)
    >>> parse_post(b'{"id": 1, "user_id": "u", "text": "hi", "created_at": "1969-12-31T23:59:59Z"}')
    Rejected(reason='bad_timestamp', detail='created_at: -1000 is before 1970')
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
        ms = int(dt.timestamp() * 1000)
        if ms < 0:
            raise _Invalid("bad_timestamp", f"created_at: {ms} is before 1970")
        return ms
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
        raise _wrong("created_at", "epoch ms or ISO-8601", v)
    if not 0 <= v < 1e14:
        raise _Invalid("bad_timestamp", f"created_at: {v} is out of range")
    return int(v * 1000) if v < 1e11 else int(v)


def _label(obj: dict[str, Any], field: str) -> str | None:
    v = obj.get(field)
    if v is None:
        return None
    if not isinstance(v, str):
        raise _wrong(field, "a string", v)
    v = strip_controls(v).strip().lower()
    if not v:
        return None
    if not LABEL.fullmatch(v):
        raise _Invalid("bad_label", f"{field}: {v[:20]!r} is not 1-64 characters of a-z, 0-9, _ and -")
    return v


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


def _hashtags(obj: dict[str, Any], limits: Limits) -> tuple[str, ...]:
    tags = obj.get("hashtags")
    if tags is None:
        return ()
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise _wrong("hashtags", "a list of strings", tags)
    if len(tags) > limits.hashtags:
        raise _Invalid("field_too_long", f"hashtags: {len(tags)} items, at most {limits.hashtags}")
    out = []
    for tag in tags:
        tag = strip_controls(tag).strip()
        if len(tag) > limits.name_chars:
            raise _Invalid("field_too_long", f"hashtags: a tag of {len(tag)} characters, at most {limits.name_chars}")
        if tag:
            out.append(tag)
    return tuple(out)


def _post(obj: dict[str, Any], limits: Limits, now_ms: int | None) -> Post:
    for f in REQUIRED:
        if f not in obj or obj[f] is None:
            raise _Invalid("missing_field", f)
    text = obj["text"]
    if not isinstance(text, str):
        raise _wrong("text", "a string", text)
    created_at = parse_timestamp(obj["created_at"])
    if now_ms is not None and created_at > now_ms + limits.event_ahead_ms:
        raise _Invalid(
            "bad_timestamp",
            f"created_at: {created_at} is more than {limits.event_ahead_ms // 1000} s ahead of the worker's clock",
        )
    return Post(
        id=_ident(obj, "id", limits.id_chars),
        user_id=_ident(obj, "user_id", limits.id_chars),
        text=text,
        created_at=created_at,
        platform=(_opt_str(obj, "platform", "unknown") or "unknown").lower(),
        lang=(_opt_str(obj, "lang", "und") or "und").lower(),
        hashtags=_hashtags(obj, limits),
        likes=_number(obj, "likes"),
        shares=_number(obj, "shares"),
        replies=_number(obj, "replies"),
        followers=_number(obj, "followers"),
        campaign=_opt_str(obj, "campaign", None, limits.name_chars),
        interest=_label(obj, "interest"),
        sentiment=_sentiment(obj),
    )


def parse_post(raw: bytes, limits: Limits = DEFAULT_LIMITS, now_ms: int | None = None) -> Post | Rejected:
    """Decode and validate one post event; never raises. With ``now_ms`` (the worker's clock), a
    ``created_at`` more than ``limits.event_ahead_ms`` ahead of it is rejected.

    >>> parse_post(b'{"id": 1, "user_id": "u", "text": "hi", "created_at": 9e12}', now_ms=1_700_000_000_000).reason
    'bad_timestamp'
    >>> parse_post(b'{"id": 1, "user_id": "u", "text": "hi", "created_at": 1, "interest": "Pop Music"}').reason
    'bad_label'
    """
    try:
        return _post(_decode(raw), limits, now_ms)
    except _Invalid as exc:
        return exc.rejected
    except RecursionError:
        return Rejected("malformed_json", "nested too deeply")


def post_from_dict(obj: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> Post | Rejected:
    """Validate an already decoded event (the offline tools use this)."""
    try:
        return _post(obj, limits, None)
    except _Invalid as exc:
        return exc.rejected


def parse_feedback(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> Feedback | Rejected:
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
        fb = Feedback(_ident(obj, "post_id", limits.id_chars), _label(obj, "interest"), _sentiment(obj))
        if fb.interest is None and fb.sentiment is None:
            raise _Invalid("missing_field", "interest or sentiment")
        return fb
    except _Invalid as exc:
        return exc.rejected
