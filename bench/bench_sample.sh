#!/bin/sh
# bench_sample: the cost of choosing a token for each kind of sampling
# rollout offers, against the plain kind, over 32000 logits (see
# bench/bench_sample.c).
#
#   sh bench/bench_sample.sh [V]
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
b="$top_builddir/bench/bench_sample"
[ -x "$b" ] || make -C "$top_builddir" bench/bench_sample >/dev/null ||
    exit 1
exec "$b" "$@"
