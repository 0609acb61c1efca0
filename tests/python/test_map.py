"""ck.map: results saved per item; a rerun computes only what is missing or changed."""

import numpy as np

import ckpt as ck

CALLS = []


def square(x):
    CALLS.append(x)
    return {"y": x * x, "arr": np.full(2, x, dtype=np.int64)}


def cube(x):
    CALLS.append(x)
    return {"y": x * x * x, "arr": np.full(2, x, dtype=np.int64)}


def computed(comm):
    """Number of fn calls on all ranks since the last call of this function."""
    n = comm.allreduce(len(CALLS))
    CALLS.clear()
    return n


def check(res, items, power):
    assert [r["y"] for r in res] == [x ** power for x in items]
    assert all(np.array_equal(r["arr"], [x, x]) for r, x in zip(res, items))


def test_map_reuses_results_per_item(comm, shared_dir):
    CALLS.clear()
    items = list(range(9))
    check(ck.map(square, items, shared_dir, comm), items, 2)
    assert computed(comm) == 9
    # Rerun: nothing to compute.
    check(ck.map(square, items, shared_dir, comm), items, 2)
    assert computed(comm) == 0
    # Changed items: only the new and changed ones are computed.
    items2 = items[:4] + [40] + items[5:] + [100, 101]
    check(ck.map(square, items2, shared_dir, comm), items2, 2)
    assert computed(comm) == 3
    # A changed function invalidates everything.
    check(ck.map(cube, items2, shared_dir, comm), items2, 3)
    assert computed(comm) == len(items2)


def test_map_items_of_any_savable_type(comm, shared_dir):
    items = [{"a": 1}, (2, "x"), np.arange(3), None, "s"]
    res = ck.map(lambda v: {"v": v}, items, shared_dir, comm)
    assert res[0]["v"] == {"a": 1} and res[1]["v"] == (2, "x")
    assert np.array_equal(res[2]["v"], np.arange(3)) and res[3]["v"] is None and res[4]["v"] == "s"
