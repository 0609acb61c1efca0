#!/usr/bin/python3
"""A job with a 1-minute time limit and --signal=B:USR1@20 runs across at least 3
allocations (checkpoint on SLURM's warning, requeue by slurm/ckpt-run, resume) and ends
with the same `result:` as an uninterrupted run. SLURM_RESTART_COUNT is visible in the
log and the output of every allocation is kept (--open-mode=append). --app heat (the C++
solver, slurm/heat.sbatch) or --app fortran-heat (the Fortran solver, `use ckpt`,
slurm/fortran-heat.sbatch).

Timing facts (Slurm 22.05, checked by this test): slurmctld tests time limits every 30 s
and sends the B:USR1@T warning at the first test where the time left is <= T + 30 s, so
with T = 20 the warning comes 10..40 s after the start of an allocation.

Workload: sized from short calibration runs (the fastest of three) to need about 60 s of
compute. Allocations give it 10..40 s each (in practice the first 10..40 s and the later
ones about 17 s: the requeue delay of cred_expire + 1 s locks their start to the 30-s
check), so it normally spans 3-5 allocations. The machine is shared and its speed
varies: if the job ran faster than calibrated and finished within two allocations, the
test says so and runs once more with twice the steps (which no two allocations of at
most 40 s can hold unless the machine got 1.3x faster again). The uninterrupted
reference run goes after the job so that it does not slow the job down."""
import os
import shutil
import tempfile
import harness as h

LIMIT_MIN = 1
WARN = 20
MAX_ALLOC = 40  # seconds an allocation can run before the warning
N = 512               # heat: N x N grid
FNX, FNY = 512, 256    # fortran-heat: NX x NY grid


class App:
    """One solver as this test runs it: its sbatch template, its job environment and the
    command line of its uninterrupted reference run (without mpirun)."""

    def __init__(self, args):
        self.args = args
        self.name = args.app
        if args.app == "heat":
            self.template = h.HEAT_SBATCH
        elif args.app == "fortran-heat":
            self.template = os.path.join(h.ROOT, "slurm", "fortran-heat.sbatch")
        else:
            raise h.TestFailure("test_timelimit.py runs --app heat or fortran-heat, not %s" % args.app)

    def rate(self, work):
        """Steps per second now, the fastest of three short runs."""
        if self.name == "heat":
            return max(h.heat_rate(self.args.heat, N) for _ in range(3))
        # fortran_heat does not time itself, so its rate includes the start-up of mpirun and
        # the ranks (about 0.5 s, and it varies more than a short run's compute). Runs of 4x
        # more steps until one takes 3 s or more keep that share small; it can only make the
        # rate low (a shorter job), which the rerun with twice the steps covers. (A difference
        # of a short and a long run cancelled the start-up, but with 4000 steps in 0.4 s the
        # noise and a reused directory made it negative once.)
        # Each run in a directory of its own: a second run in the same one would resume
        # from the first one's final checkpoint and compute nothing.
        def rate(steps):
            d = tempfile.mkdtemp(prefix="rate-ckpt-", dir=work)
            cmd = [self.args.fortran_heat, "-nx", str(FNX), "-ny", str(FNY), "-s", str(steps), "-e", "0",
                   "-d", d]
            return h.wall_rate(cmd, steps)

        steps = 2000
        while steps / rate(steps) < 3.0 and steps < 10**8:
            steps *= 4
        best = max(rate(steps) for _ in range(3))
        h.log("fortran_heat nx=%d ny=%d on 2 ranks: %.0f steps/s (runs of %d steps)" % (FNX, FNY, best, steps))
        return best

    def job_env(self, steps):
        if self.name == "heat":
            return {"HEAT": self.args.heat, "HEAT_N": str(N), "HEAT_STEPS": str(steps), "HEAT_EVERY": "0"}
        return {"FHEAT": self.args.fortran_heat, "FHEAT_NX": str(FNX), "FHEAT_NY": str(FNY),
                "FHEAT_STEPS": str(steps), "FHEAT_EVERY": "0"}

    def reference(self, steps, work):
        ref_dir = os.path.join(work, "reference-ckpt")
        if self.name == "heat":
            cmd = [self.args.heat, "--n", str(N), "--steps", str(steps), "--every", "0", "--dir", ref_dir]
        else:
            cmd = [self.args.fortran_heat, "-nx", str(FNX), "-ny", str(FNY), "-s", str(steps), "-e", "0",
                   "-d", ref_dir]
        return h.Reference(None, 0, 0, 2, work, cmd=cmd).result()


