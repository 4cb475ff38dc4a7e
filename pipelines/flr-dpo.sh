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
#    The verifier (score --exact --as correct) only measures: the FLR
#    pairwise accuracy (the fraction of mined pairs whose verdicts differ
#    where FLR chose the correct side) and the held-out accuracy.
# Writes OUT (default out/flr-dpo): results.tsv, judge.tsv (the judge's
# own pairwise accuracy on held-out right and off-by-one sums), results.md.
# Overrides: JUDGE, JUDGE_N (dialogues, 40000), JUDGE_SUMS (20000),
# JUDGE_LR (3e-4), JUDGE_CTX (48),
# FLR_PROMPTS, FLR_ROUNDS, SFT_DIR (out/sft: the cached SFT model),
# and those of pipelines/lib.sh.
. "$(dirname "$0")/lib.sh"

OUT=${OUT:-out/flr-dpo}
SFT_DIR=${SFT_DIR:-out/sft}
JUDGE_N=${JUDGE_N:-40000}
JUDGE_SUMS=${JUDGE_SUMS:-20000}
JUDGE_CTX=${JUDGE_CTX:-48}
FLR_PROMPTS=${FLR_PROMPTS:-512}
FLR_ROUNDS=${FLR_ROUNDS:-2}
mkdir -p "$OUT"
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
printf 'model\tround\tgreedy\tt1\n' >"$OUT/results.tsv"
pp_acc_row sft 0 "$sft" >>"$OUT/results.tsv"
printf 'round\tpairs\tdecided\tflr_pair_acc\n' >"$OUT/flr.tsv"
m=$sft i=1
while [ "$i" -le "$FLR_ROUNDS" ]; do
	o=$OUT/round$i
	if [ ! -d "$o" ]; then
		pp_log "round $i: rollout -n $SAMPLES | score --flr | pair | DPO"
		# correct (the verifier's) only rides along for the report:
		# the pairs are chosen by flr alone.
		recs head -n "$FLR_PROMPTS" "$prompts" |
		    rollout -m "$m" -n "$SAMPLES" --max-tokens "$MAXTOK" \
		    --seed $((500 + i)) |
		    score --exact --as correct |
		    flr --as flr | filter --sorted --keep best-worst --by flr |
		    pair --sorted --by flr | score --logprob "$m" >"$o.pairs"
		train-step -m "$m" -o "$o" --loss dpo --reset-optimizer --lr "$LR" \
		    --beta "$BETA" --nll-coef "$NLL" --batch-size "$DPO_BATCH" \
		    <"$o.pairs" >"$o.metrics"
	fi
	# FLR against the verifier on the mined pairs.
	recs to-tsv chosen.correct rejected.correct <"$o.pairs" |
	    awk -F'\t' -v i="$i" '{ n++ } $1 != $2 { d++; ok += ($1 > $2) }
		END { printf "%s\t%d\t%d\t%.3f\n", i, n, d, d ? ok / d : 0 }' >>"$OUT/flr.tsv"
	pp_acc_row flr-dpo "$i" "$o" >>"$OUT/results.tsv"
	pp_log "round $i: $(tail -n 1 "$OUT/flr.tsv" | cut -f2-) | acc $(tail -n 1 "$OUT/results.tsv" | cut -f3-)"
	m=$o i=$((i + 1))
done
pp_table "$OUT/results.tsv" >"$OUT/results.md"
{ echo; echo "The judge on $(cut -f1 "$OUT/judge.tsv") held-out prompts: FLR ranks the right sum above one with a digit off by one in $(awk '{ printf "%.1f %%", 100 * $2 }' "$OUT/judge.tsv") of them."
  echo; echo "FLR pairwise accuracy against the verifier (pairs whose verdicts differ):"; echo
  awk -F'\t' 'NR == 1 { print "| round | pairs | verdicts differ | FLR picks the correct side |"; print "| ---: | ---: | ---: | ---: |"; next }
	{ printf "| %s | %s | %s | %.1f %% |\n", $1, $2, $3, 100 * $4 }' "$OUT/flr.tsv"; } >>"$OUT/results.md"
pp_log "done: $OUT/results.md"
cat "$OUT/results.md"
