#!/usr/bin/env python3
"""Runs ../shared/reference Engram scripts on cases written by test_engram.cpp (run with /usr/bin/python3).

  hash   CASES OUT: CASES is a JSON list of {"config": {...}, "tokens": [[...]]}; OUT gets, per case, the
         reference's {"layers": {id: {"multipliers", "primes", "rows", "hashes"}}} (engram_hash_ref.make)
  rng    CASES OUT: CASES is a JSON list of {"seed", "high", "n"}; OUT gets, per case, numpy's
         default_rng(seed).integers(0, high, n, dtype=int64) and, where the 64-bit path applies, the pure-Python
         model's (numpy_default_rng.integers)
"""
import json
import os
import sys

shared = os.environ.get("HASHMEM_SHARED_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
sys.path.insert(0, os.path.join(shared, "reference"))

mode, cases_path, out_path = sys.argv[1:4]
cases = json.load(open(cases_path))
out = []
if mode == "hash":
    import engram_hash_ref
    for case in cases:
        r = engram_hash_ref.make(case["config"], case["tokens"])
        out.append({"layers": r["layers"]})
elif mode == "rng":
    import numpy as np
    import numpy_default_rng
    for case in cases:
        ours = np.random.default_rng(case["seed"]).integers(0, case["high"], size=case["n"], dtype=np.int64)
        item = {"numpy": [int(v) for v in ours]}
        if case["high"] - 1 > 0xFFFFFFFF:
            item["model"] = numpy_default_rng.integers(case["seed"], case["high"], case["n"])
        out.append(item)
json.dump(out, open(out_path, "w"))
