"""Resharding distributed arrays through like= (save on N ranks, load on M)."""

import numpy as np
import pytest
from mpi4py import MPI

import ckpt as ck
from conftest import sub_comm

GLOBAL = (10, 7)


def truth():
    y, x = np.indices(GLOBAL)
    return (1000.0 * y + x).astype(np.float64)


def split(n, parts, i):
    base, rem = divmod(n, parts)
    return i * base + min(i, rem), base + (1 if i < rem else 0)


def block(comm, layout):
    """This rank's block (offset, shape) of GLOBAL: 'rows' splits dimension 0, 'grid' uses
    MPI_Dims_create."""
    if layout == "rows":
        y0, ny = split(GLOBAL[0], comm.size, comm.rank)
        return (y0, 0), (ny, GLOBAL[1])
    dims = MPI.Compute_dims(comm.size, 2)
    cy, cx = divmod(comm.rank, dims[1])
    y0, ny = split(GLOBAL[0], dims[0], cy)
    x0, nx = split(GLOBAL[1], dims[1], cx)
    return (y0, x0), (ny, nx)


def save_on(comm, d, layout):
    (y0, x0), (ny, nx) = block(comm, layout)
    g = truth()
    local = g[y0:y0 + ny, x0:x0 + nx].copy()
    ck.save(comm, {"u": ck.Distributed(local, (y0, x0), GLOBAL),
                   "v": ck.Distributed(local.astype(np.int32).T.copy(), (x0, y0), GLOBAL[::-1]),
                   "step": 42, "rank_value": comm.rank}, d)


def load_on(comm, d, layout, in_place):
    (y0, x0), (ny, nx) = block(comm, layout)
    tmpl_u = np.zeros((ny, nx)) if in_place else (ny, nx)
    like = {"u": ck.Distributed(tmpl_u, (y0, x0), GLOBAL),
            "v": ck.Distributed((nx, ny), (x0, y0), GLOBAL[::-1]), "step": None}
    got = ck.load(comm, d, like=like)
    g = truth()
    assert set(got) == {"u", "v", "step"}  # only the keys asked for
    assert got["step"] == 42
    assert np.array_equal(got["u"], g[y0:y0 + ny, x0:x0 + nx])
    assert got["v"].dtype == np.int32
    assert np.array_equal(got["v"], g[y0:y0 + ny, x0:x0 + nx].astype(np.int32).T)
    if in_place:
        assert got["u"] is tmpl_u


@pytest.mark.parametrize("src,dst", [(4, 2), (2, 3), (3, 4), (1, 2)])
def test_reshard(comm, shared_dir, src, dst):
    if comm.size < max(src, dst):
        pytest.skip(f"needs {max(src, dst)} ranks, have {comm.size}")
    a = sub_comm(src)
    if a != MPI.COMM_NULL:
        save_on(a, shared_dir, "grid")
        a.Free()
    comm.Barrier()
    b = sub_comm(dst)
    if b != MPI.COMM_NULL:
        load_on(b, shared_dir, "rows", in_place=True)
        load_on(b, shared_dir, "grid", in_place=False)
        b.Free()
    comm.Barrier()


def test_new_decomposition_same_rank_count(comm, shared_dir):
    save_on(comm, shared_dir, "grid")
    load_on(comm, shared_dir, "rows", in_place=False)


def test_per_rank_values_need_the_same_rank_count(comm, shared_dir):
    if comm.size < 2:
        pytest.skip("needs 2 ranks")
    save_on(comm, shared_dir, "grid")
    one = sub_comm(1)
    if one != MPI.COMM_NULL:
        with pytest.raises(ck.CheckpointError) as e:
            ck.load(one, shared_dir, like={"rank_value": None})
        assert e.value.code == "rank_count"
        assert "rank_value" in str(e.value) and "ranks" in str(e.value)
        # Without like= a distributed array needs a template on a new rank count.
        with pytest.raises(ck.CheckpointError) as e:
            ck.load(one, shared_dir)
        assert e.value.code == "rank_count"
        assert "like=" in str(e.value)
        one.Free()
    comm.Barrier()


def test_template_with_wrong_global_shape(comm, shared_dir):
    save_on(comm, shared_dir, "grid")
    with pytest.raises(ck.CheckpointError) as e:
        ck.load(comm, shared_dir, like={"u": ck.Distributed((1, 1), (0, 0), (3, 3))})
    assert e.value.code == "mismatch" and "'u'" in str(e.value)


def test_like_key_missing_from_checkpoint(comm, shared_dir):
    save_on(comm, shared_dir, "grid")
    with pytest.raises(ck.CheckpointError) as e:
        ck.load(comm, shared_dir, like={"nope": None})
    assert e.value.code == "missing_field" and "nope" in str(e.value)
