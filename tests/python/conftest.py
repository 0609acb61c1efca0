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


@pytest.fixture(autouse=True)
def watchdog():
    """A test that hangs (a rank stuck in a collective) dumps every rank's Python stack and
    exits after 90 s instead of waiting for the ctest timeout (pytest's own faulthandler,
    -o faulthandler_timeout, prints the stacks where they can be seen)."""
    import faulthandler
    faulthandler.dump_traceback_later(float(os.environ.get("CKPT_TEST_WATCHDOG", 90)), exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()
