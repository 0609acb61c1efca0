#!/usr/bin/python3
"""Restore keeps data: a storage outage at restart never costs a checkpoint.

A job wrote checkpoints 1, 2, 3. It is restarted while open() or read() of the checkpoint
files fails with EIO (an LD_PRELOAD shim, as a briefly failing file server), on one rank or
on all. Each restart must fail with the same io error on every rank, naming the file and
errno, and rename nothing. With the storage back, the next run resumes from checkpoint 3
and ends with the uninterrupted run's result. The same for the Python bindings.

Then a directory whose checkpoints are all damaged (truncated): the restore sets them
aside and fails; the next run refuses to start from scratch without CKPT_FRESH=1, and
starts fresh with it.

  restore_eio.py --app build/bin/fault_app --shim build/.../libckpt_eio_shim.so --pythonpath build/python
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402

ERROR_RE = re.compile(r"^fault_app: error code=(\w+): (.*)$", re.M)
failures = []


def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what, flush=True)
    if not ok:
        failures.append(what)


def files(d):
    return sorted(n for n in os.listdir(d) if n.startswith("ckpt-") and ".h5" in n)


def run(argv, env, np=2, timeout=300):
    p = subprocess.run([fl.MPIEXEC, "-n", str(np)] + argv, env=env, capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


PY_SCRIPT = r"""
import sys, numpy as np
from mpi4py import MPI
import ckpt as ck
comm = MPI.COMM_WORLD
mode, d = sys.argv[1], sys.argv[2]
if mode == "write":
    for step in (1, 2, 3):
        u = np.arange(8.0) + 100 * comm.rank + step
        ck.save(comm, {"u": ck.Distributed(u, (8 * comm.rank,), (8 * comm.size,)), "step": step},
                path=d, step=step)
