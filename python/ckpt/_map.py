"""ck.map: a parallel map whose results are checkpointed item by item."""

from __future__ import annotations

import hashlib
import os
import shutil
import types

import numpy as np
from mpi4py import MPI

from . import _api
from . import _state as S
from ._errors import CheckpointError, make_error

_ITEMS = "items"


def _code_digest(code: types.CodeType, h) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    h.update(repr(code.co_varnames).encode())
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            _code_digest(c, h)
        else:
            h.update(repr(c).encode())


def function_id(fn) -> bytes:
    """Identity of a function: its qualified name and its code (bytecode, constants, names,
    nested functions), not its position in the file."""
    h = hashlib.blake2b(digest_size=16)
    target = fn
    while hasattr(target, "func") and hasattr(target, "args"):  # functools.partial
        h.update(b"partial")
        h.update(item_digest((list(target.args), dict(target.keywords or {}))))
        target = target.func
    h.update(f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', repr(target))}"
             .encode())
    code = getattr(target, "__code__", None)
    if code is not None:
        _code_digest(code, h)
    defaults = getattr(target, "__defaults__", None)
    if defaults:
        h.update(item_digest(list(defaults)))
    return h.digest()


def item_digest(item) -> bytes:
    """Digest of an item's value (as ckpt would store it: data only)."""
    flat = S.Flat()
    node = S.flatten({"item": item}, [], [], flat, False)
    h = hashlib.blake2b(digest_size=16)
    for leaf, _, enc, _ in flat.leaves:
        leaf["v"] = enc
    h.update(S.dumps(node).encode())
    for f in flat.fields:
        a = np.ascontiguousarray(f.array)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.digest()


def map(fn, items, path, comm=None) -> list:
    """``[fn(x) for x in items]`` computed in parallel over the ranks of ``comm`` (default
    MPI.COMM_WORLD), each result saved under ``path`` as soon as it is computed. A rerun
    computes only the items that have no saved result. A result is keyed by the function
    (name and code) and the item's value, so changing the function or some items
    recomputes exactly what no longer matches. Results must be savable values (see
    ckpt.save). Returns the list of results on every rank. Collective over comm.
    """
    comm = MPI.COMM_WORLD if comm is None else comm
    items = list(items)
    path = os.fspath(path)
    root = os.path.join(path, _ITEMS)

    def keys_of():
        fid = function_id(fn)
        return [hashlib.blake2b(fid + item_digest(x), digest_size=16).hexdigest() for x in items]

    keys = _api._run(comm, keys_of)
    unique = list(dict.fromkeys(keys))
    owner = {k: j % comm.size for j, k in enumerate(unique)}
    _api._on_root(comm, lambda: os.makedirs(root, exist_ok=True))

    def load_one(key):
        try:
            st = _api.load(MPI.COMM_SELF, os.path.join(root, key), _quiet=True)
        except CheckpointError as e:
            if e.code in ("no_valid_checkpoint", "corrupt", "io", "hdf5"):
                return None
            raise
        return st

    def compute_mine():
        done = {}
        for k in unique:
            if owner[k] != comm.rank:
                continue
            st = load_one(k)
            if st is None or "result" not in st:
                r = fn(items[keys.index(k)])
                _api.save(MPI.COMM_SELF, {"result": r}, os.path.join(root, k), step=0, keep=1,
                          _quiet=True)
                # What every rank gets is what a rerun would load: the saved data.
                st = load_one(k)
                if st is None:
                    raise make_error("io", -1, f"map: the result just saved in "
                                     f"{os.path.join(root, k)} cannot be read back")
            done[k] = st["result"]
        return done

    mine = _api._run(comm, compute_mine)
    # Each item's directory is locked by the rank that owns it, so the other ranks get the
    # results in memory (mpi4py's allgather of the loaded data) instead of reading the files.
    results = {}
    for part in comm.allgather(mine):
        results.update(part)
    out = [results[k] for k in keys]

    def prune():
        # Results of items or functions that no longer match are invalid: remove them.
        keep = set(unique)
        for name in os.listdir(root):
            if name not in keep and len(name) == 32:
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)

    _api._on_root(comm, prune)
    return out
