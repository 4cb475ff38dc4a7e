#!/bin/sh
# score --logprob, --rm, --flr through the tool: tokens against text,
# pairs, batch sizes, rollout's log-probs, chat templates, follow-up
# files, and the errors.  The numbers themselves are checked against
# PyTorch fixtures and hand computations in tests/unit_score.c.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

ckpt init -o "$T/m" --dim 32 --layers 2 --heads 4 --kv-heads 2 --ffn 48 \
    --ctx 256 --seed 3 || fail "ckpt init"
ckpt init -o "$T/rm" --dim 32 --layers 2 --heads 4 --ffn 48 --head score \
    --seed 4 || fail "ckpt init --head score"
ckpt init -o "$T/q" --arch qwen2 --dim 32 --layers 2 --heads 4 \
    --kv-heads 2 --ffn 48 --seed 5 || fail "ckpt init qwen2"
ckpt init -o "$T/q3" --arch qwen3 --dim 32 --layers 2 --heads 4 \
    --kv-heads 2 --head-dim 12 --ffn 48 --seed 6 || fail "ckpt init qwen3"
ckpt init -o "$T/q3rm" --arch qwen3 --dim 32 --layers 2 --heads 4 \
    --head-dim 12 --attention-bias --ffn 48 --head score --seed 7 ||
    fail "ckpt init qwen3 --head score"

# close A B [TOL]: two JSON Lines files whose numbers agree to TOL.
close() {
	"$PYTHON3" - "$1" "$2" "${3:-1e-4}" <<'E'
import json, sys
tol = float(sys.argv[3])
def walk(a, b, path):
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), (path, a, b)
        for k in a:
            walk(a[k], b[k], path + "." + k)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), (path, a, b)
        for i, (x, y) in enumerate(zip(a, b)):
            walk(x, y, "%s[%d]" % (path, i))
    elif isinstance(a, float) or isinstance(b, float):
        assert abs(a - b) <= tol * (1 + abs(b)), (path, a, b)
    else:
        assert a == b, (path, a, b)
A = [json.loads(l) for l in open(sys.argv[1])]
B = [json.loads(l) for l in open(sys.argv[2])]
assert len(A) == len(B), (len(A), len(B))
for i, (a, b) in enumerate(zip(A, B)):
    walk(a, b, "record %d" % (i + 1))
E
}

# --- --logprob ------------------------------------------------------------
# Text is tokenized as rollout and train-step do: the prompt with BOS, the
# response with EOS appended.  The byte tokenizer makes ids easy.
cat >"$T/text" <<'E'
{"id":"a","prompt":"Hello","response":" world"}
{"id":"b","prompt":"2+2=","chosen":{"response":"4"},"rejected":{"response":"5!"}}
E
cat >"$T/tok" <<'E'
{"id":"a","prompt_tokens":[256,72,101,108,108,111],"response_tokens":[32,119,111,114,108,100,257]}
{"id":"b","prompt_tokens":[256,50,43,50,61],"chosen":{"response_tokens":[52,257]},"rejected":{"response_tokens":[53,33,257]}}
E
score --logprob "$T/m" -J "$T/text" >"$T/out.text" || fail "logprob text"
score --logprob "$T/m" -J "$T/tok" >"$T/out.tok" || fail "logprob tokens"
"$PYTHON3" - "$T/out.text" "$T/out.tok" <<'E' || fail "text equals tokens"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
def sides(r):
    return [r] if "chosen" not in r else [r["chosen"], r["rejected"]]
n = 0
for x, y in zip(a, b):
    for s, t in zip(sides(x), sides(y)):
        assert s["ref_logprobs"] == t["ref_logprobs"], (s, t)
        assert len(s["ref_logprobs"]) == len(t["response_tokens"])
        assert abs(sum(s["ref_logprobs"]) - s["ref_logprob"]) < 1e-4
        assert all(v < 0 for v in s["ref_logprobs"])
        n += 1
assert n == 3
assert list(a[0]) == ["id", "prompt", "response", "ref_logprobs",
                      "ref_logprob"], list(a[0])
