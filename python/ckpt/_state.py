"""Turning a Python state (dicts, lists, numbers, arrays, RNGs) into ckpt fields and back.

A state is stored as data only: numpy arrays become HDF5 datasets (fields of the core),
everything else is described by a JSON tree. Nothing is ever pickled, so loading never
runs code. Layout of one checkpoint written by the Python bindings:

* root attribute ``meta.python_state``: ``{"ckpt_python": 1, "root": NODE}`` (or, for
  large trees, the marker ``"@_py.tree"`` and the JSON in the replicated u8 field
  ``_py.tree``);
* one field per array, named by its key path joined with ``.`` (``state["a"]["b"]`` ->
  ``a.b``; list items by index; keys that are not plain names are hex-escaped as
  ``_x<hex>``);
* plain values (numbers, strings, bytes) that are equal on all ranks are stored inline
  in the tree; values that differ between ranks go to the per-rank u8 field ``_py.local``
  (a JSON list per rank) and the tree holds their index.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import math
import random
import re
import sys
from typing import Any, Callable

import numpy as np

from . import _objects as O
from ._errors import CheckpointError, UnsupportedValueError, make_error

# Format of the description: 1 for states of plain values, arrays and RNGs (what version
# 1 readers know), 2 when it holds objects, sets, shared references (written only then).
FORMAT = 2
READ_FORMATS = (1, 2)
TREE_KEY = "python_state"
TREE_FIELD = "_py.tree"
LOCAL_FIELD = "_py.local"
# Root attributes use HDF5 compact storage (64 KiB); larger trees go to a dataset.
MAX_INLINE_TREE = 48 * 1024

_BITGENS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,100}")


class Grid:
    """The regular grid a :class:`Distributed` array of 1 to 3 dimensions is sampled on,
    one number per axis in the array's order (for ``u[ny, nx]`` the y value first):
    ``origin`` is the position of element 0 (default all 0) and ``spacing`` the distance
    between neighbours (default all 1). A checkpoint then carries a VTKHDF image view of
    the array that ParaView (reader "VTKHDF") and VTK's ``vtkHDFReader`` open directly; the
    view links to the saved data, it is not a copy. All arrays tagged in one state must
    share one global shape and grid.

    >>> ck.Distributed(u[1:-1, 1:-1], (y0, x0), (n, n), grid=ck.Grid(spacing=(h, h)))
    """

    __slots__ = ("origin", "spacing")

    def __init__(self, spacing=None, origin=None):
        self.spacing = None if spacing is None else tuple(float(v) for v in spacing)
        self.origin = None if origin is None else tuple(float(v) for v in origin)

    def __repr__(self):
        return f"Grid(spacing={self.spacing}, origin={self.origin})"


class Distributed:
    """This rank's block of a global N-d array: ``local`` is the block, placed at
    ``offset`` in an array of ``global_shape``. Stored once at the global shape, so a
    checkpoint saved on N ranks loads on M ranks (pass templates with ``like=``).

    In ``like=`` templates, ``local`` may also be a shape tuple (a new array is allocated)
    or an array that is filled in place (it may be a view such as ``u[1:-1, 1:-1]``).
    """

    __slots__ = ("local", "offset", "global_shape", "grid")

    def __init__(self, local, offset, global_shape, grid: "Grid | None" = None):
        self.local = local
        self.offset = tuple(int(o) for o in offset)
        self.global_shape = tuple(int(g) for g in global_shape)
        if grid is not None and not isinstance(grid, Grid):
            raise TypeError(f"ckpt.Distributed: grid must be a ckpt.Grid, not {type(grid).__name__}")
        self.grid = grid
        nd = np.ndim(local) if isinstance(local, np.ndarray) else len(tuple(local))
        if len(self.offset) != len(self.global_shape) or nd != len(self.global_shape):
            raise ValueError(
                f"ckpt.Distributed: local has {nd} dimensions, offset {len(self.offset)}, "
                f"global_shape {len(self.global_shape)}; they must agree")

    @property
    def shape(self) -> tuple:
        """Shape of this rank's block."""
        return tuple(self.local.shape) if isinstance(self.local, np.ndarray) else tuple(
            int(n) for n in self.local)

    def __repr__(self):
        grid = "" if self.grid is None else f", grid={self.grid!r}"
        return (f"Distributed(local=<{self.shape}>, offset={self.offset}, "
                f"global_shape={self.global_shape}{grid})")


