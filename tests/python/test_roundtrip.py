"""Round trips of every supported value type through ck.save / ck.load."""

import os

import numpy as np
import pytest
from mpi4py import MPI

import ckpt as ck


def assert_same(a, b, where="state"):
    """Equal values of the same types (arrays: same dtype, shape and bits)."""
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        assert a.tobytes() == b.tobytes(), f"{where}: contents differ"
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def every_type(rank):
    """A state with every supported plain and array type; some values differ per rank."""
    return {
        "int": 7,
        "neg": -3,
        "big": 2**100 + rank,             # beyond int64, differs per rank
        "float": 0.1 + rank,              # differs per rank
        "nan": float("nan"),
        "inf": float("-inf"),
        "negzero": -0.0,
        "bool": True,
        "complex": 1.5 - 2j,
        "str": "héllo wörld ✓",
        "empty_str": "",
        "bytes": bytes(range(256)),
        "bytearray": bytearray(b"\x00abc"),
        "none": None,
        "list": [1, "two", 3.0, None, [4, [5]]],
        "tuple": (1, (2, "x"), ()),
        "empty": {"d": {}, "l": [], "t": ()},
        "nested": {"a": {"b": {"c": [rank, {"d": "deep"}]}}},
        "np_scalars": [np.float32(1.25), np.int16(-7), np.uint64(2**64 - 1), np.bool_(True),
                       np.complex64(1 + 2j)],
        "arrays": {
            dt: (np.arange(12, dtype=dt).reshape(3, 4) + (rank % 2)).astype(dt)
            for dt in ["u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8"]
        },
        "bool_arr": np.array([[True, False], [False, rank % 2 == 0]]),
        "f16": np.linspace(0, 1, 5, dtype=np.float16),
        "c64": np.array([1 + 2j, 3 - 4j], dtype=np.complex64),
        "c128": np.array([[1j]], dtype=np.complex128),
        "c128_scalar": np.array(2 + 3j),
        "datetime": np.array(["2024-01-01", "2025-06-30"], dtype="datetime64[D]"),
        "zero_d": np.array(3.5),
        "per_rank_len": np.arange(rank + 1, dtype=np.float64),   # shape differs per rank
        "all_empty": np.zeros((0, 3)),
        "empty_on_rank0": np.ones(rank, dtype=np.int32),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "strided": np.arange(20.0)[::3],
        "big_endian": np.arange(4, dtype=">i4"),
        "key with spaces/and.dots": 1,
        "_private": 2,
        "_x41": 3,
        "-dash": 4,
        "ünïcode": 5,
        "rep": ck.Replicated({"params": np.array([1.0, 2.0]), "n": 100, "name": "run"}),
        "rep_array": ck.Replicated(np.eye(3)),
    }


def test_roundtrip_every_type(comm, shared_dir):
    state = every_type(comm.rank)
    f = ck.save(comm, state, shared_dir)
    assert os.path.basename(f) == "ckpt-000000000000.h5"
    got = ck.load(comm, shared_dir)
    expect = dict(state)
    # What load gives back for the special cases: Replicated -> its value,
    # non-contiguous/non-native arrays -> equal C-contiguous native arrays.
    expect["rep"] = state["rep"].value
    expect["rep_array"] = state["rep_array"].value
    expect["fortran"] = np.ascontiguousarray(state["fortran"])
    expect["strided"] = np.ascontiguousarray(state["strided"])
    expect["big_endian"] = state["big_endian"].astype("<i4")
    assert_same(expect, got)


def test_distributed_roundtrip_same_rank_count(comm, shared_dir):
    n = comm.size
    local = np.arange(6, dtype=np.float64).reshape(2, 3) + 100 * comm.rank
    ck.save(comm, {"u": ck.Distributed(local, (2 * comm.rank, 0), (2 * n, 3)), "t": 1.5},
            shared_dir, step=5)
    got = ck.load(comm, shared_dir)
    assert_same({"u": local, "t": 1.5}, got)
    info = ck.checkpoint_info(ck.list_checkpoints(shared_dir)[0][1])
    u = next(f for f in info["fields"] if f["name"] == "u")
    assert u["kind"] == "distributed" and tuple(u["shape"]) == (2 * n, 3)


