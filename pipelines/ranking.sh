#!/bin/sh
# pipelines/ranking.sh: ranking accuracy before and after DPO ("Preference
# Learning Algorithms Do Not Learn Preference Rankings", Chen et al. 2024)
# on the demo's pairs.
#
# usage: pipelines/ranking.sh
#        MODEL=path/to/hf-dir PROMPTS=prompts.jsonl EVAL=heldout.jsonl \
#            pipelines/ranking.sh
#
# From the SFT model (cached in SFT_DIR, default out/sft): pairs mined on
# the training prompts as the demo mines them,
#   rollout -n SAMPLES | score --exact | filter --keep best-worst | pair |
#       score --logprob SFT
# one DPO update on them (ROUNDS rounds, default 1, each from the last),
# and pairs mined the same way on the held-out prompts.  On both sets,
# recs rank-accuracy gives the ranking accuracy of the SFT model (the
# reference) and of the DPO model, and the idealized model's (beta BETA;
# the margin of the verifier's rewards as the Bradley-Terry logit).
# Writes OUT (default out/ranking): results.tsv and results.md (also on
# stdout).  Overrides: those of pipelines/lib.sh.
: "${ROUNDS:=1}"
. "$(dirname "$0")/lib.sh"

pp_rounds_start ranking
sft=$pp_sft

# pairs POLICY SEED PROMPTS OUT: pairs of POLICY's samples, with the SFT
# model's sums as the reference.
pairs() {
	[ -f "$4" ] && return 0
	pp_mine "$1" "$2" "$3" | filter --sorted --keep best-worst |
	    pair --sorted | score --logprob "$sft" >"$4.tmp" && mv "$4.tmp" "$4"
}

m=$sft i=1
while [ "$i" -le "$ROUNDS" ]; do
	pp_log "ranking: DPO round $i"
	pp_dpo_round "$m" "$m" "$OUT/round$i" $((600 + i)) \
	    "$SFT_DIR/data/prompts.mpk"
	m=$OUT/round$i i=$((i + 1))
done
pairs "$sft" 1 "$SFT_DIR/data/prompts.mpk" "$OUT/train.pairs"
pairs "$sft" 2 "$PP_EVAL" "$OUT/eval.pairs"

printf 'pairs\tmodel\tn\tranking\tref\tidealized\n' >"$OUT/results.tsv"
for set in train eval; do
	for model in sft dpo; do
		ck=$sft
		[ "$model" = dpo ] && ck=$m
		score --logprob "$ck" --as policy <"$OUT/$set.pairs" |
		    recs rank-accuracy --beta "$BETA" |
		    recs to-tsv pairs ranking_accuracy ref_ranking_accuracy \
		    idealized_ranking_accuracy |
		    sed "s/^/$set	$model	/" >>"$OUT/results.tsv"
	done
done
awk -F'\t' 'BEGIN {
	print "| pairs | model | n | ranking acc. | reference | idealized |"
	print "| --- | --- | ---: | ---: | ---: | ---: |"
}
NR > 1 { printf "| %s | %s | %d | %.1f %% | %.1f %% | %.1f %% |\n", $1, $2, $3, 100 * $4, 100 * $5, 100 * $6 }' \
    "$OUT/results.tsv" >"$OUT/results.md"
pp_log "done: $OUT/results.md"
cat "$OUT/results.md"
