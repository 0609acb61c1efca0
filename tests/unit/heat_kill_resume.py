#!/usr/bin/python3
"""heat killed by SIGKILL at random steps chosen from its progress (many of them while a
checkpoint is being written), resumed each time, ends with the same `result:` as an
uninterrupted run, on 4 ranks and when resumed on 3. Exits non-zero on any difference."""
import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("--bin", required=True)
ap.add_argument("--kills", type=int, default=20)
ap.add_argument("--seed", type=int, default=int(time.time()))
args = ap.parse_args()
rng = random.Random(args.seed)
print(f"seed {args.seed}")
N, STEPS, EVERY = 512, 2000, 25
work = tempfile.mkdtemp(prefix="ckpt-heat-kill-")


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "apps"))
from mpijob import Job  # noqa: E402


def cmd(np_, d):
    return ["mpiexec", "-n", str(np_), os.path.join(args.bin, "heat"), "--n", str(N),
            "--steps", str(STEPS), "--every", str(EVERY), "--dir", d]


def finish(np_, d):
    out = subprocess.run(cmd(np_, d), capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.exit(f"heat failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return re.search(r"^result: ([0-9a-f]{32})$", out.stdout, re.M).group(1), out.stderr


def temp_files(d):
    return [f for f in os.listdir(d) if f.endswith(".tmp")] if os.path.isdir(d) else []


def committed(d):
    return sorted(int(m.group(1)) for f in os.listdir(d)
                  if (m := re.fullmatch(r"ckpt-(\d+)\.h5", f))) if os.path.isdir(d) else []


def kill_campaign(d, kills, nps):
    """Kills the job `kills` times, each time at a point chosen from its progress: after the
    attempt committed a new checkpoint, at a random step of the next checkpoint interval.
    Every other kill aims at the next checkpoint's write: it waits for that step, then for
    the write's temporary file, and kills then. Asserts that every kill landed mid-run and
    that every attempt resumed from the newest committed checkpoint. Returns how many kills
    left a checkpoint half-written (a temporary file on disk after the kill)."""
    assert STEPS > (2 * kills + 1) * EVERY, "too few steps for the kills asked"
    during_write = 0
    for i in range(1, kills + 1):
        np_ = nps[i % len(nps)]
        before = committed(d)
        job = Job(cmd(np_, d))
        first = job.wait_saved_after(-1)
        if first is None:
            sys.exit(f"attempt {i} committed no checkpoint:\n{job.stderr()}")
        if i % 2 == 1:
            target = first + EVERY
            job.wait_step(target)
            job.wait_for(lambda j: temp_files(d) or any(s >= target for s in j.saved),
                         poll=0.0005)
        else:
            job.wait_step(first + rng.randint(1, EVERY))
        at = job.step
        if not job.kill():
            sys.exit(f"attempt {i} ended before its kill (rc {job.p.returncode})")
        if before and job.restored != before[-1]:
            sys.exit(f"attempt {i} restored {job.restored}, the newest checkpoint was "
                     f"{before[-1]}")
        writing = bool(temp_files(d))
        during_write += writing
        print(f"  kill {i:2d} on {np_} ranks at step {at}"
              f"{' during a write' if writing else ''}: resumed from "
              f"{before[-1] if before else 'none'}, committed steps {committed(d)[-3:]}",
              flush=True)
    return during_write


try:
    ref, _ = finish(4, os.path.join(work, "ref"))
    print(f"uninterrupted: {ref}")
    d = os.path.join(work, "a")
    w = kill_campaign(d, args.kills, [4, 4, 3])
    got, log = finish(4, d)
    print(f"kills mid-run {args.kills} of {args.kills} ({w} during checkpoint writes), "
          f"resumed {args.kills} of {args.kills}; finished on 4 ranks: {got}")
    d2 = os.path.join(work, "b")
    w2 = kill_campaign(d2, 4, [4])
    got3, log3 = finish(3, d2)
    print(f"kills mid-run 4 of 4 on 4 ranks ({w2} during writes), finished on 3 ranks: {got3}")
    ok = got == ref and got3 == ref and w >= 3
    if w < 3:
        print("too few kills landed during checkpoint writes")
    print("identical: yes" if ok else "identical: NO")
    sys.exit(0 if ok else 1)
finally:
    shutil.rmtree(work, ignore_errors=True)
