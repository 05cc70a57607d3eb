"""A few training steps of an Engram memory + layer on a toy task, with hashmem's ops.

Usage: example_train.py [WORKDIR]  (needs build/bin/hashmem for the table; HASHMEM_CLI overrides its path)
Creates a small table, learns to map token n-grams to targets, prints the loss per step, and checks it fell.
"""
import json
import os
import subprocess
import sys
import tempfile

try:
    import torch
except ImportError:
    print('skipped: this Python has no torch (./run installs python3-torch for /usr/bin/python3)')
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hashmem_torch  # noqa: E402

torch.manual_seed(0)
torch.set_num_threads(2)
here = os.path.dirname(os.path.abspath(__file__))
cli = os.environ.get("HASHMEM_CLI", os.path.join(here, "..", "build", "bin", "hashmem"))
workdir = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="hashmem-example-")
config = {"vocab_per_order": [2000, 2000], "max_ngram": 3, "heads": 4, "layers": [1], "pad_id": 0, "seed": 0,
          "compressed_vocab": 64}
os.makedirs(workdir, exist_ok=True)
config_path = os.path.join(workdir, "config.json")
table_path = os.path.join(workdir, "table.safetensors")
with open(config_path, "w") as f:
    json.dump(config, f)
dim = 16
subprocess.run([cli, "table", "create", "--config", config_path, "--dim", str(dim), "--dtype", "f32", "--init", "normal",
                "--std", "0.1", "--out", table_path], check=True, stdout=subprocess.DEVNULL)

B, T, G, H = 4, 32, 2, 24
E = (config["max_ngram"] - 1) * config["heads"] * dim
memory = hashmem_torch.EngramMemory(table_path, config)
layer = hashmem_torch.EngramLayer(G, H, E, kernel=4, dilation=config["max_ngram"])
dense = torch.optim.Adam(layer.parameters(), lr=1e-2)
ids = torch.randint(0, config["compressed_vocab"], (B, T))
h = torch.randn(B, T, G, H)
target = torch.randn(B, T, G, H)
losses = []
for step in range(30):
    out = layer(h, memory(ids))
    loss = torch.nn.functional.mse_loss(out, target)
    dense.zero_grad()
    loss.backward()
    dense.step()
    memory.step(5e-2, adam_step=step + 1)  # sparse Adam on the table rows: 5x the dense rate, no weight decay
    losses.append(loss.item())
    print(f"step {step:2d}  loss {loss.item():.4f}")
memory.checkpoint()
assert losses[-1] < 0.9 * losses[0], "the loss did not fall"
print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}; table checkpointed at {table_path}")
