"""Model checkpoints: versioned, with metadata, signed with an HMAC, and data only.

A checkpoint record is ``MAGIC | 4-byte header length | JSON header | zlib(payload)``. The header holds
the metadata and ``mac``, the HMAC-SHA256 (key from the settings) of everything else: the header
without ``mac`` and the payload. The payload is :mod:`models.codec`'s encoding of the state (a JSON
document and the raw bytes of its arrays): reading it builds plain data and instances of the classes
the caller allows, and runs no code named by the record, signed or not. :func:`load` checks the MAC
first all the same, and refuses a record of the earlier, pickled format without reading it.

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
import struct
import zlib
from collections.abc import Mapping
from typing import Any

import orjson

from models.codec import CodecError, decode, encode

MAGIC = b"ISCK2"
PICKLED_MAGIC = b"ISCK1"  # the earlier format: a pickle, never read


class CheckpointError(ValueError):
    """A checkpoint that must not be used: malformed, tampered or signed with another key."""


def _mac(key: bytes, header: bytes, payload: bytes) -> str:
    return hmac.new(key, header + b"\0" + payload, hashlib.sha256).hexdigest()


class _Compressor:
    """Keeps only the compressed bytes of what is written: the encoded state never exists whole in
    memory (a worker's state is ~60-75 MB, mostly weights handed over as buffers without a copy, that
    compress to a few MB)."""

    def __init__(self, level: int = 3):
        self._z = zlib.compressobj(level)
        self._parts: list[bytes] = []

    def write(self, data: Any) -> int:
        view = memoryview(data)  # large arrays come as buffers, without a copy
        self._parts.append(self._z.compress(view))
        return view.nbytes

    def getvalue(self) -> bytes:
        self._parts.append(self._z.flush())
        return b"".join(self._parts)


class _Decompressor:
    """The payload decompressed as it is read, straight into the buffers of the arrays it holds."""

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


def dump(state: Any, meta: dict[str, Any], key: bytes, allowed: Mapping[str, type] | None = None) -> bytes:
    """Encode, compress and sign ``state`` with its metadata (``state`` must not change meanwhile: a
    worker takes a checkpoint in another thread while its learner waits). ``allowed`` names the classes
    the state may hold (see :mod:`models.codec`); :class:`CheckpointError` for anything else."""
    try:
        document, buffers = encode(state, allowed)
    except CodecError as exc:
        raise CheckpointError(f"the state cannot be checkpointed: {exc}") from None
    out = _Compressor()
    doc = orjson.dumps(document)
    out.write(struct.pack(">I", len(doc)))
    out.write(doc)
    out.write(struct.pack(">I", len(buffers)))
    for data in buffers:
        view = memoryview(data)
        out.write(struct.pack(">Q", view.nbytes))
        out.write(view)
    return seal(out.getvalue(), meta, key)


def seal(payload: bytes, meta: dict[str, Any], key: bytes) -> bytes:
    """A checkpoint record of a compressed ``payload``: ``meta`` and the signature prepended."""
    header = orjson.dumps(meta, option=orjson.OPT_SORT_KEYS)
    signed = orjson.dumps({**meta, "mac": _mac(key, header, payload)}, option=orjson.OPT_SORT_KEYS)
    return MAGIC + struct.pack(">I", len(signed)) + signed + payload


def read_meta(blob: bytes) -> tuple[dict[str, Any], bytes]:
    """The header and payload of a checkpoint, unverified (for logs only)."""
    if blob.startswith(PICKLED_MAGIC):
        raise CheckpointError("checkpoint of the earlier, pickled format: not read (a checkpoint runs no code)")
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


def load(blob: bytes, key: bytes, allowed: Mapping[str, type] | None = None) -> tuple[dict[str, Any], Any]:
    """Verify, then decode a checkpoint: ``(meta, state)``; :class:`CheckpointError` if the record is
    malformed, of the earlier pickled format, signed with another key, or holds a class outside
    ``allowed``."""
    meta, payload = read_meta(blob)
    mac = meta.pop("mac", None)
    header = orjson.dumps(meta, option=orjson.OPT_SORT_KEYS)
    if not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(key, header, payload)):
        raise CheckpointError("checkpoint signature does not match (tampered, or another key)")
    try:
        reader = _Decompressor(payload)
        (n,) = struct.unpack(">I", _exactly(reader, 4))
        document = orjson.loads(_exactly(reader, n))
        (count,) = struct.unpack(">I", _exactly(reader, 4))
        buffers: list[bytearray] = []
        for _ in range(count):
            (size,) = struct.unpack(">Q", _exactly(reader, 8))
            data = bytearray(size)  # the arrays are built on these bytes: no second copy
            if reader.readinto(data) != size:
                raise CheckpointError("checkpoint payload ends early")
            buffers.append(data)
        state = decode(document, buffers, {} if allowed is None else allowed)
    except CheckpointError:
        raise
    except (CodecError, ValueError, struct.error, zlib.error, orjson.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint payload cannot be read: {exc}") from None
    return meta, state


def _exactly(reader: _Decompressor, n: int) -> bytes:
    data = reader.read(n)
    if len(data) != n:
        raise CheckpointError("checkpoint payload ends early")
    return data
