"""Helpers for running MPI jobs, following their progress and killing them whole
(mpiexec and its ranks), shared by the demo and the kill/resume tests."""
import os
import random
import re
import signal
import subprocess
import threading
import time


def session_pids(sid):
    """Live processes of session `sid` (a job started with start_new_session=True)."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(pid))
    return pids


def kill_job(p, timeout=30.0):
    """SIGKILLs the whole job started as Popen `p` in its own session: mpiexec and every
    rank (Open MPI may put ranks in process groups of their own, so killing mpiexec's group
    is not enough), then waits until all of them are gone."""
    deadline = time.monotonic() + timeout
    while True:
        left = session_pids(p.pid)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if p.poll() is None:
            try:
                p.wait(timeout=0.05)
            except Exception:
                pass
        if not left and p.poll() is not None:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {p.pid} did not die")
        time.sleep(0.005)


def wait_session_gone(sid, timeout=30.0):
    """Waits until no process of session `sid` (a killed job: mpiexec and its ranks) is
    left. A killed rank holds the checkpoint directory's lock until it has fully exited,
    as on a cluster, where the next allocation starts after the old one is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = False
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                left = True
                break
        if not left:
            return
        time.sleep(0.01)


# --- Jobs that report their progress ------------------------------------------------------
#
# With CKPT_PROGRESS=1, rank 0 of every ckpt program prints to stderr
#   ckpt: progress step N        at each step boundary (N steps done)
#   ckpt: progress saved N       when the checkpoint of step N is committed (durable)
#   ckpt: progress restored N    after a restore (N = "none" when there was no checkpoint)
# A Job parses these lines as they arrive, so a test or the demo can interrupt a run at a
# point chosen from its progress (a checkpoint committed, a step reached) instead of after a
# guessed delay, and then check where each kill landed.

PROGRESS_RE = re.compile(r"ckpt: progress (step|saved|restored) (\d+|none)\s*$")
CKPT_FILE_RE = re.compile(r"^ckpt-(\d{12})\.h5$")


def committed_steps(d):
    """Steps of the committed checkpoint files in directory d (temp files excluded),
    ascending."""
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for m in map(CKPT_FILE_RE.match, names) if m)


class Job:
    """A command (usually mpiexec and its ranks) in its own session, with CKPT_PROGRESS=1.

    stdout and stderr are read by threads into `out` and `err` (lists of lines); `step` is
    the last step boundary seen, `saved` the committed checkpoints in order, `restored` the
    step restored at start (None: not yet known, "none": no checkpoint was found).
    """

    def __init__(self, argv, env=None, cwd=None, echo=False):
        env = dict(os.environ if env is None else env)
        env["CKPT_PROGRESS"] = "1"
        self.argv = list(argv)
        self.out, self.err = [], []
        self.step = None
        self.saved = []
        self.restored = None
        self.killed_at = None      # last step the run reported before a kill landed
        self._kill_at = None       # step at which the reader thread kills the job
        self._fired = None         # whether the job was running when SIGKILL was sent
        self.echo = echo
        self._cv = threading.Condition()
        self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env, cwd=cwd,
                                  start_new_session=True)
        self._pumps = [threading.Thread(target=self._pump, args=(self.p.stdout, self.out),
                                        daemon=True),
                       threading.Thread(target=self._pump, args=(self.p.stderr, self.err),
                                        daemon=True)]
        for t in self._pumps:
            t.start()

    def _pump(self, stream, lines):
        for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            with self._cv:
                lines.append(line)
                m = PROGRESS_RE.search(line)
                if m:
                    kind, val = m.group(1), m.group(2)
                    n = None if val == "none" else int(val)
                    if kind == "step":
                        self.step = n
                        if self._kill_at is not None and n >= self._kill_at:
                            self._sigkill_now()
                    elif kind == "saved":
                        self.saved.append(n)
                    elif self.restored is None:
                        self.restored = "none" if n is None else n
                self._cv.notify_all()
            self.on_line(line, lines is self.out)
        with self._cv:
            self._cv.notify_all()
        self.on_line(None, lines is self.out)

    def on_line(self, line, is_stdout):
        """Called by the reader threads for every line (None at the end of a stream);
        subclasses hook in here."""
        if self.echo and line is not None and not PROGRESS_RE.search(line):
            print(line, flush=True)

    def running(self):
        return self.p.poll() is None

    def _done(self):
        return self.p.poll() is not None and not any(t.is_alive() for t in self._pumps)

    def wait_for(self, cond, timeout=600.0, poll=0.05):
        """Waits until cond(self) holds; False if the job ended (or timeout passed) first.
        cond is checked at each progress line and every `poll` seconds (for conditions on
        files). The timeout only guards against a hang: it never decides when to
        interrupt."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while not cond(self):
                if self._done() or time.monotonic() > deadline:
                    return bool(cond(self))
                self._cv.wait(poll)
            return True

    def wait_saved_after(self, step, timeout=600.0):
        """Waits for a committed checkpoint newer than `step`; its step, or None."""
        ok = self.wait_for(lambda j: any(s > step for s in j.saved), timeout)
        return max(self.saved) if ok else None

    def wait_step(self, step, timeout=600.0):
        """Waits until the run has done at least `step` steps."""
        return self.wait_for(lambda j: j.step is not None and j.step >= step, timeout)

    def _sigkill_now(self):
        if self._fired is not None:
            return
        self._fired = self.p.poll() is None
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in session_pids(self.p.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def kill_at_step(self, step, timeout=600.0):
        """SIGKILLs the job as soon as it reports `step` (the reader thread sends the
        signal on that line, so the run goes on as little as possible past it). True if
        the kill landed mid-run."""
        with self._cv:
            self._kill_at = step
            if self.step is not None and self.step >= step:
                self._sigkill_now()
        self.wait_for(lambda j: j._fired is not None, timeout)
        return self.kill()

    def kill(self):
        """SIGKILLs the whole job (mpiexec and every rank) and waits until all of it is
        gone. True if the kill landed mid-run: the job was still running when the signal
        went out and did not exit 0. killed_at is then the last step it reported."""
        with self._cv:
            self._sigkill_now()
        kill_job(self.p)
        for t in self._pumps:
            t.join(timeout=10)
        landed = bool(self._fired) and self.p.returncode != 0
        if landed:
            self.killed_at = self.step
        return landed

    def signal(self, sig):
        """Sends sig to every process of the job's session (mpiexec and the ranks)."""
        for pid in session_pids(self.p.pid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout=900.0):
        """Exit code; a job still running after timeout (a hang) is killed and reported
        as such."""
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_job(self.p)
            raise RuntimeError(f"{' '.join(self.argv)} still running after {timeout:.0f} s")
        for t in self._pumps:
            t.join(timeout=10)
        wait_session_gone(self.p.pid)
        return rc

    def stdout(self):
        return "\n".join(self.out)

    def stderr(self):
        return "\n".join(self.err)

    def lines_with(self, prefix):
        return [l for l in self.out + self.err if l.startswith(prefix)]


def kill_in_next_interval(job, every, rng=random, after=None, timeout=600.0):
    """Kills `job` at a point chosen from its progress: waits for a checkpoint committed
    after step `after` (default: the first one this job commits), then for a step drawn
    at random from the interval up to the next checkpoint (the kill may land during that
    checkpoint's write), and SIGKILLs it there. Returns the step at which the kill landed,
    or None if the job ended before (the caller asserts on it)."""
    base = -1 if after is None else after
    s = job.wait_saved_after(base, timeout)
    if s is None:
        return None
    target = s + rng.randint(1, every)
    return job.killed_at if job.kill_at_step(target, timeout) else None
