#!/bin/sh
# rollout_mpi: `mpirun -np K rollout` and `mpirun -np K score` write the
# bytes one process writes (rollout: each rank samples shard rank/K;
# score: rank r the records r modulo K; rank 0 writes the union in input
# order), in msgpack, JSON and zstd; a bad record ends every rank with its
# message and status 1, without a hang.
. "$top_srcdir/tests/lib.sh"
need_mpi

ckpt init -o "$T/m" --seed 8 >/dev/null || fail "ckpt init"
i=0
while [ $i -lt 12 ]; do
	printf '{"id":"q%d","prompt":"prompt number %d"}\n' $i $i
	i=$((i + 1))
done >"$T/p.jsonl"
printf '{"prompt":"no id here"}\n' >>"$T/p.jsonl"

opts="-m $T/m -n 3 --max-tokens 24 --greedy-baseline --top-p 0.95"
# mpi K ARGS...: rollout under mpirun, one thread a rank, no hang.
mpi() {
	k=$1; shift
	OMP_NUM_THREADS=1 timeout 60 mpirun --oversubscribe -np "$k" \
	    rollout "$@"
}

# shellcheck disable=SC2086
rollout $opts <"$T/p.jsonl" >"$T/one" || fail "rollout"
for k in 1 2 3; do
	# shellcheck disable=SC2086
	mpi "$k" $opts <"$T/p.jsonl" >"$T/np$k" || fail "-np $k"
	same "-np $k == one process" "$T/one" "$T/np$k"
done
# shellcheck disable=SC2086
rollout -J $opts <"$T/p.jsonl" >"$T/oneJ" &&
# shellcheck disable=SC2086
mpi 2 -J $opts "$T/p.jsonl" >"$T/np2J" || fail "-J runs"
same "-np 2 -J, a file operand == one process" "$T/oneJ" "$T/np2J"
# shellcheck disable=SC2086
rollout -z $opts <"$T/p.jsonl" >"$T/onez" &&
# shellcheck disable=SC2086
mpi 3 -z $opts <"$T/p.jsonl" >"$T/np3z" || fail "-z runs"
same "-np 3 -z == one process" "$T/onez" "$T/np3z"

# score, on the samples.  A model scorer's sums depend on which records
# share a batch (as --batch-tokens changes them): the records, their
# order and every other byte are one process's, the log-probs within
# float rounding.
score --logprob "$T/m" <"$T/one" >"$T/lp1" || fail "score"
recs to-tsv id sample ref_logprob <"$T/lp1" >"$T/lp1.tsv"
for k in 2 3; do
	OMP_NUM_THREADS=1 timeout 60 mpirun --oversubscribe -np "$k" \
	    score --logprob "$T/m" <"$T/one" >"$T/lp$k" || fail "score -np $k"
	recs to-tsv id sample ref_logprob <"$T/lp$k" >"$T/lp$k.tsv"
	cut -f1,2 "$T/lp1.tsv" >"$T/c1"
	cut -f1,2 "$T/lp$k.tsv" >"$T/c$k"
	same "score --logprob -np $k: the records and their order" \
	    "$T/c1" "$T/c$k"
	paste "$T/lp1.tsv" "$T/lp$k.tsv" | awk -F '\t' '{ d = $3 - $6
	    if (d < 0) d = -d; m = $3 < 0 ? -$3 : $3
	    if (d > 1e-6 * (m > 1 ? m : 1)) bad = 1 }
	    END { exit bad || NR == 0 }' ||
	    fail "score --logprob -np $k: log-probs differ"
done
recs to-json "$T/one" | sed 's/^{/{"answer":"x",/' >"$T/ans.jsonl"
score --exact -z <"$T/ans.jsonl" >"$T/ex1" &&
OMP_NUM_THREADS=1 timeout 60 mpirun --oversubscribe -np 3 score --exact -z \
    "$T/ans.jsonl" >"$T/ex3" || fail "score --exact runs"
same "score --exact -z -np 3, a file operand == one process" "$T/ex1" \
    "$T/ex3"
# shellcheck disable=SC2016
len='while IFS= read -r l; do echo "${#l}"; done'
score --cmd "$len" -J "$T/ans.jsonl" >"$T/cmd1" &&
OMP_NUM_THREADS=1 timeout 60 mpirun --oversubscribe -np 3 score --cmd "$len" \
    -J "$T/ans.jsonl" >"$T/cmd3" || fail "score --cmd runs"
same "score --cmd -np 3 -J == one process" "$T/cmd1" "$T/cmd3"
printf '{"id":"bad"}\n' >>"$T/ans.jsonl"
expect_fail 1 '^score: stdin: record [0-9]+: field "answer": missing' \
    env OMP_NUM_THREADS=1 timeout 60 mpirun --oversubscribe -np 2 \
    score --exact <"$T/ans.jsonl"

# --shard is mpirun's to set.
# shellcheck disable=SC2086
expect_fail 2 'under mpirun each rank takes its own shard' \
    mpi 2 --shard 0/2 $opts <"$T/p.jsonl"
# A record with neither prompt nor messages, in some rank's shard.
{ cat "$T/p.jsonl"; printf '{"id":"bad","text":"x"}\n'; } >"$T/bad.jsonl"
# shellcheck disable=SC2086
expect_fail 1 '^rollout: stdin: record 14: field "prompt": missing' \
    mpi 3 $opts <"$T/bad.jsonl"
finish
