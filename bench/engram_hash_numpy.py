"""Anchor for `hashmem bench engram-hash`: the numpy reference hashing of ../shared/reference/engram_hash_ref.py
timed on the same ids (int64 file written by the C++ side), with a SHA-256 of its output per layer so the run
proves both sides computed the same thing. Prints one JSON object on stdout."""
import argparse, hashlib, json, os, sys, time

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--shared", required=True)
ap.add_argument("--config", required=True, help="JSON config with the keys of hash-cases.json")
ap.add_argument("--ids", required=True, help="raw little-endian int64 ids [batch, tokens]")
ap.add_argument("--batch", type=int, required=True)
ap.add_argument("--reps", type=int, default=3)
a = ap.parse_args()

sys.path.insert(0, os.path.join(a.shared, "reference"))
import engram_hash_ref as ref  # noqa: E402

cfg = json.load(open(a.config))
x = np.fromfile(a.ids, dtype=np.int64).reshape(a.batch, -1)
primes = ref.layout(cfg["vocab_per_order"], cfg["max_ngram"], cfg["heads"], cfg["layers"])
best = float("inf")
for _ in range(a.reps):
    t0 = time.perf_counter()
    out = [ref.hashes(x, cfg, layer, primes)[0] for layer in cfg["layers"]]
    best = min(best, time.perf_counter() - t0)
digests = {str(layer): hashlib.sha256(np.ascontiguousarray(h, dtype="<i8").tobytes()).hexdigest()
           for layer, h in zip(cfg["layers"], out)}
print(json.dumps({"seconds": best, "tokens": int(x.size), "tokens_per_second": x.size / best,
                  "sha256": digests, "numpy": np.__version__}))
