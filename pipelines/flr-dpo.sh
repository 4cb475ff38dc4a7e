#!/bin/sh
# pipelines/flr-dpo.sh: preference mining with Follow-up Likelihood as
# Reward (FLR), no answer key in the training loop.
#
# usage: pipelines/flr-dpo.sh
#        MODEL=path/to/hf-dir PROMPTS=prompts.jsonl EVAL=heldout.jsonl \
#            JUDGE=path/to/judge pipelines/flr-dpo.sh
#
# 1. A judge: the SFT model (its context widened to JUDGE_CTX positions)
#    fine-tuned on dialogues "a+b=r\n" + follow-up, where a correct r is
#    followed by a positive user reaction and a wrong one by a negative
#    reaction (from recs gen arith --sft --noise 0.5), mixed with
#    JUDGE_SUMS plain sums: trained on the dialogues alone the judge
#    forgets how to add (0 % greedy after 20000 of them) and cannot tell
#    a right sum from a wrong one.  JUDGE= skips this.
# 2. FLR_ROUNDS rounds (default 2; FLR_PROMPTS prompts each, default 512) of
#      rollout -n 8 | score --flr judge | filter --keep best-worst | pair |
#          score --logprob POLICY | train-step --loss dpo
#    and beside them, the baseline: the same rounds with the pairs chosen
#    by the verifier (score --exact).  In the FLR arm the verifier's
#    verdict (reward) only measures: the FLR pairwise accuracy (the
#    fraction of mined pairs whose verdicts differ where FLR chose the
#    correct side); both arms' held-out accuracy is in results.md.
#    FLR_MIN_MARGIN (default 0) keeps only the FLR pairs of a wider margin.
# The task is one-digit sums (DIGITS=1), whose right and off-by-one answers
# the judge can tell apart; with the demo's two digits (DIGITS=2
# SFT_DIR=out/sft) it cannot (about 63 % of held-out pairs), and DPO on
# its pairs lowers the accuracy (README).
# Writes OUT (default out/flr-dpo): task (the settings it was run with:
# other settings in the same OUT, whose cached judge and rounds it would
# reuse, are refused; pp_task), results.tsv, judge.tsv (the judge's
# own pairwise accuracy on held-out right and off-by-one sums), results.md.
# Overrides: JUDGE, JUDGE_N (dialogues, 40000), JUDGE_SUMS (20000),
# JUDGE_LR (3e-4), JUDGE_CTX (48), FLR_PROMPTS, FLR_ROUNDS, FLR_MIN_MARGIN,
# DIGITS (1), SFT_DIR (the cached SFT model: out/sft-digits1 for one
# digit, out/sft, the demo's, for two), and those of pipelines/lib.sh.
: "${DIGITS:=1}"
. "$(dirname "$0")/lib.sh"

OUT=${OUT:-out/flr-dpo}
if [ "$DIGITS" = 2 ]; then
	SFT_DIR=${SFT_DIR:-out/sft}
else
	SFT_DIR=${SFT_DIR:-out/sft-digits$DIGITS}
fi
JUDGE_N=${JUDGE_N:-40000}
JUDGE_SUMS=${JUDGE_SUMS:-20000}
JUDGE_CTX=${JUDGE_CTX:-48}
FLR_PROMPTS=${FLR_PROMPTS:-512}
FLR_ROUNDS=${FLR_ROUNDS:-2}
FLR_MIN_MARGIN=${FLR_MIN_MARGIN:-0}
pp_task "$OUT" "model=${MODEL:-$SFT_DIR} digits=$DIGITS judge=${JUDGE:-n=$JUDGE_N,sums=$JUDGE_SUMS,lr=${JUDGE_LR:-3e-4},ctx=$JUDGE_CTX} prompts=$FLR_PROMPTS margin=$FLR_MIN_MARGIN lr=$LR beta=$BETA nll=$NLL"
sft=$(pp_default_sft "$SFT_DIR")
PP_EVAL=$SFT_DIR/data/eval.mpk
prompts=$SFT_DIR/data/prompts.mpk
# The follow-ups, |-separated (POSITIVE, NEGATIVE override them).
printf '%s\n' "${POSITIVE:-Yes, thanks.|Great, thank you.}" | tr '|' '\n' >"$OUT/positive"
printf '%s\n' "${NEGATIVE:-No, that is wrong.|Wrong, try again.}" | tr '|' '\n' >"$OUT/negative"
flr() { score --flr "$judge" --positive "$OUT/positive" --negative "$OUT/negative" "$@"; }

if [ -n "${JUDGE:-}" ]; then
	judge=$JUDGE
elif [ -d "$OUT/judge" ]; then
	judge=$OUT/judge
