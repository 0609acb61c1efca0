#!/usr/bin/python3
"""heat killed by SIGKILL at random moments (many of them while a checkpoint is being
written), resumed each time, ends with the same `result:` as an uninterrupted run, on 4
ranks and when resumed on 3. Exits non-zero on any difference."""
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
ap.add_argument("--kills", type=int, default=20)
ap.add_argument("--seed", type=int, default=int(time.time()))
args = ap.parse_args()
rng = random.Random(args.seed)
print(f"seed {args.seed}")
N, STEPS, EVERY = 512, 2000, 25
work = tempfile.mkdtemp(prefix="ckpt-heat-kill-")


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "apps"))
from mpijob import kill_job  # noqa: E402


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
    """Kills the job `kills` times. Every other kill waits for a checkpoint write in
    progress; the others come at a random moment, but at the latest once the run committed
    one or two new checkpoints, so the solver never finishes during the campaign, however
    fast this machine happens to be."""
    during_write = made = i = 0
    while made < kills:
        i += 1
        if i > 3 * kills:
            sys.exit("too many runs ended before they could be killed")
        np_ = nps[i % len(nps)]
        before = set(committed(d))
        p = subprocess.Popen(cmd(np_, d), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        deadline = time.monotonic() + rng.uniform(0.8, 2.5)
        progress_cap = rng.randint(1, 2)
        wait_for_write = i % 2 == 1
        while time.monotonic() < deadline and p.poll() is None:
            if wait_for_write and temp_files(d):
                break
            if len(set(committed(d)) - before) >= progress_cap:
                break
            time.sleep(0.002)
        writing = bool(temp_files(d))
        if p.poll() is not None:
            continue  # finished or failed before the kill: not a kill
        kill_job(p)
        during_write += writing
        made += 1
        print(f"  kill {made:2d} on {np_} ranks{' during a write' if writing else ''}: "
              f"committed steps {committed(d)[-3:]}", flush=True)
    if committed(d) and committed(d)[-1] >= STEPS:
        sys.exit("the solver reached its last step during the campaign; raise STEPS")
    return during_write


try:
    ref, _ = finish(4, os.path.join(work, "ref"))
    print(f"uninterrupted: {ref}")
    d = os.path.join(work, "a")
    w = kill_campaign(d, args.kills, [4, 4, 3])
    got, log = finish(4, d)
    print(f"after {args.kills} kills ({w} during checkpoint writes), finished on 4 ranks: {got}")
    d2 = os.path.join(work, "b")
    w2 = kill_campaign(d2, 4, [4])
    got3, log3 = finish(3, d2)
    print(f"after 4 kills on 4 ranks ({w2} during writes), finished on 3 ranks: {got3}")
    ok = got == ref and got3 == ref and w >= 3
    if w < 3:
        print("too few kills landed during checkpoint writes")
    print("identical: yes" if ok else "identical: NO")
    sys.exit(0 if ok else 1)
finally:
    shutil.rmtree(work, ignore_errors=True)
