#!/usr/bin/python3
"""heat with async checkpoints, killed by SIGKILL while background writes are in flight
(and once at an injected point after the data is written but before the commit): no kill
may leave a committed checkpoint that is incomplete, every committed checkpoint verifies,
and the resumed run ends bitwise identical to an uninterrupted one."""

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

ap = argparse.ArgumentParser()
ap.add_argument("--bin", required=True)
ap.add_argument("--kills", type=int, default=5)
args = ap.parse_args()
HEAT = os.path.join(args.bin, "heat")
CKPT = os.path.join(args.bin, "ckpt")
N, STEPS, EVERY = 700, 6000, 100
rng = random.Random(6)
work = tempfile.mkdtemp(prefix="ckpt-async-kill-")
env = dict(os.environ, CKPT_MODE="async", CKPT_KEEP="3")


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "apps"))
from mpijob import Job  # noqa: E402


def cmd(np_, d):
    return ["mpiexec", "-n", str(np_), HEAT, "--n", str(N), "--steps", str(STEPS), "--every", str(EVERY), "--dir", d]


def finish(np_, d, extra=None):
    e = dict(env, **(extra or {}))
    r = subprocess.run(cmd(np_, d), env=e, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        sys.exit(f"heat failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    m = re.search(r"result: (\w+)", r.stdout)
    return m.group(1), r


def committed(d):
    return sorted(int(m.group(1)) for f in os.listdir(d) if (m := re.fullmatch(r"ckpt-(\d+)\.h5", f))) \
        if os.path.isdir(d) else []


def verify(d):
    if not committed(d):
        return
    r = subprocess.run([CKPT, "verify", d], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        sys.exit(f"a committed checkpoint does not verify after a kill:\n{r.stdout}\n{r.stderr}")


def temp_files(d):
    return [f for f in os.listdir(d) if f.endswith(".tmp")] if os.path.isdir(d) else []


try:
    ref, _ = finish(2, os.path.join(work, "ref"))
    print(f"uninterrupted: {ref}")
    d = os.path.join(work, "run")
    # 1. Dies after its data is written, before the commit: the step never appears.
    r = subprocess.run(cmd(2, d), env=dict(env, CKPT_TEST_FAULT="fsync@1:kill"), capture_output=True,
                       text=True, timeout=600)
    if r.returncode == 0:
        sys.exit("the injected kill did not happen")
    if committed(d):
        sys.exit(f"a checkpoint was committed although a rank died before its data was durable: {committed(d)}")
    print("  killed after the data, before the commit: nothing committed")
    # 2. Kills while async writes are in flight, at points chosen from the run's progress:
    # after a checkpoint this attempt committed, at the next checkpoint step (its write
    # starts in the background), as soon as the write's temporary file appears.
    assert STEPS > (2 * args.kills + 1) * EVERY
    during = 0
    for i in range(1, args.kills + 1):
        before = committed(d)
        job = Job(cmd(2 if i % 2 else 4, d), env=env)
        first = job.wait_saved_after(-1)
        if first is None:
            sys.exit(f"attempt {i} committed no checkpoint:\n{job.stderr()}")
        target = first + EVERY
        job.wait_step(target + rng.randint(0, EVERY // 10))
        job.wait_for(lambda j: temp_files(d) or any(s >= target for s in j.saved), poll=0.0005)
        writing = bool(temp_files(d))
        if not job.kill():
            sys.exit(f"attempt {i} ended before its kill (rc {job.p.returncode})")
        if before and job.restored != before[-1]:
            sys.exit(f"attempt {i} restored {job.restored}, the newest checkpoint was {before[-1]}")
        during += writing
        verify(d)
        print(f"  kill {i} at step {job.killed_at}{' during a write' if writing else ''}: "
              f"committed {committed(d)[-3:]}", flush=True)
    made = args.kills
    print(f"kills mid-run {made} of {made}, {during} while a background write was in flight")
    if during < 1:
        sys.exit("no kill landed while a background write was in flight")
    got, _ = finish(4, d)
    print(f"after {made} kills: {got}")
    if got != ref:
        sys.exit(f"resumed result {got} differs from the uninterrupted {ref}")
finally:
    shutil.rmtree(work, ignore_errors=True)
