#!/usr/bin/python3
"""Storage levels (CKPT_LOCAL_DIR, CKPT_FLUSH_EVERY) on a 3-node cluster (one network
namespace per node, slurm/cluster.sh start --nodes 3; 4 nodes for `both`). A job of an
app's sbatch template runs with -N 2 --ntasks=2 --ntasks-per-node=1 --requeue, every
checkpoint written to the node-local directory of its node (DIR/nodelocal, a different
directory on every node) with a copy on a partner rank on the other node. One scenario
per run (--scenario):

partner  (--app heat, heat-py or capsid) CKPT_FLUSH_EVERY=0: nothing reaches the shared
         CKPT_DIR before the end. Half-way between two checkpoints, the node that is not
         the batch host is lost (cluster.sh kill-node: link down, every process SIGKILLed,
         node-local storage wiped); `ckpt verify` passes the survivor's two parts of the
         newest checkpoint (its own and the partner copy). SLURM requeues the job by
         itself onto the survivor and the third node. The job resumes from the newest
         checkpoint committed before the loss, rebuilt from the survivor's own part and
         its copy of the lost node's part: the restore line says "node-local + partner
         copies" and names the lost node, the shared directory held no checkpoint before
         the restart and holds the rebuilt ckpt-N.h5 after it. The result is bit for bit
         the uninterrupted run's, and the end of the run flushes its last checkpoint.
both     (heat, on a 4-node cluster) CKPT_FLUSH_EVERY=2: every second checkpoint is also
         flushed to CKPT_DIR. After a checkpoint newer than the newest flush, both nodes of
         the job are lost, so no copy of any part of it is left. SLURM requeues the job
         onto the two other nodes; it resumes from the newest flush: the restore line says
         "the shared copy", a warning says why, and the result is still identical. (Four
         nodes, not three with one revived: a node revived right after the loss received
         SLURM's request to end the job's lost allocation once the job had started again on
         it, with the same job id, and that killed the new allocation.)
stop     (heat) CKPT_FLUSH_EVERY=0 and CKPT_RUN_REQUEUE=0. After a node-local checkpoint,
         scancel --signal=USR1 --full: the app checkpoints and exits 75, and ckpt-run exits
         75 without requeueing, so the job ends there with nothing of it running. The
         shared directory then holds ckpt-<stop step>.h5 (and nothing else), flushed before
         the exit, and `ckpt verify` passes it. The test requeues the job (as ckpt-run
         would have); it resumes from the stop step and ends identical.

CKPT_SIGNALS=USR1 (as in test_multinode.py): the SIGTERM slurmd sends the surviving ranks
when SLURM gives up on an allocation kills them at once, as the lost node's ranks were,
instead of letting them stop with a checkpoint (and a flush). Every action is taken on the
job's progress (CKPT_PROGRESS lines: a checkpoint committed, a step reached, a flush
published) or state, never after a guessed delay."""
import glob
import os
import time
import harness as h

PARTNER = "node-local + partner copies"
SHARED = "the shared copy"
# The calibration and the uninterrupted run are plain mpiruns on this machine, where the
# test clusters' bridges come and go: left to itself, Open MPI uses every interface, and a
# calibration hung for minutes once when another test's cluster removed its bridge as it
# started. They use the loopback interface only.
LOOPBACK_ONLY = {"OMPI_MCA_btl_tcp_if_include": "lo", "OMPI_MCA_oob_tcp_if_include": "lo"}


