#!/usr/bin/python3
"""Crash consistency: SIGKILL one rank or the whole job at chosen points and at random
instants of save, then check that the next run restores the newest committed checkpoint
bit for bit (fault_app recomputes the state of every step), that every committed file
verifies, and that the final result equals an uninterrupted run.

Kills at exact points use the library's hook (CKPT_TEST_FAULT=<point>@<rank>:kill: before
the data write, after it, at the rename, at the LATEST update, at pruning); the others land
at a random step soon after the restored one, chosen from the run's progress lines
(CKPT_PROGRESS), never after a guessed delay. Some chains run the heat solver
instead of fault_app (random kills; its final digest is compared).

  kill_campaign.py --app build/bin/fault_app --heat build/bin/heat --kills 200
"""

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402

HOOKS = ["write@0", "write@1", "write@*", "fsync@0", "fsync@1", "fsync@*", "rename@0", "latest@0",
         "prune@0"]


def classify(d):
    """Where the save was when the job died, judged by what it left in the directory."""
    names = os.listdir(d)
    if any(n.startswith(".ckpt-") and n.endswith(".tmp") for n in names):
        return "during data write"
    if ".LATEST.tmp" in names:
        return "during LATEST update"
    return "between saves / commit"


class Campaign:
    def __init__(self, a):
        self.a = a
        self.rnd = random.Random(a.seed)
        self.work = a.work or tempfile.mkdtemp(prefix="ckpt-kills-")
        self.env = fl.mpi_env({"CKPT_QUIET": "1"}, tmpdir=os.path.join(self.work, "ompi"))
        self.made = 0
        self.survived = 0
        self.failures = []
        self.by_kind = {}
        self.chains = 0
        self.finals = 0  # chains whose final result equals the uninterrupted run
        self.ref = {}

    def log(self, msg):
        print(msg, flush=True)

    def fail(self, msg):
        self.failures.append(msg)
        self.log("FAIL: " + msg)

    def reference(self, key, argv, np):
        if key not in self.ref:
            d = os.path.join(self.work, "ref-" + key)
            rc, out = fl.run(argv(d), np=np, env=self.env, timeout=600)
            res = [l for l in out if l.startswith("result:")]
            if rc != 0 or not res:
                raise SystemExit("reference run failed: rc=%s %s" % (rc, out))
            self.ref[key] = res[-1]
            shutil.rmtree(d, ignore_errors=True)
        return self.ref[key]

    def note(self, kind, ok):
        k = self.by_kind.setdefault(kind, [0, 0])
        k[1] += 1
        if ok:
            k[0] += 1

    # ---------------------------------------------------------------------------------
    def fault_chain(self, budget):
        """One directory, runs of fault_app killed until the run finishes; returns kills made."""
        a = self.a
        np_ = 2
        self.chains += 1
        d = os.path.join(self.work, "chain%03d" % self.chains)
        os.makedirs(d)
        argv = lambda dd: [a.app, "--dir", dd, "--steps", str(a.steps), "--every", "1", "--keep", "2",
                           "--n", str(a.n), "--verify-all"]
        ref = self.reference("fault", argv, np_)
        # A third of the chains save asynchronously (CKPT_MODE=async): the write overlaps
        # the next steps and the kill can land while it runs.
        mode_env = {"CKPT_MODE": "async"} if self.rnd.random() < a.async_share else {}
        tag = "async: " if mode_env else ""
        kills = 0
        pending = None  # (kind, expected newest committed step) of the last kill
        while True:
            expected = (fl.committed(d) or [None])[0]
            mode = None
            if kills < budget:
                mode = self.rnd.choice(["hook", "rank", "job"])
            env = dict(self.env)
            env.update(mode_env)
            kind = None
            if mode == "hook":
                hook = self.rnd.choice(HOOKS)
                env["CKPT_TEST_FAULT"] = hook + ":kill"
                kind = tag + "hook " + hook
            job = fl.Job(argv(d), np=np_, env=env, stderr_path=os.path.join(self.work, "stderr.log"))
            line = job.wait_line("restored:", 120)
            # Check the restore after the previous kill.
            if pending:
                pkind, pexp = pending
                want = "restored: none" if pexp is None else "restored: %d bitexact" % pexp
                bad_verify = [l for l in job.all if l.startswith("verify:") and '"ok":false' in l]
                ok = line == want and not bad_verify
                if not ok:
                    self.fail("after %s: expected '%s', got '%s' %s (dir %s)" % (pkind, want, line, bad_verify, d))
                else:
                    self.survived += 1
                self.note(pkind, ok)
                pending = None
            if line is None:
                rc = job.wait(60)
                self.fail("run did not start its loop: rc=%s out=%s" % (rc, job.all[-5:]))
                return kills
            if mode in ("rank", "job"):
                # A random step of the next few (each step saves), from the run's progress.
                start = 0 if expected is None else expected
                target = start + self.rnd.randint(1, a.window)
                if mode == "rank":
                    victim = self.rnd.randrange(np_)
                    job.wait_step(target, 120)
                    killed = job.p.poll() is None and job.kill_rank(victim)
                    kind_base = "SIGKILL of rank %d at a random step" % victim
                else:
                    killed = job.kill_at_step(target, 120)
                    kind_base = "SIGKILL of the whole job at a random step"
            rc = job.wait(90)
            if rc is None:
                self.fail("job hung after a kill (%s) in %s" % (kind or mode, d))
                killed = True
            finished = any(l.startswith("result:") for l in job.all) and rc == 0
            if mode == "hook":
                killed = not finished
            if mode in ("rank", "job") and killed and finished:
                killed = False  # the kill came after the job ended
            if mode and killed:
                if kind is None:
                    kind = tag + kind_base + " (" + classify(d) + ")"
                kills += 1
                self.made += 1
                pending = (kind, (fl.committed(d) or [None])[0])
                continue
            if finished:
                res = [l for l in job.all if l.startswith("result:")][-1]
                if res != ref:
                    self.fail("final result %s differs from the uninterrupted %s (dir %s)" % (res, ref, d))
                else:
                    self.finals += 1
                shutil.rmtree(d, ignore_errors=True)
                return kills
            if not mode:
                self.fail("unkilled run ended without a result: rc=%s %s" % (rc, job.all[-5:]))
                return kills
            # A random kill that hit nothing (job already gone): run on.

    def heat_chain(self, budget):
        """The C++ heat solver killed at random steps after a checkpoint; its final digest must match."""
        a = self.a
        np_ = 2
        self.chains += 1
        d = os.path.join(self.work, "heat%03d" % self.chains)
        os.makedirs(d)
        argv = lambda dd: [a.heat, "--n", "384", "--steps", "1000", "--every", "20", "--dir", dd]
        ref = self.reference("heat", argv, np_)
        env = dict(self.env)
        env.pop("CKPT_QUIET", None)
        kills = 0
        pending = None
        while True:
            errp = os.path.join(self.work, "heat-stderr-%d.log" % kills)
            if os.path.exists(errp):
                os.remove(errp)
            job = fl.Job(argv(d), np=np_, env=env, stderr_path=errp)
            if kills < budget:
                # After a checkpoint this run committed, at a random step of the next interval.
                first = job.wait_saved_after(-1, 120)
                target = (first if first is not None else 0) + self.rnd.randint(1, 20)
                whole = self.rnd.random() < 0.5
                if whole:
                    killed = job.kill_at_step(target, 120)
                else:
                    job.wait_step(target, 120)
                    killed = job.p.poll() is None and self._kill_heat_rank(job)
            else:
                killed = False
            rc = job.wait(300)
            log = open(errp, errors="replace").read()
            if pending is not None:
                want = ("restored step %d " % pending[1]) if pending[1] is not None else None
                got_restore = "restored step" in log
                ok = (want in log) if want else (not got_restore)
                if rc is None:
                    ok = False
                # A run killed again before it restored proves nothing yet: check next time.
                if not ok and "restored step" not in log and killed:
                    pass
                else:
                    if not ok:
                        self.fail("heat after %s: expected restore of %s; log: %s" % (pending[0], pending[1], log[-400:]))
                    else:
                        self.survived += 1
                    self.note(pending[0], ok)
                    pending = None
            finished = rc == 0 and any(l.startswith("result:") for l in job.all)
            if killed and not finished:
                if pending is None:
                    kills += 1
                    self.made += 1
                    pending = ("heat: random SIGKILL of %s" % ("the whole job" if whole else "one rank"),
                               (fl.committed(d) or [None])[0])
                else:
                    pending = (pending[0], (fl.committed(d) or [None])[0])
                continue
            if finished:
                res = [l for l in job.all if l.startswith("result:")][-1]
                if res != ref:
                    self.fail("heat final result %s differs from the uninterrupted %s" % (res, ref))
                else:
                    self.finals += 1
                shutil.rmtree(d, ignore_errors=True)
                return kills
            if not killed:
                self.fail("heat run ended without a result: rc=%s" % rc)
                return kills

    def _kill_heat_rank(self, job):
        kids = self._heat_ranks(job)
        if not kids:
            return False
        job.pids = kids
        return job.kill_rank(self.rnd.randrange(len(kids)))

    def _heat_ranks(self, job):
        """The ranks of a heat job: mpiexec's children (heat does not print its pids)."""
        kids = []
        try:
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        st = open("/proc/%s/stat" % pid).read()
                    except OSError:
                        continue
                    fields = st.rsplit(")", 1)[1].split()
                    if int(fields[1]) == job.p.pid:
                        kids.append(int(pid))
        except OSError:
            pass
        return kids

    def go(self):
        a = self.a
        t0 = time.time()
        while self.made < a.kills:
            left = a.kills - self.made
            if a.heat and self.rnd.random() < a.heat_share:
                self.heat_chain(min(left, 3))
            else:
                self.fault_chain(min(left, self.rnd.randint(4, 8)))
        summary = {
            "kills_made": self.made, "kills_survived": self.survived,
            "chains": self.chains, "chains_with_final_result_equal_to_uninterrupted": self.finals,
            "failures": len(self.failures), "seconds": round(time.time() - t0, 1),
            "by_kind": {k: {"survived": v[0], "made": v[1]} for k, v in sorted(self.by_kind.items())},
        }
        self.log(json.dumps(summary, indent=1))
        self.log("kills survived / made: %d / %d" % (self.survived, self.made))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(summary, f, indent=1)
        if not a.keep_work and not self.failures:
            shutil.rmtree(self.work, ignore_errors=True)
        ok = not self.failures and self.survived == self.made and self.made >= a.kills and self.finals == self.chains
        return 0 if ok else 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--app", required=True)
    p.add_argument("--heat")
    p.add_argument("--kills", type=int, default=30)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--n", type=int, default=512, help="rows of the 256-column fields")
    p.add_argument("--window", type=int, default=3,
                   help="random kills land within this many steps after the restored one")
    p.add_argument("--heat-share", type=float, default=0.15)
    p.add_argument("--async-share", type=float, default=0.33)
    p.add_argument("--work")
    p.add_argument("--keep-work", action="store_true")
    p.add_argument("--json")
    a = p.parse_args()
    if a.heat and not os.path.exists(a.heat):
        a.heat = None
    sys.exit(Campaign(a).go())


if __name__ == "__main__":
    main()
