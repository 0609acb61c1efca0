#!/usr/bin/python3
"""`scancel --signal=USR1 --full` on a running job makes the application checkpoint, exit
75 and get requeued by slurm/ckpt-run exactly once, although the signal reaches the ranks
several times (from scancel directly, through srun or mpirun, and forwarded by
ckpt-run). The second allocation resumes from that checkpoint and ends with the
uninterrupted run's result. Runs the sbatch template of the app given by --app (heat,
capsid, heat-py, fortran-heat) with --launch srun or mpirun. (The templates' own --signal=B:USR1@120
cannot fire here: the time limit is 10 minutes.)"""
import glob
import os
import time
import harness as h


def app_setup(args, work):
    """(template, environment for the job, reference command, expected digest length)."""
    ckdir = os.path.join(work, "ckpt")
    ref_dir = os.path.join(work, "reference-ckpt")
    if args.app == "heat":
        n = 512
        steps = int(h.heat_rate(args.heat, n) * 10)
        env = {"HEAT": args.heat, "HEAT_N": str(n), "HEAT_STEPS": str(steps), "HEAT_EVERY": "0"}
        ref = [args.heat, "--n", str(n), "--steps", str(steps), "--every", "0", "--dir", ref_dir]
        return "heat.sbatch", env, ref, {}, steps
    if args.app == "capsid":
        n = 400
        # 100 calibration steps, so that process start-up does not dominate the rate, and
        # about 15 s of work: scancel comes at a tenth of the steps, chosen from progress.
        steps = max(int(h.wall_rate([args.capsid, "-n", str(n), "-s", "100", "-e", "0", "-d",
                                   os.path.join(work, "rate-ckpt")], 100) * 15), 200)
        env = {"CAPSID": args.capsid, "CAPSID_N": str(n), "CAPSID_STEPS": str(steps), "CAPSID_EVERY": "0"}
        ref = [args.capsid, "-n", str(n), "-s", str(steps), "-e", "0", "-d", ref_dir]
        return "capsid.sbatch", env, ref, {}, steps
    if args.app == "fortran-heat":
        nx, ny = 512, 256
        # as for capsid: a calibration run, then about 15 s of work
        steps = max(int(h.wall_rate([args.fortran_heat, "-nx", str(nx), "-ny", str(ny), "-s", "200",
                                   "-e", "0", "-d", os.path.join(work, "rate-ckpt")], 200) * 15), 300)
        env = {"FHEAT": args.fortran_heat, "FHEAT_NX": str(nx), "FHEAT_NY": str(ny),
               "FHEAT_STEPS": str(steps), "FHEAT_EVERY": "0"}
        ref = [args.fortran_heat, "-nx", str(nx), "-ny", str(ny), "-s", str(steps), "-e", "0",
               "-d", ref_dir]
        return "fortran-heat.sbatch", env, ref, {}, steps
    # heat-py: apps/heat.py with the built ckpt package
    n = 256
    py = "/usr/bin/python3"
    # 2000 calibration steps (start-up must not dominate the rate) and ~15 s of work;
    # scancel comes at a tenth of the steps, chosen from the job's progress.
    steps = max(int(h.wall_rate([py, os.path.join(h.ROOT, "apps", "heat.py"), "--n", str(n), "--steps", "2000",
                               "--every", "0", "--dir", os.path.join(work, "rate-ckpt")], 2000,
                              {"PYTHONPATH": args.pythonpath}) * 15), 300)
    env = {"PYTHON": py, "CKPT_PYTHONPATH": args.pythonpath, "HEAT_N": str(n), "HEAT_STEPS": str(steps),
           "HEAT_EVERY": "0"}
    ref = [py, os.path.join(h.ROOT, "apps", "heat.py"), "--n", str(n), "--steps", str(steps), "--every", "0",
           "--dir", ref_dir]
    return "heat-py.sbatch", env, ref, {"PYTHONPATH": args.pythonpath}, steps