class App:
    """One app: its sbatch template, the job's environment, the uninterrupted run, the
    process name of its ranks, and the checkpoint interval and steps sized from a
    calibration run (ranks talking TCP, as between the nodes)."""

    def __init__(self, args, work, intervals, interval_seconds):
        tcp = dict(LOOPBACK_ONLY, OMPI_MCA_btl="self,tcp")
        ref_dir = os.path.join(work, "reference-ckpt")
        rate_dir = os.path.join(work, "rate-ckpt")
        self.name = args.app
        self.ref_env = dict(LOOPBACK_ONLY)
        if args.app == "heat":
            n = 512
            rate = h.heat_rate(args.heat, n, env_extra=tcp)
            self.every = max(int(rate * interval_seconds), 10)
            self.steps = self.every * intervals
            self.template, self.comm = "heat.sbatch", "heat"
            self.env = {"HEAT": args.heat, "HEAT_N": str(n), "HEAT_STEPS": str(self.steps),
                        "HEAT_EVERY": str(self.every)}
            self.ref = [args.heat, "--n", str(n), "--steps", str(self.steps), "--every", "0", "--dir", ref_dir]
        elif args.app == "capsid":
            n = 400
            # 100 calibration steps, so that process start-up does not dominate the rate
            rate = h.wall_rate([args.capsid, "-n", str(n), "-s", "100", "-e", "0", "-d", rate_dir], 100, tcp)
            self.every = max(int(rate * interval_seconds), 10)
            self.steps = self.every * intervals
            self.template, self.comm = "capsid.sbatch", "capsid"
            self.env = {"CAPSID": args.capsid, "CAPSID_N": str(n), "CAPSID_STEPS": str(self.steps),
                        "CAPSID_EVERY": str(self.every)}
            self.ref = [args.capsid, "-n", str(n), "-s", str(self.steps), "-e", "0", "-d", ref_dir]
        elif args.app == "heat-py":
            n, py = 256, "/usr/bin/python3"
            script = os.path.join(h.ROOT, "apps", "heat.py")
            self.ref_env["PYTHONPATH"] = args.pythonpath
            rate = h.wall_rate([py, script, "--n", str(n), "--steps", "2000", "--every", "0", "--dir", rate_dir],
                               2000, dict(tcp, **self.ref_env))
            self.every = max(int(rate * interval_seconds), 50)
            self.steps = self.every * intervals
            self.template, self.comm = "heat-py.sbatch", "python3"
            self.env = {"PYTHON": py, "CKPT_PYTHONPATH": args.pythonpath, "HEAT_N": str(n),
                        "HEAT_STEPS": str(self.steps), "HEAT_EVERY": str(self.every)}
            self.ref = [py, script, "--n", str(n), "--steps", str(self.steps), "--every", "0", "--dir", ref_dir]
        else:
            raise h.TestFailure("no storage-level test for --app %s" % args.app)
        h.log("%s: a checkpoint every %d steps, %d steps" % (self.name, self.every, self.steps))

    def submit(self, c, ckdir, out, extra_env):
        """Submits the job over two nodes, one rank per node, with the levels' settings."""
        env = {"CKPT_HOME": h.ROOT, "CKPT_DIR": ckdir, "CKPT_KEEP": "0", "CKPT_SIGNALS": "USR1",
               "CKPT_PROGRESS": "1", "OMPI_MCA_btl_tcp_if_include": c.subnet,
               # node-local storage: inside every node this is that node's own directory
               "CKPT_LOCAL_DIR": os.path.join(c.cluster_dir, "nodelocal")}
        env.update(self.env)
        env.update(extra_env)
        return c.sbatch(os.path.join(h.ROOT, "slurm", self.template), "--time=10", "--nodes=2", "--ntasks=2",
                        "--ntasks-per-node=1", "--requeue", "--output=" + out, env=env)

    def reference(self, c):
        return h.Reference(None, 0, 0, 2, c.work, cmd=self.ref, env_extra=self.ref_env)


def first_step(c, jl, restart):
    """Waits for allocation `restart`'s first step (the restore comes before it)."""
    c.wait_for("allocation %d's first step" % (restart + 1), lambda: jl.alloc(restart)["step"] >= 0, 120, poll=0.05)
    return jl.alloc(restart)


def the_restore(a, restart):
    """(step, level, text in parentheses, line) of the one restore of an allocation."""
    h.check(len(a["levels"]) == 1, "allocation %d restored %s, expected one restore" % (restart + 1, a["levels"]))
    h.log("allocation %d: %s" % (restart + 1, a["levels"][0][3]))
    return a["levels"][0]


