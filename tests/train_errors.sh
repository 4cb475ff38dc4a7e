#!/bin/sh
# train_errors: what train-step refuses, and how it says so (issue 19:
# items 10, 11, 17, 19, 20).
. "$top_srcdir/tests/lib.sh"
F=$fixtures/train

# near GOT WANT TOL: |got - want| <= TOL
near() {
	awk -v g="$1" -v w="$2" -v t="$3" 'BEGIN {
		d = g - w; if (d < 0) d = -d; exit !(d <= t) }'
}

# 10: without clipping, huge gradients overflow exp_avg_sq while the loss
# and the gradient norm stay finite; nothing may be written.
printf '%s\n' \
    '{"id":"a","prompt_tokens":[1],"response_tokens":[3],"reward":1e30}' \
    '{"id":"a","prompt_tokens":[1],"response_tokens":[4],"reward":-1e30}' \
    >"$T/big.jsonl"
expect_fail 1 'step 1: non-finite optimizer state \(exp_avg_sq\.model\.' \
    train-step -m "$F/init" -o "$T/x" --loss pg --scale none --clip-grad 0 \
    <"$T/big.jsonl"
test -e "$T/x" && fail "a checkpoint with Inf moments was written"

# 11: GRPO normalises rewards around 1e154 like rewards around 1: two
# samples r and -r get advantages +-1/sqrt(2).
for r in 1 1e154; do
	printf '%s\n' \
	    "{\"id\":\"a\",\"prompt_tokens\":[1],\"response_tokens\":[3],\"reward\":$r}" \
	    "{\"id\":\"a\",\"prompt_tokens\":[1],\"response_tokens\":[4],\"reward\":-$r}" \
	    >"$T/g.jsonl"
	train-step -m "$F/init" -o "$T/g" --loss pg <"$T/g.jsonl" |
	    recs to-tsv adv_std >"$T/g.tsv" || fail "grpo rewards $r"
	check "grpo adv_std, rewards +-$r" near "$(cat "$T/g.tsv")" 0.707107 1e-3
done

# 17: every error inside a side of a pair names chosen. or rejected.
pair() { # SIDE-JSON [OTHER-SIDE-JSON]: a dpo record, chosen side given
	echo "{\"prompt_tokens\":[1,2],\"chosen\":$1,\"rejected\":${2:-{\"response_tokens\":[5],\"ref_logprob\":-1\}}}"
}
side() { # STATUS PATTERN SIDE-JSON: chosen, then rejected, so
	pair "$3" >"$T/p.jsonl"
	expect_fail 1 "record 1: field \"chosen\\.$2" \
	    train-step -m "$F/init" -o "$T/x" --loss dpo <"$T/p.jsonl"
	pair '{"response_tokens":[5],"ref_logprob":-1}' "$3" >"$T/p.jsonl"
	expect_fail 1 "record 1: field \"rejected\\.$2" \
	    train-step -m "$F/init" -o "$T/x" --loss dpo <"$T/p.jsonl"
}
side 1 'response_tokens": expected' '{"response_tokens":"a","ref_logprob":-1}'
side 1 'response_tokens": ' '{"response_tokens":[1,"x"],"ref_logprob":-1}'
side 1 'response_tokens": ' '{"response_tokens":[1,5000000000],"ref_logprob":-1}'
side 1 'response_tokens": ' '{"response_tokens":[1,-3],"ref_logprob":-1}'
side 1 'response_tokens": .*vocabulary' '{"response_tokens":[1,99],"ref_logprob":-1}'
side 1 'response_tokens": empty' '{"response_tokens":[],"ref_logprob":-1}'
side 1 'response": expected string' '{"response":7,"ref_logprob":-1}'
side 1 'response_tokens": missing' '{"ref_logprob":-1}'
side 1 'response": text without tokens' '{"response":"hi","ref_logprob":-1}'
side 1 'ref_logprobs": expected' '{"response_tokens":[5],"ref_logprobs":"x"}'
side 1 'ref_logprobs": ' '{"response_tokens":[5],"ref_logprobs":["x"]}'
side 1 'ref_logprobs": has 3 values' '{"response_tokens":[5],"ref_logprobs":[1,2,3]}'
side 1 'ref_logprob": expected' '{"response_tokens":[5],"ref_logprob":"x"}'
side 1 'ref_logprob": missing' '{"response_tokens":[5]}'

# 19: each value of a repeated option counts; --adam-eps must be > 0.
expect_fail 2 '--loss: unknown value "foo"' \
    train-step -m "$F/init" -o "$T/x" --loss sft --loss foo <"$F/sft.jsonl"
expect_fail 2 '--adam-eps' \
    train-step -m "$F/init" -o "$T/x" --loss sft --adam-eps 0 <"$F/sft.jsonl"
# SimPO and ORPO are reference-free: --ref is a mistake, not ignored.
for l in simpo orpo; do
	expect_fail 2 "--loss $l is reference-free" \
	    train-step -m "$F/init" -o "$T/x" --loss $l --ref "$F/init" \
	    <"$F/dpo.jsonl"
done
test -e "$T/x" && fail "a checkpoint was written after a usage error"

# 20: --ref must read the policy's sequences: the same tokenizer, and
# the context for them.
ckpt init -o "$T/pol" --dim 16 --layers 1 --heads 2 --ffn 24 --ctx 64 \
    --seed 1 >/dev/null || fail "ckpt init pol"
ckpt init -o "$T/short" --dim 16 --layers 1 --heads 2 --ffn 24 --ctx 8 \
    --seed 2 >/dev/null || fail "ckpt init short"
ckpt init -o "$T/gpt2" --tokenizer "$top_srcdir/tests/tokenizer/small_gpt2.json" \
    --vocab-size 260 --dim 16 --layers 1 --heads 2 --ffn 24 --ctx 64 \
    --seed 3 >/dev/null 2>&1 ||
ckpt init -o "$T/gpt2" --tokenizer "$top_srcdir/tests/tokenizer/small_gpt2.json" \
    --dim 16 --layers 1 --heads 2 --ffn 24 --ctx 64 --seed 3 >/dev/null ||
    fail "ckpt init gpt2"
echo '{"prompt_tokens":[72,105,32,116,104,101,114,101],"chosen":{"response_tokens":[121,101,115,257]},"rejected":{"response_tokens":[110,111,257]}}' \
    >"$T/r.jsonl"
train-step -m "$T/pol" -o "$T/ok" --loss dpo --ref "$T/pol" <"$T/r.jsonl" \
    >/dev/null || fail "dpo --ref the policy itself"
expect_fail 1 'record 1: field "chosen.response_tokens": 12 tokens, more than the 8 positions of --ref' \
    train-step -m "$T/pol" -o "$T/x" --loss dpo --ref "$T/short" <"$T/r.jsonl"
expect_fail 1 '--ref has another tokenizer' \
    train-step -m "$T/pol" -o "$T/x" --loss dpo --ref "$T/gpt2" <"$T/r.jsonl"
test -e "$T/x" && fail "a checkpoint was written after a bad --ref"
finish
