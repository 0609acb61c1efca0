#!/usr/bin/python3
"""The ckpt demo: a real solver, interrupted and resumed, compared bit for bit.

1. runs the heat solver on 4 MPI ranks without interruption;
2. runs it again and kills the whole job (SIGKILL) mid-run, at a random step after its
   first checkpoint; resumes it on 4 ranks and kills it again after the next checkpoint;
   resumes it on 3 ranks (a different rank count) until it finishes;
3. compares the digests of the final grids and prints a summary.

Every kill is placed from the run's progress (the CKPT_PROGRESS lines: a checkpoint
committed, a step reached), never after a guessed delay, so the demo shows the same thing
on a fast and on a slow machine. The demo checks what its summary claims: each kill landed
mid-run, each resume started from the newest committed checkpoint, the run on 3 ranks did
at least a third of the steps, and the results are identical. It exits 0 only then.
Usage: demo.py [--bin build/bin] [--n 1024] [--steps 1200] [--every 100] [--seed S]
"""
import argparse
import json
import os
import random
import re
import shutil
import sys
import time

ENV = dict(os.environ,
           OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1",
           OMPI_MCA_btl_vader_single_copy_mechanism="none")


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mpijob import Job, committed_steps  # noqa: E402


def heat_cmd(args, np_, ckdir):
    return ["mpiexec", "-n", str(np_), os.path.join(args.bin, "heat"), "--n", str(args.n),
            "--steps", str(args.steps), "--every", str(args.every), "--dir", ckdir]


def fail(msg):
    sys.exit(f"demo: FAILED: {msg}")


def finish(job):
    """Waits for a run to end; its digest and seconds."""
    rc = job.wait(1800)
    secs = time.monotonic() - job.t0
    if rc != 0:
        fail(f"heat exited {rc}:\n{job.stdout()}\n{job.stderr()}")
    m = re.search(r"^result: ([0-9a-f]+)$", job.stdout(), re.M)
    if not m:
        fail(f"heat printed no result:\n{job.stdout()}")
    return m.group(1), secs


def start(args, np_, ckdir):
    job = Job(heat_cmd(args, np_, ckdir), env=ENV)
    job.t0 = time.monotonic()
    return job


def interrupt(args, job, rng, latest):
    """Kills `job` at a random step of the interval after the first checkpoint it commits,
    but no later than step `latest`; checks that the kill landed mid-run. Returns the last
    step the run reported before it died."""
    first = job.wait_saved_after(-1)
    if first is None:
        fail(f"the run committed no checkpoint:\n{job.stderr()}")
    target = min(first + rng.randint(1, args.every), latest)
    if not job.kill_at_step(target) or job.lines_with("result:"):
        fail(f"the run ended before its kill at step {target}")
    return job.killed_at


def newest(ckdir):
    steps = committed_steps(ckdir)
    return steps[-1] if steps else None


def saves(ckdir):
    """The save records ckpt appended to the statistics log of a checkpoint directory."""
    path = os.path.join(ckdir, "ckpt-stats.jsonl")
    if not os.path.exists(path):
        return [], []
    recs = [json.loads(line) for line in open(path) if line.strip()]
    return [r for r in recs if r["event"] == "save"], [r for r in recs if r["event"] == "restore"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--bin", default=os.path.join(here, "..", "build", "bin"))
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--workdir", default=os.path.join(here, "..", "build", "demo"))
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    args.bin = os.path.abspath(args.bin)
    args.workdir = os.path.abspath(args.workdir)
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    straight = os.path.join(args.workdir, "uninterrupted")
    broken = os.path.join(args.workdir, "interrupted")

    if args.steps < 6 * args.every:
        fail("--steps must be at least 6 checkpoint intervals (--every)")
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    print(f"ckpt demo: heat equation, {args.n}x{args.n} grid, {args.steps} steps, "
          f"checkpoint every {args.every} steps (kill steps drawn with --seed {seed})\n")
    print("[1/4] uninterrupted run on 4 ranks ...", flush=True)
    ref, ref_secs = finish(start(args, 4, straight))
    print(f"      finished in {ref_secs:.1f} s, result {ref}")

    # The first kill lands in the first third of the run, the second before two thirds, so
    # the run on 3 ranks does at least a third of the steps.
    third = args.steps // 3
    print("[2/4] interrupted run on 4 ranks, SIGKILL of the whole job at a random step after "
          "its first checkpoint ...", flush=True)
    kill1 = interrupt(args, start(args, 4, broken), rng, third)
    ck1 = newest(broken)
    print(f"      killed at step {kill1}; newest checkpoint: step {ck1}")
    print("[3/4] resumed on 4 ranks, SIGKILL again after its next checkpoint ...", flush=True)
    job = start(args, 4, broken)
    kill2 = interrupt(args, job, rng, 2 * third)
    if job.restored != ck1:
        fail(f"stage 3 resumed from step {job.restored}, the newest checkpoint was {ck1}")
    ck2 = newest(broken)
    print(f"      resumed from step {job.restored}; killed at step {kill2}; newest checkpoint: "
          f"step {ck2}")
    print("[4/4] resumed on 3 ranks (a different rank count) until the end ...", flush=True)
    job = start(args, 3, broken)
    res, _ = finish(job)
    if job.restored != ck2:
        fail(f"stage 4 resumed from step {job.restored}, the newest checkpoint was {ck2}")
    after_change = args.steps - ck2
    print(f"      resumed from step {ck2}; finished, result {res}\n")
    if 3 * after_change < args.steps:
        fail(f"only {after_change} of {args.steps} steps ran on 3 ranks (less than a third)")

    s, r = saves(broken)
    ref_saves, _ = saves(straight)
    n_ck = len(ref_saves)
    total_bytes = sum(x["bytes"] for x in ref_saves)
    ck_secs = sum(x["blocked_seconds"] for x in ref_saves)
    identical = res == ref
    rows = [
        ("uninterrupted result", ref),
        ("interrupted result", res),
        ("kills mid-run", f"{sum(k is not None for k in (kill1, kill2))} of 2"),
        ("kill steps", f"{kill1} (4 ranks), {kill2} (4 ranks)"),
        ("resumed from", f"step {ck1} on 4 ranks, step {ck2} on 3 ranks"),
        ("steps run after the rank change", f"{after_change}"),
        ("checkpoints (uninterrupted run)", f"{n_ck} of {total_bytes / n_ck / 2**20:.1f} MiB each"
         if n_ck else "0"),
        ("time per checkpoint", f"{ck_secs / n_ck:.3f} s" if n_ck else "-"),
        ("checkpoint overhead", f"{100 * ck_secs / ref_secs:.1f} % of the {ref_secs:.1f} s "
         "uninterrupted run (time blocked in saves, measured here)"),
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
