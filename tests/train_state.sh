#!/bin/sh
# train_state: two invocations over the two halves of a batch equal one
# over the whole batch (--no-shuffle); the result does not depend on
# --micro-batch; the schedule and Adam's step continue from trainer_state.
. "$top_srcdir/tests/lib.sh"
F=$fixtures/train
cmp_tool=$top_builddir/tests/unit_train_cmp

# Eight SFT records with token fields, and pair records for dpo and rm.
i=0
while [ $i -lt 8 ]; do
	a=$((3 + i)) b=$((5 + 2 * i % 20)) c=$((7 + 3 * i % 20))
	echo "{\"prompt_tokens\":[1,$a,$b],\"response_tokens\":[$c,$a,$b,$c,2]}"
	i=$((i + 1))
done >"$T/sft.jsonl"
{ cat "$F/dpo.jsonl"; head -1 "$F/dpo.jsonl"; } >"$T/dpo.jsonl"
cp "$F/rm.jsonl" "$T/rm.jsonl"

common="--lr 1e-2 --weight-decay 0.1 --no-shuffle --clip-grad 1"
sched="--schedule linear --warmup 1 --schedule-steps 3 --min-lr 1e-3"

# halves NAME INIT BATCH NRECS ARGS...: whole vs two halves.
halves() {
	hn=$1 init=$2 batch=$3 n=$4; shift 4
	half=$((n / 2))
	train-step -m "$init" -o "$T/$hn.whole" --batch-size "$batch" \
	    "$@" <"$T/$hn.jsonl" >"$T/$hn.whole.m" ||
	    { fail "$hn: whole run failed"; return; }
	head -n "$half" "$T/$hn.jsonl" >"$T/$hn.a"
	tail -n +"$((half + 1))" "$T/$hn.jsonl" >"$T/$hn.b"
	train-step -m "$init" -o "$T/$hn.h1" --batch-size "$batch" \
	    "$@" <"$T/$hn.a" >"$T/$hn.h1.m" &&
	train-step -m "$T/$hn.h1" -o "$T/$hn.h2" --batch-size "$batch" \
	    "$@" <"$T/$hn.b" >"$T/$hn.h2.m" ||
	    { fail "$hn: half runs failed"; return; }
	check "$hn halves == whole" "$cmp_tool" "$T/$hn.h2" \
	    "$T/$hn.whole" 1e-5
	cat "$T/$hn.h1.m" "$T/$hn.h2.m" | recs to-tsv step lr \
	    >"$T/$hn.halves.tsv"
	recs to-tsv step lr <"$T/$hn.whole.m" >"$T/$hn.whole.tsv"
	same "$hn steps and learning rates" "$T/$hn.halves.tsv" \
	    "$T/$hn.whole.tsv"
}

# shellcheck disable=SC2086
halves sft "$F/init" 2 8 --loss sft $common $sched
# shellcheck disable=SC2086
halves dpo "$F/init" 2 4 --loss dpo --beta 0.5 $common
# shellcheck disable=SC2086
halves rm "$F/init_rm" 2 4 --loss rm $common

# Four steps of a linear schedule with one step of warmup over 3 steps.
printf '1\t0.01\n2\t0.01\n3\t0.0055\n' >"$T/want.tsv"
awk '{ printf "%d\t%.6g\n", $1, $2 }' "$T/sft.whole.tsv" | head -3 \
    >"$T/got.tsv"
same "linear schedule" "$T/got.tsv" "$T/want.tsv"

# Micro-batches change nothing but float rounding.
# shellcheck disable=SC2086
train-step -m "$F/init" -o "$T/mb1" --loss sft --batch-size 8 \
    --micro-batch 1 $common <"$T/sft.jsonl" >/dev/null &&
# shellcheck disable=SC2086
train-step -m "$F/init" -o "$T/mb8" --loss sft --batch-size 8 \
    $common <"$T/sft.jsonl" >/dev/null ||
    fail "micro-batch runs failed"
check "micro-batch 1 == 8" "$cmp_tool" "$T/mb1" "$T/mb8" 1e-5

# ... and so does the number of threads.
# shellcheck disable=SC2086
OMP_NUM_THREADS=1 train-step -m "$F/init" -o "$T/t1" --loss sft \
    --batch-size 8 $common <"$T/sft.jsonl" >/dev/null ||
    fail "one-thread run failed"
check "1 thread == 2 threads" "$cmp_tool" "$T/t1" "$T/mb8" 1e-5

# --reset-optimizer starts the step count afresh.
train-step -m "$T/sft.whole" -o "$T/reset" --loss sft --reset-optimizer \
    <"$T/sft.jsonl" | recs to-tsv step >"$T/reset.tsv"
check "reset step" grep -qx 1 "$T/reset.tsv"
check "reset state" grep -q '"step": 1,' "$T/reset/trainer_state.json"

# Shuffling is deterministic given --seed, and changes the order.
train-step -m "$F/init" -o "$T/s1" --loss sft --batch-size 2 --seed 5 \
    <"$T/sft.jsonl" | recs to-tsv loss >"$T/s1.tsv"
train-step -m "$F/init" -o "$T/s2" --loss sft --batch-size 2 --seed 5 \
    <"$T/sft.jsonl" | recs to-tsv loss >"$T/s2.tsv"
same "shuffle seeded" "$T/s1.tsv" "$T/s2.tsv"
check "shuffle same weights" "$cmp_tool" "$T/s1" "$T/s2" 0
finish
