#!/usr/bin/python3
"""An MPI job spanning two nodes survives the hard loss of one of them, twice.

A 3-node cluster (one network namespace per node, slurm/cluster.sh start --nodes 3) runs
slurm/heat.sbatch with -N 2 --ntasks=2 (one rank per node, talking TCP between the
namespaces), --requeue, periodic checkpoints on the shared file system. Where the ranks
run is read from outside: the network namespace of each heat process.

1. Half-way between two checkpoints, the node that is not the batch host is lost
   (cluster.sh kill-node: link down, every process SIGKILLed, node-local storage wiped).
   SLURM requeues the job by itself; it comes back on the two surviving nodes (the
   third node joins) and resumes from the newest checkpoint committed before the loss.
2. The lost node is revived (fresh, empty). Half-way between two checkpoints of the
   second allocation, its batch host is lost. The job comes back on the revived node and
   the other survivor and resumes from the newest checkpoint again.
3. The run ends with the uninterrupted run's result, bit for bit.

CKPT_SIGNALS=USR1: the SIGTERM slurmd sends the surviving ranks when SLURM gives up on
the allocation kills them at once, as the lost node's ranks were, instead of letting
them take a last checkpoint. Every action is taken on the job's progress (a checkpoint
committed, a step reached), never after a guessed delay."""
import os
import time
import harness as h

def check_resume(c, log, restart, hit, on_disk, steps):
    """Allocation `restart` resumed from the newest checkpoint committed before the kill
    `hit` (nothing can commit after it: the commit needs every rank)."""
    # The restore comes before the first step.
    c.wait_for("allocation %d's first step" % (restart + 1), lambda: log.alloc(restart)["step"] >= 0, 120,
               poll=0.1)
    got = log.alloc(restart)["restored"]
    h.check(len(got) == 1, "allocation %d restored %s, expected one restore" % (restart + 1, got))
    r = got[0]
    h.log("allocation %d resumed from step %d (newest checkpoint when the node was lost: %d)"
          % (restart + 1, r, hit["after"][-1]))
    h.check(on_disk[-1] == hit["after"][-1] and hit["after"][-1] >= hit["before"][-1],
            "checkpoints on disk changed after the node loss: %s before, %s after, %s at requeue"
            % (hit["before"][-1:], hit["after"][-1:], on_disk[-1:]))
    # On a loaded machine the kill can land as a checkpoint is being committed: the lost
    # node's rank may still finish the commit on the shared file system in the moment
    # between its link going down and its SIGKILL. That checkpoint is complete and the
    # newest then, so it is the one to resume from ("after"); it was not in the log yet.
    h.check(r == hit["after"][-1] and r > hit["resumed"] and 0 < r < steps,
            "allocation %d resumed from step %d, expected %d, the newest checkpoint committed before the "
            "node loss (the killed allocation had resumed from %d and logged commits %s)"
            % (restart + 1, r, hit["after"][-1], hit["resumed"], hit["saved_here"]))
    return r


