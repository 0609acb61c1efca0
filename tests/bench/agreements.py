#!/usr/bin/python3
"""No collective on a step that neither checkpoints nor stops, counted. Runs the loop part of
build/bin/ckpt-save-cost (apps/bench/save_cost.cpp: cheap steps through the C++ loop helper,
a checkpoint every --every steps) with the counting library preloaded (apps/bench/
count_calls.c, MPI collectives through PMPI), the same way apps/bench/save_cost.py does
(its run_counted), and checks the collectives of every step boundary:

  counts   2 ranks sync and 4 ranks async: the boundaries that neither checkpoint nor agree
           make no collective; an agreement boundary starts one nonblocking all-reduce and
           nothing else (sync); agreements are far fewer than steps; every rank saw the same
           kind of boundary at each step; the checkpoints are the multiples of --every and
           the last step.
  stop     request_stop() (2 ranks) and SIGUSR1 (4 ranks) on the last rank only, after step
           3000 of cheap steps: every rank stops at the same step, within two agreement
           periods (at most 1000 boundaries each), and that step's checkpoint is on disk.
  saves    a small save after the first makes 3 collectives on 1, 2 and 4 ranks, sync and
           async (followed by wait()): the all-reduce that finds the block tables unchanged
           (no all-gather of them), the gather of the data to rank 0, and the agreement on
           the outcome.

    /usr/bin/python3 tests/bench/agreements.py --bin build/bin
"""

import argparse
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "apps", "bench"))
from save_cost import MPI_ENV, run_counted  # noqa: E402

MAX_DISTANCE = 1000  # libckpt/src/policy.hpp, max_agreement_distance


def loop_run(a, np, mode, steps, every, stop_at=None, stop_by="request"):
    lib = os.path.join(os.path.dirname(a.bin), "lib", "libckpt_count_calls.so")
    exe = os.path.join(a.bin, "ckpt-save-cost")
    for f in (exe, lib):
        if not os.path.exists(f):
            sys.exit(f"agreements.py: {f} is missing; build first")
    cmd = ["mpiexec", "-n", str(np), "-x", "LD_PRELOAD=" + lib, exe, "--n", "20", "--saves", "1",
           "--mode", mode, "--steps", str(steps), "--every", str(every), "--dir", a.dir]
    if stop_at is not None:
        cmd += ["--stop-at", str(stop_at), "--stop-by", stop_by]
    env = dict(os.environ, **MPI_ENV)
    for k in ("CKPT_AGREE_SECONDS", "CKPT_EVERY", "CKPT_SECONDS", "CKPT_MODE", "CKPT_FINAL"):
        env.pop(k, None)
    row = run_counted(cmd, env, 600)
    loop = row["loop"]
    print(f"np={np} {mode} steps={steps} every={every} stop_at={stop_at} ({stop_by}): "
          f"{loop['agreements']} agreements at {loop['agreed_at']}, {loop['plain']} plain boundaries "
          f"with {loop['plain_collectives']} collectives, saved at {loop['saved_at']}, "
          f"stopped {loop['stopped']} at {loop['stop_step']}", flush=True)
    return loop


def save_counts(a, np, mode):
    """The collectives of one save (the busiest rank), from ckpt-save-cost's timed saves."""
    lib = os.path.join(os.path.dirname(a.bin), "lib", "libckpt_count_calls.so")
    cmd = ["mpiexec", "-n", str(np), "-x", "LD_PRELOAD=" + lib, os.path.join(a.bin, "ckpt-save-cost"),
           "--n", "20", "--saves", "5", "--mode", mode, "--steps", "0", "--dir", a.dir]
    env = dict(os.environ, **MPI_ENV)
    for k in ("CKPT_MODE", "CKPT_SMALL_BYTES", "CKPT_LOCAL_DIR"):
        env.pop(k, None)
    row = run_counted(cmd, env, 600)
    per = row["per_save"]
    print(f"np={np} {mode}: {per['collectives_max_rank']} collectives per save (busiest rank)", flush=True)
    return per


def check(cond, what, loop):
    if not cond:
        sys.exit(f"agreements.py: FAILED: {what}\n{loop}")


def check_counts(loop, mode):
    check(loop["same_on_all_ranks"], "the ranks saw different kinds of boundaries", loop)
    check(loop["plain_collectives"] == 0, "a boundary that neither saved nor agreed made a collective", loop)
    check(loop["agreement_icollectives_max"] == 1, "an agreement boundary started more than one "
          "nonblocking collective", loop)
    if mode == "sync":  # async: a commit of the previous save may come with an agreement
        check(loop["agreement_collectives"] == 0, "an agreement boundary made a blocking collective", loop)
    # The first boundary agrees, then the next (nothing measured yet), then every 1000 or so.
    check(loop["agreed_at"][:2] == [1, 2], "the first two boundaries did not agree", loop)
    check(2 <= loop["agreements"] and 50 * loop["agreements"] <= loop["boundaries"],
          "agreements are not far fewer than steps", loop)
    check(loop["plain"] + loop["agreements"] + len(loop["saved_at"]) == loop["boundaries"],
          "the boundaries do not add up", loop)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ckpt-agreements-") as d:
        a.dir = d
        for np, mode in ((2, "sync"), (4, "async")):
            steps, every = 3000, 250
            loop = loop_run(a, np, mode, steps, every)
            check_counts(loop, mode)
            want = list(range(every, steps + 1, every))
            check(loop["stopped"] == "finished" and loop["stop_step"] == steps, "the loop did not finish", loop)
            check(loop["saved_at"] == want, f"checkpoints at {loop['saved_at']}, expected {want}", loop)
            check(loop["files"] == want, f"checkpoints on disk {loop['files']}, expected {want}", loop)
        for np, mode, by in ((2, "sync", "request"), (4, "async", "signal")):
            steps, every, stop_at = 20000, 5000, 3000
            loop = loop_run(a, np, mode, steps, every, stop_at, by)
            check_counts(loop, mode)
            stop = loop["stop_step"]
            reason = "requested" if by == "request" else "signal"
            check(loop["stopped"] == reason, f"stopped {loop['stopped']}, expected {reason}", loop)
            check(loop["stop_step_same"], "the ranks stopped at different steps", loop)
            check(stop_at < stop <= stop_at + 2 * MAX_DISTANCE + 1,
                  f"stopped at {stop}, not within two agreement periods after {stop_at}", loop)
            check(loop["saved_at"][-1] == stop and loop["files"][-1] == stop,
                  "the stop's checkpoint is not the last one on disk", loop)
        for np in (1, 2, 4):
            for mode in ("sync", "async"):
                per = save_counts(a, np, mode)
                check(per["collectives_max_rank"] == 3 and per["icollectives_max_rank"] == 0,
                      f"a small save made {per['collectives_max_rank']} collectives, 3 expected", per)
    print("agreements: ok")


if __name__ == "__main__":
    main()