def test_ghost_cell_view_saved_without_copy_and_restored_in_place(comm, shared_dir):
    n = comm.size
    u = np.full((4, 5), -1.0)
    u[1:-1, 1:-1] = np.arange(6.0).reshape(2, 3) + 10 * comm.rank
    ck.save(comm, {"u": ck.Distributed(u[1:-1, 1:-1], (2 * comm.rank, 0), (2 * n, 3))}, shared_dir)
    v = np.full((4, 5), -2.0)
    got = ck.load(comm, shared_dir, like={"u": ck.Distributed(v[1:-1, 1:-1], (2 * comm.rank, 0), (2 * n, 3))})
    assert got["u"].base is v  # filled in place through the view
    assert np.array_equal(v[1:-1, 1:-1], u[1:-1, 1:-1])
    assert (v[0] == -2.0).all() and (v[:, 0] == -2.0).all()  # ghosts untouched


def test_replicated_is_stored_once(comm, shared_dir):
    ck.save(comm, {"p": ck.Replicated(np.arange(5.0))}, shared_dir)
    info = ck.checkpoint_info(ck.list_checkpoints(shared_dir)[0][1])
    p = next(f for f in info["fields"] if f["name"] == "p")
    assert p["kind"] == "replicated" and len(p["blocks"]) == 1 and tuple(p["shape"]) == (5,)


def test_steps_keep_and_choice(comm, shared_dir):
    assert ck.load(comm, shared_dir) is None  # nothing yet
    for i in range(4):
        ck.save(comm, {"i": i}, shared_dir, keep=2)  # steps 0, 1, 2, 3
    steps = [s for s, _ in ck.list_checkpoints(shared_dir)]
    assert steps == [3, 2]
    assert ck.load(comm, shared_dir) == {"i": 3}
    assert ck.load(comm, shared_dir, step=2) == {"i": 2}
    with pytest.raises(ck.CheckpointError) as e:
        ck.load(comm, shared_dir, step=0)
    assert e.value.code == "invalid_argument" and "step 0" in str(e.value)


def test_path_defaults_to_ckpt_dir(comm, shared_dir, monkeypatch):
    monkeypatch.setenv("CKPT_DIR", os.path.join(shared_dir, "env"))
    ck.save(comm, {"x": 1}, step=4)
    assert [s for s, _ in ck.list_checkpoints(os.path.join(shared_dir, "env"))] == [4]
    assert ck.load(comm) == {"x": 1}
    # An explicit path wins over the environment.
    ck.save(comm, {"x": 2}, os.path.join(shared_dir, "explicit"), step=1)
    assert ck.load(comm, os.path.join(shared_dir, "explicit")) == {"x": 2}


def test_subcommunicator(comm, shared_dir):
    sub = comm.Split(comm.rank % 2, comm.rank)
    d = os.path.join(shared_dir, f"color{comm.rank % 2}")
    ck.save(sub, {"r": sub.rank, "color": comm.rank % 2}, d)
    assert ck.load(sub, d) == {"r": sub.rank, "color": comm.rank % 2}
    sub.Free()


def test_large_description_goes_to_a_dataset(comm, shared_dir):
    # More inline values than fit in a root attribute (64 KiB): stored in `_py.tree`.
    state = {"table": [i / 7 for i in range(20000)], "r": comm.rank}
    ck.save(comm, state, shared_dir)
    info = ck.checkpoint_info(ck.list_checkpoints(shared_dir)[0][1])
    assert info["metadata"]["python_state"] == "@_py.tree"
    assert ck.load(comm, shared_dir) == state
    # Also through a Checkpointer (its own core object is closed while the tree is read).
    cp = ck.Checkpointer(comm, shared_dir)
    st = cp.restore({"table": None, "r": None})
    assert st == state
    cp.close()
