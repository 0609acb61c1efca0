#!/usr/bin/python3
"""The C++ loop nest (Checkpointer::loop / phase) under kills: tests/faults/nested_app
(setup phase; a sweep loop holding an init phase, an inner time loop and an analysis
phase; a final phase) is SIGKILLed at points chosen from its progress, in every phase and
at both loop levels, including the first inner step after the outer loop moved on. Each
run must resume from the newest committed checkpoint at the position saved with it
(asserted from the position table below), and the last run must end bitwise identical to
an uninterrupted run. Then kills at random steps of the interval after a checkpoint, and
SIGUSR1 in the inner loop: exit 75, and the resume continues at the next inner step of
the same sweep. The C++ twin of tests/python/test_nested_kill.py.

  nested_kill.py --app build/tests/faults/nested_app [--np 2] [--seed N]
"""
import argparse
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "apps"))
from mpijob import Job, committed_steps, kill_in_next_interval  # noqa: E402

S, T, EVERY = 3, 12, 4
TOTAL = 1 + S * (T + 2) + 1


def positions():
    """The position saved with the checkpoint of each step, as (top-level done, stack of
    (index, done)). Loops and phases are counted in the order the program enters them:
    top level setup, sweep, final; in a sweep iteration init, t, analysis. The last step
    of the sweep loop is saved at its boundary (inside the loop) or when the loop ends."""
    out = {1: [(1, [])]}
    k = 1
    for s in range(S):
        k += 1
        out[k] = [(1, [(s, 1)])]                  # init done
        for t in range(T):
            k += 1
            out[k] = [(1, [(s, 1), (t + 1, 0)])] if t < T - 1 else [(1, [(s, 2)])]
        k += 1
        out[k] = [(1, [(s, 3)])]                  # analysis done
    out[k].append((2, []))                        # the sweep loop ended
    k += 1
    out[k] = [(3, [])]                            # final done
    assert k == TOTAL
    return out


POSITIONS = positions()


