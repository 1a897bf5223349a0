"""A data-only serialisation of model state: a JSON document and raw array buffers.

Nothing it reads can run code: decoding builds only plain data (``None``, numbers, strings, lists,
tuples, dicts, sets, bytes, numpy arrays of numeric types, ``array.array``, ``Counter``, ``deque``,
``OrderedDict``, ``defaultdict`` of a builtin type) and instances of the classes the caller allows, by
name. An instance is made with ``cls.__new__(cls)`` and given its state the way pickle's ``BUILD``
does (``__setstate__``, else its ``__dict__`` and slots); no function named by the data is ever
called. A name outside the allow-list is refused with :class:`CodecError`.

>>> import numpy as np
>>> doc, buffers = encode({"w": np.arange(3, dtype=np.float32), "n": (1, 2.5, None), "s": {"a"}})
>>> state = decode(doc, buffers, allowed={})
>>> state["w"].tolist(), state["n"], state["s"]
([0.0, 1.0, 2.0], (1, 2.5, None), {'a'})
>>> class Evil:
...     def __reduce__(self):
...         return (print, ("pwned",))
>>> encode(Evil())
Traceback (most recent call last):
...
models.codec.CodecError: cannot encode an object of models.codec.Evil (not in the allow-list)
>>> decode({"$o": "os.system", "a": [], "s": None}, [], allowed={})
Traceback (most recent call last):
...
models.codec.CodecError: class 'os.system' is not allowed in a checkpoint
"""

from __future__ import annotations

import array
import collections
import copyreg
import math
import mmap
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

PLAIN_DTYPES = frozenset("?bBhHiIlLqQefdgFD")  # numeric and boolean: no objects, no strings
NEWOBJ = copyreg.__newobj__  # type: ignore[attr-defined]  # what ordinary classes reduce to
FACTORIES: dict[str, type] = {"int": int, "float": float, "list": list, "dict": dict, "set": set}


class CodecError(ValueError):
    """A value that this format does not carry, or a document it does not accept."""


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class _Encoder:
    """The state of one :func:`encode` call. A class, not closures: a recursive closure refers to itself
    through its cell, and that cycle would keep every object encoded and their buffers alive until the
    garbage collector's next pass."""

    def __init__(self, allowed: Mapping[str, type]):
        self.allowed = allowed
        self.names = {cls: name for name, cls in allowed.items()}
        self.buffers: list[bytes | memoryview] = []
        self.memo: dict[int, int] = {}
        self.keep: list[Any] = []  # objects whose id() is in memo, kept alive while encoding

    def buf(self, data: bytes | memoryview) -> int:
        self.buffers.append(data)
        return len(self.buffers) - 1

    def enc(self, o: Any) -> Any:
        t = type(o)
        if o is None or t is bool or t is str:
            return o
        if t is int:
            return o if -(2**63) <= o < 2**63 else {"$i": str(o)}
        if t is float:
            return o if math.isfinite(o) else {"$f": repr(o)}
        if t is bytes or t is bytearray:
            return {"$b": self.buf(bytes(o)), "mutable": t is bytearray}
        if isinstance(o, np.generic):
            return {"$ns": o.dtype.str, "v": self.enc(o.item())}
        ref = self.memo.get(id(o))
        if ref is not None:
            return {"$r": ref}
        self.memo[id(o)] = len(self.memo)
        self.keep.append(o)
        node: dict[str, Any]
        if t is np.ndarray:
            if o.dtype.char not in PLAIN_DTYPES:
                raise CodecError(f"cannot encode an array of dtype {o.dtype}")
            flat = np.ascontiguousarray(o).reshape(-1)  # no copy of a contiguous array
            data = flat.data.cast("B") if flat.size else b""
            node = {"$nd": self.buf(data), "dtype": o.dtype.str, "shape": list(o.shape)}
        elif t is array.array:
            node = {"$a": o.typecode, "b": self.buf(o.tobytes())}
        elif t is list:
            node = {"$l": [self.enc(x) for x in o]}
        elif t is tuple:
            node = {"$t": [self.enc(x) for x in o]}
        elif t is set or t is frozenset:
            node = {"$s": [self.enc(x) for x in o], "frozen": t is frozenset}
        elif t is dict:
            node = {"$d": [[self.enc(k), self.enc(v)] for k, v in o.items()]}
        elif t is collections.Counter or t is collections.OrderedDict:
            node = {"$m": t.__name__, "items": [[self.enc(k), self.enc(v)] for k, v in o.items()]}
        elif t is collections.defaultdict:
            factory = o.default_factory
            if factory is not None and FACTORIES.get(getattr(factory, "__name__", "")) is not factory:
                raise CodecError(f"cannot encode a defaultdict of {factory!r}")
            node = {
                "$m": "defaultdict",
                "factory": None if factory is None else factory.__name__,
                "items": [[self.enc(k), self.enc(v)] for k, v in o.items()],
            }
        elif t is collections.deque:
            node = {"$q": [self.enc(x) for x in o], "maxlen": o.maxlen}
        else:
            name = self.names.get(t) or qualified_name(t)
            if self.allowed.get(name) is not t:
                raise CodecError(f"cannot encode an object of {name} (not in the allow-list)")
            reduced = o.__reduce_ex__(2)
            if not isinstance(reduced, tuple) or reduced[0] is not NEWOBJ or reduced[1][0] is not t:
                raise CodecError(f"cannot encode an object of {name}: it does not reduce to its state")
            state = reduced[2] if len(reduced) > 2 else None
            if len(reduced) > 3 and (reduced[3] is not None or (len(reduced) > 4 and reduced[4] is not None)):
                raise CodecError(f"cannot encode an object of {name}: it has list or dict items")
            node = {"$o": name, "a": [self.enc(x) for x in reduced[1][1:]], "s": self.enc(state)}
        return node


