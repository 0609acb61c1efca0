"""apps/particles.py (a state of dataclass agents and a numpy generator; a sweep loop over
the infection radius with a time loop and an analysis phase inside, a report after them)
SIGKILLed at points chosen from its progress: before its first checkpoint, at a random
step of the inner loop after a checkpoint, in the analysis phase of sweep 1, and in the
first inner step after the outer loop moved to sweep 2. Where each kill
landed is read from the run's own progress (the last step it reported before it died),
not assumed; a target that the run had already passed when the kill landed is tried
again in a new chain. Every run resumes from the newest committed checkpoint at the
position saved with it, and the last one ends bitwise identical to an uninterrupted run.
SIGUSR1 in the inner loop of sweep 1: exit 75, and the resume continues at the next inner
step of the same sweep. Runs serially (it starts mpiexec itself)."""

import json
import os
import random
import re
import signal
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
APP = os.path.join(HERE, "..", "..", "apps", "particles.py")
MPIEXEC = os.environ.get("MPIEXEC", "mpiexec")
PYTHON = os.environ.get("PYTHON", "/usr/bin/python3")
S, T, EVERY, NP = 3, 40, 10, 2
AGENTS = 400   # per rank: a time step takes a few ms, longer than a kill takes to land
TOTAL = S * (T + 1)   # T time steps and one analysis step per sweep

pytestmark = pytest.mark.skipif("OMPI_COMM_WORLD_SIZE" in os.environ,
                                reason="starts mpiexec itself; run it without mpiexec")

sys.path.insert(0, os.path.join(HERE, "..", "..", "apps"))
from mpijob import Job, committed_steps  # noqa: E402


def clean_env(**extra):
    keep = ("OMPI_MCA_", "OMPI_ALLOW_")
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith(("OMPI_", "PMIX_", "ORTE_", "CKPT_")) and not k.startswith(keep))}
    env["CKPT_QUIET"] = "0"
    env.update(extra)
    return env


def cmd(d):
    return [MPIEXEC, "-n", str(NP), PYTHON, APP, "--agents", str(AGENTS), "--sweeps", str(S), "--steps", str(T),
            "--every", str(EVERY), "--dir", d]


def where(k):
    """What step k (1-based) of the run is: ("t", sweep, t) or ("analysis", sweep)."""
    s, w = divmod(k - 1, T + 1)
    return ("t", s, w) if w < T else ("analysis", s)


def positions(k):
    """The positions a checkpoint of step k may hold (cp.restored_position)."""
    kind = where(k)
    s = kind[1]
    if kind[0] == "t" and kind[2] < T - 1:
        out = [{"done": [], "stack": [{"name": "sweep", "i": s, "done": []},
                                      {"name": "t", "i": kind[2] + 1, "done": []}]}]
    elif kind[0] == "t":
        out = [{"done": [], "stack": [{"name": "sweep", "i": s, "done": ["t"]}]}]
    else:
        out = [{"done": [], "stack": [{"name": "sweep", "i": s, "done": ["t", "analysis"]}]}]
    if k == TOTAL:
        out.append({"done": ["sweep"], "stack": []})   # the end of the sweep loop is saved too
    return out


def restored(job):
    for line in job.err:
        m = re.match(r"particles: restored (\d+) (.*)$", line)
        if m:
            return int(m.group(1)), json.loads(m.group(2))
    return None, None


def newest(d):
    steps = committed_steps(d)
    return steps[-1] if steps else None


def check_resume(job, before):
    """The run restored the newest committed checkpoint, at the position saved with it."""
    step, pos = restored(job)
    assert step == before, (step, before, job.stderr())
    if step is not None:
        assert pos in positions(step), (step, pos, positions(step))
    return step, pos


def digest(job):
    m = re.search(r"^result: ([0-9a-f]{32})$", job.stdout(), re.M)
    assert m, job.stdout() + job.stderr()
    return m.group(1)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    job = Job(cmd(str(tmp_path_factory.mktemp("ref") / "ckpt")), env=clean_env())
    assert job.wait(300) == 0, job.stderr()
    assert len(re.findall(r"^particles: sweep \d", job.stdout(), re.M)) == S
    return digest(job)


