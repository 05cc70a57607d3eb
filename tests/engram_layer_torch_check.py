"""Our Engram layer op against the same formulas written with plain torch ops (autograd), and under jit.script.

Usage: engram_layer_torch_check.py   (HASHMEM_TORCH_LIB points at libhashmem_torch.so)
Exits non-zero on any mismatch beyond float32 tolerance.
"""
import os
import sys

try:
    import torch
except ImportError:
    print('skipped: this Python has no torch (./run installs python3-torch for /usr/bin/python3)')
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import hashmem_torch  # noqa: E402

F32_EPS = torch.finfo(torch.float32).eps


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def plain(h, e, key_w, key_b, value_w, value_b, norm1, norm2, conv_norm, conv_w, kernel, dilation):
    B, T, G, H = h.shape
    gates = []
    for g in range(G):
        key = e @ key_w[g].T + (key_b[g] if key_b.numel() else 0)
        s = (rms(key, norm1[g], F32_EPS) * rms(h[:, :, g, :], norm2[g], F32_EPS)).sum(-1) / H ** 0.5
        s = torch.sqrt(torch.clamp(s.abs(), min=1e-6)) * torch.sign(s)
        gates.append(torch.sigmoid(s))
    gate = torch.stack(gates, dim=2)[..., None]
    value = gate * (e @ value_w.T + (value_b if value_b.numel() else 0))[:, :, None, :]
    if not conv_w.numel():
        return value
    xn = torch.cat([rms(value[:, :, g, :], conv_norm[g], 1e-5) for g in range(G)], dim=-1)
    y = torch.zeros_like(xn)
    for k in range(kernel):
        shift = (kernel - 1 - k) * dilation
        if shift < T:
            y = y + torch.nn.functional.pad(conv_w[:, k] * xn[:, :T - shift, :], (0, 0, shift, 0))
    return value + torch.nn.functional.silu(y).reshape(B, T, G, H)


def check(B, T, G, H, E, K, dil, bias, conv, seed):
    torch.manual_seed(seed)
    n = lambda *s: torch.randn(*s, dtype=torch.float64)
    w = [n(G, H, E) / E ** 0.5, n(G, H) * .1 if bias else torch.zeros(0, dtype=torch.float64), n(H, E) / E ** 0.5,
         n(H) * .1 if bias else torch.zeros(0, dtype=torch.float64), 1 + .1 * n(G, H), 1 + .1 * n(G, H),
         1 + .1 * n(G, H) if conv else torch.zeros(0, dtype=torch.float64),
         n(G * H, K) * .5 if conv else torch.zeros(0, dtype=torch.float64)]
    inputs = [n(B, T, G, H), n(B, T, E)] + w
    grad_out = n(B, T, G, H)
    ref_in = [x.clone().requires_grad_(x.numel() > 0) for x in inputs]
    ref = plain(*ref_in, K, dil)
    ref.backward(grad_out)
    our_in = [x.float().clone().requires_grad_(x.numel() > 0) for x in inputs]
    ours = torch.ops.hashmem.engram_layer(*our_in, K, dil)
    ours.backward(grad_out.float())
    names = ["h", "e", "key_w", "key_b", "value_w", "value_b", "norm1", "norm2", "conv_norm", "conv_w"]
    worst = (ours.double() - ref.detach()).abs().max().item()
    ok = worst <= 1e-4 * (1 + ref.abs().max().item())
    for name, a, b in zip(names, our_in, ref_in):
        if a.numel() == 0:
            continue
        err = (a.grad.double() - b.grad).abs().max().item()
        scale = 1 + b.grad.abs().max().item()
        if err > 2e-4 * scale:
            print(f"  gradient of {name}: max error {err:.3g} (scale {scale:.3g})")
            ok = False
    print(f"B{B} T{T} G{G} H{H} E{E} K{K} dil{dil} bias={bias} conv={conv}: output error {worst:.3g} -> {'ok' if ok else 'MISMATCH'}")
    return ok


@torch.jit.script
def scripted(h: torch.Tensor, e: torch.Tensor, ws: list[torch.Tensor]) -> torch.Tensor:
    return torch.ops.hashmem.engram_layer(h, e, ws[0], ws[1], ws[2], ws[3], ws[4], ws[5], ws[6], ws[7], 4, 3)


def main():
    ok = True
    ok &= check(2, 12, 2, 16, 32, 4, 3, True, True, 0)
    ok &= check(1, 5, 1, 20, 24, 4, 3, True, True, 1)     # T < kernel * dilation, H not a multiple of 16
    ok &= check(3, 9, 4, 12, 40, 3, 2, True, True, 2)
    ok &= check(2, 7, 2, 8, 16, 4, 3, False, False, 3)    # the V4.1 variant
    # torch.jit.script: same result as eager.
    layer = hashmem_torch.EngramLayer(2, 16, 32)
    h, e = torch.randn(2, 10, 2, 16), torch.randn(2, 10, 32)
    ws = [layer.key_w, layer.key_b, layer.value_w, layer.value_b, layer.norm1, layer.norm2, layer.conv_norm, layer.conv_w]
    same = torch.equal(scripted(h, e, ws), layer(h, e))
    print(f"torch.jit.script: {'same as eager' if same else 'DIFFERS'}")
    # ngram_hash through the op equals the conformance vectors' semantics (checked in C++); here: shape and range.
    cfg = {"vocab_per_order": [1000, 1000], "max_ngram": 3, "heads": 2, "layers": [1], "pad_id": 0, "seed": 0,
           "compressed_vocab": 50}
    rows = hashmem_torch.ngram_hash(torch.randint(0, 50, (2, 9)), cfg)
    ok &= same and rows.shape == (2, 9, 4) and int(rows.min()) >= 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
