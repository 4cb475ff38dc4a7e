#!/bin/sh
# rollout: a sample depends only on (seed, id, sample index).  Not on
# --batch, the thread count, the order of the prompts or how the input is
# split; and --shard I/K over K processes writes exactly what one would.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
# Threads that wait by spinning starve the busy ones on a loaded machine
# (make -j, other tests): these tests are about results, not speed.
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}; export OMP_WAIT_POLICY

ckpt init -o "$T/m" --seed 8 || fail "ckpt init"
i=0
while [ $i -lt 12 ]; do
	printf '{"id":"q%d","prompt":"prompt number %d"}\n' $i $i
	i=$((i + 1))
done >"$T/p.jsonl"
printf '{"prompt":"no id here"}\n' >>"$T/p.jsonl"

run() { rollout -m "$T/m" -n 3 --max-tokens 24 --greedy-baseline \
    --top-p 0.95 "$@"; }
run <"$T/p.jsonl" >"$T/all" || fail "rollout"
# sorted JSON lines: the records as a set
sorted() { recs to-json "$@" | sort; }
sorted "$T/all" >"$T/all.s"

for b in 1 2 5 64; do
	run --batch $b <"$T/p.jsonl" >"$T/b$b" || fail "--batch $b"
	same "--batch $b" "$T/all" "$T/b$b"
done
OMP_NUM_THREADS=1 run <"$T/p.jsonl" >"$T/t1" || fail "1 thread"
same "1 thread" "$T/all" "$T/t1"
OMP_NUM_THREADS=3 run --batch 4 <"$T/p.jsonl" >"$T/t3" || fail "3 threads"
same "3 threads" "$T/all" "$T/t3"

# The same with widths that are not multiples of eight (dim 36, heads of
# 12, ffn 52), where the decoding kernels finish each sum lane by lane.
ckpt init -o "$T/odd" --dim 36 --heads 3 --ffn 52 --layers 2 --seed 9 ||
    fail "ckpt init odd"
rollout -m "$T/odd" -n 3 --max-tokens 24 <"$T/p.jsonl" >"$T/odd_all" ||
    fail "rollout odd"
for b in 1 4 7; do
	OMP_NUM_THREADS=$((b % 3 + 1)) rollout -m "$T/odd" -n 3 \
	    --max-tokens 24 --batch $b <"$T/p.jsonl" >"$T/odd_b$b" ||
	    fail "rollout odd --batch $b"
	same "odd widths, --batch $b" "$T/odd_all" "$T/odd_b$b"
done
# And on the plain kernels (CPUs without AVX2).
PREFPIPE_NO_AVX2=1 rollout -m "$T/odd" -n 3 --max-tokens 24 \
    <"$T/p.jsonl" >"$T/plain_all" || fail "rollout plain"
for b in 1 7; do
	PREFPIPE_NO_AVX2=1 OMP_NUM_THREADS=$((b % 3 + 1)) rollout \
	    -m "$T/odd" -n 3 --max-tokens 24 --batch $b <"$T/p.jsonl" \
	    >"$T/plain_b$b" || fail "rollout plain --batch $b"
	same "plain kernels, --batch $b" "$T/plain_all" "$T/plain_b$b"
done

# Qwen3 (q/k norms over head_dim 10, on a width of 36 with 4 heads,
# biases): the same invariance over batches, threads and both kernels.
ckpt init -o "$T/q3" --arch qwen3 --dim 36 --heads 4 --kv-heads 2 \
    --head-dim 10 --attention-bias --ffn 52 --layers 2 --seed 10 ||
    fail "ckpt init qwen3"
rollout -m "$T/q3" -n 3 --max-tokens 24 <"$T/p.jsonl" >"$T/q3_all" ||
    fail "rollout qwen3"
for b in 1 4 7; do
	OMP_NUM_THREADS=$((b % 3 + 1)) rollout -m "$T/q3" -n 3 \
	    --max-tokens 24 --batch $b <"$T/p.jsonl" >"$T/q3_b$b" ||
	    fail "rollout qwen3 --batch $b"
	same "qwen3, --batch $b" "$T/q3_all" "$T/q3_b$b"
done
PREFPIPE_NO_AVX2=1 rollout -m "$T/q3" -n 3 --max-tokens 24 \
    <"$T/p.jsonl" >"$T/q3_plain" || fail "rollout qwen3 plain"
for b in 1 7; do
	PREFPIPE_NO_AVX2=1 OMP_NUM_THREADS=$((b % 3 + 1)) rollout \
	    -m "$T/q3" -n 3 --max-tokens 24 --batch $b <"$T/p.jsonl" \
	    >"$T/q3_plain_b$b" || fail "rollout qwen3 plain --batch $b"
	same "qwen3 plain kernels, --batch $b" "$T/q3_plain" \
	    "$T/q3_plain_b$b"
done

# Mistral (a sliding window of 4 positions, which prompts and responses
# pass): the same invariance over batches, threads and both kernels.
ckpt init -o "$T/mi" --arch mistral --sliding-window 4 --dim 32 --heads 4 \
    --kv-heads 2 --layers 2 --seed 11 || fail "ckpt init mistral"
rollout -m "$T/mi" -n 3 --max-tokens 24 <"$T/p.jsonl" >"$T/mi_all" ||
    fail "rollout mistral"
for b in 1 4 7; do
	OMP_NUM_THREADS=$((b % 3 + 1)) rollout -m "$T/mi" -n 3 \
	    --max-tokens 24 --batch $b <"$T/p.jsonl" >"$T/mi_b$b" ||
	    fail "rollout mistral --batch $b"
	same "mistral, --batch $b" "$T/mi_all" "$T/mi_b$b"
