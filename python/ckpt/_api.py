"""ck.save / ck.load / ck.Checkpointer over the C++ core."""

from __future__ import annotations

import atexit
import collections
import contextlib
import hashlib
import json
import math
import os
import sys
import weakref

import numpy as np
from mpi4py import MPI

from . import _ckpt
from . import _objects as O
from . import _plan
from . import _state as S
from ._loops import _Position
from ._errors import CheckpointError, UnsupportedValueError, make_error

EXIT_MORE_WORK = _ckpt.EXIT_MORE_WORK

# Error codes that mean "this checkpoint is damaged, try an older one" (as in the core).


def default_path(path) -> str:
    if path is not None:
        return os.fspath(path)
    return os.environ.get("CKPT_DIR") or "checkpoints"


@contextlib.contextmanager
def _env_removed(names):
    """Explicit arguments of ck.save/ck.load win over CKPT_* variables (the core lets the
    environment win, which is right for the Checkpointer class but not for a call that
    names its directory)."""
    saved = {n: os.environ.pop(n) for n in names if n in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _check_comm(comm):
    if not isinstance(comm, MPI.Comm):
        raise TypeError("ckpt: comm must be an mpi4py.MPI.Comm (e.g. MPI.COMM_WORLD), got "
                        f"{type(comm).__name__}")
    if comm == MPI.COMM_NULL:
        raise ValueError("ckpt: comm is MPI.COMM_NULL")


def agree(comm, exc: BaseException | None):
    """Collective: if any rank failed, every rank raises (the first failing rank's error),
    so no rank is left waiting in a later collective."""
    bad = comm.rank if exc is not None else comm.size
    first = comm.allreduce(bad, op=MPI.MIN)
    if first == comm.size:
        return
    _raise_first(comm, first, exc)


def _raise_first(comm, first: int, exc: BaseException | None):
    """Collective, after every rank learned that rank `first` is the lowest that failed:
    every rank raises that rank's error (it is broadcast from there)."""
    if comm.rank == first:
        if isinstance(exc, CheckpointError):
            payload = (exc.code, exc.detail, isinstance(exc, UnsupportedValueError))
        else:
            payload = ("internal", f"{type(exc).__name__}: {exc}", False)
    else:
        payload = None
    code, detail, unsupported = comm.bcast(payload, root=first)
    if comm.rank == first:
        if isinstance(exc, CheckpointError) and exc.rank < 0:
            # Give the local error its rank prefix like the core's messages.
            raise make_error(exc.code, first, exc.detail, type(exc)) from None
        raise exc
    raise make_error(code, first, detail,
                     UnsupportedValueError if unsupported else CheckpointError)


def _run(comm, fn, *args):
    """fn(*args) on every rank, then agree on success."""
    result, exc = None, None
    try:
        result = fn(*args)
    except Exception as e:  # noqa: BLE001 - agreed on and re-raised below
        exc = e
    agree(comm, exc)
    return result


def _on_root(comm, fn, *args):
    """fn(*args) on rank 0 only, agree, broadcast the result."""
    result, exc = None, None
    if comm.rank == 0:
        try:
            result = fn(*args)
        except Exception as e:  # noqa: BLE001
            exc = e
    agree(comm, exc)
    return comm.bcast(result, root=0)


# --------------------------------------------------------------------------------------
# save
#
# What a save needs agreed beyond what the core checks itself (its block-table gather
# compares every rank's field names, kinds, dtypes and shapes, and the replicated values)
# is agreed in ONE all-reduce of a few words (_prepare): whether a rank failed to encode
# its state, a hash of the state's structure (keys, types, dtypes: the description without
# values), a hash of the whole description with every plain value inline, whether an array
# is empty on some rank, whether a cached core session must be (re)opened, and rank 0's
# next step number. Only when some plain values differ between ranks, or an array is empty
# somewhere, does a second all-reduce of per-value hashes follow; errors take more
# collectives to tell every rank the same message.

_INT64_MAX = np.iinfo(np.int64).max


def _hash2(data: bytes) -> tuple[int, int]:
    """Two 62-bit words of a 128-bit hash: `x` and `-x` both fit an int64, so one MIN
    all-reduce gives every rank the minimum and the maximum (equal on all ranks iff min ==
    max)."""
    d = hashlib.blake2b(data, digest_size=16).digest()
    return (int.from_bytes(d[:8], "little", signed=True) >> 2,
            int.from_bytes(d[8:], "little", signed=True) >> 2)


def _min_max_words(words) -> list[int]:
    out = list(words)
    out.extend(-w for w in words)
    return out


def _all_equal(buf, at: int, n: int) -> bool:
    """After a MIN all-reduce of _min_max_words(w) (n words) placed at `at`."""
    return all(buf[at + i] == -buf[at + n + i] for i in range(n))


def _field_set(fields):
    fs = _ckpt.FieldSet()
    for f in fields:
        f.register(fs)
    return fs


class _Prepared:
    """A state encoded for one save: the core's field set (arrays handed without copies),
    the description (JSON) and what the agreement told every rank. ``shared_fs``: the field
    set belongs to a kept plan (a save must not add fields to it)."""
    __slots__ = ("fs", "tree", "fields", "step", "stale", "shared_fs")


class _PlanSlot:
    """Where a Checkpointer or a ck.save session keeps the plan of its last save."""
    __slots__ = ("plan",)

    def __init__(self):
        self.plan = None


def _flatten_full(state, extra):
    """The full path: flatten the state. Returns (flat, root, text of the description
    without values, structure bytes, description with the values inline)."""
    flat = S.Flat()
    with S.deep_recursion("save"):
        root = S.flatten(state, [], [], flat, False)
        # The description has no values yet: what every rank must have the same.
        root_text = S.dumps(root)
        struct = f"[{root_text},{S.dumps(extra)}]".encode()   # == dumps([root, extra])
        # Assume every plain value is the same on all ranks (checked below, with the
        # whole description): then this is the description rank 0 writes.
        for node, _, enc, _ in flat.leaves:
            node["v"] = enc
        doc = {"ckpt_python": S.format_of(root), "root": root}
        doc.update(extra or {})
        tree = S.dumps(doc)
    flat.memo.clear()   # the plan must not keep the user's objects alive
    return flat, root, root_text, struct, tree


def _same_values(a, b) -> bool:
    """Whether two lists of plain values (bool, int, float, str, of the planned types)
    encode to the same JSON: equal, and for floats also the same sign of zero."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x != y or (type(x) is float and x == 0.0 and math.copysign(1.0, x) != math.copysign(1.0, y)):
            return False
    return True


def _flatten_planned(plan, encs, extra):
    """The fast path, for a state that matches `plan`: the planned description with this
    save's plain values. Returns what _flatten_full does, the structure's hash words and
    the description's (the same text and hash as the previous save when its plain values
    and `extra` are the same)."""
    flat = S.Flat()
    flat.fields = plan.fields
    flat.leaves = [(n, p, e, f) for (n, p, _, f), e in zip(plan.leaves, encs)]
    for node, _, enc, _ in flat.leaves:
        node.pop("r", None)   # a value that differed between ranks at an earlier save
        node["v"] = enc
    extra_text = S.dumps(extra)
    struct = f"[{plan.root_text},{extra_text}]".encode()
    if plan.extra_text != extra_text:
        plan.extra_text, plan.struct_words = extra_text, _hash2(struct)
    last = plan.last_tree
    if last is not None and last[0] == extra_text and _same_values(last[1], encs):
        tree, tree_words = last[2], last[3]
    else:
        doc = {"ckpt_python": plan.format, "root": plan.root}
        doc.update(extra or {})
        tree = S.dumps(doc)
        tree_words = _hash2(tree.encode())
        plan.last_tree = (extra_text, list(encs), tree, tree_words)
    return flat, plan.root, plan.root_text, struct, tree, plan.struct_words, tree_words


def _prepare(comm, state, extra: dict | None = None, probe=None,
             slot: _PlanSlot | None = None) -> _Prepared:
    """Collective: flatten the state, agree on its structure and on which plain values are
    equal on all ranks, and build the field set. ``extra``: more entries of the description
    (the Checkpointer's loop position), which must be equal on all ranks. ``probe()``: local,
    called on every rank before the agreement; returns (stale, step): whether this rank
    wants the cached core session reopened (any rank's wish is agreed), and on rank 0 the
    next step number (or None). ``slot``: the plan of the previous save; a state that
    matches it skips the flattening (each rank decides for itself: both paths give the same
    words), and a state saved the full way leaves its plan there."""
    size, rank = comm.size, comm.rank
    exc = None
    flat = root = fs = tree = struct = struct_words = tree_words = plan = None
    empty_here, stale, step = False, False, None
    try:
        if not isinstance(state, dict):
            raise make_error("invalid_argument", -1,
                             f"save: state must be a dict, got {type(state).__name__}",
                             UnsupportedValueError)
        plan = slot.plan if slot is not None else None
        encs = plan.match(state) if plan is not None else None
        if encs is not None:
            flat, root, root_text, struct, tree, struct_words, tree_words = _flatten_planned(
                plan, encs, extra)
            fs = plan.fs
        else:
            plan = None
            if slot is not None:
                slot.plan = None
            flat, root, root_text, struct, tree = _flatten_full(state, extra)
            struct_words = _hash2(struct)
            tree_words = _hash2(tree.encode())
            empty_here = any(f.array.size == 0 for f in flat.fields)
            if not empty_here:
                fs = _field_set(flat.fields)
        if probe is not None:
            stale, step = probe()
    except Exception as e:  # noqa: BLE001 - agreed on and re-raised below
        exc = e
        if slot is not None:
            slot.plan = None
    # [0] lowest failing rank, [1] -reopen, [2:6] structure, [6:10] description, [10] -empty
    # somewhere, [11] rank 0's next step.
    if exc is None:
        words = [size, -int(bool(stale))]
        words += _min_max_words(struct_words)
        words += _min_max_words(tree_words)
        words += [-int(empty_here)]
    else:
        words = [rank] + [0] * 10
    words.append(step if rank == 0 and step is not None else _INT64_MAX)
    buf = np.array(words, dtype=np.int64)
    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.MIN)
    first = int(buf[0])
    if first < size:
        _raise_first(comm, first, exc)
    if not _all_equal(buf, 2, 2):
        if slot is not None:
            slot.plan = None
        _structure_error(comm, struct)
    out = _Prepared()
    out.stale = bool(buf[1])
    out.step = None if buf[11] == _INT64_MAX else int(buf[11])
    any_empty = bool(buf[10])
    if slot is not None and plan is None and not any_empty:
        # Saved the full way: the next save of the same shape takes the fast path.
        slot.plan = _plan.make(state, flat, root, root_text, fs)
    fields = flat.fields
    if any_empty or not _all_equal(buf, 6, 2):
        fields, tree = _per_rank_values(comm, flat, root, extra)
        if any_empty:
            fs = None
    if fs is None:
        # An array was empty somewhere: the field set is built now, without the arrays that
        # are empty on every rank (agreed: this branch is taken on every rank).
        fs = _run(comm, _field_set, fields)
    elif len(fields) > len(flat.fields):
        # The per-rank values: a field set of this save only (a plan's set stays as it is).
        fs = _field_set(fields)
    out.shared_fs = slot is not None and slot.plan is not None and fs is slot.plan.fs
    out.fs, out.tree, out.fields = fs, tree, fields
    return out


def _structure_error(comm, struct: bytes):
    """Collective, when the structure hashes differ: the lowest rank whose structure differs
    from rank 0's, named in the same error on every rank."""
    sig = hashlib.blake2b(struct, digest_size=16).digest()
    ref_sig = comm.bcast(sig if comm.rank == 0 else None, root=0)
    differs = comm.allreduce(comm.rank if ref_sig != sig else comm.size, op=MPI.MIN)
    raise make_error("invalid_argument", differs,
                     f"save: the state on rank {differs} has different keys, value types, "
                     "array dtypes or dimensions than on rank 0; every rank must pass the "
                     "same structure (values may differ; sets of the same size, the same "
                     "objects shared)")


def _per_rank_values(comm, flat, root, extra):
    """Collective (one all-reduce): which plain values are equal on every rank (inline in
    the description) and which differ (one JSON list per rank in the per-rank field), and
    which arrays are empty on every rank (described in the tree instead of becoming
    zero-size datasets, which the core cannot write yet). Returns (fields, description)."""
    leaves = flat.leaves
    words = []
    for _, _, enc, _ in leaves:
        words += _min_max_words(_hash2(S.dumps(enc).encode()))
    for f in flat.fields:
        words.append(-int(f.array.size > 0))
        words += _min_max_words(_hash2(S.dumps(list(f.user_shape)).encode()))
    buf = np.array(words, dtype=np.int64)
    if len(buf):
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.MIN)
    same = [_all_equal(buf, 4 * i, 2) for i in range(len(leaves))]
    kept = []
    at = 4 * len(leaves)
    for f in flat.fields:
        nonempty, eq = bool(buf[at]), _all_equal(buf, at + 1, 2)
        at += 5
        if nonempty:
            kept.append(f)
            continue
        node = f.node
        dts = node["dtype"]
        ident = {k: node[k] for k in ("id",) if k in node}
        node.clear()
        node.update({"t": "emptyarray", "dtype": dts}, **ident)
        leaves.append((node, f.path, list(f.user_shape), f.kind == "replicated"))
        same.append(eq)
    per_rank_values = []
    for (node, path, enc, forced), eq in zip(leaves, same):
        if eq:
            node["v"] = enc
            continue
        node.pop("v", None)
        if forced:
            where = path if isinstance(path, str) else S.show_path(path)
            raise make_error("invalid_argument", -1,
                             f"save: {where} is inside ckpt.Replicated but differs "
                             "between ranks; store it without Replicated to keep one value "
                             "per rank")
        node["r"] = len(per_rank_values)
        per_rank_values.append(enc)
    fields = kept
    if per_rank_values:
        # Read-only is fine for a save: the core only reads it (and copies it when async).
        blob = np.frombuffer(S.dumps(per_rank_values).encode(), dtype=np.uint8)
        fields = kept + [S.FieldSpec(S.LOCAL_FIELD, "per_rank", blob, "per-rank values")]
    doc = {"ckpt_python": S.format_of(root), "root": root}
    doc.update(extra or {})
    with S.deep_recursion("save"):
        tree = S.dumps(doc)
    return fields, tree


def _save_with(core, prep: _Prepared, step, time):
    """Saves the prepared state through a core session (collective); the field set is
    handed to this save only."""
    tree = prep.tree
    if len(tree) <= S.MAX_INLINE_TREE:
        core.metadata(S.TREE_KEY, tree)
    else:
        if prep.shared_fs:   # a plan's field set: this save's own copy gets the tree
            prep.fs, prep.shared_fs = _field_set(prep.fields), False
        # The core only reads it (a read-only view of the encoded bytes, no copy).
        prep.fs.replicated(S.TREE_FIELD, np.frombuffer(tree.encode(), dtype=np.uint8))
        core.metadata(S.TREE_KEY, "@" + S.TREE_FIELD)
    # On return every rank sees the directory as rank 0 left it (pruned too): the core's
    # commit ends with an agreement that rank 0 enters after its last file operation.
    core.save(int(step), float(time), fields=prep.fs)


# --------------------------------------------------------------------------------------
# The core sessions of ck.save
#
# ck.save keeps one core session per communicator between calls, for the directory of
# its last call: opening one costs a communicator duplicate, the directory lock, a scan
# for stale temp files and the job's environment (SLURM) on every call otherwise. It is
# closed (1) when ck.save is called on that communicator with another directory, other
# options (keep) or another CKPT_* environment, or when rank 0 finds the directory (or
# its lock file) replaced; (2) before ck.load, a ck.Checkpointer or ck.release opens or
# names that directory in this process (the lock would refuse them); (3) after a failed
# save; (4) at exit. Whether to reopen is agreed in the save's one all-reduce, so all
# ranks open and close together. A session of ck.save has no save pending (every call
# waits for its commit), so closing it makes no MPI call but freeing its duplicated
# communicator. A session with node-local storage (CKPT_LOCAL_DIR) is not kept: closing it
# flushes the checkpoint to the directory (collectively), which ck.save does before it
# returns, as before.


class _SaveSession:
    __slots__ = ("comm", "key", "real", "ident", "core", "local", "plans")

    def close(self):
        core, self.core = self.core, None
        if self.plans is not None:
            self.plans.plan = None   # releases the arrays of the last save
        if core is not None:
            core.close()


_save_sessions: list[_SaveSession] = []


def _env_key() -> tuple:
    """The environment a core session reads when it opens (CKPT_*, SLURM_RESTART_COUNT)."""
    data = getattr(os.environ, "_data", None)
    if data is None:  # pragma: no cover - not CPython's os.environ
        data = {k.encode(): v.encode() for k, v in os.environ.items()}
    return tuple(sorted(kv for kv in data.items()
                        if kv[0][:5] == b"CKPT_" or kv[0] == b"SLURM_RESTART_COUNT"))


def _dir_ident(path: str):
    """The directory and its lock file as rank 0 sees them (None when missing)."""
    try:
        d = os.stat(path)
        lk = os.stat(os.path.join(path, ".lock"))
    except OSError:
        return None
    return d.st_dev, d.st_ino, lk.st_dev, lk.st_ino


def _session_for(comm) -> _SaveSession | None:
    for s in _save_sessions:
        if s.comm is comm:
            return s
    return None


def _drop(session: _SaveSession):
    if session in _save_sessions:
        _save_sessions.remove(session)
    session.close()


def _close_sessions_of(*paths):
    """Closes the cached ck.save sessions that hold one of these directories (local to this
    process; see above)."""
    if not _save_sessions:
        return
    reals = {os.path.realpath(p) for p in paths if p}
    for s in list(_save_sessions):
        if s.real in reals:
            _drop(s)


def _close_unreachable():
    """Closes the sessions of communicators that were freed, or that the program no longer
    references (only this list does): no later ck.save can name them again."""
    for s in list(_save_sessions):
        if s.comm == MPI.COMM_NULL or sys.getrefcount(s.comm) <= 2:
            _drop(s)


def release(path=None) -> None:
    """Closes the core session that ``ck.save`` keeps between calls for ``path`` (every
    such session when None), which frees its directory lock, so that another job can use
    the directory while this one goes on. Not needed otherwise: the next ``ck.save`` with
    another directory, ``ck.load`` and ``ck.Checkpointer`` of that directory, and the end
    of the program close it. Collective over the communicators that saved there."""
    if path is None:
        for s in list(_save_sessions):
            _drop(s)
    else:
        _close_sessions_of(os.fspath(path))


def save(comm, state: dict, path=None, *, step: int | None = None, keep: int | None = None,
         time: float = 0.0, _quiet=None) -> str:
    """Writes a checkpoint of ``state``. Collective over comm.

    ``path`` is the checkpoint directory (default ``$CKPT_DIR`` or ``./checkpoints``);
    ``step`` the step number (default: one past the newest checkpoint in the directory);
    ``keep`` how many checkpoints to keep (default 3, or ``$CKPT_KEEP``; 0 keeps all).
    Returns the path of the committed file. Raises CheckpointError.

    The core session (and the directory's lock) is kept for the next call on the same
    communicator and directory; see ``ck.release``.
    """
    _check_comm(comm)
    explicit = tuple(n for n, v in (("CKPT_DIR", path), ("CKPT_KEEP", keep)) if v is not None)
    path = default_path(path)
    key = (os.path.abspath(path), keep, _quiet, explicit, _env_key())
    session = _session_for(comm)

    def probe():
        stale = session is None or session.key != key
        if comm.rank == 0 and not stale:
            stale = _dir_ident(path) != session.ident
        next_step = None
        if step is None and comm.rank == 0:
            entries = _ckpt.list_checkpoints(path) if os.path.isdir(path) else []
            next_step = entries[0][0] + 1 if entries else 0
        return stale, next_step

    # The plan of the last save on this communicator (kept across a reopened session: it
    # describes the state, not the core session).
    slot = session.plans if session is not None else _PlanSlot()
    prep = _prepare(comm, state, probe=probe, slot=slot)
    if step is None:
        step = prep.step
    if int(step) < 0:
        raise make_error("invalid_argument", -1, f"save: step {step} is negative")
    if prep.stale:  # agreed: every rank (re)opens
        if session is not None:
            session.plans = None   # the plan goes on with the new session (it is `slot`)
            _drop(session)
        session = None
        _close_sessions_of(path)
        _close_unreachable()
        with _env_removed(explicit):
            core = _ckpt.Checkpointer(comm, path, keep=keep, signals=[], quiet=_quiet)
        session = _SaveSession()
        session.comm, session.key, session.core = comm, key, core
        session.plans = slot
        session.real = os.path.realpath(path)
        session.ident = _dir_ident(path) if comm.rank == 0 else None
        session.local = bool(core.options().get("local_dir"))
        _save_sessions.append(session)
    try:
        _save_with(session.core, prep, step, time)
        session.core.wait()  # with CKPT_MODE=async: committed (or its error raised) before returning
        if session.local:
            # Node-local storage (CKPT_LOCAL_DIR): closing the session flushes the checkpoint
            # to `path` (collective), which ck.save promises on return; not kept.
            _drop(session)
    except BaseException:
        _drop(session)  # the next call starts from a new session, as after any failure
        raise
    return os.path.join(path, _ckpt.checkpoint_file_name(int(step)))


# --------------------------------------------------------------------------------------
# load

_ALL = object()  # "load this subtree as it was saved"


# Nodes that enter the memo before their contents (a cycle back to them finds them).
_MUTABLE_FIRST = frozenset(("dict", "odict", "counter", "ddict", "list", "set", "deque", "obj"))


def _find_id(root, i):
    stack = [root]
    while stack:
        n = stack.pop()
        if isinstance(n, dict):
            if n.get("id") == i and n.get("t") != "ref":
                return n
            for k, v in n.items():
                if k in ("s", "k", "v", "kv", "d", "sl", "st") and isinstance(v, (dict, list)):
                    stack.append(v)
        elif isinstance(n, list):
            stack.extend(x for x in n if isinstance(x, (dict, list)))
    return None


class _Loader:
    def __init__(self, comm, info: dict, keep_wrappers: bool):
        self.rank, self.size = comm.rank, comm.size
        self.info = info
        self.file = info["path"]
        self.fields = {f["name"]: f for f in info["fields"]}
        self.nranks = info["nranks"]
        self.keep_wrappers = keep_wrappers
        self.specs: list[S.FieldSpec] = []
        self.local_needed_by = None
        self.local_values = None
        self.memo: dict = {}      # object id in the file -> the object built for it
        self.planned: dict = {}   # object id -> builder of its first node
        self.root = None

    def field(self, name, path):
        f = self.fields.get(name)
        if f is None:
            raise make_error("corrupt", -1, f"load: field '{name}' of {S.show_path(path)} is "
                             f"missing from {self.file}")
        return f

    def my_block(self, f):
        for b in f["blocks"]:
            if b["rank"] == self.rank:
                return b
        raise make_error("corrupt", -1, f"load: field '{f['name']}' has no block of rank "
                         f"{self.rank} in {self.file}")

    def rank_count_error(self, path, what, hint):
        return make_error("rank_count", -1,
                          f"load: {S.show_path(path)} is {what} saved by {self.nranks} ranks in "
                          f"{self.file}; this run has {self.size} ranks. {hint}")

    def build(self, node, like, path) -> S.Builder:
        t = node["t"]
        if t == "ref":
            return self.build_ref(node, path)
        i = node.get("id")
        if i is not None and i in self.planned:
            raise make_error("corrupt", -1, f"load: object {i!r} is defined twice in the state "
                             f"description of {self.file}")
        if i is not None:
            self.planned[i] = None   # being planned: a ref inside it finds it in the memo
        b = self.build1(node, like, path)
        if i is not None:
            if t not in _MUTABLE_FIRST:  # built after its contents: enter it in the memo then
                inner = b

                def b():
                    v = inner()
                    self.memo[i] = v
                    return v
            self.planned[i] = b
        same = node.get("is")
        if same is not None:   # a tuple reached again inside itself: the inner one is it
            contents = b

            def b():
                contents()
                return self.memo[same]
        return b

    def build_ref(self, node, path) -> S.Builder:
        i = node.get("id")
        if i not in self.planned:
            # Its first node was left out by like=: plan it now, where it is in the file.
            found = _find_id(self.root, i)
            if found is None:
                raise make_error("corrupt", -1, f"load: {S.show_path(path)} refers to object "
                                 f"{i!r}, which is not in the state description of {self.file}")
            self.planned[i] = self.build(found, _ALL, path)
        def ref():
            if i in self.memo:
                return self.memo[i]
            first = self.planned.get(i)
            if first is None:
                raise make_error("corrupt", -1, f"load: {S.show_path(path)} refers to object "
                                 f"{i!r} before it is built, in {self.file}")
            return first()
        return ref

    def find(self, name, kind, path):
        return O.find_class(name, kind, S.show_path(path), self.file)

    def build1(self, node, like, path) -> S.Builder:
        t = node["t"]
        i = node.get("id")
        if t in S._DICTS.values():
            return self.build_dict(node, like, path)
        if t in ("list", "tuple", "set", "frozenset", "deque", "nt"):
            vals = node["v"]
            if t == "nt":
                cls = self.find(node.get("cls"), "namedtuple", path)
                names = list(cls._fields)
                sub = [path + [S.Attr(n)] for n in names[:len(vals)]]
                sub += [path + [j] for j in range(len(sub), len(vals))]
                if len(names) != len(vals):
                    raise make_error("mismatch", -1,
                                     f"load: {S.show_path(path)} is a {O.default_name(cls)} of "
                                     f"{len(vals)} fields in {self.file}; the class has "
                                     f"{len(names)} ({', '.join(names)})")
            else:
                sub = [path + [j] for j in range(len(vals))]
            if isinstance(like, (list, tuple)) and len(like) == len(vals) and t != "set":
                bs = [self.build(v, lv, p) for v, lv, p in zip(vals, like, sub)]
            else:
                bs = [self.build(v, _ALL, p) for v, p in zip(vals, sub)]
            if t == "tuple":
                return lambda: tuple(b() for b in bs)
            if t == "frozenset":
                return lambda: frozenset(b() for b in bs)
            if t == "nt":
                return lambda: tuple.__new__(cls, [b() for b in bs])
            maxlen = node.get("maxlen")

            def make_seq():
                out = (list() if t == "list" else set() if t == "set"
                       else collections.deque(maxlen=None if maxlen is None else int(maxlen)))
                if i is not None:
                    self.memo[i] = out
                if t == "set":
                    out.update(b() for b in bs)
                else:
                    out.extend(b() for b in bs)
                return out
            return make_seq
        if t == "obj":
            return self.build_object(node, like, path)
        if t == "none":
            return lambda: None
        if t == "replicated":
            inner = self.build(node["s"], like.value if isinstance(like, S.Replicated) else like,
                               path)
            if self.keep_wrappers:
                return lambda: S.Replicated(inner())
            return inner
        if t == "array":
            return self.build_array(node, like, path)
        if t == "distributed":
            return self.build_distributed(node, like, path)
        if t == "generator":
            inner = self.build(node["s"], _ALL, path + ["<state>"])
            return lambda: S.make_generator(node["bitgen"], inner())
        if t == "randomstate":
            inner = self.build(node["s"], _ALL, path + ["<state>"])
            return lambda: S.make_randomstate(inner())
        if t == "random":
            inner = self.build(node["s"], _ALL, path + ["<state>"])
            return lambda: S.make_random(inner())
        if t == "emptyarray" and isinstance(like, S.Distributed):
            dt = S.safe_dtype(node["dtype"])

            def empty_block():
                a = like.local if isinstance(like.local, np.ndarray) else np.empty(like.shape, dt)
                return S.Distributed(a, like.offset, like.global_shape) if self.keep_wrappers else a
            return empty_block
        decode = S.decode_leaf
        if t == "enum":
            cls = self.find(node.get("cls"), "enum", path)

            def decode(n, enc):
                return O.decode_plain(n, enc, lambda name, kind: cls)
        if "v" in node:
            value = decode(node, node["v"])
            return lambda: value
        if "r" in node:
            if self.nranks != self.size:
                raise self.rank_count_error(
                    path, "a value that differs between ranks",
                    "Per-rank values load only on the same number of ranks: leave this key "
                    "out of like=, or store it as ckpt.Replicated if it is the same everywhere.")
            if self.local_needed_by is None:
                self.local_needed_by = path
            idx = int(node["r"])
            return lambda: decode(node, self.local_values[idx])
        raise make_error("corrupt", -1, f"load: unknown node {t!r} in {self.file}")

    def build_dict(self, node, like, path) -> S.Builder:
        t, i = node["t"], node.get("id")
        if "kv" in node:
            chosen = [(self.build(kn, _ALL, path + [f"<key {j}>"]), self.build(vn, _ALL, path + [j]))
                      for j, (kn, vn) in enumerate(node["kv"])]
        else:
            items = node["k"]
            if isinstance(like, dict):
                saved = dict((k, v) for k, v in items)
                chosen = []
                for k, lv in like.items():
                    if k not in saved:
                        raise make_error(
                            "missing_field", -1,
                            f"load: {S.show_path(path + [k])} (in like=) is not in {self.file}; "
                            f"it holds the keys {sorted(saved)}")
                    chosen.append((k, self.build(saved[k], lv, path + [k])))
            else:
                chosen = [(k, self.build(v, _ALL, path + [k])) for k, v in items]
        factory = None
        if t == "ddict":
            factory = O.find_factory(node.get("factory"), S.show_path(path), self.file)
        kv = "kv" in node

        def make_dict():
            out = (collections.defaultdict(factory) if t == "ddict" else
                   {"dict": dict, "odict": collections.OrderedDict,
                    "counter": collections.Counter}[t]())
            if i is not None:
                self.memo[i] = out
            for k, b in chosen:
                if kv:
                    out[k()] = b()
                else:
                    out[k] = b()
            return out
        return make_dict

    def build_attrs(self, node, like_attrs, path) -> S.Builder:
        if node.get("t") != "dict" or "k" not in node:
            raise make_error("corrupt", -1, f"load: bad attributes of {S.show_path(path)} in "
                             f"{self.file}")
        bs = [(k, self.build(v, like_attrs.get(k, _ALL) if like_attrs else _ALL,
                             path + [S.Attr(k)])) for k, v in node["k"]]
        return lambda: {k: b() for k, b in bs}

    def build_object(self, node, like, path) -> S.Builder:
        where = S.show_path(path)
        cls = self.find(node.get("cls"), "dataclass" if node.get("dc") else "class", path)
        i = node.get("id")
        like_attrs = None
        if type(like) is cls and isinstance(getattr(like, "__dict__", None), dict):
            like_attrs = like.__dict__
        bst = self.build(node["st"], _ALL, path) if "st" in node else None
        bd = self.build_attrs(node["d"], like_attrs, path) if "d" in node else None
        bsl = self.build_attrs(node["sl"], None, path) if "sl" in node else None

        def make_object():
            obj = O.new_object(cls, where)
            if i is not None:
                self.memo[i] = obj
            if bst is not None:
                O.set_state(obj, bst(), where)
            else:
                d = bd() if bd is not None else None
                sl = bsl() if bsl is not None else None
                if getattr(obj, "__setstate__", None) is not None:
                    obj.__setstate__((d, sl) if sl else d)
                else:
                    O.set_attrs(obj, d, sl)
            return obj
        return make_object

    def _target(self, like, shape, store_dt, dtype_str):
        """An array to restore into: `like` itself when it fits (in place), else new."""
        if (isinstance(like, np.ndarray) and like.shape == tuple(shape)
                and like.dtype == store_dt and like.dtype.str == S.safe_dtype(dtype_str).str
                and like.flags.c_contiguous and like.flags.writeable):
            return like
        return np.empty(shape, dtype=store_dt)

    def build_array(self, node, like, path) -> S.Builder:
        f = self.field(node["f"], path)
        store_dt = S.core_dtype(f["dtype"])
        if f["kind"] == "replicated":
            shape = tuple(f["shape"])
        else:
            if self.nranks != self.size:
                raise self.rank_count_error(
                    path, "a per-rank array",
                    "Per-rank arrays load only on the same number of ranks: store arrays that "
                    "should be resharded as ckpt.Distributed (or ckpt.Replicated).")
            shape = tuple(self.my_block(f)["local_shape"])
        arr = self._target(like, shape, store_dt, node["dtype"])
        self.specs.append(S.FieldSpec(f["name"], f["kind"], arr, S.show_path(path)))
        return lambda: S.from_storage(arr, node["dtype"])

    def build_distributed(self, node, like, path) -> S.Builder:
        f = self.field(node["f"], path)
        store_dt = S.core_dtype(f["dtype"])
        glob = tuple(node["global"])
        saved_shape = tuple(f["shape"])
        extra = len(saved_shape) - len(glob)
        where = S.show_path(path)
        if isinstance(like, S.Distributed):
            if like.global_shape != glob:
                raise make_error("mismatch", -1,
                                 f"load: {where} has global shape {glob} in {self.file}, but "
                                 f"the like= template says {like.global_shape}")
            offset, count = like.offset, like.shape
            for o, n, g in zip(offset, count, glob):
                if o < 0 or o + n > g:
                    raise make_error("invalid_argument", -1,
                                     f"load: {where}: template block at {offset} of shape {count} "
                                     f"lies outside the global shape {glob}")
            target = like.local if isinstance(like.local, np.ndarray) else None
        else:
            if self.nranks != self.size:
                raise self.rank_count_error(
                    path, "a distributed array",
                    "To load it on a different number of ranks, pass like= with a "
                    "ckpt.Distributed(local, offset, global_shape) template for this key that "
                    "gives this rank's new block.")
            mine = [b for b in f["blocks"] if b["rank"] == self.rank]
            if mine:
                offset = tuple(mine[0]["offset"][:len(glob)])
                count = tuple(mine[0]["count"][:len(glob)])
            else:  # this rank's block was empty (empty blocks are not listed)
                offset, count = (0,) * len(glob), (0,) * len(glob)
            target = None
        user_dt = S.safe_dtype(node["dtype"])
        result = None
        if target is not None:
            if target.dtype != user_dt or target.shape != tuple(count):
                raise make_error("mismatch", -1,
                                 f"load: {where} is {user_dt} in {self.file} but the like= "
                                 f"template array is {target.dtype} of shape {target.shape}")
            if not target.flags.writeable:
                raise make_error("invalid_argument", -1,
                                 f"load: {where}: the like= template array is read-only")
            if extra == 0 and target.dtype == store_dt:
                if target.flags.c_contiguous:
                    self.specs.append(S.FieldSpec(f["name"], "distributed", target, where,
                                                  list(glob), list(offset), list(count)))
                    result = target
                else:
                    g = S.ghost_layout(target)
                    if g is not None:
                        base, idx = g
                        self.specs.append(S.FieldSpec(f["name"], "distributed", base, where,
                                                      list(glob), list(offset), list(count), idx))
                        result = target
        if result is None:
            arr = np.empty(tuple(count) + (2,) * extra, dtype=store_dt)
            self.specs.append(S.FieldSpec(f["name"], "distributed", arr, where,
                                          list(saved_shape), list(offset) + [0] * extra,
                                          list(arr.shape)))

            def finish():
                out = S.from_storage(arr, node["dtype"])
                if target is not None:
                    np.copyto(target, out)
                    return target
                return out
        else:
            def finish():
                return result

        if self.keep_wrappers:
            return lambda: S.Distributed(finish(), offset, glob)
        return finish


def _read_tree(comm, info, quiet=None, core=None):
    meta = info["metadata"].get(S.TREE_KEY)
    if meta is None:
        # Not written by the Python bindings (a C/C++ application): every field at the top.
        items = []
        for f in info["fields"]:
            kind = f["kind"]
            if kind == "distributed":
                node = {"t": "distributed", "f": f["name"], "dtype": np.dtype(f["dtype"]).str,
                        "global": list(f["shape"])}
            else:
                node = {"t": "array", "f": f["name"], "dtype": np.dtype(f["dtype"]).str,
                        "kind": kind}
            items.append([f["name"], node])
        return {"ckpt_python": 1, "root": {"t": "dict", "k": items}}
    if meta.startswith("@"):
        f = next((x for x in info["fields"] if x["name"] == meta[1:]), None)
        if f is None:
            raise make_error("corrupt", -1, f"{info['path']}: field {meta[1:]} is missing")
        buf = np.empty(tuple(f["shape"]), dtype=np.uint8)
        own = core is None
        if own:
            core = _ckpt.Checkpointer(comm, os.path.dirname(info["path"]) or ".", signals=[],
                                      quiet=True)
        try:
            fs = _ckpt.FieldSet()
            fs.replicated(meta[1:], buf)
            core.read_from(info["path"], fs)   # part of the file: not "restored" yet
        finally:
            if own:
                core.close()
        meta = buf.tobytes().decode("utf-8")
    try:
        with S.deep_recursion("load"):
            doc = json.loads(meta)
    except ValueError as e:
        raise make_error("corrupt", -1, f"{info['path']}: the Python state description is not "
                         f"valid JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("ckpt_python") not in S.READ_FORMATS:
        raise make_error("unsupported_version", -1,
                         f"{info['path']}: Python state format "
                         f"{doc.get('ckpt_python') if isinstance(doc, dict) else doc!r} is not "
                         f"supported by this version (reads {', '.join(map(str, S.READ_FORMATS))});"
                         " upgrade ckpt")
    return doc


def _load_file(comm, info, like, keep_wrappers, quiet=None, core=None, doc_out=None):
    """Collective. The loaded state. With `core` (a Checkpointer's long-lived core object)
    the file is restored through it, else through a temporary one. doc_out (a dict)
    receives the description's entries other than the state."""
    doc = _read_tree(comm, info, core=core)
    root = doc["root"]
    if doc_out is not None:
        doc_out.clear()
        doc_out.update((k, v) for k, v in doc.items() if k not in ("ckpt_python", "root"))
    loader = _Loader(comm, info, keep_wrappers)
    loader.root = root

    def plan():
        with S.deep_recursion("load"):
            build = loader.build(root, like if like is not None else _ALL, [])
        if loader.local_needed_by is not None:
            f = loader.field(S.LOCAL_FIELD, loader.local_needed_by)
            blob = np.empty(tuple(loader.my_block(f)["local_shape"]), dtype=np.uint8)
            loader.specs.append(S.FieldSpec(S.LOCAL_FIELD, "per_rank", blob, "per-rank values"))
            loader.local_blob = blob
        return build

    build = _run(comm, plan)
    own = core is None
    if own:
        core = _ckpt.Checkpointer(comm, os.path.dirname(info["path"]) or ".", signals=[],
                                  quiet=quiet)
    try:
        def field_set():
            fs = _ckpt.FieldSet()
            for spec in loader.specs:
                spec.register(fs)
            return fs
        core.restore_from(info["path"], fields=_run(comm, field_set))
    finally:
        if own:
            core.close()

    def finish():
        if loader.local_needed_by is not None:
            loader.local_values = json.loads(loader.local_blob.tobytes().decode("utf-8"))
        with S.deep_recursion("load"):
            return build()

    return _run(comm, finish)


def _load(comm, path, step, like, keep_wrappers, quiet=None, core=None, doc_out=None):
    """Collective. (state, step, time) of the newest valid checkpoint, or None."""
    _check_comm(comm)
    if like is not None and not isinstance(like, dict):
        raise TypeError("ckpt.load: like= must be a dict (a state of templates)")
    path = default_path(path)
    if core is None:
        _close_sessions_of(path)  # a session ck.save kept there holds the directory's lock

    def listing():
        if not os.path.isdir(path):
            return []
        return _ckpt.list_checkpoints(path)

    if step is not None:
        entries = _on_root(comm, listing)
        chosen = [e for e in entries if e[0] == int(step)]
        if not chosen:
            raise make_error("invalid_argument", -1,
                             f"load: no checkpoint of step {step} in {path} (steps there: "
                             f"{[e[0] for e in entries] or 'none'})")
        info = _on_root(comm, _ckpt.inspect, chosen[0][1])
        state = _load_file(comm, info, like, keep_wrappers, quiet, core, doc_out)
        return state, info["step"], info["time"]

    # The core's restore-with-fallback decides what a failure means: damage sets the file
    # aside and the next older one is tried; an I/O error is raised and renames nothing.
    loaded = {}

    def restore_one(file):
        info = _on_root(comm, _ckpt.inspect, file)
        state = _load_file(comm, info, like, keep_wrappers, quiet, core, doc_out)
        loaded["r"] = (state, info["step"], info["time"])
        return info["step"]

    # A Checkpointer's node-local storage (its option); else CKPT_LOCAL_DIR.
    local_dir = core.options()["local_dir"] if core is not None else None
    if _ckpt.restore_newest(comm, path, restore_one, local_dir=local_dir) is None:
        return None
    return loaded["r"]


def load(comm, path=None, *, step: int | None = None, like: dict | None = None, _quiet=None):
    """Loads the newest valid checkpoint (or the one of ``step``) and returns its state, or
    None when the directory holds no checkpoint. Collective over comm.

    Damaged checkpoints are skipped (with a warning) and the next older one is used.
    ``like`` selects and shapes what is loaded: a dict mirroring the state in which
    ``ckpt.Distributed`` templates give this rank's new block (any rank count), arrays are
    filled in place when they fit, and only the keys present are loaded.
    Raises CheckpointError.
    """
    r = _load(comm, path, step, like, keep_wrappers=False, quiet=_quiet)
    return None if r is None else r[0]


def checkpoint_info(file) -> dict:
    """Metadata of one checkpoint file (local; no data is read)."""
    return _ckpt.inspect(os.fspath(file))


def list_checkpoints(path=None) -> list:
    """(step, file) of the committed checkpoints in ``path``, newest first (local)."""
    path = default_path(path)
    return [tuple(e) for e in _ckpt.list_checkpoints(path)] if os.path.isdir(path) else []


def verify(file) -> dict:
    """Reads every block of a checkpoint and checks its checksum (local)."""
    return _ckpt.verify(os.fspath(file))


# --------------------------------------------------------------------------------------
# Checkpointer


class StopReason(str):
    """Why ``steps()`` ended: "none" (running), "finished", "signal", "time_limit" or
    "requested". True in a boolean context only when the loop stopped early after a
    checkpoint, so ``if cp.stopped: sys.exit(cp.exit_code)``."""

    def __bool__(self):
        return self in ("signal", "time_limit", "requested")


class Stopped(BaseException):
    """Raised by ``Checkpointer.loop``/``phase`` (without exit_on_stop) after the stop
    checkpoint, so that every enclosing loop ends at once; ``reason`` is the StopReason.
    A BaseException like SystemExit, so that ``except Exception`` does not catch it."""

    def __init__(self, reason):
        super().__init__(f"ckpt: stopped ({reason}); the checkpoint is durable")
        self.reason = StopReason(reason)
        self.exit_code = EXIT_MORE_WORK


class Checkpointer:
    """A checkpointed main loop.

    >>> cp = ck.Checkpointer(comm, "run", every=100)
    >>> state = cp.restore({"u": ck.Distributed(u, offset, shape), "t": 0.0})
    >>> for step in cp.steps(nsteps):
    ...     advance(state)
    >>> sys.exit(cp.exit_code)

    ``every`` (steps), ``seconds`` and ``keep`` are the core's policy; the CKPT_*
    environment wins over them (CKPT_EVERY, CKPT_SECONDS, CKPT_KEEP, CKPT_DIR, ...). Stop
    signals (SIGUSR1, SIGTERM by default) and the job's time limit make the loop save and
    end early. With ``exit_on_stop=True`` the loop then exits the program with status
    ckpt.EXIT_MORE_WORK (75) on every rank (``SystemExit``), which is what a batch script
    wants: the job is requeued and resumes. ``local_dir`` (CKPT_LOCAL_DIR) puts every
    checkpoint on node-local storage with a copy on a partner node, and ``flush_every``
    (CKPT_FLUSH_EVERY) flushes every K-th to ``path`` (a stop and the end always do; see
    docs/user-guide.md). Collective over comm.
    """

    def __init__(self, comm, path=None, every: int | None = None, seconds: float | None = None,
                 keep: int | None = None, *, final: bool = True, mode: str | None = None,
                 exit_on_stop: bool = False, local_dir: str | None = None,
                 flush_every: int | None = None):
        _check_comm(comm)
        self.exit_on_stop = exit_on_stop
        self.comm = comm
        self._args = dict(every=int(every or 0), seconds=float(seconds or 0.0), keep=keep,
                          final=final, mode=mode,
                          local_dir=None if local_dir is None else os.fspath(local_dir),
                          flush_every=flush_every)
        self._dir = default_path(path)
        # A session that ck.save kept for this directory holds its lock (CKPT_DIR wins).
        _close_sessions_of(self._dir, os.environ.get("CKPT_DIR"))
        self._core = self._new_core()
        self._plans = _PlanSlot()   # the plan of the last save (see _plan.py)
        _live.add(self)
        opts = self._core.options()
        self.path: str = opts["dir"]
        self.keep: int = opts["keep"]
        self.final: bool = opts["final"]
        self._mode = opts["mode"]
        self.state: dict | None = None
        self.step: int = 0
        self.time: float = 0.0
        self.restored_step: int | None = None
        self._stopped = StopReason("none")

    def _new_core(self):
        # One core session for the Checkpointer's whole life: it holds the directory lock,
        # the policy history (every=auto, the time-limit margin), the staging memory and the
        # async writer. Each save and restore hands it the state's field set anew.
        return _ckpt.Checkpointer(self.comm, self._dir, **self._args)

    def restore(self, default_state: dict) -> dict:
        """Loads the newest valid checkpoint into a state shaped like ``default_state``
        (Distributed templates give the new decomposition, arrays that fit are filled in
        place), or keeps ``default_state`` when there is none. Returns the live state:
        ``steps()`` saves this dict, so update it (or the arrays in it) in the loop.
        Collective over comm."""
        if not isinstance(default_state, dict):
            raise TypeError("ckpt.Checkpointer.restore: default_state must be a dict")
        self._core.wait()  # an async save in flight is committed first
        r = _load(self.comm, self.path, None, default_state, keep_wrappers=True,
                  core=self._core, doc_out=self._reset_position())
        if r is None:
            self.state, self.step, self.restored_step = default_state, 0, None
        else:
            self.state, self.step, self.time = r
            self.restored_step = self.step
        return self.state

    def save(self, step: int | None = None) -> str:
        """Saves the live state now (collective)."""
        if self.state is None:
            raise make_error("invalid_argument", -1,
                             "Checkpointer.save: call restore(default_state) first")
        step = self.step if step is None else int(step)
        prep = _prepare(self.comm, self.state, self._position_doc(), slot=self._plans)
        # The core waits for an async save still in flight (commits it or raises its error)
        # before this one; this one's write then overlaps the next steps.
        _save_with(self._core, prep, step, self.time)
        return os.path.join(self.path, _ckpt.checkpoint_file_name(step))

    def steps(self, total: int):
        """Yields the steps from the restored one (or 0) to ``total - 1``. After each step it
        saves per policy, at the end (unless final=False), and before ending early when a
        stop is requested (signal, time limit, request_stop()). Collective over comm."""
        if self.state is None:
            raise make_error("invalid_argument", -1,
                             "Checkpointer.steps: call restore(default_state) first")
        if self.position:
            raise make_error("invalid_argument", -1, "Checkpointer.steps: not inside "
                             "cp.loop/cp.phase; use cp.loop(name, n) for nested loops")
        total = int(total)
        self._stopped = StopReason("none")
        step = self.step
        core, save = self._core, self.save   # looked up once: this loop runs every step
        while step < total:
            yield step
            step += 1
            self.step = step
            # The core's step boundary (the same for C, C++ and Python): policy, save (by
            # self.save, which passes self.time), and on a stop or at the end a durable
            # commit before we are told.
            reason = core.after_step(step, step >= total, save)
            if reason == "finished":
                break
            if reason != "none":
                self._announce_stop(step, reason)
                return
        self._stopped = StopReason("finished")

    def _announce_stop(self, step, reason):
        """After the core's after_step reported a stop (its checkpoint is durable, the stop
        request cleared and logged): records it; with exit_on_stop, exits
        (SystemExit(75))."""
        self._stopped = StopReason(reason)
        if self.exit_on_stop:
            sys.stdout.flush()
            raise SystemExit(EXIT_MORE_WORK)

    # ----------------------------------------------------------------------------------
    # Nested loops and phases: the position (which loops are running at which index,
    # which phases and loops are done) is saved with the state, in the description's
    # "position" entry, and restored with it.

    def loop(self, name: str, n: int):
        """A checkpointed loop that may be nested: ``for sweep in cp.loop("sweep", 8): for t
        in cp.loop("t", 10000): ...``. Yields the indices 0..n-1, or, after a restore, from
        the saved index on; a loop that was done when the checkpoint was saved yields
        nothing. The policy counts the steps of the innermost loops (an iteration that
        runs no nested loop or phase is one step; ``cp.step`` counts them all). A stop
        (signal, time limit, request_stop()) checkpoints after the current step and ends
        every loop: with exit_on_stop=True the program exits with status 75, otherwise
        ``ck.Stopped`` is raised (catch it outside the loops). Names must differ between
        the loops and phases of one iteration of the enclosing loop. Collective."""
        return self._iterate(str(name), int(n), False)

    def phase(self, name: str):
        """A named phase that runs once: ``for _ in cp.phase("spin-up"): ...`` runs the body,
        unless a restored checkpoint was saved after the phase was done (then the body is
        skipped). (A ``with`` block cannot be skipped in Python, hence the one-pass
        ``for``.) A phase that runs no loop inside counts as one step for the policy; a
        stop lands at its end. Phases may hold loops and nest in loops (their completion is
        then recorded per iteration of the enclosing loop). Collective."""
        return self._iterate(str(name), 1, True)

    @property
    def position(self) -> tuple:
        """The running loops and phases, outermost first, as (name, index) pairs (a phase's
        index is 0)."""
        pos = self.__dict__.get("_pos")
        return tuple((f.name, f.i) for f in pos.frames) if pos is not None else ()

    @property
    def restored_position(self) -> dict | None:
        """The position saved in the restored checkpoint: ``{"done": [names done at the
        top level], "stack": [{"name", "i", "done"}, ...]}`` (outermost first: the index
        each loop was at and what was done inside it), or None."""
        return (self.__dict__.get("_saved_doc") or {}).get("position")

    def _reset_position(self) -> dict:
        """Called by restore(): forget the loops; returns the dict that receives the
        restored description's extra entries."""
        self._pos = None
        self._saved_doc = {}
        return self._saved_doc

    def _position_doc(self) -> dict | None:
        pos = self.__dict__.get("_pos")
        return None if pos is None else {"position": pos.doc()}

    def _iterate(self, name, n, is_phase):
        if self.state is None:
            raise make_error("invalid_argument", -1,
                             f"Checkpointer.{'phase' if is_phase else 'loop'}: call "
                             "restore(default_state) first")
        pos = self.__dict__.get("_pos")
        if pos is None:
            pos = self._pos = _Position(self.restored_position)
        frame = pos.enter(name, n, is_phase)
        if frame is None:
            return   # done before the checkpoint was saved
        self._stopped = StopReason("none")
        completed = False
        try:
            while frame.i < n:
                yield None if is_phase else frame.i
                leaf = not frame.nonleaf
                frame.next_iteration()
                if frame.i >= n:
                    pos.leave(frame)
                    completed = True
                if leaf:
                    self._leaf_step(pos)
            if not completed:
                pos.leave(frame)
                completed = True
            if not pos.frames:
                # The end of a top-level loop or phase: the final checkpoint.
                if self.final and self._core.saved_step != self.step:
                    self.save(self.step)
                self._core.wait()
                self._stopped = StopReason("finished")
        except GeneratorExit:   # break out of the loop: it is over
            if not completed and not pos.halted:
                pos.leave(frame)
            raise

    def _leaf_step(self, pos):
        self.step += 1
        step = self.step
        # The core's step boundary: policy, save, and on a stop a durable commit.
        reason = self._core.after_step(step, False, self.save)
        if reason not in ("none", "finished"):
            pos.halted = True
            self._announce_stop(step, reason)
            raise Stopped(reason)

    def request_stop(self) -> None:
        """Asks the loop to checkpoint and stop at the next step boundary (local,
        async-signal-safe)."""
        self._core.request_stop()

    @property
    def stopped(self) -> StopReason:
        """Why ``steps()`` ended, as a StopReason: true only when it stopped early after a
        checkpoint (signal, time limit or request stop())."""
        return self._stopped

    @property
    def exit_code(self) -> int:
        """0 when the loop finished, ckpt.EXIT_MORE_WORK (75) when it stopped early."""
        return EXIT_MORE_WORK if self._stopped else 0

    def stats(self) -> dict:
        """Save statistics of this rank's current core object: ``saves``, ``bytes``,
        ``seconds``, ``last_seconds``, ``last_bytes``, ``last_step``. Local."""
        return self._core.stats()

    def close(self) -> None:
        """Commits a pending async save and frees the core object and the directory lock
        (collective); also done at exit and when garbage collected."""
        _live.discard(self)
        try:
            self._core.wait()
        finally:
            self._core.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# Checkpointers still open at exit are closed before mpi4py finalizes MPI (atexit runs
# handlers last-registered first; mpi4py registered its own when it was imported), so a
# pending async save is committed.
_live: "weakref.WeakSet[Checkpointer]" = weakref.WeakSet()


@atexit.register
def _close_all():
    for cp in list(_live):
        try:
            cp.close()
        except Exception as e:  # noqa: BLE001 - exiting anyway; say why the save is missing
            print(f"ckpt: warning: closing a Checkpointer at exit failed: {e}", file=sys.stderr)
    # The sessions ck.save kept (nothing pending in them: each call waited for its commit).
    for s in list(_save_sessions):
        try:
            _drop(s)
        except Exception as e:  # noqa: BLE001
            print(f"ckpt: warning: closing the session of ck.save at exit failed: {e}",
                  file=sys.stderr)
