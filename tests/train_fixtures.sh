#!/bin/sh
# train_fixtures: one step of each objective against PyTorch
# (tests/gen_train_fixtures.py): loss, gradient norm and every updated
# weight within 1e-4 relative (KTO's reference point too; PPO with GAE and
# the critic's value loss); SFT and DPO on a Qwen3 and a Gemma 2 model too.
. "$top_srcdir/tests/lib.sh"
F=$fixtures/train
cmp_tool=$top_builddir/tests/unit_train_cmp

for n in sft dpo rm pg simpo orpo kto ppo value sft_qwen3 dpo_qwen3 \
    sft_gemma2 dpo_gemma2; do
	case $n in
	rm | value) init=$F/init_rm ;;
	*_qwen3) init=$F/init_qwen3 ;;
	*_gemma2) init=$F/init_gemma2 ;;
	*) init=$F/init ;;
	esac
	# shellcheck disable=SC2046
	if ! train-step -m "$init" -o "$T/$n" $(cat "$F/$n.args") \
	    <"$F/$n.jsonl" >"$T/$n.metrics"; then
		fail "$n: train-step failed"; continue
	fi
	recs to-tsv loss grad_norm <"$T/$n.metrics" >"$T/$n.tsv"
	[ "$(wc -l <"$T/$n.tsv")" -eq 1 ] || fail "$n: want one metrics record"
	read -r loss gn <"$T/$n.tsv"
	want_loss=$(sed 's/.*"loss": *\([-0-9.eE+]*\).*/\1/' "$F/$n.expect.json")
	want_gn=$(sed 's/.*"grad_norm": *\([-0-9.eE+]*\).*/\1/' \
	    "$F/$n.expect.json")
	close_rel "$n loss" "$loss" "$want_loss"
	close_rel "$n grad_norm" "$gn" "$want_gn"
	check "$n weights" "$cmp_tool" "$T/$n" "$F/$n.expect.safetensors" 1e-4
	# The saved state continues where it stopped.
	check "$n trainer_state" grep -q '"step": 1' "$T/$n/trainer_state.json"
	check "$n optimizer" test -f "$T/$n/optimizer.safetensors"
done

# The fixtures reach PPO's clipping and the critic's (a clip_fraction of
# 0 would leave those paths untested).
for n in ppo value; do
	[ -f "$T/$n.metrics" ] || continue
	cf=$(recs to-tsv clip_fraction <"$T/$n.metrics")
	awk -v c="$cf" 'BEGIN { exit !(c > 0) }' ||
	    fail "$n: clip_fraction $cf: the fixture clips nothing"
done

# KTO's reference point, from the mismatched pairs before the step: the
# fixture's references make it 0.8 (kl is the metric that reports it).
if [ -f "$T/kto.metrics" ]; then
	close_rel "kto kl (z0)" "$(recs to-tsv kl <"$T/kto.metrics")" 0.8
fi
finish
