"""Plot of `hashmem bench cache --json`: held-out hit ratio against the DRAM budget, one line per policy, with
the compulsory-miss ceilings (cold, and starting from the whole profile) as dashed lines.

Usage: plot_cache.py CACHE.json OUT.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(path, out):
    with open(path) as f:
        study = json.load(f)
    policies = []
    for p in study["points"]:
        if p["policy"] not in policies:
            policies.append(p["policy"])
    fig, ax = plt.subplots(figsize=(8, 5))
    for name in policies:
        pts = [p for p in study["points"] if p["policy"] == name]
        style = "--" if name.startswith("min") else "-"
        ax.plot([100 * p["budget_fraction"] for p in pts], [p["hit_ratio"] for p in pts], style, marker="o",
                label=name)
    accesses, distinct = study["eval"]["accesses"], study["eval_distinct_rows"]
    ax.axhline(1 - distinct / accesses, color="grey", linestyle=":", label="cold ceiling (first touches)")
    ax.axhline(1 - study["eval_unprofiled_rows"] / accesses, color="black", linestyle=":",
               label="ceiling with the whole profile")
    ax.set_xscale("log")
    ax.set_xlabel("DRAM budget, %% of the tables' %d M rows (%d B each)" % (study["table_rows"] // 10**6,
                                                                        study["row_bytes"]))
    ax.set_ylabel("hit ratio on held-out text")
    ax.set_title("%s: %d held-out tokens, profile of %d tokens" % (study["preset"], study["eval"]["tokens"],
                                                                  study["train"]["tokens"]))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
