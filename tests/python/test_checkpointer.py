"""ck.Checkpointer: restore(default_state), steps(total), policy and early stop."""

import os
import signal

import numpy as np
import pytest

import ckpt as ck


# These tests stop at known positions of short loops: the ranks agree at every step
# boundary (conftest.py's agree_every_step).
pytestmark = pytest.mark.usefixtures("agree_every_step")


def run(comm, d, total, every=3, stop_at=None, signal_at=None, **kw):
    """A small solver: x[i] = 0.5 * x[i] + step, distributed over ranks."""
    n = comm.size
    cp = ck.Checkpointer(comm, d, every=every, keep=0, **kw)
    st = cp.restore({"x": ck.Distributed(np.zeros(4), (4 * comm.rank,), (4 * n,)), "t": 0.0,
                     "log": []})
    x = st["x"].local
    for step in cp.steps(total):
        x[:] = 0.5 * x + step + comm.rank
        st["t"] += 0.1
        st["log"].append(step)
        if stop_at is not None and step == stop_at and comm.rank == 0:
            cp.request_stop()                 # on one rank only: the stop is agreed
        if signal_at is not None and step == signal_at and comm.rank == comm.size - 1:
            os.kill(os.getpid(), signal.SIGUSR1)
    cp.close()
    return cp, st


def steps_on_disk(d):
    return sorted(s for s, _ in ck.list_checkpoints(d))


def test_loop_saves_every_n_and_at_the_end(comm, shared_dir):
    cp, st = run(comm, shared_dir, 10, every=3)
    assert cp.stopped == "finished" and not cp.stopped and cp.exit_code == 0
    assert steps_on_disk(shared_dir) == [3, 6, 9, 10]
    assert st["log"] == list(range(10))
    # A new run restores the final state and has nothing left to do.
    cp2, st2 = run(comm, shared_dir, 10)
    assert cp2.restored_step == 10 and st2["log"] == list(range(10))
    assert np.array_equal(st2["x"].local, st["x"].local)


def test_request_stop_checkpoints_and_resumes_bitwise(comm, shared_dir):
    cp, st = run(comm, shared_dir, 40, every=0, stop_at=5)
    assert cp.stopped == "requested" and cp.stopped and cp.exit_code == ck.EXIT_MORE_WORK
    stopped_after = cp.step
    assert 6 <= stopped_after < 40
    assert steps_on_disk(shared_dir) == [stopped_after]
    cp2, st2 = run(comm, shared_dir, 40, every=0)
    assert cp2.restored_step == stopped_after and cp2.stopped == "finished"
    _, ref = run(comm, os.path.join(shared_dir, "ref"), 40, every=0)
    assert st2["log"] == list(range(40)) == ref["log"]
    assert st2["x"].local.tobytes() == ref["x"].local.tobytes()
    assert st2["t"] == ref["t"]


def test_signal_stops_the_loop(comm, shared_dir):
    cp, st = run(comm, shared_dir, 60, every=0, signal_at=3)
    assert cp.stopped == "signal" and cp.exit_code == 75
    assert steps_on_disk(shared_dir) == [cp.step]


def test_exit_on_stop(comm, shared_dir):
    with pytest.raises(SystemExit) as e:
        run(comm, shared_dir, 60, every=0, stop_at=2, exit_on_stop=True)
    assert e.value.code == ck.EXIT_MORE_WORK
    assert len(steps_on_disk(shared_dir)) == 1


def test_environment_wins(comm, shared_dir, monkeypatch):
    monkeypatch.setenv("CKPT_EVERY", "4")
    cp, _ = run(comm, shared_dir, 9, every=2)
    assert steps_on_disk(shared_dir) == [4, 8, 9]


def test_steps_before_restore_is_an_error(comm, shared_dir):
    cp = ck.Checkpointer(comm, shared_dir)
    with pytest.raises(ck.CheckpointError):
        next(iter(cp.steps(3)))
    cp.close()


def test_async_mode(comm, shared_dir):
    cp, st = run(comm, shared_dir, 10, every=3, mode="async")
    # Every checkpoint is committed, the last one before the loop returned.
    assert steps_on_disk(shared_dir) == [3, 6, 9, 10]
    got = ck.load(comm, shared_dir, like={"x": ck.Distributed((4,), (4 * comm.rank,), (4 * comm.size,))})
    assert got["x"].tobytes() == st["x"].local.tobytes()
    cp2, st2 = run(comm, os.path.join(shared_dir, "stop"), 30, every=0, stop_at=2, mode="async")
    assert cp2.stopped == "requested"
    assert steps_on_disk(os.path.join(shared_dir, "stop")) == [cp2.step]


