"""ck.save keeps its core session (and the directory lock) between calls on one
communicator and directory; it is closed when the directory changes, before ck.load or a
ck.Checkpointer opens that directory in this process, by ck.release, when the directory was
replaced or the CKPT_* environment changed, and at exit. Arrays reach the core without
copies. (The collectives of a save are counted by test_save_collectives.py.)"""

import errno
import fcntl
import os
import shutil
import sys

import numpy as np
import pytest
from mpi4py import MPI

import ckpt as ck
from ckpt import _api, _ckpt

from conftest import sub_comm


def state(comm, k):
    u = np.full((2, 3), float(k)) + comm.rank
    return {"u": ck.Distributed(u, (2 * comm.rank, 0), (2 * comm.size, 3)), "k": k}


def lock_held(d) -> bool:
    """Whether this process (or another) holds the directory lock of d (rank 0 holds it)."""
    fd = os.open(os.path.join(d, ".lock"), os.O_RDWR)
    try:
        # A POSIX record lock conflicts with the core's OFD lock, also in the same process.
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        assert e.errno in (errno.EACCES, errno.EAGAIN)
        return True
    finally:
        os.close(fd)
    return False


def test_session_kept_and_released(comm, shared_dir):
    a, b = os.path.join(shared_dir, "a"), os.path.join(shared_dir, "b")
    ck.save(comm, state(comm, 1), a)
    ck.save(comm, state(comm, 2), a)
    if comm.rank == 0:
        assert lock_held(a)          # kept for the next call
    ck.save(comm, state(comm, 1), b)  # another directory: a's session is closed
    if comm.rank == 0:
        assert not lock_held(a) and lock_held(b)
    ck.release(b)
    if comm.rank == 0:
        assert not lock_held(b)
    ck.save(comm, state(comm, 2), b)  # opens a new one
    assert [s for s, _ in ck.list_checkpoints(b)] == [1, 0]
    ck.release()
    if comm.rank == 0:
        assert not lock_held(b)


def test_load_and_checkpointer_after_save(comm, shared_dir):
    for k in range(3):
        ck.save(comm, state(comm, k), shared_dir)
    assert ck.load(comm, shared_dir)["k"] == 2          # closes the kept session first
    f = ck.save(comm, state(comm, 7), shared_dir)       # step: one past the newest
    assert f.endswith(_ckpt.checkpoint_file_name(3))
    cp = ck.Checkpointer(comm, shared_dir)              # the lock is free for it
    st = cp.restore(state(comm, 0))
    assert st["k"] == 7 and cp.step == 3
    with pytest.raises(ck.CheckpointError) as e:        # the Checkpointer holds the lock
        ck.save(comm, state(comm, 8), shared_dir)
    assert e.value.code == "locked"
    cp.close()
    ck.save(comm, state(comm, 8), shared_dir)
    assert [s for s, _ in ck.list_checkpoints(shared_dir)] == [4, 3, 2]
    ck.release(shared_dir)


def test_directory_replaced_between_saves(comm, shared_dir):
    d = os.path.join(shared_dir, "run")
    ck.save(comm, state(comm, 1), d)
    ck.save(comm, state(comm, 2), d)
    comm.Barrier()
    if comm.rank == 0:
        shutil.rmtree(d)
    comm.Barrier()
    f = ck.save(comm, state(comm, 3), d)  # rank 0 sees it gone: every rank reopens
    assert f.endswith(_ckpt.checkpoint_file_name(0)) and os.path.exists(f)
    assert ck.load(comm, d)["k"] == 3


def test_environment_change_reopens(comm, shared_dir, monkeypatch):
    for k in range(3):
        ck.save(comm, state(comm, k), shared_dir)
    assert len(ck.list_checkpoints(shared_dir)) == 3
    monkeypatch.setenv("CKPT_KEEP", "1")    # read when a session opens
    ck.save(comm, state(comm, 3), shared_dir)
    assert [s for s, _ in ck.list_checkpoints(shared_dir)] == [3]
    monkeypatch.delenv("CKPT_KEEP")
    ck.save(comm, state(comm, 4), shared_dir, keep=2)  # other options: reopened too
    ck.save(comm, state(comm, 5), shared_dir, keep=2)
    assert [s for s, _ in ck.list_checkpoints(shared_dir)] == [5, 4]
    ck.release()


