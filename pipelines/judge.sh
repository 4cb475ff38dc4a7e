#!/bin/sh
# pipelines/judge.sh: training a pairwise judge with SFT, then DPO ("Improve
# LLM-as-a-Judge Ability as a General Ability"), from the verifier's pairs.
#
# usage: pipelines/judge.sh
#        MODEL=path/to/hf-dir PROMPTS=prompts.jsonl EVAL=heldout.jsonl \
#            pipelines/judge.sh
#
# From an SFT model (cached in SFT_DIR, default out/judge-sft-base: the
# demo's, with JUDGE_CTX positions): pairs of its
# samples (a correct answer against a wrong one, the demo's mining) on the
# training prompts and, apart, on the held-out ones; the judge's template
# (JUDGE_TEMPLATE, default pipelines/judge-pairwise.txt) puts both answers
# of a pair before it, in both orders (recs judge-data), and
#   judge-sft   train-step --loss sft on the right label's examples
#   judge-dpo   train-step --loss dpo from judge-sft, the right label
#               chosen over the wrong one
# Each judge's accuracy is the fraction of held-out pairs whose chosen
# (correct) answer it prefers, score --judge --pairwise > 0.5 (both orders
# judged, so a judge that always says A scores 0.5 on every pair).
# Writes OUT (default out/judge): results.tsv and results.md (also on
# stdout).  Overrides: JUDGE_LR (1e-4), JUDGE_EPOCHS (2), JUDGE_CTX, and
# those of pipelines/lib.sh.
. "$(dirname "$0")/lib.sh"

: "${JUDGE_TEMPLATE:=$pp_here/judge-pairwise.txt}"
: "${JUDGE_LR:=1e-4}"
: "${JUDGE_EPOCHS:=2}"
# The judge reads two answers at once: the demo's model has 16 positions,
# too few, so without MODEL the SFT model here has JUDGE_CTX (48).
: "${JUDGE_CTX:=48}"
[ -n "${MODEL:-}" ] || SFT_DIR=${SFT_DIR:-out/judge-sft-base}
INIT_ARGS="$(printf '%s\n' "$INIT_ARGS" | sed 's/--ctx [0-9]*//') --ctx $JUDGE_CTX"
pp_rounds_start judge
m0=$pp_sft

# pairs SEED PROMPTS OUT: verified pairs of the SFT model's samples.
pairs() {
	[ -f "$3" ] && return 0
	pp_mine "$m0" "$1" "$2" | filter --sorted --keep best-worst |
	    pair --sorted >"$3.tmp" && mv "$3.tmp" "$3"
}
pairs 1 "$SFT_DIR/data/prompts.mpk" "$OUT/train.pairs"
pairs 2 "$PP_EVAL" "$OUT/eval.pairs"

# accuracy JUDGE: held-out pairs it judges right, and its mean judgement.
accuracy() {
	score --judge "$1" --template "$JUDGE_TEMPLATE" --pairwise \
	    --labels ' A, B' <"$OUT/eval.pairs" | recs to-tsv judge |
	    awk '{ n++; s += $1; r += $1 > 0.5 }
	    END { if (n) printf "%d\t%.4f\t%.4f\n", n, r / n, s / n }'
}

if [ ! -d "$OUT/judge-sft" ]; then
	pp_log "judge: SFT on $(recs count "$OUT/train.pairs") pairs, both orders"
	recs judge-data --template "$JUDGE_TEMPLATE" --labels ' A, B' \
	    "$OUT/train.pairs" |
	    train-step -q -m "$m0" -o "$OUT/judge-sft" --loss sft \
	    --lr "$JUDGE_LR" --epochs "$JUDGE_EPOCHS" --batch-size 32 \
	    --seed 3 >"$OUT/judge-sft.metrics"
fi
if [ ! -d "$OUT/judge-dpo" ]; then
	pp_log "judge: DPO from the SFT judge"
	recs judge-data --template "$JUDGE_TEMPLATE" --labels ' A, B' --dpo \
	    "$OUT/train.pairs" | score --logprob "$OUT/judge-sft" |
	    train-step -q -m "$OUT/judge-sft" -o "$OUT/judge-dpo" --loss dpo \
	    --lr "$JUDGE_LR" --beta "$BETA" --batch-size 32 --seed 4 \
	    >"$OUT/judge-dpo.metrics"
fi
printf 'judge\tpairs\taccuracy\tmean\n' >"$OUT/results.tsv"
for j in sft:"$m0" judge-sft:"$OUT/judge-sft" judge-dpo:"$OUT/judge-dpo"; do
	printf '%s\t%s\n' "${j%%:*}" "$(accuracy "${j#*:}")" >>"$OUT/results.tsv"
	pp_log "judge: $(tail -n 1 "$OUT/results.tsv")"
done
awk -F'\t' 'BEGIN { print "| judge | held-out pairs | accuracy | mean P(chosen) |"
	print "| --- | ---: | ---: | ---: |" }
NR > 1 { printf "| %s | %d | %.1f %% | %.3f |\n", $1, $2, 100 * $3, $4 }' \
    "$OUT/results.tsv" >"$OUT/results.md"
pp_log "done: $OUT/results.md"
cat "$OUT/results.md"