def run_job(app, steps, attempt):
    with h.Cluster("timelimit-" + app.name) as c:
        ckdir = os.path.join(c.work, "ckpt")
        env = app.job_env(steps)
        env.update({"CKPT_HOME": h.ROOT, "CKPT_DIR": ckdir, "CKPT_LAUNCH": app.args.launch})
        job = c.sbatch(app.template, "--time=%d" % LIMIT_MIN, "--signal=B:USR1@%d" % WARN,
                       "--ntasks=2", "--output=" + os.path.join(c.work, "job.out"), env=env)
        info = c.wait_done(job, timeout=600)
        expected = app.reference(steps, c.work)
        text = c.read("job.out")
        allocs = h.allocations(text)
        h.log("job %d: %s after %s restarts; allocations: %s" % (job, info["JobState"], info["Restarts"], allocs))
        h.check(info["JobState"] == "COMPLETED", "job ended %s, not COMPLETED" % info["JobState"])
        restarts = int(info["Restarts"])
        if restarts < 2 and attempt == 0:
            h.log("the job needed only %d allocation(s): the machine ran it faster than calibrated; "
                  "running again with twice the steps" % (restarts + 1))
            return False
        h.check(restarts >= 2, "job ran in %d allocation(s), expected at least 3" % (restarts + 1))
        # Output of every allocation kept, in order, each showing SLURM_RESTART_COUNT.
        h.check([a[0] for a in allocs] == list(range(restarts + 1)),
                "log does not hold one header per allocation 0..%d: %s" % (restarts, allocs))
        h.check(allocs[0][1] == "unset" and [a[1] for a in allocs[1:]] == [str(i) for i in range(1, restarts + 1)],
                "SLURM_RESTART_COUNT in the log is not unset,1,2,...: %s" % [a[1] for a in allocs])
        core_counts = [int(x) for x in h.re.findall(r"^ckpt: job restart (\d+) \(SLURM_RESTART_COUNT\)", text, h.re.M)]
        h.check(core_counts == list(range(1, restarts + 1)), "ckpt saw restart counts %s" % core_counts)
        # Every allocation but the last stopped on the warning signal, checkpointed and was
        # requeued by ckpt-run exactly once; none was killed at the time limit.
        # (heat says so itself; the core's line is there for every app)
        stops = [reason for _, reason in h.CKPT_STOP_RE.findall(text)]
        h.check(stops == ["signal"] * restarts, "stop reasons %s, expected %d x signal" % (stops, restarts))
        if app.name == "heat":
            stops = h.STOP_RE.findall(text)
            h.check(stops == ["signal"] * restarts, "heat's stop reasons %s, expected %d x signal" % (stops, restarts))
        h.check(len(h.REQUEUE_RE.findall(text)) == restarts,
                "ckpt-run requeued %d times for %d restarts" % (len(h.REQUEUE_RE.findall(text)), restarts))
        h.check("DUE TO TIME LIMIT" not in text, "an allocation was killed at its time limit")
        # Each allocation resumed where the previous one stopped; the last one finished.
        stop_steps = [int(s) for s, _ in h.CKPT_STOP_RE.findall(text)]
        h.check(len(stop_steps) == restarts and stop_steps == sorted(stop_steps) and stop_steps[0] > 0,
                "checkpoint steps on stop: %s" % stop_steps)
        h.check(h.restored(text) == stop_steps,
                "allocations restored steps %s, stops were at %s" % (h.restored(text), stop_steps))
        if app.name == "heat":
            h.check(h.resumed_from(text) == [stop_steps[-1]],
                    "final allocation resumed from %s, last stop was at step %d" % (h.resumed_from(text), stop_steps[-1]))
        got = h.result_lines(text)
        h.log("result %s, uninterrupted %s" % (got, expected))
        h.check(got == [expected], "result %s differs from the uninterrupted run's %s" % (got, expected))
        return True


def main():
    args = h.parse_args()
    h.require_root_and_slurm()
    app = App(args)
    work = tempfile.mkdtemp(prefix="ckpt-timelimit-rate-")
    try:
        steps = int(app.rate(work) * 60)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not run_job(app, steps, 0):
        run_job(app, steps * 2, 1)


if __name__ == "__main__":
    h.run_main(main)
