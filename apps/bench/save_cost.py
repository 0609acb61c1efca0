#!/usr/bin/python3
"""save_cost.py: the scaling table of a small save's fixed cost. Runs build/bin/ckpt-save-cost
(a 100x100 float64 grid + a step counter, 20 saves) at each rank count with the counting
library preloaded, sync and async, and prints per save: the time (median, slowest rank),
the MPI collectives of the busiest rank, the fsyncs of rank 0 and of all ranks, renames,
HDF5 file creates and opens; and the collectives per step boundary that neither
checkpoints nor stops. Rank counts above the cores are oversubscribed, so times there show
the scheduler more than ckpt; the counts do not depend on it.

    /usr/bin/python3 apps/bench/save_cost.py [--bin build/bin] [--ranks 1,2,4,8,16]
                     [--n 100] [--saves 20] [--rounds 1] [--baseline OTHER/bin]
                     [--dir /tmp/ckpt-save-cost] [--json-out F]

--baseline runs another build's ckpt-save-cost (for example one of an older commit) in
the same rounds, interleaved with this one, and adds its numbers to each row.
"""
import statistics
import argparse
import json
import os
import subprocess
import sys

MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1", "OMPI_MCA_btl_vader_single_copy_mechanism": "none"}


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
    ap.add_argument("--json-out")
    a = ap.parse_args()
    exe = os.path.join(a.bin, "ckpt-save-cost")
    lib = os.path.join(os.path.dirname(a.bin), "lib", "libckpt_count_calls.so")
    for f in (exe, lib):
        if not os.path.exists(f):
            sys.exit(f"save_cost.py: {f} is missing; build first (make build)")
    env = dict(os.environ, **MPI_ENV)

    def run(exe, p, mode):
        cmd = ["mpiexec", "-n", str(p), "-x", "LD_PRELOAD=" + lib, exe, "--n", str(a.n),
               "--saves", str(a.saves), "--mode", mode, "--dir", a.dir]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            sys.exit(f"save_cost.py: {' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
        row = json.loads(r.stdout.strip().splitlines()[-1])
        if not row.get("counted"):
            sys.exit("save_cost.py: the counting library was not preloaded into the ranks")
        return row

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
          "| renames | HDF5 creates + opens | collectives per plain step |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")

    def cells(r):
        s, t = r["per_save"], r["per_step"]
        return [f"{r['save_seconds'] * 1e3:.2f}", f"{s['collectives_max_rank']:.0f} + {s['icollectives_max_rank']:.0f} nb",
                f"{s['fsyncs_rank0']:.0f}", f"{s['fsyncs_all_ranks']:.0f}", f"{s['renames']:.0f}",
                f"{s['h5_creates']:.0f} + {s['h5_opens']:.0f}",
                f"{t['collectives']:.2f} + {t['icollectives']:.2f} nb"]

    for r in rows:
        c = cells(r)
        if "baseline" in r:
            c = [f"{x} [{y}]" for x, y in zip(c, cells(r["baseline"]))]
        print(f"| {r['ranks']} | {r['mode']} | " + " | ".join(c) + " |")


if __name__ == "__main__":
    main()
