// shrink.js: a small tokenizer.json cut from a big one, for committing:
// the vocabulary below id N, the merges among those tokens (in their
// order), and every added token.  The pipeline stays the same, so the
// small one exercises the same code as the original.
//
//   node shrink.js BIG.json N > small.json
"use strict";
const fs = require("fs");
const [path, nstr] = process.argv.slice(2);
const n = Number(nstr);
const tok = JSON.parse(fs.readFileSync(path, "utf8"));
const m = tok.model;
const vocab = Object.create(null);
for (const [k, v] of Object.entries(m.vocab)) if (v < n) vocab[k] = v;
const pair = (x) => (Array.isArray(x) ? x : x.split(" "));
m.merges = m.merges.filter((x) => {
  const [a, b] = pair(x);
  return a in vocab && b in vocab && (a + b) in vocab;
});
m.vocab = vocab;
process.stdout.write(JSON.stringify(tok));
