#!/usr/bin/python3
"""Corruption: damage real checkpoints (flipped bytes in data, block tables, checksums,
attributes, object headers, heaps and the superblock; truncation; deleted, renamed and
foreign files; a garbled LATEST pointer; junk in the temp area) and check that restore
detects the damage and falls back to the newest intact checkpoint bit for bit, that
ckpt::verify (and `ckpt verify` when the CLI is built) reports the damaged file, and that
nothing crashes or hangs.

Each case is a copy of a pristine directory with checkpoints of steps 1, 2 and 3 written
by fault_app on 2 ranks. All cases are restored in one MPI job (fault_app --cases).

  corrupt.py --app build/bin/fault_app [--cli build/bin/ckpt] [--json out.json]
"""

import argparse
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402

import h5py  # noqa: E402

NP = 2
N = 64  # rows of u and w


def flip(path, off, mask=0x5A):
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        if not b:
            raise ValueError("offset %d beyond the end of %s" % (off, path))
        f.seek(off)
        f.write(bytes([b[0] ^ mask]))


def zero(path, off, n):
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(b"\0" * n)


def find_after(data, needle, pattern, window=160):
    """Offset of `pattern` in the `window` bytes after the first occurrence of `needle`."""
    i = data.find(needle)
    if i < 0:
        return None
    j = data.find(pattern, i + len(needle), i + len(needle) + window)
    return None if j < 0 else j


class Layout:
    """Where things lie in one checkpoint file (read with h5py before any damage)."""

    def __init__(self, path):
        self.path = path
        self.size = os.path.getsize(path)
        with open(path, "rb") as fh:
            self.data = fh.read()
        with h5py.File(path, "r") as f:
            self.step = int(f.attrs["step"])
            self.attrs = dict(f.attrs)
            self.datasets = {}
            self.headers = {}
            for name in ["u", "w", "t", "params", "rng"]:
                d = f[name]
                self.datasets[name] = (d.id.get_offset(), d.id.get_storage_size())
                i = h5py.h5o.get_info(d.id)
                self.headers[name] = (i.addr, i.hdr.space.total)
            for fld in ["u", "w", "t", "params", "rng"]:
                for tab in f["_ckpt/" + fld]:
                    d = f["_ckpt/%s/%s" % (fld, tab)]
                    self.datasets["_ckpt/%s/%s" % (fld, tab)] = (d.id.get_offset(), d.id.get_storage_size())
            i = h5py.h5o.get_info(f.id)
            self.headers["/"] = (i.addr, i.hdr.space.total)
            i = h5py.h5o.get_info(f["_ckpt"].id)
            self.headers["_ckpt"] = (i.addr, i.hdr.space.total)


def attr_value_offsets(lay):
    """Offsets of the stored values of the root attributes (numbers after their names in
    the object header, strings in the global heap)."""
    a = lay.attrs
    out = {}
    d = lay.data
    out["step"] = find_after(d, b"step\0", struct.pack("<q", int(a["step"])))
    out["time"] = find_after(d, b"time\0", struct.pack("<d", float(a["time"])))
    out["nranks"] = find_after(d, b"nranks\0", struct.pack("<i", int(a["nranks"])))
    out["ckpt_format_version"] = find_after(d, b"ckpt_format_version\0", struct.pack("<ii", 1, 0))
    out["ckpt_header_checksum"] = find_after(d, b"ckpt_header_checksum\0", struct.pack("<Q", int(a["ckpt_header_checksum"])))
    for k in ["created", "meta.app", "ckpt_library_version", "ckpt_checksum", "ckpt_format"]:
        v = a[k]
        v = v.encode() if isinstance(v, str) else bytes(v)
        # Variable-length strings live in the global heap collection ("GCOL").
        g = d.find(b"GCOL")
        i = d.find(v, g if g >= 0 else 0)
        out[k] = i if i >= 0 else None
    return out


