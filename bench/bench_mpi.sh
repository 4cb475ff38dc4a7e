#!/bin/sh
# bench_mpi: what a second process buys on this machine, under mpirun
# (issue 17).  In the same run, the configurations taking turns (REPS
# rounds, default 3):
#
#   train-step: mpirun -np 2, one thread a rank, against mpirun -np 1 with
#   one thread: the same SFT run (8 records of 32 + 128 tokens a batch,
#   STEPS steps, bench_train.sh's dim-256 4-layer model), seconds per
#   step from the metrics (the least over the steps after the first: no
#   start-up, no checkpoint write); the ratio is the speed-up at the same
#   global batch (goal 1.8).  Also the all-reduce seconds per step of -np
#   2 (train-step's allreduce_seconds, its mean over those steps).
#
#   rollout: mpirun -np 2, one thread a rank, against one plain process
#   of two threads: 16 prompts, 4 samples of 64 tokens each, on
#   bench_rollout.sh's dim-288 6-layer model, wall seconds of the whole
#   command (launch, load and gather included).
#
# Ratios are of each configuration's least time over the rounds.  The
# machine's load average is printed before and after: other work on its
# cores shows in these figures.  Needs Open MPI (mpirun) and tools built
# with it; says so and exits 0 without.
#
#   flock /work/shared/bench.lock sh bench/bench_mpi.sh
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${PYTHON3:=/usr/bin/python3}"
PATH="$top_builddir/tools:$PATH"
REPS=${REPS:-3}
STEPS=${STEPS:-6}
if ! grep -q '^#define HAVE_MPI 1' "$top_builddir/config.h" ||
    ! command -v mpirun >/dev/null 2>&1; then
	echo "bench_mpi: no MPI (tools built without it, or no mpirun): skipped"
	exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
	OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
	export OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/bench_mpi.XXXXXX")
trap 'rm -rf "$T"' EXIT
echo "cores: $(nproc); load before: $(cut -d' ' -f1-3 /proc/loadavg)"

ckpt init -o "$T/m" --dim 256 --layers 4 --heads 4 --kv-heads 2 \
    --ffn 688 --vocab-size 4096 --ctx 512 --seed 1 >/dev/null || exit 1
awk -v kind=sft -f "$top_srcdir/bench/records.awk" >"$T/sft.jsonl"
ckpt init -o "$T/r" --dim 288 --layers 6 --heads 6 --ffn 768 \
    --vocab-size 32000 --ctx 512 --tie --seed 1 >/dev/null || exit 1
# No EOS: every sample runs its 64 tokens.
for f in config.json generation_config.json; do
	"$PYTHON3" -c 'import json, sys
c = json.load(open(sys.argv[1])); c["eos_token_id"] = []
json.dump(c, open(sys.argv[1], "w"))' "$T/r/$f" || exit 1
done
i=0
while [ $i -lt 16 ]; do
	printf '{"id":"p%d","prompt":"Once upon a time, number %d"}\n' $i $i
	i=$((i + 1))
done >"$T/prompts.jsonl"

# train K: the SFT run over K ranks of one thread; prints the least
# seconds of a step after the first, and the mean allreduce_seconds.
train() {
	rm -rf "$T/o$1"
	OMP_NUM_THREADS=1 mpirun --oversubscribe -np "$1" train-step \
	    -m "$T/m" -o "$T/o$1" --loss sft --batch-size 8 --epochs "$STEPS" \
	    --no-shuffle -J <"$T/sft.jsonl" >"$T/m$1" || exit 1
	recs to-tsv seconds allreduce_seconds <"$T/m$1" | awk -F '\t' '
	    NR > 1 { if (b == "" || $1 < b) b = $1; a += $2; n++ }
	    END { printf "%.6f %.6f\n", b, n ? a / n : 0 }'
}
# now: seconds since the epoch, to the nanosecond.
now() { date +%s.%N; }
# roll HOW: the rollout run, HOW "mpi" (2 ranks, 1 thread) or "threads"
# (one process, 2 threads); prints its wall seconds.
roll() {
	t0=$(now)
	if [ "$1" = mpi ]; then
		OMP_NUM_THREADS=1 mpirun --oversubscribe -np 2 rollout -m "$T/r" \
		    -n 4 --max-tokens 64 <"$T/prompts.jsonl" >"$T/s.mpi" || exit 1
	else
		OMP_NUM_THREADS=2 rollout -q -m "$T/r" -n 4 --max-tokens 64 \
		    <"$T/prompts.jsonl" >"$T/s.threads" || exit 1
	fi
	awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.6f\n", b - a }'
}

best() { awk -v x="$1" -v y="$2" 'BEGIN { print (y == "" || x < y) ? x : y }'; }
t1='' t2='' ar='' rm='' rt=''
r=0
while [ $r -lt "$REPS" ]; do
	# shellcheck disable=SC2046
	set -- $(train 2); t2=$(best "$1" "$t2"); ar="$ar $2"
	# shellcheck disable=SC2046
	set -- $(train 1); t1=$(best "$1" "$t1")
	rm=$(best "$(roll mpi)" "$rm")
	rt=$(best "$(roll threads)" "$rt")
	r=$((r + 1))
done
cmp -s "$T/s.mpi" "$T/s.threads" ||
    echo "bench_mpi: rollout -np 2 and one process wrote different samples" >&2
tok=$(recs to-tsv tokens <"$T/m1" | tail -n 1)
awk -v t1="$t1" -v t2="$t2" -v ar="$ar" -v rm="$rm" -v rt="$rt" \
    -v tok="$tok" 'BEGIN {
	n = split(ar, a, " "); s = 0; for (i = 1; i <= n; i++) s += a[i]
	printf "train_step_np1_s=%.4f\ntrain_step_np2_s=%.4f\n", t1, t2
	printf "train_tokens_per_s_np1=%.0f\ntrain_tokens_per_s_np2=%.0f\n", tok / t1, tok / t2
	printf "train_np2_vs_np1=%.2f\n", t1 / t2
	printf "train_np2_allreduce_s_per_step=%.4f\n", s / n
	printf "train_np2_allreduce_share=%.3f\n", s / n / t2
	printf "rollout_threads2_s=%.3f\nrollout_np2_s=%.3f\n", rt, rm
	printf "rollout_np2_vs_threads2=%.2f\n", rt / rm
}'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