def encode(obj: Any, allowed: Mapping[str, type] | None = None) -> tuple[Any, list[bytes | memoryview]]:
    """``obj`` as ``(document, buffers)``: a JSON-able document, and the raw bytes of its arrays.

    Instances must be of a class in ``allowed`` (name → class), which names them in the document
    (a class listed under another name than its own is written under that name: the name an earlier
    version gave it), and reduce the ordinary way (``copyreg.__newobj__``): their state is encoded
    the same way, recursively. Shared objects stay shared, and cycles through instances, lists and
    dicts are kept."""
    encoder = _Encoder({} if allowed is None else allowed)
    return encoder.enc(obj), encoder.buffers


def _build(obj: Any, state: Any) -> None:
    """Give ``obj`` its ``state`` as pickle's BUILD opcode does."""
    setstate = getattr(obj, "__setstate__", None)
    if setstate is not None and getattr(type(obj), "__setstate__", None) is not getattr(object, "__setstate__", None):
        setstate(state)
        return
    slots = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slots = state
    if state:
        obj.__dict__.update(state)
    if slots:
        for key, value in slots.items():
            setattr(obj, key, value)


class _Decoder:
    """The state of one :func:`decode` call (a class, not closures: see :class:`_Encoder`)."""

    def __init__(self, buffers: Sequence[bytes | bytearray | mmap.mmap], allowed: Mapping[str, type]):
        self.buffers = buffers
        self.allowed = allowed
        self.memo: list[Any] = []

    def scalar_buffer(self, i: Any) -> bytes | bytearray | mmap.mmap:
        if type(i) is not int or not 0 <= i < len(self.buffers):
            raise CodecError(f"buffer {i!r} does not exist")
        return self.buffers[i]

    def dec(self, node: Any) -> Any:
        t = type(node)
        if node is None or t in (bool, int, float, str):
            return node
        if t is not dict or len(node) == 0:
            raise CodecError(f"unexpected node {str(node)[:60]}")
        if "$r" in node:
            ref = node["$r"]
            if type(ref) is not int or not 0 <= ref < len(self.memo):
                raise CodecError(f"reference {ref!r} does not exist")
            return self.memo[ref]
        if "$i" in node:
            return int(node["$i"])
        if "$f" in node:
            return float(node["$f"])
        if "$b" in node:
            data = self.scalar_buffer(node["$b"])
            return bytearray(data) if node.get("mutable") else bytes(data)
        if "$ns" in node:
            return np.dtype(_plain_dtype(node["$ns"])).type(self.dec(node["v"]))
        index = len(self.memo)
        self.memo.append(None)  # the slot of this container or object, filled before its contents
        if "$nd" in node:
            dtype = _plain_dtype(node["dtype"])
            shape = tuple(int(x) for x in node["shape"])
            out: Any = np.frombuffer(self.scalar_buffer(node["$nd"]), dtype=dtype).reshape(shape)
            if not out.flags.writeable:  # read-only bytes: the array gets its own copy
                out = out.copy()
        elif "$a" in node:
            if node["$a"] not in "bBuhHiIlLqQfd":
                raise CodecError(f"array typecode {node['$a']!r}")
            out = array.array(node["$a"])
            out.frombytes(self.scalar_buffer(node["b"]))
        elif "$l" in node:
            out = self.memo[index] = []
            out.extend(self.dec(x) for x in node["$l"])
        elif "$t" in node:
            out = tuple(self.dec(x) for x in node["$t"])
        elif "$s" in node:
            items = [self.dec(x) for x in node["$s"]]
            out = frozenset(items) if node.get("frozen") else set(items)
        elif "$d" in node:
            out = self.memo[index] = {}
            for k, v in node["$d"]:
                out[self.dec(k)] = self.dec(v)
        elif "$m" in node:
            kind = node["$m"]
            if kind == "Counter":
                out = collections.Counter()
            elif kind == "OrderedDict":
                out = collections.OrderedDict()
            elif kind == "defaultdict":
                factory = node.get("factory")
                if factory is not None and factory not in FACTORIES:
                    raise CodecError(f"defaultdict factory {factory!r} is not allowed")
                out = collections.defaultdict(None if factory is None else FACTORIES[factory])
            else:
                raise CodecError(f"mapping kind {kind!r}")
            self.memo[index] = out
            for k, v in node["items"]:
                out[self.dec(k)] = self.dec(v)
        elif "$q" in node:
            maxlen = node.get("maxlen")
            out = collections.deque((self.dec(x) for x in node["$q"]), maxlen=None if maxlen is None else int(maxlen))
        elif "$o" in node:
            cls = self.allowed.get(node["$o"]) if type(node["$o"]) is str else None
            if cls is None:
                raise CodecError(f"class {node['$o']!r} is not allowed in a checkpoint")
            out = self.memo[index] = cls.__new__(cls, *[self.dec(x) for x in node["a"]])
            _build(out, self.dec(node["s"]))
        else:
            raise CodecError(f"unexpected node {str(node)[:60]}")
        self.memo[index] = out
        return out


