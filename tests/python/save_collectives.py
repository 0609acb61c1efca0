"""Counts the MPI collectives of ck.save and of a ck.Checkpointer save against what the core
itself makes for the same fields (run under mpiexec with build/lib/libckpt_count_calls.so
preloaded, by test_save_collectives.py). Prints one JSON object on rank 0.

    mpiexec -n 2 -x LD_PRELOAD=build/lib/libckpt_count_calls.so python3 save_collectives.py DIR
"""

import ctypes
import json
import os
import sys

import numpy as np
from mpi4py import MPI

import ckpt as ck
from ckpt import _ckpt

comm = MPI.COMM_WORLD
rank, size = comm.rank, comm.size
_read = ctypes.CDLL(None).ckpt_count_read
_read.argtypes = [ctypes.POINTER(ctypes.c_longlong), ctypes.c_int]


def collectives() -> int:
    buf = (ctypes.c_longlong * 6)()
    _read(buf, 6)
    return buf[0]  # blocking collectives of this process


def counted(fn):
    comm.Barrier()
    before = collectives()
    fn()
    n = collectives() - before
    return comm.allreduce(n, op=MPI.MAX)  # the busiest rank's


def main():
    top = sys.argv[1]
    n = 40
    rows = n // size
    u = np.arange((rows + 2) * (n + 2), dtype=np.float64).reshape(rows + 2, n + 2) + rank
    interior = u[1:-1, 1:-1]

    def state(k, **more):
        return {"u": ck.Distributed(interior, (rank * rows, 0), (rows * size, n)), "step": k,
                **more}

    out = {"ranks": size}
    # The core alone: a session, and a save of the same two fields as ck.save hands it
    # (the grid, the description as metadata).
    core_dir = os.path.join(top, "core")
    holder = {}
    out["core_open"] = counted(lambda: holder.setdefault(
        "core", _ckpt.Checkpointer(comm, core_dir, keep=2, signals=[])))
    core = holder["core"]

    def core_save(k):
        fs = _ckpt.FieldSet()
        fs.distributed("u", u, [rows * size, n], [rank * rows, 0], [rows, n], [1, 1])
        core.metadata("python_state", json.dumps({"step": k}))
        core.save(k, 0.0, fields=fs)
        core.wait()

    # The first save gathers the block tables; a later one finds them unchanged.
    out["core_first_save"] = counted(lambda: core_save(1))
    out["core_save"] = counted(lambda: core_save(2))
    core.close()

    d = os.path.join(top, "save")
    out["ck_save_first"] = counted(lambda: ck.save(comm, state(1), d, keep=2))
    out["ck_save"] = [counted(lambda k=k: ck.save(comm, state(k), d, keep=2)) for k in (2, 3)]
    out["ck_save_step"] = counted(lambda: ck.save(comm, state(4), d, step=4, keep=2))
    # Plain values that differ between ranks: one more all-reduce (which values).
    out["ck_save_per_rank"] = counted(lambda: ck.save(comm, state(5, r=rank), d, keep=2))
    # Another directory: the session of the first is closed, one for this opened.
    d2 = os.path.join(top, "save2")
    out["ck_save_other_dir"] = counted(lambda: ck.save(comm, state(1), d2, keep=2))
    # ck.load of the directory a session is kept for closes it (its lock), then loads.
    loaded = ck.load(comm, d2)
    out["loaded_step"] = loaded["step"]
    out["ck_save_after_load"] = counted(lambda: ck.save(comm, state(2), d2, keep=2))

    cp = ck.Checkpointer(comm, os.path.join(top, "cp"), keep=2, final=False)
    cp.restore(state(0))
    cp.save(1)
    out["checkpointer_save"] = counted(lambda: cp.save(2))
    cp.close()
    out["files"] = [s for s, _ in ck.list_checkpoints(d)]
    if rank == 0:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
