#!/usr/bin/python3
"""Tests of the Fortran module `ckpt` and the Fortran solver apps/fortran_heat, from ctest.

  api      test_ckpt_f on --np ranks, then h5py opens its checkpoint: every type's global
           array has the reversed (C) shape of the Fortran array and the values at known
           global coordinates; `ckpt verify` accepts it
  kill     fortran_heat SIGKILLed --kills times at steps chosen from its progress, resumed
           each time from the newest checkpoint; ends bitwise identical to an
           uninterrupted run (--trials times)
  reshard  the same with the rank count changing between attempts (--np 2 4 ...)
  signal   SIGUSR1: checkpoint, exit 75, resume on another rank count, same result
  h5py     a fortran_heat checkpoint in h5py: u has shape (ny, nx), equals a numpy re-run
           of the same stencil bit for bit, and u(17, 5) matches the solver's own print;
           `ckpt verify` accepts the directory; with --pythonpath the Python package
           loads it resharded onto 3 ranks (row blocks of the C-order array)

Kills and signals land at steps chosen from the run's progress (CKPT_PROGRESS lines), drawn
from --seed (printed) so a failure can be replayed; no delay is guessed.
"""
import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "apps"))
from mpijob import Job, committed_steps, kill_in_next_interval  # noqa: E402

ARGS = None
NX, NY = 96, 64  # fortran_heat's default grid


def env():
    e = {k: v for k, v in os.environ.items() if not k.startswith("CKPT_")}
    e.update({
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "OMPI_MCA_rmaps_base_oversubscribe": "1",
        "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
        "CKPT_QUIET": "1",
    })
    return e


def heat_cmd(np, ckdir, steps, every):
    return [ARGS.mpiexec, "-n", str(np), ARGS.heat, "-s", str(steps), "-e", str(every),
            "-d", ckdir]


def run(cmd, expect=0, timeout=120):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       env=env(), timeout=timeout, start_new_session=True)
    if p.returncode != expect:
        raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}, expected {expect}:\n"
                             f"{p.stdout}")
    return p.stdout


def digest(out):
    m = re.search(r"^result: ([0-9a-f]{16})$", out, re.M)
    assert m, f"no result line in output:\n{out}"
    return m.group(1)


def newest(ckdir):
    s = committed_steps(ckdir)
    return s[-1] if s else None


def reference(scratch, np, steps, every):
    out = run(heat_cmd(np, os.path.join(scratch, f"ref-np{np}"), steps, every))
    d = digest(out)
    print(f"reference np={np}: result {d}")
    return d


def interrupted(ckdir, nps, steps, every, rng, max_kills):
    """Runs fortran_heat to completion, SIGKILLing it max_kills times at points chosen from
    its progress (each attempt first commits a checkpoint, then dies at a random step of the
    next interval). The rank count cycles through nps. Asserts every kill landed mid-run and
    every next attempt resumed from the newest committed checkpoint.
    Returns (final output, kills, resumed attempts, resumes on another rank count)."""
    assert steps > (max_kills * 2 + 1) * every, "too few steps for the kills asked"
    kills = resumes = resharded = 0
    attempt = 0
    writer = None  # rank count that wrote the newest checkpoint
    while True:
        np = nps[attempt % len(nps)]
        attempt += 1
        s0 = newest(ckdir)
        if s0 is not None:
            resumes += 1
            resharded += writer != np
        note = f" (resuming step {s0} written on np={writer})" if s0 is not None else ""
        job = Job(heat_cmd(np, ckdir, steps, every), env=env())
        if kills < max_kills:
            at = kill_in_next_interval(job, every, rng)
            assert at is not None, (f"np={np}: the run ended before the kill{note}:\n"
                                    f"{job.stdout()}\n{job.stderr()}")
            kills += 1
            if newest(ckdir) != s0:
                writer = np
            print(f"  np={np}: SIGKILL at step {at}{note}, newest checkpoint now {newest(ckdir)}")
            expect = "none" if s0 is None else s0
            assert job.restored == expect, f"restored {job.restored}, newest was {s0}"
            continue
        rc = job.wait(120)
        out = job.stdout()
        assert rc == 0, f"{' '.join(job.argv)} exited {rc}:\n{out}\n{job.stderr()}"
        assert job.restored == s0, f"final run restored {job.restored}, newest was {s0}"
        print(f"  np={np}: finished{note}")
        return out, kills, resumes, resharded


