"""The attention ops against plain torch: exact attention (forward and all three gradients) against
torch.softmax(q kᵀ/√d [+ causal mask]) v in float64, on permuted (non-contiguous) [B, H, n, d] inputs and under
torch.jit.script; and the properties the other ops promise (LSH: finite gradients, one chunk spanning the
sequence equals full shared-QK attention; bucket: gradient to v is the adjoint of the forward; signature top-k:
selecting every key is exact attention).

Usage: attention_torch_check.py   (HASHMEM_TORCH_LIB points at libhashmem_torch.so)
Exits non-zero on any mismatch beyond float32 tolerance; 77 (skipped) without torch.
"""
import os
import sys

try:
    import torch
except ImportError:
    print('skipped: this Python has no torch (./run installs python3-torch for /usr/bin/python3)')
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import hashmem_torch  # noqa: E402,F401  (loads the library)

ops = torch.ops.hashmem


def plain_attention(q, k, v, causal):
    n, m = q.shape[-2], k.shape[-2]
    s = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if causal:
        mask = torch.ones(n, m, dtype=torch.bool).triu(m - n + 1)
        s = s.masked_fill(mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def check_exact(B, H, n, m, d, dv, causal, seed):
    torch.manual_seed(seed)
    # [B, n, H, d] permuted to [B, H, n, d], as a model's projections are: not contiguous.
    q = torch.randn(B, n, H, d, dtype=torch.float64).permute(0, 2, 1, 3)
    k = torch.randn(B, m, H, d, dtype=torch.float64).permute(0, 2, 1, 3)
    v = torch.randn(B, m, H, dv, dtype=torch.float64).permute(0, 2, 1, 3)
    g = torch.randn(B, H, n, dv, dtype=torch.float64)
    ref_in = [x.clone().requires_grad_() for x in (q, k, v)]
    ref = plain_attention(*ref_in, causal)
    ref.backward(g)
    our_in = [x.float().requires_grad_() for x in (q, k, v)]
    ours = ops.attention_exact(*our_in, causal, 0.0)
    ours.backward(g.float())
    ok = True
    err = (ours.double() - ref.detach()).abs().max().item() / (1 + ref.abs().max().item())
    ok &= err < 1e-5
    worst = err
    for name, a, b in zip("qkv", our_in, ref_in):
        e = (a.grad.double() - b.grad).abs().max().item() / (1 + b.grad.abs().max().item())
        worst = max(worst, e)
        if e > 1e-5:
            print(f"  gradient of {name}: relative error {e:.3g}")
            ok = False
    print(f"exact B{B} H{H} n{n} m{m} d{d} dv{dv} causal={causal}: worst relative error {worst:.3g} -> "
          f"{'ok' if ok else 'MISMATCH'}")
    return ok


@torch.jit.script
def scripted(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.ops.hashmem.attention_exact(q, k, v, True, 0.0)


def check_lsh():
    torch.manual_seed(3)
    qk = torch.randn(2, 3, 50, 8, requires_grad=True)
    v = torch.randn(2, 3, 50, 8, requires_grad=True)
    out = ops.attention_lsh(qk, v, 4, 0, 16, True, 7)
    out.square().sum().backward()
    ok = bool(torch.isfinite(qk.grad).all() and torch.isfinite(v.grad).all() and qk.grad.abs().sum() > 0)
    again = ops.attention_lsh(qk.detach(), v.detach(), 4, 0, 16, True, 7)
    ok &= bool(torch.equal(again, out.detach()))
    # One chunk over the whole sequence: full attention with shared QK, normalised keys and Reformer's self score.
    full = ops.attention_lsh(qk.detach(), v.detach(), 1, 2, 50, False, 0)
    x = qk.detach().double()
    s = x @ (x / x.norm(dim=-1, keepdim=True)).transpose(-2, -1) / 8 ** 0.5
    s = s.masked_fill(torch.eye(50, dtype=torch.bool), -1e5)
    ref = torch.softmax(s, dim=-1) @ v.detach().double()
    err = (full.double() - ref).abs().max().item()
    ok &= err < 1e-5
    print(f"lsh: finite gradients, deterministic, one chunk = full shared-QK attention (error {err:.3g}) -> "
          f"{'ok' if ok else 'MISMATCH'}")
    return ok


def check_bucket():
    torch.manual_seed(4)
    q, k = torch.randn(2, 40, 8), torch.randn(2, 40, 8)
    v = torch.randn(2, 40, 6, requires_grad=True)
    tokens = torch.randint(0, 5, (2, 40))
    ok = True
    for key, hash_name in (("lsh", "xxh3"), ("token", "sha256")):
        out = ops.attention_bucket(q, k, v, tokens, key, hash_name, 16, 3, 2, True, 1)
        g = torch.randn_like(out)
        (grad_v,) = torch.autograd.grad(out, v, g)
        w = torch.randn_like(v)
        out_w = ops.attention_bucket(q, k, w, tokens, key, hash_name, 16, 3, 2, True, 1)
        lhs, rhs = (g * out_w).sum().item(), (grad_v * w).sum().item()
        good = abs(lhs - rhs) < 1e-4 * (1 + abs(lhs))
        ok &= good
        print(f"bucket {key}/{hash_name}: <g, out(w)> = {lhs:.6f}, <grad_v, w> = {rhs:.6f} -> {'ok' if good else 'MISMATCH'}")
    return ok


def check_signature_topk():
    torch.manual_seed(5)
    k, v, q = torch.randn(2, 3, 300, 16), torch.randn(2, 3, 300, 8), torch.randn(2, 3, 16)
    sig = ops.attention_signatures(k, 64, 0)
    everything = ops.attention_signature_topk(q, k, v, sig, 300, 4, 16, 64, 0)
    ref = plain_attention(q[:, :, None, :].double(), k.double(), v.double(), False)[:, :, 0, :]
    err = (everything.double() - ref).abs().max().item()
    some = ops.attention_signature_topk(q, k, v, sig, 32, 4, 16, 64, 0)
    ok = err < 1e-5 and some.shape == (2, 3, 8) and bool(torch.isfinite(some).all())
    print(f"signature top-k: every key selected = exact (error {err:.3g}) -> {'ok' if ok else 'MISMATCH'}")
    return ok


def main():
    ok = True
    for causal in (False, True):
        ok &= check_exact(2, 3, 37, 37, 16, 16, causal, 1)
        ok &= check_exact(1, 2, 130, 200, 64, 24, causal, 2)
        ok &= check_exact(1, 1, 1, 9, 5, 3, causal, 3)
    q, k, v = torch.randn(1, 2, 20, 8), torch.randn(1, 2, 20, 8), torch.randn(1, 2, 20, 8)
    err = (scripted(q, k, v) - plain_attention(q, k, v, True)).abs().max().item()
    print(f"jit.script: error {err:.3g}")
    ok &= err < 1e-5
    ok &= check_lsh()
    ok &= check_bucket()
    ok &= check_signature_topk()
    print("all ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
