"""tests/python/nested_sweep.py (phases, a sweep loop with an inner time loop, a state of
objects) killed with SIGKILL at points chosen from its progress, in every phase and at both
loop levels, resumes each time at the position saved with the newest checkpoint and ends
bitwise identical to an uninterrupted run. SIGUSR1 in the inner loop: exit 75, and the
resume goes on at the next inner step of the same sweep. Runs serially (it starts
mpiexec itself)."""

import json
import os
import random
import re
import signal
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PROG = os.path.join(HERE, "nested_sweep.py")
MPIEXEC = os.environ.get("MPIEXEC", "mpiexec")
PYTHON = os.environ.get("PYTHON", "/usr/bin/python3")
S, T, EVERY, NP = 3, 12, 4, 2
TOTAL = 1 + S * (T + 2) + 1

pytestmark = pytest.mark.skipif("OMPI_COMM_WORLD_SIZE" in os.environ,
                                reason="starts mpiexec itself; run it without mpiexec")

sys.path.insert(0, os.path.join(HERE, "..", "..", "apps"))
from mpijob import Job, committed_steps, kill_in_next_interval  # noqa: E402


def clean_env(**extra):
    keep = ("OMPI_MCA_", "OMPI_ALLOW_")
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith(("OMPI_", "PMIX_", "ORTE_")) and not k.startswith(keep))}
    env.pop("NESTED_PAUSE", None)
    env.pop("NESTED_GO", None)
    env["CKPT_QUIET"] = "0"
    env.update(extra)
    return env


def cmd(d):
    return [MPIEXEC, "-n", str(NP), PYTHON, PROG, "--sweeps", str(S), "--steps", str(T),
            "--every", str(EVERY), "--dir", d]


def digest(out):
    m = re.search(r"^result: ([0-9a-f]{32})$", out, re.M)
    assert m, f"no result line in:\n{out}"
    return m.group(1)


def positions():
    """The position saved with the checkpoint of each step: (top-level done, stack). A
    step can have two (the last step of a top-level loop is saved either at that step's
    boundary, inside the loop, or when the loop ends)."""
    out = {1: [(["setup"], [])]}
    k = 1
    for s in range(S):
        init = {"name": "sweep", "i": s, "done": ["init"]}
        k += 1
        out[k] = [(["setup"], [init])]
        for t in range(T):
            k += 1
            if t < T - 1:
                out[k] = [(["setup"], [init, {"name": "t", "i": t + 1, "done": []}])]
            else:
                out[k] = [(["setup"], [{"name": "sweep", "i": s, "done": ["init", "t"]}])]
        k += 1
        out[k] = [(["setup"], [{"name": "sweep", "i": s, "done": ["init", "t", "analysis"]}])]
    out[k].append((["setup", "sweep"], []))
    k += 1
    out[k] = [(["setup", "sweep", "final"], [])]
    assert k == TOTAL
    return out


POSITIONS = positions()


def restored_line(job):
    for line in job.err:
        m = re.match(r"nested: restored (\S+) (.*)$", line)
        if m:
            return (None if m.group(1) == "none" else int(m.group(1))), json.loads(m.group(2))
    return "missing", None


def check_resume(job, before):
    """The run restored the newest checkpoint, at the position saved with its step."""
    step, pos = restored_line(job)
    assert step != "missing", job.stderr()
    assert step == before, (step, before)
    if step is None:
        assert pos is None
        return None
    got = (pos["done"], pos["stack"])
    assert got in POSITIONS[step], (step, got, POSITIONS[step])
    return got


def newest(d):
    steps = committed_steps(d)
    return steps[-1] if steps else None


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    job = Job(cmd(str(d / "ckpt")), env=clean_env())
    assert job.wait(120) == 0, job.stderr()
    assert f"nested: steps={TOTAL} shared_species=True" in job.stdout()
    return digest(job.stdout())


def wait_paused(job, label):
    return job.wait_for(lambda j: f"nested: paused at {label}" in j.err, timeout=120)


