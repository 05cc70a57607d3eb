"""hashmem's PyTorch operators: n-gram hashing, the fused Engram layer (forward and backward in C++), and tables
of the tiered store with sparse row updates.

    import hashmem_torch            # loads libhashmem_torch.so (HASHMEM_TORCH_LIB, else build/lib/)
    layer = hashmem_torch.EngramLayer(hc_mult=2, hidden=64, engram_dim=128)
    out = layer(h, e)               # h [B,T,G,H], e [B,T,E] -> [B,T,G,H]

The ops live in torch.ops.hashmem and torch.classes.hashmem, so they also work inside torch.jit.script.
"""
import json
import math
import os

import torch
from torch import nn

_HERE = os.path.dirname(os.path.abspath(__file__))
_DEFAULT_LIB = os.path.join(_HERE, "..", "build", "lib", "libhashmem_torch.so")
torch.ops.load_library(os.environ.get("HASHMEM_TORCH_LIB", _DEFAULT_LIB))


def ngram_hash(ids, config, layer_index=0, row_ids=True):
    """Compressed ids [B,T] int64 -> row ids (or hashes) [B,T,(N-1)*heads] int64; config: dict or JSON text."""
    text = config if isinstance(config, str) else json.dumps(config)
    return torch.ops.hashmem.ngram_hash(ids, text, layer_index, row_ids)


class EngramLayer(nn.Module):
    """The Engram gate/value/ShortConv block (SPEC section 3) with hashmem's fused kernels.

    bias=False, conv=False gives DeepSeek-V4.1's variant. Initialisation follows the reference script's scale,
    with the conv initialised to zero as in the paper.
    """

    def __init__(self, hc_mult, hidden, engram_dim, kernel=4, dilation=3, bias=True, conv=True):
        super().__init__()
        g, h, e = hc_mult, hidden, engram_dim
        self.kernel, self.dilation = kernel, dilation
        self.key_w = nn.Parameter(torch.randn(g, h, e) / math.sqrt(e))
        self.value_w = nn.Parameter(torch.randn(h, e) / math.sqrt(e))
        self.norm1 = nn.Parameter(torch.ones(g, h))
        self.norm2 = nn.Parameter(torch.ones(g, h))
        empty = lambda: nn.Parameter(torch.zeros(0), requires_grad=False)
        self.key_b = nn.Parameter(torch.zeros(g, h)) if bias else empty()
        self.value_b = nn.Parameter(torch.zeros(h)) if bias else empty()
        self.conv_norm = nn.Parameter(torch.ones(g, h)) if conv else empty()
        self.conv_w = nn.Parameter(torch.zeros(g * h, kernel)) if conv else empty()

    def forward(self, h, e):
        return torch.ops.hashmem.engram_layer(h, e, self.key_w, self.key_b, self.value_w, self.value_b, self.norm1,
                                              self.norm2, self.conv_norm, self.conv_w, self.kernel, self.dilation)


class EngramMemory(nn.Module):
    """Row lookup from a hashmem table (any tier): compressed ids -> hashed rows -> e [B,T,columns*dim].

    Gradients of the looked-up rows go to the table (summed per row); call step(lr) (SGD) or step(lr, t) (Adam)
    after backward to apply them as a sparse update on whatever tier holds the rows.
    """

    def __init__(self, table_path, config, layer_index=0, tier="dram", dram_budget=0, writable=True):
        super().__init__()
        self.table = torch.classes.hashmem.Table(table_path, tier, dram_budget, writable)
        self.config = config if isinstance(config, str) else json.dumps(config)
        self.layer_index = layer_index
        self.anchor = nn.Parameter(torch.zeros(0))  # connects lookups to the autograd graph

    def forward(self, ids):
        rows = torch.ops.hashmem.ngram_hash(ids, self.config, self.layer_index, True)
        e = torch.ops.hashmem.table_lookup(self.table, self.layer_index, rows, self.anchor)
        return e.reshape(ids.shape[0], ids.shape[1], -1)

    def step(self, lr, adam_step=0):
        """Sparse update of the looked-up rows: SGD, or Adam at step adam_step >= 1 (moments on the same tier)."""
        return self.table.adam_step(lr, adam_step) if adam_step > 0 else self.table.step(lr)

    def checkpoint(self):
        self.table.checkpoint()


# ---- attention (shapes and semantics: src/torch/attention_autograd.hpp) ----

def session(table_path, tier="dram", dram_budget=0, compression=""):
    """A serving session over the table (torch.classes.hashmem.Session; docs/serving.md "Sessions"): add/remove
    requests, prefill(id, tokens, dtype), prefetch(ids, tokens), gather(dtype) / gather_layer(layer, dtype).
    compression: the tokenizer's compression JSON ("" = tokens are compressed ids already)."""
    return torch.classes.hashmem.Session(table_path, tier, dram_budget, compression)


def attention_exact(q, k, v, causal=False, scale=0.0):
    """Tiled exact attention: q [..., n, d], k [..., m, d], v [..., m, dv] -> [..., n, dv]; autograd q, k, v."""
    return torch.ops.hashmem.attention_exact(q, k, v, causal, scale)


def attention_lsh(qk, v, rounds=4, buckets=0, chunk=64, causal=False, seed=0):
    """Reformer LSH attention with shared QK (keys = qk/|qk|): [..., n, d], [..., n, dv] -> [..., n, dv]."""
    return torch.ops.hashmem.attention_lsh(qk, v, rounds, buckets, chunk, causal, seed)


def attention_bucket(q, k, v, tokens=None, key="lsh", hash="xxh3", bucket_bits=16, sign_bits=16, rounds=1,
                     causal=True, seed=0):
    """Hash-bucket attention (mean of the values in the query's bucket); gradient to v only."""
    tokens = torch.zeros(0, dtype=torch.int64) if tokens is None else tokens
    return torch.ops.hashmem.attention_bucket(q, k, v, tokens, key, hash, bucket_bits, sign_bits, rounds, causal, seed)


def attention_signatures(k, bits=64, seed=0):
    """SimHash signatures of keys [..., m, d] -> int64 [..., m]."""
    return torch.ops.hashmem.attention_signatures(k, bits, seed)


def attention_signature_topk(q, k, v, signatures, top_k=64, sink=4, recent=64, bits=64, seed=0):
    """One query per head [..., d] against its cache [..., m, d]: exact softmax over the top-k + windows."""
    return torch.ops.hashmem.attention_signature_topk(q, k, v, signatures, top_k, sink, recent, bits, seed)
