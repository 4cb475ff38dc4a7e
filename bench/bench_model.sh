#!/bin/sh
# bench_model.sh: the model's speed and memory (run by `make bench`).
#   training step tokens/s against PyTorch CPU (2 threads, eager fp32),
#   achieved GFLOP/s as a fraction of the measured cblas_sgemm peak,
#   KV-cache decoding tokens/s (dims 64, 288, 512; one and eight streams),
#   peak RSS of a training step against its parts.
set -eu
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${PYTHON3:=/usr/bin/python3}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
${MAKE:-make} -s -C "$top_builddir" bench/bench_model >/dev/null
b="$top_builddir/bench/bench_model"
T=$(mktemp -d "${TMPDIR:-/tmp}/bench_model.XXXXXX")
trap 'rm -rf "$T"' EXIT

get() { sed -n "s/^$1=//p" "$2"; }

"$b" peak >"$T/peak"
"$b" train 10 >"$T/train"
cat "$T/peak" "$T/train"
peak=$(get sgemm_peak_gflops "$T/peak")
ours=$(get train_tokens_per_s "$T/train")
gf=$(get train_gflops "$T/train")
awk -v g="$gf" -v p="$peak" \
    'BEGIN { printf "train_fraction_of_sgemm_peak=%.2f\n", g / p }'

if "$PYTHON3" -c 'import torch' 2>/dev/null; then
	"$PYTHON3" "$top_srcdir/bench/bench_model.py" 10 >"$T/torch"
	cat "$T/torch"
	theirs=$(get torch_train_tokens_per_s "$T/torch")
	awk -v a="$ours" -v b="$theirs" \
	    'BEGIN { printf "train_speedup_vs_torch=%.2f\n", a / b }'
else
	echo "torch: not installed, no baseline"
fi

for d in 64 288 512; do
	"$b" decode $d >"$T/dec"
	cat "$T/dec"
	one=$(get "decode${d}_1stream_tokens_per_s" "$T/dec")
	eight=$(get "decode${d}_8stream_tokens_per_s" "$T/dec")
	awk -v a="$eight" -v b="$one" -v d=$d \
	    'BEGIN { printf "decode%d_8stream_over_1stream=%.2f\n", d, a / b }'
done

"$b" memory
