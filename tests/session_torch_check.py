"""torch.classes.hashmem.Session: under add/remove churn, prefills and decode steps (gathered whole and layer by
layer, float32 and bfloat16), every value equals the reference computed another way: the request's whole token
sequence hashed from scratch with torch.ops.hashmem.ngram_hash and its rows read with torch.classes.hashmem.Table
on the DRAM tier; gathers into the caller's tensors too. Then the errors (unknown request, gather before prefetch,
double gather, ids/tokens count mismatch, bad dtype, a buffer of the wrong shape) are RuntimeErrors naming the problem. The session also runs under torch.jit.script.

Usage: session_torch_check.py   (HASHMEM_TORCH_LIB: libhashmem_torch.so; HASHMEM_CLI: the hashmem CLI)
Exits non-zero on any mismatch; 77 (skipped) without torch.
"""
import json
import os
import random
import subprocess
import sys
import tempfile

try:
    import torch
except ImportError:
    print('skipped: this Python has no torch (./run installs python3-torch for /usr/bin/python3)')
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
import hashmem_torch  # noqa: E402  (loads the library)

CONFIG = os.path.join(HERE, "capi", "small_config.json")
CLI = os.environ.get("HASHMEM_CLI", os.path.join(HERE, "..", "build", "bin", "hashmem"))


def make_table(directory, dtype):
    path = os.path.join(directory, f"t.{dtype}.safetensors")
    subprocess.run([CLI, "table", "create", "--config", CONFIG, "--dim", "32", "--dtype", dtype, "--seed", "9",
                    "--checksum-block", "4096", "--out", path], check=True, stdout=subprocess.DEVNULL)
    return path


class Reference:
    def __init__(self, path):
        self.table = torch.classes.hashmem.Table(path, "dram", 0, False)
        with open(CONFIG) as f:
            self.config = f.read()
        self.layers = len(json.loads(self.config)["layers"])

    def values(self, sequence, start):
        """Rows of tokens start.. of `sequence` as float32 [n, layers, columns, dim]."""
        ids = torch.tensor([sequence], dtype=torch.int64)
        per_layer = []
        for layer in range(self.layers):
            rows = torch.ops.hashmem.ngram_hash(ids, self.config, layer, True)[0, start:]
            per_layer.append(self.table.gather(layer, rows))  # [n, columns, dim]
        return torch.stack(per_layer, dim=1)


def churn(path, tier, seed):
    rng = random.Random(seed)
    ref = Reference(path)
    s = hashmem_torch.session(path, tier, dram_budget=4096)
    sequences = {}
    checked = 0
    for step in range(40):
        dtype = rng.choice(["float32", "bfloat16"])
        if not sequences or rng.random() < 0.3:
            rid = s.add()
            prompt = [rng.randrange(-2, 100) for _ in range(rng.randrange(0, 12))]
            got = s.prefill(rid, torch.tensor(prompt, dtype=torch.int64), dtype)
            sequences[rid] = prompt
            if not torch.equal(got, ref.values(prompt, 0).to(got.dtype)):
                raise AssertionError(f"{tier}: prefill of request {rid} differs")
        if len(sequences) > 1 and rng.random() < 0.25:
            gone = rng.choice(sorted(sequences))
            s.remove(gone)
            del sequences[gone]
        assert s.requests() == sorted(sequences)
        ids = [i for i in sequences if rng.random() < 0.8]
        rng.shuffle(ids)
        tokens = [rng.randrange(0, 100) for _ in ids]
        for i, t in zip(ids, tokens):
            sequences[i].append(t)
        s.prefetch(torch.tensor(ids, dtype=torch.int64), torch.tensor(tokens, dtype=torch.int64))
        mode = rng.randrange(3)
        if mode == 0:
            got = s.gather(dtype)
        elif mode == 1:  # into a buffer of the caller's
            got = torch.full((len(ids), s.layers(), s.columns(), s.dim()), -1.0, dtype=getattr(torch, dtype))
            s.gather_into(got)
        elif rng.random() < 0.5:  # layer by layer, into buffers of the caller's
            parts = [torch.empty((len(ids), s.columns(), s.dim()), dtype=getattr(torch, dtype))
                     for _ in range(s.layers())]
            for layer, part in enumerate(parts):
                s.gather_layer_into(layer, part)
            got = torch.stack(parts, dim=1)
        else:  # layer by layer, as the model reaches each Engram layer
            got = torch.stack([s.gather_layer(layer, dtype) for layer in range(s.layers())], dim=1)
        assert list(got.shape) == [len(ids), s.layers(), s.columns(), s.dim()], got.shape
        for b, i in enumerate(ids):
            want = ref.values(sequences[i], len(sequences[i]) - 1)[0].to(got.dtype)
            if not torch.equal(got[b], want):
                raise AssertionError(f"{tier} step {step}: request {i} differs")
            checked += 1
    print(f"{tier}: {checked} request-steps equal the reference")


