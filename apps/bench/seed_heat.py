#!/usr/bin/python3
"""seed_heat.py: the experiment ckpt started from, as a benchmark. A 2-D Jacobi heat solver
(the benchpress heat equation, numpy + mpi4py, rows split over the ranks) checkpoints its
grid every --every iterations, once with each way of saving state. Every method runs the
same solver for the same iterations; methods are interleaved in each round (A B C ... A B C
...) so that the disk's drift hits them all alike.

    mpiexec -n N /usr/bin/python3 apps/bench/seed_heat.py [--n 100,1000] [--rounds 3]
            [--steps 3000] [--steps-big 500] [--every 100] [--dir D] [--json-out F]
            [--methods M,M,...] [--baseline-python OTHER/build/python]

Methods (each makes its checkpoint durable before the iteration ends, except where said):

    none        no checkpoint: the reference run of the round
    pickle      pickle protocol 5 of {u, step} to a per-rank temp file, fsync, rename
    np.save     np.save of the grid to a per-rank file, fsync
    dill        dill.dump_session of a module holding the solver's state (u, step), to a
                per-rank file, no fsync (what the original study timed); skipped when
                python3-dill is missing
    h5py        h5py per rank: one file per rank, one dataset, close, fsync
    h5py-mpio   h5py driver="mpio": one file, the grid at global shape, collective write,
                close, fsync
    ck.save     ckpt.save(comm, {"u": Distributed, "step": k}, dir, step=k, keep=2)
    ckpt-sync   ckpt.Checkpointer(mode="sync", every=K): the loop helper cp.steps()
    ckpt-async  ckpt.Checkpointer(mode="async", every=K): save() copies and returns, the
                write overlaps the next iterations, the commit rides on a later step boundary

--baseline-python DIR adds "ck.save@base", "ckpt-sync@base" and "ckpt-async@base": the same
methods through the Python layer of another build (DIR/ckpt, e.g. an older commit's
build/python), loaded as the package `ckpt_baseline` next to this one, in the same process
and interleaved with this build's methods. The baseline's modules use THIS build's
extension module (ckpt._ckpt), so this compares the Python layers over the same core; it
needs an extension with the same interface.

Reported per method (median over rounds; per iteration the slowest rank):

    ckpt iter / normal   the median checkpointing iteration over the median iteration of the
                         round's `none` run
    per checkpoint       the median checkpointing iteration minus that normal iteration
    overhead             (run time - the round's `none` run time) / `none` run time; this
                         includes what a save costs later iterations (async writes, commits)

Times come from time.perf_counter on each rank; the table is ratios measured side by side in
one run. Files go to --dir (default /tmp/ckpt-seed-heat) and are removed at the end.
"""

import argparse
import json
import os
import pickle
import shutil
import statistics
import sys
import time
import types

import numpy as np
from mpi4py import MPI

import ckpt as ck

try:
    import h5py
except ImportError:  # pragma: no cover - h5py comes from python3-h5py-mpi
    h5py = None
try:
    import dill
except ImportError:
    dill = None

comm = MPI.COMM_WORLD
rank, size = comm.rank, comm.size


def fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Heat:
    """The solver: n x n interior cells split by rows, one ghost layer, fixed boundary 40.0 on
    the top edge and -273.15 on the others (apps/heat.py's problem)."""

    def __init__(self, n):
        self.n = n
        base, rem = divmod(n, size)
        self.rows = base + (1 if rank < rem else 0)
        self.y0 = rank * base + min(rank, rem)
        self.u = np.zeros((self.rows + 2, n + 2))
        self.u[:, 0] = self.u[:, -1] = -273.15
        if rank == 0:
            self.u[0, :] = 40.0
        if rank == size - 1:
            self.u[-1, :] = -273.15
        self.up = rank - 1 if rank > 0 else MPI.PROC_NULL
        self.down = rank + 1 if rank < size - 1 else MPI.PROC_NULL

    def interior(self):
        return self.u[1:-1, 1:-1]

    def iterate(self):
        u = self.u
        comm.Sendrecv(u[1, :], self.up, 0, u[-1, :], self.down, 0)
        comm.Sendrecv(u[-2, :], self.down, 1, u[0, :], self.up, 1)
        c = u[1:-1, 1:-1]
        u[1:-1, 1:-1] = 0.2 * ((((c + u[:-2, 1:-1]) + u[1:-1, 2:]) + u[1:-1, :-2]) + u[2:, 1:-1])

    def digest(self):
        return comm.allreduce(float(np.sum(self.interior())), op=MPI.SUM)


# ---------------------------------------------------------------------------------------
# The ways of saving a checkpoint. Each is called after iteration `step` (1-based count of
# iterations done) when step % every == 0.

