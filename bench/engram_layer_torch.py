"""bench engram-layer: tokens/s of hashmem's fused Engram layer op against the same layer composed from libtorch
ops (the formulas of SPEC section 3 written with torch functions), forward and forward+backward, in one run.

Usage: engram_layer_torch.py [--hidden 256,512] [--tokens 4096] [--seconds 2] [--threads 2] [--json]
HASHMEM_TORCH_LIB points at libhashmem_torch.so.
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import hashmem_torch  # noqa: E402,F401

F32_EPS = torch.finfo(torch.float32).eps


def composed(h, e, key_w, key_b, value_w, value_b, norm1, norm2, conv_norm, conv_w, kernel: int, dilation: int):
    """The layer from torch ops, batched over branches (a fair, vectorised composition)."""
    B, T, G, H = h.shape
    key = torch.einsum("bte,ghe->btgh", e, key_w) + key_b
    k = key * torch.rsqrt(key.pow(2).mean(-1, keepdim=True) + F32_EPS) * norm1
    q = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + F32_EPS) * norm2
    s = (k * q).sum(-1) / H ** 0.5
    s = torch.sqrt(torch.clamp(s.abs(), min=1e-6)) * torch.sign(s)
    gate = torch.sigmoid(s)[..., None]
    value = gate * torch.nn.functional.linear(e, value_w, value_b)[:, :, None, :]
    xn = (value * torch.rsqrt(value.pow(2).mean(-1, keepdim=True) + 1e-5) * conv_norm).reshape(B, T, G * H)
    x = torch.nn.functional.pad(xn.transpose(1, 2), ((kernel - 1) * dilation, 0))
    y = torch.nn.functional.conv1d(x, conv_w[:, None, :], dilation=dilation, groups=G * H).transpose(1, 2)
    return value + torch.nn.functional.silu(y).reshape(B, T, G, H)


def timed(fn, seconds):
    fn()  # warm up
    best = float("inf")
    for _ in range(3):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            t = time.perf_counter() - t0
            if t >= seconds / 3:
                break
        best = min(best, t / n)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", default="256,512")
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--hc-mult", type=int, default=2)
    ap.add_argument("--engram-dim", type=int, default=0, help="E (default: 2 x hidden)")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    results = []
    for H in [int(x) for x in a.hidden.split(",")]:
        G, E, K, dil = a.hc_mult, a.engram_dim or 2 * H, 4, 3
        B, T = a.tokens // 512, 512
        ws = [torch.randn(G, H, E) / E ** 0.5, torch.randn(G, H) * .1, torch.randn(H, E) / E ** 0.5, torch.randn(H) * .1,
              1 + .1 * torch.randn(G, H), 1 + .1 * torch.randn(G, H), 1 + .1 * torch.randn(G, H), torch.randn(G * H, K) * .5]
        h, e = torch.randn(B, T, G, H), torch.randn(B, T, E)
        ours_out = torch.ops.hashmem.engram_layer(h, e, *ws, K, dil)
        ref_out = composed(h, e, *ws, K, dil)
        err = (ours_out - ref_out).abs().max().item()
        params = [w.clone().requires_grad_() for w in ws]
        hg, eg = h.clone().requires_grad_(), e.clone().requires_grad_()
        g = torch.randn_like(h)

        def fwd_ours():
            with torch.no_grad():
                torch.ops.hashmem.engram_layer(h, e, *ws, K, dil)

        def fwd_ref():
            with torch.no_grad():
                composed(h, e, *ws, K, dil)

        def step_ours():
            torch.ops.hashmem.engram_layer(hg, eg, *params, K, dil).backward(g)

        def step_ref():
            composed(hg, eg, *params, K, dil).backward(g)

        tokens = B * T
        r = {"hidden": H, "hc_mult": G, "engram_dim": E, "tokens": tokens, "max_abs_diff": err,
             "forward_tokens_per_s": tokens / timed(fwd_ours, a.seconds),
             "torch_forward_tokens_per_s": tokens / timed(fwd_ref, a.seconds),
             "train_tokens_per_s": tokens / timed(step_ours, a.seconds),
             "torch_train_tokens_per_s": tokens / timed(step_ref, a.seconds)}
        r["forward_speedup"] = r["forward_tokens_per_s"] / r["torch_forward_tokens_per_s"]
        r["train_speedup"] = r["train_tokens_per_s"] / r["torch_train_tokens_per_s"]
        results.append(r)
        if not a.json:
            print(f"Engram layer H={H} G={G} E={E}, {tokens} tokens, {a.threads} threads: forward {r['forward_tokens_per_s']/1e3:.1f} k tokens/s "
                  f"vs libtorch ops {r['torch_forward_tokens_per_s']/1e3:.1f} k ({r['forward_speedup']:.2f}x); forward+backward "
                  f"{r['train_tokens_per_s']/1e3:.1f} k vs {r['torch_train_tokens_per_s']/1e3:.1f} k ({r['train_speedup']:.2f}x); "
                  f"max |diff| {err:.2g}", flush=True)
    if a.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
