#!/usr/bin/python3
"""A job without any warning signal stops cleanly before its time limit from the end time
ckpt read at start (`scontrol show job`, EndTime=), once the time left is below the
margin: it checkpoints, exits 75, ckpt-run requeues it, and the next allocation finishes
with the uninterrupted run's result. The first allocation uses CKPT_MARGIN=48 s of a
1-minute limit, so it must stop about 12 s after it started; later ones use 5 s.

The job is sized for about 40 s of compute at the calibrated rate, so that it still needs
more than the first allocation's 12 s if it runs 3x faster than the calibration did (in
one CI run it ran 1.8x faster than a short calibration and finished in 10 s, before the
margin window opened). A slower machine only means more allocations, each stopped the
same way; the checks below hold for any number of them."""
import os
import time
import harness as h

MARGIN = 48


def ts(s):
    return time.mktime(time.strptime(s, "%Y-%m-%d %H:%M:%S"))


def main():
    args = h.parse_args()
    h.require_root_and_slurm()
    n = 512
    steps = int(max(h.heat_rate(args.heat, n) for _ in range(2)) * 40)
    with h.Cluster("endtime") as c:
        ckdir = os.path.join(c.work, "ckpt")
        script = os.path.join(c.work, "endtime.sbatch")
        with open(script, "w") as f:
            f.write("""#!/bin/bash
# No --signal: the only way to stop in time is the end time read by ckpt.
if [ -z "${SLURM_RESTART_COUNT:-}" ]; then export CKPT_MARGIN=%d; else export CKPT_MARGIN=5; fi
exec %s srun --mpi=pmix %s --n %d --steps %d --every 0 --dir %s
""" % (MARGIN, h.CKPT_RUN, args.heat, n, steps, ckdir))
        job = c.sbatch(script, "--time=1", "--ntasks=2", "--requeue", "--open-mode=append",
                       "--output=" + os.path.join(c.work, "job.out"))
        first = c.wait_state(job, {"RUNNING"}, 60)
        h.check(first.get("TimeLimit") == "00:01:00", "time limit %s" % first.get("TimeLimit"))
        info = c.wait_done(job, 540)
        # The uninterrupted run goes after the job so that it does not slow the job down.
        expected = h.Reference(args.heat, n, steps, 2, c.work).result()
        text = c.read("job.out")
        allocs = h.allocations(text)
        h.log("job %d: %s, Restarts=%s, allocations %s" % (job, info["JobState"], info["Restarts"], allocs))
        h.check(info["JobState"] == "COMPLETED", "job ended %s" % info["JobState"])
        h.check("DUE TO TIME LIMIT" not in text, "an allocation was killed at its time limit")
        restarts = int(info["Restarts"])
        h.check(restarts >= 1, "the job never stopped early")
        stops = h.STOP_RE.findall(text)
        h.check(stops == ["time_limit"] * restarts, "stop reasons %s, expected time_limit" % stops)
        h.check(len(h.REQUEUE_RE.findall(text)) == restarts, "requeues in the log differ from Restarts")
        # The first stop came from the end time: not before the margin window began, and
        # well before the limit.
        m = h.re.search(r"^ckpt-run\[job \d+ restart 0 ([\d-]+ [\d:]+)\]: checkpointed with more work left",
                        text, h.re.M)
        h.check(m is not None, "no requeue line for the first allocation")
        took = ts(m.group(1)) - ts(allocs[0][2])
        h.log("first allocation stopped %.0f s after it started (limit 60 s, margin %d s)" % (took, MARGIN))
        h.check(60 - MARGIN - 2 <= took <= 60 - MARGIN + 15,
                "first allocation stopped after %.0f s, expected about %d s" % (took, 60 - MARGIN))
        stop_steps = [int(s) for s, _ in h.CKPT_STOP_RE.findall(text)]
        h.check(h.restored(text) == stop_steps, "restored %s, stopped at %s" % (h.restored(text), stop_steps))
        got = h.result_lines(text)
        h.log("result %s, uninterrupted %s" % (got, expected))
        h.check(got == [expected], "result %s differs from the uninterrupted run's %s" % (got, expected))


if __name__ == "__main__":
    h.run_main(main)
