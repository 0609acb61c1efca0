#!/usr/bin/python3
"""`scancel --signal=USR1 --full` on a running heat job makes it
checkpoint, exit 75 and get requeued by slurm/ckpt-run exactly once, although the signal
reaches the ranks several times (from scancel directly, through srun or mpirun, and
forwarded by ckpt-run). The second allocation resumes from that checkpoint and ends with
the uninterrupted run's result. (The template's own --signal=B:USR1@120 cannot fire:
the time limit is 10 minutes.) Run once with --launch srun and once with --launch mpirun."""
import glob
import os
import time
import harness as h


def main():
    args = h.parse_args()
    h.require_root_and_slurm()
    n = 512
    steps = int(h.heat_rate(args.heat, n) * 20)
    with h.Cluster("scancel-" + args.launch) as c:
        ckdir = os.path.join(c.work, "ckpt")
        env = {"CKPT_HOME": h.ROOT, "HEAT": args.heat, "HEAT_N": str(n), "HEAT_STEPS": str(steps),
               "HEAT_EVERY": "0", "CKPT_DIR": ckdir, "CKPT_LAUNCH": args.launch}
        job = c.sbatch(h.HEAT_SBATCH, "--time=10", "--ntasks=2",
                       "--output=" + os.path.join(c.work, "job.out"), env=env)
        ref = h.Reference(args.heat, n, steps, 2, c.work)
        try:
            c.wait_state(job, {"RUNNING"}, 60)
            # The Checkpointer creates the directory; give the loop a moment to run.
            c.wait_for("heat to start", lambda: os.path.isdir(ckdir), 60)
            time.sleep(3)
            h.check(c.job(job)["JobState"] == "RUNNING", "job no longer running before scancel")
            c.run("scancel", "--signal=USR1", "--full", str(job))
            h.log("sent scancel --signal=USR1 --full", job)
            info = c.wait_done(job, 300)
            expected = ref.result()
        finally:
            ref.kill()
        time.sleep(3)  # a second requeue would show up here
        info = c.job(job)
        text = c.read("job.out")
        h.log("job %d: %s, Restarts=%s, allocations %s" % (job, info["JobState"], info["Restarts"], h.allocations(text)))
        h.check(info["JobState"] == "COMPLETED", "job ended %s" % info["JobState"])
        h.check(info["Restarts"] == "1", "job restarted %s times, expected exactly 1" % info["Restarts"])
        h.check(len(h.REQUEUE_RE.findall(text)) == 1, "ckpt-run requeued %d times" % len(h.REQUEUE_RE.findall(text)))
        h.check(h.STOP_RE.findall(text) == ["signal"], "stops: %s" % h.STOP_RE.findall(text))
        stops = [int(s) for s, _ in h.CKPT_STOP_RE.findall(text)]
        h.check(len(stops) == 1 and 0 < stops[0] < steps, "checkpoint on stop at steps %s" % stops)
        h.check(h.restored(text) == stops, "restored %s, stopped at %s" % (h.restored(text), stops))
        h.check([a[1] for a in h.allocations(text)] == ["unset", "1"],
                "allocations in the log: %s" % h.allocations(text))
        h.check(os.path.exists(os.path.join(ckdir, "ckpt-%012d.h5" % steps)), "no final checkpoint in %s: %s"
                % (ckdir, sorted(glob.glob(ckdir + "/*"))))
        got = h.result_lines(text)
        h.log("result %s, uninterrupted %s" % (got, expected))
        h.check(got == [expected], "result %s differs from the uninterrupted run's %s" % (got, expected))


if __name__ == "__main__":
    h.run_main(main)
