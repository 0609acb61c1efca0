#!/usr/bin/python3
"""Restart tests of the capsid solver (apps/capsid), run from ctest.

Each scenario runs build/bin/capsid under mpiexec in its own scratch directory and compares
the `result:` digest of the final positions with an uninterrupted run:

  kill     SIGKILL every process of the job at random steps after a checkpoint, resume
  reshard  kill on one rank count, resume on others
  signal   SIGUSR1: the job checkpoints and exits 75, then resumes on another rank count
  magic    N = 72 / 122 end with 12 five-fold points (and N = 72 at the known minimum)
  mismatch resuming with another N fails cleanly, naming the field

Kills and signals land at steps chosen from the run's progress (CKPT_PROGRESS lines), drawn
from --seed (printed), so a failure can be replayed; no delay is guessed.
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
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "apps"))
from mpijob import Job, kill_in_next_interval  # noqa: E402

ARGS = None


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


def command(np, ckdir, n, steps, every, seed=1):
    return [ARGS.mpiexec, "-n", str(np), ARGS.capsid, "-n", str(n), "-s", str(steps),
            "-e", str(every), "-r", str(seed), "-d", ckdir]


def start(cmd):
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env(), start_new_session=True)


def run(cmd, expect=0):
    t0 = time.time()
    p = start(cmd)
    out, _ = p.communicate(timeout=120)
    dt = time.time() - t0
    if p.returncode != expect:
        raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}, expected {expect}:\n{out}")
    return out, dt


def parse(out):
    m = re.search(r"^result: ([0-9a-f]{16})$", out, re.M)
    d = re.search(r"^defects: fivefold=(\d+) sixfold=(\d+) other=(\d+)", out, re.M)
    e = re.search(r"^energy: ([0-9.]+)", out, re.M)
    if not (m and d and e):
        raise AssertionError(f"no result in output:\n{out}")
    return m.group(1), tuple(int(x) for x in d.groups()), float(e.group(1))


def newest_step(ckdir):
    """Step of the newest committed checkpoint in ckdir (file ckpt-<step>.h5), or None."""
    steps = [int(m.group(1)) for f in (os.listdir(ckdir) if os.path.isdir(ckdir) else [])
             for m in [re.fullmatch(r"ckpt-(\d+)\.h5", f)] if m]
    return max(steps) if steps else None


def interrupted(ckdir, nps, n, steps, every, rng, max_kills):
    """Runs to completion, SIGKILLing the job max_kills times at points chosen from its
    progress: each attempt first commits a new checkpoint, then is killed at a random step of
    the following checkpoint interval (sometimes during that checkpoint's write). The rank
    count of each attempt cycles through nps. Asserts that every kill landed mid-run and that
    every next attempt resumed from the newest committed checkpoint.
    Returns (output of the final run, kills, resumed attempts, resumed on another rank count)."""
    # Each kill costs at most two checkpoint intervals of progress: the run must outlast them.
    assert steps > (max_kills * 2 + 1) * every, "too few steps for the kills asked"
    kills = resumes = resharded = 0
    attempt = 0
    writer = None  # rank count of the attempt that wrote the newest checkpoint
    while True:
        np = nps[attempt % len(nps)]
        attempt += 1
        s0 = newest_step(ckdir)
        if s0 is not None:
            resumes += 1
            resharded += writer != np
        note = f" (resuming step {s0} written on np={writer})" if s0 is not None else ""
        job = Job(command(np, ckdir, n, steps, every), env=env())
        if kills < max_kills:
            at = kill_in_next_interval(job, every, rng)
            assert at is not None, (f"np={np}: the run ended before the kill{note}:\n"
                                    f"{job.stdout()}\n{job.stderr()}")
            kills += 1
            if newest_step(ckdir) != s0:
                writer = np
            print(f"  np={np}: SIGKILL at step {at}{note}, newest checkpoint now "
                  f"{newest_step(ckdir)}")
            if s0 is not None:
                assert job.restored == s0, f"restored {job.restored}, newest was {s0}"
            continue
        rc = job.wait(120)
        out = job.stdout()
        if rc != 0:
            raise AssertionError(f"{' '.join(job.argv)} exited {rc}:\n{out}\n{job.stderr()}")
        if s0 is not None:
            assert f"resumed at step {s0}" in out, f"did not resume at step {s0}:\n{out}"
        print(f"  np={np}: finished{note}")
        return out, kills, resumes, resharded


def reference(scratch, np, n, steps, every):
    out, dt = run(command(np, os.path.join(scratch, f"ref-np{np}"), n, steps, every))
    digest, defects, energy = parse(out)
    print(f"reference np={np}: result {digest}, defects {defects}, energy {energy}, {dt:.2f}s")
    return digest, dt


def scenario_kill(scratch, rng):
    np = ARGS.np[0]
    ref, dt = reference(scratch, np, ARGS.n, ARGS.steps, ARGS.every)
    for trial in range(ARGS.trials):
        ckdir = os.path.join(scratch, f"kill-{trial}")
        out, kills, resumes, _ = interrupted(ckdir, [np], ARGS.n, ARGS.steps, ARGS.every, rng,
                                             ARGS.kills)
        got = parse(out)[0]
        print(f"trial {trial}: {kills} kills mid-run, {resumes} resumed attempts, result {got}")
        assert kills == ARGS.kills, f"{kills} of {ARGS.kills} kills landed mid-run"
        assert resumes == kills, f"{resumes} of {kills} attempts after a kill resumed"
        assert got == ref, f"interrupted run gave {got}, uninterrupted {ref}"
    return ref


def scenario_reshard(scratch, rng):
    ref, dt = reference(scratch, 1, ARGS.n, ARGS.steps, ARGS.every)
    ckdir = os.path.join(scratch, "reshard")
    out, kills, resumes, resharded = interrupted(ckdir, ARGS.np, ARGS.n, ARGS.steps, ARGS.every,
                                                 rng, ARGS.kills)
    got = parse(out)[0]
    print(f"{kills} kills across np {ARGS.np}, {resumes} resumed attempts, {resharded} of them "
          f"on another rank count than the checkpoint's, result {got}")
    assert kills == ARGS.kills and resumes == kills, (kills, resumes)
    assert resharded >= min(kills, len(ARGS.np) - 1), "too few resumes on another rank count"
    assert got == ref, f"resharded run gave {got}, uninterrupted np=1 {ref}"


def scenario_signal(scratch, rng):
    steps = ARGS.steps
    ref, dt = reference(scratch, ARGS.np[-1], ARGS.n, steps, ARGS.every)
    ckdir = os.path.join(scratch, "signal")
    # CKPT_AGREE_SECONDS=0: the ranks agree at every boundary, so the stop comes at the
    # boundary after the signal, not after this short run of cheap steps has ended.
    job = Job(command(ARGS.np[0], ckdir, ARGS.n, steps, ARGS.every), env=dict(env(), CKPT_AGREE_SECONDS="0"))
    # After the first checkpoint, at a random step before the run's middle: SIGUSR1.
    first = job.wait_saved_after(-1)
    assert first is not None, f"no checkpoint committed:\n{job.stderr()}"
    target = rng.randint(first + 1, max(first + 1, steps // 2))
    assert job.wait_step(target), f"run ended before step {target}:\n{job.stdout()}"
    sent_at = job.step
    job.signal(signal.SIGUSR1)
    rc = job.wait(120)
    out = job.stdout()
    print(f"np={ARGS.np[0]}: SIGUSR1 at step {sent_at} -> exit {rc}")
    assert rc == 75, f"stopped job exited {rc}, expected 75:\n{out}\n{job.stderr()}"
    m = re.search(r"stopped at step (\d+)", out)
    assert m, f"no stop message:\n{out}"
    stop = int(m.group(1))
    assert sent_at <= stop < steps, (sent_at, stop)
    assert newest_step(ckdir) == stop, f"newest checkpoint {newest_step(ckdir)}, stop at {stop}"
    out, _ = run(command(ARGS.np[-1], ckdir, ARGS.n, steps, ARGS.every))
    assert f"resumed at step {stop}" in out, out
    got = parse(out)[0]
    print(f"resumed on np={ARGS.np[-1]} at step {stop}: result {got}")
    assert got == ref, f"signal-stopped run gave {got}, uninterrupted {ref}"


def scenario_mismatch(scratch, rng):
    """Resuming with another N: a clean error naming the field, on every rank, exit 1."""
    ckdir = os.path.join(scratch, "mismatch")
    run(command(ARGS.np[0], ckdir, 72, 100, 50))
    out, _ = run(command(ARGS.np[0], ckdir, 122, 100, 50), expect=1)
    print(out.strip().splitlines()[0])
    assert re.search(r"capsid: ckpt\[rank \d+\] restore: field 'x' has global shape "
                     r"\[72, ?3\]", out), out
    assert re.search(r"\[122, ?3\] is registered", out), out
    assert "Traceback" not in out and "terminate called" not in out, out


def scenario_magic(scratch, rng):
    for n in ARGS.magic:
        # enough steps to converge (the step size collapses at a minimum); few checkpoints
        steps = max(ARGS.steps, 25 * n)
        out, dt = run(command(ARGS.np[0], os.path.join(scratch, f"magic-{n}"), n, steps, 1000))
        digest, (five, six, other), energy = parse(out)
        print(f"N={n}: fivefold={five} sixfold={six} other={other} energy={energy} ({dt:.2f}s)")
        assert five == 12 and six == n - 12 and other == 0, out
        if n == 72:  # the known global minimum (Cambridge Cluster Database, Thomson problem)
            assert abs(energy - 2255.001190975) < 1e-6, energy


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=["kill", "reshard", "signal", "magic", "mismatch"])
    ap.add_argument("--capsid", required=True)
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--np", type=int, nargs="+", default=[2])
    ap.add_argument("--n", type=int, default=72)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--trials", type=int, default=2)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--magic", type=int, nargs="+", default=[72, 122])
    ap.add_argument("--seed", type=int, default=None)
    ARGS = ap.parse_args()
    seed = ARGS.seed if ARGS.seed is not None else int.from_bytes(os.urandom(4), "little")
    print(f"{ARGS.scenario}: seed {seed} (replay with --seed {seed})")
    rng = random.Random(seed)
    scratch = tempfile.mkdtemp(prefix=f"capsid-{ARGS.scenario}-")
    ok = False
    try:
        {"kill": scenario_kill, "reshard": scenario_reshard, "signal": scenario_signal,
         "magic": scenario_magic, "mismatch": scenario_mismatch}[ARGS.scenario](scratch, rng)
        ok = True
    finally:
        if ok:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"scratch kept in {scratch}")
    print("PASSED")


if __name__ == "__main__":
    sys.exit(main())
