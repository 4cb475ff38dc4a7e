// random_corpus.js: N seeded random strings (JSON Lines) for the live
// comparison: pieces of words, runs of spaces, tabs and newlines, digits,
// contractions, accents and combining marks, CJK, emoji with skin tones
// and ZWJ, special-token text and its fragments, control characters.
//
//   node random_corpus.js N SEED > corpus.jsonl
"use strict";
const [n = "2000", seed = "1"] = process.argv.slice(2);
let s = Number(seed) >>> 0;
function rnd() {		// mulberry32
  s = (s + 0x6d2b79f5) >>> 0;
  let t = s;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rnd() * a.length)];
const parts = [
  "the", "The", " quick", "brown", " fox", "jumps", "HELLO", "World",
  "don't", "I'm", "we'll", "they've", "'s", "'T", "it'd", "you're",
  " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "    ",
  "0", "7", "42", "123", "2024", "3.14", "1,000", "99999999",
  "é", "ü", "ñ", "ç", "e\u0301", "a\u0308", "\u0301", "Å", "ß", "İ", "ı",
  "中", "文", "日本", "語", "한국", "こんにちは", "ー", "。", "，",
  "😀", "👍🏽", "👨‍👩‍👧", "‍", "🏳️‍🌈", "🇫🇷", "❤️", "\ufe0f",
  "<|endoftext|>", "<s>", "</s>", "<unk>", "<|begin_of_text|>",
  "<|eot_id|>", "<|", "|>", "<", ">", "[INST]",
  "!", "?", ".", ",", ";", ":", "...", "--", "->", "=>", "(", ")", "{",
  "}", "[", "]", "#", "@", "$", "%", "&", "*", "/", "\\", "\"", "'",
  "`", "~", "^", "_", "|", "+", "=",
  "\u00a0", "\u3000", "\u2009", "\u200b", "\x01", "\x7f",
  "def", "return", "int", "x", "y", "i++", "==", "!=", "0x1F",
];
const out = [];
for (let i = 0; i < Number(n); i++) {
  const k = 1 + Math.floor(rnd() * 12);
  let str = "";
  for (let j = 0; j < k; j++) str += pick(parts);
  out.push(JSON.stringify(str));
}
process.stdout.write(out.join("\n") + "\n");