else
	pp_log "judge: $JUDGE_N dialogues with positive and negative follow-ups, $JUDGE_SUMS sums"
	rm -rf "$OUT/judge.init"; cp -r "$sft" "$OUT/judge.init"
	rm -f "$OUT/judge.init/optimizer.safetensors" "$OUT/judge.init/trainer_state.json"
	sed -i "s/\"max_position_embeddings\": *[0-9]*/\"max_position_embeddings\": $JUDGE_CTX/" \
	    "$OUT/judge.init/config.json"
	recs gen arith -n "$JUDGE_N" --seed 555 --digits "$DIGITS" --sft --noise 0.5 |
	    recs to-json |
	    awk -v P="$OUT/positive" -v N="$OUT/negative" '
		BEGIN { while ((getline l < P) > 0) pos[np++] = l
			while ((getline l < N) > 0) neg[nn++] = l }
		{
			match($0, /"prompt":"[^"]*"/); p = substr($0, RSTART + 10, RLENGTH - 11)
			match($0, /"answer":"[^"]*"/); a = substr($0, RSTART + 10, RLENGTH - 11)
			match($0, /"response":"[^"]*"/); r = substr($0, RSTART + 12, RLENGTH - 13)
			f = (r == a) ? pos[NR % np] : neg[NR % nn]
			gsub(/"/, "\\\"", f)
			printf "{\"prompt\":\"%s%s\\n\",\"response\":\"%s\"}\n", p, r, f
		}' >"$OUT/judge.jsonl"
	# the sums it must keep (clean answers, other prompts)
	recs gen arith -n "$JUDGE_SUMS" --seed 556 --digits "$DIGITS" --sft |
	    recs to-json >>"$OUT/judge.jsonl"
	train-step -m "$OUT/judge.init" -o "$OUT/judge" --loss sft --lr "${JUDGE_LR:-3e-4}" \
	    --batch-size 16 --schedule cosine --warmup 20 <"$OUT/judge.jsonl" \
	    >"$OUT/judge.metrics"
	rm -rf "$OUT/judge.init"
	judge=$OUT/judge
fi

# The judge alone, on 1000 held-out prompts: FLR of the right sum against
# the same sum with one digit off by one (the policy's kind of mistake).
if [ ! -s "$OUT/judge.tsv" ]; then
	for nz in 0 1; do
		recs gen arith -n 1000 --seed 4242 --digits "$DIGITS" --sft --noise $nz |
		    flr --as flr | recs to-tsv flr >"$OUT/judge.$nz"
	done
	paste "$OUT/judge.0" "$OUT/judge.1" |
	    awk '{ n++; w += ($1 > $2) } END { printf "%d\t%.3f\n", n, w / n }' \
	    >"$OUT/judge.tsv"
	rm -f "$OUT/judge.0" "$OUT/judge.1"
fi
pp_log "judge: FLR ranks the right sum above a wrong one in $(cut -f2 "$OUT/judge.tsv") of $(cut -f1 "$OUT/judge.tsv") held-out prompts"
# dpo_run ARM: FLR_ROUNDS rounds of on-policy DPO from the SFT model, the
# pairs chosen by ARM: flr (the judge's follow-ups) or exact (the
# verifier, the baseline FLR stands in for); ARM.acc the accuracy rows.
# The samples of pp_mine carry the verifier's verdict as reward, which in
# the flr arm only the report reads.
recs head -n "$FLR_PROMPTS" "$prompts" >"$OUT/prompts.mpk"
dpo_run() {
	m=$sft i=1
	: >"$OUT/$1.acc"
	while [ "$i" -le "$FLR_ROUNDS" ]; do
		o=$OUT/$1-round$i
		if [ ! -d "$o" ]; then
			pp_mine "$m" $((500 + i)) "$OUT/prompts.mpk" |
			    if [ "$1" = flr ]; then
				flr --as flr | filter --sorted --keep best-worst --by flr |
				    pair --sorted --by flr --min-margin "$FLR_MIN_MARGIN"
			    else
				filter --sorted --keep best-worst | pair --sorted
			    fi | pp_par score --logprob "$m" >"$o.pairs"
			pp_dpo_train "$m" "$o" 0
		fi
		pp_acc_row "$1-dpo" "$i" "$o" >>"$OUT/$1.acc"
		pp_log "$1 round $i: $(recs count "$o.pairs") pairs | acc $(tail -n 1 "$OUT/$1.acc" | cut -f3-)"
		m=$o i=$((i + 1))
	done
}
pp_log "$FLR_ROUNDS rounds of DPO, pairs by FLR and by the verifier (side by side)"
dpo_run flr &
p1=$!
dpo_run exact &
p2=$!
wait "$p1"; wait "$p2"
{
	printf 'model\tround\tgreedy\tt1\n'
	pp_acc_row sft 0 "$sft"
	cat "$OUT/flr.acc" "$OUT/exact.acc"
} >"$OUT/results.tsv"
# FLR against the verifier on the mined pairs.
printf 'round\tpairs\tdecided\tflr_pair_acc\n' >"$OUT/flr.tsv"
i=1
while [ "$i" -le "$FLR_ROUNDS" ]; do
	recs to-tsv chosen.reward rejected.reward <"$OUT/flr-round$i.pairs" |
	    awk -F'\t' -v i="$i" '{ n++ } $1 != $2 { d++; ok += ($1 > $2) }
		END { printf "%s\t%d\t%d\t%.3f\n", i, n, d, d ? ok / d : 0 }' >>"$OUT/flr.tsv"
	i=$((i + 1))
done
pp_table "$OUT/results.tsv" >"$OUT/results.md"
{ echo; echo "The judge on $(cut -f1 "$OUT/judge.tsv") held-out prompts: FLR ranks the right sum above one with a digit off by one in $(awk '{ printf "%.1f %%", 100 * $2 }' "$OUT/judge.tsv") of them."
  echo; echo "FLR pairwise accuracy against the verifier (pairs whose verdicts differ):"; echo
  awk -F'\t' 'NR == 1 { print "| round | pairs | verdicts differ | FLR picks the correct side |"; print "| ---: | ---: | ---: | ---: |"; next }
	{ printf "| %s | %s | %s | %.1f %% |\n", $1, $2, $3, 100 * $4 }' "$OUT/flr.tsv"; } >>"$OUT/results.md"
pp_log "done: $OUT/results.md"
cat "$OUT/results.md"
