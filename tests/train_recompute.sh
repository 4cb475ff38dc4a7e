#!/bin/sh
# train_recompute: train-step --recompute (each layer's activations made
# again in the backward pass from the layer's input) gives the very
# metrics, weights and optimizer moments of keeping them, for every
# objective and for the Qwen3 (q/k norms) and Gemma 2 (post-norms,
# softcaps) blocks; three steps each, so the updated weights go through
# the recomputed passes too.
. "$top_srcdir/tests/lib.sh"
F=$fixtures/train
cmp_tool=$top_builddir/tests/unit_train_cmp

for n in sft dpo rm pg simpo orpo kto ppo value sft_qwen3 dpo_gemma2; do
	case $n in
	rm | value) init=$F/init_rm ;;
	*_qwen3) init=$F/init_qwen3 ;;
	*_gemma2) init=$F/init_gemma2 ;;
	*) init=$F/init ;;
	esac
	for rc in "" --recompute; do
		# shellcheck disable=SC2046,SC2086
		train-step -m "$init" -o "$T/$n$rc" $(cat "$F/$n.args") \
		    --epochs 3 $rc <"$F/$n.jsonl" >"$T/$n$rc.m" ||
			fail "$n $rc: train-step failed"
		# every metric but the time a step took
		recs to-json <"$T/$n$rc.m" |
			sed 's/"seconds":[-0-9.eE+]*,//' >"$T/$n$rc.json"
	done
	check "$n: 3 steps" test "$(wc -l <"$T/$n.json")" -eq 3
	same "$n: --recompute metrics" "$T/$n--recompute.json" "$T/$n.json"
	check "$n: --recompute weights and moments" "$cmp_tool" \
	    "$T/$n--recompute" "$T/$n" 0
done

# A DPO run whose reference log-probs come from --ref, forward passes of
# a model that keeps only its layers' inputs, with and without
# --recompute on the policy.
sed 's/,"ref_logprob":[-0-9.eE+]*//g' "$F/dpo.jsonl" >"$T/dpo_noref.jsonl"
grep -q ref_logprob "$T/dpo_noref.jsonl" && fail "ref_logprob left"
for rc in "" --recompute; do
	# shellcheck disable=SC2046,SC2086
	train-step -m "$F/init" -o "$T/ref$rc" --ref "$F/init" \
	    $(cat "$F/dpo.args") --epochs 2 $rc <"$T/dpo_noref.jsonl" |
		recs to-json | sed 's/"seconds":[-0-9.eE+]*,//' \
		>"$T/ref$rc.json" || fail "dpo --ref $rc failed"
done
check "dpo --ref: 2 steps" test "$(wc -l <"$T/ref.json")" -eq 2
same "dpo --ref --recompute metrics" "$T/ref--recompute.json" "$T/ref.json"
check "dpo --ref --recompute weights" "$cmp_tool" "$T/ref--recompute" \
    "$T/ref" 0

# LoRA with dropout: the recomputed layers draw the same masks.
for rc in "" --recompute; do
	# shellcheck disable=SC2046,SC2086
	train-step -m "$F/init" -o "$T/lora$rc" $(cat "$F/sft.args") \
	    --lora-rank 4 --lora-dropout 0.2 --epochs 3 $rc <"$F/sft.jsonl" |
		recs to-json | sed 's/"seconds":[-0-9.eE+]*,//' \
		>"$T/lora$rc.json" || fail "lora $rc failed"
done
check "lora: 3 steps" test "$(wc -l <"$T/lora.json")" -eq 3
same "lora --recompute metrics" "$T/lora--recompute.json" "$T/lora.json"
same "lora --recompute adapter" "$T/lora--recompute/adapter_model.safetensors" \
    "$T/lora/adapter_model.safetensors"

# --recompute takes no argument.
expect_fail 2 'train-step: option .--recompute. doesn.t allow an argument' \
    train-step -m "$F/init" -o "$T/bad" --loss sft --recompute=1 \
    <"$F/sft.jsonl"
finish
