#!/bin/sh
# pipelines/shards-parallel.sh: one round of the demo's on-policy DPO in
# the shard-per-job form, the jobs run by GNU parallel.
#
# usage: pipelines/shards-parallel.sh
#        N=16 JOBS=4 MODEL=hf-dir PROMPTS=p.jsonl EVAL=e.jsonl \
#            pipelines/shards-parallel.sh
#        pipelines/shards-parallel.sh job I N POLICY REF SEED PROMPTS FILE
#
# N independent jobs (default 4; JOBS at a time, default N), job I mining
# shard I/N of the prompts into OUT/part.I:
#
#   rollout --shard I/N | score --exact | filter --keep best-worst |
#       pair | score --logprob REF
#
# then the union, recs cat OUT/part.0 ... OUT/part.(N-1) (pp_union), is
# the round's pairs (OUT/round1.pairs), and one DPO step trains on them
# (OUT/round1; over NP ranks when NP is set, see pipelines/lib.sh).  The
# policy, and the reference, is the demo's SFT model of seed SEED (trained
# once into SFT_DIR, default out/sft) or MODEL.  Prints the held-out
# accuracy before and after (OUT/results.tsv).  The "job" form is one
# shard, what parallel runs; with parallel's -S or --sshloginfile
# (PARALLEL_ARGS) the jobs go to other machines, which then need this tree
# and the files at the same paths.
#
# The union holds exactly the pairs one unsharded round mines (each
# prompt's pairs whole, in one part), in shard order rather than the
# prompts' order: the same records, not the same bytes (sorted as JSON
# lines they are).  train-step's shuffle draws from the record order, so
# the DPO step is an equally good draw, not the unsharded one's; for the
# unsharded bytes run the round under mpirun instead (NP, demo.sh).
. "$(dirname "$0")/lib.sh"

if [ "${1:-}" = job ]; then
	[ $# -eq 8 ] || { echo "usage: $0 job I N POLICY REF SEED PROMPTS" \
	    "FILE" >&2; exit 2; }
	pp_mine_shard "$4" "$5" "$6" "$7" "$2" "$3" >"$8.tmp"
	mv "$8.tmp" "$8"
	exit 0
fi

: "${N:=4}"
: "${JOBS:=$N}"
: "${PARALLEL_ARGS:=}"
OUT=${OUT:-out/shards-parallel}
SFT_DIR=${SFT_DIR:-out/sft}
if ! command -v parallel >/dev/null 2>&1; then
	echo "shards-parallel.sh: GNU parallel is not installed" \
	    "(Debian: apt-get install parallel)" >&2
	exit 1
fi
mkdir -p "$OUT"
pol=$(pp_default_sft "$SFT_DIR")
PP_EVAL=$SFT_DIR/data/eval.mpk
seed=$((SEED + 1000))

pp_log "shards: $N jobs, $JOBS at a time: rollout --shard I/$N | ... > $OUT/part.I"
rm -f "$OUT"/part.*
# -q: the arguments reach sh as they are (paths with spaces); --halt:
# the first failed job stops the others, and parallel's status is not 0.
# shellcheck disable=SC2086
seq 0 $((N - 1)) | parallel --will-cite -j "$JOBS" --halt now,fail=1 \
    $PARALLEL_ARGS -q sh "$pp_here/shards-parallel.sh" job {} "$N" \
    "$pol" "$pol" "$seed" "$SFT_DIR/data/prompts.mpk" "$OUT/part.{}"
pp_union "$OUT" "$N" >"$OUT/round1.pairs"
pp_log "union: $(recs count "$OUT/round1.pairs") pairs; DPO step"
rm -rf "$OUT/round1"
pp_dpo_train "$pol" "$OUT/round1" "$seed"
{
	printf 'model\tround\tgreedy\tt1\n'
	pp_acc_row sft 0 "$pol"
	pp_acc_row dpo 1 "$OUT/round1"
} >"$OUT/results.tsv"
pp_table "$OUT/results.tsv"
