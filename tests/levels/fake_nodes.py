#!/usr/bin/python3
"""Storage levels (CKPT_LOCAL_DIR) on "nodes" that are node names and directories on this
machine: each group of ranks gets SLURMD_NODENAME=<node> and CKPT_LOCAL_DIR=WORK/<node>
(mpiexec's MPMD form), so partners, node loss (the node's directory wiped) and a job coming
back on other nodes run through the real library, MPI and file system in seconds. The
real multi-node cluster runs the same in tests/slurm/test_levels.py (label cluster).

  fake_nodes.py --case partner --app build/bin/heat [--python build/python]

Cases:
  partner      2 nodes x 2 ranks, killed mid-interval after a node-local checkpoint; node A
               is lost; the job resumes on B + C from the partner-rebuilt checkpoint, and
               ends bitwise equal to an uninterrupted run.
  rank_change  as partner, but resumes on 3 ranks on B, C, D (rebuilt, then resharded).
  both_lost    1 rank each on A and B, CKPT_FLUSH_EVERY=2; both nodes lost after a
               node-local checkpoint newer than the newest flush: restore says why and
               falls back to the newest shared flush, and still ends equal.
  damaged      node A lost and the copy of rank 0's part of the newest checkpoint on B
               damaged: that set is skipped (never half loaded), the older one is rebuilt.
  stop         SIGUSR1: the job stops with exit 75 once the stop checkpoint is flushed to
               CKPT_DIR (ckpt verify passes) and the node-local files are removed; the
               next run resumes from the shared copy and ends equal.
  all_lost     no flush yet and both nodes lost: the restart refuses to start from scratch
               (Errc::no_valid_checkpoint) and says why; with CKPT_FRESH=1 it starts over
               and ends equal.
  async        partner with CKPT_MODE=async.
  python       partner with apps/heat.py (the Python bindings).
Every interruption is chosen from the job's progress lines, never from a delay.
"""
import argparse
import glob
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "apps"))
import mpijob  # noqa: E402

