#!/bin/sh
# bench_lora.sh: LoRA training's speed and memory (run by `make bench`).
#   On a random checkpoint of Qwen2.5-0.5B's shape (dim 896, 24 layers,
#   14 heads, 2 kv heads, ffn 4864, vocabulary 151936, tied, q/k/v
#   biases): a LoRA-DPO step (4 pairs of a 256-token prompt and 256-token
#   responses, so 8 sequences of 512 tokens; r 16 on all seven linear
#   projections; one pair per micro-batch) in tokens/s and peak resident
#   memory, against full fine-tuning of the same step and against eager
#   PyTorch with a hand-written LoRA of the same shape (bench_lora.py),
#   one after the other in this run; then the LoRA-DPO step on the base
#   held in bf16 (--weights bf16), without and with --recompute.
#   LORA_1_5B=1 adds the LoRA-DPO step on Qwen2.5-1.5B's shape (dim 1536,
#   28 layers, 12 heads, 2 kv heads, ffn 8960), bf16 base, --recompute
#   (issue 16: peak RSS <= 8 GB).
#   The checkpoints are 2 GB and 6 GB.
set -eu
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${PYTHON3:=/usr/bin/python3}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
STEPS=${STEPS:-1}
tools=$top_builddir/tools
T=$(mktemp -d "${TMPDIR:-/tmp}/bench_lora.XXXXXX")
trap 'rm -rf "$T"' EXIT

# QWEN05="DIM LAYERS HEADS KV_HEADS FFN" replaces the 0.5B shape (a quick
# try of the script).
# 4 pairs of pseudo-random tokens in [3, 151936), reference sums given
awk -v kind=pairs -v n=4 -v vocab=151936 -v prompt=256 -v response=256 \
    -f "$top_srcdir/bench/records.awk" >"$T/pairs.jsonl"

# step NAME ARGS...: train-step's fastest step (tokens/s, seconds) from
# its metrics, and the run's peak RSS in MiB (the kernel's, loading
# included)
cat >"$T/rss.py" <<'PY'
import resource, subprocess, sys
with open(sys.argv[1], "w") as out:
    r = subprocess.run(sys.argv[2:], stdout=out)
print("%.0f" % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss /
                1024.0))
sys.exit(r.returncode)
PY
step() {
	name=$1; shift
	"$PYTHON3" "$T/rss.py" "$T/m.$name" "$@" <"$T/pairs.jsonl"
}

bench() {	# SHAPE: dim layers heads kv_heads ffn
	dim=$1 layers=$2 heads=$3 kvh=$4 ffn=$5 tag=$6
	"$tools/ckpt" init -o "$T/$tag" --arch qwen2 --dim "$dim" \
	    --layers "$layers" --heads "$heads" --kv-heads "$kvh" --ffn "$ffn" \
	    --vocab-size 151936 --ctx 1024 --tie --seed 1 \
	    >/dev/null
}

# fastest FILE: tokens/s and seconds of the fastest step of a metrics file
fastest() {
	awk '{
		match($0, /"seconds":[0-9.e+-]+/)
		s = substr($0, RSTART + 10, RLENGTH - 10) + 0
		match($0, /"tokens":[0-9]+/)
		n = substr($0, RSTART + 9, RLENGTH - 9) + 0
		if (best == "" || s < best) { best = s; bn = n }
	} END { printf "%.1f %.2f\n", bn / best, best }' "$1"
}

common="--loss dpo --batch-size 4 --micro-batch 1 --no-shuffle --epochs $STEPS -J"
lora="--lora-rank 16 --lora-alpha 32"

# shellcheck disable=SC2086
bench ${QWEN05:-896 24 14 2 4864} m05
# shellcheck disable=SC2086
rss=$(step lora "$tools/train-step" -m "$T/m05" -o "$T/o" $common $lora)
set -- $(fastest "$T/m.lora")
echo "qwen05_lora_dpo_tokens_per_s=$1"
echo "qwen05_lora_dpo_step_s=$2"
echo "qwen05_lora_dpo_peak_rss_mib=$rss"
ours=$1
if "$PYTHON3" -c 'import torch' 2>/dev/null; then
	# shellcheck disable=SC2086
	"$PYTHON3" "$top_srcdir/bench/bench_lora.py" ${QWEN05:-896 24 14 2 4864} \
	    151936 "$STEPS" "$OMP_NUM_THREADS" >"$T/torch"
	cat "$T/torch"
	theirs=$(sed -n 's/^torch_lora_dpo_tokens_per_s=//p' "$T/torch")
	awk -v a="$ours" -v b="$theirs" \
	    'BEGIN { printf "qwen05_lora_dpo_speedup_vs_torch=%.2f\n", a / b }'
else
	echo "torch: not installed, no baseline"
fi
# The same step on the base held in bf16 (--weights bf16: the LoRA base
# follows it), without and with --recompute (issue 16's goal: peak RSS
# <= 4 GB with a bf16 base).
for rc in "" --recompute; do
	# shellcheck disable=SC2086
	rss=$(step lorab "$tools/train-step" -m "$T/m05" -o "$T/o" $common \
	    $lora --weights bf16 $rc)
	set -- $(fastest "$T/m.lorab")
	k=qwen05_lora_dpo_bf16${rc:+_recompute}
	echo "${k}_tokens_per_s=$1"
	echo "${k}_step_s=$2"
	echo "${k}_peak_rss_mib=$rss"
done
# shellcheck disable=SC2086
rss=$(step full "$tools/train-step" -m "$T/m05" -o "$T/o" $common)
set -- $(fastest "$T/m.full")
echo "qwen05_full_dpo_tokens_per_s=$1"
echo "qwen05_full_dpo_step_s=$2"
echo "qwen05_full_dpo_peak_rss_mib=$rss"
awk -v a="$ours" -v b="$1" \
    'BEGIN { printf "qwen05_lora_vs_full_speed=%.2f\n", a / b }'
rm -rf "$T/m05" "$T/o"

if [ "${LORA_1_5B:-0}" = 1 ]; then
	bench 1536 28 12 2 8960 m15
	# On a bf16 base, with --recompute (issue 16: peak RSS <= 8 GB).
	# shellcheck disable=SC2086
	rss=$(step lora15 "$tools/train-step" -m "$T/m15" -o "$T/o" \
	    $common $lora --weights bf16 --recompute)
	set -- $(fastest "$T/m.lora15")
	echo "qwen15_lora_dpo_bf16_recompute_tokens_per_s=$1"
	echo "qwen15_lora_dpo_bf16_recompute_peak_rss_mib=$rss"
fi