E
# Batch size changes nothing but rounding.
score --logprob "$T/m" -b 1 -J "$T/tok" >"$T/out.b1" || fail "-b 1"
close "$T/out.b1" "$T/out.tok" || fail "batch size 1"
# --as names the prefix; --retokenize ignores the token fields.
sed 's/"prompt_tokens":\[256,/"prompt":"Hello","prompt_tokens":[258,/' \
    "$T/tok" | head -1 >"$T/both"
sed -i 's/"response_tokens"/"response":" world","response_tokens"/' \
    "$T/both"
score --logprob "$T/m" --retokenize --as policy "$T/both" |
    recs to-tsv policy_logprob >"$T/got" || fail "--retokenize"
head -1 "$T/text" | score --logprob "$T/m" | recs to-tsv ref_logprob \
    >"$T/want"
same "--retokenize" "$T/want" "$T/got"
# Messages go through the chat template with the generation prompt.
printf '%s\n' '{"messages":[{"role":"user","content":"Hi"}],"response":"x"}' |
    score --logprob "$T/m" --chat-template chatml -J >"$T/got" ||
    fail "messages"
check "messages scored" grep -q '"ref_logprob":' "$T/got"

# Against rollout's own log-probs of its samples (a KV-cache decode).
if command -v rollout >/dev/null 2>&1; then
	printf '%s\n' '{"prompt":"Once"}' '{"prompt":"The cat sat"}' |
	    rollout -m "$T/m" -n 3 --max-tokens 8 >"$T/roll" ||
	    fail "rollout"
	score --logprob "$T/m" -J "$T/roll" >"$T/rs" || fail "score rollout"
	"$PYTHON3" - "$T/rs" <<'E' || fail "rollout logprobs"
import json, sys
n = 0
for l in open(sys.argv[1]):
    r = json.loads(l)
    assert len(r["logprobs"]) == len(r["ref_logprobs"])
    for x, y in zip(r["logprobs"], r["ref_logprobs"]):
        assert abs(x - y) < 1e-4 * (1 + abs(x)), (x, y)
    assert abs(sum(r["logprobs"]) - r["ref_logprob"]) < 1e-3
    n += 1
assert n == 6, n
E
else
	echo "rollout not built: compared with the fixtures only" >&2
fi

# --- --rm -----------------------------------------------------------------
score --rm "$T/rm" -J "$T/text" >"$T/out.rm" || fail "rm"
printf '%s\n' '{"prompt":"2+2=","response":"4"}' '{"prompt":"2+2=","response":"5!"}' |
    score --rm "$T/rm" -b 1 | recs to-tsv reward >"$T/want"
"$PYTHON3" -c 'import json,sys
r=[json.loads(l) for l in open(sys.argv[1])][1]
print(r["chosen"]["reward"]); print(r["rejected"]["reward"])' "$T/out.rm" \
    >"$T/got"
"$PYTHON3" -c 'import sys
a=[float(x) for x in open(sys.argv[1])]; b=[float(x) for x in open(sys.argv[2])]
assert len(a) == 2 and all(abs(x-y) < 1e-4 for x, y in zip(a, b)), (a, b)' \
    "$T/want" "$T/got" || fail "rm: pair sides equal single records"
# score --rm reads the reward where train-step --loss rm trained it: the
# margins train-step reports (lr 0: the model as it is) equal score's.
if command -v train-step >/dev/null 2>&1; then
	printf '%s\n' '{"prompt":"1+2=","chosen":"3","rejected":"4"}' \
	    '{"prompt":"5+5=","chosen":"10","rejected":"11!"}' |
	    pair --from-strings >"$T/two.pairs"
	train-step -m "$T/rm" -o "$T/rm.same" --loss rm --lr 0 --batch-size 1 \
	    --no-shuffle <"$T/two.pairs" | recs to-tsv margin >"$T/m.train" ||
	    fail "train-step --loss rm"
	score --rm "$T/rm" <"$T/two.pairs" |
	    recs to-tsv chosen.reward rejected.reward |
	    awk -F '\t' '{ print $1 - $2 }' >"$T/m.score"
	"$PYTHON3" -c 'import sys