def scenario_kill(scratch, rng):
    np = ARGS.np[0]
    ref = reference(scratch, np, ARGS.steps, ARGS.every)
    for trial in range(ARGS.trials):
        out, kills, resumes, _ = interrupted(os.path.join(scratch, f"kill-{trial}"), [np],
                                             ARGS.steps, ARGS.every, rng, ARGS.kills)
        got = digest(out)
        print(f"trial {trial}: {kills} kills mid-run, {resumes} resumed attempts, result {got}")
        assert kills == ARGS.kills, f"{kills} of {ARGS.kills} kills landed mid-run"
        assert resumes == kills, f"{resumes} of {kills} attempts after a kill resumed"
        assert got == ref, f"interrupted run gave {got}, uninterrupted {ref}"


def scenario_reshard(scratch, rng):
    ref = reference(scratch, 1, ARGS.steps, ARGS.every)
    out, kills, resumes, resharded = interrupted(os.path.join(scratch, "reshard"), ARGS.np,
                                                 ARGS.steps, ARGS.every, rng, ARGS.kills)
    got = digest(out)
    print(f"{kills} kills across np {ARGS.np}, {resumes} resumed attempts, {resharded} on "
          f"another rank count than the checkpoint's, result {got}")
    assert kills == ARGS.kills and resumes == kills, (kills, resumes)
    assert resharded >= 1, "no resume on another rank count"
    assert got == ref, f"resharded run gave {got}, uninterrupted np=1 {ref}"