def save_pickle(h, d, step):
    f = os.path.join(d, f"state-{rank}.pkl")
    with open(f + ".tmp", "wb") as fh:
        pickle.dump({"u": h.interior(), "step": step}, fh, protocol=5)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(f + ".tmp", f)


def save_npy(h, d, step):
    with open(os.path.join(d, f"u-{rank}.npy"), "wb") as fh:
        np.save(fh, h.interior())
        fh.flush()
        os.fsync(fh.fileno())


_session = types.ModuleType("seed_heat_session")  # the "program globals" dill dumps


def save_dill(h, d, step):
    _session.u = h.interior()
    _session.step = step
    dill.dump_session(os.path.join(d, f"session-{rank}.pkl"), main=_session)


def save_h5py(h, d, step):
    f = os.path.join(d, f"u-{rank}.h5")
    with h5py.File(f, "w") as fh:
        fh.create_dataset("u", data=h.interior())
        fh.attrs["step"] = step
    fsync_file(f)


def save_h5py_mpio(h, d, step):
    f = os.path.join(d, "u.h5")
    with h5py.File(f, "w", driver="mpio", comm=comm) as fh:
        ds = fh.create_dataset("u", (h.n, h.n), dtype="f8")
        with ds.collective:
            ds[h.y0:h.y0 + h.rows, :] = h.interior()
        fh.attrs["step"] = step
    fsync_file(f)


def save_ck(h, d, step, pkg=ck):
    pkg.save(comm, {"u": pkg.Distributed(h.interior(), (h.y0, 0), (h.n, h.n)), "step": step}, d,
             step=step, keep=2)


BASE = {}  # "ckpt": the baseline package (--baseline-python)


def load_baseline(path):
    """The Python layer of another build as the package ckpt_baseline, sharing this build's
    extension module."""
    import importlib.util
    pkg_dir = os.path.join(path, "ckpt")
    sys.modules["ckpt_baseline._ckpt"] = ck._ckpt
    spec = importlib.util.spec_from_file_location(
        "ckpt_baseline", os.path.join(pkg_dir, "__init__.py"), submodule_search_locations=[pkg_dir])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["ckpt_baseline"] = mod
    spec.loader.exec_module(mod)
    return mod


PLAIN = {"none": None, "pickle": save_pickle, "np.save": save_npy, "dill": save_dill,
         "h5py": save_h5py, "h5py-mpio": save_h5py_mpio, "ck.save": save_ck,
         "ck.save@base": lambda h, d, step: save_ck(h, d, step, BASE["ckpt"])}


def run_plain(method, n, steps, every, d):
    """The solver with `method` called every `every` iterations; per-iteration times."""
    h = Heat(n)
    fn = PLAIN[method]
    times = np.empty(steps)
    comm.Barrier()
    start = time.perf_counter()
    for i in range(steps):
        t0 = time.perf_counter()
        h.iterate()
        if fn is not None and (i + 1) % every == 0:
            fn(h, d, i + 1)
        times[i] = time.perf_counter() - t0
    total = time.perf_counter() - start
    return times, total, h.digest()


def run_checkpointer(mode, n, steps, every, d, pkg=ck):
    """The same solver in ckpt's loop helper, which saves (by its every=K policy) at the
    boundary after each iteration; that boundary is timed with the iteration before it."""
    h = Heat(n)
    cp = pkg.Checkpointer(comm, d, every=every, keep=2, final=False, mode=mode)
    cp.restore({"u": pkg.Distributed(h.interior(), (h.y0, 0), (h.n, h.n))})
    times = np.empty(steps)
    it = iter(cp.steps(steps))
    next(it)  # step 0: nothing done yet
    comm.Barrier()
    start = time.perf_counter()
    for i in range(steps):
        t0 = time.perf_counter()
        h.iterate()
        try:
            next(it)  # the boundary after i + 1 iterations: policy, save when due
        except StopIteration:  # after the last one: its save, and wait() for an async one
            if i != steps - 1:
                raise SystemExit(f"seed_heat: the loop helper ended after {i + 1} of {steps} steps")
        times[i] = time.perf_counter() - t0
    total = time.perf_counter() - start
    return times, total, h.digest()


def run(method, n, steps, every, d):
    if rank == 0:
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    comm.Barrier()
    if method.split("@")[0] in ("ckpt-sync", "ckpt-async"):
        pkg = BASE["ckpt"] if method.endswith("@base") else ck
        mode = method.split("@")[0].split("-")[1]
        times, total, digest = run_checkpointer(mode, n, steps, every, d, pkg)
    else:
        times, total, digest = run_plain(method, n, steps, every, d)
    comm.Allreduce(MPI.IN_PLACE, times, op=MPI.MAX)  # per iteration, the slowest rank
    total = comm.allreduce(total, op=MPI.MAX)
    comm.Barrier()
    if rank == 0:
        shutil.rmtree(d, ignore_errors=True)
    return times, total, digest


