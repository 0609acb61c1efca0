"""Indicative comparison of ck.save with h5py (mpio), np.save and pickle on one state.

    mpiexec -n 2 env PYTHONPATH=build/python /usr/bin/python3 python/tools/bench_save.py 64

Writes into the current directory: a Distributed float64 array of MB megabytes per rank.
ck.save fsyncs (it returns a durable checkpoint); the others are timed without fsync, plus
np.save with fsync. Not a test: timings depend on the machine and its load.
"""
import os, pickle, sys, time
import numpy as np
from mpi4py import MPI
import h5py
import ckpt as ck
comm = MPI.COMM_WORLD
mb = int(sys.argv[1]) if len(sys.argv) > 1 else 64
n = mb * (1 << 20) // 8 // 1024
local = np.random.default_rng(comm.rank).random((n, 1024))
state = {"u": ck.Distributed(local, (n * comm.rank, 0), (n * comm.size, 1024)), "step": 1}
def timed(name, fn, reps=3):
    ts = []
    for i in range(reps):
        comm.Barrier(); t = time.perf_counter(); fn(i); comm.Barrier(); ts.append(time.perf_counter() - t)
    if comm.rank == 0:
        print(f"{name:28s} best {min(ts):.3f} s  ({comm.size * mb / min(ts):.0f} MB/s)", flush=True)
timed("ck.save (fsync'd)", lambda i: ck.save(comm, state, "ck", step=i, keep=1))
def h5(i):
    with h5py.File(f"h5_{i}.h5", "w", driver="mpio", comm=comm) as f:
        d = f.create_dataset("u", (n * comm.size, 1024), dtype="f8")
        with d.collective:
            d[n * comm.rank:n * (comm.rank + 1)] = local
timed("h5py mpio (no fsync)", h5)
def npsave(i):
    np.save(f"np_{comm.rank}_{i}.npy", local)
timed("np.save per rank (no fsync)", npsave)
def pk(i):
    with open(f"pk_{comm.rank}_{i}.pkl", "wb") as f:
        pickle.dump(state["u"].local, f, protocol=5)
timed("pickle per rank (no fsync)", pk)
def npsave_sync(i):
    with open(f"nps_{comm.rank}_{i}.npy", "wb") as f:
        np.save(f, local); f.flush(); os.fsync(f.fileno())
timed("np.save + fsync", npsave_sync)
