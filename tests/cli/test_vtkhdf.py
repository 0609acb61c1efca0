#!/usr/bin/python3
"""Checkpoints as images, read back with VTK's own vtkHDFReader (Debian's python3-vtk9):
- `ckpt export --vtkhdf`: the view file of the heat solver's 2-D field and of 3-D fields
  saved through the Python bindings has the field's extent and values, stays small, and
  keeps working when the view and the checkpoint are moved together;
- fields tagged with a grid (the heat solver's, 3-D ones from Python): the checkpoint file
  itself opens as an image with the grid's extent, spacing, origin and values; the view
  adds less than 64 KiB; the checkpoint still verifies, restores, and reads in h5py.

usage: test_vtkhdf.py --ckpt BIN --heat BIN --mpiexec BIN --pythonpath DIR --scratch DIR

This process imports numpy and VTK only: VTK links Debian's serial HDF5, ckpt and h5py the
MPI one, and the two libraries must not meet in one process. Expected values come from the
deterministic inputs and from `ckpt export`'s .npy file.
"""

import argparse
import os
import shutil
import subprocess
import sys

import numpy as np

SAVE_3D = """
import sys
import numpy as np
from mpi4py import MPI
import ckpt as ck
comm = MPI.COMM_WORLD
fields = {}
for name, shape, dtype in (("rho", (4, 5, 6), np.float32), ("slab", (1, 5, 6), np.float64),
                           ("line", (7,), np.int32)):
    whole = (np.arange(int(np.prod(shape))) * 3 % 17 - 4).astype(dtype).reshape(shape)
    axis = 0 if shape[0] >= comm.size else None
    if axis is None:  # too thin to split: rank 0 holds it all
        lo, hi = (0, shape[0]) if comm.rank == 0 else (0, 0)
    else:
        step = -(-shape[0] // comm.size)
        lo, hi = min(shape[0], comm.rank * step), min(shape[0], (comm.rank + 1) * step)
    off = (lo,) + (0,) * (len(shape) - 1)
    fields[name] = ck.Distributed(np.ascontiguousarray(whole[lo:hi]), off, shape)
ck.save(comm, fields, sys.argv[1], step=3)
"""


SAVE_TAGGED = """
import sys
import numpy as np
from mpi4py import MPI
import ckpt as ck
comm = MPI.COMM_WORLD
out = sys.argv[1]


def block(shape, dtype):
    whole = (np.arange(int(np.prod(shape))) * 3 % 17 - 4).astype(dtype).reshape(shape)
    step = -(-shape[0] // comm.size)
    lo, hi = min(shape[0], comm.rank * step), min(shape[0], (comm.rank + 1) * step)
    return np.ascontiguousarray(whole[lo:hi]), (lo,) + (0,) * (len(shape) - 1)


cases = {"vol": ((4, 5, 6), np.float32, ck.Grid(spacing=(0.5, 0.25, 2.0), origin=(1.0, 2.0, 3.0))),
         "plane": ((48, 48), np.float64, ck.Grid()),
         "slab": ((1, 5, 6), np.float64, ck.Grid(spacing=(1.0, 1.5, 3.0)))}
for name, (shape, dtype, grid) in cases.items():
    for tag in ("plain", "tagged"):
        local, off = block(shape, dtype)
        state = {name: ck.Distributed(local, off, shape, grid=grid if tag == "tagged" else None),
                 "step_size": 0.125}
        ck.save(comm, state, f"{out}/{name}-{tag}", step=3)
        # Restore is unaffected by the view: the same values come back.
        back = ck.load(comm, f"{out}/{name}-{tag}", like={name: ck.Distributed(local.shape, off, shape),
                                                          "step_size": 0.0})
        assert np.array_equal(back[name], local) and back["step_size"] == 0.125, name

# Two arrays on one grid: one image with both; two different grids: refused.
g = ck.Grid(spacing=(2.0, 2.0, 2.0))
a, off = block((4, 5, 6), np.float32)
ck.save(comm, {"a": ck.Distributed(a, off, (4, 5, 6), grid=g),
               "b": ck.Distributed(a * 2, off, (4, 5, 6), grid=g)}, f"{out}/pair", step=1)
for bad, why in (({"a": ck.Distributed(a, off, (4, 5, 6), grid=g),
                   "b": ck.Distributed(a, off, (4, 5, 6), grid=ck.Grid())}, "different grids"),
                 ({"c": ck.Distributed(a.astype(np.complex64), off, (4, 5, 6), grid=g)}, "complex"),
                 ({"d": ck.Distributed(a[..., None], off + (0,), (4, 5, 6, 1), grid=ck.Grid())},
                  "4 dimensions")):
    try:
        ck.save(comm, bad, f"{out}/bad", step=1)
    except ck.CheckpointError as e:
        assert why in str(e), (why, str(e))
    else:
        raise AssertionError(f"a save with {why} succeeded")
print("saved")
"""

