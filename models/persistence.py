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

On Kafka a record is one :func:`split` part of at most ``max_bytes`` (Kafka's default limit is
1 MB): a :class:`Reassembler` joins the parts, and :func:`load` verifies the whole.

>>> parts = split(blob, 150, {"kind": "snapshot"})
>>> len(parts) > 1, all(len(p) <= 150 for p in parts), part_header(parts[0])["kind"]
(True, True, 'snapshot')
>>> r = Reassembler()
>>> [r.add(p) is None for p in parts[:-1]] == [True] * (len(parts) - 1), r.add(parts[-1]) == blob
(True, True)
"""

from __future__ import annotations

import hashlib
import hmac
import mmap
import os
import struct
import zlib
from collections.abc import Callable, Collection, Mapping
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
        """Fill ``target`` (a chunk at a time: never more than about two chunks buffered, however
        large the array); how many bytes were read."""
        view = memoryview(target).cast("B")
        return self._take(view.nbytes, view)

    def skip(self, n: int) -> int:
        """Read ``n`` bytes and keep none of them (a chunk at a time); how many there were."""
        return self._take(n, None)

    def _take(self, n: int, into: memoryview | None) -> int:
        done = 0
        while done < n:
            step = min(n - done, self._available(min(self.CHUNK, n - done)))
            if step == 0:
                break
            if into is not None:
                into[done : done + step] = memoryview(self._buffer)[self._pos : self._pos + step]
            self._pos += step
            done += step
        return done


def dump(
    state: Any, meta: dict[str, Any], key: bytes, allowed: Mapping[str, type] | None = None, level: int = 3
) -> bytes:
    """Encode, compress (zlib ``level``) and sign ``state`` with its metadata (``state`` must not change
    meanwhile: a worker takes a checkpoint in another thread while its learner waits). ``allowed`` names
    the classes the state may hold (see :mod:`models.codec`); :class:`CheckpointError` for anything else."""
    try:
        document, buffers = encode(state, allowed)
    except CodecError as exc:
        raise CheckpointError(f"the state cannot be checkpointed: {exc}") from None
    out = _Compressor(level)
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


LAZY_BYTES = 1 << 16  # unread buffers this large decode on anonymous pages (one mapping each)


def load(
    blob: bytes,
    key: bytes,
    allowed: Mapping[str, type] | None = None,
    unread: Callable[[Any], Collection[int]] | None = None,
) -> tuple[dict[str, Any], Any]:
    """Verify, then decode a checkpoint: ``(meta, state)``; :class:`CheckpointError` if the record is
    malformed, of the earlier pickled format, signed with another key, or holds a class outside
    ``allowed``.

    ``unread``, given the document (see :mod:`models.codec`), names buffers the caller will not
    read (a replica's: :func:`stream.pipeline.modelview.unread_by_replica`): they are decompressed
    and thrown away a chunk at a time, and their arrays decode as zeros on fresh anonymous memory,
    which costs no memory until written."""
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
        skipped = set(unread(document)) if unread is not None else set()
        buffers: list[bytearray | mmap.mmap] = []
        for i in range(count):
            (size,) = struct.unpack(">Q", _exactly(reader, 8))
            if i in skipped:
                # zeros: large ones on fresh pages of their own, which take memory on their first write only
                data: bytearray | mmap.mmap = mmap.mmap(-1, size) if size >= LAZY_BYTES else bytearray(size)
                got = reader.skip(size)
            else:
                data = bytearray(size)  # the arrays are built on these bytes: no second copy
                got = reader.readinto(data)
            if got != size:
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


PART_MAGIC = b"ISCP1"


def split(blob: bytes, max_bytes: int, hint: dict[str, Any] | None = None) -> list[bytes]:
    """``blob`` as records of at most ``max_bytes`` each: ``PART_MAGIC | 4-byte header length | JSON
    header | bytes``. The header names the whole (a random ``id``), the part's number, the number of
    parts and the whole's size, and carries ``hint`` (unverified: what a reader may skip by; the
    signature of the whole is what is trusted)."""
    whole = os.urandom(6).hex()
    size = len(blob)  # no part number is longer than the size: this header is the longest
    longest = orjson.dumps({**(hint or {}), "id": whole, "part": size, "parts": size, "size": size})
    room = max_bytes - len(PART_MAGIC) - 4 - len(longest)
    if room <= 0:
        raise ValueError(f"a part of at most {max_bytes} bytes has no room for data")
    n = max(1, -(-len(blob) // room))
    out = []
    for i in range(n):
        header = orjson.dumps({**(hint or {}), "id": whole, "part": i, "parts": n, "size": len(blob)})
        out.append(PART_MAGIC + struct.pack(">I", len(header)) + header + blob[i * room : (i + 1) * room])
    return out


def part_header(record: bytes) -> dict[str, Any]:
    """The header of a :func:`split` part (unverified); :class:`CheckpointError` if it is not one."""
    if record.startswith((MAGIC, PICKLED_MAGIC)):
        raise CheckpointError("a checkpoint record of an earlier version, not split in parts")
    if not record.startswith(PART_MAGIC) or len(record) < len(PART_MAGIC) + 4:
        raise CheckpointError("not a model record")
    (n,) = struct.unpack(">I", record[len(PART_MAGIC) : len(PART_MAGIC) + 4])
    try:
        header = orjson.loads(record[len(PART_MAGIC) + 4 : len(PART_MAGIC) + 4 + n])
    except orjson.JSONDecodeError:
        raise CheckpointError("model record header is not JSON") from None
    if not isinstance(header, dict) or not all(isinstance(header.get(k), int) for k in ("part", "parts", "size")):
        raise CheckpointError("model record header lacks its part numbers")
    header["_start"] = len(PART_MAGIC) + 4 + n
    return header


class Reassembler:
    """Joins the parts of :func:`split` wholes read in order; a whole whose parts stop coming (its
    writer died) is dropped when another whole starts.

    Parameters
    ----------
    max_bytes
        The largest whole accepted: a header that claims more is refused.
    """

    def __init__(self, max_bytes: int = 512 * 1024 * 1024):
        self.max_bytes = max_bytes
        self._id: str | None = None
        self._parts: list[bytes] = []
        self._size = 0
        self.dropped = 0  # wholes abandoned before their last part

    def add(self, record: bytes) -> bytes | None:
        """Take one record; the whole blob when this was its last part. Raises :class:`CheckpointError`
        for a record that is not a part (the caller logs it and goes on)."""
        header = part_header(record)
        part, parts, size = header["part"], header["parts"], header["size"]
        if size > self.max_bytes or not 0 <= part < parts:
            raise CheckpointError(f"model record claims part {part} of {parts}, {size} bytes")
        if part == 0:
            if self._id is not None:
                self.dropped += 1
            self._id, self._parts, self._size = header.get("id"), [], size
        elif header.get("id") != self._id or part != len(self._parts):
            if self._id is not None and header.get("id") == self._id:
                self.dropped += 1
                self._id = None
            return None  # a part of a whole whose beginning was not read here
        self._parts.append(record[header["_start"] :])
        if part < parts - 1:
            return None
        whole, self._id, self._parts = b"".join(self._parts), None, []
        if len(whole) != self._size:
            raise CheckpointError(f"model record parts add up to {len(whole)} bytes, not {self._size}")
        return whole
