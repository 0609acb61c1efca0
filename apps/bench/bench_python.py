#!/usr/bin/python3
"""bench_python.py: ckpt's Python API against the usual ways of saving numpy state, side by
side on the same state and directory, interleaved rounds, medians (slowest rank per round).

    mpiexec -n N /usr/bin/python3 apps/bench/bench_python.py [--sizes 16M,256M] [--repeats 3]

    ck.save     ckpt.save(comm, {"x": ckpt.Distributed(block, offset, shape), "step": k})
    h5py_mpio   h5py.File(driver="mpio"), one dataset at global shape, each rank writes its
                block collectively, close, fsync
    np_save     np.save of this rank's block to its own file, fsync
    pickle5     pickle protocol 5 of this rank's state dict to its own file, fsync

Every method makes its file(s) durable (fsync) before the clock stops, as ck.save does.
Then the heat solver's cost of a checkpointing iteration: the 100x100 Jacobi loop of
apps/heat.py with ckpt.Checkpointer(mode="async", every=K), each iteration timed; the
ratio is the median checkpointing iteration over the median normal one (dill.dump_session
scores 25-31x here). --json prints machine-readable results.
"""

import argparse
import json
import os
import pickle
import shutil
import sys
import time

import numpy as np
from mpi4py import MPI

import ckpt as ck
import h5py

comm = MPI.COMM_WORLD
rank, size = comm.rank, comm.size


def parse_size(s):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(s[:-1]) * units[s[-1]]) if s[-1] in units else int(s)


def fsync_path(p):
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def timed(body):
    comm.Barrier()
    t0 = time.perf_counter()
    body()
    return comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)


def run_size(total, repeats, d):
    n = total // 8 // size * size
    count = n // size
    off = rank * count
    x = np.sin(np.arange(off, off + count, dtype=np.float64))
    paths = {m: os.path.join(d, m) for m in ("ck", "h5", "npy", "pkl")}
    if rank == 0:
        for p in paths.values():
            shutil.rmtree(p, ignore_errors=True)
            os.makedirs(p)
    comm.Barrier()
    step = [0]

    def ck_save():
        step[0] += 1
        ck.save(comm, {"x": ck.Distributed(x, (off,), (n,)), "step": step[0]}, paths["ck"], step=step[0], keep=1)

    def h5_save():
        f = os.path.join(paths["h5"], "state.h5")
        with h5py.File(f, "w", driver="mpio", comm=comm) as h:
            ds = h.create_dataset("x", (n,), dtype="f8")
            with ds.collective:
                ds[off:off + count] = x
            h.attrs["step"] = step[0]
        fsync_path(f)

    def npy_save():
        f = os.path.join(paths["npy"], f"x-{rank}.npy")
        with open(f, "wb") as fh:
            np.save(fh, x)
            fh.flush()
            os.fsync(fh.fileno())

    def pkl_save():
        f = os.path.join(paths["pkl"], f"state-{rank}.pkl")
        with open(f, "wb") as fh:
            pickle.dump({"x": x, "step": step[0]}, fh, protocol=5)
            fh.flush()
            os.fsync(fh.fileno())

    methods = {"ck.save": ck_save, "h5py_mpio": h5_save, "np_save": npy_save, "pickle5": pkl_save}
    ck_save()  # warm-up: imports, first-touch of buffers
    times = {m: [] for m in methods}
    for _ in range(repeats):
        for m, f in methods.items():
            times[m].append(timed(f))
    if rank == 0:
        for p in paths.values():
            shutil.rmtree(p, ignore_errors=True)
    return n * 8, {m: float(np.median(v)) for m, v in times.items()}, times


