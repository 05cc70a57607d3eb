"""bench/make_streams.py's split (the cache study's data step): by document, deterministic, held-out first until
its byte target, the cap respected, nothing in both parts, and the same output whatever order the files were made
in. Runs on small made-up sources (corpus and code domains; the others read Debian packages)."""
import json
import os
import random
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
import make_streams  # noqa: E402


def make_sources(root, order_seed):
    corpus, include = os.path.join(root, "corpus"), os.path.join(root, "include")
    os.makedirs(corpus)
    os.makedirs(os.path.join(include, "sub"))
    docs = [f"document {i}\nline two of {i}\n" + "word " * (i * 7 % 50) + "\n" for i in range(60)]
    with open(os.path.join(corpus, "train.txt"), "w") as f:
        f.write("\n".join(docs[:50]))
    with open(os.path.join(corpus, "valid.txt"), "w") as f:
        f.write("\n".join(docs[50:]))
    names = [f"h{i}.h" if i % 3 else f"sub/h{i}.hpp" for i in range(40)]
    random.Random(order_seed).shuffle(names)
    for name in names:
        with open(os.path.join(include, name), "w") as f:
            f.write(f"#define X_{name.replace('/', '_').replace('.', '_')} 1\n\n\nint f(int);\n")
    with open(os.path.join(include, "notes.txt"), "w") as f:
        f.write("not a header\n")
    return corpus, include


def run(root, order_seed):
    corpus, include = make_sources(root, order_seed)
    out = os.path.join(root, "out")
    make_streams.main(["--out", out, "--corpus", corpus, "--include", include, "--domains", "corpus,code",
                       "--heldout-scale", "0.0002"])
    parts = {}
    for name in sorted(os.listdir(out)):
        with open(os.path.join(out, name), encoding="utf-8") as f:
            parts[name] = f.read()
    manifest = json.loads(parts.pop("manifest.json"))
    for domain in manifest["domains"].values():
        for source in domain["sources"].values():
            source.pop("path")  # the temporary directory
    parts["manifest"] = manifest
    return parts


def documents(text):
    return [d for d in text.split("\n\n") if d]


def main():
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        first, second = run(a, 1), run(b, 2)
    assert first == second, "the split depends on the order the files were made in"
    assert first["manifest"]["domains"]["code"]["sources"]["include"]["documents"] == 40
    assert not any(n.endswith(".tmp") for n in first), "a temporary file was left"
    for domain, total in (("corpus", 60), ("code", 40)):
        held, train = documents(first[f"{domain}.heldout.txt"]), documents(first[f"{domain}.train.txt"])
        assert held and train, f"{domain}: an empty part"
        assert not set(held) & set(train), f"{domain}: a document in both parts"
        assert len(held) + len(train) == total, f"{domain}: {len(held)} + {len(train)} documents, expected {total}"
        for d in held + train:
            assert "\n\n" not in d and not d.endswith(" \n"), f"{domain}: a document not in the corpus format"
        target = make_streams.DOMAINS[domain]["heldout_bytes"] * 0.0002
        held_bytes = len(first[f"{domain}.heldout.txt"].encode()) - (len(held) - 1)  # without the separators
        assert held_bytes >= target, f"{domain}: held-out {held_bytes} B < target {target}"
        # held-out stops at the first document that reaches the target
        assert held_bytes - len(held[-1].encode()) < target, f"{domain}: held-out overshoots by a document"
    assert "not a header" not in first["code.train.txt"] + first["code.heldout.txt"]
    print("make_streams split: ok")


if __name__ == "__main__":
    main()
