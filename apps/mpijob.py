"""Helpers for killing whole MPI jobs (mpiexec and its ranks), shared by the demo and the
kill/resume tests."""
import os
import signal
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
