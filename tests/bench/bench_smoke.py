#!/usr/bin/python3
"""ckpt-bench with tiny sizes: the run succeeds and its table and JSON are well formed
(checks the shape of the output, never the numbers)."""

import argparse
import json
import math
import subprocess
import sys
import tempfile

ap = argparse.ArgumentParser()
ap.add_argument("--bench", required=True)
ap.add_argument("--np", type=int, default=2)
args = ap.parse_args()
with tempfile.TemporaryDirectory(prefix="ckpt-bench-smoke-") as d:
    base = ["mpiexec", "-n", str(args.np), args.bench, "--sizes", "1M,3M", "--repeats", "2",
            "--heat-n", "40", "--heat-steps", "60", "--heat-every", "20", "--dir", d + "/b"]
    r = subprocess.run(base + ["--json"], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        sys.exit(f"ckpt-bench --json failed:\n{r.stdout}\n{r.stderr}")
    doc = json.loads(r.stdout)
    assert doc["ranks"] == args.np, doc["ranks"]
    assert len(doc["sizes"]) == 2
    methods = ["direct", "buffered", "phdf5", "sync", "async_blocked", "async_durable", "memcpy", "restore",
               "read_buffered", "read_direct"]
    for s in doc["sizes"]:
        assert s["bytes"] > 0
        for m in methods:
            assert len(s[m]["runs"]) == 2, (m, s[m])
            assert all(t > 0 and math.isfinite(t) for t in s[m]["runs"]), (m, s[m])
        for k in ["sync_vs_plain", "sync_vs_phdf5", "async_blocked_vs_memcpy", "async_blocked_vs_sync",
                  "restore_vs_read"]:
            assert math.isfinite(s["ratios"][k]) and s["ratios"][k] > 0, (k, s["ratios"])
        assert s["maxrss_mib"] > 0
    assert doc["heat"]["async"]["ratio"] > 0
    r = subprocess.run(base + ["--no-heat"], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        sys.exit(f"ckpt-bench failed:\n{r.stdout}\n{r.stderr}")
    out = r.stdout
    assert f"ckpt-bench: {args.np} rank" in out, out
    assert "ratios (target):" in out and "sync/plain" in out, out
    assert out.count("async_blocked") == 2, out
    assert "heat" not in out.split("ratios (target):")[1], out
    print("ckpt-bench output is well formed")
