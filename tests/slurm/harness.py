"""Shared helpers of the SLURM tests: a real one-machine cluster (slurm/cluster.sh) in a
temporary directory, or a multi-node one (one network namespace per node), job
submission, and polling of job state. Standard library only.

Every test starts its own cluster and stops it by the daemons' pid files, also when the
test fails. CKPT_SLURM_KEEP=1 keeps the temporary directory (logs, checkpoints)."""

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER_SH = os.path.join(ROOT, "slurm", "cluster.sh")
CKPT_RUN = os.path.join(ROOT, "slurm", "ckpt-run")

# Open MPI as root, more ranks than cores, no cross-memory attach (see DEVELOPERS.md).
MPI_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
    "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
}

EXIT_MORE_WORK = 75


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


class TestFailure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def parse_job(text):
    """key=value pairs of `scontrol -o show job` (one line)."""
    return dict(re.findall(r"(\w+)=(\S*)", text))


class Cluster:
    """A one-node cluster; MultiNodeCluster below adds nodes in network namespaces."""
    start_args = ()
    work_subdir = "work"

    def __init__(self, name):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="ckpt-slurm-%s-" % name)
        self.cluster_dir = os.path.join(self.dir, "cluster")
        self.env = dict(os.environ)
        self.env.update(MPI_ENV)
        # The test's own CKPT_* settings must not leak into jobs unless set on purpose.
        for k in list(self.env):
            if k.startswith("CKPT_") or k.startswith("SLURM_") or k.startswith("SBATCH_"):
                del self.env[k]
        self.env["SLURM_CONF"] = os.path.join(self.cluster_dir, "slurm.conf")
        self.work = os.path.join(self.dir, self.work_subdir)
        os.makedirs(self.work)
        self.jobs = []

    def __enter__(self):
        log("starting SLURM cluster in", self.dir)
        r = subprocess.run([CLUSTER_SH, "start", self.cluster_dir] + list(self.start_args),
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            print(r.stdout, r.stderr, file=sys.stderr)
            self._stop()
            raise TestFailure("could not start the SLURM test cluster")
        self.node = self.sinfo("%N")
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.dump()
        self._stop()
        if exc_type is None and os.environ.get("CKPT_SLURM_KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            log("kept", self.dir)
        return False

    def _stop(self):
        subprocess.run([CLUSTER_SH, "stop", self.cluster_dir], timeout=120)

    def dump(self):
        """Prints what helps to understand a failure."""
        for j in self.jobs:
            try:
                print(self.scontrol("show", "job", str(j)), file=sys.stderr)
            except Exception as e:  # noqa: BLE001 - best effort while failing
                print("scontrol show job", j, "failed:", e, file=sys.stderr)
        for f in sorted(os.listdir(self.work)):
            p = os.path.join(self.work, f)
            if f.endswith(".out") and os.path.isfile(p):
                print("==== %s" % p, file=sys.stderr)
                print(open(p, errors="replace").read()[-6000:], file=sys.stderr)
        lp = os.path.join(self.cluster_dir, "log", "slurmctld.log")
        if os.path.exists(lp):
            print("==== slurmctld.log (tail)", file=sys.stderr)
            print("".join(open(lp, errors="replace").readlines()[-40:]), file=sys.stderr)

    # -- commands -------------------------------------------------------------------
    def run(self, *cmd, check_rc=True, timeout=60, env=None):
        e = dict(self.env)
        if env:
            e.update(env)
        r = subprocess.run(list(cmd), capture_output=True, text=True, env=e, cwd=self.work,
                           timeout=timeout)
        if check_rc and r.returncode != 0:
            raise TestFailure("%s failed (%d): %s %s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
        return r

    def scontrol(self, *args, check_rc=True):
        return self.run("scontrol", *args, check_rc=check_rc).stdout

    def sinfo(self, fmt):
        return self.run("sinfo", "-h", "-o", fmt).stdout.strip()

    def sbatch(self, script, *opts, env=None):
        r = self.run("sbatch", "--parsable", *opts, script, env=env)
        jobid = int(r.stdout.strip().split(";")[0])
        self.jobs.append(jobid)
        log("submitted job", jobid, " ".join(opts), os.path.basename(script))
        return jobid

    def job(self, jobid):
        return parse_job(self.scontrol("-o", "show", "job", str(jobid)))

    def wait_for(self, what, cond, timeout, poll=0.5):
        """Polls cond() until it returns a true value; fails after timeout seconds."""
        end = time.time() + timeout
        while True:
            v = cond()
            if v:
                return v
            if time.time() > end:
                raise TestFailure("timed out after %d s waiting for %s" % (timeout, what))
            time.sleep(poll)

    def wait_state(self, jobid, states, timeout):
        states = set(states)
        got = {}

        def cond():
            got.update(self.job(jobid))
            return got.get("JobState") in states

        self.wait_for("job %d to reach %s (last: %s)" % (jobid, "/".join(sorted(states)),
                                                         got.get("JobState")), cond, timeout)
        return dict(got)

    def wait_done(self, jobid, timeout):
        return self.wait_state(jobid, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT",
                                       "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
                                       "PREEMPTED"}, timeout)

    def read(self, name):
        p = os.path.join(self.work, name)
        return open(p, errors="replace").read() if os.path.exists(p) else ""


class MultiNodeCluster(Cluster):
    """A cluster of `nodes` SLURM nodes node1..nodeN on this machine, each in its own
    network namespace (`cluster.sh start DIR --nodes N`). Jobs run in `work`, on the
    cluster's shared file system (`shared`); inside a node, DIR/nodelocal is that node's
    own storage. kill_node() loses a node hard, revive_node() puts a fresh one back."""
    work_subdir = os.path.join("cluster", "shared", "work")

    def __init__(self, name, nodes=3):
        self.start_args = ("--nodes", str(nodes))
        super().__init__(name)
        self.shared = os.path.dirname(self.work)

    def __enter__(self):
        super().__enter__()
        try:
            with open(os.path.join(self.cluster_dir, "net.conf")) as f:
                net = dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', f.read(), re.M))
            self.nodes = net["NODES"].split()
            self.subnet = net["NET_PREFIX"] + ".0/24"
            # network namespace inode -> node name, to tell on which node a process runs
            self._ns = {os.stat("/run/netns/" + net["NS_PREFIX"] + n).st_ino: n for n in self.nodes}
        except Exception:
            self._stop()
            raise
        log("nodes %s on %s" % (" ".join(self.nodes), self.subnet))
        return self

    def _cluster_sh(self, cmd, *args):
        r = subprocess.run([CLUSTER_SH, cmd, self.cluster_dir] + list(args), capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            raise TestFailure("cluster.sh %s %s failed (%d): %s %s" % (cmd, " ".join(args), r.returncode, r.stdout,
                                                                       r.stderr))
        log(r.stdout.strip())

    def kill_node(self, name):
        """Hard loss: the node's link goes down, then all its processes are SIGKILLed and
        its node-local storage is wiped."""
        self._cluster_sh("kill-node", name)

    def revive_node(self, name):
        """A fresh node in place of a killed one; returns when SLURM reports it idle."""
        self._cluster_sh("revive-node", name)

    def hostnames(self, nodelist):
        """Node names of a SLURM node list ("node[1,3]" -> ["node1", "node3"])."""
        return self.run("scontrol", "show", "hostnames", nodelist).stdout.split()

    def node_of(self, pid):
        """The node whose network namespace process `pid` is in (None if none, or gone)."""
        try:
            return self._ns.get(os.stat("/proc/%d/ns/net" % pid).st_ino)
        except OSError:
            return None

    def dump(self):
        super().dump()
        for lp in sorted(glob.glob(os.path.join(self.cluster_dir, "log", "slurmd.*.log"))):
            print("==== %s (tail)" % os.path.basename(lp), file=sys.stderr)
            print("".join(open(lp, errors="replace").readlines()[-15:]), file=sys.stderr)


def processes(env, comm=None):
    """PIDs of processes whose environment holds every NAME=VALUE of `env` (a VALUE of
    None: NAME is unset) and, if given, whose command name is `comm`."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if comm is not None:
                with open("/proc/%s/comm" % pid) as f:
                    if f.read().strip() != comm:
                        continue
            with open("/proc/%s/environ" % pid, "rb") as f:
                have = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        except OSError:
            continue
        if all(have.get(k.encode()) == (None if v is None else v.encode()) for k, v in env.items()):
            pids.append(int(pid))
    return pids


def require_netns():
    """Exit 77 (ctest SKIP_RETURN_CODE) when this machine cannot make network namespaces
    joined by a bridge and veths (needed by MultiNodeCluster)."""
    missing = [b for b in ("ip", "nsenter", "unshare") if not shutil.which(b) and not os.path.exists("/usr/sbin/" + b)]
    if missing:
        log("SKIP: the multi-node cluster needs", " ".join(missing), "(iproute2, util-linux)")
        sys.exit(77)
    # In a throwaway namespace: what it makes goes away with it.
    r = subprocess.run(["unshare", "--net", "sh", "-c", "ip link add ckpt-probe-br type bridge && "
                        "ip link add ckpt-probe0 type veth peer name ckpt-probe1"],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        log("SKIP: cannot make network namespaces with a bridge and veths here:", r.stderr.strip())
        sys.exit(77)


def heat_reference(heat, n, steps, ranks, workdir, env_extra=None):
    """Runs heat uninterrupted (no SLURM, no checkpoints) and returns its result line."""
    env = dict(os.environ)
    env.update(MPI_ENV)
    for k in list(env):
        if k.startswith("CKPT_") or k.startswith("SLURM_"):
            del env[k]
    env["CKPT_QUIET"] = "1"
    if env_extra:
        env.update(env_extra)
    d = os.path.join(workdir, "reference-ckpt")
    cmd = ["mpirun", "-n", str(ranks), heat, "--n", str(n), "--steps", str(steps), "--every", "0",
           "--dir", d]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if r.returncode != 0:
        raise TestFailure("reference run failed (%d): %s %s" % (r.returncode, r.stdout, r.stderr))
    return result_lines(r.stdout)


def result_lines(text):
    return re.findall(r"^result: ([0-9a-f]+)$", text, re.M)


def _terminated(signum, frame):
    raise TestFailure("terminated by signal %d" % signum)


def run_main(fn):
    """Runs a test function and turns its outcome into the process exit status. SIGTERM
    becomes a failure, so that the cluster is still stopped."""
    import signal
    signal.signal(signal.SIGTERM, _terminated)
    try:
        fn()
    except TestFailure as e:
        log("FAIL:", e)
        sys.exit(1)
    log("PASS")


# -- heat jobs ------------------------------------------------------------------------
HEAT_SBATCH = os.path.join(ROOT, "slurm", "heat.sbatch")


def heat_rate(heat, n, ranks=2, steps=1000, every=0, env_extra=None, min_seconds=1.0):
    """Steps per second of heat on this machine now (checkpointing every `every` steps).
    Used to size jobs so that they need a known amount of time. Runs of 4x more steps
    until one computes for `min_seconds` or more: a run of a fraction of a second
    measured half the speed a job later reached (cold caches, a CPU not yet at speed),
    and a job sized from it finished before it could be stopped. Each run in a fresh
    directory (a second run in the same one would resume its final checkpoint)."""
    env = dict(os.environ)
    env.update(MPI_ENV)
    for k in list(env):
        if k.startswith("CKPT_") or k.startswith("SLURM_"):
            del env[k]
    env["CKPT_QUIET"] = "1"
    env.update(env_extra or {})
    while True:
        d = tempfile.mkdtemp(prefix="ckpt-heat-rate-")
        try:
            r = subprocess.run(["mpirun", "-n", str(ranks), heat, "--n", str(n), "--steps", str(steps),
                                "--every", str(every), "--dir", d], capture_output=True, text=True, env=env,
                               timeout=300)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        m = re.search(r"seconds=([0-9.]+)", r.stdout)
        if r.returncode != 0 or not m:
            raise TestFailure("heat calibration run failed (%d): %s %s" % (r.returncode, r.stdout, r.stderr))
        seconds = max(float(m.group(1)), 1e-3)
        if seconds >= min_seconds or steps >= 10**8:
            break
        steps *= 4
    rate = steps / seconds
    log("heat n=%d every=%d on %d ranks: %.1f steps/s (%d steps in %.2f s)" % (n, every, ranks, rate, steps, seconds))
    return rate


def wall_rate(cmd, steps, env_extra=None):
    """Steps per second of a run of cmd on 2 ranks, start-up included: the rate reads low,
    so a job sized from it is shorter than planned, never longer."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CKPT_", "SLURM_"))}
    env.update(MPI_ENV)
    env["CKPT_QUIET"] = "1"
    env.update(env_extra or {})
    t0 = time.time()
    r = subprocess.run(["mpirun", "-n", "2"] + cmd, env=env, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise TestFailure("calibration run failed (%d): %s %s" % (r.returncode, r.stdout, r.stderr))
    rate = steps / (time.time() - t0)
    log("%s: %.0f steps/s" % (os.path.basename(cmd[1] if cmd[0].endswith("python3") else cmd[0]), rate))
    return rate


class Reference:
    """An uninterrupted run of an app (plain mpirun, no SLURM, no checkpoints) in the
    background. `cmd` is the app's command line without mpirun."""

    def __init__(self, heat, n, steps, ranks, workdir, cmd=None, env_extra=None):
        env = dict(os.environ)
        env.update(MPI_ENV)
        for k in list(env):
            if k.startswith("CKPT_") or k.startswith("SLURM_"):
                del env[k]
        env["CKPT_QUIET"] = "1"
        env.update(env_extra or {})
        if cmd is None:
            cmd = [heat, "--n", str(n), "--steps", str(steps), "--every", "0", "--dir",
                   os.path.join(workdir, "reference-ckpt")]
        self.out = open(os.path.join(workdir, "reference.log"), "w+")
        self.proc = subprocess.Popen(["mpirun", "-n", str(ranks)] + cmd, stdout=self.out,
                                     stderr=subprocess.STDOUT, env=env, text=True)

    def result(self, timeout=900):
        rc = self.proc.wait(timeout=timeout)
        self.out.seek(0)
        text = self.out.read()
        res = result_lines(text)
        if rc != 0 or len(res) != 1:
            raise TestFailure("reference run failed (%d): %s" % (rc, text))
        return res[0]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


START_RE = re.compile(r"^ckpt-run\[job (\d+) restart (\d+) ([\d-]+ [\d:]+)\]: start on \S+: "
                      r"SLURM_RESTART_COUNT=(\S+): ", re.M)
REQUEUE_RE = re.compile(r"^ckpt-run\[.*\]: checkpointed with more work left \(exit 75\); requeueing job",
                        re.M)
STOP_RE = re.compile(r"^heat: stopped after a checkpoint \((\w+)\)", re.M)
CKPT_STOP_RE = re.compile(r"^ckpt: stopping after step (\d+) \((\w+)", re.M)


def allocations(text):
    """(restart, SLURM_RESTART_COUNT as printed, start time) of every allocation in a log."""
    return [(int(m.group(2)), m.group(4), m.group(3)) for m in START_RE.finditer(text)]


def resumed_from(text):
    m = re.findall(r"^heat: n=\d+ steps=\d+ ranks=\d+ resumed_from=(\d+)", text, re.M)
    return [int(x) for x in m]


def parse_args(argv=None):
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("--heat", help="path of build/bin/heat")
    p.add_argument("--probe", help="path of the job_env probe")
    p.add_argument("--launch", default="srun", choices=["srun", "mpirun"])
    p.add_argument("--app", default="heat", choices=["heat", "capsid", "heat-py", "fortran-heat"])
    p.add_argument("--capsid", help="path of build/bin/capsid")
    p.add_argument("--fortran-heat", help="path of build/bin/fortran_heat")
    p.add_argument("--pythonpath", help="directory holding the built ckpt Python package")
    p.add_argument("--cli", help="path of the ckpt command-line tool (build/bin/ckpt)")
    p.add_argument("--scenario", help="which scenario of a test file with several")
    return p.parse_args(argv)


def require_root_and_slurm():
    """Exit 77 (ctest SKIP_RETURN_CODE) when this machine cannot run the test cluster."""
    missing = [b for b in ("slurmctld", "slurmd", "munged", "sbatch") if not shutil.which(b)
               and not os.path.exists("/usr/sbin/" + b)]
    if missing or os.geteuid() != 0:
        log("SKIP: needs root and", " ".join(missing) or "SLURM")
        sys.exit(77)


def restored(text):
    """Steps restored by the ckpt core ("ckpt: restored step N from FILE ...")."""
    return [int(x) for x in re.findall(r"^ckpt: restored step (\d+) from", text, re.M)]


# With CKPT_PROGRESS=1 in the job's environment, rank 0 prints progress lines into the job's
# log; tests act on them (a step reached, a checkpoint committed), never on a guessed delay.
PROGRESS_RE = re.compile(r"^ckpt: progress (step|saved) (\d+)$", re.M)


def progress(text):
    """(last step reported, committed checkpoint steps) from a job log; step -1 if none."""
    step, saved = -1, []
    for kind, n in PROGRESS_RE.findall(text):
        if kind == "step":
            step = int(n)
        else:
            saved.append(int(n))
    return step, saved



# -- jobs over several nodes (MultiNodeCluster) ------------------------------------------
JOB_START_LINE = re.compile(r"^ckpt-run\[job \d+ restart (\d+) [^\]]*\]: start on (\S+): SLURM_RESTART_COUNT=(\S+): ")
JOB_EXIT75_LINE = re.compile(r"^ckpt-run\[.*\]: checkpointed with more work left \(exit 75\)")
PROGRESS_LINE = re.compile(r"^ckpt: progress (step|saved) (\d+)$")
RESTORED_LINE = re.compile(r"^ckpt: restored step (\d+) from")
# Storage levels (CKPT_LOCAL_DIR): where a restore came from, and the lost nodes it names.
RESTORED_LEVEL_LINE = re.compile(r"^ckpt: restored step (\d+) from (node-local \+ partner copies|node-local copies|"
                                 r"the shared copy)(?: \(([^)]*)\))?:")
FLUSHED_LINE = re.compile(r"^ckpt: flushed step (\d+) to (\S+)$")
WARNING_LINE = re.compile(r"^ckpt: warning: (.*)$")
STOPPING_LINE = re.compile(r"^ckpt: stopping after step (\d+) \((\w+)")
RESULT_LINE = re.compile(r"^result: ([0-9a-f]+)$")


class JobLog:
    """A job's output (--open-mode=append) read as it grows, only the new bytes each time,
    split into allocations (ckpt-run's start line). Per allocation: the batch host,
    SLURM_RESTART_COUNT as printed, the last step reached, the checkpoints committed, the
    steps restored and from which level, the flushes to the shared directory, warnings,
    stops, results, and `events`: those lines in the order they were printed."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.rest = b""
        self.allocs = []

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return self
        self.offset += len(data)
        lines = (self.rest + data).split(b"\n")
        self.rest = lines.pop()
        for line in (b.decode(errors="replace") for b in lines):
            self._line(line)
        return self

    def _line(self, line):
        m = JOB_START_LINE.match(line)
        if m:
            self.allocs.append({"restart": int(m.group(1)), "host": m.group(2), "count": m.group(3),
                                "step": -1, "saved": [], "restored": [], "levels": [], "flushed": [],
                                "warnings": [], "stopped": [], "results": [], "exit75": False, "events": []})
            return
        if not self.allocs:
            return
        a = self.allocs[-1]
        m = PROGRESS_LINE.match(line)
        if m:
            if m.group(1) == "step":
                a["step"] = int(m.group(2))
            else:
                a["saved"].append(int(m.group(2)))
                a["events"].append(("saved", int(m.group(2))))
            return
        m = RESTORED_LINE.match(line)
        if m:
            a["restored"].append(int(m.group(1)))
            lv = RESTORED_LEVEL_LINE.match(line)
            # (step, level or None for a line without one, text in parentheses, whole line)
            a["levels"].append((int(m.group(1)), lv.group(2) if lv else None, (lv.group(3) or "") if lv else "",
                                line))
            a["events"].append(("restored", int(m.group(1))))
            return
        for key, rx in (("flushed", FLUSHED_LINE), ("stopped", STOPPING_LINE)):
            m = rx.match(line)
            if m:
                a[key].append(int(m.group(1)))
                a["events"].append((key, int(m.group(1))))
                return
        m = WARNING_LINE.match(line)
        if m:
            a["warnings"].append(m.group(1))
            a["events"].append(("warning", m.group(1)))
            return
        m = RESULT_LINE.match(line)
        if m:
            a["results"].append(m.group(1))
            return
        if JOB_EXIT75_LINE.match(line):
            a["exit75"] = True
            a["events"].append(("exit75", None))

    def alloc(self, restart):
        """The allocation of SLURM_RESTART_COUNT `restart` (0 for the first), once started."""
        self.poll()
        return next((a for a in self.allocs if a["restart"] == restart), None)


def checkpoint_steps(ckdir):
    """Steps of the checkpoint files (ckpt-<step>.h5) in a directory, oldest first."""
    return sorted(int(m.group(1)) for f in glob.glob(os.path.join(ckdir, "ckpt-*.h5"))
                  for m in [re.search(r"ckpt-(\d+)\.h5$", f)] if m)


def job_env(ckdir, restart):
    """Environment that marks the processes of one allocation of a job."""
    return {"CKPT_DIR": ckdir, "SLURM_RESTART_COUNT": None if restart == 0 else str(restart)}


def allocation(c, job, joblog, ckdir, restart, comm="heat", ranks=2):
    """Waits for allocation `restart` of a job on a MultiNodeCluster to run and checks that
    it spans two nodes, one rank on each: its NodeList, and the network namespaces of its
    ranks (processes named `comm`). Returns (nodes, batch host)."""
    def running():
        j = c.job(job)
        return j if j.get("JobState") == "RUNNING" and j.get("Restarts") == str(restart) else None

    info = c.wait_for("allocation %d of job %d to run" % (restart + 1, job), running, 240)
    nodes = c.hostnames(info["NodeList"])
    batch = info["BatchHost"]
    log("allocation %d: NodeList=%s BatchHost=%s" % (restart + 1, info["NodeList"], batch))
    check(len(nodes) == 2, "allocation %d has nodes %s, expected two" % (restart + 1, nodes))

    def where():
        pids = processes(job_env(ckdir, restart), comm=comm)
        w = [c.node_of(p) for p in pids]
        return w if len(pids) == ranks and None not in w else None

    w = c.wait_for("the %d %s ranks of allocation %d" % (ranks, comm, restart + 1), where, 120, poll=0.1)
    log("allocation %d: %s ranks run in the network namespaces of %s"
                     % (restart + 1, comm, " and ".join(sorted(w))))
    check(sorted(set(w)) == sorted(nodes), "ranks run on %s, the job's NodeList is %s" % (w, nodes))
    a = c.wait_for("ckpt-run's start line of allocation %d" % (restart + 1), lambda: joblog.alloc(restart), 60)
    check(a["host"] == batch, "ckpt-run started on %s, BatchHost is %s" % (a["host"], batch))
    check(a["count"] == ("unset" if restart == 0 else str(restart)),
          "allocation %d sees SLURM_RESTART_COUNT=%s" % (restart + 1, a["count"]))
    return nodes, batch


def node_local_parts(c, nodes):
    """{node: [paths of *.part files under its node-local directory, relative to it]}, read
    from outside (DIR/nodes/NAME is what the node sees as DIR/nodelocal)."""
    out = {}
    for n in nodes:
        base = os.path.join(c.cluster_dir, "nodes", n)
        out[n] = sorted(os.path.relpath(p, base) for p in glob.glob(os.path.join(base, "**", "*.part"),
                                                                     recursive=True))
    return out


def kill_mid_interval(c, job, joblog, ckdir, restart, every, victims, ready=None):
    """Once allocation `restart` commits a checkpoint from now on (and `ready(alloc)` holds,
    if given), and then gets half-way to the next one, kills the nodes `victims` (one name
    or a list) hard, one after the other. Returns what the kills hit: the node(s), the job
    state and step then, the checkpoint files in `ckdir` just before and just after, the
    checkpoints this allocation committed, and the *.part files on the job's nodes."""
    if isinstance(victims, str):
        victims = [victims]
    seen = len(joblog.alloc(restart)["saved"])

    def committed():
        a = joblog.alloc(restart)
        return len(a["saved"]) > seen and (ready is None or ready(a))

    c.wait_for("a checkpoint committed in allocation %d" % (restart + 1), committed, 180, poll=0.02)
    target = joblog.alloc(restart)["saved"][-1] + every // 2
    state = c.job(job)["JobState"]  # read now, so that nothing delays the kill once at target
    c.wait_for("step %d" % target, lambda: joblog.alloc(restart)["step"] >= target, 180, poll=0.02)
    before = checkpoint_steps(ckdir)
    parts = node_local_parts(c, c.nodes)
    for v in victims:
        c.kill_node(v)
    after = checkpoint_steps(ckdir)
    a = joblog.alloc(restart)
    hit = {"node": victims[0], "nodes": list(victims), "state": state, "step": a["step"], "before": before,
           "after": after, "saved_here": list(a["saved"]), "flushed_here": list(a["flushed"]),
           "resumed": (a["restored"] or [0])[0], "parts": parts}
    log("killed %s in allocation %d at step %d (job %s); checkpoint files in %s before %s after %s"
                     % (" and ".join(victims), restart + 1, a["step"], state, os.path.basename(ckdir),
                        before[-1:], after[-1:]))
    return hit


def requeued(c, job, ckdir, restart):
    """Waits until SLURM requeued the job (Restarts grows) and the processes of allocation
    `restart` are gone; returns the checkpoint files in `ckdir` then (what the resume may
    pick from)."""
    c.wait_for("SLURM to requeue the job", lambda: c.job(job).get("Restarts") == str(restart + 1), 240)
    c.wait_for("allocation %d's processes to exit" % (restart + 1),
               lambda: not processes(job_env(ckdir, restart)), 120)
    return checkpoint_steps(ckdir)