a=[float(x) for x in open(sys.argv[1])]; b=[float(x) for x in open(sys.argv[2])]
assert len(a) == 2 and all(abs(x-y) < 1e-4 for x, y in zip(a, b)), (a, b)' \
	    "$T/m.train" "$T/m.score" || fail "rm: score --rm agrees with train-step"
fi

# Conversations go through the template; plain prompts are read as they are.
printf '%s\n' '{"messages":[{"role":"user","content":"2+2="}],"response":"4"}' >"$T/conv"
score --rm "$T/rm" --chat-template chatml --as judge "$T/conv" |
    recs to-tsv judge >"$T/got" || fail "rm chatml"
score --rm "$T/rm" --chat-template plain "$T/conv" | recs to-tsv reward >"$T/got2"
check "rm: a template changes the text scored" \
    test "$(cat "$T/got")" != "$(cat "$T/got2")"

# --- --flr ----------------------------------------------------------------
score --flr "$T/m" --details -J "$T/text" >"$T/flr" || fail "flr"
score --flr "$T/m" --details --no-cache -b 64 -J "$T/text" >"$T/flr.nc" ||
    fail "flr --no-cache"
close "$T/flr" "$T/flr.nc" 1e-4 || fail "flr: cache equals forward passes"
"$PYTHON3" - "$T/flr" <<'E' || fail "flr details"
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    for s in ([r] if "chosen" not in r else [r["chosen"], r["rejected"]]):
        p, n = s["flr_positive"], s["flr_negative"]
        assert len(p) == 10 and len(n) == 10
        want = sum(p) / 10 - sum(n) / 10
        assert abs(s["reward"] - want) < 1e-5, (s["reward"], want)
E
# With a chat template; from messages; qwen2; and batch sizes.
for tpl in chatml llama3 zephyr; do
	score --flr "$T/m" --chat-template $tpl -J "$T/text" >"$T/a" ||
	    fail "flr $tpl"
	score --flr "$T/m" --chat-template $tpl --no-cache -b 100 -J \
	    "$T/text" >"$T/b" || fail "flr $tpl --no-cache"
	close "$T/a" "$T/b" || fail "flr $tpl: cache equals forward passes"
done
printf '%s\n' '{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],"response":"Hello"}' \
    >"$T/msgs"
score --flr "$T/q" --chat-template chatml -b 1 -J "$T/msgs" >"$T/a" ||
    fail "flr messages"
score --flr "$T/q" --chat-template chatml --no-cache -J "$T/msgs" >"$T/b" ||
    fail "flr messages --no-cache"
close "$T/a" "$T/b" || fail "flr messages: cache equals forward passes"
# Mistral with a window of 3, which the texts pass: the cache's ring of
# 3 positions, copied for each follow-up, equals the forward passes.
ckpt init -o "$T/mi" --arch mistral --sliding-window 3 --seed 12 ||
    fail "ckpt init mistral"
score --flr "$T/mi" --details -J "$T/text" >"$T/a" || fail "flr mistral"
score --flr "$T/mi" --details --no-cache -b 64 -J "$T/text" >"$T/b" ||
    fail "flr mistral --no-cache"
close "$T/a" "$T/b" 1e-4 || fail "flr mistral: windowed cache equals forward passes"
# Qwen3 (q/k norms): the cached and the plain passes agree, and a reward
# model's rewards do not depend on the batch.
score --flr "$T/q3" --chat-template chatml -b 1 -J "$T/msgs" >"$T/a" ||
    fail "qwen3 flr"
score --flr "$T/q3" --chat-template chatml --no-cache -J "$T/msgs" \
    >"$T/b" || fail "qwen3 flr --no-cache"
