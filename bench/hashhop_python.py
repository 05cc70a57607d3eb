#!/usr/bin/env python3
"""Python HashHop generators, the anchors our C++ generator is checked and timed against.

  --impl model   ../shared/reference/hashhop_rng_model.py (stdlib-only model of the original's RNG use)
  --impl numpy   the original's algorithm on the real libraries: numpy's legacy np.random.choice for the
                 letters and CPython's random.shuffle (what magicproduct/hash-hop runs; needs numpy)

Reads parameter sets as JSON lines {"seed","chars","hops","hash_length","queries","cot"} and writes one
sample per line in hashmem's format ({"params","prompt","completion","targets"}, compact separators), so
outputs can be compared byte for byte with `hashmem hashhop generate`. Run with /usr/bin/python3.
"""
import argparse
import json
import math
import os
import random
import sys
import time


def numpy_make_one(seed, n_chars, queries, hops, hash_length, cot):
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

    def new_hash():
        return "".join(alphabet[i] for i in np.random.choice(len(alphabet), hash_length))

    n_chains = math.ceil(n_chars / ((2 * hash_length + 3) * hops))
    levels = [{}]
    for _ in range(n_chains):
        key = new_hash()
        levels[0][key] = new_hash()
    for _ in range(hops - 1):
        levels.append({v: new_hash() for v in levels[-1].values()})
    lines = []
    for i, level in enumerate(levels):
        quote = "'" if i == len(levels) - 1 else ""
        lines += [f"{k} = {quote}{v}{quote}" for k, v in level.items()]
    targets = {}
    for k in levels[0]:
        chain = [levels[0][k]]
        for level in levels[1:]:
            chain.append(level[chain[-1]])
        targets[k] = " = ".join(chain) if cot else chain[-1]
    random.shuffle(lines)
    shuffled = list(targets.items())
    random.shuffle(shuffled)  # the original shuffles the targets too and then does not use the result
    completion = "COMPLETION:\nHops=%d\n\nCoT=%s\n\n%s\n" % (
        hops, "True" if cot else "False",
        "\n".join(f"{k} = '{v}'" for k, v in list(targets.items())[:queries]))
    return "\n".join(lines), completion, targets


def model_make_one(shared, seed, n_chars, queries, hops, hash_length, cot):
    sys.path.insert(0, os.path.join(shared, "reference"))
    import hashhop_rng_model

    return hashhop_rng_model.Gen(seed).make_one(n_chars, queries, hops, hash_length, cot)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--impl", choices=["model", "numpy"], required=True)
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
    ap.add_argument("--params", required=True, help="JSON lines of parameter sets")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.params) as f:
        param_sets = [json.loads(line) for line in f if line.strip()]
    start = time.perf_counter()
    with open(args.out, "w") as out:
        for p in param_sets:
            a = (p["seed"], p["chars"], p["queries"], p["hops"], p["hash_length"], p["cot"])
            if args.impl == "numpy":
                prompt, completion, targets = numpy_make_one(*a)
            else:
                prompt, completion, targets = model_make_one(args.shared, *a)
            params = {k: p[k] for k in ("seed", "chars", "hops", "hash_length", "queries", "cot")}
            sample = {"params": params, "prompt": prompt, "completion": completion, "targets": targets}
            out.write(json.dumps(sample, separators=(",", ":")) + "\n")
    print(json.dumps({"seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
