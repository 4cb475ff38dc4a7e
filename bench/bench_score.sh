#!/bin/sh
# bench_score.sh: score --logprob, --rm and --flr against the model's raw
# forward pass on the same batches (run by `make bench`).  The issue asks
# for score_over_raw >= 0.80 on each.
set -eu
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
export top_srcdir
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
${MAKE:-make} -s -C "$top_builddir" bench/bench_score >/dev/null
b="$top_builddir/bench/bench_score"
n=${BENCH_SCORE_RECORDS:-64}
"$b" logprob "$n"
"$b" rm "$n"
# Each FLR record is twenty sequences.
"$b" flr $(( (n + 11) / 12 ))
