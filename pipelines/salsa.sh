#!/bin/sh
# pipelines/salsa.sh: SALSA, a model soup as the KL reference of policy
# gradient, against the usual single SFT reference.
#
# usage: pipelines/salsa.sh
#        MODEL=a MODEL2=b PROMPTS=prompts.jsonl EVAL=heldout.jsonl \
#            pipelines/salsa.sh
#
# Two SFT models (seeds SEED and SEED+1 from a common SFT phase; or MODEL
# and MODEL2), their uniform soup (merge), then ROUNDS rounds of
#   rollout -n 8 | score --exact | score --logprob REF --as ref |
#       train-step --loss pg --advantage rloo --kl-coef KL
# twice: starting from and anchored to the soup (SALSA), and starting from
# and anchored to the first SFT model.  Reports the mean training reward of
# the last round and the held-out accuracy of both.
# Writes OUT (default out/salsa): results.tsv, results.md.
# Overrides: KL (0.05), PG_LR, PG_PROMPTS (512 prompts a round), SFT_DIR
# (out/sft), and pipelines/lib.sh's.
. "$(dirname "$0")/lib.sh"

OUT=${OUT:-out/salsa}
SFT_DIR=${SFT_DIR:-out/sft}
KL=${KL:-0.05}
mkdir -p "$OUT"
sft1=$(pp_default_sft "$SFT_DIR")
if [ -n "${MODEL2:-}" ]; then
	sft2=$MODEL2
elif [ -n "${MODEL:-}" ]; then
	echo "salsa.sh: MODEL needs MODEL2, the second fine-tuned model" >&2; exit 2
else
	sft2=$SFT_DIR/sft-s$((SEED + 1))
	pp_sft_more "$SFT_DIR/sft-common" "$sft2" $((SEED + 1)) "$SFT_DIR/data/sft2.mpk"
fi
PP_EVAL=$SFT_DIR/data/eval.mpk
recs head -n "$PG_PROMPTS" "$SFT_DIR/data/prompts.mpk" >"$OUT/prompts.mpk"
prompts=$OUT/prompts.mpk
[ -d "$OUT/soup" ] || merge -o "$OUT/soup" "$sft1" "$sft2" 2>/dev/null

# pg NAME START REF: ROUNDS rounds anchored to REF.
pg() {
	m=$2 i=1
	mkdir -p "$OUT/$1"
	while [ "$i" -le "$ROUNDS" ]; do
		o=$OUT/$1/round$i
		if [ ! -d "$o" ]; then
			rollout -m "$m" -n "$SAMPLES" --max-tokens "$MAXTOK" \
			    --seed $((900 + i)) "$prompts" |
			    score --exact | filter --sorted --drop-uniform |
			    score --logprob "$3" --as ref |
			    train-step -m "$m" -o "$o" --loss pg --advantage rloo \
			    --kl-coef "$KL" --clip 0.2 --ppo-epochs 2 --reset-optimizer \
			    --lr "$PG_LR" --batch-size "$PG_BATCH" >"$o.metrics"
		fi
		pp_log "$1: round $i: reward $(recs stats reward_mean kl <"$o.metrics" | recs to-tsv reward_mean.mean kl.mean | tr '\t' ' ')"
		m=$o i=$((i + 1))
	done
	r=$(recs stats reward_mean <"$m.metrics" | recs to-tsv reward_mean.mean)
	printf '%s\t%s\n' "$(pp_acc_row "$1" "$ROUNDS" "$m")" "$r" >"$OUT/$1.acc"
}
pp_log "SALSA (soup reference) and SFT reference, $ROUNDS rounds each, side by side"
pg salsa "$OUT/soup" "$OUT/soup" &
p1=$!
pg sft-ref "$sft1" "$sft1" &
p2=$!
wait "$p1"; wait "$p2"
{
	printf 'model\tround\tgreedy\tt1\treward\n'
	printf '%s\t\n' "$(pp_acc_row sft-1 0 "$sft1")"
	printf '%s\t\n' "$(pp_acc_row sft-2 0 "$sft2")"
	printf '%s\t\n' "$(pp_acc_row soup 0 "$OUT/soup")"
	cat "$OUT/salsa.acc" "$OUT/sft-ref.acc"
} >"$OUT/results.tsv"
awk -F'\t' 'BEGIN { print "| model | round | greedy acc. | T=1 acc. | training reward (last round) |"
		print "| --- | ---: | ---: | ---: | ---: |" }
	NR > 1 { printf "| %s | %s | %.1f %% | %.1f %% | %s |\n", $1, $2, 100 * $3, 100 * $4, $5 == "" ? "" : sprintf("%.3f", $5) }' \
    "$OUT/results.tsv" >"$OUT/results.md"
pp_log "done: $OUT/results.md"
cat "$OUT/results.md"
