"""The multi-domain text set of the cache study (docs/cache_study.md, "The streams"): four domains of real text
from the corpus and from Debian packages, each split into training and held-out documents.

  corpus  Brown, KJV, Python docs: the documents of build/data/corpus/{train,valid}.txt (docs/data.md)
  code    C and C++ headers: the regular files under /usr/include (.h .hpp .hh .hxx .tcc .inc .def, and the
          extensionless C++ standard headers), one document per file
  docs    English documentation: dict-gcide's entries (one document per dictionary entry, from its index) and
          the man pages of manpages + manpages-dev (roff markup stripped, one document per page)
  zh      Chinese: fortunes-zh (one document per fortune: sayings, Tang and Song poems) and manpages-zh (zh_CN
          and zh_TW pages, roff stripped; both translations of a page share its split)

Output (build/data/streams by default): <domain>.train.txt and <domain>.heldout.txt in the corpus format
(documents separated by one empty line, so empty lines inside a document are dropped and trailing whitespace is
trimmed), and manifest.json (per domain: sources, documents, bytes of each part). Token counts need the
tokenizer: `hashmem bench cache --json` reports them per domain.

The split is by document and deterministic: each document has a key, SHA-256 of (domain, its name — the page
name for man pages, so a page's translations stay together); documents are taken in key order, the first ones
go to the held-out part until it holds `heldout_bytes`, the rest to training until the domain's `cap_bytes`.
Files are written under a temporary name and renamed; the manifest last, so an interrupted run leaves no
manifest and the next run redoes the set.

Usage: make_streams.py [--out DIR] [--corpus DIR] [--include DIR]   (the tests pass small source trees)
"""
import argparse
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys

# Per domain: bytes held out (>= 1 M tokens of DeepSeek-V3's tokenizer at the measured bytes per token) and the
# cap on the domain's total bytes (0 = no cap).
DOMAINS = {
    "corpus": {"heldout_bytes": 5_600_000, "cap_bytes": 0},
    "code": {"heldout_bytes": 4_400_000, "cap_bytes": 30_000_000},
    "docs": {"heldout_bytes": 5_600_000, "cap_bytes": 36_000_000},
    "zh": {"heldout_bytes": 4_800_000, "cap_bytes": 0},
}
CODE_SUFFIXES = (".h", ".hpp", ".hh", ".hxx", ".tcc", ".inc", ".def")
MAX_FILE_BYTES = 1_000_000  # generated giant headers (register maps, tables) would dominate the code domain


def clean(text):
    """A document in the corpus format: lines right-trimmed, empty lines and NULs dropped, ending in a newline."""
    lines = [ln.rstrip() for ln in text.replace("\0", "").replace("\r", "").split("\n")]
    body = "\n".join(ln for ln in lines if ln)
    return body + "\n" if body else ""


ANSI = re.compile(r"\x1b\[[0-9;]*m")
ROFF_ESCAPE = re.compile(r"\\(f\[[^\]]*\]|f\(..|f.|\(..|\*\(..|\*\[[^\]]*\]|\*.|s[-+]?\d+|[&|^%:cd])")


def strip_roff(src):
    """Man page source → readable text: requests dropped except the text of font/section macros, escapes simplified."""
    out = []
    for line in src.split("\n"):
        if line.startswith(('.\\"', "'\\\"", '.\\\\"')):
            continue
        if line.startswith((".", "'")):
            m = re.match(r"[.'](SH|SS|B|I|BI|BR|IB|IR|RB|RI|SM|SB|TP|IP|Nm|Nd|Sh|Ss|Fn|Fa|Ar|Fl|Pa)\s+(.*)", line)
            if not m:
                continue
            line = m.group(2).replace('"', "")
        line = ROFF_ESCAPE.sub("", line.replace("\\-", "-").replace("\\e", "\\").replace("\\ ", " "))
        out.append(line)
    return "\n".join(out)


def read_gz(path):
    with gzip.open(path, "rb") as f:
        return f.read().decode("utf-8", errors="replace")


def dpkg_files(package, suffix):
    listing = subprocess.run(["dpkg-query", "-L", package], capture_output=True, text=True, check=True).stdout
    return sorted(p for p in listing.split("\n") if p.endswith(suffix) and os.path.isfile(p))


def corpus_docs(corpus_dir):
    for name in ("train.txt", "valid.txt"):
        with open(os.path.join(corpus_dir, name), encoding="utf-8") as f:
            for i, doc in enumerate(f.read().split("\n\n")):
                yield f"{name}#{i}", doc