def heat_ratio(n, steps, every, d, mode):
    """The Jacobi loop of apps/heat.py (row decomposition) with ckpt's loop helper."""
    rows = n // size + (1 if rank < n % size else 0)
    y0 = comm.exscan(rows) or 0
    u = np.zeros((rows + 2, n + 2))
    u[:, 0] = u[:, -1] = -273.15
    if rank == 0:
        u[0, :] = 40.0
    if rank == size - 1:
        u[-1, :] = -273.15
    up = rank - 1 if rank > 0 else MPI.PROC_NULL
    down = rank + 1 if rank < size - 1 else MPI.PROC_NULL

    def iterate():
        comm.Sendrecv(u[1, :], up, 0, u[-1, :], down, 0)
        comm.Sendrecv(u[-2, :], down, 1, u[0, :], up, 1)
        c = u[1:-1, 1:-1]
        u[1:-1, 1:-1] = 0.2 * ((((c + u[:-2, 1:-1]) + u[1:-1, 2:]) + u[1:-1, :-2]) + u[2:, 1:-1])

    plain = []
    for _ in range(steps):
        t0 = time.perf_counter()
        iterate()
        plain.append(time.perf_counter() - t0)
    path = os.path.join(d, f"heat-{mode}")
    if rank == 0:
        shutil.rmtree(path, ignore_errors=True)
    comm.Barrier()
    cp = ck.Checkpointer(comm, path, every=every, keep=2, final=False, mode=mode)
    cp.restore({"u": ck.Distributed(u[1:-1, 1:-1], (y0, 0), (n, n))})
    normal, saving = [], []
    it = iter(cp.steps(steps))
    while True:
        t0 = time.perf_counter()
        try:
            s = next(it)  # the loop helper's boundary: policy check, save when due
        except StopIteration:
            break
        iterate()
        dt = time.perf_counter() - t0
        (saving if s > 0 and s % every == 0 else normal).append(dt)
    if rank == 0:
        shutil.rmtree(path, ignore_errors=True)
    med = lambda v: comm.allreduce(float(np.median(v)) if v else float("nan"), op=MPI.MAX)
    return {"normal_s": med(normal), "ckpt_s": med(saving), "plain_s": med(plain),
            "ratio": med(saving) / med(normal)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="16M,256M")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/ckpt-bench-py")
    ap.add_argument("--heat-n", type=int, default=100)
    ap.add_argument("--heat-steps", type=int, default=600)
    ap.add_argument("--heat-every", type=int, default=50)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    os.environ.setdefault("CKPT_QUIET", "1")
    if rank == 0:
        os.makedirs(a.dir, exist_ok=True)
    comm.Barrier()
    results = []
    for s in a.sizes.split(","):
        b, med, runs = run_size(parse_size(s), a.repeats, a.dir)
        results.append({"bytes": b, "median_s": med, "runs": runs})
    heat = {m: heat_ratio(a.heat_n, a.heat_steps, a.heat_every, a.dir, m) for m in ("async", "sync")}
    if rank == 0:
        shutil.rmtree(a.dir, ignore_errors=True)
        doc = {"ranks": size, "repeats": a.repeats, "sizes": results,
               "heat": {"n": a.heat_n, "every": a.heat_every, "steps": a.heat_steps, **heat}}
        if a.json:
            print(json.dumps(doc))
            return
        print(f"bench_python: {size} rank{'s' if size > 1 else ''}, {a.repeats} interleaved rounds, medians")
        print(f"{'size':>10} {'method':>10} {'seconds':>9} {'GB/s':>7} {'vs ck.save':>10}")
        for r in results:
            ck_t = r["median_s"]["ck.save"]
            for m, t in r["median_s"].items():
                print(f"{r['bytes'] / 2**20:8.0f}Mi {m:>10} {t:9.4f} {r['bytes'] / t / 1e9:7.3f} {t / ck_t:9.2f}x")
        for m, h in heat.items():
            print(f"heat {a.heat_n}x{a.heat_n} every {a.heat_every} ({m}): normal iteration {h['normal_s']:.3g} s, "
                  f"checkpointing iteration {h['ckpt_s']:.3g} s, ratio {h['ratio']:.2f} (target <= 1.5 for async)")


if __name__ == "__main__":
    main()
