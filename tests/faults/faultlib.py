"""Shared helpers of the fault-injection scripts: launching MPI jobs in their own process
group, killing them, listing checkpoint directories."""

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "apps"))
import mpijob  # noqa: E402

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


class Job(mpijob.Job):
    """An mpiexec job in its own session (mpijob.Job: progress lines parsed, whole-job
    SIGKILL); stdout lines also arrive in a queue for wait_line(), and stderr is appended
    to stderr_path when the job ends."""

    def __init__(self, argv, np=2, env=None, stderr_path=None):
        self.lines = queue.Queue()
        self.pids = []
        self.stderr_path = stderr_path
        super().__init__([MPIEXEC, "-n", str(np)] + list(argv), env=env)

    @property
    def all(self):
        return self.out

    def on_line(self, line, is_stdout):
        if not is_stdout:
            return
        if line is not None and line.startswith("pids:"):
            self.pids = [int(x) for x in line.split()[1:]]
        self.lines.put(line)

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
            if line.startswith(prefix):
                return line

    def kill_rank(self, i):
        try:
            os.kill(self.pids[i], signal.SIGKILL)
            return True
        except (ProcessLookupError, IndexError):
            return False

    def kill_all(self):
        """SIGKILL the whole job at once; True if it was still running."""
        return self.kill()

    def wait(self, timeout):
        """Exit code, or None after killing a job that did not end in time (a hang)."""
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = None
        for t in self._pumps:
            t.join(timeout=10)
        # No rank may outlive its job.
        mpijob.kill_job(self.p)
        if self.stderr_path:
            with open(self.stderr_path, "a") as f:
                f.write("".join(l + "\n" for l in self.err))
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