def test_other_communicator_same_directory(comm, shared_dir):
    ck.save(comm, state(comm, 1), shared_dir)
    sub = sub_comm(1)   # rank 0 alone
    if sub != MPI.COMM_NULL:
        # The session kept for comm holds the lock on rank 0: it is closed first.
        assert ck.load(sub, shared_dir, like={"k": 0}) == {"k": 1}
        ck.save(sub, {"k": 2}, shared_dir)
        assert ck.load(sub, shared_dir) == {"k": 2}
        ck.save(sub, {"k": 3}, shared_dir)
        sub.Free()
    comm.Barrier()
    # Rank 0 has no session of comm any more, the others still have theirs: they agree to
    # reopen, and rank 0 closes the one of `sub` that holds the lock.
    f = ck.save(comm, state(comm, 9), shared_dir)
    assert f.endswith(_ckpt.checkpoint_file_name(3))
    assert ck.load(comm, shared_dir)["k"] == 9
    ck.release()


def test_failed_save_closes_session(comm, shared_dir):
    ck.save(comm, state(comm, 1), shared_dir, step=5)
    with pytest.raises(ck.CheckpointError):
        ck.save(comm, {"f": print}, shared_dir)   # refused before the core: session kept
    if comm.rank == 0:
        assert lock_held(shared_dir)
    gap = {"u": ck.Distributed(np.ones((1, 3)), (2 * comm.rank, 0), (2 * comm.size, 3))}
    with pytest.raises(ck.CheckpointError) as e:  # refused by the core: session closed
        ck.save(comm, gap, shared_dir)
    assert "do not tile" in str(e.value)
    if comm.rank == 0:
        assert not lock_held(shared_dir)
    ck.save(comm, state(comm, 3), shared_dir, step=6)
    assert ck.load(comm, shared_dir)["k"] == 3
    ck.release()


def test_arrays_reach_the_core_without_copies(comm):
    a = np.arange(12.0).reshape(3, 4)
    u = np.zeros((4, 5))
    r = np.arange(3, dtype=np.int32)
    prep = _api._prepare(comm, {"a": a, "g": ck.Distributed(u[1:-1, 1:-1], (2 * comm.rank, 0),
                                                            (2 * comm.size, 3)),
                                "r": ck.Replicated(r)})
    by_name = {f.name: f for f in prep.fields}
    assert by_name["a"].array is a                       # C-contiguous: the array itself
    assert by_name["g"].array is u and by_name["g"].memory_offset == [1, 1]  # the ghost view's base
    assert by_name["r"].array is r
    # The binding keeps a reference to the array it was given, not to a copy.
    fs = _ckpt.FieldSet()
    before = sys.getrefcount(a)
    fs.per_rank("a", a)
    assert sys.getrefcount(a) == before + 1
    del fs
    assert sys.getrefcount(a) == before


def test_sessions_of_dropped_communicators_are_closed(comm, shared_dir):
    n = len(_api._save_sessions)
    for i in range(3):
        sub = comm.Split(0, comm.rank)   # a new communicator each time, then dropped
        ck.save(sub, state(sub, i), os.path.join(shared_dir, f"d{i}"))
        del sub
    assert len(_api._save_sessions) <= n + 1   # the last one may still be kept
    ck.release()
    assert _api._save_sessions == []


def test_node_local_storage_is_flushed_by_every_call(comm, shared_dir, monkeypatch):
    # With CKPT_LOCAL_DIR a session writes node-local parts and flushes to the directory
    # when it closes: ck.save closes it at once, so the file is in the directory on return.
    monkeypatch.setenv("CKPT_LOCAL_DIR", os.path.join(shared_dir, "local"))
    d = os.path.join(shared_dir, "shared")
    for k in range(2):
        f = ck.save(comm, state(comm, k), d)
        assert os.path.exists(f)
        if comm.rank == 0:
            assert not lock_held(d)
    assert ck.load(comm, d)["k"] == 1