def test_kills_in_every_phase_and_both_loop_levels(reference, tmp_path):
    """SIGKILL inside: the setup phase (no checkpoint yet), the init phase of sweep 0, an
    inner step of sweep 0, the analysis phase of sweep 1, the first inner step after the
    outer loop moved to sweep 2, and the final phase. Each kill lands where the run paused
    itself in the middle of that step (after changing its state); each resume starts from
    the newest checkpoint at the position saved with it."""
    seed = int(os.environ.get("CKPT_KILL_SEED", time.time_ns() % 100000))
    print(f"CKPT_KILL_SEED={seed}", file=sys.stderr)
    rnd = random.Random(seed)
    # Inner step 0 of sweep 0 is step 3 and checkpoints come every 4 steps: a kill in the
    # middle of inner step 2 or later comes after the checkpoint of step 4, the first one
    # inside the inner loop (the resume from it is the "inside the inner loop" case below).
    inner = rnd.randrange(2, T - 1)
    labels = ["setup", "init:0", f"t:0:{inner}", "analysis:1", "t:2:0", "final"]
    d = str(tmp_path / "ckpt")
    resumed = []
    for label in labels:
        before = newest(d)
        job = Job(cmd(d), env=clean_env(NESTED_PAUSE=label))
        assert wait_paused(job, label), f"{label}: never paused\n{job.stderr()}"
        assert job.kill(), f"{label}: the kill did not land mid-run"
        resumed.append(check_resume(job, before))
    before = newest(d)
    job = Job(cmd(d), env=clean_env())
    assert job.wait(120) == 0, job.stderr()
    resumed.append(check_resume(job, before))
    print("resumed at:", resumed, file=sys.stderr)
    # The resumes went through both loop levels and a finished sweep loop.
    assert any(r and len(r[1]) == 2 for r in resumed)      # inside the inner loop
    assert any(r and len(r[1]) == 1 for r in resumed)      # between inner loops
    assert digest(job.stdout()) == reference


def test_killed_at_random_steps_resumes_to_same_digest(reference, tmp_path):
    """Kills at random steps of the interval after a checkpoint (from the run's progress
    lines); each resume is at the position of the step it restored."""
    seed = int(os.environ.get("CKPT_KILL_SEED", time.time_ns() % 100000))
    print(f"CKPT_KILL_SEED={seed}", file=sys.stderr)
    rnd = random.Random(seed)
    d = str(tmp_path / "ckpt")
    kills = 0
    for _ in range(3):
        before = newest(d)
        job = Job(cmd(d), env=clean_env())
        at = kill_in_next_interval(job, EVERY, rnd)
        if at is None:
            break   # the run got to its end first
        kills += 1
        check_resume(job, before)
    assert kills >= 1
    before = newest(d)
    job = Job(cmd(d), env=clean_env())
    assert job.wait(120) == 0, job.stderr()
    check_resume(job, before)
    assert digest(job.stdout()) == reference


def test_sigusr1_in_inner_loop_exits_75_and_resumes_at_next_inner_step(reference, tmp_path):
    d = str(tmp_path / "ckpt")
    go = str(tmp_path / "go")
    # CKPT_AGREE_SECONDS=0: the ranks agree at every boundary, so the stop comes at the
    # boundary after the signal, a known inner step of this short loop.
    job = Job(cmd(d), env=clean_env(NESTED_PAUSE="t:1:5", NESTED_GO=go, CKPT_AGREE_SECONDS="0"))
    assert wait_paused(job, "t:1:5"), job.stderr()
    job.signal(signal.SIGUSR1)   # pending in every rank before rank 0 goes on
    open(go, "w").close()
    rc = job.wait(120)
    assert rc == 75, f"{rc}\n{job.stdout()}\n{job.stderr()}"
    assert "result:" not in job.stdout()
    stop = newest(d)
    job = Job(cmd(d), env=clean_env())
    assert job.wait(120) == 0, job.stderr()
    done, stack = check_resume(job, stop)
    # Inside sweep 1's inner loop, at the step after the one the signal came in (the
    # ranks agree on a stop at the boundary after the one where it was seen).
    assert [f["name"] for f in stack] == ["sweep", "t"], stack
    assert stack[0]["i"] == 1 and stack[1]["i"] in (6, 7), stack
    assert digest(job.stdout()) == reference
