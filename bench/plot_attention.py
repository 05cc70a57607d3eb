"""Plots of `hashmem bench attention`: time and error against n, a colour per method, a line style per d.

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
        rows = [r for r in csv.DictReader(f) if r["method"] != "sgemm"]
    methods = sorted({r["method"] for r in rows})
    dims = sorted({int(r["d"]) for r in rows}, reverse=True)
    colour = {m: plt.cm.tab10(i % 10) for i, m in enumerate(methods)}
    style = {d: s for d, s in zip(dims, ["-", "--", ":", "-."])}
    fig, (t_ax, e_ax) = plt.subplots(1, 2, figsize=(13, 5))
    for method in methods:
        for d in dims:
            points = sorted((r for r in rows if r["method"] == method and int(r["d"]) == d), key=lambda r: int(r["n"]))
            if not points:
                continue
            n = [int(r["n"]) for r in points]
            kw = dict(color=colour[method], linestyle=style[d], marker=".", label=f"{method} d={d}")
            t_ax.loglog(n, [float(r["seconds"]) for r in points], **kw)
            errors = [(x, float(r["rel_l2_error"])) for x, r in zip(n, points) if float(r["rel_l2_error"]) > 0]
            if errors:
                e_ax.loglog([x for x, _ in errors], [e for _, e in errors], **kw)
    causal = "causal" if rows and rows[0]["causal"] == "1" else "non-causal"
    inputs = rows[0]["inputs"] if rows else ""
    t_ax.set_xlabel("n (tokens)")
    t_ax.set_ylabel("seconds (decode rows: one query per head)")
    t_ax.set_title(f"time vs n ({causal}, {inputs} inputs, 1 thread)")
    e_ax.set_xlabel("n (tokens)")
    e_ax.set_ylabel("relative L2 error vs exact (LSH: vs full shared-QK)")
    e_ax.set_title("error vs n")
    for ax in (t_ax, e_ax):
        ax.grid(True, which="both", alpha=0.3)
    t_ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path[: -len(".csv")] + ".png", dpi=110)


if __name__ == "__main__":
    main(sys.argv[1])
