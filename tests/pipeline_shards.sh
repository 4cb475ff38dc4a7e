#!/bin/sh
# pipeline_shards: the shard-per-job form, pipelines/shards-slurm-array.sbatch
# with Slurm's array variables set by hand and its N tasks run as
# background jobs (as a job array or GNU parallel runs them).  The N parts
# hold between them exactly the pairs of one unsharded round's mining
# (pp_dpo_round), each prompt's pairs in one part; their union (recs cat
# in index order, pp_union) is that set in shard order, not those bytes;
# a missing part, a part beyond N, or an index outside 0..N-1 is an
# error; the job after the array trains a DPO step on the union.
. "${top_srcdir:-.}/tests/lib.sh"
export OMP_NUM_THREADS=1
S=$top_srcdir/pipelines/shards-slurm-array.sbatch

tiny_task "$T" || fail "the tiny task and its SFT model"

MODEL=$T/sft PROMPTS=$T/prompts EVAL=$T/eval SAMPLES=4 MAXTOK=4 SEED=1
DPO_BATCH=8 PREFPIPE_TOP=$top_srcdir OUT=$T/o
export MODEL PROMPTS EVAL SAMPLES MAXTOK SEED DPO_BATCH PREFPIPE_TOP OUT

# One unsharded round's pairs (the script's seed is SEED + 1000).
(PP_DIR=$top_srcdir/pipelines . "$top_srcdir/pipelines/lib.sh" &&
    pp_dpo_round "$T/sft" "$T/sft" "$T/one" 1001 "$T/prompts") \
    2>"$T/e" || fail "pp_dpo_round: $(cat "$T/e")"

# task I N: task I of an array of N.
task() {
	SLURM_ARRAY_TASK_ID=$1 SLURM_ARRAY_TASK_COUNT=$2 SLURM_ARRAY_JOB_ID=7 \
	    sh "$S" 2>"$T/task$1.err"
}
# The pairs as a set: sorted JSON lines without the reference log-probs
# (a model scorer's sums depend on which records share its batch), and
# the log-probs by id, compared within 1e-5.
noref() {
	recs to-json "$1" | sed 's/,"ref_logprobs":\[[^]]*\]//g
	    s/,"ref_logprob":[-0-9.e]*//g' | sort
}
refs() { recs to-tsv id chosen.ref_logprob rejected.ref_logprob <"$1" | sort; }
noref "$T/one.pairs" >"$T/one.set"
refs "$T/one.pairs" >"$T/one.refs"
echo "unsharded round: $(wc -l <"$T/one.set") pairs" >&2
[ "$(wc -l <"$T/one.set")" -ge 8 ] || fail "only $(wc -l <"$T/one.set") pairs mined"

for n in 1 3; do
	rm -rf "$OUT"
	i=0 pids=
	while [ $i -lt $n ]; do
		task $i $n &
		pids="$pids $!"
		i=$((i + 1))
	done
	for p in $pids; do wait "$p" || fail "N=$n: a task failed"; done
	i=0
	while [ $i -lt $n ]; do
		[ -s "$OUT/part.$i" ] || fail "N=$n: part.$i empty or missing"
		i=$((i + 1))
	done
	# The job after the array: union, DPO step, accuracy table.
	N=$n sh "$S" >"$T/table$n" 2>"$T/train$n.err" ||
	    fail "N=$n: the training job: $(cat "$T/train$n.err")"
	[ -s "$OUT/round1/model.safetensors" ] || fail "N=$n: no DPO checkpoint"
	[ "$(grep -c '^| dpo | 1 |' "$T/table$n")" = 1 ] ||
	    fail "N=$n: no accuracy row: $(cat "$T/table$n")"
	# shellcheck disable=SC2046
	recs cat $(i=0; while [ $i -lt $n ]; do echo "$OUT/part.$i"
	    i=$((i + 1)); done) >"$T/cat$n"
	same "N=$n: round1.pairs is recs cat of the parts in index order" \
	    "$T/cat$n" "$OUT/round1.pairs"
	echo "N=$n: $(recs count "$OUT/round1.pairs") pairs in the union;" \
	    "$(grep '^| dpo' "$T/table$n")" >&2
	noref "$OUT/round1.pairs" >"$T/u$n.set"
	same "N=$n: the union's pairs are the unsharded round's" \
	    "$T/one.set" "$T/u$n.set"
	refs "$OUT/round1.pairs" >"$T/u$n.refs"
	paste "$T/one.refs" "$T/u$n.refs" | awk -F '\t' '$1 != $4 { bad = 1 }
	    { for (j = 2; j <= 3; j++) { d = $j - $(j + 3); if (d < 0) d = -d
	      m = $j < 0 ? -$j : $j; if (d > 1e-5 * (m > 1 ? m : 1)) bad = 1 } }
	    END { exit bad || NR == 0 }' ||
	    fail "N=$n: reference log-probs differ"
	# Each prompt's pairs lie in one part: no id in two parts.
	i=0
	while [ $i -lt $n ]; do
		recs to-tsv id <"$OUT/part.$i" | sort -u
		i=$((i + 1))
	done | sort | uniq -d >"$T/dup"
	[ ! -s "$T/dup" ] || fail "N=$n: ids in two parts: $(head -3 "$T/dup")"
done
# Three shards, not one run's order: the bytes differ (if this ever held,
# the documentation would be wrong the other way).
cmp -s "$T/one.pairs" "$OUT/round1.pairs" &&
    fail "N=3: the union is byte-identical to one run; the docs say it is not"

# A part missing, a part beyond N, an index outside the array.
rm "$OUT/part.1"
expect_fail 1 'part\.1: missing' env N=3 sh "$S"
: >"$OUT/part.1"
touch "$OUT/part.3" && expect_fail 1 'part\.3: a part beyond N=3' \
    env N=3 sh "$S"
expect_fail 2 'indices must be 0 to N-1' env SLURM_ARRAY_TASK_ID=3 \
    SLURM_ARRAY_TASK_COUNT=3 sh "$S"
expect_fail 1 'not found' env MODEL="$T/nonexistent" sh "$S"
finish