def test_kills_in_every_phase_and_both_loop_levels(reference, tmp_path):
    seed = int(os.environ.get("CKPT_KILL_SEED", time.time_ns() % 100000))
    print(f"CKPT_KILL_SEED={seed}", file=sys.stderr)
    rnd = random.Random(seed)
    analysis_s1 = 2 * (T + 1)                    # the step of sweep 1's analysis
    first_inner_s2 = 2 * (T + 1) + 1             # sweep 2, t = 0: the first after the increment
    # (name, the step to kill in, which steps count as a hit)
    targets = [("before the first checkpoint", 2, lambda at: at <= EVERY),
               ("inner loop of sweep 0 after a checkpoint", EVERY + rnd.randint(1, EVERY - 1),
                lambda at: at > EVERY and where(at)[:2] == ("t", 0)),
               ("analysis phase of sweep 1", analysis_s1, lambda at: at == analysis_s1),
               ("first inner step of sweep 2", first_inner_s2, lambda at: at == first_inner_s2)]
    hit, landings = set(), []
    for chain in range(4):
        d = str(tmp_path / f"chain{chain}")
        for name, k, counts in targets:
            before = newest(d)
            if name in hit or (before is not None and before >= k - 1):
                continue                          # done, or this chain is past the target
            job = Job(cmd(d), env=clean_env())
            # SIGKILL as soon as the run reports the boundary before step k; the step it
            # died in is the one after the last step it reported (the kill may also land
            # while that boundary's checkpoint is written).
            assert job.kill_at_step(k - 1, timeout=300), f"{name}: the kill did not land mid-run"
            at = job.killed_at + 1
            landings.append((chain, name, at, where(at)))
            print(f"chain {chain}: kill aimed at {name!r} landed in step {at} {where(at)}", file=sys.stderr)
            if counts(at):
                hit.add(name)
            check_resume(job, before)
        before = newest(d)
        job = Job(cmd(d), env=clean_env())
        assert job.wait(300) == 0, job.stderr()
        step, pos = check_resume(job, before)
        print(f"chain {chain}: the last run resumed from step {step} at {pos}", file=sys.stderr)
        assert digest(job) == reference
        if len(hit) == len(targets):
            break
    print("landings:", landings, file=sys.stderr)
    assert hit == {name for name, _, _ in targets}, landings
    # Kills at both loop levels: inside the time loop, and between time loops.
    assert any(w[0] == "t" for _, _, _, w in landings) and any(w[0] == "analysis" for _, _, _, w in landings)


def plain_source():
    """apps/particles.py without ckpt: the marked lines removed or undone."""
    out = []
    for line in open(APP).read().splitlines():
        if line.rstrip().endswith("# ckpt (optional)"):
            continue
        if not line.rstrip().endswith("# ckpt"):
            out.append(line)
            continue
        code = line[:line.rindex("# ckpt")].rstrip().replace("  # noqa: E701", "")
        if "cp.restore(" in code:
            out.append(code.replace("cp.restore(setup(comm, args.agents))", "setup(comm, args.agents)"))
        elif "cp.loop(" in code:
            out.append(re.sub(r'cp\.loop\("\w+", ([^)]+)\)', r"range(\1)", code))
        elif "cp.phase(" in code:
            out.append(re.sub(r'for _ in cp\.phase\("\w+"\): ', "", code))
        # the import and the Checkpointer go
    return "\n".join(out) + "\n"


def test_six_lines_make_particles_restartable(reference, tmp_path):
    marked = [l for l in open(APP).read().splitlines() if l.rstrip().endswith("# ckpt")]
    assert len(marked) == 6, marked
    plain = tmp_path / "particles_plain.py"
    plain.write_text(plain_source())
    text = plain.read_text()
    assert "import ckpt" not in text and not re.search(r"\b(ck|cp)\.", text), text
    job = Job([MPIEXEC, "-n", str(NP), PYTHON, str(plain), "--agents", str(AGENTS), "--sweeps", str(S),
               "--steps", str(T), "--every", str(EVERY), "--dir", str(tmp_path / "unused")], env=clean_env())
    assert job.wait(300) == 0, job.stderr()
    assert digest(job) == reference


def test_sigusr1_in_inner_loop_exits_75_and_resumes_at_next_inner_step(reference, tmp_path):
    d = str(tmp_path / "ckpt")
    # CKPT_AGREE_SECONDS=0: the ranks agree at every boundary, so the stop comes within this
    # short time loop.
    job = Job(cmd(d), env=clean_env(CKPT_AGREE_SECONDS="0"))
    k = (T + 1) + 5                               # early in sweep 1's time loop
    assert job.wait_step(k, timeout=300), job.stderr()
    job.signal(signal.SIGUSR1)
    rc = job.wait(300)
    assert rc == 75, f"{rc}\n{job.stdout()}\n{job.stderr()}"
    assert "result:" not in job.stdout()
    stop = newest(d)
    assert where(stop)[:2] == ("t", 1), stop      # stopped inside sweep 1's time loop
    job = Job(cmd(d), env=clean_env())
    assert job.wait(300) == 0, job.stderr()
    step, pos = check_resume(job, stop)
    assert pos["stack"][0] == {"name": "sweep", "i": 1, "done": []}, pos
    assert pos["stack"][1]["name"] == "t" and pos["stack"][1]["i"] == where(stop)[2] + 1, pos
    assert digest(job) == reference