close "$T/a" "$T/b" || fail "qwen3 flr: cache equals forward passes"
score --rm "$T/q3rm" -J "$T/text" >"$T/a" || fail "qwen3 rm"
score --rm "$T/q3rm" -b 1 -J "$T/text" >"$T/b" || fail "qwen3 rm -b 1"
close "$T/a" "$T/b" || fail "qwen3 rm: batch 1 equals one batch"
# Follow-up files: one a line, blank lines skipped.
printf 'Thanks!\n\n  Perfect.\n' >"$T/pos"
printf 'No.\n' >"$T/neg"
score --flr "$T/m" --positive "$T/pos" --negative "$T/neg" --details \
    --as flr -J "$T/text" >"$T/got" || fail "follow-up files"
"$PYTHON3" -c 'import json,sys
r=json.loads(open(sys.argv[1]).readline())
assert len(r["flr_positive"]) == 2 and len(r["flr_negative"]) == 1, r
assert abs(r["flr"] - (sum(r["flr_positive"])/2 - r["flr_negative"][0])) < 1e-5' \
    "$T/got" || fail "follow-up files: counts"

# --- errors ---------------------------------------------------------------
printf '%s\n' '{"response_tokens":[1]}' >"$T/bad"
expect_fail 1 '^score: .*/bad: record 1: field "prompt_tokens": missing' \
    score --logprob "$T/m" "$T/bad"
printf '%s\n' '{"prompt_tokens":[1]}' >"$T/bad"
expect_fail 1 'record 1: field "response_tokens": missing' \
    score --logprob "$T/m" "$T/bad"
printf '%s\n' '{"prompt_tokens":"1","response_tokens":[1]}' >"$T/bad"
expect_fail 1 'record 1: field "prompt_tokens": expected array, got string' \
    score --logprob "$T/m" "$T/bad"
printf '%s\n' '{"prompt_tokens":[1],"response_tokens":[1,-2]}' >"$T/bad"
expect_fail 1 'record 1: field "response_tokens": element 1: expected token id, got integer' \
    score --logprob "$T/m" "$T/bad"
printf '%s\n' '{"prompt_tokens":[1],"response_tokens":[1,"a"]}' >"$T/bad"
expect_fail 1 'record 1: field "response_tokens": element 1: expected token id, got string' \
    score --logprob "$T/m" "$T/bad"
printf '%s\n' '{"prompt_tokens":[1],"response_tokens":[1,259]}' >"$T/bad"
expect_fail 1 'record 1: field "response_tokens": token 1 is 259, outside the vocabulary' \
    score --logprob "$T/m" "$T/bad"
printf '%s\n' '{"prompt_tokens":[],"response_tokens":[1]}' >"$T/bad"
expect_fail 1 'record 1: field "prompt_tokens": empty' \
    score --logprob "$T/m" "$T/bad"
"$PYTHON3" -c 'print("{\"prompt\":\"x\",\"response\":\"%s\"}" % ("y" * 300))' \
    >"$T/bad"
expect_fail 1 'record 1: field "response_tokens": 303 tokens, more than the 256 positions' \
    score --logprob "$T/m" "$T/bad"
printf '%s\n' '{"prompt":"x","chosen":{"response":"a"},"rejected":{"response_tokens":{}}}' \
    >"$T/bad"
expect_fail 1 'record 1: field "rejected.response_tokens": expected array, got map' \
    score --logprob "$T/m" "$T/bad"
printf '%s\n' '{"prompt":"x","chosen":{"response":"a"},"rejected":{}}' >"$T/bad"
expect_fail 1 'record 1: field "rejected.response_tokens": missing' \
    score --logprob "$T/m" "$T/bad"
expect_fail 1 'record 1: field "rejected.response_tokens": missing' \
    score --rm "$T/rm" "$T/bad"
expect_fail 1 'record 1: field "rejected.response": missing' \
    score --flr "$T/m" "$T/bad"
printf '%s\n' '{"response":"a"}' >"$T/bad"
expect_fail 1 'record 1: field "prompt_tokens": missing' score --rm "$T/rm" "$T/bad"
expect_fail 1 'record 1: field "prompt": missing' score --flr "$T/m" "$T/bad"
printf '%s\n' '{"prompt":1,"response":"a"}' >"$T/bad"
expect_fail 1 'record 1: field "prompt": expected string, got integer' \
    score --flr "$T/m" "$T/bad"
