#!/usr/bin/python3
"""save_cost.py: the scaling table of a small save's fixed cost. Runs build/bin/ckpt-save-cost
(a 100x100 float64 grid + a step counter, 20 saves) at each rank count with the counting
library preloaded, sync and async, and prints per save: the time (median, slowest rank),
the MPI collectives of the busiest rank, the fsyncs of rank 0 and of all ranks, renames,
HDF5 file creates and opens; and, from a loop of 2000 cheap steps with a checkpoint every
500 (counted boundary by boundary), the collectives per step boundary that neither
checkpoints nor agrees on stop/clock flags, and the agreements per 100 steps. Rank counts above the cores are oversubscribed, so times there show
the scheduler more than ckpt; the counts do not depend on it.

    /usr/bin/python3 apps/bench/save_cost.py [--bin build/bin] [--ranks 1,2,4,8,16]
                     [--n 100] [--saves 20] [--rounds 1] [--baseline OTHER/bin]
                     [--python] [--dir /tmp/ckpt-save-cost] [--json-out F]

--baseline runs another build's ckpt-save-cost (for example one of an older commit) in
the same rounds, interleaved with this one, and adds its numbers to each row.

--python measures the same state saved from Python instead (apps/bench/py_save_cost.py,
with the bindings of the build next to --bin, BIN/../python): per call of `ck.save`, of a
sync `ck.Checkpointer`'s save, of the core session alone saving the same field set and of
pickle + fsync + rename (interleaved in one process), the time of the slowest rank, the
ratios of ck.save to pickle and to the core alone, and the collectives of the busiest rank;
also the collectives of the first ck.save call, which opens the session that later calls
reuse. With --baseline, the Python layer of that build (BASELINE/../python) runs in the same
processes over this build's extension module (its methods interleaved with this build's),
so the brackets compare the Python layers over the same core.
"""
import statistics
import argparse
import json
import os
import subprocess
import sys

MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1", "OMPI_MCA_btl_vader_single_copy_mechanism": "none"}


def run_counted(cmd, env, timeout):
    """Runs one measuring job (its ranks preloaded with the counting library) and returns
    the JSON row its last output line holds."""
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        sys.exit(f"save_cost.py: {' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
    row = json.loads(r.stdout.strip().splitlines()[-1])
    if not row.get("counted"):
        sys.exit("save_cost.py: the counting library was not preloaded into the ranks")
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--bin", default=os.path.join(root, "build", "bin"))
    ap.add_argument("--ranks", default="1,2,4,8,16")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--saves", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--baseline", help="another build's bin directory, run interleaved")
    ap.add_argument("--dir", default="/tmp/ckpt-save-cost")
    ap.add_argument("--python", action="store_true", help="save from Python (ck.save, "
                    "ck.Checkpointer) with pickle + fsync + rename alongside")
    ap.add_argument("--json-out")
    a = ap.parse_args()
    if a.python:
        return python_main(a, root)
    exe = os.path.join(a.bin, "ckpt-save-cost")
    lib = os.path.join(os.path.dirname(a.bin), "lib", "libckpt_count_calls.so")
    for f in (exe, lib):
        if not os.path.exists(f):
            sys.exit(f"save_cost.py: {f} is missing; build first (make build)")
    env = dict(os.environ, **MPI_ENV)

    def run(exe, p, mode):
        cmd = ["mpiexec", "-n", str(p), "-x", "LD_PRELOAD=" + lib, exe, "--n", str(a.n),
               "--saves", str(a.saves), "--mode", mode, "--dir", a.dir]
        return run_counted(cmd, env, 600)

    builds = {"this": exe}
    if a.baseline:
        builds["baseline"] = os.path.join(a.baseline, "ckpt-save-cost")
    runs = {}
    for _ in range(a.rounds):  # rounds interleave the builds, rank counts and modes
        for p in (int(x) for x in a.ranks.split(",")):
            for mode in ("sync", "async"):
                for name, e in builds.items():
                    runs.setdefault((p, mode, name), []).append(run(e, p, mode))
    rows = []
    for (p, mode, name), rs in runs.items():
        if name != "this":
            continue
        row = dict(rs[-1], save_seconds=statistics.median(r["save_seconds"] for r in rs))
        if a.baseline:
            bs = runs[(p, mode, "baseline")]
            row["baseline"] = dict(bs[-1], save_seconds=statistics.median(r["save_seconds"] for r in bs))
        rows.append(row)
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(rows, f, indent=1)
    print(f"fixed cost of one save: {a.n}x{a.n} float64 grid + step counter, {a.saves} saves x "
          f"{a.rounds} round(s), medians; counts per save" + ("; baseline in [brackets]" if a.baseline else ""))
    print("| ranks | mode | save ms | collectives (busiest rank) | fsyncs rank 0 | fsyncs all ranks "
          "| renames | HDF5 creates + opens | collectives per plain step | agreements per 100 steps |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")

    def cells(r):
        s = r["per_save"]
        c = [f"{r['save_seconds'] * 1e3:.2f}", f"{s['collectives_max_rank']:.0f} + {s['icollectives_max_rank']:.0f} nb",
             f"{s['fsyncs_rank0']:.0f}", f"{s['fsyncs_all_ranks']:.0f}", f"{s['renames']:.0f}",
             f"{s['h5_creates']:.0f} + {s['h5_opens']:.0f}"]
        if "loop" in r:
            t = r["loop"]
            return c + [f"{t['plain_collectives'] / max(t['plain'], 1):.2f}",
                        f"{100 * t['agreements'] / t['boundaries']:.2f}"]
        # A build from before the agreement boundaries: its plain steps, each agreeing.
        t = r["per_step"]
        return c + [f"{t['collectives'] + t['icollectives']:.2f}", "100"]

    for r in rows:
        c = cells(r)
        if "baseline" in r:
            c = [f"{x} [{y}]" for x, y in zip(c, cells(r["baseline"]))]
        print(f"| {r['ranks']} | {r['mode']} | " + " | ".join(c) + " |")


