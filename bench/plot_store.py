"""Plots of `hashmem bench store`: the row-frequency profile and the hit-ratio curves (policy x cache size).

Usage: plot_store.py WORKDIR   (reads WORKDIR/row-frequency.csv and WORKDIR/hit-ratio.csv, writes the .png files)
"""
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main(workdir):
    rows = read(os.path.join(workdir, "row-frequency.csv"))
    rank = [int(r["rank"]) for r in rows]
    count = [int(r["count"]) for r in rows]
    share = [float(r["cumulative_share"]) for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.loglog(rank, count, ".-")
    a.set_xlabel("row rank")
    a.set_ylabel("accesses")
    a.set_title("row-frequency profile (train stream)")
    b.semilogx(rank, share, ".-")
    b.set_xlabel("hottest rows kept")
    b.set_ylabel("share of accesses")
    b.set_title("cumulative share")
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "row-frequency.png"), dpi=110)

    curves = {}
    for r in read(os.path.join(workdir, "hit-ratio.csv")):
        curves.setdefault(r["policy"], []).append((float(r["cache_fraction"]), float(r["hit_ratio"])))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, points in curves.items():
        points.sort()
        style = "k--" if name == "oracle" else ".-"
        ax.semilogx([p[0] * 100 for p in points], [p[1] for p in points], style, label=name)
    ax.set_xlabel("DRAM cache, % of table rows")
    ax.set_ylabel("hit ratio (validation stream)")
    ax.set_title("hit ratio by policy and cache size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "hit-ratio.png"), dpi=110)


if __name__ == "__main__":
    main(sys.argv[1])
