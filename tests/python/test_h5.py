"""A checkpoint written by ck.save is a plain HDF5 file: h5py (MPI build, collectively) and
h5dump read it, and a Distributed value is one dataset of the global shape."""

import json
import shutil
import subprocess

import numpy as np
import pytest
from mpi4py import MPI

import ckpt as ck


def write(comm, d):
    n = comm.size
    local = np.arange(15, dtype=np.float64).reshape(3, 5) + 100 * comm.rank
    return ck.save(comm, {"u": ck.Distributed(local, (3 * comm.rank, 0), (3 * n, 5)),
                          "params": ck.Replicated({"alpha": 0.25, "grid": np.array([3 * n, 5])}),
                          "counter": np.array([comm.rank])}, d, step=12, time=0.5)


def test_h5py_reads_global_dataset(comm, shared_dir):
    import h5py
    f = write(comm, shared_dir)
    kw = {"driver": "mpio", "comm": comm} if h5py.get_config().mpi else {}
    with h5py.File(f, "r", **kw) as h:
        u = h["u"]
        assert u.shape == (3 * comm.size, 5) and u.dtype == np.float64
        expect = np.concatenate([np.arange(15.0).reshape(3, 5) + 100 * r for r in range(comm.size)])
        assert np.array_equal(u[...], expect)
        assert int(h.attrs["step"]) == 12 and float(h.attrs["time"]) == 0.5
        assert int(h.attrs["nranks"]) == comm.size
        assert np.array_equal(h["params.grid"][...], [3 * comm.size, 5])
        assert np.array_equal(h["counter"][...], np.arange(comm.size))  # per-rank, concatenated
        tree = json.loads(h.attrs["meta.python_state"])
        assert tree["ckpt_python"] == 1


def test_h5py_is_the_mpi_build_under_mpiexec():
    import h5py
    if MPI.COMM_WORLD.size == 1 and not h5py.get_config().mpi:
        pytest.skip("serial h5py outside a multi-rank mpiexec (Debian picks the MPI build there)")
    assert h5py.get_config().mpi


def test_h5dump_header(comm, shared_dir):
    f = write(comm, shared_dir)
    if comm.rank == 0:
        if not shutil.which("h5dump"):
            pytest.skip("h5dump not installed (Debian: hdf5-tools)")
        out = subprocess.run(["h5dump", "-H", f], check=True, capture_output=True, text=True).stdout
        assert 'DATASET "u"' in out
        assert f"SIMPLE {{ ( {3 * comm.size}, 5 ) / ( {3 * comm.size}, 5 ) }}" in out
        assert "H5T_IEEE_F64LE" in out
        assert 'ATTRIBUTE "meta.python_state"' in out