else:
    try:
        st = ck.load(comm, d)
        sys.stdout.write(f"loaded {None if st is None else st['step']}\n")
    except ck.CheckpointError as e:
        sys.stdout.write(f"error code={e.code}: {str(e)!r}\n")
        sys.exit(1)
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--app", required=True)
    ap.add_argument("--shim", required=True)
    ap.add_argument("--pythonpath")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ckpt-eio-")
    env = fl.mpi_env({"CKPT_QUIET": "1"}, tmpdir=os.path.join(work, "ompi"))
    env.pop("CKPT_FRESH", None)

    def shim_env(mode, rank):
        e = dict(env, LD_PRELOAD=a.shim, CKPT_TEST_EIO=mode)
        if rank != "*":
            e["CKPT_TEST_EIO_RANK"] = rank
        return e

    app = lambda d, *x: [a.app, "--dir", d, "--n", "64", "--keep", "3"] + list(x)
    rc, out, err = run(app(os.path.join(work, "ref"), "--steps", "5", "--every", "1"), env)
    ref = [l for l in out.splitlines() if l.startswith("result:")]
    check(rc == 0 and len(ref) == 1, "uninterrupted reference run (rc %s)" % rc)

    d = os.path.join(work, "outage")
    rc, out, err = run(app(d, "--steps", "3", "--every", "1"), env)
    before = files(d)
    check(rc == 0 and before == ["ckpt-%012d.h5" % s for s in (1, 2, 3)],
          "first run wrote checkpoints 1, 2, 3: %s" % before)

    for mode, rank in [("open", "*"), ("open", "1"), ("read", "0"), ("read", "*"),
                       ("open,read", "1")]:
        rc, out, err = run(app(d, "--steps", "5", "--every", "1"), shim_env(mode, rank), timeout=120)
        errs = ERROR_RE.findall(err)
        what = "EIO at %s on rank %s" % (mode, rank)
        check(rc == 10 + 2, "%s: the restore fails with Errc::io (rc %s)" % (what, rc))
        check(len(errs) == 2 and errs[0] == errs[1],
              "%s: the same error on both ranks: %s" % (what, errs))
        msg = errs[0][1] if errs else ""
        check("Input/output error" in msg and "errno 5" in msg and "ckpt-000000000003.h5" in msg,
              "%s: the error names the file and errno: %s" % (what, msg))
        check(files(d) == before, "%s: nothing renamed or removed: %s" % (what, files(d)))

    rc, out, err = run(app(d, "--steps", "5", "--every", "1"), env)
    check("restored: 3 bitexact" in out, "outage over: the next run resumes from checkpoint 3 (%s)"
          % [l for l in out.splitlines() if l.startswith("restored")])
    check(rc == 0 and [l for l in out.splitlines() if l.startswith("result:")] == ref,
          "and ends with the uninterrupted run's result")

    if a.pythonpath:
        penv = dict(env, PYTHONPATH=a.pythonpath)
        pd = os.path.join(work, "python")
        script = os.path.join(work, "eio_py.py")
        with open(script, "w") as f:
            f.write(PY_SCRIPT)
        rc, out, err = run(["/usr/bin/python3", script, "write", pd], penv)
        pbefore = files(pd)
        check(rc == 0 and len(pbefore) == 3, "Python: three checkpoints written (%s %s)" % (rc, err[-300:]))
        for mode, rank in [("open", "*"), ("read", "1")]:
            e = dict(penv, LD_PRELOAD=a.shim, CKPT_TEST_EIO=mode)
            if rank != "*":
                e["CKPT_TEST_EIO_RANK"] = rank
            rc, out, err = run(["/usr/bin/python3", script, "load", pd], e)
            lines = [l for l in out.splitlines() if l.startswith("error")]
            check(rc != 0 and len(lines) == 2 and lines[0] == lines[1] and "code=io" in lines[0],
                  "Python, EIO at %s on rank %s: the same io error on both ranks: %s" % (mode, rank, lines))
            check(files(pd) == pbefore, "Python, EIO at %s: nothing renamed: %s" % (mode, files(pd)))
        rc, out, err = run(["/usr/bin/python3", script, "load", pd], penv)
        check(rc == 0 and out.count("loaded 3") == 2, "Python, outage over: loads step 3 (%s)" % out.strip())

    # All checkpoints damaged: set aside, then no silent fresh start.
    d2 = os.path.join(work, "damaged")
    rc, out, err = run(app(d2, "--steps", "3", "--every", "1"), env)
    for n in files(d2):
        p = os.path.join(d2, n)
        os.truncate(p, os.path.getsize(p) // 2)
    rc, out, err = run(app(d2, "--steps", "5", "--every", "1"), env)
    check(rc == 10 + 11, "truncated checkpoints: no_valid_checkpoint (rc %s)" % rc)
    check(files(d2) == ["ckpt-%012d.h5.corrupt" % s for s in (1, 2, 3)],
          "all three were set aside: %s" % files(d2))
    rc, out, err = run(app(d2, "--steps", "3", "--every", "1"), env)
    errs = ERROR_RE.findall(err)
    check(rc == 10 + 11 and errs and "holds no valid checkpoint" in errs[0][1] and
          "set CKPT_FRESH=1" in err,
          "without CKPT_FRESH=1 the next run refuses to start from scratch (rc %s, %s)" % (rc, errs[:1]))
    check("restored:" not in out and not any(n.endswith(".h5") for n in files(d2)),
          "and writes nothing")
    rc, out, err = run(app(d2, "--steps", "5", "--every", "1"), dict(env, CKPT_FRESH="1"))
    check(rc == 0 and "restored: none" in out and
          [l for l in out.splitlines() if l.startswith("result:")] == ref,
          "with CKPT_FRESH=1 it starts from scratch and finishes (rc %s)" % rc)

    print("restore-keeps-data cases passing: %d failing: %d" % (0, len(failures)) if failures
          else "all restore-keeps-data cases pass")
    if not failures:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print("work dir kept:", work)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
