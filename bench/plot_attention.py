"""Plots of `hashmem bench attention`: time and error against n for every method (one line per method and d).

Usage: plot_attention.py CSV   (writes CSV with .png for .csv). Exit code 77 when matplotlib is missing.
"""
import csv
import sys

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib is missing: no plot", file=sys.stderr)
    sys.exit(77)


def main(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    lines = {}
    for r in rows:
        if r["method"] == "sgemm":
            continue
        lines.setdefault((r["method"], r["d"]), []).append(r)
    fig, (t_ax, e_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    for (method, d), points in sorted(lines.items()):
        points.sort(key=lambda r: int(r["n"]))
        n = [int(r["n"]) for r in points]
        label = f"{method} d={d}"
        t_ax.loglog(n, [float(r["seconds"]) for r in points], ".-", label=label)
        errors = [(x, float(r["rel_l2_error"])) for x, r in zip(n, points) if float(r["rel_l2_error"]) > 0]
        if errors:
            e_ax.semilogx([x for x, _ in errors], [e for _, e in errors], ".-", label=label)
    causal = "causal" if rows and rows[0]["causal"] == "1" else "non-causal"
    t_ax.set_xlabel("n (tokens)")
    t_ax.set_ylabel("seconds (decode rows: one query per head)")
    t_ax.set_title(f"time vs n ({causal}, {rows[0]['inputs'] if rows else ''} inputs)")
    e_ax.set_xlabel("n (tokens)")
    e_ax.set_ylabel("relative L2 error vs exact")
    e_ax.set_title("error vs n")
    for ax in (t_ax, e_ax):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path[: -len(".csv")] + ".png", dpi=110)


if __name__ == "__main__":
    main(sys.argv[1])
