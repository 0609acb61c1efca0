#!/usr/bin/python3
"""py_save_cost.py: the fixed cost of one small save from Python, per call. The Python
counterpart of build/bin/ckpt-save-cost, run by `apps/bench/save_cost.py --python` (one
launch per rank count, with build/lib/libckpt_count_calls.so preloaded).

The state is the seed experiment's (apps/bench/seed_heat.py): an n x n float64 grid split by
rows, as ck.Distributed, plus the step number. Each round calls, in this order,

    ck.save          ck.save(comm, {"u": Distributed, "step": k}, dir, step=k, keep=2)
    Checkpointer     cp.save() of a ck.Checkpointer(comm, dir2, keep=2) (sync)
    core             the core session alone (ckpt._ckpt.Checkpointer) saving the same grid
                     (a FieldSet of the ghost-cell view) and a description of the same size:
                     what any binding must pay, so ck.save / core is the Python layer's share
    pickle           pickle protocol 5 of {u, step} to a per-rank temp file, fsync, rename

and records, per call, the time of the slowest rank and the counted calls (MPI collectives
of this rank, fsyncs, renames, HDF5 creates and opens). The first ck.save call (which opens
the session that later calls reuse) is reported on its own.

--baseline-python DIR adds "ck.save@base" and "Checkpointer@base": the same calls through
the Python layer of another build (DIR/ckpt, e.g. an older commit's build/python), loaded
as the package ckpt_baseline with THIS build's extension module (so both run over the same
core; the extension must have the same interface), interleaved in the same rounds.

    mpiexec -n N -x LD_PRELOAD=build/lib/libckpt_count_calls.so /usr/bin/python3 \\
        apps/bench/py_save_cost.py [--n 100] [--saves 20] [--dir D] [--baseline-python P]

Output: one JSON object on rank 0's stdout (last line).
"""

import argparse
import ctypes
import json
import os
import pickle
import shutil
import statistics
import sys
import time

import numpy as np
from mpi4py import MPI

import ckpt as ck
from ckpt import _ckpt

from seed_heat import load_baseline  # the same loader as the seed experiment

N_COUNTERS = 6  # collective, icollective, fsync, rename, h5create, h5open (count_calls.c)
NAMES = ("collectives", "icollectives", "fsyncs", "renames", "h5_creates", "h5_opens")


def counter_reader():
    try:
        fn = ctypes.CDLL(None).ckpt_count_read
    except AttributeError:
        return None
    fn.argtypes = [ctypes.POINTER(ctypes.c_longlong), ctypes.c_int]
    buf = (ctypes.c_longlong * N_COUNTERS)()

    def read():
        fn(buf, N_COUNTERS)
        return np.array(buf[:], dtype=np.int64)
    return read


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--saves", type=int, default=20)
    ap.add_argument("--dir", default="/tmp/ckpt-py-save-cost")
    ap.add_argument("--baseline-python", default=None)
    a = ap.parse_args()
    os.environ.setdefault("CKPT_QUIET", "1")
    comm = MPI.COMM_WORLD
    rank, size = comm.rank, comm.size
    read = counter_reader()
    zero = np.zeros(N_COUNTERS, dtype=np.int64)
    counts = read or (lambda: zero)

    base, rem = divmod(a.n, size)
    rows = base + (1 if rank < rem else 0)
    y0 = rank * base + min(rank, rem)
    u = np.random.default_rng(1).random((rows + 2, a.n + 2))
    interior = u[1:-1, 1:-1]
    top = os.path.join(a.dir, f"py-{size}")
    d_save, d_cp, d_pickle = (os.path.join(top, x) for x in ("save", "cp", "pickle"))
    if rank == 0:
        shutil.rmtree(top, ignore_errors=True)
        for d in (d_save, d_cp, d_pickle):
            os.makedirs(d)
    comm.Barrier()

    def state(k, pkg=ck):
        return {"u": pkg.Distributed(interior, (y0, 0), (a.n, a.n)), "step": k}

    def save_method(pkg, d):
        def do_save(k):
            pkg.save(comm, state(k, pkg), d, step=k, keep=2)
        return do_save

    def cp_method(pkg, d):
        cp = pkg.Checkpointer(comm, d, keep=2, final=False, mode="sync")
        cp.restore(state(0, pkg))
        closers.append(cp.close)

        def do_cp(k):
            cp.state["step"] = k
            cp.save(k)
        return do_cp

    closers = []
    methods = {"ck.save": save_method(ck, d_save), "Checkpointer": cp_method(ck, d_cp)}
    if a.baseline_python:
        base_pkg = load_baseline(a.baseline_python)
        os.makedirs(d_save + "-base", exist_ok=True)
        methods["ck.save@base"] = save_method(base_pkg, d_save + "-base")
        methods["Checkpointer@base"] = cp_method(base_pkg, d_cp + "-base")

    core = _ckpt.Checkpointer(comm, os.path.join(top, "core"), keep=2, signals=[])
    desc = json.dumps({"ckpt_python": 1, "root": {"t": "dict", "k": [
        ["u", {"t": "distributed", "f": "u", "dtype": "<f8", "global": [a.n, a.n]}],
        ["step", {"t": "int", "v": 0}]]}})

    def do_core(k):
        fs = _ckpt.FieldSet()
        fs.distributed("u", u, [a.n, a.n], [y0, 0], [rows, a.n], [1, 1])
        core.metadata("python_state", desc)
        core.save(k, 0.0, fields=fs)
        core.wait()

    def do_pickle(k):
        f = os.path.join(d_pickle, f"state-{rank}.pkl")
        with open(f + ".tmp", "wb") as fh:
            pickle.dump({"u": interior, "step": k}, fh, protocol=5)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(f + ".tmp", f)

    methods.update({"core": do_core, "pickle": do_pickle})
    times = {m: [] for m in methods}
    per_call = {m: [] for m in methods}
    first_calls = {}
    for k in range(a.saves + 1):
        for m, fn in methods.items():
            comm.Barrier()
            c0 = counts()
            t0 = time.perf_counter()
            fn(k + 1)
            dt = time.perf_counter() - t0
            c = counts() - c0
            dt = comm.allreduce(dt, op=MPI.MAX)
            c_max = comm.allreduce(int(c[0]), op=MPI.MAX)  # the busiest rank's collectives
            fs_all = comm.allreduce(int(c[2]), op=MPI.SUM)
            row = dict(zip(NAMES, (int(x) for x in c)), collectives_max_rank=c_max,
                       fsyncs_all_ranks=fs_all)
            if k == 0:
                if m.startswith("ck.save"):
                    first_calls[m] = dict(row, seconds=dt)
                continue  # the first round opens sessions and warms caches
            times[m].append(dt)
            per_call[m].append(row)
    for close in closers:
        close()
    core.close()
    comm.Barrier()
    if rank == 0:
        shutil.rmtree(top, ignore_errors=True)
        out = {"ranks": size, "n": a.n, "saves": a.saves, "counted": read is not None,
               "first_ck_save": first_calls["ck.save"], "first_calls": first_calls, "methods": {}}
        for m in methods:
            rows_ = per_call[m]
            out["methods"][m] = {
                "seconds": statistics.median(times[m]),
                # Counts are the same at every call after the first; report the median.
                **{k: statistics.median(r[k] for r in rows_) for k in rows_[0]}}
        print(json.dumps(out))


if __name__ == "__main__":
    main()
