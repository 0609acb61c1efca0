#!/usr/bin/python3
"""Draws the checkpoint costs of a run from its ckpt-stats.jsonl log into a PNG.

Usage: ckpt-stats-plot.py LOG.jsonl OUT.png

Run by `ckpt stats DIR --plot OUT.png`. Top panel: per save, the seconds the application
was blocked and the seconds until the checkpoint was durable, against the step. Bottom
panel: the mean time per loop iteration between saves (recorded when the app uses the loop
helper). Restores are marked as vertical lines. The axis labels are also written into the
PNG's text metadata (key "ckpt:axes") so tests can check them without image analysis.
"""

import json
import sys


def load(path):
    saves, restores, bad = [], [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                bad += 1  # a partial last line from a killed run
                continue
            if not isinstance(rec, dict):
                bad += 1
                continue
            if rec.get("event") == "save":
                saves.append(rec)
            elif rec.get("event") == "restore":
                restores.append(rec)
    return saves, restores, bad


def main(argv):
    if len(argv) != 3:
        print("usage: ckpt-stats-plot.py LOG.jsonl OUT.png", file=sys.stderr)
        return 2
    log, out = argv[1], argv[2]
    try:
        import matplotlib
    except ImportError:
        print("ckpt stats --plot needs matplotlib (Debian: apt-get install python3-matplotlib)",
              file=sys.stderr)
        return 3
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    saves, restores, bad = load(log)
    if not saves:
        print(f"no saves recorded in {log}", file=sys.stderr)
        return 1

    def series(key):
        xs, ys = [], []
        for rec in saves:
            if isinstance(rec.get(key), (int, float)) and isinstance(rec.get("step"), (int, float)):
                xs.append(rec["step"])
                ys.append(rec[key])
        return xs, ys

    fig, (ax_cost, ax_iter) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
    xb, yb = series("blocked_seconds")
    xd, yd = series("durable_seconds")
    ax_cost.plot(xb, yb, "o-", label="blocked in save")
    if xd and yd != yb:
        ax_cost.plot(xd, yd, "s--", label="until durable")
    ax_cost.set_ylabel("seconds per checkpoint")
    ax_cost.set_xlabel("step")
    ax_cost.tick_params(labelbottom=True)
    ax_cost.set_title("checkpoint cost over the run")
    ax_cost.set_ylim(bottom=0)
    ax_cost.grid(True, alpha=0.3)

    xi, yi = series("iteration_seconds")
    if xi:
        ax_iter.plot(xi, yi, ".-", color="tab:green", label="mean iteration time since the previous save")
        ax_iter.set_ylim(bottom=0)
    else:
        ax_iter.text(0.5, 0.5, "no iteration times recorded (the app does not use the loop helper)",
                     ha="center", va="center", transform=ax_iter.transAxes)
    ax_iter.set_ylabel("seconds per iteration")
    ax_iter.set_xlabel("step")
    ax_iter.set_title("time per iteration")
    ax_iter.grid(True, alpha=0.3)

    for i, rec in enumerate(restores):
        step = rec.get("step")
        if isinstance(step, (int, float)):
            for ax in (ax_cost, ax_iter):
                ax.axvline(step, color="tab:red", linestyle=":", alpha=0.8,
                           label="restore" if i == 0 else None)
    ax_cost.legend(loc="best", fontsize="small")
    if xi or restores:
        ax_iter.legend(loc="best", fontsize="small")
    fig.tight_layout()

    axes = json.dumps([{"title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel()}
                       for ax in (ax_cost, ax_iter)])
    fig.savefig(out, dpi=100, metadata={"ckpt:axes": axes, "Software": "ckpt stats"})
    plt.close(fig)
    if bad:
        print(f"note: skipped {bad} malformed line(s) of {log}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