N, STEPS, EVERY = 96, 3000, 50


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", required=True)
    ap.add_argument("--app", required=True, help="build/bin/heat")
    ap.add_argument("--cli", help="build/bin/ckpt (for ckpt verify)")
    ap.add_argument("--python", help="PYTHONPATH of the built ckpt package (case python)")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ckpt-levels-")
    shared = os.path.join(work, "shared")
    env = dict(os.environ)
    env.update({"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                "OMPI_MCA_rmaps_base_oversubscribe": "1", "CKPT_QUIET": "0",
                "OMPI_MCA_btl_vader_single_copy_mechanism": "none", "CKPT_SIGNALS": "USR1",
                "TMPDIR": work})
    if a.case == "python":
        env["PYTHONPATH"] = a.python
        prog = ["/usr/bin/python3", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                  "apps", "heat.py")]
    else:
        prog = [a.app]
    if a.case == "async":
        env["CKPT_MODE"] = "async"
    failures = []

    def check(ok, what):
        print(("ok: " if ok else "FAIL: ") + what, flush=True)
        if not ok:
            failures.append(what)

    def argv(nodes, steps=STEPS, extra_env=()):
        """mpiexec with one app context per rank: [(node, ranks), ...]."""
        cmd = ["mpiexec"]
        for i, (node, ranks) in enumerate(nodes):
            if i:
                cmd.append(":")
            cmd += ["-np", str(ranks), "env", f"SLURMD_NODENAME={node}",
                    f"CKPT_LOCAL_DIR={os.path.join(work, node)}", *extra_env]
            cmd += prog + ["--n", str(N), "--steps", str(steps), "--every", str(EVERY), "--dir", shared]
        return cmd

    def result(job):
        r = [l for l in job.out if l.startswith("result:")]
        return r[-1] if r else None

    def shared_steps():
        return mpijob.committed_steps(shared)

    def parts(node):
        out = []
        for root, _, files in os.walk(os.path.join(work, node)):
            out += [os.path.join(root, f) for f in files if f.endswith(".part")]
        return sorted(out)

    # The uninterrupted run, without levels.
    ref_job = mpijob.Job(["mpiexec", "-np", "2"] + prog + ["--n", str(N), "--steps", str(STEPS), "--every", "0",
                                                           "--dir", os.path.join(work, "ref")], env=env)
    rc = ref_job.wait()
    ref = result(ref_job)
    check(rc == 0 and ref is not None, f"uninterrupted run ({rc}, {ref})")

    extra = ("CKPT_FLUSH_EVERY=2",) if a.case == "both_lost" else ()
    if a.case == "stop":  # agree at every boundary: the stop comes before this short run ends
        extra = ("CKPT_AGREE_SECONDS=0",)
    first_nodes = [("nodeA", 1), ("nodeB", 1)] if a.case in ("both_lost", "all_lost", "damaged", "stop") else \
                  [("nodeA", 2), ("nodeB", 2)]
    job = mpijob.Job(argv(first_nodes, extra_env=extra), env=env)

    if a.case == "stop":
        saved = job.wait_saved_after(2 * EVERY)
        check(saved is not None, f"a node-local checkpoint was committed ({saved})")
        check(shared_steps() == [], f"nothing in CKPT_DIR before the stop ({shared_steps()})")
        job.signal(signal.SIGUSR1)
        rc = job.wait()
        stop_line = [l for l in job.err if "stopping after step" in l]
        m = re.search(r"stopping after step (\d+)", stop_line[0]) if stop_line else None
        stop = int(m.group(1)) if m else None
        check(rc == 75 and stop is not None and stop < STEPS, f"the job stopped with exit 75 ({rc}, step {stop})")
        check(shared_steps() == [stop], f"CKPT_DIR holds the stop checkpoint {stop} ({shared_steps()})")
        check(any(f"flushed step {stop} to" in l for l in job.err), "the flush is logged")
        flushed_before_stop = job.err.index(next(l for l in job.err if f"flushed step {stop} to" in l)) < \
            job.err.index(stop_line[0])
        check(flushed_before_stop, "the flush happened before the stop was reported")
        if a.cli:
            v = subprocess.run([a.cli, "verify", os.path.join(shared, "ckpt-%012d.h5" % stop)],
                               capture_output=True, text=True)
            check(v.returncode == 0, f"ckpt verify passes on the flushed file ({v.returncode} {v.stdout[-200:]})")
        check(parts("nodeA") == [] and parts("nodeB") == [], "the node-local parts were removed after the flush")
        resumed = mpijob.Job(argv(first_nodes), env=env)
        rc = resumed.wait()
        check(resumed.restored == stop, f"resumed from step {stop} ({resumed.restored})")
        check(any(f"restored step {stop} from the shared copy" in l for l in resumed.err), "the log names the level")
        check(rc == 0 and result(resumed) == ref, f"identical result ({result(resumed)} vs {ref})")
        return finish(work, failures)

    # Kill mid-interval after node-local checkpoints (and for both_lost, after a flush).
    if a.case == "both_lost":
        flushed = job.wait_for(lambda j: any("flushed step" in l for l in j.err))
        check(flushed, "a background flush to CKPT_DIR happened")
        after = max(job.saved)
    else:
        after = 2 * EVERY
    landed = mpijob.kill_in_next_interval(job, EVERY, rng=random.Random(7), after=after)
    check(landed, f"the kill landed mid-run (step {job.killed_at}, saved {job.saved[-3:]})")
    last_saved = max(job.saved)
    before = shared_steps()
    if a.case not in ("both_lost",):
        check(before == [], f"no checkpoint in CKPT_DIR before the restart ({before})")

    # Lose nodes: their node-local directories go.
    lost = ["nodeA", "nodeB"] if a.case in ("both_lost", "all_lost") else ["nodeA"]
    for node in lost:
        shutil.rmtree(os.path.join(work, node), ignore_errors=True)
    if a.case == "damaged":
        newest = sorted(p for p in parts("nodeB") if "-r000000-" in p)[-2:]
        check(len(newest) == 2, f"node B holds rank 0's copies of the last two checkpoints ({newest})")
        with open(newest[-1], "r+b") as f:  # a byte in the middle of the copy's data
            f.seek(os.path.getsize(newest[-1]) // 3)
            b = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([b[0] ^ 0xFF]))

    if a.cli and a.case not in ("both_lost", "all_lost"):
        # The node-local layout is a file of its own kind: ckpt verify checks it.
        for part in parts("nodeB"):
            v = subprocess.run([a.cli, "verify", part], capture_output=True, text=True)
            damaged = a.case == "damaged" and part == newest[-1]
            if damaged:
                check(v.returncode == 1 and "damaged" in v.stdout, f"ckpt verify rejects the damaged part ({v.stdout.strip()})")
            else:
                check(v.returncode == 0 and "node-local part of step" in v.stdout,
                      f"ckpt verify passes on {os.path.basename(part)} ({v.stdout.strip()})")

    if a.case == "all_lost":
        refused = mpijob.Job(argv([("nodeC", 1), ("nodeD", 1)]), env=env)
        rc = refused.wait()
        log = "\n".join(refused.err)
        check(rc != 0 and "refusing to start from scratch" in log,
              f"the restart refuses a silent fresh start ({rc}: {log[-300:]})")
        # The step recorded last (a kill during a commit may land before or after its record).
        m = re.search(r"node-local checkpoints up to step (\d+)", log)
        check(m is not None and abs(int(m.group(1)) - last_saved) <= EVERY,
              f"and names the lost checkpoint ({m and m.group(0)}, last reported saved {last_saved})")
        fresh = mpijob.Job(argv([("nodeC", 1), ("nodeD", 1)], extra_env=("CKPT_FRESH=1",)), env=env)
        rc = fresh.wait()
        check(fresh.restored == "none", f"with CKPT_FRESH=1 it starts from scratch ({fresh.restored})")
        check(rc == 0 and result(fresh) == ref, f"identical result ({rc}, {result(fresh)} vs {ref})")
        return finish(work, failures)

    second = {"partner": [("nodeB", 2), ("nodeC", 2)], "async": [("nodeB", 2), ("nodeC", 2)],
              "python": [("nodeB", 2), ("nodeC", 2)],
              "rank_change": [("nodeB", 1), ("nodeC", 1), ("nodeD", 1)],
              "both_lost": [("nodeC", 1), ("nodeD", 1)], "damaged": [("nodeB", 1), ("nodeC", 1)]}[a.case]
    resumed = mpijob.Job(argv(second), env=env)
    rc = resumed.wait()
    log = "\n".join(resumed.err)
    restored = resumed.restored
    if a.case == "both_lost":
        newest_flush = max(before) if before else None
        check(newest_flush is not None and newest_flush < last_saved,
              f"the newest flush {newest_flush} is older than the newest node-local checkpoint {last_saved}")
        check(restored == newest_flush, f"resumed from the newest flush {newest_flush} ({restored})")
        check("cannot be rebuilt" in log, "the log says why the node-local checkpoint cannot be used")
        check(f"restored step {restored} from the shared copy" in log, "the log names the shared level")
    elif a.case == "damaged":
        # The steps of the two sets on node B, from the part names (a kill that lands while a
        # checkpoint commits may leave one more set than the progress lines reported).
        steps = [int(re.search(r"ckpt-(\d{12})-r", os.path.basename(p)).group(1)) for p in newest]
        check("could not be rebuilt" in log and "damaged" in log, "the damaged set is reported and skipped")
        check(restored == steps[0] and steps[0] < steps[1],
              f"resumed from the older node-local checkpoint {steps[0]} ({restored}; damaged {steps[1]})")
        check(f"restored step {restored} from node-local + partner copies (nodeA lost)" in log,
              "the log names the level and the lost node")
    else:
        # A kill that lands while a checkpoint commits may leave it complete: one interval later.
        check(restored in (last_saved, last_saved + EVERY), f"resumed from step {last_saved} ({restored})")
        check(f"restored step {restored} from node-local + partner copies (nodeA lost)" in log,
              "the log names the level and the lost node")
        check(f"rebuilt step {restored} from node-local + partner copies (nodeA lost)" in log,
              "the checkpoint was rebuilt into CKPT_DIR")
    check(rc == 0 and result(resumed) == ref, f"identical result ({rc}, {result(resumed)} vs {ref})")
    check(all(not parts(n) for n, _ in second), "node-local files removed at the end of the run")
    left = [d for n, _ in second for d in glob.glob(os.path.join(work, n, "ckpt-run-*"))]
    check(not left, f"and the run directories with them ({left})")
    return finish(work, failures)


def finish(work, failures):
    if failures:
        print(f"{len(failures)} check(s) failed; files kept in {work}")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