class Test:
    def __init__(self, a):
        self.a = a
        self.work = tempfile.mkdtemp(prefix="ckpt-nested-")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CKPT_", "NESTED_"))}
        env.update({"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                    "OMPI_MCA_rmaps_base_oversubscribe": "1"})
        self.env = env

    def cmd(self, d):
        return ["mpiexec", "-n", str(self.a.np), self.a.app, "--sweeps", str(S), "--steps", str(T),
                "--every", str(EVERY), "--dir", d]

    def job(self, d, **extra):
        env = dict(self.env)
        env.update(extra)
        return Job(self.cmd(d), env=env)

    def check(self, cond, msg):
        if not cond:
            raise SystemExit("FAIL: " + msg)

    def restored(self, job):
        for line in job.err:
            m = re.match(r"nested: restored (\S+) (.*)$", line)
            if m:
                if m.group(1) == "none":
                    return None, None
                top, _, stack = m.group(2).partition(" ")
                levels = [tuple(int(v) for v in p.split(":")) for p in stack.split(",") if p]
                return int(m.group(1)), (int(top), levels)
        raise SystemExit("FAIL: no 'nested: restored' line:\n" + job.stderr())

    def check_resume(self, job, before):
        """The run restored the newest committed checkpoint, at the position saved with it."""
        step, pos = self.restored(job)
        self.check(step == before, "restored step %s, the newest checkpoint was %s" % (step, before))
        if step is not None:
            self.check(pos in POSITIONS[step], "step %d restored at position %s, expected one of %s"
                       % (step, pos, POSITIONS[step]))
        return step, pos

    def digest(self, job):
        m = re.search(r"^result: ([0-9a-f]{32})$", job.stdout(), re.M)
        self.check(m is not None, "no result line:\n" + job.stdout() + job.stderr())
        return m.group(1)

    def newest(self, d):
        s = committed_steps(d)
        return s[-1] if s else None

    def finish(self, d, reference):
        before = self.newest(d)
        job = self.job(d)
        rc = job.wait(300)
        self.check(rc == 0, "the last run exited %s:\n%s" % (rc, job.stderr()))
        r = self.check_resume(job, before)
        got = self.digest(job)
        self.check(got == reference, "result %s differs from the uninterrupted run's %s" % (got, reference))
        self.check("nested: steps=%d" % TOTAL in job.stdout(), "step count: " + job.stdout())
        return r

    def reference(self):
        d = os.path.join(self.work, "ref")
        job = self.job(d)
        rc = job.wait(300)
        self.check(rc == 0, "uninterrupted run exited %s:\n%s" % (rc, job.stderr()))
        self.check("nested: steps=%d" % TOTAL in job.stdout(), "uninterrupted step count: " + job.stdout())
        return self.digest(job)

    def pause_and_kill(self, d, label):
        job = self.job(d, NESTED_PAUSE=label)
        ok = job.wait_for(lambda j: "nested: paused at %s" % label in j.err, timeout=300)
        self.check(ok, "%s: the run never paused there:\n%s" % (label, job.stderr()))
        self.check(job.kill(), "%s: the kill did not land mid-run" % label)
        return job

    def kills_at_chosen_points(self, reference, rnd):
        """SIGKILL in the setup phase (no checkpoint yet), the init phase of sweep 0, an inner
        step of sweep 0 after its first inner checkpoint, the analysis phase of sweep 1, the
        first inner step after the outer loop moved to sweep 2, and the final phase."""
        inner = rnd.randrange(2, T - 1)
        labels = ["setup", "init:0", "t:0:%d" % inner, "analysis:1", "t:2:0", "final"]
        d = os.path.join(self.work, "points")
        resumed = []
        for label in labels:
            before = self.newest(d)
            job = self.pause_and_kill(d, label)
            resumed.append(self.check_resume(job, before))
            print("killed at %s (newest checkpoint %s); that run resumed at %s" % (label, before, resumed[-1][1]),
                  flush=True)
        resumed.append(self.finish(d, reference))
        print("last run resumed at %s" % (resumed[-1][1],), flush=True)
        kills = len(labels)
        inner_resumes = sum(1 for _, p in resumed if p and len(p[1]) == 2)
        outer_resumes = sum(1 for _, p in resumed if p and len(p[1]) == 1)
        print("kills mid-run %d of %d; resumes inside the inner loop %d, between inner loops %d"
              % (kills, len(labels), inner_resumes, outer_resumes), flush=True)
        self.check(inner_resumes >= 1 and outer_resumes >= 1, "the resumes missed a loop level: %s" % resumed)

    def kills_at_random_steps(self, reference, rnd):
        d = os.path.join(self.work, "random")
        kills = 0
        for _ in range(3):
            before = self.newest(d)
            job = self.job(d)
            at = kill_in_next_interval(job, EVERY, rnd)
            if at is None:
                break  # the run got to its end first
            kills += 1
            step, pos = self.check_resume(job, before)
            print("random kill at step %s; that run resumed from %s at %s" % (at, step, pos), flush=True)
        self.check(kills >= 1, "no random kill landed mid-run")
        self.finish(d, reference)
        print("random kills mid-run %d" % kills, flush=True)

    def sigusr1_in_inner_loop(self, reference):
        d = os.path.join(self.work, "usr1")
        go = os.path.join(self.work, "go")
        # CKPT_AGREE_SECONDS=0: the ranks agree at every boundary, so the stop comes at the
        # boundary after the signal, a known inner step of this short loop.
        job = self.job(d, NESTED_PAUSE="t:1:5", NESTED_GO=go, CKPT_AGREE_SECONDS="0")
        ok = job.wait_for(lambda j: "nested: paused at t:1:5" in j.err, timeout=300)
        self.check(ok, "never paused at t:1:5:\n" + job.stderr())
        job.signal(signal.SIGUSR1)  # pending in every rank before rank 0 goes on
        open(go, "w").close()
        rc = job.wait(300)
        self.check(rc == 75, "SIGUSR1: exit %s, expected 75\n%s" % (rc, job.stderr()))
        self.check("result:" not in job.stdout(), "the stopped run printed a result")
        stop = self.newest(d)
        step, (top, stack) = self.finish(d, reference)
        self.check(step == stop, "resumed from %s, the stop's checkpoint is %s" % (step, stop))
        # Inside sweep 1's inner loop, at the step after the one the signal came in (the
        # ranks agree on a stop at the boundary after the one where it was seen).
        self.check(top == 1 and len(stack) == 2 and stack[0] == (1, 1) and stack[1][0] in (6, 7),
                   "SIGUSR1 at sweep 1 step 5: resumed at %s" % ((top, stack),))
        print("SIGUSR1 at t:1:5: exit 75, resumed from step %d at sweep %d inner step %d"
              % (step, stack[0][0], stack[1][0]), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--app", required=True)
    p.add_argument("--np", type=int, default=2)
    p.add_argument("--seed", type=int, default=None)
    a = p.parse_args()
    seed = a.seed if a.seed is not None else time.time_ns() % 100000
    print("seed %d" % seed, flush=True)
    rnd = random.Random(seed)
    t = Test(a)
    reference = t.reference()
    t.kills_at_chosen_points(reference, rnd)
    t.kills_at_random_steps(reference, rnd)
    t.sigusr1_in_inner_loop(reference)
    shutil.rmtree(t.work, ignore_errors=True)
    print("PASS", flush=True)


if __name__ == "__main__":
    main()
