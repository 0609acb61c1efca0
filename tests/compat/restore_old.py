#!/usr/bin/python3
"""Checkpoints written by an earlier version of ckpt (checked in next to this script) still
verify and restore, bit for bit:

  v1-fault_app-np2/   fault_app --n 4 --steps 3 on 2 ranks (C++ API: distributed, replicated
                      and resizable per-rank fields); fault_app recomputes step 3 and compares
  v1-python-np2/      ck.save of a nested Python state on 2 ranks; loaded on 2 ranks, and
                      its distributed array and scalars on 1 and 3 ranks

Format version 1.x, written on 2026-12-03. Add a directory here whenever the format changes.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "faults"))
import faultlib as fl  # noqa: E402

PY_CHECK = r"""
import sys
import numpy as np
from mpi4py import MPI
import ckpt as ck
comm = MPI.COMM_WORLD
n = 16
lo = n * comm.rank // comm.size
hi = n * (comm.rank + 1) // comm.size
like = {"u": ck.Distributed((hi - lo,), (lo,), (n,)), "t": 0.0, "name": ""}
if comm.size == 2:  # the nested per-rank array loads on the saving rank count only
    like["nested"] = None
st = ck.load(comm, sys.argv[1], like=like)
ok = (np.array_equal(st["u"], np.arange(lo, hi) * 1.5) and st["t"] == 0.25 and
      st["name"] == "heat")
if comm.size == 2:
    ok = ok and st["nested"]["k"] == [1, 2, 3] and np.array_equal(
        st["nested"]["arr"], np.arange(6, dtype=np.int32).reshape(2, 3))
sys.stdout.write(f"python rank {comm.rank}/{comm.size}: {'ok' if ok else 'MISMATCH ' + repr(st)}\n")
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--app", required=True)
    ap.add_argument("--cli")
    ap.add_argument("--pythonpath")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ckpt-compat-")
    env = fl.mpi_env({"CKPT_QUIET": "1"}, tmpdir=os.path.join(work, "ompi"))
    bad = []
    for name in sorted(os.listdir(HERE)):
        src = os.path.join(HERE, name)
        if not os.path.isdir(src):
            continue
        d = os.path.join(work, name)
        shutil.copytree(src, d)  # restore never touches the checked-in copy
        files = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".h5"))
        if a.cli:
            r = subprocess.run([a.cli, "verify"] + files, capture_output=True, text=True)
            print(r.stdout.strip())
            if r.returncode != 0:
                bad.append(f"{name}: ckpt verify failed: {r.stdout} {r.stderr}")
        if name.startswith("v1-fault_app"):
            r = subprocess.run([fl.MPIEXEC, "-n", "2", a.app, "--dir", d, "--n", "4", "--check-only"],
                               env=env, capture_output=True, text=True, timeout=120)
            print(f"{name}: {r.stdout.strip()}")
            rec = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
            if r.returncode != 0 or not rec or rec[0].get("restored") != 3 or not rec[0].get("bitexact"):
                bad.append(f"{name}: {r.returncode} {r.stdout} {r.stderr}")
        elif name.startswith("v1-python") and a.pythonpath:
            script = os.path.join(work, "check.py")
            with open(script, "w") as f:
                f.write(PY_CHECK)
            for np_ in (1, 2, 3):
                r = subprocess.run([fl.MPIEXEC, "-n", str(np_), "/usr/bin/python3", script, d],
                                   env=dict(env, PYTHONPATH=a.pythonpath), capture_output=True,
                                   text=True, timeout=120)
                print(f"{name} on {np_} rank(s): {r.stdout.strip()}")
                if r.returncode != 0 or r.stdout.count(": ok") != np_:
                    bad.append(f"{name} on {np_} ranks: {r.returncode} {r.stdout} {r.stderr}")
    for b in bad:
        print("FAIL:", b)
    if not bad:
        shutil.rmtree(work, ignore_errors=True)
        print("all checked-in checkpoints restore")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
