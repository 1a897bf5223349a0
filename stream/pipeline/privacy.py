"""Pseudonymous user ids and erasure requests.

With ``STREAM_PSEUDONYM_KEY`` set, every output carries a keyed hash of the user id instead of the
id itself: stable (profiles still join across posts), not reversible without the key, and different
under another key. Erasure requests name the real user id; the worker turns it into the same
pseudonym, deletes that profile and ignores the user's later posts. What the worker remembers of an
erased user is a keyed hash, never the id.

>>> pseudonym("u42", None)
'u42'
>>> pseudonym("u42", "k1") == pseudonym("u42", "k1") != pseudonym("u42", "k2")
True
>>> len(pseudonym("u42", "k1")), pseudonym("u42", "k1").startswith("p-")
(26, True)
>>> parse_erasure(b'{"user_id": "u42"}')
'u42'
>>> parse_erasure(b'{"user": 1}')
Rejected(reason='missing_field', detail='user_id')
"""

from __future__ import annotations

import hashlib
import hmac
import re

import orjson

from stream.pipeline.events import DEFAULT_LIMITS, Limits, Rejected, strip_controls


def pseudonym(user_id: str, key: str | None) -> str:
    """The user id as outputs show it: itself without a key, else ``p-`` + 24 hex of HMAC-SHA256."""
    if key is None:
        return user_id
    return "p-" + hmac.new(key.encode(), user_id.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:24]


def erased_token(user: str) -> str:
    """What the worker keeps of an erased user: a hash of the user's *pseudonym* (never the id), so
    that both the predictors (which see the id) and the profile table (keyed by the pseudonym) can
    check it.

    >>> erased_token(pseudonym("u42", None)) != "u42"
    True
    """
    return hashlib.sha256(b"erased:" + user.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def parse_erasure(raw: bytes | None, limits: Limits = DEFAULT_LIMITS) -> str | Rejected:
    """The user id of an erasure request ``{"user_id": ...}``, or why it is unusable.

    >>> parse_erasure(b'{"user_id": "alice"}'), parse_erasure(b'{"user_id": "' + b"a" * 300 + b'"}').reason
    ('alice', 'field_too_long')
    """
    if raw is None:
        return Rejected("missing_value", "null record")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejected("malformed_json", str(exc)[:200])
    if not isinstance(obj, dict):
        return Rejected("not_an_object", type(obj).__name__)
    uid = obj.get("user_id")
    if uid is None:
        return Rejected("missing_field", "user_id")
    if isinstance(uid, bool) or not isinstance(uid, (str, int)) or not str(uid).strip():
        return Rejected("bad_type", "user_id must be a non-empty string")
    user = strip_controls(str(uid)).strip()
    if len(user) > limits.id_chars:
        return Rejected("field_too_long", f"user_id: {len(user)} characters, at most {limits.id_chars}")
    return user


_USER_ID = re.compile(rb'("user_id"\s*:\s*)("(?:[^"\\]|\\.)*"?|-?[0-9]+)')


def pseudonymise_user_ids(raw: bytes, key: str) -> bytes:
    """``raw`` with every ``"user_id"`` value replaced by its pseudonym: through JSON when ``raw`` is a
    JSON object, else wherever the bytes still show one (a truncated or malformed record).

    >>> pseudonymise_user_ids(b'{"user_id": "alice", "text": "hi"}', "k") == orjson.dumps(
    ...     {"user_id": pseudonym("alice", "k"), "text": "hi"})
    True
    >>> pseudonymise_user_ids(b'{"user_id": "alice", "text": "oo', "k").startswith(b'{"user_id": "p-')
    True
    """
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        obj = None
    if isinstance(obj, dict):
        user = obj.get("user_id")
        if isinstance(user, (str, int)) and not isinstance(user, bool):
            obj["user_id"] = pseudonym(strip_controls(str(user)).strip(), key)
            return orjson.dumps(obj)
        return raw

    def replace(m: re.Match[bytes]) -> bytes:
        value = m.group(2).strip(b'"').decode("utf-8", "replace")
        return m.group(1) + b'"' + pseudonym(value, key).encode() + b'"'

    return _USER_ID.sub(replace, raw)
