// bench.js: the same measurement as bench_tokenizer.c, with
// @huggingface/tokenizers (tokenizers.js), for comparison.
//
//   node bench.js TOKENIZER.json TEXT [REPEAT]   (bench/bench_tokenizer.sh)
"use strict";
const fs = require("fs");
const { Tokenizer } = require("@huggingface/tokenizers");
const [tokPath, textPath, reps = "3"] = process.argv.slice(2);
const tok = new Tokenizer(JSON.parse(fs.readFileSync(tokPath, "utf8")),
  { clean_up_tokenization_spaces: false });
const text = fs.readFileSync(textPath, "utf8");
const bytes = Buffer.byteLength(text, "utf8");
const paras = text.split(/(?=\n\n)/);
let best = Infinity, ntok = 0;
for (let r = 0; r < Number(reps); r++) {
  const t0 = process.hrtime.bigint();
  ntok = 0;
  for (const p of paras)
    ntok += tok.encode(p, { add_special_tokens: false }).ids.length;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (s < best) best = s;
}
console.log(`js_tokens=${ntok}`);
console.log(`js_encode_mb_per_s=${(bytes / best / 1e6).toFixed(1)}`);
