#!/usr/bin/python3
"""The ckpt demo: a real solver, interrupted and resumed, compared bit for bit.

1. runs the heat solver on 4 MPI ranks without interruption;
2. runs it again, kills the whole job (SIGKILL) mid-run, resumes it on 4 ranks, kills it
   again, and resumes it on 3 ranks until it finishes;
3. compares the digests of the final grids and prints a summary.

Exits 0 when the interrupted run ends bitwise identical to the uninterrupted one.
Usage: demo.py [--bin build/bin] [--n 1024] [--steps 1200] [--every 100] [--workdir DIR]
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

ENV = dict(os.environ,
           OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1",
           OMPI_MCA_btl_vader_single_copy_mechanism="none")


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mpijob import kill_job  # noqa: E402


def heat_cmd(args, np_, ckdir):
    return ["mpiexec", "-n", str(np_), os.path.join(args.bin, "heat"), "--n", str(args.n),
            "--steps", str(args.steps), "--every", str(args.every), "--dir", ckdir]


def run(args, np_, ckdir, kill_after=None):
    """Runs heat; with kill_after, SIGKILLs the whole job after that many seconds.
    Returns (digest or None, seconds, output)."""
    t0 = time.monotonic()
    p = subprocess.Popen(heat_cmd(args, np_, ckdir), env=ENV, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        kill_job(p)
        out, _ = p.communicate()
        return None, time.monotonic() - t0, out
    secs = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"demo: heat failed (exit {p.returncode}):\n{out}")
    m = re.search(r"^result: ([0-9a-f]+)$", out, re.M)
    return (m.group(1) if m else None), secs, out


def saves(ckdir):
    """The save records ckpt appended to the statistics log of a checkpoint directory."""
    path = os.path.join(ckdir, "ckpt-stats.jsonl")
    if not os.path.exists(path):
        return [], []
    recs = [json.loads(line) for line in open(path) if line.strip()]
    return [r for r in recs if r["event"] == "save"], [r for r in recs if r["event"] == "restore"]


def newest(ckdir):
    """Step of the newest committed checkpoint file in a directory."""
    steps = [int(m.group(1)) for f in os.listdir(ckdir)
             if (m := re.fullmatch(r"ckpt-(\d+)\.h5", f))] if os.path.isdir(ckdir) else []
    return max(steps) if steps else "none"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--bin", default=os.path.join(here, "..", "build", "bin"))
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--workdir", default=os.path.join(here, "..", "build", "demo"))
    args = ap.parse_args()
    args.bin = os.path.abspath(args.bin)
    args.workdir = os.path.abspath(args.workdir)
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    straight = os.path.join(args.workdir, "uninterrupted")
    broken = os.path.join(args.workdir, "interrupted")

    print(f"ckpt demo: heat equation, {args.n}x{args.n} grid, {args.steps} steps, "
          f"checkpoint every {args.every} steps\n")
    print("[1/4] uninterrupted run on 4 ranks ...", flush=True)
    ref, ref_secs, _ = run(args, 4, straight)
    print(f"      finished in {ref_secs:.1f} s, result {ref}")

    kill_at = max(1.5, 0.45 * ref_secs)
    print(f"[2/4] interrupted run on 4 ranks, SIGKILL of the whole job after {kill_at:.1f} s ...",
          flush=True)
    d, secs, _ = run(args, 4, broken, kill_after=kill_at)
    if d is not None:
        sys.exit("demo: the run finished before it could be killed; use more --steps")
    print(f"      killed; newest checkpoint: step {newest(broken)}")
    print(f"[3/4] resumed on 4 ranks, SIGKILL again after {kill_at:.1f} s ...", flush=True)
    d, secs, _ = run(args, 4, broken, kill_after=kill_at)
    s, r = saves(broken)
    print(f"      {'killed' if d is None else 'finished'}; resumed from step "
          f"{r[-1]['step'] if r else 'none'}, newest checkpoint: step {newest(broken)}")
    print("[4/4] resumed on 3 ranks (a different rank count) until the end ...", flush=True)
    res, secs, _ = run(args, 3, broken)
    s, r = saves(broken)
    print(f"      finished; resumed from step {r[-1]['step'] if r else 'none'}, result {res}\n")

    ref_saves, _ = saves(straight)
    n_ck = len(ref_saves)
    total_bytes = sum(x["bytes"] for x in ref_saves)
    ck_secs = sum(x["blocked_seconds"] for x in ref_saves)
    identical = res is not None and res == ref
    rows = [
        ("uninterrupted result", ref),
        ("interrupted result", res),
        ("kills / resumes", f"2 SIGKILLs, {len(r)} resumes (ranks 4 -> 4 -> 3)"),
        ("checkpoints (uninterrupted run)", f"{n_ck} of {total_bytes / n_ck / 2**20:.1f} MiB each"
         if n_ck else "0"),
        ("time per checkpoint", f"{ck_secs / n_ck:.3f} s" if n_ck else "-"),
        ("checkpoint overhead", f"{100 * ck_secs / ref_secs:.1f} % of {ref_secs:.1f} s run time"),
        ("checkpoints (interrupted runs)", f"{len(s)} saves, {len(r)} restores"),
        ("identical", "yes" if identical else "NO"),
    ]
    w = max(len(k) for k, _ in rows)
    print("summary")
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")
    print(f"\ncheckpoints are in {broken} (HDF5: open them with h5py or h5dump)")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
