"""Loss curves of tiny-LM runs (`hashmem lm compare --png`): validation loss against training tokens, one line
per run, one colour per arm (baseline, engram, engram -<ablation>), and the training loss (running mean) faintly.

Usage: plot_lm.py OUT.png RUN_DIR...   (reads each run's metrics.csv and summary.json)
"""
import csv
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def arm(summary):
    if not summary.get("engram"):
        return "baseline"
    return " ".join(["engram"] + ["-" + a for a in summary.get("ablate", [])])


def running_mean(values, window=20):
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def main(out, runs):
    colours = {}
    fig, ax = plt.subplots(figsize=(8, 5))
    for run in runs:
        with open(os.path.join(run, "summary.json")) as f:
            name = arm(json.load(f))
        colour = colours.setdefault(name, "C%d" % len(colours))
        with open(os.path.join(run, "metrics.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
        tokens = [int(r["tokens"]) for r in rows]
        ax.plot(tokens, running_mean([float(r["train_loss"]) for r in rows]), color=colour, alpha=0.25, lw=1)
        val = [(int(r["tokens"]), float(r["val_loss"])) for r in rows if r["val_loss"]]
        label = name if name not in ax.get_legend_handles_labels()[1] else None
        ax.plot([t for t, _ in val], [v for _, v in val], "o-", color=colour, ms=3, lw=1.5, label=label)
    ax.set_xlabel("training tokens")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("tiny LM: validation loss (points) and training loss (faint, running mean)")
    ax.set_ylim(top=min(ax.get_ylim()[1], 8.0))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = out + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, out)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
