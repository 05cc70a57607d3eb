"""Anchor for `hashmem bench engram-hash`: the numpy reference hashing of ../shared/reference/engram_hash_ref.py
timed on the same ids (int64 file written by the C++ side), with a SHA-256 of its output per layer so the run
proves both sides computed the same thing. Prints one JSON object on stdout.

The same work and the same timing rule as the C++ side: every layer's [batch, tokens, columns] int64 hashes from
constants derived beforehand (the C++ side gets its layout before the clock starts, so the reference's
multipliers are derived once here too), repeated until --min-seconds have passed (at least --reps runs), best
run kept. Each run is timed by the wall clock and by this thread's CPU time: on a shared machine a 15 ms numpy
run is often preempted where a 0.3 ms C++ run is not, and the CPU time is what the work itself costs; the faster
of the two figures is the anchor (the one that flatters numpy)."""
import argparse, functools, hashlib, json, os, sys, time

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--shared", required=True)
ap.add_argument("--config", required=True, help="JSON config with the keys of hash-cases.json")
ap.add_argument("--ids", required=True, help="raw little-endian int64 ids [batch, tokens]")
ap.add_argument("--batch", type=int, required=True)
ap.add_argument("--reps", type=int, default=5, help="at least this many timed runs")
ap.add_argument("--min-seconds", type=float, default=1.0, help="and at least this much time in all")
a = ap.parse_args()

sys.path.insert(0, os.path.join(a.shared, "reference"))
import engram_hash_ref as ref  # noqa: E402

cfg = json.load(open(a.config))
x = np.fromfile(a.ids, dtype=np.int64).reshape(a.batch, -1)
primes = ref.layout(cfg["vocab_per_order"], cfg["max_ngram"], cfg["heads"], cfg["layers"])
ref.multipliers = functools.lru_cache(maxsize=None)(ref.multipliers)  # derived once, as the layout is
for layer in cfg["layers"]:
    ref.multipliers(cfg["compressed_vocab"], cfg["seed"], layer, cfg["max_ngram"])

best_wall = best_cpu = float("inf")
runs, spent = 0, 0.0
while runs < a.reps or spent < a.min_seconds:
    w0, c0 = time.perf_counter(), time.thread_time()
    out = [ref.hashes(x, cfg, layer, primes)[0] for layer in cfg["layers"]]
    wall, cpu = time.perf_counter() - w0, time.thread_time() - c0
    best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
    runs, spent = runs + 1, spent + wall
best = min(best_wall, best_cpu)
digests = {str(layer): hashlib.sha256(np.ascontiguousarray(h, dtype="<i8").tobytes()).hexdigest()
           for layer, h in zip(cfg["layers"], out)}
print(json.dumps({"seconds": best, "seconds_wall": best_wall, "seconds_cpu": best_cpu, "runs": runs,
                  "tokens": int(x.size), "tokens_per_second": x.size / best, "sha256": digests,
                  "numpy": np.__version__}))
