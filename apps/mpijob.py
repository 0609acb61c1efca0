"""Helpers for killing whole MPI jobs (mpiexec and its ranks), shared by the demo and the
kill/resume tests."""
import os
import time


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