def check_parts(hit, nodes):
    """Every node of the job held node-local *.part files when the kill came."""
    for n in nodes:
        h.log("node-local files on %s before the kill: %s" % (n, hit["parts"][n]))
        h.check(hit["parts"][n], "no *.part file in %s's node-local directory before the kill" % n)


def check_end(c, job, jl, info, expected, allocs):
    text = c.read("job.out")
    jl.poll()
    h.log("job %d: %s, Restarts=%s, allocations %s" % (
        job, info["JobState"], info["Restarts"],
        [(a["host"], a["count"], a["restored"], a["flushed"]) for a in jl.allocs]))
    h.check(info["JobState"] == "COMPLETED", "job ended %s" % info["JobState"])
    h.check(len(jl.allocs) == allocs and info["Restarts"] == str(allocs - 1),
            "%d allocations in the log, Restarts=%s; expected %d" % (len(jl.allocs), info["Restarts"], allocs))
    got = h.result_lines(text)
    h.log("result %s, uninterrupted %s" % (got, expected))
    h.check(got == [expected], "result %s differs from the uninterrupted run's %s" % (got, expected))


def verify_parts(c, cli, node, step):
    """`ckpt verify` passes every node-local part of checkpoint `step` that `node` holds
    (its own rank's and the partner copy). Called right after the other node was lost:
    nothing on `node` can commit or remove a checkpoint then (a commit needs every rank),
    and the requeued job cannot start before SLURM has noticed the loss."""
    base = os.path.join(c.cluster_dir, "nodes", node)
    parts = sorted(glob.glob(os.path.join(base, "**", "ckpt-%012d-*.part" % step), recursive=True))
    h.log("node-local parts of step %d on %s: %s" % (step, node, [os.path.basename(p) for p in parts]))
    h.check(len(parts) == 2, "%s holds %d parts of step %d, expected 2 (its rank's and the partner copy)"
            % (node, len(parts), step))
    for p in parts:
        r = c.run(cli, "verify", p, check_rc=False)
        h.log("ckpt verify: rc %d: %s" % (r.returncode, (r.stdout + r.stderr).strip()))
        h.check(r.returncode == 0, "ckpt verify %s failed (%d): %s %s" % (p, r.returncode, r.stdout, r.stderr))


def node_local_left(c):
    """What the node-local directories hold once the job is done (for the log): the files
    under each, and the directories without files."""
    out = {}
    for n in c.nodes:
        base = os.path.join(c.cluster_dir, "nodes", n)
        found = []
        for d, subdirs, files in os.walk(base):
            found += [os.path.relpath(os.path.join(d, f), base) for f in files]
            if not files and not subdirs and d != base:
                found.append(os.path.relpath(d, base) + "/")
        out[n] = sorted(found)
    return out


