#!/bin/sh
# pipelines/demo.sh: the prefpipe demo (make demo).
#
# usage: pipelines/demo.sh
#        MODEL=path/to/hf-dir PROMPTS=prompts.jsonl EVAL=heldout.jsonl \
#            pipelines/demo.sh
#
# Two SFT models (two seeds) of the embedded arithmetic task (a common
# first phase, then each seed on its own, so that the two can be souped),
# then ROUNDS
# rounds of on-policy preference mining for each,
#
#   rollout -n 8 | score --exact | filter --keep best-worst | pair |
#       score --logprob REF | train-step --loss dpo
#
# (REF: the round's starting policy), then the uniform soup of the two DPO
# runs (merge).  Every model is evaluated on held-out prompts, greedy and at
# temperature 1.  Writes to OUT (default out/demo): results.tsv, results.md
# (the table, also on stdout) and accuracy.png.  Progress goes to stderr.
# With MODEL, both runs start from MODEL (no SFT) and differ in their
# sampling seeds; PROMPTS and EVAL are prompt records with an answer field.
# Other overrides: see pipelines/lib.sh (ROUNDS, SEED, SAMPLES, LR, BETA,
# NLL, DIGITS, NOISE, N_SFT, ...).  Re-running reuses finished checkpoints;
# remove OUT to start afresh.
#
# NP=K spreads every rollout, score --logprob and train-step over K ranks
# under mpirun (MPIRUN, MPIRUN_ARGS: see pipelines/lib.sh), and the two
# runs then go one after the other, each tool having the cores to itself;
# unset or 1, plain processes, the two runs side by side.  The samples are
# the same bytes at every K, the reference log-probs and the training the
# same within float rounding.  pipelines/slurm-dpo.sbatch runs this under
# Slurm.
. "$(dirname "$0")/lib.sh"

OUT=${OUT:-out/demo}
mkdir -p "$OUT"
PP_EVAL=$OUT/data/eval.mpk

pp_log "demo: data (digits=$DIGITS noise=$NOISE n_sft=$N_SFT) in $OUT"
pp_gen_data "$OUT/data"

s1=$SEED s2=$((SEED + 1))
steps=$(( (N_SFT + SFT_BATCH - 1) / SFT_BATCH + (N_SFT2 + SFT_BATCH - 1) / SFT_BATCH ))
pp_log "SFT: common phase ($N_SFT examples, seed $SEED)"
pp_init_sft "$SEED" "$OUT/sft-common" "$OUT/data/sft.mpk" "$steps"
# both FUNC: FUNC s1 and FUNC s2, side by side, or with NP > 1 (each
# tool on all the ranks) one after the other.
if [ "$NP" -gt 1 ]; then side="one after the other, $NP ranks a tool"
else side="side by side"; fi
both() {
	if [ "$NP" -gt 1 ]; then
		"$1" "$s1"
		"$1" "$s2"
	else
		"$1" "$s1" &
		p1=$!
		"$1" "$s2" &
		p2=$!
		wait "$p1"; wait "$p2"
	fi
}

sft_more() {
	pp_sft_more "$OUT/sft-common" "$OUT/run$1/round0" "$1" "$OUT/data/sft2.mpk"
}
pp_log "SFT: two seeds $s1 and $s2 go on ($N_SFT2 examples each, $side)"
both sft_more
pp_log "SFT done"

# run SEED: evaluate round 0, then ROUNDS DPO rounds, evaluating each.
run() {
	d=$OUT/run$1
	row=$(pp_acc_row "sft-$1" 0 "$d/round0")
	printf '%s\n' "$row" >"$d/results.tsv"
	pp_log "run $1: SFT accuracy $(cut -f3,4 "$d/results.tsv" | tr '\t' ' ')"
	i=1
	while [ "$i" -le "$ROUNDS" ]; do
		prev=$d/round$((i - 1))
		# Each round mines a different slice of the prompts.
		pp_dpo_round "$prev" "$prev" "$d/round$i" "$((1000 * $1 + i))" \
		    "$OUT/data/prompts.mpk"
		row=$(pp_acc_row "dpo-$1" "$i" "$d/round$i")
		printf '%s\n' "$row" >>"$d/results.tsv"
		pp_log "run $1: round $i: $(recs count "$d/round$i.pairs") pairs," \
		    "margin $(recs to-tsv margin <"$d/round$i.metrics" | tail -n 1)," \
		    "accuracy $(echo "$row" | cut -f3,4 | tr '\t' ' ')"
		i=$((i + 1))
	done
}
pp_log "DPO: $ROUNDS rounds per run ($side)"
both run

pp_log "soup: uniform merge of the two final DPO models"
rm -rf "$OUT/soup"
merge -o "$OUT/soup" "$OUT/run$s1/round$ROUNDS" "$OUT/run$s2/round$ROUNDS" 2>/dev/null
soup=$(pp_acc_row soup "$ROUNDS" "$OUT/soup")

{
	printf 'model\tround\tgreedy\tt1\n'
	cat "$OUT/run$s1/results.tsv" "$OUT/run$s2/results.tsv"
	printf '%s\n' "$soup"
} >"$OUT/results.tsv"

pp_table "$OUT/results.tsv" >"$OUT/results.md"
awk -F'\t' '$2 == 0 { g += $3; t += $4; n++ }
	$1 == "soup" { sg = $3; st = $4 }
	END { printf "\nSFT mean: greedy %.1f %%, T=1 %.1f %%; soup - SFT: greedy %+.1f, T=1 %+.1f points\n",
	    100 * g / n, 100 * t / n, 100 * (sg - g / n), 100 * (st - t / n) }' \
    "$OUT/results.tsv" >>"$OUT/results.md"
"$pp_here/plot" accuracy "$OUT/results.tsv" "$OUT/accuracy.png"
pp_log "done: $OUT/results.md, $OUT/accuracy.png"
cat "$OUT/results.md"
