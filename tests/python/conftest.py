"""Shared fixtures: a scratch directory that every rank sees, and rank helpers.

Every test body runs on all ranks of MPI.COMM_WORLD (1, 2 or 4 under ctest) and makes the
same collective calls in the same order, so a failure is a failure on every rank."""

import os
import shutil
import tempfile

import pytest
from mpi4py import MPI


@pytest.fixture
def comm():
    return MPI.COMM_WORLD


@pytest.fixture
def shared_dir():
    """A fresh directory, the same path on every rank, removed after the test."""
    world = MPI.COMM_WORLD
    base = os.environ.get("CKPT_TEST_TMP") or tempfile.gettempdir()
    d = tempfile.mkdtemp(prefix="ckpt-py-", dir=base) if world.rank == 0 else None
    d = world.bcast(d, root=0)
    yield d
    world.Barrier()
    if world.rank == 0:
        shutil.rmtree(d, ignore_errors=True)


def sub_comm(size):
    """A communicator of the first `size` ranks of COMM_WORLD (MPI.COMM_NULL on the others).
    Collective over COMM_WORLD."""
    world = MPI.COMM_WORLD
    color = 0 if world.rank < size else MPI.UNDEFINED
    return world.Split(color, world.rank)


def pytest_configure(config):
    config.addinivalue_line("markers", "watchdog(seconds): a longer limit for the hang watchdog "
                            "of a test that compiles (default 90 s, CKPT_TEST_WATCHDOG)")


_watchdog_out = None


def _watchdog_file(config):
    """The test process's real stderr, which pytest's capture of fd 2 hides during a test
    (the watchdog's stacks are lost there when it ends the process)."""
    global _watchdog_out
    if _watchdog_out is None:
        fd = 2
        capman = config.pluginmanager.getplugin("capturemanager")
        saved = getattr(getattr(getattr(capman, "_global_capturing", None), "err", None), "targetfd_save", None)
        if isinstance(saved, int):
            fd = saved
        _watchdog_out = os.fdopen(os.dup(fd), "w")
    return _watchdog_out


@pytest.fixture(autouse=True)
def watchdog(request):
    """A test that hangs (a rank stuck in a collective) dumps every rank's Python stack and
    exits after 90 s instead of waiting for the ctest timeout. The stacks go to the real
    stderr, so ctest's output shows them. A test that compiles asks for more with
    @pytest.mark.watchdog(seconds); the limit is a guard against hangs, not a timing."""
    import faulthandler
    seconds = float(os.environ.get("CKPT_TEST_WATCHDOG", 90))
    mark = request.node.get_closest_marker("watchdog")
    if mark is not None:
        seconds = max(seconds, float(mark.args[0]))
    out = _watchdog_file(request.config)
    faulthandler.dump_traceback_later(seconds, exit=True, file=out)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def agree_every_step(monkeypatch):
    """For tests that stop at known positions of short loops: the ranks agree at every step
    boundary (CKPT_AGREE_SECONDS=0), so a stop requested after a step comes at the next
    one. test_checkpointer.py's test_stop_with_cheap_steps and tests/bench/agreements.py
    run with the default, where the agreements are up to 1000 boundaries apart."""
    monkeypatch.setenv("CKPT_AGREE_SECONDS", "0")
