#!/usr/bin/python3
"""A heat checkpoint opens in h5py: the field dataset has the global shape and equals the
solver's grid (recomputed here with numpy, same operation order, so bit for bit); root
attributes show the step and format version; h5dump reads it too."""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--bin", required=True)
args = ap.parse_args()
N, STEPS = 48, 30
work = tempfile.mkdtemp(prefix="ckpt-h5py-")
try:
    d = os.path.join(work, "ck")
    out = subprocess.run(["mpiexec", "-n", "4", os.path.join(args.bin, "heat"), "--n", str(N),
                          "--steps", str(STEPS), "--every", "10", "--dir", d],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    path = os.path.join(d, "ckpt-%012d.h5" % STEPS)
    # The reference grid, as benchpress computes it.
    g = np.zeros((N + 2, N + 2))
    g[:, 0] = g[:, -1] = g[-1, :] = -273.15
    g[0, :] = 40.0
    for _ in range(STEPS):
        c = g[1:-1, 1:-1]
        work_ = 0.2 * (c + g[0:-2, 1:-1] + g[1:-1, 2:] + g[1:-1, 0:-2] + g[2:, 1:-1])
        c[:] = work_
    with h5py.File(path, "r") as f:
        u = f["u"]
        assert u.shape == (N, N), u.shape
        assert u.dtype == np.float64
        assert np.array_equal(u[...], g[1:-1, 1:-1]), "checkpoint differs from the numpy grid"
        assert int(f.attrs["step"]) == STEPS
        assert list(f.attrs["ckpt_format_version"]) == [1, 0]
        assert f.attrs["ckpt_format"] == "ckpt"
        assert int(f.attrs["nranks"]) == 4
        assert f["u"].attrs["ckpt_kind"] == "distributed"
        assert f["_ckpt/u/checksums"].shape == (4,)
    dump = subprocess.run(["h5dump", "-H", path], capture_output=True, text=True)
    assert dump.returncode == 0 and 'DATASET "u"' in dump.stdout and "( 48, 48 )" in dump.stdout, dump.stdout
    print(f"ok: {path} has u[{N},{N}] equal to the numpy grid, step {STEPS}, format 1.0")
finally:
    shutil.rmtree(work, ignore_errors=True)