def scenario_partner(args, c):
    """One node lost, no shared flush before: resume from the partner-rebuilt checkpoint."""
    app = App(args, c.work, intervals=4, interval_seconds=1.5)
    ckdir = os.path.join(c.shared, "ckpt")
    jl = h.JobLog(os.path.join(c.work, "job.out"))
    job = app.submit(c, ckdir, jl.path, {"CKPT_FLUSH_EVERY": "0"})
    ref = None
    try:
        nodes1, batch1 = h.allocation(c, job, jl, ckdir, 0, comm=app.comm)
        victim = next(x for x in nodes1 if x != batch1)
        hit = h.kill_mid_interval(c, job, jl, ckdir, 0, app.every, victim)
        if args.cli:
            verify_parts(c, args.cli, batch1, hit["saved_here"][-1])
        ref = app.reference(c)  # while SLURM notices the loss
        on_disk = h.requeued(c, job, ckdir, 0)
        a1 = jl.alloc(0)  # complete: its processes are gone
        nodes2, batch2 = h.allocation(c, job, jl, ckdir, 1, comm=app.comm)
        a2 = first_step(c, jl, 1)
        rebuilt = h.checkpoint_steps(ckdir)
        info = c.wait_done(job, 300)
        expected = ref.result()
    finally:
        if ref:
            ref.kill()
    text = c.read("job.out")
    third = [x for x in c.nodes if x not in nodes1]
    h.check(victim not in nodes2 and sorted(nodes2) == sorted([batch1] + third),
            "allocation 2 runs on %s, expected the survivor %s and the third node %s" % (nodes2, batch1, third))
    h.check(hit["state"] == "RUNNING" and hit["saved_here"] and hit["step"] < app.steps,
            "the kill did not land mid-run: %s" % {k: hit[k] for k in ("state", "step", "saved_here")})
    check_parts(hit, nodes1)
    h.check(not a1["flushed"], "allocation 1 flushed %s to the shared directory (CKPT_FLUSH_EVERY=0)" % a1["flushed"])
    h.check(hit["before"] == [] and hit["after"] == [] and on_disk == [],
            "the shared directory held checkpoints %s before the kill, %s after, %s at the requeue; expected none "
            "(CKPT_FLUSH_EVERY=0)" % (hit["before"], hit["after"], on_disk))
    # The log is a lower bound of what allocation 1 committed: on a loaded machine the kill
    # can land after a later checkpoint committed but before its line left the nodes (the
    # lines in flight die with them). The restore must not go back past the log, and
    # anything newer is a periodic checkpoint that the restore found complete.
    newest = a1["saved"][-1]
    step, level, lost, line = the_restore(a2, 1)
    if step > newest:
        h.log("allocation 2 restored step %d, newer than the last logged commit %d: the kill landed after it"
              % (step, newest))
    h.check(newest <= step < app.steps and (step - newest) % app.every == 0,
            "allocation 2 restored step %d, expected %d or a later checkpoint, the newest committed before the "
            "loss (allocation 1 logged %s)" % (step, newest, a1["saved"]))
    h.check(level == PARTNER, "allocation 2 restored from %r, expected %r: %s" % (level, PARTNER, line))
    h.check(victim in lost.replace(",", " ").split() and "lost" in lost,
            "the restore line does not name the lost node %s: %s" % (victim, line))
    h.check(step in rebuilt, "no rebuilt ckpt-%012d.h5 in the shared directory after the restore: %s"
            % (step, rebuilt))
    check_end(c, job, jl, info, expected, 2)
    h.check(not h.REQUEUE_RE.findall(text), "ckpt-run requeued: SLURM should have done it")
    if app.name == "heat":
        h.check(h.resumed_from(text) == [step], "heat reports resumed_from=%s" % h.resumed_from(text))
    a2 = jl.alloc(1)
    h.log("allocation 2 flushed %s; shared directory at the end: %s; node-local directories: %s"
          % (a2["flushed"], h.checkpoint_steps(ckdir), node_local_left(c)))
    # The last step is a periodic checkpoint (steps = every x intervals), and the end flushes it.
    h.check(a2["flushed"] and a2["flushed"][-1] == app.steps and app.steps in h.checkpoint_steps(ckdir),
            "the end of the run did not flush step %d: flushed %s" % (app.steps, a2["flushed"]))


