#!/usr/bin/python3
"""Two jobs on one checkpoint directory: the second is refused with Errc::locked while the
first runs, the first finishes undisturbed with the same result as a job alone, and the
lock of a SIGKILLed job is never stale (the kernel drops it with the process).

  two_jobs.py --app build/bin/fault_app
"""

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--app", required=True)
    a = p.parse_args()
    work = tempfile.mkdtemp(prefix="ckpt-twojobs-")
    env = fl.mpi_env({"CKPT_QUIET": "1"}, tmpdir=os.path.join(work, "ompi"))
    failures = []
    cases = 0

    def check(ok, what):
        nonlocal cases
        cases += 1
        print(("ok: " if ok else "FAIL: ") + what, flush=True)
        if not ok:
            failures.append(what)

    argv = lambda d, steps: [a.app, "--dir", d, "--steps", str(steps), "--every", "2", "--keep", "2", "--n", "512"]
    rc, out = fl.run(argv(os.path.join(work, "alone"), 60), np=2, env=env)
    ref = [l for l in out if l.startswith("result:")]
    check(rc == 0 and ref, "reference run alone finishes (%s)" % rc)

    # 1. A second job (1 or 2 ranks) while the first runs: refused with `locked`.
    d = os.path.join(work, "shared")
    first = fl.Job(argv(d, 60), np=2, env=env)
    started = first.wait_line("restored:", 120)
    check(started == "restored: none", "first job started (%s)" % started)
    # Hold the first job (SIGSTOP) while the others try, so it cannot finish and free the
    # directory before them on a fast or a loaded machine; it keeps its lock meanwhile.
    for pid in first.pids:
        os.kill(pid, signal.SIGSTOP)
    for np_ in (2, 1):
        before = sorted(os.listdir(d))
        rc2, out2 = fl.run(argv(d, 60), np=np_, env=env, timeout=120)
        check(rc2 == 10 + 12 and "error: locked" in out2,
              "second job on %d rank(s) is refused with Errc::locked (rc %s, %s)" % (np_, rc2, out2[-2:]))
        check(first.p.poll() is None, "the first job still runs after the refused second one")
        after = sorted(os.listdir(d))
        tmp_before = [n for n in before if n.endswith(".tmp")]
        check(all(n in after or n in tmp_before or n.startswith("ckpt-") for n in before),
              "the refused job removed nothing of the first job's")
    # A reader that does not write (ckpt::verify through fault_app --verify) is not locked out.
    files = [os.path.join(d, fl.ckpt_name(s)) for s in fl.committed(d)]
    if files:
        rc3, out3 = fl.run([a.app, "--verify"] + files[:1], np=1, env=env)
        check(rc3 == 0 and '"ok":true' in "".join(out3), "verify reads a checkpoint while the writer holds the lock")
    for pid in first.pids:
        os.kill(pid, signal.SIGCONT)
    rc1 = first.wait(600)
    res = [l for l in first.all if l.startswith("result:")]
    check(rc1 == 0 and res == ref, "the first job finished with the result of a job alone (%s vs %s)" % (res, ref))

    # 2. A SIGKILLed job leaves no stale lock: the next job starts at once and resumes.
    d2 = os.path.join(work, "killed")
    j = fl.Job(argv(d2, 200), np=2, env=env)
    j.wait_line("restored:", 120)
    first_ckpt = j.wait_saved_after(-1, 120)
    landed = j.kill_at_step((first_ckpt or 0) + 3, 120)
    j.wait(60)
    check(first_ckpt is not None and landed,
          "the job was SIGKILLed mid-run, after its checkpoint of step %s" % first_ckpt)
    newest = (fl.committed(d2) or [None])[0]
    check(os.path.exists(os.path.join(d2, ".lock")), "the killed job's lock file is still there")
    j2 = fl.Job(argv(d2, 60 if newest is None or newest < 60 else newest + 2), np=2, env=env)
    line = j2.wait_line("restored:", 120)
    want = "restored: none" if newest is None else "restored: %d bitexact" % newest
    check(line == want, "after SIGKILL the next job takes the lock and restores (%s, wanted %s)" % (line, want))
    j2.wait(600)

    print("two-job / lock cases passing: %d / %d" % (cases - len(failures), cases))
    if not failures:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
