// reference.js: encode and decode every string of a corpus with the
// reference implementation, @huggingface/tokenizers (pure JS, run by node).
//
//   node reference.js TOKENIZER.json CONFIG.json|- CORPUS.jsonl
//
// prints one JSON line per corpus string:
//   {"ids": encode(s).ids, "plain": encode(s, no special).ids,
//    "text": decode(ids), "skip": decode(ids, skip_special_tokens)}
// the same lines `unit_tokenizer --dump` prints.  To keep committed
// references small, plain is null when it equals ids, text when it equals
// s, and skip when it equals text.  Decoding never cleans
// up spaces: that is transformers' business, not the tokenizer's.
"use strict";
const fs = require("fs");
const { Tokenizer } = require("@huggingface/tokenizers");

const [tokPath, cfgPath, corpusPath] = process.argv.slice(2);
const tokJson = JSON.parse(fs.readFileSync(tokPath, "utf8"));
const cfg = cfgPath === "-" ? {} : JSON.parse(fs.readFileSync(cfgPath, "utf8"));
cfg.clean_up_tokenization_spaces = false;
const tok = new Tokenizer(tokJson, cfg);

function decode(ids, skip) {
  if (ids.length === 0) return "";	// the library refuses an empty list
  return tok.decode(ids, { skip_special_tokens: skip });
}

const out = [];
for (const line of fs.readFileSync(corpusPath, "utf8").split("\n")) {
  if (line === "") continue;
  const s = JSON.parse(line);
  const ids = tok.encode(s).ids;
  const plain = tok.encode(s, { add_special_tokens: false }).ids;
  const text = decode(ids, false), skip = decode(ids, true);
  const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  out.push(JSON.stringify({ ids, plain: same(plain, ids) ? null : plain,
    text: text === s ? null : text, skip: skip === text ? null : skip }));
}
process.stdout.write(out.join("\n") + "\n");
