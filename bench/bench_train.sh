#!/bin/sh
# bench_train.sh: train-step's speed and memory (run by `make bench`).
#   tokens/s of a DPO step (8 pairs, 32-token prompts, 128-token responses,
#   the 4-layer dim-256 model) against eager PyTorch on 2 threads
#   (bench_train.py); peak resident memory of the step with reference
#   log-probs from the records and with --ref CKPT, against the parts
#   (weights, gradients, two Adam moments).
set -eu
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${PYTHON3:=/usr/bin/python3}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
STEPS=${STEPS:-5}
tools=$top_builddir/tools
T=$(mktemp -d "${TMPDIR:-/tmp}/bench_train.XXXXXX")
trap 'rm -rf "$T"' EXIT

"$tools/ckpt" init -o "$T/m" --dim 256 --layers 4 --heads 4 --kv-heads 2 \
    --ffn 688 --vocab-size 4096 --ctx 512 --seed 1 >/dev/null

# 8 pairs of pseudo-random tokens; reference sums in the records, and a
# copy without them for --ref.
awk -v kind=pairs -f "$top_srcdir/bench/records.awk" >"$T/pairs.jsonl"
sed 's/,"ref_logprob":-10[01]0//g' "$T/pairs.jsonl" >"$T/noref.jsonl"

# peak RSS in MiB of a command (the children's maximum, from the kernel)
rss() {
	"$PYTHON3" -c 'import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0)
sys.exit(r.returncode)' "$@"
}

# STEPS optimizer steps of the same batch in one invocation (--epochs):
# the fastest step's seconds, as bench_train.py reports its fastest.
"$tools/train-step" -m "$T/m" -o "$T/o" --loss dpo --batch-size 8 \
    --epochs "$((STEPS + 1))" --no-shuffle -J <"$T/pairs.jsonl" >"$T/metrics"
sed 1d "$T/metrics" | awk '{
		match($0, /"seconds":[0-9.e+-]+/)
		s = substr($0, RSTART + 10, RLENGTH - 10) + 0
		match($0, /"tokens":[0-9]+/)
		n = substr($0, RSTART + 9, RLENGTH - 9) + 0
		if (best == "" || s < best) best = s
		sum += s; k++
	}
	END {
		printf "dpo_step_ms=%.1f\n", best * 1e3
		printf "dpo_tokens_per_s=%.0f\n", n / best
		printf "dpo_tokens_per_s_mean=%.0f\n", n * k / sum
	}' >"$T/ours"
cat "$T/ours"
ours=$(sed -n 's/^dpo_tokens_per_s=//p' "$T/ours")

if "$PYTHON3" -c 'import torch' 2>/dev/null; then
	"$PYTHON3" "$top_srcdir/bench/bench_train.py" "$STEPS" >"$T/torch"
	cat "$T/torch"
	theirs=$(sed -n 's/^torch_dpo_tokens_per_s=//p' "$T/torch")
	awk -v a="$ours" -v b="$theirs" \
	    'BEGIN { printf "dpo_speedup_vs_torch=%.2f\n", a / b }'
else
	echo "torch: not installed, no baseline"
fi

# Memory: one step, reference sums from the records, then from --ref.
params=$("$tools/ckpt" info -J "$T/m" 2>/dev/null |
    sed -n 's/.*"params": *\([0-9]*\).*/\1/p' | head -1)
[ -n "$params" ] && awk -v p="$params" 'BEGIN {
	printf "params=%d\nweights_mib=%.1f\n", p, p * 4 / 1048576
	printf "weights_grads_moments_mib=%.1f\n", p * 16 / 1048576 }'
printf 'dpo_step_peak_rss_mib='
rss "$tools/train-step" -m "$T/m" -o "$T/o" --loss dpo --batch-size 8 \
    <"$T/pairs.jsonl"
printf 'dpo_step_with_ref_peak_rss_mib='
rss "$tools/train-step" -m "$T/m" -o "$T/o" --loss dpo --batch-size 8 \
    --ref "$T/m" <"$T/noref.jsonl"
# Activations shrink with the micro-batch; weights, gradients and moments
# do not.
printf 'dpo_step_micro_batch_2_peak_rss_mib='
rss "$tools/train-step" -m "$T/m" -o "$T/o" --loss dpo --batch-size 8 \
    --micro-batch 2 <"$T/pairs.jsonl"
