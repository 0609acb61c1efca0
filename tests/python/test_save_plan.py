"""Repeated saves of a state of the same shape take a fast path (python/ckpt/_plan.py) that
reuses the previous save's description and field set. These tests change one thing at a
time between saves and check that the checkpoint holds exactly the new state (the fast path
must notice every change that the full path would write differently)."""

import numpy as np
import pytest

import ckpt as ck
from ckpt import _api


def grid(comm, n=6, fill=0.0):
    u = np.full((n + 2, n + 2), fill)
    return u, ck.Distributed(u[1:-1, 1:-1], (comm.rank * n, 0), (comm.size * n, n))


def saved(comm, d, like=None):
    return ck.load(comm, d, like=like)


def plan_of(comm):
    return _api._session_for(comm).plans.plan


@pytest.fixture
def full_saves(monkeypatch):
    """Counts the saves that flatten the state the full way (not through a plan)."""
    count = [0]
    real = _api._flatten_full

    def counting(*args):
        count[0] += 1
        return real(*args)
    monkeypatch.setattr(_api, "_flatten_full", counting)
    return count


def test_plain_values_change_between_planned_saves(comm, shared_dir, full_saves):
    u, du = grid(comm)
    state = {"u": du, "step": 0, "t": 0.0, "name": "a", "flag": False, "none": None,
             "cfg": {"dt": 0.1}}
    ck.save(comm, state, shared_dir, step=0, keep=0)
    for k in range(1, 4):
        u[1:-1, 1:-1] = k
        state.update(step=k, t=k * 0.5, name="a" * k, flag=k % 2 == 1)
        state["cfg"]["dt"] = 0.1 * k
        ck.save(comm, state, shared_dir, step=k, keep=0)
    assert full_saves[0] == 1     # the first save only
    for k in range(1, 4):
        got = ck.load(comm, shared_dir, step=k)
        assert got["step"] == k and got["t"] == k * 0.5 and got["name"] == "a" * k
        assert got["flag"] is (k % 2 == 1) and got["none"] is None and got["cfg"] == {"dt": 0.1 * k}
        assert (got["u"] == k).all()


@pytest.mark.parametrize("change", ["new_key", "removed_key", "key_order", "int_to_float",
                                    "int_to_bool", "float_to_npfloat", "nested_type",
                                    "dtype", "resized", "replaced_array", "offset", "grid",
                                    "moved_window"])
def test_a_changed_state_is_saved_as_it_is(comm, shared_dir, change, full_saves):
    u, du = grid(comm, fill=1.0)
    a = np.arange(4.0) + comm.rank
    state = {"u": du, "a": a, "step": 1, "x": 2.0, "d": {"k": 1}}
    ck.save(comm, state, shared_dir, step=1)
    ck.save(comm, state, shared_dir, step=2)
    assert full_saves[0] == 1     # the second save was planned
    if change == "new_key":
        state["z"] = 3
    elif change == "removed_key":
        del state["x"]
    elif change == "key_order":
        state = {"step": 1, "u": du, "a": a, "x": 2.0, "d": {"k": 1}}
    elif change == "int_to_float":
        state["step"] = 1.5
    elif change == "int_to_bool":
        state["step"] = True
    elif change == "float_to_npfloat":
        state["x"] = np.float32(2.5)
    elif change == "nested_type":
        state["d"] = {"k": [1, 2]}
    elif change == "dtype":
        state["a"] = a.astype(np.float32)
    elif change == "resized":
        state["a"] = np.arange(7.0)
    elif change == "replaced_array":
        state["a"] = a + 100          # same shape and dtype, other memory
    elif change == "offset":
        if comm.size == 1:
            pytest.skip("one block: no other place")
        # The same memory at another place of the global array (the blocks in reverse).
        state["u"] = ck.Distributed(u[1:-1, 1:-1], ((comm.size - 1 - comm.rank) * 6, 0),
                                    du.global_shape)
    elif change == "grid":
        state["u"] = ck.Distributed(du.local, du.offset, du.global_shape, grid=ck.Grid())
    elif change == "moved_window":
        # The window moves inside the same grid: other memory, same shape.
        state["u"] = ck.Distributed(u[:-2, 1:-1], du.offset, du.global_shape)
    ck.save(comm, state, shared_dir, step=3)
    assert full_saves[0] == 2     # the change was noticed: saved the full way
    ck.save(comm, state, shared_dir, step=4)
    if change not in ("float_to_npfloat", "nested_type"):   # numpy scalars, lists: not planned
        assert full_saves[0] == 2     # the new shape is planned
    got = saved(comm, shared_dir)
    assert list(got) == list(state)
    for k, v in state.items():
        g = got[k]
        if isinstance(v, ck.Distributed):
            assert g.shape == v.local.shape and np.array_equal(g, v.local)
            info = ck.checkpoint_info(ck.list_checkpoints(shared_dir)[0][1])
            f = next(f for f in info["fields"] if f["name"] == k)
            assert tuple(f["shape"]) == v.global_shape
        elif isinstance(v, np.ndarray):
            assert g.dtype == v.dtype and np.array_equal(g, v)
        else:
            assert type(g) is type(v) and g == v