def scenario_both(args, c):
    """Both nodes of the job lost after a checkpoint newer than the newest flush: resume
    from the newest flush."""
    app = App(args, c.work, intervals=6, interval_seconds=1.0)
    ckdir = os.path.join(c.shared, "ckpt")
    jl = h.JobLog(os.path.join(c.work, "job.out"))
    job = app.submit(c, ckdir, jl.path, {"CKPT_FLUSH_EVERY": "2"})

    def newer_than_flush(a):
        # a flush published, and the newest checkpoint is newer and not in the shared directory
        return a["flushed"] and a["saved"][-1] > max(a["flushed"]) and \
            a["saved"][-1] not in h.checkpoint_steps(ckdir)

    ref = None
    try:
        nodes1, batch1 = h.allocation(c, job, jl, ckdir, 0, comm=app.comm)
        other = next(x for x in nodes1 if x != batch1)
        hit = h.kill_mid_interval(c, job, jl, ckdir, 0, app.every, [other, batch1], ready=newer_than_flush)
        ref = app.reference(c)
        on_disk = h.requeued(c, job, ckdir, 0)
        a1 = jl.alloc(0)
        nodes2, batch2 = h.allocation(c, job, jl, ckdir, 1, comm=app.comm)
        a2 = first_step(c, jl, 1)
        info = c.wait_done(job, 300)
        expected = ref.result()
    finally:
        if ref:
            ref.kill()
    others = [x for x in c.nodes if x not in nodes1]
    h.check(sorted(nodes2) == sorted(others), "allocation 2 runs on %s, expected the two other nodes %s"
            % (nodes2, others))
    h.check(hit["state"] == "RUNNING" and hit["step"] < app.steps, "the kills did not land mid-run: %s"
            % {k: hit[k] for k in ("state", "step", "saved_here")})
    check_parts(hit, nodes1)
    newest_local = a1["saved"][-1]
    h.log("before the loss: committed %s, flushed %s; shared files before the kills %s, after %s, at the requeue %s"
          % (a1["saved"], a1["flushed"], hit["before"], hit["after"], on_disk))
    h.check(on_disk and on_disk == hit["after"] == hit["before"],
            "shared files changed around the kills: %s before, %s after, %s at the requeue"
            % (hit["before"], hit["after"], on_disk))
    newest_shared = on_disk[-1]
    h.check(newest_shared in a1["flushed"], "ckpt-%012d.h5 is in the shared directory, but no flush of it was "
            "logged (%s)" % (newest_shared, a1["flushed"]))
    h.check(newest_local > newest_shared and newest_local not in on_disk,
            "the newest checkpoint %d is not newer than the newest flush %d: nothing was lost"
            % (newest_local, newest_shared))
    step, level, lost, line = the_restore(a2, 1)
    h.check(step == newest_shared, "allocation 2 restored step %d, expected %d, the newest shared flush "
            "(the lost node-local one was %d)" % (step, newest_shared, newest_local))
    h.check(level == SHARED, "allocation 2 restored from %r, expected %r: %s" % (level, SHARED, line))
    check_end(c, job, jl, info, expected, 2)
    warned = [w for kind, w in a2["events"][:a2["events"].index(("restored", step))] if kind == "warning"]
    h.log("warnings before the restore: %s" % warned)
    h.check(warned, "no `ckpt: warning:` line says why the shared copy was used (the node-local checkpoint of "
            "step %d was lost with both nodes)" % newest_local)