class Suite:
    def __init__(self, a):
        self.a = a
        self.work = a.work or tempfile.mkdtemp(prefix="ckpt-corrupt-")
        self.env = fl.mpi_env({"CKPT_QUIET": "1"}, tmpdir=os.path.join(self.work, "ompi"))
        self.pristine = os.path.join(self.work, "pristine")
        self.cases = []  # dicts: name, dir, damaged (files), expect (step or None or "error:<code>")
        self.rnd = random.Random(a.seed)

    def make_pristine(self):
        rc, out = fl.run([self.a.app, "--dir", self.pristine, "--steps", "3", "--every", "1", "--keep", "0",
                          "--n", str(N)], np=NP, env=self.env)
        if rc != 0 or fl.committed(self.pristine) != [3, 2, 1]:
            raise SystemExit("could not write the pristine checkpoints: rc=%s %s" % (rc, out))
        for n in os.listdir(self.pristine):
            if n in (".lock", "ckpt-stats.jsonl"):
                os.remove(os.path.join(self.pristine, n))
        self.lay = {s: Layout(os.path.join(self.pristine, fl.ckpt_name(s))) for s in (1, 2, 3)}

    def case(self, name, expect, damage, damaged=(3,)):
        """damage(dir) changes the copy; expect: the step restore must load (bit for bit),
        or "none" (nothing to restore), or "error:<code>"."""
        d = os.path.join(self.work, "case%03d" % len(self.cases))
        shutil.copytree(self.pristine, d)
        files = damage(d)
        if files is None:
            files = [os.path.join(d, fl.ckpt_name(s)) for s in damaged]
        elif not isinstance(files, list):
            files = []
        self.cases.append({"name": name, "dir": d, "expect": expect, "files": files})

    # ---------------------------------------------------------------------------------
    def build_cases(self):
        L3 = self.lay[3]
        p3 = lambda d: os.path.join(d, fl.ckpt_name(3))

        # 1. Flipped bytes in the raw data of every field and every table (first, middle, last).
        for ds, (off, size) in sorted(L3.datasets.items()):
            for where, o in (("first", 0), ("middle", size // 2), ("last", size - 1)):
                if size <= 0:
                    continue
                self.case("flip %s byte of dataset %s" % (where, ds), 2,
                          lambda d, o=off + o: flip(p3(d), o))
        # A few random data bytes of u and w, and a random bit.
        for ds in ("u", "w"):
            off, size = L3.datasets[ds]
            for k in range(4):
                o = off + self.rnd.randrange(size)
                bit = 1 << self.rnd.randrange(8)
                self.case("flip bit %d at random offset %d of %s" % (bit, o - off, ds), 2,
                          lambda d, o=o, bit=bit: flip(p3(d), o, bit))
        # A zeroed 4 KiB page in the data (a lost write).
        off, size = L3.datasets["u"]
        self.case("zero a 4 KiB page of u", 2, lambda d: zero(p3(d), off + 4096, 4096))

        # 2. Root attribute values.
        for k, o in sorted(attr_value_offsets(L3).items()):
            if o is None:
                print("note: value of attribute %s not located; case skipped" % k)
                continue
            expect = 2
            if k in ("ckpt_format_version", "ckpt_checksum"):
                # A flipped version or checksum-algorithm name reads as a newer format and is
                # refused (not skipped); with HDF5 1.8 headers their checksum catches it first.
                expect = (2, "error:unsupported_version")
            self.case("flip the value of root attribute %s" % k, expect, lambda d, o=o: flip(p3(d), o, 0x01))
        # Attribute names.
        for nm in [b"ckpt_format\0", b"nranks\0", b"step\0", b"ckpt_header_checksum\0", b"ckpt_kind\0"]:
            i = L3.data.find(nm)
            if i >= 0:
                self.case("flip a byte of attribute name %s" % nm.decode().rstrip("\0"), 2,
                          lambda d, i=i: flip(p3(d), i + 1, 0x20))
        # ckpt_kind values ("distributed", "replicated", "per_rank") in the global heap.
        for v in [b"distributed", b"replicated", b"per_rank"]:
            i = L3.data.find(v, L3.data.find(b"GCOL"))
            if i >= 0:
                self.case("flip a byte of a field's kind '%s'" % v.decode(), 2, lambda d, i=i: flip(p3(d), i + 2, 0x01))

        # 3. Object headers of the root group, _ckpt and every dataset: version byte,
        #    message count, header size, and the first message's type.
        for obj, (addr, total) in sorted(L3.headers.items()):
            for label, rel in (("version byte", 0), ("message count", 2), ("header size", 8), ("first message type", 16)):
                self.case("flip %s of the object header of %s" % (label, obj), 2,
                          lambda d, o=addr + rel: flip(p3(d), o, 0x41))

        # 4. HDF5 structures by signature: symbol-table nodes, B-trees, local and global heaps.
        for sig in [b"TREE", b"HEAP", b"SNOD", b"GCOL", b"OHDR", b"OCHK", b"FRHP", b"FHDB", b"BTHD", b"BTLF", b"FSHD"]:
            positions = []
            i = L3.data.find(sig)
            while i >= 0 and len(positions) < 3:
                positions.append(i)
                i = L3.data.find(sig, i + 1)
            for k, i in enumerate(positions):
                self.case("flip the %s signature #%d" % (sig.decode(), k), 2, lambda d, i=i: flip(p3(d), i, 0x20))
        # The string heap's free-space object with size 0: HDF5 1.10 loops forever on it
        # (the fuzzer's first find); restore and verify must refuse it, not hang.
        g = L3.data.find(b"GCOL")
        if g >= 0:
            q = g + 16
            while q + 16 <= g + struct.unpack("<Q", L3.data[g + 8:g + 16])[0]:
                idx = struct.unpack("<H", L3.data[q:q + 2])[0]
                osz = struct.unpack("<Q", L3.data[q + 8:q + 16])[0]
                if idx == 0:
                    self.case("string heap free-space object of size 0 (HDF5 hang)", 2,
                              lambda d, q=q: zero(p3(d), q + 8, 8))
                    break
                q += 16 + (osz + 7) // 8 * 8
        # Field names in the local heap of the root group.
        for nm in [b"params\0", b"rng\0"]:
            i = L3.data.find(nm)
            if i >= 0:
                self.case("flip a byte of the link name %s" % nm.decode().rstrip("\0"), 2,
                          lambda d, i=i: flip(p3(d), i, 0x01))

        # 5. Superblock.
        for label, o in (("signature", 0), ("signature end", 7), ("version", 8), ("size of offsets", 13),
                         ("size of lengths", 14), ("base address", 24), ("end-of-file address", 40),
                         ("end-of-file address high byte", 46), ("root link name offset", 56),
                         ("root object header address", 64)):
            self.case("flip the superblock %s" % label, 2, lambda d, o=o: flip(p3(d), o, 0x10))

        # 6. Truncation.
        size = L3.size
        for cut in [0, 1, 8, 100, 512, 2048, size // 8, size // 4, size // 2, 3 * size // 4, size - 4096,
                    size - 1]:
            self.case("truncate the newest file to %d of %d bytes" % (cut, size), 2,
                      lambda d, cut=cut: os.truncate(p3(d), cut))
        self.case("truncate the two newest files to half", 1,
                  lambda d: [os.truncate(os.path.join(d, fl.ckpt_name(s)), size // 2) for s in (3, 2)] and None,
                  damaged=(3, 2))
        self.case("flip data of all three checkpoints", "error:no_valid_checkpoint",
                  lambda d: [flip(os.path.join(d, fl.ckpt_name(s)), self.lay[s].datasets["u"][0] + 5)
                             for s in (1, 2, 3)] and None, damaged=(1, 2, 3))
        self.case("overwrite the newest file with random bytes of the same size", 2,
                  lambda d: open(p3(d), "wb").write(os.urandom(size)) and None)
        self.case("replace the newest file by an empty file", 2, lambda d: open(p3(d), "wb").close())

        # 7. Deleted, renamed and foreign files.
        self.case("delete the newest file", 2, lambda d: os.remove(p3(d)) or [], damaged=())
        self.case("delete the middle file", 3, lambda d: os.remove(os.path.join(d, fl.ckpt_name(2))) or [],
                  damaged=())
        self.case("delete every checkpoint file (fresh start)", "none",
                  lambda d: [os.remove(os.path.join(d, fl.ckpt_name(s))) for s in (1, 2, 3)] and [], damaged=())
        self.case("older file renamed to a newer step (name/step mismatch)", 3,
                  lambda d: [shutil.copy(os.path.join(d, fl.ckpt_name(2)), os.path.join(d, fl.ckpt_name(4))),
                             os.path.join(d, fl.ckpt_name(4))][1:], damaged=())
        self.case("a text file named as a newer checkpoint", 3,
                  lambda d: [open(os.path.join(d, fl.ckpt_name(9)), "w").write("not HDF5\n"),
                             os.path.join(d, fl.ckpt_name(9))][1:], damaged=())
        self.case("a foreign HDF5 file named as a newer checkpoint", 3, self.foreign_h5, damaged=())

        # 8. LATEST: a hint only; restore scans the directory.
        latest = lambda d: os.path.join(d, "LATEST")
        for label, content in (("empty", b""), ("garbage", b"garbage\n"), ("binary junk", os.urandom(64)),
                               ("a missing step", b"ckpt-000000000099.h5\n"), ("an older step", b"ckpt-000000000001.h5\n"),
                               ("a path outside", b"../../etc/passwd\n")):
            self.case("LATEST holds %s" % label, 3,
                      lambda d, c=content: open(latest(d), "wb").write(c) and [], damaged=())
        self.case("LATEST deleted", 3, lambda d: os.remove(latest(d)) or [], damaged=())
        self.case("LATEST is a directory", 3, lambda d: (os.remove(latest(d)), os.mkdir(latest(d))) and [], damaged=())

        # 9. The temp area: junk and complete-but-uncommitted temp files are never used.
        tmp = lambda d, s: os.path.join(d, ".ckpt-%012d.h5.tmp" % s)
        self.case("garbage temp file of a newer step", 3,
                  lambda d: open(tmp(d, 4), "wb").write(os.urandom(5000)) and [], damaged=())
        self.case("complete but uncommitted temp file of a newer step", 3,
                  lambda d: shutil.copy(p3(d), tmp(d, 4)) and [], damaged=())
        self.case("half-written temp file of a newer step", 3,
                  lambda d: (shutil.copy(p3(d), tmp(d, 4)), os.truncate(tmp(d, 4), size // 2)) and [], damaged=())
        self.case("garbage .LATEST.tmp", 3, lambda d: open(os.path.join(d, ".LATEST.tmp"), "wb").write(b"\xff\x00junk") and [],
                  damaged=())
        self.case("a directory named like a newer checkpoint", 3,
                  lambda d: os.mkdir(os.path.join(d, fl.ckpt_name(8))) or [], damaged=())
        self.case("a symlink to /dev/zero named like a newer checkpoint", 3,
                  lambda d: os.symlink("/dev/zero", os.path.join(d, fl.ckpt_name(8))) or [], damaged=())
        self.case("a leftover .corrupt file of a newer step", 3,
                  lambda d: shutil.copy(p3(d), os.path.join(d, fl.ckpt_name(7) + ".corrupt")) and [], damaged=())

    def foreign_h5(self, d):
        p = os.path.join(d, fl.ckpt_name(9))
        with h5py.File(p, "w") as f:
            f["u"] = [1, 2, 3]
            f.attrs["ckpt_format"] = "not-ckpt"
        return [p]

    # ---------------------------------------------------------------------------------
    def verify_files(self, files):
        """ckpt::verify (and `ckpt verify` when built) of each file: {path: detected?}."""
        out = {}
        if not files:
            return out
        rc, lines = fl.run([self.a.app, "--verify"] + files, np=1, env=self.env)
        for j in fl.json_lines(lines):
            out[j["file"]] = {"lib": not j["ok"], "reason": j["reason"]}
        if self.a.cli:
            for p in files:
                r = subprocess.run([self.a.cli, "verify", p], capture_output=True, env=self.env, timeout=60)
                out.setdefault(p, {})["cli"] = r.returncode != 0 and r.returncode < 128
        return out

    def run(self):
        self.make_pristine()
        self.build_cases()
        # verify sees the damaged files before restore sets them aside.
        damaged = [f for c in self.cases for f in c["files"] if os.path.lexists(f)]
        ver = self.verify_files(damaged)
        listing = os.path.join(self.work, "cases.txt")
        with open(listing, "w") as f:
            for c in self.cases:
                f.write(c["dir"] + "\n")
        j = fl.Job([self.a.app, "--cases", listing, "--n", str(N)], np=NP, env=self.env,
                   stderr_path=os.path.join(self.work, "restore.stderr"))
        rc = j.wait(900)
        results = {r["dir"]: r for r in fl.json_lines(j.all)}
        if rc != 0:
            print("FAIL: the restore job exited with %s (crash or hang?)" % rc)
        injected = detected = harmless = passed = unused = 0
        unused_names = []
        failures = []
        for c in self.cases:
            r = results.get(c["dir"])
            injected += 1
            ok = True
            why = ""
            if r is None:
                ok, why = False, "no result (the restore job crashed or hung here)"
            else:
                e = c["expect"]
                if isinstance(e, tuple):
                    e = e[0] if r["code"] == "ok" else e[1]
                if isinstance(e, int):
                    if r["code"] != "ok" or r["restored"] != e or not r["bitexact"]:
                        ok, why = False, "expected step %d bit-exact, got %s" % (e, r)
                elif e == "none":
                    if r["code"] != "ok" or r["restored"] != -1:
                        ok, why = False, "expected nothing to restore, got %s" % r
                else:
                    if r["code"] != e.split(":")[1]:
                        ok, why = False, "expected %s, got %s" % (e, r)
            vlib = [ver.get(f, {}).get("lib") for f in c["files"]]
            vcli = [ver.get(f, {}).get("cli") for f in c["files"]] if self.a.cli else []
            if (not ok and r is not None and isinstance(c["expect"], int) and r["code"] == "ok"
                    and r["restored"] == 3 and r["bitexact"] and c["files"] and not any(vlib) and not any(vcli)):
                # Damage HDF5 never reads (e.g. v1 object-header message counts, the root
                # entry's unused name offset): every checksum still matches and the newest
                # checkpoint restores bit for bit. Counted apart, never as detected.
                unused += 1
                unused_names.append(c["name"])
                passed += 1
                c["result"], c["ok"] = r, True
                continue
            verify_detected = all(v is True for v in vlib) and (not vcli or all(v is True for v in vcli))
            if ok and c["files"] and not verify_detected:
                # Restore fell back, yet verify called a damaged file good: a verify bug.
                ok, why = False, "verify did not report the damaged file(s): %s" % [ver.get(f) for f in c["files"]]
            if ok:
                passed += 1
                if c["files"] and verify_detected:
                    detected += 1
                elif not c["files"]:
                    harmless += 1  # nothing to detect in a file: restore chose correctly
            else:
                failures.append((c["name"], why))
            c["result"] = r
            c["ok"] = ok
        file_cases = sum(1 for c in self.cases if c["files"])
        summary = {"cases": injected, "passed": passed, "file_damage_cases": file_cases,
                   "detected_by_restore_and_verify": detected,
                   "directory_cases_restored_correctly": harmless,
                   "undetected_but_unused_bytes": unused, "undetected_cases": unused_names,
                   "cli_verify_used": bool(self.a.cli), "failures": failures}
        for name, why in failures:
            print("FAIL: %s: %s" % (name, why))
        print(json.dumps({k: v for k, v in summary.items() if k != "failures"}, indent=1))
        print("corruptions detected / injected (damaged files): %d / %d" % (detected, file_cases))
        print("damage to bytes HDF5 does not use (newest restored bit-exact, all checksums match): %d" % unused)
        print("directory-level cases (LATEST, temp area, deleted/foreign files) handled: %d / %d"
              % (harmless, injected - file_cases))
        if self.a.json:
            with open(self.a.json, "w") as f:
                json.dump({"summary": summary, "cases": [{k: c[k] for k in ("name", "expect", "ok", "result")}
                                                         for c in self.cases]}, f, indent=1)
        if not failures and not self.a.keep_work:
            shutil.rmtree(self.work, ignore_errors=True)
        return 0 if not failures and injected >= 100 else 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--app", required=True)
    p.add_argument("--cli", help="the ckpt command-line tool, for `ckpt verify`")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--work")
    p.add_argument("--keep-work", action="store_true")
    p.add_argument("--json")
    a = p.parse_args()
    if a.cli and not os.path.exists(a.cli):
        a.cli = None
    sys.exit(Suite(a).run())


if __name__ == "__main__":
    main()
