#!/usr/bin/python3
"""ck.Checkpointer(local_dir=..., flush_every=...): the keyword arguments reach the core.
Run under mpiexec (2 ranks, one node, so no partner copy) with --phase:

  crash    saves steps 10 and 20 node-local only (flush_every=0), then every rank exits
           hard at step 25 (os._exit: no flush, as a killed job).
  resume   CKPT_DIR is empty; restore rebuilds step 20 from the node-local parts through
           the Checkpointer's own local_dir (not the environment), and the run ends with
           its final checkpoint flushed to CKPT_DIR and the node-local files removed.
"""
import argparse
import glob
import os
import sys

import numpy as np
from mpi4py import MPI

import ckpt as ck

ap = argparse.ArgumentParser()
ap.add_argument("--phase", required=True)
ap.add_argument("--work", required=True)
a = ap.parse_args()
comm = MPI.COMM_WORLD
shared, local = os.path.join(a.work, "shared"), os.path.join(a.work, "local")
assert "CKPT_LOCAL_DIR" not in os.environ
cp = ck.Checkpointer(comm, shared, every=10, local_dir=local, flush_every=0)
assert cp._core.options()["local_dir"] == local, cp._core.options()
state = cp.restore({"x": np.zeros(4) + comm.rank, "n": 0})
if a.phase == "crash":
    assert cp.restored_step is None
    for step in cp.steps(40):
        state["x"] += 1
        state["n"] += 1
        if step == 25:
            comm.Barrier()
            assert not glob.glob(os.path.join(shared, "ckpt-*.h5")), "nothing flushed yet"
            assert len(glob.glob(os.path.join(local, "ckpt-run-*", "*.part"))) == 4, "2 ranks x 2 saves"
            sys.stdout.flush()
            os._exit(3)
else:
    assert cp.restored_step == 20, cp.restored_step
    assert state["n"] == 20 and np.all(state["x"] == 20 + comm.rank), state
    for step in cp.steps(40):
        state["x"] += 1
        state["n"] += 1
    cp.close()
    comm.Barrier()
    assert os.path.exists(os.path.join(shared, "ckpt-000000000040.h5"))
    assert not glob.glob(os.path.join(local, "ckpt-run-*", "*.part")), "node-local files removed"
    if comm.rank == 0:
        print("py_options: ok")