def expect_error(fn, part):
    try:
        fn()
    except RuntimeError as e:
        if part not in str(e):
            raise AssertionError(f"error {str(e)!r} does not name {part!r}")
        return
    raise AssertionError(f"no error (expected one naming {part!r})")


def check_errors(path):
    s = torch.classes.hashmem.Session(path, "dram", 0, "")
    rid = s.add()
    one = torch.tensor([rid], dtype=torch.int64)
    expect_error(lambda: s.remove(99), "no request 99")
    expect_error(lambda: s.gather("float32"), "no step in flight")
    expect_error(lambda: s.prefill(rid, torch.tensor([1, 100]), "float32"), "token id 100 at position 1")
    expect_error(lambda: s.prefill(rid, torch.tensor([1.0]), "float32"), "int64")
    expect_error(lambda: s.prefetch(one, torch.tensor([1, 2])), "1 request ids but 2 tokens")
    expect_error(lambda: s.prefill(rid, torch.tensor([1]), "float16"), "dtype must be")
    s.prefetch(one, torch.tensor([4]))
    s.gather_layer(0, "bfloat16")
    expect_error(lambda: s.gather_layer(0, "float32"), "layer 0 of this step was already gathered")
    expect_error(lambda: s.prefetch(one, torch.tensor([4])), "not gathered yet")
    s.cancel()
    s.prefetch(one, torch.tensor([4]))
    expect_error(lambda: s.gather_into(torch.empty(2, 2, 4, 32)), "out has shape [2, 2, 4, 32], the step needs [1, 2, 4, 32]")
    expect_error(lambda: s.gather_into(torch.empty(1, 2, 4, 32, dtype=torch.float16)), "float32 or bfloat16")
    expect_error(lambda: s.gather_layer_into(0, torch.empty(1, 2, 4, 32)), "the step needs [1, 4, 32]")
    s.gather_into(torch.empty(1, 2, 4, 32))  # the failed calls left the step as it was
    expect_error(lambda: torch.classes.hashmem.Session(path, "tape", 0, ""), "tape")
    print("errors: ok")


@torch.jit.script
def scripted_step(s: torch.classes.hashmem.Session, ids: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    s.prefetch(ids, tokens)
    return s.gather("float32")


def check_prefill_batch(path):
    ref = Reference(path)
    s = hashmem_torch.session(path, "ssd", dram_budget=4096)
    a, b = s.add(), s.add()
    tokens = torch.tensor([3, 1, 4, 1, 5, 9], dtype=torch.int64)
    got = s.prefill_batch(torch.tensor([b, a]), torch.tensor([2, 4]), tokens, "bfloat16")
    want = torch.cat([ref.values([3, 1], 0), ref.values([4, 1, 5, 9], 0)]).to(torch.bfloat16)
    assert torch.equal(got, want), "prefill_batch differs"
    expect_error(lambda: s.prefill_batch(torch.tensor([a]), torch.tensor([2]), tokens, "float32"), "add up to the 6")
    expect_error(lambda: s.prefill_batch(torch.tensor([a, b]), torch.tensor([6]), tokens, "float32"), "2 request ids")
    print("prefill_batch: ok")


def check_script(path):
    s = torch.classes.hashmem.Session(path, "dram", 0, "")
    t = s.clone()  # the same table, its own requests
    ids = torch.tensor([s.add(), s.add()])
    assert torch.equal(ids, torch.tensor([t.add(), t.add()]))
    tokens = torch.tensor([7, 8])
    t.prefetch(ids, tokens)
    assert torch.equal(scripted_step(s, ids, tokens), t.gather("float32"))
    print("torch.jit.script: ok")


def main():
    with tempfile.TemporaryDirectory() as directory:
        seed = 1
        for dtype in ["f32", "bf16", "fp8"]:
            path = make_table(directory, dtype)
            for tier in ["dram", "ssd"]:
                churn(path, tier, seed)
                seed += 1
        check_errors(path)
        check_prefill_batch(path)
        check_script(path)
    print("session_torch_check: all ok")


if __name__ == "__main__":
    main()