printf '%s\n' '{"prompt":"p","response":null}' >"$T/bad"
expect_fail 1 'record 1: field "response": expected string, got nil' \
    score --rm "$T/rm" "$T/bad"
printf '%s\n' '{"messages":[{"role":"user"}],"response":"a"}' >"$T/bad"
expect_fail 1 'record 1: field "messages": element 0: "content": missing' \
    score --flr "$T/m" "$T/bad"
printf '%s\n' '{"messages":"hi","response":"a"}' >"$T/bad"
expect_fail 1 'record 1: field "messages": expected array, got string' \
    score --rm "$T/rm" "$T/bad"
# A checkpoint without a tokenizer scores token ids, not text.
cp -r "$T/m" "$T/notok" && rm "$T/notok/tokenizer.json" \
    "$T/notok/tokenizer_config.json"
score --logprob "$T/notok" "$T/tok" | recs count >"$T/got" ||
    fail "no tokenizer, token ids"
printf '%s\n' '{"prompt":"x","response":"y"}' >"$T/bad"
expect_fail 1 'record 1: field "prompt": .*cannot tokenize text' \
    score --logprob "$T/notok" "$T/bad"
expect_fail 1 'no language-model head' score --logprob "$T/rm" "$T/tok"
expect_fail 1 'no language-model head' score --flr "$T/rm" "$T/tok"
expect_fail 1 'no classification head' score --rm "$T/m" "$T/tok"
expect_fail 1 'nonexistent' score --logprob "$T/nonexistent" "$T/tok"
: >"$T/empty"
expect_fail 1 'no follow-ups' score --flr "$T/m" --positive "$T/empty"
expect_fail 1 'nothere' score --flr "$T/m" --negative "$T/nothere"
expect_fail 2 '--chat-template: unknown chat template' \
    score --flr "$T/m" --chat-template nosuch "$T/text"
expect_fail 2 '--positive does not apply to --rm' \
    score --rm "$T/rm" --positive "$T/pos"
expect_fail 2 '--retokenize does not apply to --flr' \
    score --flr "$T/m" --retokenize
expect_fail 2 '--batch-tokens: 0 is out of range' score --rm "$T/rm" -b 0

# Everything read before a bad record is written (prefpipe(7)): the
# batch it would have joined is scored and written first, with any
# batch size, for a bad field, a bad side of a pair, and a record that
# cannot be read.
"$PYTHON3" -c 'for i in range(7): print("{\"id\":%d,\"prompt\":\"q%d\",\"response\":\"r%s\"}" % (i, i, "x" * i))' \
    >"$T/seven"
for bad in '{"prompt":"p","response":7}' \
    '{"prompt":"p","chosen":{"response":"a"},"rejected":{"response":[]}}' \
    'not a record'; do
	{ cat "$T/seven"; printf '%s\n' "$bad"; } >"$T/sevenbad"
	for sc in "--logprob $T/m" "--rm $T/rm" "--flr $T/m"; do
		for b in 4096 40; do
			score $sc -b $b -J "$T/seven" >"$T/want"
			expect_fail 1 '^score: .*sevenbad: record 8: ' \
			    score $sc -b $b -J "$T/sevenbad"
			same "records before a bad one: $sc -b $b, $bad" \
			    "$T/want" "$T/out"
		done
	done
done

