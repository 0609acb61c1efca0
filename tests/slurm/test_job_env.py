#!/usr/bin/python3
"""What ckpt reads about its SLURM job (libckpt/src/job_env.cpp), checked inside real jobs
against what slurmctld says: the end time of a 2-minute job is its StartTime + 120 s (read
through `scontrol show job`, Slurm 22.05 has no SLURM_JOB_END_TIME); an UNLIMITED job has
no end time; SLURM_JOB_END_TIME wins where it is set; the restart count is 0 in the first
allocation and 1 after `scontrol requeue`. Also the parser on saved scontrol output."""
import os
import re
import subprocess
import time
import harness as h


def probe_line(text, restart):
    m = re.findall(r"^restart=%s (end_time=\S+ restart_count=\d+)$" % restart, text, re.M)
    h.check(len(m) == 1, "probe output for restart %s not found in %r" % (restart, text))
    return dict(kv.split("=") for kv in m[0].split())


def local_ts(s):
    return int(time.mktime(time.strptime(s, "%Y-%m-%dT%H:%M:%S")))


def main():
    args = h.parse_args()
    h.require_root_and_slurm()
    # Parser cases on text that scontrol prints.
    cases = {"   StartTime=2026-11-21T12:34:09 EndTime=2026-11-21T12:36:09 Deadline=N/A\n":
             str(local_ts("2026-11-21T12:36:09")),
             "   StartTime=Unknown EndTime=Unknown Deadline=N/A\n": "none",
             "   StartTime=None EndTime=None\n": "none",
             "   JobState=PENDING\n": "none"}
    tmp = os.path.join("/tmp", "ckpt-job-env-%d.txt" % os.getpid())
    try:
        for text, want in cases.items():
            open(tmp, "w").write(text)
            out = subprocess.run([args.probe, "--parse", tmp], capture_output=True, text=True).stdout.strip()
            h.check(out == "end_time=" + want, "parse %r gave %r, expected %r" % (text, out, want))
    finally:
        os.unlink(tmp)

    with h.Cluster("jobenv") as c:
        wrap = 'echo "restart=${SLURM_RESTART_COUNT:-unset} $(%s)"' % args.probe
        script = os.path.join(c.work, "probe.sbatch")
        with open(script, "w") as f:
            f.write("#!/bin/bash\n%s\n" % wrap +
                    'if [ -z "${SLURM_RESTART_COUNT:-}" ] && [ "${REQUEUE_ONCE:-0}" = 1 ]; then\n'
                    '  scontrol requeue "$SLURM_JOB_ID"; sleep 60\nfi\n')
        a = c.sbatch(script, "--time=2", "--output=" + os.path.join(c.work, "a.out"))
        b = c.sbatch(script, "--time=UNLIMITED", "--output=" + os.path.join(c.work, "b.out"))
        e = c.sbatch(script, "--time=2", "--output=" + os.path.join(c.work, "e.out"),
                     env={"SLURM_JOB_END_TIME": "2000000000"})
        r = c.sbatch(script, "--time=2", "--requeue", "--open-mode=append",
                     "--output=" + os.path.join(c.work, "r.out"), env={"REQUEUE_ONCE": "1"})
        infos = {j: c.wait_done(j, 120) for j in (a, b, e, r)}
        for j, i in infos.items():
            h.check(i["JobState"] == "COMPLETED", "job %d ended %s" % (j, i["JobState"]))

        pa = probe_line(c.read("a.out"), "unset")
        want = local_ts(infos[a]["StartTime"]) + 120
        h.log("2-minute job: probe end_time=%s, StartTime+120=%d" % (pa["end_time"], want))
        h.check(pa["end_time"] == str(want) and pa["restart_count"] == "0", "job a: %s" % pa)

        pb = probe_line(c.read("b.out"), "unset")
        h.check(pb["end_time"] == "none", "UNLIMITED job: end_time=%s, expected none" % pb["end_time"])

        pe = probe_line(c.read("e.out"), "unset")
        h.check(pe["end_time"] == "2000000000", "SLURM_JOB_END_TIME not used: %s" % pe)

        h.check(infos[r]["Restarts"] == "1", "requeued job: Restarts=%s" % infos[r]["Restarts"])
        rtext = c.read("r.out")
        p0, p1 = probe_line(rtext, "unset"), probe_line(rtext, "1")
        h.check(p0["restart_count"] == "0" and p1["restart_count"] == "1", "restart counts %s %s" % (p0, p1))
        want = local_ts(infos[r]["StartTime"]) + 120
        h.check(p1["end_time"] == str(want), "after requeue end_time=%s, expected %d" % (p1["end_time"], want))
        h.check(int(p0["end_time"]) < int(p1["end_time"]), "the requeued allocation has a later end time")


if __name__ == "__main__":
    h.run_main(main)
