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
import signal
import subprocess
import sys
import tempfile
import time

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
from mpijob import kill_job  # noqa: E402


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
    # 2. Random kills while async writes are in flight.
    made = i = 0
    while made < args.kills:
        i += 1
        if i > 4 * args.kills:
            sys.exit("the solver finished before enough kills landed")
        p = subprocess.Popen(cmd(2 if i % 2 else 4, d), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        # Run for a random time, then kill as soon as a background write is in flight.
        start = time.monotonic()
        at = start + rng.uniform(0.4, 1.0)
        while p.poll() is None and (time.monotonic() < at or
                                    (not temp_files(d) and time.monotonic() < at + 1.0)):
            time.sleep(0.002)
        if p.poll() is not None:
            if STEPS in committed(d):
                break  # a fast machine: the solver finished between kills
            continue
        writing = bool(temp_files(d))
        kill_job(p)
        made += 1
        verify(d)
        print(f"  kill {made} {'during a write' if writing else ''}: committed {committed(d)[-3:]}", flush=True)
    if made < 2:
        sys.exit(f"only {made} kills landed before the solver finished; raise STEPS")
    got, _ = finish(4, d)
    print(f"after {made} kills: {got}")
    if got != ref:
        sys.exit(f"resumed result {got} differs from the uninterrupted {ref}")
finally:
    shutil.rmtree(work, ignore_errors=True)
