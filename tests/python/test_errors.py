"""Values that cannot be stored as data raise a clear error naming the key, on every rank,
and leave no checkpoint behind."""

import os

import numpy as np
import pytest
from mpi4py import MPI

import ckpt as ck


def refused(comm, d, state):
    with pytest.raises(ck.CheckpointError) as e:
        ck.save(comm, state, d)
    assert isinstance(e.value, ck.UnsupportedValueError) or e.value.code == "invalid_argument"
    assert ck.list_checkpoints(d) == []
    return str(e.value)


def test_lambda(comm, shared_dir):
    msg = refused(comm, shared_dir, {"ok": 1, "callback": lambda x: x})
    assert "state['callback']" in msg and "function" in msg and "never code" in msg


def test_open_file(comm, shared_dir):
    with open(os.path.join(shared_dir, f"log{comm.rank}.txt"), "w") as f:
        msg = refused(comm, shared_dir, {"cfg": {"log": f}})
    assert "state['cfg']['log']" in msg and "open file" in msg


def test_mpi_communicator(comm, shared_dir):
    msg = refused(comm, shared_dir, {"comm": MPI.COMM_WORLD})
    assert "state['comm']" in msg and "MPI" in msg


def test_nested_in_list(comm, shared_dir):
    msg = refused(comm, shared_dir, {"a": {"b": [1, 2, print]}})
    assert "state['a']['b'][2]" in msg


def test_other_types(comm, shared_dir):
    assert "state['g']" in refused(comm, shared_dir, {"g": (i for i in range(3))})
    assert "state['k']" in refused(comm, shared_dir, {"k": __import__("threading").Lock()})
    assert "state[3]" in refused(comm, shared_dir, {3: "int key"})
    assert "state['o']" in refused(comm, shared_dir, {"o": np.array([object()])})
    assert "state['u']" in refused(comm, shared_dir, {"u": np.array(["text"])})
    refused(comm, shared_dir, ["not", "a", "dict"])


def test_error_on_one_rank_is_raised_on_all(comm, shared_dir):
    # Only the last rank holds a lambda; every rank must raise (no rank may hang).
    state = {"x": 1, "f": (lambda: 0) if comm.rank == comm.size - 1 else 0}
    msg = refused(comm, shared_dir, state)
    assert "state['f']" in msg


def test_different_structure_on_ranks(comm, shared_dir):
    if comm.size < 2:
        pytest.skip("needs 2 ranks")
    state = {"x": 1} if comm.rank == 0 else {"x": 1, "y": 2}
    msg = refused(comm, shared_dir, state)
    assert "rank 1" in msg and "same structure" in msg


def test_replicated_value_that_differs(comm, shared_dir):
    if comm.size < 2:
        pytest.skip("needs 2 ranks")
    msg = refused(comm, shared_dir, {"p": ck.Replicated({"n": comm.rank})})
    assert "state['p']['n']" in msg and "differs between ranks" in msg


def test_bad_comm_argument(shared_dir):
    with pytest.raises(TypeError):
        ck.save("not a comm", {"x": 1}, shared_dir)


def test_error_carries_code_rank_and_detail(comm, shared_dir):
    with pytest.raises(ck.CheckpointError) as e:
        ck.load(comm, shared_dir, step=3)
    err = e.value
    assert err.code == "invalid_argument" and err.code_value == 1
    assert str(err).startswith(("ckpt[rank ", "ckpt: ")) and err.detail in str(err)
