#!/bin/sh
# shards_parallel: pipelines/shards-parallel.sh, GNU parallel running N
# shard jobs: its parts are the bytes of the same shards run one by one
# (its "job" form), its pairs their union in index order, and it trains
# and evaluates a DPO step.  Skips where GNU parallel is not installed
# (Debian: parallel); tests/pipeline_shards.sh checks the same contract
# with background jobs, which need nothing.
. "${top_srcdir:-.}/tests/lib.sh"
command -v parallel >/dev/null 2>&1 ||
	skip "GNU parallel is not installed (Debian: parallel)"
parallel --version 2>/dev/null | grep -q 'GNU parallel' ||
	skip "parallel on PATH is not GNU parallel (moreutils' is not)"
export OMP_NUM_THREADS=1
P=$top_srcdir/pipelines/shards-parallel.sh

tiny_task "$T" || fail "the tiny task and its SFT model"
MODEL=$T/sft PROMPTS=$T/prompts EVAL=$T/eval SAMPLES=4 MAXTOK=4 SEED=1
DPO_BATCH=8 SFT_DIR=$T/sftdir OUT=$T/o
export MODEL PROMPTS EVAL SAMPLES MAXTOK SEED DPO_BATCH SFT_DIR OUT

N=3 JOBS=2 sh "$P" >"$T/table" 2>"$T/e" || fail "shards-parallel.sh: $(cat "$T/e")"
grep -q '^| dpo | 1 |' "$T/table" || fail "no accuracy row: $(cat "$T/table")"
[ -s "$OUT/round1/model.safetensors" ] || fail "no DPO checkpoint"
i=0
while [ $i -lt 3 ]; do
	sh "$P" job $i 3 "$T/sft" "$T/sft" 1001 "$SFT_DIR/data/prompts.mpk" \
	    "$T/job$i" || fail "job $i"
	same "part $i == the job run alone" "$T/job$i" "$OUT/part.$i"
	i=$((i + 1))
done
recs cat "$T/job0" "$T/job1" "$T/job2" >"$T/union"
same "round1.pairs == the union in index order" "$T/union" \
    "$OUT/round1.pairs"
[ "$(recs count "$T/union")" -ge 8 ] || fail "only $(recs count "$T/union") pairs"
# A failing job fails the script (parallel --halt).
expect_fail 1 'not found|No such file' env N=2 MODEL="$T/nonexistent" sh "$P"
expect_fail 2 'usage' sh "$P" job 0 3
finish
