"""apps/heat.py killed at random steps after a checkpoint (SIGKILL to the whole job) and
resumed, on changing rank counts, ends with the same digest as an uninterrupted run and
as the C++ solver. Runs serially (it starts mpiexec itself)."""

import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest

HEAT_PY = os.environ.get("CKPT_HEAT_PY") or os.path.join(
    os.path.dirname(__file__), "..", "..", "apps", "heat.py")
HEAT_BIN = os.environ.get("CKPT_HEAT_BIN", "")
MPIEXEC = os.environ.get("MPIEXEC", "mpiexec")
PYTHON = os.environ.get("PYTHON", "/usr/bin/python3")
N, STEPS, EVERY = 48, 3000, 10

pytestmark = pytest.mark.skipif("OMPI_COMM_WORLD_SIZE" in os.environ,
                                reason="starts mpiexec itself; run it without mpiexec")


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "apps"))
from mpijob import Job, committed_steps, kill_in_next_interval  # noqa: E402


def clean_env():
    """The environment without what MPI_Init of this (singleton) process added, so the
    mpiexec started here is a fresh launch."""
    keep = ("OMPI_MCA_", "OMPI_ALLOW_")
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith(("OMPI_", "PMIX_", "ORTE_")) and not k.startswith(keep))}
    env["CKPT_QUIET"] = "0"  # the "restored step" line shows that a run resumed
    return env


def heat_cmd(np_, d, python=True):
    prog = [PYTHON, HEAT_PY] if python else [HEAT_BIN]
    return [MPIEXEC, "-n", str(np_)] + prog + ["--n", str(N), "--steps", str(STEPS),
                                               "--every", str(EVERY), "--dir", d]


def digest(out):
    m = re.search(r"^result: ([0-9a-f]{32})$", out, re.M)
    assert m, f"no result line in:\n{out}"
    return m.group(1)


def run(cmd, timeout=240):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=clean_env())
    assert p.returncode == 0, f"{cmd} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    return digest(run(heat_cmd(2, str(d / "ckpt"))))


def test_python_digest_equals_cpp(reference, tmp_path):
    if not HEAT_BIN or not os.path.exists(HEAT_BIN):
        pytest.skip("C++ heat not built (CKPT_HEAT_BIN)")
    assert digest(run(heat_cmd(2, str(tmp_path / "cpp"), python=False))) == reference
    # The C++ solver's final checkpoint, read by the Python bindings on one rank (its 2 ranks'
    # blocks resharded into one), is the grid of that digest.
    from mpi4py import MPI
    import ckpt as ck
    got = ck.load(MPI.COMM_SELF, str(tmp_path / "cpp"),
                  like={"u": ck.Distributed((N, N), (0, 0), (N, N))})
    assert ck.xxh3_128(got["u"]) == reference
    # And on another rank count, without checkpoints in between.
    assert digest(run(heat_cmd(3, str(tmp_path / "py3")))) == reference


def newest(d):
    steps = committed_steps(d)
    return steps[-1] if steps else None


def test_killed_at_random_steps_resumes_to_same_digest(reference, tmp_path):
    """5 SIGKILLs, each at a random step of the interval after a checkpoint the attempt
    committed (chosen from the run's progress lines), on rank counts 1-3."""
    seed = int(os.environ.get("CKPT_KILL_SEED", time.time_ns() % 100000))
    print(f"CKPT_KILL_SEED={seed}", file=sys.stderr)
    rnd = random.Random(seed)
    d = str(tmp_path / "ckpt")
    kills, resumes = 0, 0
    for attempt in range(5):
        before = newest(d)
        job = Job(heat_cmd(rnd.choice([1, 2, 3]), d), env=clean_env())
        at = kill_in_next_interval(job, EVERY, rnd)
        assert at is not None, f"heat.py ended before its kill:\n{job.stdout()}\n{job.stderr()}"
        kills += 1
        if before is not None:
            assert job.restored == before, (job.restored, before)
            resumes += 1
    last = newest(d)
    job = Job(heat_cmd(rnd.choice([1, 2, 3]), d), env=clean_env())
    assert job.wait(240) == 0, f"heat.py failed:\n{job.stdout()}\n{job.stderr()}"
    assert job.restored == last and f"ckpt: restored step {last}" in job.stderr(), job.stderr()
    resumes += 1
    print(f"kills mid-run {kills} of 5, resumed from a checkpoint {resumes} of 5",
          file=sys.stderr)
    assert kills == 5 and resumes == 5
    assert digest(job.stdout()) == reference


def test_sigusr1_checkpoints_and_exits_75(reference, tmp_path):
    d = str(tmp_path / "ckpt")
    # CKPT_AGREE_SECONDS=0: the ranks agree at every boundary, so the stop comes at the
    # boundary after the signal, not after this short run of cheap steps has ended.
    job = Job(heat_cmd(2, d), env=dict(clean_env(), CKPT_AGREE_SECONDS="0"))
    # The first checkpoint shows that the ranks installed their signal handlers.
    first = job.wait_saved_after(-1)
    assert first is not None, f"heat.py never checkpointed:\n{job.stderr()}"
    assert job.wait_step(first + 1)
    job.signal(signal.SIGUSR1)
    rc = job.wait(120)
    assert rc == 75, f"{rc}\n{job.stdout()}\n{job.stderr()}"
    assert "result:" not in job.stdout()
    stop = newest(d)
    assert first < stop < STEPS, (first, stop)
    job = Job(heat_cmd(2, d), env=clean_env())
    assert job.wait(240) == 0, job.stderr()
    assert job.restored == stop
    assert digest(job.stdout()) == reference


def plain_source():
    """apps/heat.py without ckpt: the lines marked "# ckpt" removed, the loop over range()."""
    lines = []
    for line in open(HEAT_PY).read().splitlines():
        if line.rstrip().endswith("# ckpt"):
            if "cp.steps(" in line:
                lines.append(line.replace("cp.steps(args.steps)", "range(args.steps)")
                             .replace("  # ckpt", ""))
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


def test_four_lines_make_heat_restartable(reference, tmp_path):
    marked = [l for l in open(HEAT_PY).read().splitlines() if l.rstrip().endswith("# ckpt")]
    assert len(marked) == 4, marked
    plain = tmp_path / "heat_plain.py"
    plain.write_text(plain_source())
    text = plain.read_text()
    assert "import ckpt as ck" not in text and not re.search(r"\b(ck|cp)\.", text), text
    out = run([MPIEXEC, "-n", "2", PYTHON, str(plain), "--n", str(N), "--steps", str(STEPS),
               "--every", str(EVERY), "--dir", str(tmp_path / "unused")])
    assert digest(out) == reference
