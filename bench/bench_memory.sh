#!/bin/sh
# bench_memory.sh: peak resident memory and speed of one full fp32 SFT
# step on a random checkpoint of Qwen2.5-0.5B's shape (dim 896, 24
# layers, 14 heads, 2 KV heads, ffn 4864, vocabulary 151,936, tied, and
# Qwen2's q/k/v biases: 494M parameters, about 2 GB), 4 records of 512
# tokens (32 prompt, 480 response), with and without --recompute (run by
# `make bench`; issue 16's goal: peak RSS <= 10 GB).
#
# Weights, gradients and Adam's two moments alone are 16 bytes a
# parameter, 7.4 GiB; the activations come on top (model_act_bytes: 5.4
# GiB kept, 755 MiB recomputing; the classifier's (2048, 151936) logits,
# 1.2 GiB, are never held whole: pieces of 432 rows, 256 MiB).
#
# Figures (key=value): peak RSS in MiB (/usr/bin/time -f %M) and tokens/s
# of the step (tokens over the step's seconds in its metrics record: the
# forward, backward and update, not the loading or the saving) of each
# run, the ratios, and whether the 10 GB goal is met.  With BASE_TOOLS=DIR
# (another build's tools/, e.g. bench/ab.sh's out/ab/TREE/bin) the same
# step of that build runs last, for the before and after.
#
# Knobs: OMP_NUM_THREADS (2), STEPS (1: steps an invocation; the fastest
# is kept), BASE_TOOLS.  It needs about 12 GB of memory (more for an old
# build that held the logits whole) and 8 GB of disk in TMPDIR.
set -eu
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
STEPS=${STEPS:-1}
tools=$top_builddir/tools
T=$(mktemp -d "${TMPDIR:-/tmp}/bench_memory.XXXXXX")
trap 'rm -rf "$T"' EXIT

"$tools/ckpt" init -o "$T/m" --arch qwen2 --dim 896 --layers 24 --heads 14 \
    --kv-heads 2 --ffn 4864 --vocab-size 151936 --tie \
    --ctx 512 --seed 1 >/dev/null

# 4 records of pseudo-random token ids in [3, 151936)
awk -v kind=sft -v n=4 -v vocab=151936 -v prompt=32 -v response=480 \
    -f "$top_srcdir/bench/records.awk" >"$T/sft.jsonl"

# run NAME TOOLS [ARGS]: one invocation; NAME_rss_mib and NAME_tok_s
run() {
	name=$1 dir=$2; shift 2
	/usr/bin/time -f %M -o "$T/$name.rss" "$dir/train-step" -m "$T/m" \
	    -o "$T/out" --loss sft --batch-size 4 --epochs "$STEPS" \
	    --no-shuffle -q -J "$@" <"$T/sft.jsonl" >"$T/$name.metrics"
	rm -rf "$T/out"
	awk -v name="$name" -v kib="$(tail -n 1 "$T/$name.rss")" '{
		match($0, /"seconds":[0-9.e+-]+/)
		s = substr($0, RSTART + 10, RLENGTH - 10) + 0
		match($0, /"tokens":[0-9]+/)
		n = substr($0, RSTART + 9, RLENGTH - 9) + 0
		if (best == "" || s < best) best = s
	}
	END {
		printf "%s_rss_mib=%.0f\n", name, kib / 1024
		printf "%s_step_s=%.1f\n", name, best
		printf "%s_tok_s=%.1f\n", name, n / best
	}' "$T/$name.metrics" | tee -a "$T/figures"
}

# ratio KEY A B: A / B of two figures
ratio() {
	awk -F = -v a="$2" -v b="$3" -v k="$1" '{ v[$1] = $2 }
	    END { printf "%s=%.3f\n", k, v[a] / v[b] }' "$T/figures"
}

# the goal's run first, the old build's (the largest) last
run sft_recompute "$tools" --recompute
run sft "$tools"
if [ -n "${BASE_TOOLS:-}" ]; then
	run base_sft "$BASE_TOOLS"
fi
ratio recompute_speed_ratio sft_recompute_tok_s sft_tok_s
ratio recompute_rss_ratio sft_recompute_rss_mib sft_rss_mib
if [ -n "${BASE_TOOLS:-}" ]; then
	ratio speed_vs_base sft_tok_s base_sft_tok_s
	ratio rss_vs_base sft_rss_mib base_sft_rss_mib
	ratio recompute_rss_vs_base sft_recompute_rss_mib base_sft_rss_mib
fi
# 10 GB = 9537 MiB
awk -F = '$1 ~ /rss_mib$/ { printf "%s_goal_10gb=%s\n", $1,
    $2 <= 9537 ? "met" : "missed" }' "$T/figures"
