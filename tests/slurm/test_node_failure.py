#!/usr/bin/python3
"""A heat job (periodic checkpoints, --requeue) whose node goes down mid-run
(`scontrol update nodename=... state=down`, kept out of service with `state=drain` for
15 s, during which the job must stay pending, then `state=resume`) is requeued by SLURM
itself, not by ckpt-run, resumes from the last periodic checkpoint committed before the
failure (the newest one on disk once the job is requeued), and ends with the
uninterrupted run's result. CKPT_SIGNALS=USR1 so that the
SIGTERM slurmd sends on the node failure kills the ranks at once, as a lost node would,
instead of letting them take a last checkpoint."""
import glob
import os
import re
import time
import harness as h


def committed_steps(ckdir):
    return sorted(int(m.group(1)) for f in glob.glob(os.path.join(ckdir, "ckpt-*.h5"))
                  for m in [re.search(r"ckpt-(\d+)\.h5$", f)] if m)


def job_processes(ckdir):
    """PIDs of the processes started for the job (their environment names its CKPT_DIR)."""
    tag = b"\0CKPT_DIR=" + ckdir.encode() + b"\0"
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/environ" % pid, "rb") as f:
                if tag in b"\0" + f.read():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


def main():
    args = h.parse_args()
    h.require_root_and_slurm()
    n = 512
    rate = h.heat_rate(args.heat, n)
    every = max(int(rate * 2), 10)          # a checkpoint about every 2 s
    steps = every * 6                       # about 12 s of compute (more on a busy machine)
    with h.Cluster("nodefail") as c:
        ckdir = os.path.join(c.work, "ckpt")
        env = {"CKPT_HOME": h.ROOT, "HEAT": args.heat, "HEAT_N": str(n), "HEAT_STEPS": str(steps),
               "HEAT_EVERY": str(every), "CKPT_DIR": ckdir, "CKPT_KEEP": "0", "CKPT_SIGNALS": "USR1",
               "CKPT_PROGRESS": "1"}
        job = c.sbatch(h.HEAT_SBATCH, "--time=10", "--ntasks=2", "--output=" + os.path.join(c.work, "job.out"),
                       env=env)
        ref = h.Reference(args.heat, n, steps, 2, c.work)
        try:
            c.wait_state(job, {"RUNNING"}, 60)
            c.wait_for("two periodic checkpoints", lambda: len(committed_steps(ckdir)) >= 2, 120)
            # Half-way to the next checkpoint, from the job's progress lines.
            target = committed_steps(ckdir)[-1] + every // 2
            c.wait_for("step %d" % target, lambda: h.progress(c.read("job.out"))[0] >= target,
                       120, poll=0.02)
            before = committed_steps(ckdir)
            c.scontrol("update", "nodename=" + c.node, "state=down", "reason=ckpt-node-failure-test")
            after = committed_steps(ckdir)
            h.log("node %s set down; committed checkpoints before %s after %s" % (c.node, before[-1:], after[-1:]))
            # Keep the node out of service for a while, as a rebooting node would be
            # (ReturnToService=2 would put a merely "down" node back at once).
            c.scontrol("update", "nodename=" + c.node, "state=drain", "reason=ckpt-node-failure-test")
            c.wait_for("SLURM to requeue the job",
                       lambda: c.job(job).get("Restarts") == "1", 60)
            time.sleep(15)  # longer than cred_expire + 1: the job could start if a node were up
            # Once the first allocation's processes are gone, what they committed is what the
            # resume must pick from. (The SIGTERM of a node failure can take seconds to
            # reach them on a loaded machine, so the job may commit one more periodic
            # checkpoint after `scontrol` returned.)
            c.wait_for("the first allocation's processes to exit", lambda: not job_processes(ckdir), 60)
            at_requeue = committed_steps(ckdir)
            h.log("committed checkpoints while the job is requeued: %s" % at_requeue[-1:])
            pending = c.job(job)
            h.log("node %s, job %s (%s)" % (c.sinfo("%T"), pending["JobState"], pending.get("Reason")))
            h.check(pending["JobState"] == "PENDING", "job is %s while its node is out" % pending["JobState"])
            c.scontrol("update", "nodename=" + c.node, "state=resume")
            h.log("node resumed: %s" % c.sinfo("%T"))
            info = c.wait_done(job, 300)
            expected = ref.result()
        finally:
            ref.kill()
        text = c.read("job.out")
        h.log("job %d: %s, Restarts=%s, allocations %s" % (job, info["JobState"], info["Restarts"], h.allocations(text)))
        h.check(info["JobState"] == "COMPLETED", "job ended %s" % info["JobState"])
        h.check(info["Restarts"] == "1", "Restarts=%s, expected 1" % info["Restarts"])
        h.check(re.search("node failure", text, re.I), "the log does not show the node failure")
        h.check(not h.REQUEUE_RE.findall(text), "ckpt-run requeued: SLURM should have done it")
        h.check(not h.STOP_RE.findall(text), "the app stopped with a checkpoint; it should have been killed")
        got_restored = h.restored(text)
        h.check(len(got_restored) == 1, "restored %s, expected one restore" % got_restored)
        r = got_restored[0]
        h.check(at_requeue[-1] < steps, "the job had finished (step %d of %d) before its node went down"
                % (at_requeue[-1], steps))
        h.check(r % every == 0 and r == at_requeue[-1] and r >= before[-1] and 0 < r < steps,
                "resumed from step %d, expected the newest periodic checkpoint committed before the ranks "
                "died (%d; %d when the node went down, every %d)" % (r, at_requeue[-1], before[-1], every))
        h.check(h.resumed_from(text) == [r], "heat reports resumed_from=%s" % h.resumed_from(text))
        got = h.result_lines(text)
        h.log("result %s, uninterrupted %s" % (got, expected))
        h.check(got == [expected], "result %s differs from the uninterrupted run's %s" % (got, expected))


if __name__ == "__main__":
    h.run_main(main)
