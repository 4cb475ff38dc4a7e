#!/bin/sh
# pipelines/cream.sh: self-rewarding with the model's implicit reward,
# with and without CREAM's consistency regularisation.
#
# usage: pipelines/cream.sh
#        MODEL=path/to/hf-dir PROMPTS=prompts.jsonl EVAL=heldout.jsonl \
#            pipelines/cream.sh
#
# M0 is the SFT model (cached in SFT_DIR, default out/sft); M1 its DPO on
# the verifier's pairs (seed preference data, as the demo's first round);
# M2 one self-rewarding round from M1.  From M2, two arms of ROUNDS rounds
# (default 2) each:
#   rollout -n SAMPLES | score --logprob M0 --as base |
#       score --logprob M --as cur --ratio-to base |
#       [score --logprob PREV --as prev --ratio-to base] |
#       pair --by cur_logratio [--consistency prev_logratio] |
#       score --logprob M | train-step --loss dpo
# where M is the arm's current model, its implicit reward (log-ratio
# against M0) ranks the samples, and in the cream arm the previous
# model's ranking gives each pair its soft label (pair --consistency).
# No verifier is read in the arms: the held-out accuracy says whether
# self-rewarding helped.  Writes OUT (default out/cream): results.tsv,
# results.md (also on stdout).  Overrides: those of pipelines/lib.sh.
: "${ROUNDS:=2}"
. "$(dirname "$0")/lib.sh"

pp_rounds_start cream
m0=$pp_sft

# sr POLICY PREV OUT SEED [cream]: one self-rewarding DPO round; PREV is
# read only with cream.
sr() {
	[ -d "$3" ] && return 0
	if [ -n "${5:-}" ]; then
		cr_prev=$2
		prev() { score --logprob "$cr_prev" --as prev --ratio-to base; }
		cons="--consistency prev_logratio"
	else
		prev() { cat; }
		cons=
	fi
	recs head -n 512 "$SFT_DIR/data/prompts.mpk" |
	    rollout -m "$1" -n "$SAMPLES" --max-tokens "$MAXTOK" --seed "$4" |
	    score --logprob "$m0" --as base |
	    score --logprob "$1" --as cur --ratio-to base | prev |
	    pair --sorted --by cur_logratio $cons |
	    score --logprob "$1" >"$3.pairs"
	train-step -m "$1" -o "$3" --loss dpo --reset-optimizer --lr "$LR" \
	    --beta "$BETA" --nll-coef "$NLL" --batch-size "$DPO_BATCH" \
	    --seed "$4" <"$3.pairs" >"$3.metrics"
}

pp_log "cream: M1, DPO on the verifier's pairs"
pp_dpo_round "$m0" "$m0" "$OUT/m1" 501 "$SFT_DIR/data/prompts.mpk"
pp_log "cream: M2, one self-rewarding round from M1"
sr "$OUT/m1" - "$OUT/m2" 502

printf 'model\tround\tgreedy\tt1\n' >"$OUT/results.tsv"
pp_acc_row sft 0 "$m0" >>"$OUT/results.tsv"
pp_acc_row seed-dpo 1 "$OUT/m1" >>"$OUT/results.tsv"
pp_acc_row self-reward 2 "$OUT/m2" >>"$OUT/results.tsv"
for arm in sr cream; do
	prev=$OUT/m1 cur=$OUT/m2 i=1
	while [ "$i" -le "$ROUNDS" ]; do
		pp_log "cream: $arm round $i"
		sr "$cur" "$prev" "$OUT/$arm$i" $((510 + i)) \
		    "$([ "$arm" = cream ] && echo 1)"
		pp_acc_row "$arm" $((i + 2)) "$OUT/$arm$i" >>"$OUT/results.tsv"
		prev=$cur cur=$OUT/$arm$i i=$((i + 1))
	done
done
pp_table "$OUT/results.tsv" >"$OUT/results.md"
pp_log "done: $OUT/results.md"
cat "$OUT/results.md"
