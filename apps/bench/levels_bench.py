#!/usr/bin/python3
"""Storage levels benchmark: heat (C++) checkpointing to node-local storage with partner
copies (CKPT_LOCAL_DIR on /dev/shm, two fake nodes) against checkpointing to the shared
directory (CKPT_DIR on the disk), and against no checkpoint at all. Methods are
interleaved in every round, so the disk's drift hits all of them alike.

Fake nodes: each node is a node name (SLURMD_NODENAME) and a node-local directory for a
group of ranks of one mpiexec (MPMD form), so the partner copy really crosses between the
"nodes" through MPI (shared memory here, a network on a cluster) and is written to the
other node's directory.

Reported per grid size: the time a checkpoint blocks the solver (mean of blocked_seconds
in ckpt-stats.jsonl) and the whole-run overhead against the run without checkpoints. The
node-local runs include their one flush to CKPT_DIR at the end of the run.

  levels_bench.py --bin build/bin [--sizes 512,2048] [--rounds 3]
"""
import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import tempfile


def run(argv, env):
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    m = re.search(r"seconds=([0-9.]+)", p.stdout)
    return float(m.group(1)), p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--sizes", default="512,2048")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ranks-per-node", type=int, default=1)
    ap.add_argument("--shared", help="shared directory root (default: a temp dir on the disk)")
    a = ap.parse_args()
    heat = os.path.join(a.bin, "heat")
    work = tempfile.mkdtemp(prefix="ckpt-levels-bench-", dir=a.shared or "/var/tmp")
    shm = tempfile.mkdtemp(prefix="ckpt-levels-bench-", dir="/dev/shm")
    env = dict(os.environ)
    env.update({"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                "OMPI_MCA_rmaps_base_oversubscribe": "1", "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
                "CKPT_QUIET": "1", "CKPT_FINAL": "0", "CKPT_KEEP": "2"})
    rpn = a.ranks_per_node
    methods = ["none", "shared", "node-local + partner"]
    results = {}
    rng = random.Random(1)
    try:
        for n in [int(s) for s in a.sizes.split(",")]:
            times = {m: [] for m in methods}
            blocked = {m: [] for m in methods}
            for rnd in range(a.rounds):
                order = methods[:]
                rng.shuffle(order)
                for m in order:
                    d = os.path.join(work, f"{m.split()[0]}-{n}-{rnd}")
                    every = 0 if m == "none" else a.every
                    argv = ["mpiexec"]
                    for i, node in enumerate(("nodeA", "nodeB")):
                        if i:
                            argv.append(":")
                        argv += ["-np", str(rpn), "env", f"SLURMD_NODENAME={node}"]
                        if m.startswith("node-local"):
                            argv.append(f"CKPT_LOCAL_DIR={os.path.join(shm, node)}")
                        argv += [heat, "--n", str(n), "--steps", str(a.steps), "--every", str(every), "--dir", d]
                    secs, _ = run(argv, env)
                    times[m].append(secs)
                    stats = os.path.join(d, "ckpt-stats.jsonl")
                    if os.path.exists(stats):
                        with open(stats) as f:
                            saves = [json.loads(l) for l in f if '"event":"save"' in l]
                        blocked[m] += [s["blocked_seconds"] for s in saves]
                    shutil.rmtree(d, ignore_errors=True)
                    for node in ("nodeA", "nodeB"):
                        shutil.rmtree(os.path.join(shm, node), ignore_errors=True)
            results[n] = (times, blocked)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)

    print(f"\nheat, 2 nodes x {rpn} rank(s), {a.steps} steps, a checkpoint every {a.every} steps, "
          f"{a.rounds} interleaved rounds (medians)")
    print("| grid | state | method | blocked per checkpoint | vs shared | whole-run overhead |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n, (times, blocked) in results.items():
        base = statistics.median(times["none"])
        sb = statistics.median(blocked["shared"]) if blocked["shared"] else float("nan")
        for m in methods[1:]:
            b = statistics.median(blocked[m]) if blocked[m] else float("nan")
            ov = (statistics.median(times[m]) - base) / base * 100
            print(f"| {n}x{n} | {n * n * 8 / 2**20:.1f} MiB | {m} | {b * 1e3:.2f} ms | {b / sb:.2f}x | {ov:.1f} % |")


if __name__ == "__main__":
    main()