def scenario_signal(scratch, rng):
    steps = ARGS.steps
    ref = reference(scratch, ARGS.np[-1], steps, ARGS.every)
    ckdir = os.path.join(scratch, "signal")
    # CKPT_AGREE_SECONDS=0: the ranks agree at every boundary, so the stop comes at the
    # boundary after the signal, not after this short run of cheap steps has ended.
    job = Job(heat_cmd(ARGS.np[0], ckdir, steps, ARGS.every), env=dict(env(), CKPT_AGREE_SECONDS="0"))
    first = job.wait_saved_after(-1)
    assert first is not None, f"no checkpoint committed:\n{job.stderr()}"
    target = rng.randint(first + 1, max(first + 1, steps // 2))
    assert job.wait_step(target), f"run ended before step {target}:\n{job.stdout()}"
    sent_at = job.step
    job.signal(signal.SIGUSR1)
    rc = job.wait(120)
    print(f"np={ARGS.np[0]}: SIGUSR1 at step {sent_at} -> exit {rc}")
    assert rc == 75, f"stopped job exited {rc}, expected 75:\n{job.stdout()}\n{job.stderr()}"
    assert "result:" not in job.stdout(), "a stopped run printed a result"
    stop = newest(ckdir)
    assert stop is not None and sent_at <= stop < steps, (sent_at, stop)
    assert job.saved and job.saved[-1] == stop, (job.saved, stop)
    job = Job(heat_cmd(ARGS.np[-1], ckdir, steps, ARGS.every), env=env())
    rc = job.wait(120)
    assert rc == 0, f"resumed run exited {rc}:\n{job.stdout()}\n{job.stderr()}"
    assert job.restored == stop, f"resumed from {job.restored}, stop checkpoint {stop}"
    got = digest(job.stdout())
    print(f"resumed on np={ARGS.np[-1]} at step {stop}: result {got}")
    assert got == ref, f"signal-stopped run gave {got}, uninterrupted {ref}"


def verify(ckdir):
    out = run([ARGS.ckpt, "verify", ckdir])
    print("  " + out.strip().splitlines()[-1])
    lines = out.strip().splitlines()
    assert lines and all(": ok (" in l for l in lines if l.endswith(")") and ".h5" in l), out
    m = re.search(r"(\d+) of (\d+) checkpoints valid", out)
    assert m is None or m.group(1) == m.group(2), out


def heat_numpy(steps):
    """fortran_heat's field after `steps` steps, recomputed in numpy in the same operation
    order; indexed [i-1, j-1] like the Fortran array u(i, j)."""
    import numpy as np
    i = np.arange(1, NX + 1)[:, None]
    j = np.arange(1, NY + 1)[None, :]
    u = np.zeros((NX + 2, NY + 2))
    u[1:-1, 1:-1] = ((i * i + 3 * j) % 17).astype(np.float64) / 16
    r = 0.2
    for _ in range(steps):
        c = u[1:-1, 1:-1]
        u[1:-1, 1:-1] = c + r * (((u[:-2, 1:-1] + u[2:, 1:-1]) + (u[1:-1, :-2] + u[1:-1, 2:]))
                                 - 4 * c)
    return u[1:-1, 1:-1].copy()


def scenario_h5py(scratch, rng):
    import h5py
    import numpy as np
    np_ = ARGS.np[0]
    ckdir = os.path.join(scratch, "h5py")
    out = run(heat_cmd(np_, ckdir, 120, 40))
    steps = committed_steps(ckdir)
    assert steps == [40, 80, 120], steps
    with h5py.File(os.path.join(ckdir, "ckpt-000000000080.h5"), "r") as f:
        u = f["u"][...]
    print(f"np={np_}: u in h5py: shape {u.shape}, dtype {u.dtype}")
    assert u.shape == (NY, NX), f"shape {u.shape}, expected (ny, nx) = {(NY, NX)}"
    want = heat_numpy(80)  # [i-1, j-1]
    # known coordinates: Fortran u(i, j) is f["u"][j-1, i-1]
    for (i, j) in [(1, 1), (17, 5), (96, 1), (1, 64), (50, 33), (96, 64)]:
        assert u[j - 1, i - 1] == want[i - 1, j - 1], (i, j, u[j - 1, i - 1], want[i - 1, j - 1])
    assert np.array_equal(u, want.T), "the checkpoint differs from numpy's field"
    with h5py.File(os.path.join(ckdir, "ckpt-000000000120.h5"), "r") as f:
        u120 = f["u"][...]
        step = int(f.attrs["step"]) if "step" in f.attrs else None
    m = re.search(r"^u\(17,5\):\s+(\S+)$", out, re.M)
    assert m, out
    assert float(m.group(1)) == u120[4, 16], (m.group(1), u120[4, 16])
    assert step in (None, 120), step
    print(f"  u(17,5) = {u120[4, 16]!r} printed by the solver = f['u'][4, 16] in h5py; "
          f"step 80 equals numpy bit for bit")
    verify(ckdir)
    if ARGS.pythonpath:
        # the Python package reads the Fortran run's checkpoint resharded onto 3 ranks
        e = env()
        e["PYTHONPATH"] = ARGS.pythonpath
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reshard_py.py")
        p = subprocess.run([ARGS.mpiexec, "-n", "3", "/usr/bin/python3", script, ckdir, str(NX),
                            str(NY)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, env=e, timeout=120)
        assert p.returncode == 0 and "python reshard: ok" in p.stdout, p.stdout
        print("  " + p.stdout.strip().splitlines()[-1])


def scenario_api(scratch, rng):
    import h5py
    import numpy as np
    p = ARGS.np[0]
    d = os.path.join(scratch, "api")
    os.makedirs(d)
    # CKPT_AGREE_SECONDS=0: the ranks agree at every boundary, so test_loop's stop request
    # after step 6 comes at step 6 or 7 of its 10-step loop.
    out = run([ARGS.mpiexec, "-n", str(p), "-x", "CKPT_AGREE_SECONDS=0", ARGS.prog, d])
    print(out.strip().splitlines()[-1])
    assert "fortran tests: ok" in out, out
    files = [s for s in committed_steps(os.path.join(d, "save"))]
    assert files == [3], files
    path = os.path.join(d, "save", "ckpt-000000000003.h5")

    def v(i, j, k):
        return i + 10 * j + 100 * k

    # rank 2 arrays: Fortran global (3p, 5) -> h5py (5, 3p); f[j-1, i-1] = a(i, j)
    i2 = np.arange(1, 3 * p + 1)[None, :]
    j2 = np.arange(1, 6)[:, None]
    base = (v(i2, j2, 0)).astype(np.float64)  # shape (5, 3p), [j-1, i-1]
    with h5py.File(path, "r") as f:
        assert f.attrs.get("meta.solver") == "test_ckpt_f", dict(f.attrs)
        assert f.attrs["step"] == 3 and f.attrs["time"] == 0.75 and f.attrs["nranks"] == p
        checks = {
            "r32": (np.float32, base), "r64": (np.float64, base + 0.5),
            "i32": (np.int32, base), "i64": (np.int64, base + 2**40),
            "ghost": (np.float64, base),
            "lg": (np.int32, ((i2 + j2) % 2 == 0).astype(np.float64) * np.ones((5, 1))),
        }
        for name, (dt, want) in checks.items():
            a = f[name][...]
            assert a.shape == (5, 3 * p), (name, a.shape)
            assert a.dtype == dt, (name, a.dtype)
            assert np.array_equal(a, want.astype(dt)), (name, a, want)
        # a known coordinate, spelled out: a(i=2, j=4) of rank 0 is f[3, 1]
        assert f["r64"][3, 1] == v(2, 4, 0) + 0.5
        c32, c64 = f["c32"][...], f["c64"][...]
        assert c32.shape == (5, 3 * p, 2) and c32.dtype == np.float32, c32.shape
        assert np.array_equal(c32[..., 0], base) and np.array_equal(c32[..., 1], -base)
        assert np.array_equal(c64.view(np.complex128)[..., 0], base + 0.25j)
        # rank 1 (4p) and rank 3 (4, 3, 2p) -> (2p, 3, 4)
        i1 = np.arange(1, 4 * p + 1)
        assert np.array_equal(f["v1"][...], i1.astype(np.float64))
        assert np.array_equal(f["k1"][...], -i1)
        assert np.array_equal(f["l1"][...], (i1 % 3 == 0).astype(np.int32))
        kk, jj, ii = np.meshgrid(np.arange(1, 2 * p + 1), np.arange(1, 4), np.arange(1, 5),
                                 indexing="ij")
        w3 = v(ii, jj, kk).astype(np.float64)
        for name in ("s3", "n3"):
            assert f[name].shape == (2 * p, 3, 4), (name, f[name].shape)
            assert np.array_equal(f[name][...], w3), name
        assert f["s3"][1, 2, 3] == v(4, 3, 2)  # a(4, 3, 2)
        z3 = f["z3"][...]
        assert z3.shape == (2 * p, 3, 4, 2)
        assert np.array_equal(z3[..., 0], w3) and np.array_equal(z3[..., 1], w3 / 2)
        assert f["h"][()] == 0.125 and f["nsum"][()] == 123456789012
        assert list(f["params"][...]) == [7, 8, 9]
        assert list(f["zc"][...]) == [1.5, -2.5]
    print(f"  h5py: 14 distributed arrays in reversed (C) order, values at known coordinates ok")
    verify(os.path.join(d, "save"))
    # without a status argument, a failed collective call ends the program on every rank
    out = run([ARGS.mpiexec, "-n", str(p), ARGS.prog, d, "die"], expect=1)
    msgs = re.findall(r"^ckpt\[rank \d+\] restore: .*$", out, re.M)
    assert len(msgs) == 1 and "'r64'" in msgs[0], out
    assert "restore without status returned" not in out, out
    print(f"  no status: exit 1 with {msgs[0][:70]}...")


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=["api", "kill", "reshard", "signal", "h5py"])
    ap.add_argument("--heat")
    ap.add_argument("--prog")
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--pythonpath", help="build/python: also load the checkpoint with ckpt for Python")
    ap.add_argument("--np", type=int, nargs="+", default=[2])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--every", type=int, default=40)
    ap.add_argument("--trials", type=int, default=2)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--seed", type=int, default=None)
    ARGS = ap.parse_args()
    seed = ARGS.seed if ARGS.seed is not None else int.from_bytes(os.urandom(4), "little")
    print(f"{ARGS.scenario}: seed {seed} (replay with --seed {seed})")
    rng = random.Random(seed)
    scratch = tempfile.mkdtemp(prefix=f"fortran-{ARGS.scenario}-")
    ok = False
    try:
        {"api": scenario_api, "kill": scenario_kill, "reshard": scenario_reshard,
         "signal": scenario_signal, "h5py": scenario_h5py}[ARGS.scenario](scratch, rng)
        ok = True
    finally:
        if ok:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"scratch kept in {scratch}")
    print("PASSED")


if __name__ == "__main__":
    sys.exit(main())