def measure(n, steps, every, rounds, methods, base):
    ckpt_iters = [i for i in range(steps) if (i + 1) % every == 0]
    normal_iters = [i for i in range(steps) if (i + 1) % every != 0]
    per = {m: {"ratio": [], "per_ckpt": [], "overhead": [], "total": []} for m in methods}
    digests = {}
    for _ in range(rounds):
        ref_total = ref_normal = None
        for m in methods:
            times, total, digest = run(m, n, steps, every, os.path.join(base, m.replace(".", "_")))
            digests.setdefault(m, digest)
            if m == "none":
                ref_total, ref_normal = total, float(np.median(times[normal_iters]))
                continue
            ck_iter = float(np.median(times[ckpt_iters]))
            per[m]["ratio"].append(ck_iter / ref_normal)
            per[m]["per_ckpt"].append(ck_iter - ref_normal)
            per[m]["overhead"].append((total - ref_total) / ref_total)
            per[m]["total"].append(total)
        per["none"]["total"].append(ref_total)
        per["none"]["normal"] = per["none"].get("normal", []) + [ref_normal]
    # Every method ran the same solver: the results must agree.
    if len({round(v, 6) for v in digests.values()}) != 1:
        raise SystemExit(f"seed_heat: the methods' results differ: {digests}")
    return {m: {k: statistics.median(v) for k, v in r.items() if v} for m, r in per.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", default="100,1000", help="grid sizes, comma-separated")
    ap.add_argument("--steps", type=int, default=3000, help="iterations for grids up to 200x200")
    ap.add_argument("--steps-big", type=int, default=500, help="iterations for larger grids")
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--methods", default=None, help="comma-separated subset (default: all available)")
    ap.add_argument("--dir", default="/tmp/ckpt-seed-heat")
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--baseline-python", default=None,
                    help="another build's python directory: its ck.save and Checkpointer "
                    "run interleaved as the methods NAME@base")
    a = ap.parse_args()
    os.environ.setdefault("CKPT_QUIET", "1")
    methods = [m for m in PLAIN if not m.endswith("@base")] + ["ckpt-sync", "ckpt-async"]
    if a.baseline_python:
        BASE["ckpt"] = load_baseline(a.baseline_python)
        at = methods.index("ck.save") + 1
        methods[at:at] = ["ck.save@base"]
        methods += ["ckpt-sync@base", "ckpt-async@base"]
    if a.methods:
        methods = ["none"] + [m for m in a.methods.split(",") if m != "none"]
    missing = {"dill": dill is None, "h5py": h5py is None, "h5py-mpio": h5py is None}
    skipped = [m for m in methods if missing.get(m)]
    methods = [m for m in methods if not missing.get(m)]
    unknown = [m for m in methods if m not in PLAIN and m.split("@")[0] not in ("ckpt-sync", "ckpt-async")
               or m.endswith("@base") and "ckpt" not in BASE]
    if unknown:
        raise SystemExit(f"seed_heat: unknown methods {unknown}")
    results = []
    for n in (int(x) for x in a.n.split(",")):
        steps = a.steps if n <= 200 else a.steps_big
        r = measure(n, steps, a.every, a.rounds, methods, a.dir)
        results.append({"n": n, "steps": steps, "every": a.every, "methods": r})
    if rank != 0:
        return
    doc = {"ranks": size, "rounds": a.rounds, "skipped": skipped, "results": results}
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(doc, f, indent=1)
    print(f"seed_heat: {size} rank{'s' if size > 1 else ''}, {a.rounds} interleaved rounds, medians"
          + (f"; skipped (not installed): {', '.join(skipped)}" if skipped else ""))
    for r in results:
        m = r["methods"]
        normal = m["none"]["normal"]
        print(f"\nheat {r['n']}x{r['n']}, {r['steps']} iterations, a checkpoint every {r['every']}; "
              f"normal iteration {normal * 1e3:.3f} ms")
        print(f"{'method':>15} {'ckpt iter / normal':>19} {'per checkpoint':>15} {'overhead':>9}")
        for name, v in m.items():
            if name == "none":
                continue
            print(f"{name:>15} {v['ratio']:18.1f}x {v['per_ckpt'] * 1e3:12.3f} ms {v['overhead'] * 100:8.1f}%")
        for name in ("ck.save", "ck.save@base"):
            if name in m and "pickle" in m:
                print(f"{name} per checkpoint / pickle + fsync + rename: "
                      f"{m[name]['per_ckpt'] / m['pickle']['per_ckpt']:.2f}x (target <= 1.2)")


if __name__ == "__main__":
    main()
