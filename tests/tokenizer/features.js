// features.js: variants of the small tokenizers that switch on pipeline
// stages the real ones do not use, so the reference covers them too:
//
//   feat_norm:   NFKC, Strip, Replace (regex), Prepend; Digits and
//                ByteLevel with add_prefix_space; added tokens with
//                lstrip, rstrip, normalized (from small_gpt2)
//   feat_meta:   Metaspace pre-tokenizer (prepend_scheme first), a
//                template adding BOS and EOS (from small_llama2)
//   feat_split:  Split with the Qwen2 regex and a literal, ByteLevel
//                without its regex (from small_gpt2)
//
//   node features.js DIR      (reads DIR/small_*.json, writes DIR/feat_*)
"use strict";
const fs = require("fs");
const dir = process.argv[2];
const load = (n) => JSON.parse(fs.readFileSync(`${dir}/${n}.json`, "utf8"));
const save = (n, t) => fs.writeFileSync(`${dir}/${n}.json`, JSON.stringify(t));
const added = (id, content, o) => Object.assign({ id, content,
  single_word: false, lstrip: false, rstrip: false, normalized: false,
  special: false }, o);

let t = load("small_gpt2");
t.normalizer = { type: "Sequence", normalizers: [
  { type: "NFKC" },
  { type: "Replace", pattern: { Regex: "\\s{4,}" }, content: "\t" },
  { type: "Replace", pattern: { String: "!" }, content: "! " },
  { type: "Prepend", prepend: "^" },
  { type: "Strip", strip_left: false, strip_right: true } ] };
t.pre_tokenizer = { type: "Sequence", pretokenizers: [
  { type: "Digits", individual_digits: true },
  { type: "ByteLevel", add_prefix_space: true, trim_offsets: true,
    use_regex: true } ] };
t.added_tokens.push(added(2000, "<s>", { special: true, lstrip: true }));
t.added_tokens.push(added(2001, "</s>", { special: true, rstrip: true }));
t.added_tokens.push(added(2002, "world", { normalized: true }));
t.added_tokens.push(added(2003, "[INST]", { special: false }));
save("feat_norm", t);

t = load("small_llama2");
t.normalizer = null;
t.pre_tokenizer = { type: "Metaspace", replacement: "\u2581",
  prepend_scheme: "first", split: false };
t.post_processor = { type: "TemplateProcessing",
  single: [{ SpecialToken: { id: "<s>", type_id: 0 } },
    { Sequence: { id: "A", type_id: 0 } },
    { SpecialToken: { id: "</s>", type_id: 0 } }],
  pair: [], special_tokens: {
    "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] },
    "</s>": { id: "</s>", ids: [2], tokens: ["</s>"] } } };
save("feat_meta", t);

t = load("small_gpt2");
t.pre_tokenizer = { type: "Sequence", pretokenizers: [
  { type: "Split", pattern: { Regex:
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" },
    behavior: "Isolated", invert: false },
  { type: "Split", pattern: { String: "," }, behavior: "Isolated",
    invert: false },
  { type: "ByteLevel", add_prefix_space: false, trim_offsets: false,
    use_regex: false } ] };
save("feat_split", t);