def decode(doc: Any, buffers: Sequence[bytes | bytearray | mmap.mmap], allowed: Mapping[str, type]) -> Any:
    """The value :func:`encode` turned into ``(doc, buffers)``; only classes of ``allowed`` (name →
    class) are instantiated. Raises :class:`CodecError` on anything else."""
    return _Decoder(buffers, allowed).dec(doc)


def _plain_dtype(code: Any) -> np.dtype[Any]:
    if type(code) is not str:
        raise CodecError(f"dtype {code!r}")
    try:
        dtype = np.dtype(code)
    except TypeError:
        raise CodecError(f"dtype {code!r}") from None
    if dtype.char not in PLAIN_DTYPES:
        raise CodecError(f"dtype {code!r} is not a plain numeric type")
    return dtype


def attribute_buffers(doc: Any, attributes: Collection[tuple[str, str]]) -> set[int]:
    """The buffers of a :func:`encode` document held under the given ``(class name, attribute)``
    pairs of its objects (whose state is a dict), wherever they are: what a reader that drops those
    attributes need not read.

    >>> class Box:
    ...     def __init__(self):
    ...         self.big, self.small = np.zeros(4), b"ab"
    >>> doc, buffers = encode([Box()], {qualified_name(Box): Box})
    >>> sorted(attribute_buffers(doc, {(qualified_name(Box), "big")})), len(buffers)
    ([0], 2)
    """
    out: set[int] = set()
    _walk(doc, attributes, out)
    return out


def object_arrays(doc: Any, classes: Collection[str]) -> set[int]:
    """The buffers of the arrays (numpy's and ``array.array``) held anywhere under the objects of the
    given classes (qualified names) in an :func:`encode` document: what a reader that drops those
    objects need not read. Bytes are left out: an object may decode them into state that a zeroed
    value would break while it is built (a Rust object's pickled state), and they are small.

    An object encoded a second time refers to its first encoding: the caller must know that nothing
    outside those objects refers to one inside them (for a learner's snapshot and its interest model,
    ``tests/models/test_persistence.py`` checks it).

    >>> class Box:
    ...     def __init__(self):
    ...         self.big, self.small = np.zeros(4), b"ab"
    >>> doc, buffers = encode({"box": Box(), "other": np.ones(2)}, {qualified_name(Box): Box})
    >>> sorted(object_arrays(doc, {qualified_name(Box)})), len(buffers)
    ([0], 3)
    """
    out: set[int] = set()
    _find(doc, classes, out)
    return out


def _find(node: Any, classes: Collection[str], out: set[int]) -> None:
    """Add to ``out`` the array buffers under the objects of ``classes`` in a subtree."""
    name = node.get("$o") if isinstance(node, dict) else None
    if isinstance(name, str) and name in classes:
        _under(node, out, arrays_only=True)
        return
    for child in _children(node):
        _find(child, classes, out)


def _under(node: Any, out: set[int], arrays_only: bool = False) -> None:
    """Add every buffer of a subtree to ``out`` (with ``arrays_only``, those of arrays: not bytes)."""
    if isinstance(node, dict):
        out.update(node[k] for k in (("$nd",) if arrays_only else ("$nd", "$b")) if type(node.get(k)) is int)
        if "$a" in node and type(node.get("b")) is int:
            out.add(node["b"])
    for child in _children(node):
        _under(child, out, arrays_only)


def _walk(node: Any, attributes: Collection[tuple[str, str]], out: set[int]) -> None:
    """Add to ``out`` the buffers under the ``attributes`` of the objects of a subtree."""
    name, state = (node.get("$o"), node.get("s")) if isinstance(node, dict) else (None, None)
    if isinstance(name, str) and isinstance(state, dict) and isinstance(state.get("$d"), list):
        for pair in state["$d"]:
            if isinstance(pair, list) and len(pair) == 2 and (name, pair[0]) in attributes:
                _under(pair[1], out)
            else:
                _walk(pair, attributes, out)
        _walk(node.get("a"), attributes, out)
        return
    for child in _children(node):
        _walk(child, attributes, out)


def _children(node: Any) -> list[Any]:
    """The nodes inside a document node."""
    if isinstance(node, dict):
        return list(node.values())
    return node if isinstance(node, list) else []
