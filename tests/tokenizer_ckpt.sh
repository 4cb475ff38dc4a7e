#!/bin/sh
# tokenizer_ckpt: ckpt tokenize and ckpt detokenize, with the byte
# tokenizer ckpt init writes and with a checkpoint carrying the small GPT-2
# tokenizer, against the committed reference ids.
. "$top_srcdir/tests/lib.sh"
d=$top_srcdir/tests/tokenizer

ckpt init -o "$T/byte" --dim 16 --layers 1 --heads 2 --kv-heads 1 \
    --ffn 32 --ctx 64 >/dev/null 2>"$T/err" ||
    { fail "ckpt init: $(cat "$T/err")"; finish; }

printf '{"text":"hi","id":1}\n{"text":"a<|eos|>","id":2}\n' >"$T/in.jsonl"
ckpt tokenize -J "$T/byte" "$T/in.jsonl" >"$T/out" || fail "tokenize"
cat >"$T/want" <<'E'
{"text":"hi","id":1,"tokens":[256,104,105]}
{"text":"a<|eos|>","id":2,"tokens":[256,97,257]}
E
same "tokenize, byte tokenizer" "$T/want" "$T/out"

ckpt tokenize -J --no-special "$T/byte" <"$T/in.jsonl" >"$T/out" ||
    fail "tokenize --no-special"
cat >"$T/want" <<'E'
{"text":"hi","id":1,"tokens":[104,105]}
{"text":"a<|eos|>","id":2,"tokens":[97,257]}
E
same "tokenize --no-special" "$T/want" "$T/out"

printf '{"prompt":"x"}\n' | ckpt tokenize -J --field prompt "$T/byte" \
    >"$T/out" || fail "tokenize --field"
echo '{"prompt":"x","tokens":[256,120]}' >"$T/want"
same "tokenize --field" "$T/want" "$T/out"

# detokenize: back to text, with and without the special tokens.
ckpt tokenize "$T/byte" "$T/in.jsonl" | ckpt detokenize -J "$T/byte" |
    sed 's/.*"text":\("[^"]*"\).*/\1/' >"$T/out"
printf '"<|bos|>hi"\n"<|bos|>a<|eos|>"\n' >"$T/want"
same "detokenize" "$T/want" "$T/out"
printf '{"tokens":[256,104,105,257,999999,-1]}\n' |
    ckpt detokenize -J --skip-special "$T/byte" >"$T/out"
echo '{"tokens":[256,104,105,257,999999,-1],"text":"hi"}' >"$T/want"
same "detokenize --skip-special" "$T/want" "$T/out"

# Every corpus string round-trips through the byte tokenizer, after the
# BOS the post-processor puts in front.
sed 's/^\(.*\)$/{"text":\1}/' "$d/corpus.jsonl" >"$T/corpus.jsonl"
ckpt tokenize "$T/byte" "$T/corpus.jsonl" |
    ckpt detokenize -J "$T/byte" >"$T/round" ||
    fail "corpus round trip"
if command -v "$PYTHON3" >/dev/null 2>&1; then
	"$PYTHON3" -c 'import json, sys
want = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
got = [json.loads(l)["text"] for l in open(sys.argv[2], encoding="utf-8")]
want = ["<|bos|>" + w for w in want]
bad = [i + 1 for i, (w, g) in enumerate(zip(want, got)) if w != g]
if bad or len(want) != len(got):
    sys.exit("lines %s differ" % bad[:5])' "$d/corpus.jsonl" "$T/round" ||
	    fail "corpus round trip through the byte tokenizer"
fi
n=$(wc -l <"$T/round")
[ "$n" = "$(wc -l <"$d/corpus.jsonl")" ] || fail "round trip: $n records"

# A real tokenizer in a checkpoint: the ids of the reference.
ckpt init -o "$T/gpt2" --tokenizer "$d/small_gpt2.json" --dim 16 \
    --layers 1 --heads 2 --kv-heads 1 --ffn 32 --ctx 64 >/dev/null \
    2>"$T/err" || fail "ckpt init --tokenizer: $(cat "$T/err")"
ckpt tokenize -J "$T/gpt2" "$T/corpus.jsonl" |
    sed 's/.*"tokens":\(\[[^]]*\]\).*/\1/' >"$T/ids"
sed 's/^{"ids":\(\[[^]]*\]\).*/\1/' "$d/ref/small_gpt2.jsonl" >"$T/want"
same "tokenize, small GPT-2" "$T/want" "$T/ids"

# A post-processor whose special token has an id outside the vocabulary
# (found by fuzz_tokenizer; it crashed loading): the id is still added.
cp -r "$T/byte" "$T/bosx"
"$PYTHON3" -c 'import json, sys
t = json.load(open(sys.argv[1]))
t["post_processor"]["special_tokens"]["<|bos|>"]["ids"] = [999]
json.dump(t, open(sys.argv[1], "w"))' "$T/bosx/tokenizer.json" ||
    fail "rewrite tokenizer.json"
printf '{"text":"hi"}\n' | ckpt tokenize -J "$T/bosx" >"$T/out" ||
    fail "tokenize, BOS id outside the vocabulary"
echo '{"text":"hi","tokens":[999,104,105]}' >"$T/want"
same "tokenize, BOS id outside the vocabulary" "$T/want" "$T/out"

# Errors name the field and the record.
echo '{"txt":"x"}' >"$T/bad"
expect_fail 1 'record 1.*"text"' ckpt tokenize "$T/byte" "$T/bad"
echo '{"tokens":"x"}' >"$T/bad"
expect_fail 1 'record 1.*"tokens"' ckpt detokenize "$T/byte" "$T/bad"
finish