def main():
    args = h.parse_args()
    h.require_root_and_slurm()
    h.require_netns()
    t0 = time.time()
    n = 512
    # The ranks talk TCP between the nodes: calibrate with TCP between two ranks too.
    rate = h.heat_rate(args.heat, n, env_extra={"OMPI_MCA_btl": "self,tcp"})
    every = max(int(rate * 1.5), 10)        # a checkpoint about every 1.5 s
    steps = every * 8                       # kills at ~1.5 and ~2.5-3.5 intervals
    with h.MultiNodeCluster("multinode", nodes=3) as c:
        ckdir = os.path.join(c.shared, "ckpt")
        out = os.path.join(c.work, "job.out")
        env = {"CKPT_HOME": h.ROOT, "HEAT": args.heat, "HEAT_N": str(n), "HEAT_STEPS": str(steps),
               "HEAT_EVERY": str(every), "CKPT_DIR": ckdir, "CKPT_KEEP": "0", "CKPT_SIGNALS": "USR1",
               "CKPT_PROGRESS": "1", "OMPI_MCA_btl_tcp_if_include": c.subnet}
        job = c.sbatch(h.HEAT_SBATCH, "--time=10", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "--requeue",
                       "--output=" + out, env=env)
        log = h.JobLog(out)
        ref = None
        hits = []
        try:
            # 1: lose the node that is not the batch host.
            nodes1, batch1 = h.allocation(c, job, log, ckdir, 0)
            victim1 = next(x for x in nodes1 if x != batch1)
            hits.append(h.kill_mid_interval(c, job, log, ckdir, 0, every, victim1))
            ref = h.Reference(args.heat, n, steps, 2, c.work)  # while SLURM notices the loss
            on_disk1 = h.requeued(c, job, ckdir, 0)
            nodes2, batch2 = h.allocation(c, job, log, ckdir, 1)
            third = [x for x in c.nodes if x not in nodes1]
            h.check(victim1 not in nodes2 and sorted(nodes2) == sorted([batch1] + third),
                    "allocation 2 runs on %s, expected the survivor %s and the third node %s"
                    % (nodes2, batch1, third))
            r1 = check_resume(c, log, 1, hits[0], on_disk1, steps)

            # 2: a fresh node in place of the lost one, then lose the batch host.
            c.revive_node(victim1)
            hits.append(h.kill_mid_interval(c, job, log, ckdir, 1, every, batch2))
            on_disk2 = h.requeued(c, job, ckdir, 1)
            nodes3, batch3 = h.allocation(c, job, log, ckdir, 2)
            h.check(batch2 not in nodes3 and victim1 in nodes3,
                    "allocation 3 runs on %s, expected the revived %s and not the lost %s" % (nodes3, victim1, batch2))
            r2 = check_resume(c, log, 2, hits[1], on_disk2, steps)

            info = c.wait_done(job, 300)
            expected = ref.result()
        finally:
            if ref:
                ref.kill()
        text = c.read("job.out")
        log.poll()
        h.log("job %d: %s, Restarts=%s, allocations %s" % (job, info["JobState"], info["Restarts"],
                                                            [(a["host"], a["count"], a["restored"]) for a in log.allocs]))
        h.check(info["JobState"] == "COMPLETED", "job ended %s" % info["JobState"])
        h.check(info["Restarts"] == "2", "Restarts=%s, expected 2" % info["Restarts"])
        h.check([a["count"] for a in log.allocs] == ["unset", "1", "2"],
                "SLURM_RESTART_COUNT of the allocations: %s" % [a["count"] for a in log.allocs])
        h.check(not h.REQUEUE_RE.findall(text), "ckpt-run requeued: SLURM should have done it")
        h.check(not h.STOP_RE.findall(text), "the app stopped with a checkpoint; it should have been killed")
        mid_run = [x for x in hits if x["state"] == "RUNNING" and x["saved_here"] and x["step"] < steps]
        resumed = [a["restored"][0] for a in log.allocs if a["restored"] and a["restored"][0] > 0]
        h.log("kills that landed mid-run: %d of %d; runs resumed from a checkpoint: %d (steps %s)"
              % (len(mid_run), len(hits), len(resumed), resumed))
        h.check(len(hits) == 2 and len(mid_run) == 2, "%d of %d kills landed mid-run" % (len(mid_run), len(hits)))
        h.check(resumed == [r1, r2] and r1 < r2, "runs resumed from %s, expected [%d, %d]" % (resumed, r1, r2))
        h.check(h.resumed_from(text) == [r2], "heat reports resumed_from=%s" % h.resumed_from(text))
        got = h.result_lines(text)
        h.log("result %s, uninterrupted %s" % (got, expected))
        h.check(got == [expected], "result %s differs from the uninterrupted run's %s" % (got, expected))
        h.log("nodes: allocation 1 %s, 2 %s, 3 %s; lost %s then %s (batch host); %.0f s in all"
              % (nodes1, nodes2, nodes3, victim1, batch2, time.time() - t0))


if __name__ == "__main__":
    h.run_main(main)
