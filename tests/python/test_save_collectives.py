"""The collectives of a small save from Python, counted: a second `ck.save` on the same
communicator and directory (its core session kept from the first call) and a
`ck.Checkpointer` save make the core's own save plus ONE all-reduce (the Python layer's
agreement on the encoded state), at 1 and 2 ranks; a first call the core's first save
(which gathers the block tables) plus the opening of its session. The core's numbers are counted in the
same run (a core session and a save of the same fields), so the test follows the core.

Runs save_collectives.py under mpiexec with libckpt_count_calls.so (apps/bench/
count_calls.c: MPI collectives through PMPI) preloaded; CKPT_COUNT_LIB names it."""

import json
import os
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.environ.get("CKPT_COUNT_LIB", "")
MPIEXEC = os.environ.get("MPIEXEC", "mpiexec")
PYTHON = os.environ.get("PYTHON", "/usr/bin/python3")

pytestmark = [
    pytest.mark.skipif("OMPI_COMM_WORLD_SIZE" in os.environ,
                       reason="starts mpiexec itself; run it without mpiexec"),
    pytest.mark.skipif(not os.path.exists(LIB), reason="CKPT_COUNT_LIB (libckpt_count_calls.so) "
                       "not built"),
]


def clean_env():
    keep = ("OMPI_MCA_", "OMPI_ALLOW_")
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith(("OMPI_", "PMIX_", "ORTE_")) and not k.startswith(keep))}
    env["CKPT_QUIET"] = "1"
    return env


@pytest.mark.parametrize("ranks", [1, 2])
def test_second_save_adds_one_allreduce_to_the_core(ranks, tmp_path):
    cmd = [MPIEXEC, "-n", str(ranks), "-x", "LD_PRELOAD=" + LIB, "-x", "PYTHONPATH", PYTHON,
           os.path.join(HERE, "save_collectives.py"), str(tmp_path)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=clean_env())
    assert p.returncode == 0, p.stdout + p.stderr
    r = json.loads(p.stdout.strip().splitlines()[-1])
    core_save, core_first, core_open = r["core_save"], r["core_first_save"], r["core_open"]
    assert core_save > 0 and core_open > 0 and core_first > core_save, r
    # The session is kept: later calls are the core's save + the agreement.
    assert r["ck_save"] == [core_save + 1, core_save + 1], r
    assert r["ck_save_step"] == core_save + 1, r
    assert r["checkpointer_save"] == core_save + 1, r
    # The first call, another directory, and the call after ck.load closed the session
    # (its lock) also open one, whose first save gathers the block tables.
    for k in ("ck_save_first", "ck_save_other_dir", "ck_save_after_load"):
        assert r[k] == core_open + core_first + 1, (k, r)
    # Plain values that differ between ranks: one more all-reduce, of per-value hashes, and
    # a field more for the core, which finds its tables changed (its all-reduce) and
    # gathers them again. On 1 rank nothing differs.
    if ranks == 1:
        assert r["ck_save_per_rank"] == core_save + 1, r
    else:
        assert r["ck_save_per_rank"] == 1 + core_first + 2, r
    assert r["loaded_step"] == 1 and r["files"] == [5, 4], r
