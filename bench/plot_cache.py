"""Figures of `hashmem bench cache --json` (docs/cache_study.md).

  plot_cache.py CACHE.json OUT.png      hit ratio against the DRAM budget: one panel per stream (each domain, the
                                        mix at each B), one line per policy, MIN dashed, the compulsory ceilings
                                        dotted
  plot_cache.py --csv CACHE.json OUT.csv  the points as CSV (the columns of `hashmem bench cache` without --json)
  plot_cache.py --table CACHE.json      markdown tables for docs/cache_study.md: per stream, hit ratio (misses per
                                        token) per budget × policy, and the best policy / MIN preloaded
  plot_cache.py --gb CACHE.json MISSES_PER_TOKEN [POLICY]
                                        the headline: per stream, the DRAM (GB) a policy (default static+s3fifo)
                                        and MIN preloaded need to miss at most MISSES_PER_TOKEN rows per token

gb_for() is the reading: misses per token fall as the budget grows; between two simulated budgets the curve is
interpolated linearly in log(budget) (the budgets are spaced geometrically), and a tolerance below the largest
budget's misses gives None (more DRAM than simulated).
"""
import csv
import json
import math
import sys

CSV_COLUMNS = ["stream", "requests", "policy", "budget_fraction", "budget_rows", "budget_gb", "capacity_simulated",
               "hit_ratio", "misses_per_token", "compulsory_per_token", "iops", "seconds"]


COLORS = {"lru": "tab:blue", "s3fifo": "tab:orange", "tinylfu": "tab:green", "static": "tab:red",
          "static+s3fifo": "tab:purple", "min": "tab:gray", "min+static": "black"}


def stream_key(p):
    return (p["stream"], p["requests"])


def curve(study, stream, requests, policy):
    """[(budget_gb, misses_per_token)] of one policy on one stream, by budget."""
    pts = [p for p in study["points"] if stream_key(p) == (stream, requests) and p["policy"] == policy]
    return sorted((p["budget_gb"], p["misses_per_token"]) for p in pts)


def gb_for(study, stream, requests, policy, misses_per_token):
    """DRAM (GB) at which `policy` misses at most `misses_per_token` rows per token on the stream, or None."""
    pts = curve(study, stream, requests, policy)
    if not pts:
        raise KeyError(f"no points for {policy} on {stream} B={requests}")
    if pts[0][1] <= misses_per_token:
        return pts[0][0]
    for (g0, m0), (g1, m1) in zip(pts, pts[1:]):
        if m1 <= misses_per_token:
            t = (m0 - misses_per_token) / (m0 - m1) if m0 != m1 else 1.0
            return math.exp(math.log(g0) + t * (math.log(g1) - math.log(g0)))
    return None


def streams_of(study):
    return [(s["name"], s["requests"]) for s in study["streams"]]


def write_csv(study, out):
    with open(out + ".tmp", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for p in study["points"]:
            w.writerow([p[c] for c in CSV_COLUMNS])
    import os
    os.replace(out + ".tmp", out)


def print_gb(study, misses, policy):
    print(f"DRAM for <= {misses} missed rows per token ({policy}; min+static = the bound):")
    for name, b in streams_of(study):
        got = [gb_for(study, name, b, pol, misses) for pol in (policy, "min+static")]
        text = ["more than simulated" if g is None else f"{g:.1f} GB" for g in got]
        print(f"  {name:8s} B={b:<3d} {policy}: {text[0]:>20s}   min+static: {text[1]:>20s}")


def print_tables(study):
    for info in study["streams"]:
        name, b = info["name"], info["requests"]
        pts = [p for p in study["points"] if stream_key(p) == (name, b)]
        policies = []
        for p in pts:
            if p["policy"] not in policies:
                policies.append(p["policy"])
        budgets = sorted({p["budget_fraction"] for p in pts})
        at = {(p["policy"], p["budget_fraction"]): p for p in pts}
        online = [pol for pol in policies if not pol.startswith("min")]
        print(f"\n{name}, B = {b}: {info['tokens']:,} tokens, {info['distinct_rows'] / info['tokens']:.1f} distinct "
              f"rows per token, {info['unprofiled_rows'] / info['tokens']:.1f} never profiled per token\n")
        print("| budget | GB | " + " | ".join(policies) + " | best / min+static |")
        print("|---" * (len(policies) + 3) + "|")
        for f in budgets:
            row = [f"{100 * f:g} %", f"{at[(policies[0], f)]['budget_gb']:.1f}"]
            for pol in policies:
                p = at[(pol, f)]
                row.append(f"{p['hit_ratio']:.3f} ({p['misses_per_token']:.1f})")
            best = max(online, key=lambda pol: at[(pol, f)]["hit_ratio"])
            bound = at.get(("min+static", f))
            ratio = at[(best, f)]["hit_ratio"] / bound["hit_ratio"] if bound else float("nan")
            row.append(f"{best} {ratio:.3f}")
            print("| " + " | ".join(row) + " |")


def plot(study, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    streams = streams_of(study)
    cols = 3
    rows = (len(streams) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False)
    for ax, (name, b), info in zip(axes.flat, streams, study["streams"]):
        pts = [p for p in study["points"] if stream_key(p) == (name, b)]
        policies = []
        for p in pts:
            if p["policy"] not in policies:
                policies.append(p["policy"])
        for pol in policies:
            line = sorted((p["budget_fraction"], p["hit_ratio"]) for p in pts if p["policy"] == pol)
            ax.plot([100 * x for x, _ in line], [y for _, y in line], "--" if pol.startswith("min") else "-",
                    marker="o", markersize=3, label=pol, color=COLORS.get(pol))
        ax.axhline(1 - info["distinct_rows"] / info["accesses"], color="grey", linestyle=":", label="cold ceiling")
        ax.axhline(1 - info["unprofiled_rows"] / info["accesses"], color="black", linestyle=":",
                   label="ceiling, whole profile")
        ax.set_xscale("log")
        ax.set_title(f"{name}, B={b}: {info['tokens'] / 1e6:.2f} M tokens", fontsize=9)
        ax.set_xlabel("DRAM budget, %% of %d M rows" % (study["table_rows"] // 10**6), fontsize=8)
        ax.set_ylabel("hit ratio", fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(streams):]:
        ax.axis("off")
    max(axes.flat, key=lambda a: len(a.get_lines())).legend(fontsize=6)  # the panel with every policy
    fig.suptitle("%s: profile of %.1f M training tokens" % (study["preset"], study["train"]["tokens"] / 1e6))
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv):
    if argv and argv[0] == "--csv":
        with open(argv[1]) as f:
            write_csv(json.load(f), argv[2])
    elif argv and argv[0] == "--table":
        with open(argv[1]) as f:
            print_tables(json.load(f))
    elif argv and argv[0] == "--gb":
        with open(argv[1]) as f:
            print_gb(json.load(f), float(argv[2]), argv[3] if len(argv) > 3 else "static+s3fifo")
    elif len(argv) == 2:
        with open(argv[0]) as f:
            plot(json.load(f), argv[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
