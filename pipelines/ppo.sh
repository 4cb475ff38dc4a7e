#!/bin/sh
# pipelines/ppo.sh: PPO with a critic and GAE, end to end, on the
# verifier's reward.
#
# usage: pipelines/ppo.sh
#        MODEL=path/to/hf-dir PROMPTS=prompts.jsonl EVAL=heldout.jsonl \
#            pipelines/ppo.sh
#
# ROUNDS rounds (default 4) on PG_PROMPTS training prompts of
#   rollout -n SAMPLES | score --exact | score --logprob SFT --as ref |
#       score --value CRITIC |
#       train-step --loss ppo   (the policy)
#       train-step --loss value (the critic, on the same samples)
# from the SFT model (cached in SFT_DIR, default out/sft), which is also
# the fixed KL reference.  The first critic is the SFT model under a zero
# score head (train-step --loss value --add-head --max-steps 0), so its
# values start at 0.  Each round is evaluated on held-out prompts.
# Writes OUT (default out/ppo): results.tsv (with the mean training reward
# of each round), results.md, accuracy.png.  Overrides: PG_LR (3e-5),
# PG_BATCH (64), PG_PROMPTS (512 a round), PPO_KL (0.05), PPO_GAMMA (1),
# PPO_LAMBDA (0.95), PPO_EPOCHS (2), VALUE_LR (1e-4), SAMPLES, ROUNDS, and
# those of pipelines/lib.sh.
. "$(dirname "$0")/lib.sh"

pp_rounds_start ppo
sft=$pp_sft
pp_critic0 "$sft" "$OUT/critic0"

round() {
	o=$OUT/round$3
	[ -d "$o" ] && [ -d "$OUT/critic$3" ] && return 0
	rollout -m "$1" -n "$SAMPLES" --max-tokens "$MAXTOK" --seed $((800 + $3)) \
	    "$4" | score --exact |
	    pp_ppo_update "$1" "$sft" "$2" "$o" "$OUT/critic$3" $((800 + $3))
}

printf 'model\tround\tgreedy\tt1\treward\n' >"$OUT/results.tsv"
printf '%s\t\n' "$(pp_acc_row sft 0 "$sft")" >>"$OUT/results.tsv"
m=$sft c=$OUT/critic0 i=1
while [ "$i" -le "$ROUNDS" ]; do
	pp_log "ppo: round $i: rollout -n $SAMPLES | score --exact | score --logprob | score --value | train-step --loss ppo, --loss value"
	recs head -n "$PG_PROMPTS" "$SFT_DIR/data/prompts.mpk" >"$OUT/prompts.mpk"
	round "$m" "$c" "$i" "$OUT/prompts.mpk"
	r=$(recs stats reward_mean <"$OUT/round$i.metrics" | recs to-tsv reward_mean.mean)
	printf '%s\t%s\n' "$(pp_acc_row ppo "$i" "$OUT/round$i")" "$r" \
	    >>"$OUT/results.tsv"
	pp_log "ppo: round $i: $(tail -n 1 "$OUT/results.tsv" | cut -f3-)"
	m=$OUT/round$i c=$OUT/critic$i i=$((i + 1))
done
pp_rounds_done ppo
