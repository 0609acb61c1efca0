"""Repeated saves of a state of the same shape: what the previous save of a Checkpointer or
of a ck.save session worked out (the flattened description, the text of its structure, the
core's field set) is kept as a plan, and a save whose state matches it reads only the plain
values again.

A state matches when it has the same dict keys in the same order, plain values of the same
types (bool, int, float, str, None; their values may change), and the same arrays: a plain
array must be the same object, a Distributed block an array over the same memory (data
address, shape, strides, dtype) with the same offset, global shape and grid. Anything else
(objects, lists, RNGs, Replicated, shared references, empty arrays, arrays that had to be
copied for the core) is not planned: such states take the full path at every save, as
before.
"""

from __future__ import annotations

import numpy as np

from . import _state as S

# The plan's field set keeps the arrays of the last save referenced until the next one;
# plans are made only for states whose arrays take at most this many bytes (small, frequent
# saves, where the per-call work matters).
MAX_BYTES = 8 << 20
# Nesting deeper than this is not planned (the match recurses once per level).
MAX_DEPTH = 64

_ATOMS = (bool, int, float, str)
_DICT, _ATOM, _NONE, _ARRAY, _DIST = range(5)


def _layout(a: np.ndarray) -> tuple:
    """The memory the core reads for an array: address, shape, strides, dtype."""
    return (a.__array_interface__["data"][0], a.shape, a.strides, a.dtype)


def _grid_key(grid):
    return None if grid is None else (grid.spacing, grid.origin)


class Plan:
    """What a full save of a state worked out, for the next saves of the same shape."""

    __slots__ = ("spec", "leaves", "fields", "fs", "root", "format", "root_text",
                 "extra_text", "struct_words", "last_tree")

    def match(self, state):
        """The plain values of `state` in the order of the description's leaves, or None
        when the state does not have the planned shape."""
        encs = [None] * len(self.leaves)
        return encs if _match(state, self.spec, encs) else None


def make(state, flat, root, root_text: str, fs) -> Plan | None:
    """A plan from the full flatten of `state` (``flat``, its description ``root`` and the
    text of that description without values), or None when the state is not covered."""
    if flat.next_id or fs is None:
        return None   # shared references, or an empty array somewhere
    if sum(f.array.nbytes for f in flat.fields) > MAX_BYTES:
        return None
    leaf_at = {id(leaf[0]): i for i, leaf in enumerate(flat.leaves)}
    field_of = {id(f.node): f for f in flat.fields}
    found = []
    spec = _spec(state, root, leaf_at, field_of, found, 0)
    if spec is None or len(found) != len(flat.leaves):
        return None
    p = Plan()
    p.spec, p.leaves, p.fields, p.fs = spec, list(flat.leaves), list(flat.fields), fs
    p.root, p.format, p.root_text = root, S.format_of(root), root_text
    p.extra_text = p.struct_words = None
    p.last_tree = None   # (extra text, plain values, description, its hash) of the last save
    return p


def _spec(value, node, leaf_at, field_of, found, depth):
    t = type(value)
    if t is dict:
        if depth > MAX_DEPTH or node.get("t") != "dict" or "k" not in node:
            return None
        items = node["k"]
        if len(items) != len(value) or any(type(k) is not str for k in value):
            return None
        subs = []
        for (_, child), v in zip(items, value.values()):
            s = _spec(v, child, leaf_at, field_of, found, depth + 1)
            if s is None:
                return None
            subs.append(s)
        return (_DICT, tuple(value), tuple(subs))
    if t in _ATOMS:
        i = leaf_at.get(id(node))
        if i is None:
            return None
        found.append(i)
        return (_ATOM, t, i)
    if value is None:
        return (_NONE,)
    if t is np.ndarray:
        f = field_of.get(id(node))
        if f is None or f.kind != "per_rank" or value.size == 0:
            return None
        if _layout(f.array)[0] != _layout(value)[0]:
            return None   # copied for the core (strided, byte-swapped): not the user's memory
        return (_ARRAY, value, _layout(value))
    if t is S.Distributed:
        f = field_of.get(id(node))
        local = value.local
        if f is None or type(local) is not np.ndarray or local.size == 0:
            return None
        if f.memory_offset is None and _layout(f.array)[0] != _layout(local)[0]:
            return None   # copied for the core
        return (_DIST, _layout(local), value.offset, value.global_shape, _grid_key(value.grid))
    return None


def _match(value, spec, encs) -> bool:
    kind = spec[0]
    if kind == _DICT:
        if type(value) is not dict or tuple(value) != spec[1]:
            return False
        if any(type(k) is not str for k in value):
            return False
        for v, s in zip(value.values(), spec[2]):
            if not _match(v, s, encs):
                return False
        return True
    if kind == _ATOM:
        if type(value) is not spec[1]:
            return False
        encs[spec[2]] = value   # exact bool/int/float/str: encoded as itself (see _state)
        return True
    if kind == _NONE:
        return value is None
    if kind == _ARRAY:
        return value is spec[1] and _layout(value) == spec[2]
    # _DIST
    return (type(value) is S.Distributed and type(value.local) is np.ndarray
            and _layout(value.local) == spec[1] and value.offset == spec[2]
            and value.global_shape == spec[3] and _grid_key(value.grid) == spec[4])