def test_array_contents_change_in_place(comm, shared_dir, full_saves):
    a = np.zeros(5)
    for k in range(3):
        a[:] = k + comm.rank
        ck.save(comm, {"a": a}, shared_dir, step=k)
    assert full_saves[0] == 1
    for k in range(3):
        assert np.array_equal(ck.load(comm, shared_dir, step=k)["a"], np.zeros(5) + k + comm.rank)


def test_values_that_differ_between_ranks_in_planned_saves(comm, shared_dir, full_saves):
    state = {"r": 0, "v": 1.0, "a": np.ones(2)}
    ck.save(comm, state, shared_dir, step=1)
    ck.save(comm, state, shared_dir, step=2)
    state["r"] = comm.rank            # differs between ranks (on more than one rank)
    ck.save(comm, state, shared_dir, step=3)
    state["r"] = 7                    # equal again
    ck.save(comm, state, shared_dir, step=4)
    assert full_saves[0] == 1
    got = ck.load(comm, shared_dir, step=3)
    assert got["r"] == comm.rank and got["v"] == 1.0
    got = ck.load(comm, shared_dir, step=4)
    assert got["r"] == 7 and got["v"] == 1.0
    info = ck.checkpoint_info(ck.list_checkpoints(shared_dir)[0][1])
    assert "_py.local" not in [f["name"] for f in info["fields"]]


def test_a_structure_that_differs_between_ranks_still_fails_on_every_rank(comm, shared_dir):
    if comm.size < 2:
        pytest.skip("needs 2 ranks")
    state = {"a": np.zeros(3), "n": 1}
    ck.save(comm, state, shared_dir, step=1)
    ck.save(comm, state, shared_dir, step=2)
    if comm.rank == 1:
        state["n"] = 1.0              # this rank takes the full path, rank 0 the fast one
    with pytest.raises(ck.CheckpointError, match="different keys, value types"):
        ck.save(comm, state, shared_dir, step=3)


def test_states_that_are_not_planned_still_save(comm, shared_dir, full_saves):
    shared = np.arange(3.0)
    states = [{"l": [1, 2]}, {"a": shared, "b": shared}, {"r": ck.Replicated(5)},
              {"e": np.zeros(0)}, {"t": np.arange(6.0).reshape(2, 3).T}]
    for i, st in enumerate(states):
        ck.save(comm, st, shared_dir, step=2 * i, keep=0)
        ck.save(comm, st, shared_dir, step=2 * i + 1, keep=0)
        assert full_saves[0] == 2 * i + 2      # both saves the full way
    for i, st in enumerate(states):
        got = ck.load(comm, shared_dir, step=2 * i + 1)
        assert list(got) == list(st)


def test_checkpointer_planned_saves_and_position(comm, shared_dir):
    u, du = grid(comm)
    cp = ck.Checkpointer(comm, shared_dir, every=1, keep=0)
    state = cp.restore({"u": du, "t": 0.0})
    for i in cp.loop("outer", 2):
        for j in cp.loop("inner", 3):
            u[1:-1, 1:-1] = 10 * i + j
            state["t"] = float(10 * i + j)
    assert cp._plans.plan is not None
    cp.close()
    cp2 = ck.Checkpointer(comm, shared_dir)
    got = cp2.restore({"u": ck.Distributed(np.zeros((6, 6)), du.offset, du.global_shape),
                       "t": None})
    assert got["t"] == 12.0 and (got["u"].local == 12).all()
    assert cp2.restored_position is not None
    cp2.close()


def test_release_drops_the_plan(comm, shared_dir):
    a = np.zeros(3)
    ck.save(comm, {"a": a}, shared_dir, step=1)
    slot = _api._session_for(comm).plans
    assert slot.plan is not None
    ck.release(shared_dir)
    assert slot.plan is None


def test_a_repeated_description_is_reused_only_for_the_same_values(comm, shared_dir):
    """A planned save whose plain values are those of the save before reuses its description
    (no new JSON text, no new hash); any value that encodes differently, down to the sign
    of a zero, gets a new one."""
    u, du = grid(comm)
    state = {"u": du, "x": 0.0, "n": 1, "s": "ab"}
    ck.save(comm, state, shared_dir, step=0, keep=0)
    ck.save(comm, state, shared_dir, step=1, keep=0)   # the first planned save: a description
    first = plan_of(comm).last_tree
    ck.save(comm, state, shared_dir, step=2, keep=0)
    assert plan_of(comm).last_tree is first          # the same values: reused
    changes = [("x", -0.0), ("x", 1.0), ("n", 2), ("s", "ba"), ("s", "ba")]
    for step, (k, v) in enumerate(changes, start=3):
        state[k] = v
        ck.save(comm, state, shared_dir, step=step, keep=0)
    for step in range(3, 3 + len(changes)):
        expect = {"x": 0.0, "n": 1, "s": "ab"}
        for k, v in changes[:step - 2]:
            expect[k] = v
        got = ck.load(comm, shared_dir, step=step)
        assert {k: got[k] for k in expect} == expect
        assert np.copysign(1.0, got["x"]) == np.copysign(1.0, expect["x"])
