"""Plot of `hashmem bench offload`'s offload.json: decode tokens/s of the SSD tier as a fraction of the DRAM
anchor's (left) and p99 step time against the anchor's (right), per DRAM budget, one line per (B, S), for the
layered schedule (gathers at the Engram layers' positions in the model step). Without matplotlib it says so and
exits 0 (the CSV and JSON files are the figures).

Usage: plot_offload.py OFFLOAD.json OUT.png
"""
import json
import sys


def main(path, out):
    try:
        import matplotlib
    except ImportError:
        print("plot_offload.py: no matplotlib, no plot", file=sys.stderr)
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(path) as f:
        report = json.load(f)
    rows = [r for r in report["decode"] if r["schedule"] == "layered"] or report["decode"]
    keys = []
    for r in rows:
        if (r["batch"], r["step_ms"]) not in keys:
            keys.append((r["batch"], r["step_ms"]))
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for batch, step_ms in keys:
        pts = [r for r in rows if r["batch"] == batch and r["step_ms"] == step_ms]
        budgets = [100 * r["budget"] for r in pts]
        label = "B = %d, S = %g ms" % (batch, step_ms)
        axes[0].plot(budgets, [r["ratio"] for r in pts], marker="o", label=label)
        axes[1].plot(budgets, [r["p99_ratio"] for r in pts], marker="o", label=label)
    table = report["table"]
    ticks = sorted({100 * r["budget"] for r in rows})
    for ax, what in zip(axes, ["decode tokens/s, SSD tier / DRAM", "p99 step time, SSD tier / DRAM"]):
        ax.set_xscale("log")
        ax.set_xticks(ticks)
        ax.set_xticklabels(["%g" % t for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("DRAM budget, %% of the %.1f GiB table" % (table["bytes"] / 2**30))
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].axhline(0.99, color="grey", linestyle=":", label="goal 0.99")
    axes[1].axhline(1.05, color="grey", linestyle=":", label="goal 1.05")
    axes[0].legend(fontsize=7)
    fig.suptitle("DeepSeek-V4.1 Engram rows (fp8, both layers, scale 1/%g) from SSD, %d-layer model step"
                 % (table["scale"], report["model"]["layers"]))
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