class Replicated:
    """A value that is the same on every rank (parameters, step counters); stored once.
    Saving checks that all ranks hold the same value."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return f"Replicated({self.value!r})"


# --------------------------------------------------------------------------------------
# Names and paths


def escape_key(key: str) -> str:
    if _NAME_RE.fullmatch(key) and not key.startswith(("_x", "_py", "_ckpt")) and key != "VTKHDF":
        return key
    return "_x" + key.encode("utf-8").hex()


class Attr(str):
    """An attribute name in a key path (shown as ``.name``)."""


def show_path(path: list) -> str:
    return "state" + "".join(f".{p}" if isinstance(p, Attr) else f"[{p!r}]" for p in path)


def field_name(comps: list) -> str:
    return ".".join(comps)


# --------------------------------------------------------------------------------------
# Arrays: storage dtypes of the core (u8..i64, f32, f64) and back


def storage_array(a: np.ndarray, where: str):
    """(array to register, dtype string to restore, shape of the user's array).
    Zero-copy for C-contiguous native arrays of a core dtype."""
    dt = a.dtype
    kind, size = dt.kind, dt.itemsize
    if kind in "OUSV" or dt.hasobject or dt.fields is not None:
        what = {"O": "object (Python objects)", "U": "unicode string", "S": "byte string",
                "V": "structured/void"}.get(kind, str(dt))
        raise make_error("invalid_argument", -1,
                         f"{where}: numpy arrays of dtype {dt} ({what}) cannot be stored; "
                         "use numeric arrays, or str/bytes values", UnsupportedValueError)
    if not dt.isnative:
        a = a.astype(dt.newbyteorder("="))
        dt = a.dtype
    if not a.flags.c_contiguous:
        a = a.copy(order="C")
    shape = a.shape
    if kind in "iu" and size in (1, 2, 4, 8) or kind == "f" and size in (4, 8):
        return a, dt.str, shape
    flat = a.reshape(-1)
    if kind == "b":
        return flat.view(np.uint8).reshape(shape), dt.str, shape
    if kind == "f" and size == 2:
        return flat.view(np.uint16).reshape(shape), dt.str, shape
    if kind == "c" and size in (8, 16):
        part = np.float32 if size == 8 else np.float64
        return flat.view(part).reshape(shape + (2,)), dt.str, shape
    if kind in "mM" and size == 8:
        return flat.view(np.int64).reshape(shape), dt.str, shape
    raise make_error("invalid_argument", -1,
                     f"{where}: numpy dtype {dt} is not supported (use integer, float32/64, "
                     "float16, complex64/128, bool or datetime64 arrays)", UnsupportedValueError)


def safe_dtype(dtype_str) -> np.dtype:
    """A dtype named in a checkpoint's description: numeric kinds only (never object)."""
    try:
        dt = np.dtype(str(dtype_str))
    except TypeError:
        dt = None
    if dt is None or dt.kind not in "biufcmM" or dt.itemsize > 16 or dt.fields is not None:
        raise make_error("corrupt", -1, f"unsupported dtype {dtype_str!r} in the state description")
    return dt


def storage_dtype(dtype_str: str) -> tuple[np.dtype, int]:
    """Core dtype used to store a user dtype, and the number of extra trailing dims."""
    dt = safe_dtype(dtype_str)
    kind, size = dt.kind, dt.itemsize
    if kind in "iu" or kind == "f" and size in (4, 8):
        return dt, 0
    if kind == "b":
        return np.dtype(np.uint8), 0
    if kind == "f" and size == 2:
        return np.dtype(np.uint16), 0
    if kind == "c":
        return np.dtype(np.float32 if size == 8 else np.float64), 1
    if kind in "mM":
        return np.dtype(np.int64), 0
    raise make_error("corrupt", -1, f"unknown stored dtype {dtype_str!r}")


def from_storage(a: np.ndarray, dtype_str: str) -> np.ndarray:
    dt = safe_dtype(dtype_str)
    if a.dtype == dt:
        return a
    if dt.kind == "c":
        shape = a.shape[:-1]
        return a.reshape(-1).view(dt).reshape(shape)
    return a.reshape(-1).view(dt).reshape(a.shape)


def core_dtype(name: str) -> np.dtype:
    return safe_dtype(name)  # the core reports numpy-style names ("float64", "uint8", ...)


def ghost_layout(a: np.ndarray):
    """If `a` is a strided window of a C-contiguous array (e.g. ``u[1:-1, 1:-1]``), return
    (base, index of a[0,...,0] in base) so the core can read/write the block in place."""
    if a.size == 0 or a.flags.c_contiguous:
        return None
    b = a
    while isinstance(b.base, np.ndarray):
        b = b.base
    if (b is a or not b.flags.c_contiguous or b.dtype != a.dtype or b.ndim != a.ndim
            or a.strides != b.strides):
        return None
    off = a.__array_interface__["data"][0] - b.__array_interface__["data"][0]
    idx = []
    for s in b.strides:
        q, off = divmod(off, s)
        idx.append(q)
    if off != 0 or any(i < 0 or i + n > m for i, n, m in zip(idx, a.shape, b.shape)):
        return None
    return b, idx


# --------------------------------------------------------------------------------------
# Flattening (save)


class FieldSpec:
    __slots__ = ("name", "kind", "array", "path", "global_shape", "offset", "count",
                 "memory_offset", "node", "user_shape", "grid")

    def __init__(self, name, kind, array, path, global_shape=None, offset=None, count=None,
                 memory_offset=None):
        self.name, self.kind, self.array, self.path = name, kind, array, path
        self.global_shape, self.offset, self.count = global_shape, offset, count
        self.memory_offset = memory_offset
        self.node = None        # the tree node that refers to this field
        self.user_shape = None  # shape of the user's array (for empty arrays)
        self.grid = None        # a Grid: the checkpoint shows the field as an image

    def register(self, fs):
        """Adds this field to a _ckpt.FieldSet."""
        if self.kind == "distributed":
            fs.distributed(self.name, self.array, list(self.global_shape), list(self.offset),
                             None if self.count is None else list(self.count),
                             None if self.memory_offset is None else list(self.memory_offset))
            if self.grid is not None:
                fs.grid(self.name, list(self.grid.origin or ()), list(self.grid.spacing or ()))
        elif self.kind == "replicated":
            fs.replicated(self.name, self.array)
        else:
            fs.per_rank(self.name, self.array)


class Flat:
    def __init__(self):
        self.fields: list[FieldSpec] = []
        # (node, path, encoded value, must be replicated)
        self.leaves: list[tuple[dict, list, Any, bool]] = []
        # id(object) -> (its node, the object): an object met again is stored as a "ref"
        # to its first node (which then gets an "id"). The object is kept alive so that
        # its id is not reused by a temporary while flattening.
        self.memo: dict[int, tuple[dict, Any]] = {}
        self.next_id = 0
        self.names: set[str] = set()


def _unsupported(value, path) -> CheckpointError:
    where = show_path(path)
    tname = f"{type(value).__module__}.{type(value).__qualname__}"
    if tname.startswith("mpi4py.MPI."):
        why = (f"is an MPI object ({tname}); communicators and requests cannot be saved: "
               "create them again after loading")
    elif isinstance(value, io.IOBase) or hasattr(value, "fileno") and hasattr(value, "read"):
        why = (f"is an open file ({tname}); files cannot be saved: store its name and "
               "position and reopen it after loading")
    elif callable(value):
        name = getattr(value, "__qualname__", None) or tname
        why = (f"is a function or callable ({name}); a checkpoint stores data, never code: "
               "recreate it after loading")
    elif isinstance(value, random.SystemRandom):
        why = "is a random.SystemRandom, which has no state to save"
    elif isinstance(value, (dict, list, set, tuple)):
        why = (f"has type {tname}, a subclass of {type(value).__mro__[1].__name__} that "
               "cannot be stored as data; store a plain dict/list/set/tuple, or hold the "
               "data in a class decorated with @ck.saveable")
    else:
        why = (f"has type {tname}, which cannot be stored as data; to save objects of this "
               "class decorate it with @ck.saveable (or call ck.register(cls)): it is then "
               "stored by its __getstate__/__setstate__, or its __dict__ and __slots__. "
               "Supported as they are: numpy arrays, int, float, complex, bool, str, bytes, "
               "None, dict, list, tuple, set, frozenset, dataclasses, namedtuples, enums, "
               "collections.deque/OrderedDict/Counter/defaultdict, datetime, pathlib paths, "
               "Fraction, Decimal, ckpt.Distributed, ckpt.Replicated, "
               "numpy.random.Generator/RandomState and random.Random")
    return make_error("invalid_argument", -1, f"save: {where} {why}", UnsupportedValueError)


DEPTH_LIMIT = 20000


@contextlib.contextmanager
def deep_recursion(what: str):
    """Flattening and rebuilding recurse once per level of nesting: allow deep object
    graphs (linked lists of objects) and turn the rest into a clear error."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, DEPTH_LIMIT))
    try:
        yield
    except RecursionError:
        raise make_error("invalid_argument", -1,
                         f"{what}: the state is nested too deeply (objects or containers "
                         f"inside each other more than about {DEPTH_LIMIT // 12} levels); "
                         "store long chains as lists", UnsupportedValueError) from None
    finally:
        sys.setrecursionlimit(old)


def _leaf(tag: str, encoded, node_extra=None):
    node = {"t": tag}
    if node_extra:
        node.update(node_extra)
    return node, encoded


_ATOMS = (type(None), bool, int, float, complex, str, bytes)


def _tracked(value) -> bool:
    """Whether the identity of `value` is kept (shared references, cycles): containers,
    arrays, RNGs and objects; not numbers, strings, enum members or empty tuples."""
    t = type(value)
    if t in _ATOMS or isinstance(value, np.generic) or O.is_enum_member(value):
        return False
    if isinstance(value, (tuple, frozenset)) and not value:
        return False
    return t not in O.PLAIN_TYPES


def flatten(value, comps: list, path: list, flat: Flat, forced: bool) -> dict:
    """Node of `value`; arrays are appended to flat.fields, plain values to flat.leaves.
    An object met a second time becomes {"t": "ref", "id": n}, its first node getting
    "id": n. Mutable containers and objects are entered in the memo before their contents
    (a cycle back to them is a ref); tuples and frozensets after (when a cycle through a
    mutable member reached the same tuple inside, the outer node gets "is": n)."""
    if not _tracked(value):
        return _flatten1(value, comps, path, flat, forced)
    key = id(value)
    hit = flat.memo.get(key)
    if hit is not None:
        node = hit[0]
        if "id" not in node:
            node["id"] = flat.next_id
            flat.next_id += 1
        return {"t": "ref", "id": node["id"]}
    if isinstance(value, (tuple, frozenset)):
        node = _flatten1(value, comps, path, flat, forced)
        hit = flat.memo.get(key)
        if hit is not None:   # defined inside itself, through a mutable member
            inner = hit[0]
            if "id" not in inner:
                inner["id"] = flat.next_id
                flat.next_id += 1
            node["is"] = inner["id"]
        else:
            flat.memo[key] = (node, value)
        return node
    placeholder: dict = {}
    flat.memo[key] = (placeholder, value)
    node = _flatten1(value, comps, path, flat, forced)
    if "id" in placeholder:   # a cycle came back to it while its contents were stored
        node["id"] = placeholder["id"]
    flat.memo[key] = (node, value)
    return node


def _flatten1(value, comps: list, path: list, flat: Flat, forced: bool) -> dict:
    if isinstance(value, Distributed):
        if forced:
            raise make_error("invalid_argument", -1,
                             f"save: {show_path(path)}: a Distributed value cannot be inside "
                             "Replicated")
        return _flatten_distributed(value, comps, path, flat)
    if isinstance(value, Replicated):
        return {"t": "replicated", "s": flatten(value.value, comps, path, flat, True)}
    if isinstance(value, np.ndarray):
        arr, dts, _ = storage_array(value, show_path(path))
        name = field_name(comps)
        spec = FieldSpec(name, "replicated" if forced else "per_rank", arr, show_path(path))
        spec.node = {"t": "array", "f": name, "dtype": dts, "nd": value.ndim,
                     "kind": "replicated" if forced else "per_rank"}
        spec.user_shape = list(value.shape)
        flat.fields.append(spec)
        return spec.node
    if isinstance(value, np.random.Generator):
        bg = value.bit_generator
        name = type(bg).__name__
        if name not in _BITGENS:
            raise _unsupported(value, path)
        return {"t": "generator", "bitgen": name,
                "s": flatten(bg.state, comps + ["state"], path + ["<state>"], flat, forced)}
    if isinstance(value, np.random.RandomState):
        return {"t": "randomstate",
                "s": flatten(value.get_state(legacy=False), comps + ["state"],
                             path + ["<state>"], flat, forced)}
    if isinstance(value, random.Random) and not isinstance(value, random.SystemRandom):
        version, internal, gauss = value.getstate()
        st = {"version": version, "internal": np.array(internal, dtype=np.uint32),
              "gauss": gauss}
        return {"t": "random",
                "s": flatten(st, comps + ["state"], path + ["<state>"], flat, forced)}
    if value is None:
        return {"t": "none"}
    if O.is_enum_member(value):
        node, enc = _enum_leaf(value, path)
    elif isinstance(value, np.generic):
        dt = value.dtype
        if dt.kind not in "biufc" or dt.itemsize > 16 or dt.kind == "f" and dt.itemsize > 8:
            raise _unsupported(value, path)
        py = value.item()
        enc = [py.real, py.imag] if dt.kind == "c" else py
        node = {"t": "npscalar", "dtype": dt.str}
    elif isinstance(value, bool):
        node, enc = {"t": "bool"}, value
    elif isinstance(value, int):
        node, enc = {"t": "int"}, int(value)
    elif isinstance(value, float):
        node, enc = {"t": "float"}, float(value)
    elif isinstance(value, complex):
        node, enc = {"t": "complex"}, [value.real, value.imag]
    elif isinstance(value, str):
        node, enc = {"t": "str"}, value
    elif isinstance(value, (bytes, bytearray)):
        node, enc = {"t": "bytes" if isinstance(value, bytes) else "bytearray"}, value.hex()
    elif (plain := O.encode_plain(value, show_path(path))) is not None:
        node, enc = plain
    elif type(value) in _DICTS:
        return _flatten_dict(value, comps, path, flat, forced)
    elif type(value) in (list, tuple):
        return {"t": "list" if type(value) is list else "tuple",
                "v": [flatten(v, comps + [str(i)], path + [i], flat, forced)
                      for i, v in enumerate(value)]}
    elif type(value) in (set, frozenset):
        items = sorted(value, key=O.sort_key)
        return {"t": type(value).__name__,
                "v": [flatten(v, comps + [str(i)], path + [f"<element {i}>"], flat, forced)
                      for i, v in enumerate(items)]}
    elif type(value) is collections.deque:
        return {"t": "deque", "maxlen": value.maxlen,
                "v": [flatten(v, comps + [str(i)], path + [i], flat, forced)
                      for i, v in enumerate(value)]}
    elif O.is_namedtuple(value):
        cls = type(value)
        name = O.name_for_save(cls, "namedtuple", show_path(path))
        return {"t": "nt", "cls": name,
                "v": [flatten(v, comps + [escape_key(f)], path + [Attr(f)], flat, forced)
                      for f, v in zip(cls._fields, value)]}
    elif O.is_dataclass_instance(value) or O.is_registered(type(value)):
        return _flatten_object(value, comps, path, flat, forced)
    else:
        raise _unsupported(value, path)
    flat.leaves.append((node, path, enc, forced))
    return node


_DICTS = {dict: "dict", collections.OrderedDict: "odict", collections.Counter: "counter",
          collections.defaultdict: "ddict"}


def _enum_leaf(value, path):
    cls = type(value)
    node = {"t": "enum", "cls": O.name_for_save(cls, "enum", show_path(path))}
    if value.name is not None and cls.__members__.get(value.name) is value:
        return node, value.name
    if type(value.value) in (int, str, float):   # e.g. a combination of Flag members
        return node, [value.value]
    raise make_error("invalid_argument", -1,
                     f"save: {show_path(path)} is an enum value without a member name and "
                     "with a value that is not an int, str or float", UnsupportedValueError)


def _flatten_dict(value, comps, path, flat, forced) -> dict:
    tag = _DICTS[type(value)]
    if all(type(k) is str for k in value):
        items = [[k, flatten(v, comps + [escape_key(k)], path + [k], flat, forced)]
                 for k, v in value.items()]
        node = {"t": tag, "k": items}
    elif not path:
        k = next(k for k in value if type(k) is not str)
        raise make_error("invalid_argument", -1,
                         f"save: {show_path([k])}: the keys of the state dict must be str, got "
                         f"{type(k).__name__} (nested dicts may have other keys)",
                         UnsupportedValueError)
    else:
        used: set[str] = set()
        pairs = []
        for i, (k, v) in enumerate(value.items()):
            name = escape_key(str(k)) if type(k) in (str, int) else escape_key(f"#{i}")
            j = 0
            while name in used:
                j += 1
                name = escape_key(f"#{i}#{j}")
            used.add(name)
            kn = flatten(k, comps + [name, escape_key("<key>")], path + [f"<key {i}>"], flat,
                         forced)
            pairs.append([kn, flatten(v, comps + [name], path + [k], flat, forced)])
        node = {"t": tag, "kv": pairs}
    if tag == "ddict":
        node["factory"] = O.factory_name(value.default_factory, show_path(path))
    return node


def _attrs_node(d: dict, comps, path, flat, forced) -> dict:
    items = []
    for k, v in d.items():
        if type(k) is not str:
            raise make_error("invalid_argument", -1,
                             f"save: {show_path(path)}: attribute name {k!r} is not a str",
                             UnsupportedValueError)
        items.append([k, flatten(v, comps + [escape_key(k)], path + [Attr(k)], flat, forced)])
    return {"t": "dict", "k": items}


def _flatten_object(value, comps, path, flat, forced) -> dict:
    cls = type(value)
    kind = "class" if O.is_registered(cls) else "dataclass"
    if isinstance(value, (dict, list, set, frozenset, tuple, bytes, bytearray, str, int, float)):
        raise _unsupported(value, path)
    node = {"t": "obj", "cls": O.name_for_save(cls, kind, show_path(path))}
    if kind == "dataclass":
        node["dc"] = 1
    st = O.object_state(value)
    if st[0] == "st":
        node["st"] = flatten(st[1], comps, path, flat, forced)
    else:
        _, d, slots = st
        if d is not None:
            node["d"] = _attrs_node(d, comps, path, flat, forced)
        if slots:
            node["sl"] = _attrs_node(slots, comps, path, flat, forced)
    return node


V1_TAGS = frozenset(("dict", "list", "tuple", "none", "replicated", "array", "distributed",
                     "generator", "randomstate", "random", "bool", "int", "float", "complex",
                     "str", "bytes", "bytearray", "npscalar", "emptyarray"))


def format_of(node) -> int:
    """1 when the tree uses only what format-1 readers know, else 2."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, dict):
            if n.get("t") not in V1_TAGS or "id" in n or "is" in n or "kv" in n:
                return 2
            for k, v in n.items():
                if k in ("s", "k", "v") and isinstance(v, (dict, list)):
                    stack.append(v)
        elif isinstance(n, list):
            stack.extend(x for x in n if isinstance(x, (dict, list)))
    return 1


def _flatten_distributed(d: Distributed, comps, path, flat: Flat) -> dict:
    where = show_path(path)
    if not isinstance(d.local, np.ndarray):
        raise make_error("invalid_argument", -1,
                         f"save: {where}: Distributed.local must be a numpy array")
    for o, n, g in zip(d.offset, d.local.shape, d.global_shape):
        if o < 0 or o + n > g:
            raise make_error("invalid_argument", -1,
                             f"save: {where}: block at offset {d.offset} of shape "
                             f"{d.local.shape} lies outside the global shape {d.global_shape}")
    name = field_name(comps)
    a = d.local
    glob, off = list(d.global_shape), list(d.offset)
    spec = None
    if a.dtype.isnative and (a.dtype.kind in "iu" or a.dtype.kind == "f" and a.dtype.itemsize
                             in (4, 8)) and not a.flags.c_contiguous:
        g = ghost_layout(a)
        if g is not None:
            base, idx = g
            spec = FieldSpec(name, "distributed", base, where, glob, off, list(a.shape), idx)
    if spec is None:
        arr, _, _ = storage_array(a, where)
        extra = arr.ndim - a.ndim
        spec = FieldSpec(name, "distributed", arr, where, glob + [2] * extra, off + [0] * extra,
                         list(arr.shape))
        if extra and d.grid is not None:
            raise make_error("invalid_argument", -1,
                             f"save: {where}: a {a.dtype} array cannot be shown as an image "
                             "(grid=): complex values are stored with an extra axis")
    spec.grid = d.grid
    spec.node = {"t": "distributed", "f": name, "dtype": a.dtype.newbyteorder("=").str,
                 "global": list(d.global_shape)}
    spec.user_shape = list(a.shape)
    flat.fields.append(spec)
    return spec.node


def structure_of(node) -> Any:
    """The tree without inline values: what must be equal on every rank."""
    if isinstance(node, dict):
        return {k: structure_of(v) for k, v in node.items() if k not in ("v", "r")}
    if isinstance(node, list):
        return [structure_of(v) for v in node]
    return node


# --------------------------------------------------------------------------------------
# Decoding plain values (load)


def decode_leaf(node: dict, enc):
    t = node["t"]
    if t == "bool":
        return bool(enc)
    if t == "int":
        return int(enc)
    if t == "float":
        return float(enc)
    if t == "complex":
        return complex(float(enc[0]), float(enc[1]))
    if t == "str":
        return str(enc)
    if t == "bytes":
        return bytes.fromhex(enc)
    if t == "bytearray":
        return bytearray.fromhex(enc)
    if t in O.PLAIN_TAGS and t != "enum":
        return O.decode_plain(node, enc, None)
    if t == "emptyarray":
        shape = tuple(int(n) for n in enc)
        if any(n < 0 for n in shape) or math.prod(shape) != 0:
            raise make_error("corrupt", -1, f"bad empty array shape {shape}")
        return np.empty(shape, dtype=safe_dtype(node["dtype"]))
    if t == "npscalar":
        dt = safe_dtype(node["dtype"])
        if dt.kind not in "biufc":
            raise make_error("corrupt", -1, f"unknown numpy scalar dtype {node['dtype']!r}")
        if dt.kind == "c":
            return dt.type(complex(float(enc[0]), float(enc[1])))
        return dt.type(enc)
    raise make_error("corrupt", -1, f"unknown value tag {t!r} in the state description")


def make_generator(bitgen: str, state) -> np.random.Generator:
    if bitgen not in _BITGENS:
        raise make_error("corrupt", -1, f"unknown numpy bit generator {bitgen!r}")
    bg = getattr(np.random, bitgen)()
    bg.state = state
    return np.random.Generator(bg)


def make_randomstate(state) -> np.random.RandomState:
    rs = np.random.RandomState()
    rs.set_state(state)
    return rs


def make_random(state) -> random.Random:
    r = random.Random()
    internal = tuple(int(x) for x in np.asarray(state["internal"]).reshape(-1))
    gauss = state["gauss"]
    r.setstate((int(state["version"]), internal, None if gauss is None else float(gauss)))
    return r


# NaN and infinities are written as NaN/Infinity (Python's json reads them back). One encoder
# for every call: json.dumps with these options would build a new one each time.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=True)


def dumps(obj) -> str:
    return _ENCODER.encode(obj)


Builder = Callable[[], Any]
