"""`pip install .` as a new user does it: a copy of the source tree installed into a fresh
venv that sees Debian's mpi4py and numpy (`/usr/bin/python3 -m venv --system-site-packages`),
with no PYTHONPATH; then a 2-rank save/load and a kill/resume of apps/heat.py with the venv's
python, and `pip install -e` of the same tree. Runs serially (it starts mpiexec itself)."""

import os
import random
import re
import shutil
import subprocess
import sys
import time

import pytest

SRC = os.environ.get("CKPT_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
MPIEXEC = os.environ.get("MPIEXEC", "mpiexec")
N, STEPS, EVERY = 48, 3000, 10

pytestmark = [pytest.mark.skipif("OMPI_COMM_WORLD_SIZE" in os.environ,
                                 reason="starts mpiexec itself; run it without mpiexec"),
              # `pip install -e` compiles libckpt and the extension again: minutes on a
              # loaded 2-core machine (the conftest's 90-s hang watchdog ended the test there)
              pytest.mark.watchdog(600)]

sys.path.insert(0, os.path.join(SRC, "apps"))
from mpijob import Job, committed_steps, kill_in_next_interval  # noqa: E402


def user_env():
    """The environment of a user's shell: no PYTHONPATH (the venv alone must find ckpt), no
    MPI launch variables of an enclosing job."""
    keep = ("OMPI_MCA_", "OMPI_ALLOW_")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
           and not (k.startswith(("OMPI_", "PMIX_", "ORTE_")) and not k.startswith(keep))}
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", "2")
    env["CKPT_QUIET"] = "0"
    return env


def run(cmd, cwd=None, timeout=600):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=user_env(),
                       cwd=cwd)
    assert p.returncode == 0, f"{cmd} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout


def copy_source(dest):
    """The source tree without build folders, git metadata or build outputs, as a fresh
    clone would have it."""
    def ignore(folder, names):
        top = os.path.abspath(folder) == SRC
        return [n for n in names
                if (top and (n.startswith("build") or n == ".git"))
                or n == "__pycache__" or n.endswith((".so", ".pyc", ".egg-info"))]
    shutil.copytree(SRC, dest, ignore=ignore)


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """(python of a fresh venv with ckpt pip-installed, the source copy it was built from)."""
    base = tmp_path_factory.mktemp("pip")
    src, env_dir = str(base / "src"), str(base / "venv")
    copy_source(src)
    run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", env_dir])
    py = os.path.join(env_dir, "bin", "python")
    run([py, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--no-cache-dir",
         "."], cwd=src)
    return py, src


def test_installed_into_the_venv(venv):
    py, _ = venv
    where = run([py, "-c", "import ckpt, ckpt._ckpt; print(ckpt.__file__); "
                           "print(ckpt._ckpt.__file__)"], cwd="/").split()
    prefix = os.path.dirname(os.path.dirname(py))
    assert all(w.startswith(prefix + os.sep) for w in where), where
    # One self-contained module: libckpt is linked in, not looked up at run time.
    ldd = run(["ldd", where[1]])
    assert "libckpt" not in ldd and "not found" not in ldd, ldd


SAVE_LOAD = """
import numpy as np, sys
from mpi4py import MPI
import ckpt as ck
comm = MPI.COMM_WORLD
r, n = comm.rank, comm.size
u = np.arange(4.0) + 4 * r
ck.save(comm, {"step": 7, "u": ck.Distributed(u, (4 * r,), (4 * n,))}, sys.argv[1])
got = ck.load(comm, sys.argv[1])
assert got["step"] == 7 and np.array_equal(got["u"], u), got
comm.Barrier()
if r == 0:  # the whole array on one rank (a directory is used by one job at a time)
    whole = ck.load(MPI.COMM_SELF, sys.argv[1],
                    like={"u": ck.Distributed((4 * n,), (0,), (4 * n,))})
    assert np.array_equal(whole["u"], np.arange(4.0 * n)), whole
comm.Barrier()
print(f"rank {r}: ok")
"""


def test_two_rank_save_load(venv, tmp_path):
    py, _ = venv
    script = tmp_path / "save_load.py"
    script.write_text(SAVE_LOAD)
    out = run([MPIEXEC, "-n", "2", py, str(script), str(tmp_path / "ck")], cwd=str(tmp_path))
    assert sorted(re.findall(r"rank \d: ok", out)) == ["rank 0: ok", "rank 1: ok"], out


def heat_cmd(py, src, d):
    return [MPIEXEC, "-n", "2", py, os.path.join(src, "apps", "heat.py"), "--n", str(N),
            "--steps", str(STEPS), "--every", str(EVERY), "--dir", d]


def digest(out):
    m = re.search(r"^result: ([0-9a-f]{32})$", out, re.M)
    assert m, f"no result line in:\n{out}"
    return m.group(1)


def test_heat_killed_and_resumed(venv, tmp_path):
    """heat.py with the venv's python, SIGKILLed at a step drawn from the interval after its
    first committed checkpoint, resumes from the newest checkpoint to the digest of an
    uninterrupted run."""
    py, src = venv
    reference = digest(run(heat_cmd(py, src, str(tmp_path / "ref")), cwd=str(tmp_path)))
    seed = int(os.environ.get("CKPT_KILL_SEED", time.time_ns() % 100000))
    print(f"CKPT_KILL_SEED={seed}", file=sys.stderr)
    d = str(tmp_path / "ckpt")
    job = Job(heat_cmd(py, src, d), env=user_env(), cwd=str(tmp_path))
    at = kill_in_next_interval(job, EVERY, random.Random(seed))
    assert at is not None, f"heat.py ended before its kill:\n{job.stdout()}\n{job.stderr()}"
    # `at` is the last step the test had read when the kill went out; the ranks' output
    # reaches it through mpiexec, so they may have gone on, and committed, a few steps past.
    # What must hold: the run was killed before its end, and the resume takes the newest.
    newest = committed_steps(d)[-1]
    assert at < STEPS and newest < STEPS, (newest, at)
    job = Job(heat_cmd(py, src, d), env=user_env(), cwd=str(tmp_path))
    assert job.wait(300) == 0, f"heat.py failed:\n{job.stdout()}\n{job.stderr()}"
    assert job.restored == newest, (job.restored, newest)
    assert digest(job.stdout()) == reference


def test_editable_install(venv, tmp_path):
    """`pip install -e` of the same tree: ckpt is then imported from the source folder, so
    an edit of a .py file shows without reinstalling."""
    py, src = venv
    run([py, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--no-cache-dir",
         "-e", "."], cwd=src)
    where = run([py, "-c", "import ckpt, ckpt._ckpt; print(ckpt.__file__); "
                           "print(ckpt._ckpt.__file__)"], cwd="/").split()
    pkg = os.path.join(src, "python", "ckpt")
    assert all(os.path.dirname(w) == pkg for w in where), where
    with open(os.path.join(pkg, "__init__.py"), "a") as f:
        f.write("\nEDITABLE_MARK = 1\n")
    run([py, "-c", "import ckpt; assert ckpt.EDITABLE_MARK == 1"], cwd="/")
    script = tmp_path / "save_load.py"
    script.write_text(SAVE_LOAD)
    out = run([MPIEXEC, "-n", "2", py, str(script), str(tmp_path / "ck")], cwd=str(tmp_path))
    assert out.count(": ok") == 2, out