def main():
    args = h.parse_args()
    h.require_root_and_slurm()
    with h.Cluster("scancel-%s-%s" % (args.app, args.launch)) as c:
        ckdir = os.path.join(c.work, "ckpt")
        template, env, ref_cmd, ref_env, steps = app_setup(args, c.work)
        env.update({"CKPT_HOME": h.ROOT, "CKPT_DIR": ckdir, "CKPT_LAUNCH": args.launch,
                    "CKPT_PROGRESS": "1"})
        job = c.sbatch(os.path.join(h.ROOT, "slurm", template), "--time=10", "--ntasks=2",
                       "--output=" + os.path.join(c.work, "job.out"), env=env)
        ref = h.Reference(None, 0, 0, 2, c.work, cmd=ref_cmd, env_extra=ref_env)
        try:
            c.wait_state(job, {"RUNNING"}, 60)
            # A tenth of the steps done (from the job's progress lines): the ranks caught
            # the signals long ago, and most of the run is still ahead.
            target = steps // 10
            c.wait_for("step %d of %d" % (target, steps),
                       lambda: h.progress(c.read("job.out"))[0] >= target, 300, poll=0.05)
            seen = h.progress(c.read("job.out"))[0]
            h.check(c.job(job)["JobState"] == "RUNNING", "job no longer running before scancel")
            c.run("scancel", "--signal=USR1", "--full", str(job))
            h.log("sent scancel --signal=USR1 --full at step %d" % seen, job)
            info = c.wait_done(job, 300)
            expected = ref.result()
        finally:
            ref.kill()
        time.sleep(3)  # a second requeue would show up here
        info = c.job(job)
        text = c.read("job.out")
        h.log("job %d: %s, Restarts=%s, allocations %s" % (job, info["JobState"], info["Restarts"], h.allocations(text)))
        h.check(info["JobState"] == "COMPLETED", "job ended %s" % info["JobState"])
        h.check(info["Restarts"] == "1", "job restarted %s times, expected exactly 1" % info["Restarts"])
        h.check(len(h.REQUEUE_RE.findall(text)) == 1, "ckpt-run requeued %d times" % len(h.REQUEUE_RE.findall(text)))
        if args.app == "capsid":  # the C API's ckpt_step() leaves the message to the app
            stops = [int(x) for x in h.re.findall(r"^capsid: stopped at step (\d+), checkpointed", text, h.re.M)]
            h.check(len(stops) == 1, "capsid stops: %s" % stops)
        elif args.app == "fortran-heat":
            # the Fortran module exits 75 itself (exit_on_stop) and prints nothing: with
            # -e 0 the stop checkpoint is the only one in the directory
            stops = sorted(int(os.path.basename(f)[5:17]) for f in glob.glob(ckdir + "/ckpt-*.h5"))
            h.check(len(stops) == 1, "fortran-heat checkpoints: %s" % stops)
        else:
            core_stops = h.CKPT_STOP_RE.findall(text)
            h.check([r for _, r in core_stops] == ["signal"], "ckpt stops: %s" % core_stops)
            stops = [int(x) for x, _ in core_stops]
        h.check(seen <= stops[0] < steps, "checkpoint on stop at step %d of %d (scancel at step %d)"
                % (stops[0], steps, seen))
        h.check(h.restored(text) == stops, "restored %s, stopped at %s" % (h.restored(text), stops))
        h.check([a[1] for a in h.allocations(text)] == ["unset", "1"],
                "allocations in the log: %s" % h.allocations(text))
        if args.app == "heat":
            h.check(h.STOP_RE.findall(text) == ["signal"], "heat stops: %s" % h.STOP_RE.findall(text))
            h.check(os.path.exists(os.path.join(ckdir, "ckpt-%012d.h5" % steps)), "no final checkpoint in %s: %s"
                    % (ckdir, sorted(glob.glob(ckdir + "/*"))))
        got = h.result_lines(text)
        h.log("result %s, uninterrupted %s" % (got, expected))
        h.check(got == [expected], "result %s differs from the uninterrupted run's %s" % (got, expected))


if __name__ == "__main__":
    h.run_main(main)