done
PREFPIPE_NO_AVX2=1 rollout -m "$T/mi" -n 3 --max-tokens 24 \
    <"$T/p.jsonl" >"$T/mi_plain" || fail "rollout mistral plain"
for b in 1 7; do
	PREFPIPE_NO_AVX2=1 OMP_NUM_THREADS=$((b % 3 + 1)) rollout \
	    -m "$T/mi" -n 3 --max-tokens 24 --batch $b <"$T/p.jsonl" \
	    >"$T/mi_plain_b$b" || fail "rollout mistral plain --batch $b"
	same "mistral plain kernels, --batch $b" "$T/mi_plain" \
	    "$T/mi_plain_b$b"
done

# Gemma 2 (softcaps, post-norms, gelu tanh, (1 + w) norms): the same
# invariance over batches, threads and both kernels.
ckpt init -o "$T/g2" --arch gemma2 --sliding-window 4 --dim 32 \
    --heads 4 --kv-heads 1 --head-dim 10 --attention-bias --ffn 44 --layers 2 --seed 11 ||
    fail "ckpt init gemma2"
rollout -m "$T/g2" -n 3 --max-tokens 24 <"$T/p.jsonl" >"$T/g2_all" ||
    fail "rollout gemma2"
for b in 1 4 7; do
	OMP_NUM_THREADS=$((b % 3 + 1)) rollout -m "$T/g2" -n 3 \
	    --max-tokens 24 --batch $b <"$T/p.jsonl" >"$T/g2_b$b" ||
	    fail "rollout gemma2 --batch $b"
	same "gemma2, --batch $b" "$T/g2_all" "$T/g2_b$b"
done
PREFPIPE_NO_AVX2=1 rollout -m "$T/g2" -n 3 --max-tokens 24 \
    <"$T/p.jsonl" >"$T/g2_plain" || fail "rollout gemma2 plain"
for b in 1 7; do
	PREFPIPE_NO_AVX2=1 OMP_NUM_THREADS=$((b % 3 + 1)) rollout \
	    -m "$T/g2" -n 3 --max-tokens 24 --batch $b <"$T/p.jsonl" \
	    >"$T/g2_plain_b$b" || fail "rollout gemma2 plain --batch $b"
	same "gemma2 plain kernels, --batch $b" "$T/g2_plain" \
	    "$T/g2_plain_b$b"
done

# Gemma 3 (q/k norms, a rope base for the sliding layers and another
# for the global one): the same
# invariance over batches, threads and both kernels.
ckpt init -o "$T/g3" --arch gemma3 --sliding-window 5 --dim 32 \
    --heads 4 --kv-heads 1 --head-dim 10 --ffn 44 --layers 6 --seed 12 ||
    fail "ckpt init gemma3"
rollout -m "$T/g3" -n 3 --max-tokens 24 <"$T/p.jsonl" >"$T/g3_all" ||
    fail "rollout gemma3"
for b in 1 4 7; do
	OMP_NUM_THREADS=$((b % 3 + 1)) rollout -m "$T/g3" -n 3 \
	    --max-tokens 24 --batch $b <"$T/p.jsonl" >"$T/g3_b$b" ||
	    fail "rollout gemma3 --batch $b"
	same "gemma3, --batch $b" "$T/g3_all" "$T/g3_b$b"
done
PREFPIPE_NO_AVX2=1 rollout -m "$T/g3" -n 3 --max-tokens 24 \
    <"$T/p.jsonl" >"$T/g3_plain" || fail "rollout gemma3 plain"
for b in 1 7; do
	PREFPIPE_NO_AVX2=1 OMP_NUM_THREADS=$((b % 3 + 1)) rollout \
	    -m "$T/g3" -n 3 --max-tokens 24 --batch $b <"$T/p.jsonl" \
	    >"$T/g3_plain_b$b" || fail "rollout gemma3 plain --batch $b"
	same "gemma3 plain kernels, --batch $b" "$T/g3_plain" \
	    "$T/g3_plain_b$b"
done

# Prompts in reverse order: the same records, in reverse prompt order.
# (The prompt without an id is left out: its id is its ordinal.)
grep '"id"' "$T/p.jsonl" >"$T/ids.jsonl"
tac "$T/ids.jsonl" >"$T/rev.jsonl"
run <"$T/ids.jsonl" >"$T/fwd" && run <"$T/rev.jsonl" >"$T/rev" ||
    fail "rollout"
sorted "$T/fwd" >"$T/fwd.s"
sorted "$T/rev" >"$T/rev.s"
same "prompt order" "$T/fwd.s" "$T/rev.s"

# Split input files: the same records as one stream.
head -5 "$T/p.jsonl" >"$T/p1.jsonl"
tail -n +6 "$T/p.jsonl" >"$T/p2.jsonl"
run "$T/p1.jsonl" "$T/p2.jsonl" >"$T/split" || fail "two files"
same "split files" "$T/all" "$T/split"

# Shards: their union is the unsharded output, and they do not overlap.
for k in 2 3; do
	: >"$T/union"
	i=0
	while [ $i -lt $k ]; do
		run --shard $i/$k <"$T/p.jsonl" >"$T/shard$i" ||
		    fail "--shard $i/$k"
		recs to-json "$T/shard$i" >>"$T/union"
		i=$((i + 1))
	done
	sort "$T/union" >"$T/union.s"
	same "union of $k shards" "$T/all.s" "$T/union.s"
done
[ -s "$T/shard0" ] && [ -s "$T/shard1" ] && [ -s "$T/shard2" ] ||
    fail "a shard of 3 is empty"
finish
