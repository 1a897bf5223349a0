"""Model checkpoints: versioned, with metadata, signed with an HMAC, never unpickled unverified.

A checkpoint record is ``MAGIC | 4-byte header length | JSON header | zlib(pickle(state))``. The
header holds the metadata and ``mac``, the HMAC-SHA256 (key from the settings) of everything else:
the header without ``mac`` and the payload. :func:`load` checks the MAC *before* it unpickles.

>>> blob = dump({"weights": [1, 2]}, {"version": 7}, key=b"k")
>>> load(blob, key=b"k")
({'version': 7}, {'weights': [1, 2]})
>>> load(blob, key=b"other")
Traceback (most recent call last):
...
models.persistence.CheckpointError: checkpoint signature does not match (tampered, or another key)
"""
from __future__ import annotations

import hashlib
import hmac
import pickle
import struct
import zlib
from typing import Any

import orjson

MAGIC = b"ISCK1"


class CheckpointError(ValueError):
    """A checkpoint that must not be used: malformed, tampered or signed with another key."""


def _mac(key: bytes, header: bytes, payload: bytes) -> str:
    return hmac.new(key, header + b"\0" + payload, hashlib.sha256).hexdigest()


def dump(state: Any, meta: dict[str, Any], key: bytes) -> bytes:
    """Serialise and sign ``state`` with its metadata."""
    return seal(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL), meta, key)


def seal(pickled: bytes, meta: dict[str, Any], key: bytes) -> bytes:
    """Compress and sign an already pickled state: the part of :func:`dump` that may run in another
    thread (pickling must happen where the state is not changing)."""
    payload = zlib.compress(pickled, 3)
    header = orjson.dumps(meta, option=orjson.OPT_SORT_KEYS)
    signed = orjson.dumps({**meta, "mac": _mac(key, header, payload)}, option=orjson.OPT_SORT_KEYS)
    return MAGIC + struct.pack(">I", len(signed)) + signed + payload


def read_meta(blob: bytes) -> tuple[dict[str, Any], bytes]:
    """The header and payload of a checkpoint, unverified (for logs only)."""
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 4:
        raise CheckpointError("not a checkpoint record")
    (n,) = struct.unpack(">I", blob[len(MAGIC):len(MAGIC) + 4])
    start = len(MAGIC) + 4
    try:
        meta = orjson.loads(blob[start:start + n])
    except orjson.JSONDecodeError:
        raise CheckpointError("checkpoint header is not JSON") from None
    if not isinstance(meta, dict):
        raise CheckpointError("checkpoint header is not an object")
    return meta, blob[start + n:]


def load(blob: bytes, key: bytes) -> tuple[dict[str, Any], Any]:
    """Verify, then deserialise a checkpoint: ``(meta, state)``; :class:`CheckpointError` if the
    record is malformed or its signature does not match."""
    meta, payload = read_meta(blob)
    mac = meta.pop("mac", None)
    header = orjson.dumps(meta, option=orjson.OPT_SORT_KEYS)
    if not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(key, header, payload)):
        raise CheckpointError("checkpoint signature does not match (tampered, or another key)")
    try:
        state = pickle.loads(zlib.decompress(payload))
    except Exception as exc:  # signed by us yet unreadable: another version of the code
        raise CheckpointError(f"checkpoint payload cannot be read: {exc}") from None
    return meta, state
