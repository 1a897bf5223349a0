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


def encode(obj: Any, allowed: Mapping[str, type] | None = None) -> tuple[Any, list[bytes | memoryview]]:
    """``obj`` as ``(document, buffers)``: a JSON-able document, and the raw bytes of its arrays.

    Instances must be of a class in ``allowed`` (name → class), which names them in the document
    (a class listed under another name than its own is written under that name: the name an earlier
    version gave it), and reduce the ordinary way (``copyreg.__newobj__``): their state is encoded
    the same way, recursively. Shared objects stay shared, and cycles through instances, lists and
    dicts are kept."""
    allowed = {} if allowed is None else allowed
    names = {cls: name for name, cls in allowed.items()}
    buffers: list[bytes | memoryview] = []
    memo: dict[int, int] = {}
    keep: list[Any] = []  # objects whose id() is in memo, kept alive while encoding

    def buf(data: bytes | memoryview) -> int:
        buffers.append(data)
        return len(buffers) - 1

    def enc(o: Any) -> Any:
        t = type(o)
        if o is None or t is bool or t is str:
            return o
        if t is int:
            return o if -(2**63) <= o < 2**63 else {"$i": str(o)}
        if t is float:
            return o if math.isfinite(o) else {"$f": repr(o)}
        if t is bytes or t is bytearray:
            return {"$b": buf(bytes(o)), "mutable": t is bytearray}
        if isinstance(o, np.generic):
            return {"$ns": o.dtype.str, "v": enc(o.item())}
        ref = memo.get(id(o))
        if ref is not None:
            return {"$r": ref}
        memo[id(o)] = len(memo)
        keep.append(o)
        node: dict[str, Any]
        if t is np.ndarray:
            if o.dtype.char not in PLAIN_DTYPES:
                raise CodecError(f"cannot encode an array of dtype {o.dtype}")
            flat = np.ascontiguousarray(o).reshape(-1)  # no copy of a contiguous array
            data = flat.data.cast("B") if flat.size else b""
            node = {"$nd": buf(data), "dtype": o.dtype.str, "shape": list(o.shape)}
        elif t is array.array:
            node = {"$a": o.typecode, "b": buf(o.tobytes())}
        elif t is list:
            node = {"$l": [enc(x) for x in o]}
        elif t is tuple:
            node = {"$t": [enc(x) for x in o]}
        elif t is set or t is frozenset:
            node = {"$s": [enc(x) for x in o], "frozen": t is frozenset}
        elif t is dict:
            node = {"$d": [[enc(k), enc(v)] for k, v in o.items()]}
        elif t is collections.Counter or t is collections.OrderedDict:
            node = {"$m": t.__name__, "items": [[enc(k), enc(v)] for k, v in o.items()]}
        elif t is collections.defaultdict:
            factory = o.default_factory
            if factory is not None and FACTORIES.get(getattr(factory, "__name__", "")) is not factory:
                raise CodecError(f"cannot encode a defaultdict of {factory!r}")
            node = {
                "$m": "defaultdict",
                "factory": None if factory is None else factory.__name__,
                "items": [[enc(k), enc(v)] for k, v in o.items()],
            }
        elif t is collections.deque:
            node = {"$q": [enc(x) for x in o], "maxlen": o.maxlen}
        else:
            name = names.get(t) or qualified_name(t)
            if allowed.get(name) is not t:
                raise CodecError(f"cannot encode an object of {name} (not in the allow-list)")
            reduced = o.__reduce_ex__(2)
            if not isinstance(reduced, tuple) or reduced[0] is not NEWOBJ or reduced[1][0] is not t:
                raise CodecError(f"cannot encode an object of {name}: it does not reduce to its state")
            state = reduced[2] if len(reduced) > 2 else None
            if len(reduced) > 3 and (reduced[3] is not None or (len(reduced) > 4 and reduced[4] is not None)):
                raise CodecError(f"cannot encode an object of {name}: it has list or dict items")
            node = {"$o": name, "a": [enc(x) for x in reduced[1][1:]], "s": enc(state)}
        return node

    return enc(obj), buffers


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