def test_one_core_session_for_the_whole_run(comm, shared_dir):
    """A Checkpointer keeps one core session: stats() counts every save, and in async mode
    the save of step k is still uncommitted (its write in flight or done, not yet agreed)
    while step k + 1 runs: the write overlaps the solver instead of being waited for."""
    cp = ck.Checkpointer(comm, shared_dir, every=2, keep=0, mode="async")
    core = cp._core
    st = cp.restore({"x": ck.Distributed(np.zeros(1 << 16), ((1 << 16) * comm.rank,),
                                         ((1 << 16) * comm.size,)), "n": 0})
    in_flight = []
    for step in cp.steps(9):
        st["x"].local[:] += step
        st["n"] += 1
        assert cp._core is core                     # never replaced
        if step >= 1 and step % 2 == 0:               # the step after save k = step
            in_flight.append(core.pending_step)
    stats = cp.stats()
    cp.close()
    assert in_flight == [2, 4, 6, 8]
    assert stats["saves"] == 5 and stats["last_step"] == 9    # 2, 4, 6, 8 and the final 9
    assert steps_on_disk(shared_dir) == [2, 4, 6, 8, 9]
    cp2 = ck.Checkpointer(comm, shared_dir, every=2, keep=0)
    st2 = cp2.restore({"x": ck.Distributed((1 << 16,), ((1 << 16) * comm.rank,),
                                           ((1 << 16) * comm.size,)), "n": 0})
    assert st2["n"] == 9 and cp2.restored_step == 9
    # Fields may change between saves: a new key and a resized array.
    st2["extra"] = np.full(3, 7, dtype=np.int32)
    st2["x"] = ck.Distributed(np.ones(8), (8 * comm.rank,), (8 * comm.size,))
    cp2.save(10)
    cp2.save(11)
    stats = cp2.stats()
    cp2.close()
    assert stats["saves"] == 2 and stats["last_step"] == 11
    got = ck.load(comm, shared_dir)
    assert got["n"] == 9 and list(got["extra"]) == [7] * 3
    assert got["x"].shape == (8,) and (got["x"] == 1).all()   # this rank's block, resized


def test_a_large_description_is_one_restore(comm, shared_dir, capfd, monkeypatch):
    """A state whose description is too large for an attribute (it is then stored as a
    field of its own and read first) restores as one restore: one progress line."""
    monkeypatch.setenv("CKPT_PROGRESS", "1")
    state = {f"k{i:05d}": i for i in range(5000)}   # a description of about 150 KB
    ck.save(comm, state, shared_dir, step=3)
    info = ck._ckpt.inspect(os.path.join(shared_dir, ck._ckpt.checkpoint_file_name(3)))
    assert "_py.tree" in [f["name"] for f in info["fields"]]   # stored as a field
    cp = ck.Checkpointer(comm, shared_dir)
    capfd.readouterr()
    got = cp.restore({k: -1 for k in state})   # the same keys: all are loaded
    err = capfd.readouterr().err
    cp.close()
    assert cp.restored_step == 3 and got == state
    if comm.rank == 0:
        assert err.count("ckpt: progress restored") == 1, err
        assert "ckpt: progress restored 3" in err, err


def test_stop_with_cheap_steps(comm, shared_dir, monkeypatch):
    """The default agreement period: with steps this cheap the ranks agree only every few
    hundred boundaries; request_stop() on one rank still stops every rank at the same step,
    within two agreement periods, with its checkpoint."""
    monkeypatch.delenv("CKPT_AGREE_SECONDS", raising=False)
    cp = ck.Checkpointer(comm, shared_dir, every=0, keep=0)
    st = cp.restore({"n": 0})
    for step in cp.steps(100000):
        st["n"] += 1
        if step == 10 and comm.rank == comm.size - 1:
            cp.request_stop()
    cp.close()
    assert cp.stopped == "requested"
    assert 10 < cp.step <= 10 + 2 * 1000 + 1
    assert comm.allgather(cp.step) == [cp.step] * comm.size
    assert steps_on_disk(shared_dir) == [cp.step] and st["n"] == cp.step
