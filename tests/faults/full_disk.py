#!/usr/bin/python3
"""Full disk: checkpoints written into a small tmpfs that fills up during a save.

For several amounts of free space (from none to almost enough) a save must end on every
rank with Errc::no_space (no hang), leave no temp file, and leave the previous checkpoint
intact: it verifies and restores bit for bit. After space is freed the next save works and
the directory holds no temp files. Needs root for `mount -t tmpfs` (exit 77 = skipped
otherwise, with the reason).

  full_disk.py --app build/bin/fault_app
"""

import argparse
import json
import random
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402

NP = 2
N = 256  # rows: u and w are 512 KiB each, a checkpoint file is about 1 MiB


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--app", required=True)
    p.add_argument("--np", type=int, default=NP)
    p.add_argument("--concurrent", type=int, default=6, help="saves raced by another writer filling the disk")
    p.add_argument("--json")
    a = p.parse_args()
    work = tempfile.mkdtemp(prefix="ckpt-fulldisk-")
    mnt = os.path.join(work, "mnt")
    os.makedirs(mnt)
    env = fl.mpi_env({"CKPT_QUIET": "1"}, tmpdir=os.path.join(work, "ompi"))
    size_mb = 24
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0755" % size_mb, "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print("SKIPPED: cannot mount a tmpfs here (%s); the full-disk test needs root and mount "
              "rights" % r.stderr.strip())
        shutil.rmtree(work, ignore_errors=True)
        sys.exit(77)
    failures = []
    trials = []
    try:
        d = os.path.join(mnt, "ck")
        filler = os.path.join(mnt, "filler")

        def app(*args, np=a.np, n=N, dd=None):
            j = fl.Job([a.app, "--dir", dd or d, "--n", str(n)] + list(args), np=np, env=env,
                       stderr_path=os.path.join(work, "stderr.log"))
            rc = j.wait(180)
            return rc, j.all

        rc, out = app("--save-once", "--step", "1")
        if rc != 0 or "saved: 1" not in out:
            raise SystemExit("the first save into the tmpfs failed: %s %s" % (rc, out))
        ck_size = os.path.getsize(os.path.join(d, fl.ckpt_name(1)))
        step = 1
        # Free space left for the next save, as a fraction of one checkpoint file.
        for frac in (0.0, 0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98):
            st = os.statvfs(mnt)
            free = st.f_bavail * st.f_frsize
            want_free = int(ck_size * frac)
            fill = max(0, free - want_free)
            with open(filler, "wb") as f:
                try:
                    f.write(b"\0" * fill)
                except OSError:
                    pass
            st = os.statvfs(mnt)
            free_now = st.f_bavail * st.f_frsize
            errlog = os.path.join(work, "stderr.log")
            open(errlog, "w").close()
            rc, out = app("--save-once", "--step", str(step + 1))
            errs = open(errlog, errors="replace").read()
            names = os.listdir(d)
            tmp_left = [n for n in names if n.endswith(".tmp")]
            trial = {"free_bytes": free_now, "checkpoint_bytes": ck_size, "rc": rc,
                     "stdout": [l for l in out if l.startswith(("error", "saved"))],
                     "ranks_reporting_no_space": errs.count("error code=no_space"), "tmp_left": tmp_left}
            why = []
            if rc is None:
                why.append("the save hung")
            elif "saved: %d" % (step + 1) in out:
                # Enough room after all (HDF5 metadata is small): a real, valid checkpoint.
                trial["outcome"] = "fit"
                step += 1
            else:
                trial["outcome"] = "no_space"
                if rc != 13:  # fault_app exits 10 + Errc::no_space; a crash gives 128 + signal
                    why.append("exit status %s (a crash?)" % rc)
                if "error: no_space" not in out:
                    why.append("expected Errc::no_space, got %s" % out)
                if trial["ranks_reporting_no_space"] != a.np:
                    why.append("%d of %d ranks reported no_space" % (trial["ranks_reporting_no_space"], a.np))
                if tmp_left:
                    why.append("temp files left behind: %s" % tmp_left)
                if "no space" not in errs.lower():
                    why.append("the message does not say the disk is full: %s" % errs[-300:])
            os.remove(filler)
            # The newest committed checkpoint is intact and restores bit for bit.
            newest = fl.committed(d)[0]
            rc2, out2 = fl.run([a.app, "--verify", os.path.join(d, fl.ckpt_name(newest))], np=1, env=env)
            ver = fl.json_lines(out2)
            if not ver or not ver[0]["ok"]:
                why.append("the previous checkpoint no longer verifies: %s" % ver)
            rc3, out3 = fl.run([a.app, "--dir", d, "--check-only", "--n", str(N)], np=a.np, env=env)
            res = fl.json_lines(out3)
            if not res or res[0]["restored"] != newest or not res[0]["bitexact"]:
                why.append("restore after the failure gave %s, expected step %d bit-exact" % (res, newest))
            latest = open(os.path.join(d, "LATEST")).read().strip()
            if latest != fl.ckpt_name(newest):
                why.append("LATEST says %s" % latest)
            trial["problems"] = why
            trials.append(trial)
            print(json.dumps(trial))
            failures += why
        # Another writer fills the disk while a save runs (the save found enough room when
        # it started): the data writes hit ENOSPC part way.
        rnd = random.Random(5)
        d2 = os.path.join(mnt, "ck2")
        n2 = 1024  # 4 MiB of payload
        payload2 = 2 * n2 * 256 * 8
        rc, out = app("--save-once", "--step", "1", n=n2, dd=d2)
        if rc != 0:
            failures.append("first save of the concurrent-fill trials failed: %s %s" % (rc, out))
        step2 = 1
        for k in range(a.concurrent):
            errlog = os.path.join(work, "stderr.log")
            open(errlog, "w").close()
            j = fl.Job([a.app, "--dir", d2, "--n", str(n2), "--save-once", "--step", str(step2 + 1)], np=a.np,
                       env=env, stderr_path=errlog)
            tmpname = ".ckpt-%012d.h5.tmp" % (step2 + 1)
            end = time.monotonic() + 60
            # Fill once rank 0 has laid out the file (its size is then the final one) and the
            # ranks write their data. (Filling while HDF5 itself writes the layout can crash
            # the process at exit: an HDF5 1.10 limit, see docs/reliability.md.)
            tp = os.path.join(d2, tmpname)
            while j.p.poll() is None and time.monotonic() < end:
                try:
                    if os.path.getsize(tp) >= payload2:
                        break
                except OSError:
                    pass
                time.sleep(0.0002)
            time.sleep(rnd.uniform(0, 0.005))
            filled = 0
            with open(filler, "wb") as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                        filled += 65536
                except OSError:
                    pass
            rc = j.wait(180)
            errs = open(errlog, errors="replace").read()
            trial = {"concurrent_fill": True, "filled_bytes": filled, "rc": rc,
                     "stdout": [l for l in j.all if l.startswith(("error", "saved"))],
                     "ranks_reporting_no_space": errs.count("error code=no_space"),
                     "tmp_left": [x for x in os.listdir(d2) if x.endswith(".tmp")]}
            why = []
            if rc is None:
                why.append("the save hung")
            elif "saved: %d" % (step2 + 1) in j.all and rc == 0:
                trial["outcome"] = "fit"
                step2 += 1
            else:
                trial["outcome"] = "no_space"
                if rc != 13:
                    why.append("exit status %s (a crash?)" % rc)
                if trial["ranks_reporting_no_space"] != a.np:
                    why.append("%d of %d ranks reported no_space: %s" % (trial["ranks_reporting_no_space"], a.np,
                                                                        errs[-400:]))
                if trial["tmp_left"]:
                    why.append("temp files left behind: %s" % trial["tmp_left"])
            os.remove(filler)
            newest = fl.committed(d2)[0]
            rc3, out3 = fl.run([a.app, "--dir", d2, "--check-only", "--n", str(n2)], np=a.np, env=env)
            res = fl.json_lines(out3)
            if not res or res[0]["restored"] != newest or not res[0]["bitexact"]:
                why.append("restore after the failure gave %s, expected step %d bit-exact" % (res, newest))
            trial["problems"] = why
            trials.append(trial)
            print(json.dumps(trial))
            failures += why
        # With space again, the next save works and leaves no temp file.
        rc, out = app("--save-once", "--step", str(step + 1))
        names = os.listdir(d)
        if rc != 0 or fl.committed(d)[0] != step + 1 or any(n.endswith(".tmp") for n in names):
            failures.append("the save after freeing space failed: rc=%s %s %s" % (rc, out, names))
        no_space = sum(1 for t in trials if t.get("outcome") == "no_space")
        no_space_mid = sum(1 for t in trials if t.get("outcome") == "no_space" and t.get("concurrent_fill"))
        summary = {"trials": len(trials), "failed_with_no_space": no_space, "of_them_disk_filled_during_the_save": no_space_mid,
                   "fit": sum(1 for t in trials if t.get("outcome") == "fit"),
                   "tmpfs_mb": size_mb, "np": a.np, "problems": len(failures)}
        print(json.dumps(summary))
        print("full disk: %d saves hit ENOSPC, each gave no_space on all %d ranks; previous checkpoint "
              "intact: %s" % (no_space, a.np, "yes" if not failures else "NO"))
        if no_space < 4:
            failures.append("only %d trials ran out of space" % no_space)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"summary": summary, "trials": trials}, f, indent=1)
    finally:
        subprocess.run(["umount", mnt])
        shutil.rmtree(work, ignore_errors=True)
    for f in failures:
        print("FAIL: " + f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