def decode(doc: Any, buffers: Sequence[bytes | bytearray | mmap.mmap], allowed: Mapping[str, type]) -> Any:
    """The value :func:`encode` turned into ``(doc, buffers)``; only classes of ``allowed`` (name →
    class) are instantiated. Raises :class:`CodecError` on anything else."""
    memo: list[Any] = []

    def scalar_buffer(i: Any) -> bytes | bytearray | mmap.mmap:
        if type(i) is not int or not 0 <= i < len(buffers):
            raise CodecError(f"buffer {i!r} does not exist")
        return buffers[i]

    def dec(node: Any) -> Any:
        t = type(node)
        if node is None or t in (bool, int, float, str):
            return node
        if t is not dict or len(node) == 0:
            raise CodecError(f"unexpected node {str(node)[:60]}")
        if "$r" in node:
            ref = node["$r"]
            if type(ref) is not int or not 0 <= ref < len(memo):
                raise CodecError(f"reference {ref!r} does not exist")
            return memo[ref]
        if "$i" in node:
            return int(node["$i"])
        if "$f" in node:
            return float(node["$f"])
        if "$b" in node:
            data = scalar_buffer(node["$b"])
            return bytearray(data) if node.get("mutable") else bytes(data)
        if "$ns" in node:
            return np.dtype(_plain_dtype(node["$ns"])).type(dec(node["v"]))
        index = len(memo)
        memo.append(None)  # the slot of this container or object, filled before its contents
        if "$nd" in node:
            dtype = _plain_dtype(node["dtype"])
            shape = tuple(int(x) for x in node["shape"])
            out: Any = np.frombuffer(scalar_buffer(node["$nd"]), dtype=dtype).reshape(shape)
            if not out.flags.writeable:  # read-only bytes: the array gets its own copy
                out = out.copy()
        elif "$a" in node:
            if node["$a"] not in "bBuhHiIlLqQfd":
                raise CodecError(f"array typecode {node['$a']!r}")
            out = array.array(node["$a"])
            out.frombytes(scalar_buffer(node["b"]))
        elif "$l" in node:
            out = memo[index] = []
            out.extend(dec(x) for x in node["$l"])
        elif "$t" in node:
            out = tuple(dec(x) for x in node["$t"])
        elif "$s" in node:
            items = [dec(x) for x in node["$s"]]
            out = frozenset(items) if node.get("frozen") else set(items)
        elif "$d" in node:
            out = memo[index] = {}
            for k, v in node["$d"]:
                out[dec(k)] = dec(v)
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
            memo[index] = out
            for k, v in node["items"]:
                out[dec(k)] = dec(v)
        elif "$q" in node:
            maxlen = node.get("maxlen")
            out = collections.deque((dec(x) for x in node["$q"]), maxlen=None if maxlen is None else int(maxlen))
        elif "$o" in node:
            cls = allowed.get(node["$o"]) if type(node["$o"]) is str else None
            if cls is None:
                raise CodecError(f"class {node['$o']!r} is not allowed in a checkpoint")
            out = memo[index] = cls.__new__(cls, *[dec(x) for x in node["a"]])
            _build(out, dec(node["s"]))
        else:
            raise CodecError(f"unexpected node {str(node)[:60]}")
        memo[index] = out
        return out

    return dec(doc)


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

    def under(node: Any) -> None:  # every buffer of a subtree
        if isinstance(node, dict):
            out.update(node[k] for k in ("$nd", "$b") if type(node.get(k)) is int)
            if "$a" in node and type(node.get("b")) is int:
                out.add(node["b"])
        for child in _children(node):
            under(child)

    def walk(node: Any) -> None:
        name, state = (node.get("$o"), node.get("s")) if isinstance(node, dict) else (None, None)
        if isinstance(name, str) and isinstance(state, dict) and isinstance(state.get("$d"), list):
            for pair in state["$d"]:
                if isinstance(pair, list) and len(pair) == 2 and (name, pair[0]) in attributes:
                    under(pair[1])
                else:
                    walk(pair)
            walk(node.get("a"))
            return
        for child in _children(node):
            walk(child)

    walk(doc)
    return out


def _children(node: Any) -> list[Any]:
    """The nodes inside a document node."""
    if isinstance(node, dict):
        return list(node.values())
    return node if isinstance(node, list) else []