H5PY_READ = """
import sys
import h5py
import numpy as np
with h5py.File(sys.argv[1], "r") as f:
    v = f["VTKHDF"]
    assert v.attrs["Type"] == b"ImageData", v.attrs["Type"]
    assert f["_ckpt"] and sys.argv[2] in f
    print(sorted(f.keys()), list(v["PointData"]))
"""


def expected(shape, dtype):
    return (np.arange(int(np.prod(shape))) * 3 % 17 - 4).astype(dtype).reshape(shape)


def run(cmd, env=None):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=240)
    if p.returncode != 0:
        sys.exit(f"FAIL: {cmd} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p.stdout


def read_vtkhdf(path):
    """(extent, {name: array in C order (z, y, x)}) of the image vtkHDFReader reads."""
    from vtkmodules.vtkIOHDF import vtkHDFReader
    from vtkmodules.util.numpy_support import vtk_to_numpy
    r = vtkHDFReader()
    r.SetFileName(str(path))
    r.Update()
    img = r.GetOutput()
    ext = tuple(img.GetExtent())
    nx, ny, nz = (ext[1] - ext[0] + 1, ext[3] - ext[2] + 1, ext[5] - ext[4] + 1)
    pd = img.GetPointData()
    arrays = {}
    for i in range(pd.GetNumberOfArrays()):
        a = pd.GetArray(i)
        arrays[a.GetName()] = vtk_to_numpy(a).reshape(nz, ny, nx)
    return ext, arrays, img.GetOrigin(), img.GetSpacing()


def check_view(path, name, field, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), small=True):
    """The view at `path` shows `field` (a numpy array of 1 to 3 dimensions): padded to 3-D,
    an axis of one point appears as two identical layers. `small`: a separate view file,
    which holds links only."""
    if small:
        assert os.path.getsize(path) < 64 * 1024, (path, os.path.getsize(path))
    ext, arrays, org, spc = read_vtkhdf(path)
    f3 = field.reshape((1,) * (3 - field.ndim) + field.shape)
    want_dims = [2 if d == 1 else d for d in f3.shape]  # z, y, x
    assert ext == (0, want_dims[2] - 1, 0, want_dims[1] - 1, 0, want_dims[0] - 1), (name, ext, field.shape)
    assert tuple(spc) == tuple(spacing) and tuple(org) == tuple(origin), (spc, org)
    assert list(arrays) == [name], (name, list(arrays))
    got = arrays[name]
    assert got.dtype == field.dtype, (name, got.dtype, field.dtype)
    for z in range(got.shape[0] if f3.shape[0] == 1 else 1):
        for y in range(got.shape[1] if f3.shape[1] == 1 else 1):
            sl = got[z:z + f3.shape[0], y:y + f3.shape[1], :]
            assert np.array_equal(sl, f3), (name, z, y)
    print(f"ok: {path} {name} extent {ext}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ckpt", required=True)
    p.add_argument("--heat", required=True)
    p.add_argument("--mpiexec", required=True)
    p.add_argument("--pythonpath", required=True)
    p.add_argument("--scratch", required=True)
    a = p.parse_args()
    s = a.scratch
    shutil.rmtree(s, ignore_errors=True)
    os.makedirs(os.path.join(s, "views"))

    # The heat solver's 2-D field (48 x 48, 2 ranks).
    n = 48
    run([a.mpiexec, "-n", "2", a.heat, "--n", n, "--steps", 120, "--every", 60, "--dir", f"{s}/heat"])
    run([a.ckpt, "export", f"{s}/heat", "--field", "u", "-o", f"{s}/heat-u"])
    u = np.load(f"{s}/heat-u.npy")
    assert u.shape == (n, n), u.shape
    out = run([a.ckpt, "export", f"{s}/heat", "--field", "u", "--vtkhdf", "--spacing", "0.5",
               "--origin", "1,2", "-o", f"{s}/views/heat-u"])
    assert "VTKHDF" in out, out
    check_view(f"{s}/views/heat-u.hdf", "u", u, spacing=(0.5, 0.5, 0.5), origin=(1.0, 2.0, 0.0))
    # The checkpoint itself is unchanged: it still verifies.
    run([a.ckpt, "verify", f"{s}/heat"])

    # 3-D fields (and a 1-D one) saved with the Python bindings on 2 ranks.
    env = dict(os.environ, PYTHONPATH=a.pythonpath)
    script = os.path.join(s, "save3d.py")
    with open(script, "w") as f:
        f.write(SAVE_3D)
    run([a.mpiexec, "-n", "2", sys.executable, script, f"{s}/fields"], env=env)
    for name, shape, dtype in (("rho", (4, 5, 6), np.float32), ("slab", (1, 5, 6), np.float64),
                               ("line", (7,), np.int32)):
        run([a.ckpt, "export", f"{s}/fields", "--field", name, "--vtkhdf", "-o", f"{s}/views/{name}"])
        check_view(f"{s}/views/{name}.hdf", name, expected(shape, dtype))

    # Checkpoints of fields tagged with a grid are images themselves: the heat solver tags
    # its 2-D field, and 3-D fields are tagged through the Python bindings.
    heat_files = sorted(f for f in os.listdir(f"{s}/heat") if f.endswith(".h5"))
    final = [f for f in heat_files if f.endswith("%012d.h5" % 120)]
    assert final, heat_files
    check_view(f"{s}/heat/{final[0]}", "u", u, small=False)
    script = os.path.join(s, "save_tagged.py")
    with open(script, "w") as f:
        f.write(SAVE_TAGGED)
    out = run([a.mpiexec, "-n", "2", sys.executable, script, f"{s}/tagged"], env=env)
    assert "saved" in out, out
    cases = {"vol": ((4, 5, 6), np.float32, (2.0, 0.25, 0.5), (3.0, 2.0, 1.0)),
             "plane": ((48, 48), np.float64, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)),
             "slab": ((1, 5, 6), np.float64, (3.0, 1.5, 1.0), (0.0, 0.0, 0.0))}
    for name, (shape, dtype, spacing, origin) in cases.items():
        tagged = f"{s}/tagged/{name}-tagged/ckpt-%012d.h5" % 3
        plain = f"{s}/tagged/{name}-plain/ckpt-%012d.h5" % 3
        check_view(tagged, name, expected(shape, dtype), spacing=spacing, origin=origin, small=False)
        grown = os.path.getsize(tagged) - os.path.getsize(plain)
        assert grown < 64 * 1024, (name, grown)
        print(f"ok: the view of {name} adds {grown} bytes")
        # The checkpoint still verifies, and h5py reads it (and sees the view).
        run([a.ckpt, "verify", f"{s}/tagged/{name}-tagged"])
        print(run([sys.executable, "-c", H5PY_READ, tagged, name], env=env).strip())
    ext, arrays, _, spc = read_vtkhdf(f"{s}/tagged/pair/ckpt-%012d.h5" % 1)
    assert sorted(arrays) == ["a", "b"] and tuple(spc) == (2.0, 2.0, 2.0), (list(arrays), spc)
    assert np.array_equal(arrays["b"], 2 * arrays["a"]) and np.array_equal(
        arrays["a"], expected((4, 5, 6), np.float32)), "pair"
    assert not os.path.exists(f"{s}/tagged/bad") or not [
        f for f in os.listdir(f"{s}/tagged/bad") if f.endswith(".h5")], "a refused save left a file"

    # Moved together (the link is relative), the view still reads.
    moved = os.path.join(s, "moved")
    shutil.copytree(f"{s}/fields", f"{moved}/fields")
    os.makedirs(f"{moved}/views")
    shutil.copy(f"{s}/views/rho.hdf", f"{moved}/views/rho.hdf")
    shutil.rmtree(f"{s}/fields")
    check_view(f"{moved}/views/rho.hdf", "rho", expected((4, 5, 6), np.float32))

    # A scalar or a field that is not there is a usage error, and no file is left behind.
    p = subprocess.run([a.ckpt, "export", f"{s}/heat", "--field", "nope", "--vtkhdf", "-o", f"{s}/views/x"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and not os.path.exists(f"{s}/views/x.hdf"), (p.returncode, p.stderr)
    print("PASS")


if __name__ == "__main__":
    main()
