"""Shared helpers of the fault-injection scripts: launching MPI jobs in their own process
group, killing them, listing checkpoint directories."""

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time

MPIEXEC = shutil.which("mpiexec") or "mpiexec"
CKPT_RE = re.compile(r"^ckpt-(\d{12})\.h5$")


def mpi_env(extra=None, tmpdir=None):
    env = dict(os.environ)
    env.update({
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "OMPI_MCA_rmaps_base_oversubscribe": "1",
        "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
    })
    env.pop("CKPT_TEST_FAULT", None)
    if tmpdir:
        # Session directories of killed jobs land here and are removed with it.
        os.makedirs(tmpdir, exist_ok=True)
        env["OMPI_MCA_orte_tmpdir_base"] = tmpdir
    if extra:
        env.update(extra)
    return env


def committed(d):
    """Steps of the committed checkpoints in d, newest first."""
    out = []
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return out
    for n in names:
        m = CKPT_RE.match(n)
        if m and os.path.isfile(os.path.join(d, n)):
            out.append(int(m.group(1)))
    return sorted(out, reverse=True)


def ckpt_name(step):
    return "ckpt-%012d.h5" % step


class Job:
    """An mpiexec job in its own session; stdout lines arrive in a queue."""

    def __init__(self, argv, np=2, env=None, stderr_path=None):
        self.argv = [MPIEXEC, "-n", str(np)] + list(argv)
        self.err = open(stderr_path, "ab") if stderr_path else subprocess.DEVNULL
        self.p = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self.err, env=env,
                                  start_new_session=True)
        self.lines = queue.Queue()
        self.all = []
        self.t = threading.Thread(target=self._pump, daemon=True)
        self.t.start()
        self.pids = []

    def _pump(self):
        for raw in self.p.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.all.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_line(self, prefix, timeout):
        """The first stdout line starting with prefix, or None (exit or timeout)."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                self.lines.put(None)
                return None
            if line.startswith("pids:"):
                self.pids = [int(x) for x in line.split()[1:]]
            if line.startswith(prefix):
                return line

    def kill_rank(self, i):
        try:
            os.kill(self.pids[i], signal.SIGKILL)
            return True
        except (ProcessLookupError, IndexError):
            return False

    def kill_all(self):
        """SIGKILL the whole job at once: mpiexec's process group and every rank."""
        alive = self.p.poll() is None
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return alive

    def wait(self, timeout):
        """Exit code, or None after killing a job that did not end in time (a hang)."""
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_all()
            self.p.wait()
            rc = None
        self.t.join(timeout=10)
        # No rank may outlive its job.
        for pid in self.pids:
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.err is not subprocess.DEVNULL:
            self.err.close()
        return rc


def run(argv, np=2, env=None, timeout=300):
    """Runs an MPI job to completion; returns (rc, stdout lines)."""
    j = Job(argv, np=np, env=env)
    rc = j.wait(timeout)
    return rc, j.all


def json_lines(lines, prefix=""):
    out = []
    for l in lines:
        if prefix and not l.startswith(prefix):
            continue
        l = l[len(prefix):]
        if l.startswith("{"):
            out.append(json.loads(l))
    return out
