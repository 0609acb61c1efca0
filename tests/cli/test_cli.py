#!/usr/bin/python3
"""Tests of the `ckpt` command-line tool on real checkpoints written by the solvers.

usage: test_cli.py --ckpt BIN --heat BIN --mpiexec BIN [--capsid BIN] --scratch DIR CASE

Each CASE runs the heat solver (and capsid where it applies) under mpiexec into its own
scratch directory, runs `ckpt` on the result, and checks the output against what numpy and
h5py read from the same files, without ckpt. Exit status 0 when every check passes.
"""

import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib

import h5py
import numpy as np

ARGS = None


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def run(cmd, expect=None, env=None, **kw):
    """Runs a command, returns (rc, stdout, stderr); checks the exit status if expect is set."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=full_env,
                       timeout=300, **kw)
    if expect is not None and p.returncode != expect:
        raise Failure(f"{' '.join(map(str, cmd))}: exit {p.returncode}, expected {expect}\n"
                      f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p.returncode, p.stdout, p.stderr


def ckpt(*args, expect=0, **kw):
    return run([ARGS.ckpt, *args], expect=expect, **kw)


def heat(d, n=48, steps=200, every=50, np_=2, env=None):
    e = {"CKPT_QUIET": "1"}
    e.update(env or {})
    run([ARGS.mpiexec, "-n", np_, ARGS.heat, "--n", n, "--steps", steps, "--every", every,
         "--dir", d], expect=0, env=e)


def ckpt_files(d):
    return sorted(f for f in os.listdir(d) if re.fullmatch(r"ckpt-\d{12}\.h5", f))


def step_of(name):
    return int(name[5:17])


def scratch(name):
    d = os.path.join(ARGS.scratch, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def flip_byte_in_block(path, field, block_index):
    """Flips one byte inside the data of the given block of a field (from the block table
    that `ckpt info --json --blocks` reports) and returns that block's rank."""
    _, out, _ = ckpt("info", path, "--json", "--blocks")
    info = json.loads(out)
    f = next(x for x in info["fields"] if x["name"] == field)
    block = f["blocks"][block_index]
    with h5py.File(path, "r") as h:
        d = h[field]
        itemsize = d.dtype.itemsize
        shape = d.shape
        offset = d.id.get_offset()
    check(offset is not None, "test helper expects a contiguous dataset")
    row_elems = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    first = block["offset"][0] * row_elems + (block["count"][0] // 2) * row_elems
    pos = offset + first * itemsize + 3
    with open(path, "r+b") as g:
        g.seek(pos)
        b = g.read(1)
        g.seek(pos)
        g.write(bytes([b[0] ^ 0x5A]))
    return block["rank"]


# ------------------------------------------------------------------------------ cases

def case_list():
    d = scratch("list")
    heat(d, steps=200, every=50, env={"CKPT_KEEP": "0"})
    files = ckpt_files(d)
    check(len(files) == 4, f"expected 4 checkpoints, found {files}")
    _, out, _ = ckpt("list", d)
    rows = [l.split() for l in out.splitlines()[1:] if l.strip()]
    steps = [int(r[0]) for r in rows]
    check(steps == sorted((step_of(f) for f in files), reverse=True), f"list order/steps wrong:\n{out}")
    for r in rows:
        check(r[2] == "2", f"rank count column wrong: {r}")
        check("valid" in r, f"status not valid: {r}")
    check("(LATEST)" in out.splitlines()[1], "newest checkpoint not marked LATEST")
    _, out, _ = ckpt("list", d, "--json")
    recs = [json.loads(l) for l in out.splitlines()]
    check(len(recs) == 4, "one JSON object per checkpoint")
    for rec in recs:
        path = os.path.join(d, rec["file"])
        check(rec["bytes"] == os.path.getsize(path), f"size of {rec['file']}")
        with h5py.File(path, "r") as h:
            check(rec["step"] == int(h.attrs["step"]), "step attribute")
            check(rec["nranks"] == int(h.attrs["nranks"]), "nranks attribute")
        check(rec["status"] == "valid", rec)
    # --no-verify reads metadata only
    _, out, _ = ckpt("list", d, "--no-verify")
    check("unchecked" in out and "valid" not in out, f"--no-verify output:\n{out}")
    # an empty directory is not an error
    e = scratch("list-empty")
    _, out, _ = ckpt("list", e)
    check("no checkpoints" in out, out)


def case_info():
    d = scratch("info")
    heat(d, n=40, steps=100, every=50, np_=2)
    newest = ckpt_files(d)[-1]
    _, out, _ = ckpt("info", d, "--json", "--blocks")
    info = json.loads(out)
    with h5py.File(os.path.join(d, newest), "r") as h:
        check(info["step"] == int(h.attrs["step"]) == 100, f"step {info['step']}")
        check(info["nranks"] == int(h.attrs["nranks"]) == 2, "nranks")
        fmt_attr = h.attrs["ckpt_format"]
        fmt_attr = fmt_attr.decode() if isinstance(fmt_attr, bytes) else str(fmt_attr)
        check(info["format"] == fmt_attr, "format attribute")
        u = next(f for f in info["fields"] if f["name"] == "u")
        check(list(h["u"].shape) == u["shape"] == [40, 40], f"shape {u['shape']}")
        check(u["dtype"] == str(h["u"].dtype) == "float64", "dtype")
    check(u["kind"] == "distributed" and u["nblocks"] == 2, u)
    rows = sorted((b["offset"][0], b["count"][0]) for b in u["blocks"])
    check(rows[0][0] == 0 and rows[0][0] + rows[0][1] == rows[1][0] and sum(c for _, c in rows) == 40,
          f"blocks do not tile the rows: {rows}")
    # text form of an explicit step and of a file path
    _, out, _ = ckpt("info", d, "50")
    check(re.search(r"^step:\s+50$", out, re.M), out)
    check(re.search(r"^\s+u\s+distributed\s+float64\s+\{40, 40\}\s+2\b", out, re.M), out)
    _, out2, _ = ckpt("info", os.path.join(d, ckpt_files(d)[0]))
    check(re.search(r"^step:\s+50$", out2, re.M), out2)


def case_verify_corrupt():
    d = scratch("verify")
    heat(d, n=48, steps=150, every=50, np_=2, env={"CKPT_KEEP": "0"})
    _, out, _ = ckpt("verify", d)
    check(out.count(": ok") == 3 and "3 of 3 checkpoints valid" in out, out)
    newest = os.path.join(d, ckpt_files(d)[-1])
    rank = flip_byte_in_block(newest, "u", 1)
    rc, out, err = ckpt("verify", d, "150", expect=1)
    check("field 'u'" in out and "block 1" in out, f"reason must name field and block:\n{out}")
    check("field 'u'" in err and "block 1" in err, f"reason also on stderr:\n{err}")
    check(f"rank {rank}" in out or "block 1" in out, out)
    rc, out, _ = ckpt("verify", d, expect=1)
    check("2 of 3 checkpoints valid" in out and "restore would use ckpt-000000000100.h5" in out, out)
    _, out, _ = ckpt("verify", d, "100")
    check(": ok" in out, out)
    _, out, _ = ckpt("list", d)
    check(re.search(r"^\s+150 .*corrupt: .*field 'u' block 1", out, re.M), out)
    # a truncated checkpoint is invalid too
    t = os.path.join(d, ckpt_files(d)[0])
    size = os.path.getsize(t)
    with open(t, "r+b") as g:
        g.truncate(size // 2)
    rc, out, _ = ckpt("verify", t, expect=1)
    check("INVALID" in out, out)
    # progress goes to stderr when asked for
    _, _, err = ckpt("verify", d, "100", "--progress")
    check("verifying" in err and "100%" in err, err)


def case_diff():
    d = scratch("diff")
    heat(d, n=32, steps=100, every=50, np_=2)
    a, b = (os.path.join(d, f) for f in ckpt_files(d))
    with h5py.File(a, "r") as ha, h5py.File(b, "r") as hb:
        ua, ub = ha["u"][...], hb["u"][...]
    expected_max = float(np.max(np.abs(ua - ub)))
    expected_n = int(np.count_nonzero(ua != ub))
    check(expected_n > 0, "two checkpoints of a running solver differ")
    _, out, _ = ckpt("diff", a, b, expect=1)
    m = re.search(r"^u: DIFFERS: (\d+) of (\d+) elements, max abs difference (\S+) at \{(\d+), (\d+)\}", out, re.M)
    check(m, out)
    check(int(m.group(1)) == expected_n and int(m.group(2)) == ua.size, out)
    check(abs(float(m.group(3)) - expected_max) <= 1e-5 * expected_max, f"{m.group(3)} vs {expected_max}")
    i, j = int(m.group(4)), int(m.group(5))
    check(abs(abs(ua[i, j] - ub[i, j]) - expected_max) <= 1e-12 * expected_max, "index of the max difference")
    # within a tolerance above the max difference the checkpoints count as equal
    _, out, _ = ckpt("diff", a, b, "--tolerance", repr(expected_max * 1.01), expect=0)
    check("equal within tolerance" in out, out)
    # bitwise resume: a run stopped at step 50 and resumed ends equal to an uninterrupted one
    full = scratch("diff-full")
    heat(full, n=32, steps=100, every=50, np_=2)
    resumed = scratch("diff-resumed")
    heat(resumed, n=32, steps=50, every=50, np_=2)
    heat(resumed, n=32, steps=100, every=50, np_=1)  # resumed on a different rank count
    _, out, _ = ckpt("diff", full, resumed, expect=0)
    check("u: identical" in out and "checkpoints are equal" in out, out)
    # a different grid size is a type difference
    other = scratch("diff-other")
    heat(other, n=24, steps=50, every=50, np_=1)
    _, out, _ = ckpt("diff", full, other, expect=1)
    check("u: differs in type" in out, out)


def case_prune():
    d = scratch("prune")
    heat(d, n=32, steps=250, every=50, np_=2, env={"CKPT_KEEP": "0"})
    files = ckpt_files(d)
    check(len(files) == 5, files)
    # the two newest are corrupt: the newest valid one is the third newest
    flip_byte_in_block(os.path.join(d, files[-1]), "u", 0)
    flip_byte_in_block(os.path.join(d, files[-2]), "u", 1)
    _, out, _ = ckpt("prune", d, "--keep", "1", "--dry-run")
    check(ckpt_files(d) == files, "dry run deleted something")
    check(len(re.findall(r"^would delete ckpt-", out, re.M)) == 3, out)
    _, out, _ = ckpt("prune", d, "--keep", "1")
    check(ckpt_files(d) == [files[-3], files[-1]], f"kept {ckpt_files(d)}, out:\n{out}")
    check("newest valid checkpoint" in out, out)
    _, out, _ = ckpt("verify", d, str(step_of(files[-3])))
    # --keep 2 on what is left deletes nothing
    _, out, _ = ckpt("prune", d, "--keep", "2")
    check(ckpt_files(d) == [files[-3], files[-1]], ckpt_files(d))
    # when nothing verifies, nothing is deleted
    flip_byte_in_block(os.path.join(d, files[-3]), "u", 0)
    rc, out, err = ckpt("prune", d, "--keep", "1", expect=1)
    check(ckpt_files(d) == [files[-3], files[-1]], "prune deleted with no valid checkpoint")
    check("deleting nothing" in err, err)
    rc, _, err = ckpt("prune", d, "--keep", "0", expect=2)
    check("at least 1" in err, err)


def check_xdmf(xdmf_path, field, expected):
    """Parses the XDMF file as XML and reads the data it names with h5py alone."""
    tree = ET.parse(xdmf_path)
    root = tree.getroot()
    check(root.tag == "Xdmf", root.tag)
    topo = root.find("./Domain/Grid/Topology")
    check(topo is not None and topo.get("TopologyType") in ("2DCoRectMesh", "3DCoRectMesh"), "topology")
    attr = root.find("./Domain/Grid/Attribute")
    check(attr is not None and attr.get("Name") == field and attr.get("Center") == "Node", "attribute")
    item = attr.find("DataItem")
    check(item.get("Format") == "HDF", "HDF data item")
    ref = item.text.strip()
    h5name, dset = ref.rsplit(":", 1)
    h5path = h5name if os.path.isabs(h5name) else os.path.join(os.path.dirname(xdmf_path), h5name)
    check(os.path.exists(h5path), f"XDMF names a missing file {h5path}")
    dims = [int(x) for x in item.get("Dimensions").split()]
    grid = [int(x) for x in topo.get("Dimensions").split()]
    check(int(np.prod(grid)) == int(np.prod(dims)), f"grid {grid} vs data {dims}")
    with h5py.File(h5path, "r") as h:
        check(dset.lstrip("/") in h, f"XDMF names a missing dataset {dset}")
        data = h[dset][...]
    check(list(data.shape) == dims, f"dataset shape {data.shape} vs Dimensions {dims}")
    check(int(item.get("Precision")) == data.dtype.itemsize, "Precision")
    if data.dtype.kind == "f":
        check(item.get("NumberType") == "Float", "NumberType")
    check(np.array_equal(data, expected), "XDMF data differs from the checkpoint")


def case_export():
    d = scratch("export")
    heat(d, n=36, steps=100, every=50, np_=2)
    out_dir = os.path.join(d, "out")
    os.makedirs(out_dir)
    ck = os.path.join(d, ckpt_files(d)[0])  # step 50
    with h5py.File(ck, "r") as h:
        u = h["u"][...]
    prefix = os.path.join(out_dir, "u50")
    _, out, _ = ckpt("export", d, "50", "--field", "u", "-o", prefix)
    arr = np.load(prefix + ".npy")
    check(arr.dtype == np.float64 and arr.shape == (36, 36) and np.array_equal(arr, u), "npy content")
    with h5py.File(prefix + ".h5", "r") as h:
        check(np.array_equal(h["u"][...], u), "h5 copy content")
        check(int(h.attrs["step"]) == 50, "step attribute of the copy")
    check_xdmf(prefix + ".xdmf", "u", u)
    # --link: the XDMF file points into the checkpoint itself
    _, out, _ = ckpt("export", ck, "--field", "u", "-o", os.path.join(out_dir, "linked"), "--link")
    check(not os.path.exists(os.path.join(out_dir, "linked.h5")), "--link wrote a copy")
    check_xdmf(os.path.join(out_dir, "linked.xdmf"), "u", u)
    # default prefix: FIELD-STEP in the current directory
    _, out, _ = ckpt("export", d, "--field", "u", cwd=out_dir)
    check(os.path.exists(os.path.join(out_dir, "u-000000000100.npy")), os.listdir(out_dir))
    rc, _, err = ckpt("export", d, "--field", "nope", expect=2)
    check("no field 'nope'" in err and "fields: u" in err, err)
    if ARGS.capsid:
        c = scratch("export-capsid")
        run([ARGS.mpiexec, "-n", "2", ARGS.capsid, "-n", "72", "-s", "60", "-e", "30", "-d", c],
            expect=0, env={"CKPT_QUIET": "1"})
        newest = os.path.join(c, ckpt_files(c)[-1])
        with h5py.File(newest, "r") as h:
            x = h["x"][...]
        _, out, _ = ckpt("export", c, "--field", "x", "-o", os.path.join(c, "x"))
        check(np.array_equal(np.load(os.path.join(c, "x.npy")), x), "capsid npy")
        check_xdmf(os.path.join(c, "x.xdmf"), "x", x)
        # a scalar gets .npy and .h5 but no XDMF grid
        _, out, _ = ckpt("export", c, "--field", "h", "-o", os.path.join(c, "h"))
        check("no XDMF file" in out and not os.path.exists(os.path.join(c, "h.xdmf")), out)
        with h5py.File(newest, "r") as h:
            check(np.load(os.path.join(c, "h.npy")) == h["h"][()], "capsid scalar h")


def case_python_heat():
    """Checkpoints written by the Python solver (apps/heat.py) through the Python package:
    every read-only subcommand works on them, and the state equals the C++ solver's."""
    check(ARGS.heat_py and ARGS.pythonpath, "needs --heat-py and --pythonpath")
    d = scratch("python-heat")
    py = os.path.join(d, "py")
    run([ARGS.mpiexec, "-n", "2", sys.executable, ARGS.heat_py, "--n", "32", "--steps", "100",
         "--every", "50", "--dir", py], expect=0,
        env={"CKPT_QUIET": "1", "PYTHONPATH": ARGS.pythonpath})
    check([step_of(f) for f in ckpt_files(py)] == [50, 100], ckpt_files(py))
    _, out, _ = ckpt("list", py)
    check(out.count(" valid") == 2, out)
    _, out, _ = ckpt("info", py, "--json")
    info = json.loads(out)
    check("python_state" in info["metadata"], info["metadata"])
    u = next(f for f in info["fields"] if f["name"] == "u")
    check(u["kind"] == "distributed" and u["shape"] == [32, 32], u)
    ckpt("verify", py)
    _, out, _ = ckpt("export", py, "--field", "u", "-o", os.path.join(d, "u"))
    with h5py.File(os.path.join(py, ckpt_files(py)[-1]), "r") as h:
        check(np.array_equal(np.load(os.path.join(d, "u.npy")), h["u"][...]), "npy of heat.py")
    check_xdmf(os.path.join(d, "u.xdmf"), "u", np.load(os.path.join(d, "u.npy")))
    # the same problem solved by the C++ solver ends in the same bits
    cxx = os.path.join(d, "cxx")
    heat(cxx, n=32, steps=100, every=50, np_=2)
    _, out, _ = ckpt("diff", cxx, py, expect=0)
    check("u: identical" in out and "metadata 'python_state' only in B" in out, out)


def png_text_chunks(path):
    with open(path, "rb") as f:
        data = f.read()
    check(data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file")
    pos, chunks, size = 8, {}, None
    while pos < len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if ctype == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif ctype == b"tEXt":
            k, v = body.split(b"\0", 1)
            chunks[k.decode("latin-1")] = v.decode("latin-1")
        elif ctype == b"zTXt":
            k, rest = body.split(b"\0", 1)
            chunks[k.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
        elif ctype == b"iTXt":
            k, rest = body.split(b"\0", 1)
            comp = rest[0]
            rest = rest[2:]
            _, rest = rest.split(b"\0", 1)
            _, text = rest.split(b"\0", 1)
            chunks[k.decode("latin-1")] = (zlib.decompress(text) if comp else text).decode("utf-8")
        pos += 12 + length
    return size, chunks


def case_stats():
    d = scratch("stats")
    heat(d, n=48, steps=300, every=50, np_=2)
    # the run is interrupted once: a second invocation restores and goes on
    heat(d, n=48, steps=400, every=50, np_=2)
    log = os.path.join(d, "ckpt-stats.jsonl")
    recs = [json.loads(l) for l in open(log) if l.strip()]
    saves = [r for r in recs if r["event"] == "save"]
    restores = [r for r in recs if r["event"] == "restore"]
    check(len(saves) == 8 and len(restores) == 1, f"{len(saves)} saves, {len(restores)} restores")
    _, out, _ = ckpt("stats", d, "--json")
    s = json.loads(out)
    check(s["saves"] == 8 and s["restores"] == 1, s)
    blocked = [r["blocked_seconds"] for r in saves]
    check(abs(s["blocked_seconds"]["mean"] - np.mean(blocked)) <= 1e-6 * max(1e-9, np.mean(blocked)), "mean blocked")
    check(abs(s["blocked_seconds"]["max"] - max(blocked)) <= 1e-9 + 1e-6 * max(blocked), "max blocked")
    check(s["blocked_seconds"]["max_step"] == saves[int(np.argmax(blocked))]["step"], "step of max")
    check(s["total_bytes"] == sum(r["bytes"] for r in saves), "bytes")
    with_iter = [r for r in saves if r.get("iteration_seconds") is not None and r.get("iterations", 0) > 0]
    if with_iter:
        compute = sum(r["iteration_seconds"] * r["iterations"] for r in with_iter)
        ov = sum(r["blocked_seconds"] for r in with_iter) / compute
        check(abs(s["overhead"] - ov) <= 1e-6 * ov, f"overhead {s['overhead']} vs {ov}")
    _, out, _ = ckpt("stats", d)
    check(re.search(r"^saves:\s+8 at steps 50\.\.400", out, re.M), out)
    check(re.search(r"^restore:\s+step 300 on 2 ranks", out, re.M), out)
    check("blocked in save:" in out and "bandwidth:" in out, out)
    # a partial last line (a run killed while appending) is skipped with a note
    with open(log, "a") as f:
        f.write('{"event":"save","step":450,"blo')
    _, out, _ = ckpt("stats", d)
    check("skipped 1 malformed line" in out, out)
    png = os.path.join(d, "cost.png")
    _, out, _ = ckpt("stats", d, "--plot", png)
    size, text = png_text_chunks(png)
    check(size and size[0] >= 400 and size[1] >= 300, f"PNG size {size}")
    axes = json.loads(text["ckpt:axes"])
    check(len(axes) == 2, axes)
    for ax in axes:
        check(ax["xlabel"] and ax["ylabel"] and ax["title"], f"unlabelled axes: {ax}")
    check(axes[0]["ylabel"].startswith("seconds") and axes[1]["xlabel"] == "step", axes)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    img = mpimg.imread(png)
    check(img.std() > 0.01, "the PNG is blank")


def case_errors():
    d = scratch("errors")
    rc, _, err = ckpt("list", os.path.join(d, "missing"), expect=2)
    check("no such directory" in err, err)
    rc, _, err = ckpt("info", os.path.join(d, "missing"), expect=2)
    check("no such file or directory" in err, err)
    text = os.path.join(d, "notes.h5")
    with open(text, "w") as f:
        f.write("not HDF5\n")
    rc, _, err = ckpt("info", text, expect=2)
    check("not a readable" in err or "not a ckpt checkpoint" in err, err)
    foreign = os.path.join(d, "foreign.h5")
    with h5py.File(foreign, "w") as h:
        h["x"] = np.arange(4)
    rc, _, err = ckpt("info", foreign, expect=2)
    check("not a ckpt checkpoint" in err, err)
    rc, out, _ = ckpt("verify", foreign, expect=1)
    check("INVALID" in out and "not a ckpt checkpoint" in out, out)
    rc, _, err = ckpt("diff", foreign, foreign, expect=2)
    check("not a ckpt checkpoint" in err, err)
    rc, _, err = ckpt("list", d, "--bogus", expect=2)
    check("--bogus" in err and "ckpt list --help" in err, err)
    rc, _, err = ckpt("prune", d, expect=2)
    check("--keep" in err, err)
    rc, _, err = ckpt("info", d, "12x", expect=2)
    check("not a step number" in err, err)
    rc, _, err = ckpt("frobnicate", expect=2)
    check("unknown command" in err, err)
    heat(d, n=16, steps=50, every=50, np_=1)
    rc, _, err = ckpt("info", d, "7", expect=2)
    check("no checkpoint of step 7" in err and "50" in err, err)
    rc, _, err = ckpt("stats", os.path.join(d, "missing"), expect=2)
    for cmd in ["list", "info", "verify", "diff", "prune", "export", "stats"]:
        _, out, _ = ckpt(cmd, "--help")
        check(out.startswith(f"usage: ckpt {cmd} "), out)
        check("--help" in out, out)
    _, out, _ = ckpt("--help")
    for cmd in ["list", "info", "verify", "diff", "prune", "export", "stats"]:
        check(f"  {cmd} " in out, out)
    _, out, _ = ckpt("--version")
    check(out.startswith("ckpt "), out)


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--ckpt", required=True)
    p.add_argument("--heat", required=True)
    p.add_argument("--mpiexec", required=True)
    p.add_argument("--capsid", default="")
    p.add_argument("--heat-py", default="")
    p.add_argument("--pythonpath", default="")
    p.add_argument("--scratch", required=True)
    p.add_argument("case", choices=sorted(CASES))
    ARGS = p.parse_args()
    if ARGS.capsid and not os.path.exists(ARGS.capsid):
        ARGS.capsid = ""
    os.makedirs(ARGS.scratch, exist_ok=True)
    try:
        CASES[ARGS.case]()
    except Failure as e:
        print(f"FAIL cli {ARGS.case}: {e}", file=sys.stderr)
        return 1
    print(f"ok: cli {ARGS.case}")
    shutil.rmtree(ARGS.scratch, ignore_errors=True)  # kept for inspection when a case fails
    return 0


if __name__ == "__main__":
    sys.exit(main())
