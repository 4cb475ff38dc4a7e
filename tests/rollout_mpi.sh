#!/bin/sh
# rollout_mpi: `mpirun -np K rollout` writes the bytes one process writes
# (each rank samples shard rank/K, rank 0 writes the union in input
# order), in msgpack, JSON and zstd; a bad record ends every rank with
# its message and status 1, without a hang.
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
