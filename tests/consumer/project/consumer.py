"""The installed Python package: save a distributed array and a scalar with ck.save, load
them into fresh buffers with ck.load(like=...), and check every value on every rank."""
import sys

import numpy as np
from mpi4py import MPI

import ckpt as ck

comm = MPI.COMM_WORLD
path = sys.argv[1]
n = 5
offset = (n * comm.rank,)
shape = (n * comm.size,)
block = 100.0 * comm.rank + np.arange(n, dtype=np.float64) + 0.5
ck.save(comm, {"u": ck.Distributed(block, offset, shape), "t": 2.25}, path, step=4)
out = np.zeros(n)
state = ck.load(comm, path, like={"u": ck.Distributed(out, offset, shape), "t": 0.0})
ok = state is not None and state["t"] == 2.25 and np.array_equal(out, block)
ok = comm.allreduce(1 if ok else 0, op=MPI.MIN) == 1
if comm.rank == 0:
    print(f"Python consumer: ckpt {ck.__version__} from {ck.__file__}: {'ok' if ok else 'FAILED'}")
sys.exit(0 if ok else 1)
