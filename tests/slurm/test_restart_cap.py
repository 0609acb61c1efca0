#!/usr/bin/python3
"""The restart cap ends a job that keeps getting requeued. With CKPT_MAX_RESTARTS=1 and a
margin that makes every allocation stop after a few seconds, allocations 0 and 1
checkpoint and are requeued; in allocation 2 (SLURM_RESTART_COUNT=2 > 1) ckpt refuses to
run with a clear message, the app fails, ckpt-run does not requeue, and the job ends
FAILED and stays so."""
import os
import time
import harness as h


def main():
    args = h.parse_args()
    h.require_root_and_slurm()
    n = 512
    steps = int(h.heat_rate(args.heat, n) * 120)  # far more than the allocations allow
    with h.Cluster("restartcap") as c:
        ckdir = os.path.join(c.work, "ckpt")
        env = {"CKPT_HOME": h.ROOT, "HEAT": args.heat, "HEAT_N": str(n), "HEAT_STEPS": str(steps),
               "HEAT_EVERY": "0", "CKPT_DIR": ckdir, "CKPT_MAX_RESTARTS": "1", "CKPT_MARGIN": "54"}
        job = c.sbatch(h.HEAT_SBATCH, "--time=1", "--ntasks=2", "--output=" + os.path.join(c.work, "job.out"),
                       env=env)
        info = c.wait_done(job, 240)
        time.sleep(15)  # longer than cred_expire + 1: a requeued job would be back
        info = c.job(job)
        text = c.read("job.out")
        h.log("job %d: %s, Restarts=%s ExitCode=%s, allocations %s"
              % (job, info["JobState"], info["Restarts"], info["ExitCode"], h.allocations(text)))
        h.check(info["JobState"] == "FAILED", "job is %s, expected FAILED" % info["JobState"])
        h.check(info["Restarts"] == "2", "Restarts=%s, expected 2" % info["Restarts"])
        h.check(len(h.REQUEUE_RE.findall(text)) == 2, "ckpt-run requeued %d times" % len(h.REQUEUE_RE.findall(text)))
        h.check(h.STOP_RE.findall(text) == ["time_limit"] * 2, "stops %s" % h.STOP_RE.findall(text))
        msg = "this job was restarted 2 times, more than the cap of 1 (CKPT_MAX_RESTARTS)"
        h.check(msg in text, "the log lacks the restart-cap message %r" % msg)
        h.check(h.re.search(r"^ckpt-run\[job \d+ restart 2 .*not requeueing", text, h.re.M),
                "ckpt-run did not report that it stops requeueing")
        h.check(not h.result_lines(text), "the job should not have finished")


if __name__ == "__main__":
    h.run_main(main)