def scenario_stop(args, c):
    """USR1 with node-local levels and no flush before: the shared copy is complete and
    verified before exit 75; the job resumes from it and ends identical."""
    h.check(args.cli, "--cli (the ckpt command-line tool) is needed")
    app = App(args, c.work, intervals=4, interval_seconds=1.5)
    ckdir = os.path.join(c.shared, "ckpt")
    jl = h.JobLog(os.path.join(c.work, "job.out"))
    job = app.submit(c, ckdir, jl.path, {"CKPT_FLUSH_EVERY": "0", "CKPT_RUN_REQUEUE": "0"})
    ref = app.reference(c)
    try:
        nodes1, batch1 = h.allocation(c, job, jl, ckdir, 0, comm=app.comm)
        c.wait_for("a checkpoint committed", lambda: jl.alloc(0)["saved"], 180, poll=0.02)
        target = jl.alloc(0)["saved"][-1] + app.every // 2
        c.wait_for("step %d" % target, lambda: jl.alloc(0)["step"] >= target, 180, poll=0.02)
        before = h.checkpoint_steps(ckdir)
        parts = h.node_local_parts(c, nodes1)
        at = jl.alloc(0)["step"]
        c.run("scancel", "--signal=USR1", "--full", str(job))
        h.log("sent scancel --signal=USR1 --full at step %d; shared files then: %s" % (at, before))
        # ckpt-run exits 75 (CKPT_RUN_REQUEUE=0): the job ends, nothing of it runs any more.
        info1 = c.wait_done(job, 180)
        c.wait_for("the job's processes to exit", lambda: not h.processes(h.job_env(ckdir, 0)), 60)
        on_disk = h.checkpoint_steps(ckdir)
        a1 = jl.alloc(0)
        h.log("job ended %s ExitCode=%s; stopped %s, flushed %s; shared files %s; node-local %s"
              % (info1["JobState"], info1.get("ExitCode"), a1["stopped"], a1["flushed"], on_disk,
                 h.node_local_parts(c, nodes1)))
        h.check(info1.get("ExitCode") == "75:0", "the job ended %s with ExitCode=%s, expected 75:0"
                % (info1["JobState"], info1.get("ExitCode")))
        h.check(a1["exit75"], "no `checkpointed with more work left (exit 75)` line from ckpt-run")
        h.check(len(a1["stopped"]) == 1, "ckpt stops: %s" % a1["stopped"])
        stop = a1["stopped"][0]
        h.check(before == [], "the shared directory held %s before the stop (CKPT_FLUSH_EVERY=0)" % before)
        for n in nodes1:
            h.check(parts[n], "no node-local *.part file on %s before the stop" % n)
        h.check(on_disk == [stop], "the shared directory holds %s after exit 75, expected [%d], the stop step"
                % (on_disk, stop))
        ev = a1["events"]
        h.check(("flushed", stop) in ev and ev.index(("flushed", stop)) < ev.index(("exit75", None)),
                "no `ckpt: flushed step %d` before the exit 75: %s" % (stop, ev))
        path = os.path.join(ckdir, "ckpt-%012d.h5" % stop)
        r = c.run(args.cli, "verify", path, check_rc=False)
        h.log("ckpt verify: rc %d: %s" % (r.returncode, (r.stdout + r.stderr).strip()))
        h.check(r.returncode == 0, "ckpt verify %s failed (%d): %s %s" % (path, r.returncode, r.stdout, r.stderr))
        st = os.stat(path)
        # What ckpt-run would have done.
        c.scontrol("requeue", str(job))
        h.log("requeued job %d" % job)
        h.allocation(c, job, jl, ckdir, 1, comm=app.comm)
        a2 = first_step(c, jl, 1)
        info = c.wait_done(job, 300)
        expected = ref.result()
    finally:
        ref.kill()
    step, level, lost, line = the_restore(a2, 1)
    h.check(step == stop, "allocation 2 restored step %d, expected the stop step %d" % (step, stop))
    st2 = os.stat(path)
    h.check((st.st_ino, st.st_size, st.st_mtime_ns) == (st2.st_ino, st2.st_size, st2.st_mtime_ns),
            "ckpt-%012d.h5 was rewritten after it was verified" % stop)
    check_end(c, job, jl, info, expected, 2)
    h.log("allocation 2 flushed %s; node-local directories at the end: %s" % (jl.alloc(1)["flushed"],
                                                                            node_local_left(c)))


SCENARIOS = {"partner": scenario_partner, "both": scenario_both, "stop": scenario_stop}
NODES = {"both": 4}


def main():
    args = h.parse_args()
    h.check(args.scenario in SCENARIOS, "--scenario must be one of %s" % ", ".join(SCENARIOS))
    h.require_root_and_slurm()
    h.require_netns()
    t0 = time.time()
    with h.MultiNodeCluster("levels-%s-%s" % (args.scenario, args.app), nodes=NODES.get(args.scenario, 3)) as c:
        SCENARIOS[args.scenario](args, c)
    h.log("%s %s: %.0f s in all" % (args.scenario, args.app, time.time() - t0))


if __name__ == "__main__":
    h.run_main(main)
