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


class _Compressor:
    """A file for :func:`pickle.dump` that keeps only the compressed bytes of what is written: the
    pickled state never exists whole in memory (a worker's state pickles to ~60 MB, mostly weights
    that compress to a few MB; pickling it to bytes first doubled the worker's RSS for a moment)."""

    def __init__(self, level: int = 3):
        self._z = zlib.compressobj(level)
        self._parts: list[bytes] = []

    def write(self, data: Any) -> int:
        view = memoryview(data)  # pickle hands large arrays over as buffers, without a copy
        self._parts.append(self._z.compress(view))
        return view.nbytes

    def getvalue(self) -> bytes:
        self._parts.append(self._z.flush())
        return b"".join(self._parts)


class _Decompressor:
    """The file :func:`pickle.load` reads from: the payload decompressed as it is read, so that the
    pickled state never exists whole in memory next to the state built from it."""

    CHUNK = 1 << 20

    def __init__(self, payload: bytes):
        self._z = zlib.decompressobj()
        self._payload = memoryview(payload)
        self._at = 0  # the next compressed byte to feed
        self._buffer = bytearray()  # decompressed, not read yet from ``_pos`` on
        self._pos = 0

    def _available(self, n: int) -> int:
        """Decompress until ``n`` bytes are buffered (or the payload ends); how many are."""
        while len(self._buffer) - self._pos < n:
            data: bytes | memoryview = self._z.unconsumed_tail
            if not data:
                if self._at >= len(self._payload):
                    break
                data, self._at = self._payload[self._at : self._at + self.CHUNK], self._at + self.CHUNK
            if self._pos:
                del self._buffer[: self._pos]  # drop what was read (once per chunk, not per read)
                self._pos = 0
            self._buffer += self._z.decompress(data, self.CHUNK)
        return len(self._buffer) - self._pos

    def read(self, n: int = -1) -> bytes:
        available = self._available(n if n >= 0 else 1 << 62)
        n = available if n < 0 else min(n, available)
        out = bytes(self._buffer[self._pos : self._pos + n])
        self._pos += n
        return out

    def readinto(self, target: Any) -> int:
        view = memoryview(target).cast("B")
        n = min(view.nbytes, self._available(view.nbytes))
        view[:n] = memoryview(self._buffer)[self._pos : self._pos + n]
        self._pos += n
        return n

    def readline(self) -> bytes:
        while True:
            end = self._buffer.find(b"\n", self._pos)
            if end >= 0:
                return self.read(end + 1 - self._pos)
            before = len(self._buffer) - self._pos
            if self._available(before + 1) == before:  # the end of the payload
                return self.read()


def dump(state: Any, meta: dict[str, Any], key: bytes) -> bytes:
    """Serialise, compress and sign ``state`` with its metadata (``state`` must not change meanwhile:
    a worker takes a checkpoint in another thread while its learner waits)."""
    out = _Compressor()
    pickle.dump(state, out, protocol=5)
    return seal(out.getvalue(), meta, key)


def seal(payload: bytes, meta: dict[str, Any], key: bytes) -> bytes:
    """A checkpoint record of a compressed pickle ``payload``: ``meta`` and the signature prepended."""
    header = orjson.dumps(meta, option=orjson.OPT_SORT_KEYS)
    signed = orjson.dumps({**meta, "mac": _mac(key, header, payload)}, option=orjson.OPT_SORT_KEYS)
    return MAGIC + struct.pack(">I", len(signed)) + signed + payload


def read_meta(blob: bytes) -> tuple[dict[str, Any], bytes]:
    """The header and payload of a checkpoint, unverified (for logs only)."""
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 4:
        raise CheckpointError("not a checkpoint record")
    (n,) = struct.unpack(">I", blob[len(MAGIC) : len(MAGIC) + 4])
    start = len(MAGIC) + 4
    try:
        meta = orjson.loads(blob[start : start + n])
    except orjson.JSONDecodeError:
        raise CheckpointError("checkpoint header is not JSON") from None
    if not isinstance(meta, dict):
        raise CheckpointError("checkpoint header is not an object")
    return meta, blob[start + n :]


def load(blob: bytes, key: bytes) -> tuple[dict[str, Any], Any]:
    """Verify, then deserialise a checkpoint: ``(meta, state)``; :class:`CheckpointError` if the
    record is malformed or its signature does not match."""
    meta, payload = read_meta(blob)
    mac = meta.pop("mac", None)
    header = orjson.dumps(meta, option=orjson.OPT_SORT_KEYS)
    if not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(key, header, payload)):
        raise CheckpointError("checkpoint signature does not match (tampered, or another key)")
    try:
        state = pickle.load(_Decompressor(payload))  # verified: the payload is ours
    except Exception as exc:  # signed by us yet unreadable: another version of the code
        raise CheckpointError(f"checkpoint payload cannot be read: {exc}") from None
    return meta, state
