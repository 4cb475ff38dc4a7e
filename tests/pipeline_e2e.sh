#!/bin/sh
# pipeline_e2e: a shortened demo pipeline, end to end through every tool:
# recs gen arith -> ckpt init -> train-step --loss sft -> rollout -n 8 |
# score --exact | filter --keep best-worst | pair | score --logprob REF |
# train-step --loss dpo -> merge -> evaluation, and pipelines/lib.sh's
# functions.  Asserts that the chain runs, that it mines pairs, and that the
# DPO step increases the chosen-over-rejected margin (measured afterwards
# with score --logprob, on the training pairs and on held-out pairs).
. "${top_srcdir:-.}/tests/lib.sh"
export OMP_NUM_THREADS=1
d=$T

# A tiny model on one-digit sums, noisy SFT data so that samples disagree.
recs gen arith -n 3000 --seed 3 --digits 1 --sft --noise 0.3 >"$d/sft.data" ||
    fail "recs gen arith --sft"
recs gen arith -n 256 --seed 4 --digits 1 >"$d/prompts" || fail "recs gen arith"
recs gen arith -n 64 --seed 5 --digits 2 --split eval >"$d/held" ||
    fail "recs gen arith --split eval"
ckpt init -o "$d/base" --tokenizer byte --dim 48 --layers 1 --heads 2 \
    --ffn 96 --ctx 16 --seed 1 >/dev/null || fail "ckpt init"
train-step -m "$d/base" -o "$d/sft" --loss sft --lr 3e-3 --batch-size 32 \
    --schedule cosine <"$d/sft.data" >"$d/sft.metrics" || fail "train-step --loss sft"

# The core pipeline, as one shell pipeline.
rollout -m "$d/sft" -n 8 --max-tokens 4 --seed 1 "$d/prompts" |
    score --exact |
    filter --sorted --keep best-worst |
    pair --sorted |
    score --logprob "$d/sft" >"$d/pairs" || fail "mining pipeline"
npairs=$(recs count "$d/pairs")
[ "${npairs:-0}" -ge 8 ] || fail "only ${npairs:-0} pairs mined"

train-step -m "$d/sft" -o "$d/dpo" --loss dpo --reset-optimizer --lr 3e-4 \
    --beta 0.1 --batch-size 16 --epochs 2 <"$d/pairs" >"$d/dpo.metrics" ||
    fail "train-step --loss dpo"
[ -s "$d/dpo/model.safetensors" ] || fail "no DPO checkpoint"

# margin MODEL PAIRS: mean over pairs of
# [S(chosen) - S_ref(chosen)] - [S(rejected) - S_ref(rejected)].
margin() {
	score --logprob "$1" --as pol "$2" |
	    recs to-tsv chosen.pol_logprob chosen.ref_logprob \
	        rejected.pol_logprob rejected.ref_logprob |
	    awk -F'\t' '{ s += ($1 - $2) - ($3 - $4); n++ }
		END { if (n) printf "%.6f\n", s / n; else print "nan" }'
}
m=$(margin "$d/dpo" "$d/pairs")
echo "pairs=$npairs train margin after DPO: $m" >&2
awk -v m="$m" 'BEGIN { exit !(m > 0.05) }' ||
    fail "DPO did not increase the chosen-over-rejected margin ($m)"
# The last metrics record agrees in sign.
last=$(recs to-tsv margin <"$d/dpo.metrics" | tail -n 1)
awk -v m="$last" 'BEGIN { exit !(m > 0) }' ||
    fail "train-step's last margin is $last"

# Held-out pairs (prompts the DPO step never saw) move the same way.
recs gen arith -n 256 --seed 6 --digits 1 |
    rollout -m "$d/sft" -n 8 --max-tokens 4 --seed 2 |
    score --exact | filter --sorted --keep best-worst | pair --sorted |
    score --logprob "$d/sft" >"$d/held-pairs" || fail "held-out pairs"
hm=$(margin "$d/dpo" "$d/held-pairs")
echo "held-out margin after DPO: $hm" >&2
awk -v m="$hm" 'BEGIN { exit !(m > 0) }' ||
    fail "DPO did not increase the held-out margin ($hm)"

# A soup of SFT and DPO, and the evaluation the pipelines use.
merge -o "$d/soup" "$d/sft" "$d/dpo" 2>/dev/null || fail "merge"
acc=$(rollout -m "$d/soup" --temperature 0 --max-tokens 4 "$d/held" |
    score --exact | recs stats reward | recs to-tsv reward.mean)
awk -v a="$acc" 'BEGIN { exit !(a >= 0 && a <= 1) }' ||
    fail "soup accuracy '$acc' is not a fraction"

# pipelines/lib.sh's helpers on the same models.
(
	cd "$d" && PP_DIR=$top_srcdir/pipelines PP_EVAL=$d/held MAXTOK=4 SEED=1 \
	    . "$top_srcdir/pipelines/lib.sh" && pp_acc_row sft 0 "$d/sft"
) >"$d/row" 2>"$d/err" || fail "lib.sh pp_acc_row: $(cat "$d/err")"
awk -F'\t' 'NF != 4 { exit 1 }' "$d/row" || fail "lib.sh row: $(cat "$d/row")"

# pp_gen_data (pp_task): a data directory made with other settings is
# refused, not reused; the same settings reuse it.
lib() { (cd "$d" && PP_DIR=$top_srcdir/pipelines N_SFT=20 N_SFT2=20 N_EVAL=5 \
    N_PROMPTS=5 "$@" sh -c '. "$PP_DIR/lib.sh" && pp_gen_data data') 2>"$d/err"; }
lib env NOISE=0.3 || fail "pp_gen_data: $(cat "$d/err")"
lib env NOISE=0.3 || fail "pp_gen_data again: $(cat "$d/err")"
check "pp_gen_data: the same settings reuse it" test ! -s "$d/err"
lib env NOISE=0.5 SYSTEMATIC=1
check "pp_gen_data: other settings exit 2" test $? -eq 2
grep -q 'data holds a run of digits=2 noise=0.3 systematic= .*, not digits=2 noise=0.5 systematic=1' "$d/err" ||
    fail "pp_gen_data: the refusal says $(cat "$d/err")"

# The plot script, where gnuplot is installed.
if command -v gnuplot >/dev/null 2>&1; then
	{ printf 'model\tround\tgreedy\tt1\n'; cat "$d/row"
	  printf 'dpo-0\t1\t0.5\t0.4\nsoup\t1\t%s\t0.3\n' "$acc"; } >"$d/res.tsv"
	sh "$top_srcdir/pipelines/plot" accuracy "$d/res.tsv" "$d/acc.png" ||
	    fail "pipelines/plot accuracy"
	[ -s "$d/acc.png" ] || fail "no PNG"
	sh "$top_srcdir/pipelines/plot" metrics "$d/m.png" margin \
	    "$d/dpo.metrics" || fail "pipelines/plot metrics"
fi
finish
