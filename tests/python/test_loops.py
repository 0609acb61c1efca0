"""Checkpointer.loop / phase: nested loops and phases whose position is saved with the
state; a restart skips what was done and re-enters the loops at the saved indices."""

import os

import numpy as np
import pytest

import ckpt as ck


# These tests stop at known positions of short loops: the ranks agree at every step
# boundary (conftest.py's agree_every_step).
pytestmark = pytest.mark.usefixtures("agree_every_step")


def program(comm, d, stop_when=None, every=3, sweeps=3, steps=4, ran=None, **kw):
    """setup -> sweep x (init, t x steps, analysis) -> final. `stop_when(cp, label)` may
    request a stop; `ran` collects the labels of the bodies that ran (not saved)."""
    ran = [] if ran is None else ran
    cp = ck.Checkpointer(comm, d, every=every, keep=0, **kw)
    st = cp.restore({"log": [], "x": ck.Distributed(np.zeros(2), (2 * comm.rank,),
                                                     (2 * comm.size,))})
    x = st["x"].local

    def body(label):
        ran.append(label)
        st["log"].append(label)
        x[:] = 0.5 * x + len(st["log"]) + comm.rank
        if stop_when is not None and stop_when(cp, label) and comm.rank == comm.size - 1:
            cp.request_stop()   # on one rank: the stop is agreed

    try:
        for _ in cp.phase("setup"):
            body("setup")
        for s in cp.loop("sweep", sweeps):
            for _ in cp.phase("init"):
                body(f"init{s}")
            for t in cp.loop("t", steps):
                body(f"{s}.{t}")
            for _ in cp.phase("analysis"):
                body(f"an{s}")
        for _ in cp.phase("final"):
            body("final")
    except ck.Stopped as e:
        cp.close()
        return cp, st, e
    cp.close()
    return cp, st, None


def reference(comm, d):
    _, st, _ = program(comm, os.path.join(d, "ref"))
    return st


def steps_on_disk(d):
    return sorted(s for s, _ in ck.list_checkpoints(d))


def test_uninterrupted_run_and_policy_counts_innermost_steps(comm, shared_dir):
    cp, st, stopped = program(comm, shared_dir, every=3)
    assert stopped is None and cp.stopped == "finished" and cp.exit_code == 0
    # setup 1 step; each sweep: init + 4 inner steps + analysis; final 1: 1 + 3*6 + 1 = 20
    assert cp.step == 20
    # every 3 steps, plus the end of each top-level loop or phase (1, 19, 20)
    assert steps_on_disk(shared_dir) == [1, 3, 6, 9, 12, 15, 18, 19, 20]
    assert st["log"][:7] == ["setup", "init0", "0.0", "0.1", "0.2", "0.3", "an0"]
    # A rerun has nothing left to do.
    ran = []
    cp2, st2, _ = program(comm, shared_dir, ran=ran)
    assert ran == [] and cp2.restored_step == 20 and st2["log"] == st["log"]
    assert cp2.restored_position == {"done": ["setup", "sweep", "final"], "stack": []}


def test_stop_in_inner_loop_resumes_at_next_inner_step(comm, shared_dir):
    ref = reference(comm, shared_dir)
    d = os.path.join(shared_dir, "run")
    cp, st, stopped = program(comm, d, every=0, stop_when=lambda cp, l: l == "1.1")
    assert isinstance(stopped, ck.Stopped) and stopped.reason == "requested"
    assert cp.stopped == "requested" and cp.exit_code == ck.EXIT_MORE_WORK
    # Stopped inside sweep 1's inner loop (the ranks agree one boundary later).
    assert [n for n, _ in cp.position] == ["sweep", "t"] and cp.position[0] == ("sweep", 1)
    stop_step = cp.step
    assert steps_on_disk(d) == [1, stop_step]
    ran = []
    cp2, st2, stopped2 = program(comm, d, every=0, ran=ran)
    assert stopped2 is None and cp2.restored_step == stop_step
    pos = cp2.restored_position
    assert pos["done"] == ["setup"]
    assert pos["stack"][0] == {"name": "sweep", "i": 1, "done": ["init"]}
    t_next = pos["stack"][1]["i"]
    assert pos["stack"][1]["name"] == "t" and t_next in (2, 3)
    assert ran[0] == f"1.{t_next}"          # the next inner step of the same sweep
    assert st2["log"] == ref["log"]
    assert st2["x"].local.tobytes() == ref["x"].local.tobytes()


def test_stop_in_a_phase_and_in_the_outer_loop(comm, shared_dir):
    ref = reference(comm, shared_dir)
    for label in ("setup", "init0", "an1", "2.3", "final"):
        d = os.path.join(shared_dir, label)
        cp, st, stopped = program(comm, d, every=0, stop_when=lambda cp, l, x=label: l == x)
        while stopped is not None:
            cp, st, stopped = program(comm, d, every=0)
        assert st["log"] == ref["log"], label
        assert st["x"].local.tobytes() == ref["x"].local.tobytes(), label


def test_exit_on_stop_exits_75(comm, shared_dir):
    with pytest.raises(SystemExit) as e:
        program(comm, shared_dir, every=0, stop_when=lambda cp, l: l == "0.0", exit_on_stop=True)
    assert e.value.code == ck.EXIT_MORE_WORK


def test_phase_done_is_skipped_and_break_ends_a_loop(comm, shared_dir):
    def run(stop):
        ran = []
        cp = ck.Checkpointer(comm, shared_dir, every=0, keep=0)
        st = cp.restore({"n": 0})
        try:
            for _ in cp.phase("expensive"):
                ran.append("expensive")
                st["n"] += 100
            for i in cp.loop("converge", 1000):
                ran.append(i)
                st["n"] += 1
                if i == 4:
                    break
            for j in cp.loop("tail", 5):
                ran.append(f"tail{j}")
                if stop and j == 1 and comm.rank == 0:
                    cp.request_stop()
        except ck.Stopped:
            pass
        cp.close()
        return ran, st
    ran, st = run(True)
    assert ran[:6] == ["expensive", 0, 1, 2, 3, 4] and st["n"] == 105
    ran2, st2 = run(False)
    assert "expensive" not in ran2 and not any(isinstance(r, int) for r in ran2)
    assert ran2[0] in ("tail2", "tail3") and ran2[-1] == "tail4" and st2["n"] == 105


def test_names_must_differ_and_structure_must_match(comm, shared_dir):
    cp = ck.Checkpointer(comm, shared_dir, every=0)
    cp.restore({})
    with pytest.raises(ck.CheckpointError) as e:
        for _ in range(2):          # a plain range around cp.loop: the name comes back
            for _ in cp.loop("inner", 2):
                pass
    assert "'inner' is entered twice" in str(e.value)
    cp.close()
    d = os.path.join(shared_dir, "m")
    cp = ck.Checkpointer(comm, d, every=0)
    cp.restore({})
    try:
        for a in cp.loop("a", 5):
            if a == 2 and comm.rank == 0:
                cp.request_stop()
    except ck.Stopped:
        pass
    cp.close()
    cp = ck.Checkpointer(comm, d, every=0)
    cp.restore({})
    with pytest.raises(ck.CheckpointError) as e:
        for _ in cp.loop("b", 5):   # the program changed: the checkpoint was inside "a"
            pass
    assert e.value.code == "mismatch" and "'a'" in str(e.value)
    cp.close()


def test_loop_before_restore_is_an_error(comm, shared_dir):
    cp = ck.Checkpointer(comm, shared_dir)
    with pytest.raises(ck.CheckpointError):
        next(iter(cp.loop("x", 3)))
    cp.close()