def code_docs(include_dir):
    for root, dirs, files in os.walk(include_dir):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            ok = name.endswith(CODE_SUFFIXES) or ("/c++/" in path and "." not in name)
            if not ok or os.path.getsize(path) > MAX_FILE_BYTES:
                continue
            with open(path, "rb") as f:
                raw = f.read()
            try:
                yield os.path.relpath(path, include_dir), raw.decode("utf-8")
            except UnicodeDecodeError:
                continue


B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def dict_number(s):
    n = 0
    for ch in s:
        n = n * 64 + B64.index(ch)
    return n


def gcide_docs(dictd="/usr/share/dictd"):
    with gzip.open(os.path.join(dictd, "gcide.dict.dz"), "rb") as f:
        data = f.read()
    seen = set()
    with open(os.path.join(dictd, "gcide.index"), encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or parts[0].startswith("00-database"):
                continue
            off, length = dict_number(parts[1]), dict_number(parts[2])
            if off in seen:
                continue
            seen.add(off)
            yield f"gcide:{off}", data[off:off + length].decode("utf-8", errors="replace")


def man_page_docs(packages):
    for pkg in packages:
        for path in dpkg_files(pkg, ".gz"):
            if "/man/" not in path:
                continue
            page = os.path.basename(path)[:-3]
            yield f"man:{page}", strip_roff(read_gz(path))


def fortune_docs(fortunes="/usr/share/games/fortunes"):
    for name in ("chinese", "tang300", "song100"):
        with open(os.path.join(fortunes, name), encoding="utf-8", errors="replace") as f:
            for i, doc in enumerate(f.read().split("\n%\n")):
                yield f"fortune:{name}#{i}", ANSI.sub("", doc)


def sources(domain, args):
    if domain == "corpus":
        return {"corpus": (os.path.abspath(args.corpus), corpus_docs(args.corpus))}
    if domain == "code":
        return {"include": (os.path.abspath(args.include), code_docs(args.include))}
    if domain == "docs":
        return {"dict-gcide": ("/usr/share/dictd/gcide.dict.dz", gcide_docs()),
                "manpages+manpages-dev": ("dpkg -L manpages manpages-dev",
                                          man_page_docs(["manpages", "manpages-dev"]))}
    return {"fortunes-zh": ("/usr/share/games/fortunes", fortune_docs()),
            "manpages-zh": ("dpkg -L manpages-zh", man_page_docs(["manpages-zh"]))}


def split(domain, docs, heldout_bytes, cap_bytes):
    """docs: (name, text) pairs. Returns (heldout, train) lists of cleaned texts, in key order."""
    keyed = []
    for name, text in docs:
        text = clean(text)
        if text:
            keyed.append((hashlib.sha256(f"{domain}\0{name}".encode()).digest(), name, text))
    keyed.sort()
    heldout, train, held, total = [], [], 0, 0
    for _, _, text in keyed:
        size = len(text.encode("utf-8"))
        if cap_bytes and total + size > cap_bytes:
            continue
        total += size
        if held < heldout_bytes:
            heldout.append(text)
            held += size
        else:
            train.append(text)
    return heldout, train


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="build/data/streams")
    ap.add_argument("--corpus", default="build/data/corpus")
    ap.add_argument("--include", default="/usr/include")
    ap.add_argument("--domains", default=",".join(DOMAINS))
    ap.add_argument("--heldout-scale", type=float, default=1.0, help="scale the held-out and cap bytes (tests)")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    manifest = {"format": "hashmem-streams 1", "split": "by document: SHA-256(domain, name) order, held-out first",
                "domains": {}}
    for domain in args.domains.split(","):
        if domain not in DOMAINS:
            sys.exit(f"make_streams.py: unknown domain '{domain}' (known: {', '.join(DOMAINS)})")
        spec = DOMAINS[domain]
        docs, where = [], {}
        for source, (path, it) in sources(domain, args).items():
            before = len(docs)
            docs.extend(it)
            where[source] = {"path": path, "documents": len(docs) - before}
        heldout, train = split(domain, docs, int(spec["heldout_bytes"] * args.heldout_scale),
                               int(spec["cap_bytes"] * args.heldout_scale))
        entry = {"sources": where}
        for part, texts in (("heldout", heldout), ("train", train)):
            path = os.path.join(args.out, f"{domain}.{part}.txt")
            body = "\n".join(texts)
            write_atomic(path, body)
            entry[part] = {"file": os.path.basename(path), "documents": len(texts),
                           "bytes": len(body.encode("utf-8"))}
        manifest["domains"][domain] = entry
        print(f"make_streams: {domain}: {entry['train']['documents']} training documents "
              f"({entry['train']['bytes'] / 1e6:.1f} MB), {entry['heldout']['documents']} held out "
              f"({entry['heldout']['bytes'] / 1e6:.1f} MB)", file=sys.stderr)
    write_atomic(os.path.join(args.out, "manifest.json"), json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