def python_main(a, root):
    """--python: apps/bench/py_save_cost.py at each rank count (with --baseline, the older
    build's Python layer runs in the same processes, over this build's extension)."""
    worker = os.path.join(root, "apps", "bench", "py_save_cost.py")
    lib = os.path.join(os.path.dirname(a.bin), "lib", "libckpt_count_calls.so")
    pypath = os.path.join(os.path.dirname(a.bin), "python")
    base = os.path.join(os.path.dirname(a.baseline), "python") if a.baseline else None
    for f in [lib, os.path.join(pypath, "ckpt")] + ([os.path.join(base, "ckpt")] if base else []):
        if not os.path.exists(f):
            sys.exit(f"save_cost.py: {f} is missing; build first (make build)")
    env = dict(os.environ, **MPI_ENV)

    def run(p):
        cmd = ["mpiexec", "-n", str(p), "-x", "LD_PRELOAD=" + lib, "-x", "PYTHONPATH=" + pypath,
               "-x", "PYTHONDONTWRITEBYTECODE=1", "/usr/bin/python3", worker, "--n", str(a.n),
               "--saves", str(a.saves), "--dir", a.dir] + (["--baseline-python", base] if base else [])
        return run_counted(cmd, env, 900)

    runs = {}
    for _ in range(a.rounds):
        for p in (int(x) for x in a.ranks.split(",")):
            runs.setdefault(p, []).append(run(p))

    def summary(rs, suffix=""):
        save, cp = "ck.save" + suffix, "Checkpointer" + suffix

        def ratio(m, ref):
            return statistics.median(r["methods"][m]["seconds"] / r["methods"][ref]["seconds"] for r in rs)
        last = rs[-1]["methods"]
        return {"ms": {k: statistics.median(r["methods"][m]["seconds"] for r in rs) * 1e3
                       for k, m in (("save", save), ("cp", cp), ("core", "core"), ("pickle", "pickle"))},
                "pickle_ratio": ratio(save, "pickle"), "core_ratio": ratio(save, "core"),
                "cp_core_ratio": ratio(cp, "core"),
                "coll": {"save": last[save]["collectives_max_rank"], "cp": last[cp]["collectives_max_rank"],
                         "core": last["core"]["collectives_max_rank"],
                         "first": rs[-1]["first_calls"][save]["collectives_max_rank"]},
                "fsyncs": last[save]["fsyncs_all_ranks"],
                "h5": (last[save]["h5_creates"], last[save]["h5_opens"])}

    rows = []
    for p, rs in runs.items():
        row = {"ranks": p, "this": summary(rs), "runs": rs}
        if base:
            row["baseline"] = summary(rs, "@base")
        rows.append(row)
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(rows, f, indent=1)
    print(f"small saves from Python: {a.n}x{a.n} float64 grid (ck.Distributed) + step, {a.saves} "
          f"calls x {a.rounds} round(s), methods interleaved in one process, medians of the "
          "slowest rank; counts per call (busiest rank)"
          + ("; the baseline's Python layer (same core) in [brackets]" if base else ""))
    print("| ranks | ck.save ms | Checkpointer ms | core alone ms | pickle + fsync + rename ms "
          "| ck.save / pickle | ck.save / core | Checkpointer / core | collectives ck.save "
          "(first call) | collectives Checkpointer save | collectives core save "
          "| fsyncs ck.save (all ranks) | HDF5 creates + opens ck.save |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")

    def cells(s):
        m, c = s["ms"], s["coll"]
        return [f"{m['save']:.2f}", f"{m['cp']:.2f}", f"{m['core']:.2f}", f"{m['pickle']:.2f}",
                f"{s['pickle_ratio']:.2f}x", f"{s['core_ratio']:.2f}x", f"{s['cp_core_ratio']:.2f}x",
                f"{c['save']:.0f} ({c['first']:.0f})", f"{c['cp']:.0f}", f"{c['core']:.0f}",
                f"{s['fsyncs']:.0f}", "{:.0f} + {:.0f}".format(*s["h5"])]

    for r in rows:
        c = cells(r["this"])
        if "baseline" in r:
            # The core and pickle columns are the same calls for both.
            c = [x if i in (2, 3, 9, 10, 11) else f"{x} [{y}]"
                 for i, (x, y) in enumerate(zip(c, cells(r["baseline"])))]
        print(f"| {r['ranks']} | " + " | ".join(c) + " |")


if __name__ == "__main__":
    main()