# A tokenizer larger than the model (GPT-2's on a 259-token model): a
# token of the text outside the vocabulary names the input, the record
# and the field, after the records before it.
for d in m rm; do
	mkdir "$T/big$d" && cp "$T/$d"/* "$T/big$d" &&
	    cp "$top_srcdir/tests/tokenizer/small_gpt2.json" \
	    "$T/big$d/tokenizer.json" || fail "a larger tokenizer"
done
printf '%s\n' x >"$T/fpos"
printf '%s\n' q >"$T/fneg"
printf '%s\n' '{"prompt":"x","response":"q"}' '{"prompt":"x","response":"q"}' \
    '{"prompt":"the the","response":"q"}' >"$T/vp"
printf '%s\n' '{"prompt":"x","response":"q"}' '{"prompt":"x","response":"q"}' \
    '{"prompt":"x","chosen":{"response":"q"},"rejected":{"response":"the"}}' \
    >"$T/vr"
msgs='{"messages":[{"role":"user","content":"the"}],"response":"q"}'
printf '%s\n' '{"prompt":"x","response":"q"}' "$msgs" >"$T/vm"
outside='token 0 is 1169, outside the vocabulary \[0, 259\) of '
for sc in "--logprob $T/bigm" "--rm $T/bigrm"; do
	expect_fail 1 "^score: .*vp: record 3: field \"prompt\": $outside" \
	    score $sc "$T/vp"
	check "$sc: records before a token outside the vocabulary" \
	    test "$(recs count <"$T/out")" = 2
	expect_fail 1 "vr: record 3: field \"rejected.response\": token 0 is 1169, outside" \
	    score $sc "$T/vr"
	check "$sc: records before a token outside the vocabulary (pair)" \
	    test "$(recs count <"$T/out")" = 2
	expect_fail 1 "vm: record 2: field \"messages\": token [0-9]+ is [0-9]+, outside" \
	    score $sc --chat-template chatml "$T/vm"
done
expect_fail 1 'vp: record 3: field "response": the conversation.s token 0 is 1169, outside' \
    score --flr "$T/bigm" --positive "$T/fpos" --negative "$T/fneg" "$T/vp"
check "--flr: records before a token outside the vocabulary" \
    test "$(recs count <"$T/out")" = 2
printf '%s\n' x 'the' >"$T/fbad"
expect_fail 1 'fbad: line 2: token 0 of the follow-up is 1169, outside the vocabulary' \
    score --flr "$T/bigm" --positive "$T/fbad" --negative "$T/fneg" "$T/vp"

# A NaN weight (the embedding of "Z"): the record it reaches stops the
# run, named with the field its score would go to, after the records
# before it (of the same batch); no NaN is ever written.
nanrow() {
	"$PYTHON3" - "$1" <<'E'
import json, struct, sys
f = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", f[:8])[0]
t = json.loads(f[8:8 + n])["model.embed_tokens.weight"]
C = t["shape"][1]
at = 8 + n + t["data_offsets"][0] + ord("Z") * C * 4
f[at:at + C * 4] = struct.pack("<f", float("nan")) * C
open(sys.argv[1], "wb").write(f)
E
}
cp -r "$T/m" "$T/mnan" && nanrow "$T/mnan/model.safetensors" ||
    fail "NaN weights"
cp -r "$T/rm" "$T/rmnan" && nanrow "$T/rmnan/model.safetensors" ||
    fail "NaN weights, reward model"
printf '%s\n' '{"prompt":"a","response":"b"}' '{"prompt":"a","response":"c"}' \
    '{"prompt":"a","chosen":{"response":"b"},"rejected":{"response":"Z"}}' \
    '{"prompt":"a","response":"d"}' >"$T/z"
expect_fail 1 '^score: .*z: record 3: field "rejected.ref_logprobs": token 0: log-probability -?nan: the model.s output is not finite$' \
    score --logprob "$T/mnan" -J "$T/z"
check "--logprob: records before a NaN" test "$(recs count <"$T/out")" = 2
expect_fail 1 'z: record 3: field "rejected.reward": score -?nan: the model.s output is not finite$' \
    score --rm "$T/rmnan" -J "$T/z"
check "--rm: records before a NaN" test "$(recs count <"$T/out")" = 2
expect_fail 1 'z: record 3: field "rejected.reward": follow-up 0: mean log-probability -?nan: the model.s output is not finite$' \
    score --flr "$T/mnan" -J "$T/z"
check "--flr: records before a NaN" test "$(recs count <"$T/out")" = 2
check "no NaN written" test "$(grep -ci nan "$T/out")" = 0

finish
