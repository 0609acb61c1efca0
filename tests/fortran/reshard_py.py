#!/usr/bin/python3
"""Run under mpiexec by fortran_tests.py (scenario python): loads the newest checkpoint of
fortran_heat in DIR with the Python package, resharded onto this job's ranks as row blocks
of the C-order global array (ny, nx), and checks that the blocks put together are the
dataset h5py reads. Prints "python reshard: ok" on rank 0.

    mpiexec -n N python3 reshard_py.py DIR NX NY
"""
import sys

import numpy as np
from mpi4py import MPI

import ckpt as ck

comm = MPI.COMM_WORLD
d, nx, ny = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r0 = comm.rank * ny // comm.size
r1 = (comm.rank + 1) * ny // comm.size
state = ck.load(comm, d, like={"u": ck.Distributed((r1 - r0, nx), (r0, 0), (ny, nx))})
assert state is not None, "no checkpoint loaded"
blocks = comm.gather(state["u"], root=0)
if comm.rank == 0:
    import glob
    import h5py
    newest = sorted(glob.glob(d + "/ckpt-*.h5"))[-1]
    with h5py.File(newest, "r") as f:
        want = f["u"][...]
    got = np.concatenate(blocks, axis=0)
    assert got.shape == (ny, nx) and np.array_equal(got, want), "resharded blocks differ"
    print(f"python reshard: ok ({comm.size} row blocks of {newest})", flush=True)
