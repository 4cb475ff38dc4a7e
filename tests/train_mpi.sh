#!/bin/sh
# train_mpi: `mpirun -np K train-step` for K = 1, 2, 3 gives the losses,
# metrics and final weights of one plain process (within 1e-5 relative:
# the ranks' shares are summed in rank order, a different grouping of the
# same terms); resuming at another K continues the same run; an error on
# rank 1 ends every rank with its message and status 1, without a hang.
. "$top_srcdir/tests/lib.sh"
F=$fixtures/train
cmp_tool=$top_builddir/tests/unit_train_cmp

need_mpi

# mpi K ARGS...: train-step under mpirun, one thread a rank (this is a
# 2-core machine), no hang past a minute.
mpi() {
	k=$1; shift
	OMP_NUM_THREADS=1 timeout 60 mpirun --oversubscribe -np "$k" \
	    train-step "$@"
}

# Sixteen SFT records of token ids (twelve for the runs, all for the
# resume); DPO pairs and PG samples without the reference (and, for pg,
# rollout) log-probs, so the ranks share those forward passes too.
i=0
while [ $i -lt 16 ]; do
	a=$((3 + i)) b=$((5 + 2 * i % 20)) c=$((7 + 3 * i % 20))
	echo "{\"prompt_tokens\":[1,$a,$b],\"response_tokens\":[$c,$a,$b,$c,2]}"
	i=$((i + 1))
done >"$T/sft16.jsonl"
head -n 12 "$T/sft16.jsonl" >"$T/sft.jsonl"
{ cat "$F/dpo.jsonl"; cat "$F/dpo.jsonl"; } |
	sed 's/,"ref_logprob":[-0-9.e]*//g' >"$T/dpo.jsonl"
sed 's/"logprobs":\[[^]]*\],//; s/,"ref_logprobs":\[[^]]*\]//' \
	"$F/pg.jsonl" >"$T/pg.jsonl"
cp "$F/rm.jsonl" "$T/rm.jsonl"
cp "$T/dpo.jsonl" "$T/simpo.jsonl"
cp "$T/dpo.jsonl" "$T/orpo.jsonl"
cp "$F/kto.jsonl" "$T/kto.jsonl"
cp "$F/ppo.jsonl" "$T/ppo.jsonl"
cp "$T/dpo.jsonl" "$T/lora.jsonl"
grep -q logprob "$T/dpo.jsonl" "$T/pg.jsonl" &&
	fail "the records still carry log-probs"

common="--lr 1e-2 --weight-decay 0.1 --clip-grad 1 --seed 7"
sft="--loss sft --batch-size 4 --micro-batch 1 --epochs 2 $common"
# dpo's and pg's reference is the SFT-trained model, not the initial
# policy: with the two equal, DPO's first margins are rounding noise
# around 0 (reward_accuracy flips between 0 and 1 with the grouping of
# the sums), and so is the KL term's first gradient, which Adam (eps
# 1e-8) blows up differently for every grouping, one process's
# --micro-batch included.
dpo="--loss dpo --batch-size 2 --beta 0.5 --ref $T/sft.plain $common"
pg="--loss pg --batch-size 3 --ppo-epochs 2 --kl-coef 0.1 --ref $T/sft.plain $common"
sft_m="step lr loss grad_norm tokens ppl"
dpo_m="step loss grad_norm tokens reward_accuracy chosen_reward margin"
simpo_m=$dpo_m
orpo_m="step loss grad_norm tokens nll reward_accuracy margin"
kto_m="step loss grad_norm tokens kl desirable undesirable"
ppo_m="step loss grad_norm tokens reward_mean kl clip_fraction"
lora_m=$dpo_m
rm_m="step loss grad_norm tokens accuracy margin"
pg_m="step loss grad_norm tokens reward_mean adv_std kl clip_fraction"

# close NAME GOT WANT: two TSV files of metrics, number by number within
# 1e-5 relative, or 1e-5 absolute below 1 (a margin is a difference of
# float32 scores: its own digits cancel).
close() {
	if ! awk -F '\t' 'NR == FNR { for (i = 1; i <= NF; i++) w[FNR, i] = $i
	    n = FNR; next }
	    { for (i = 1; i <= NF; i++) { a = $i; b = w[FNR, i]
	      d = a - b; if (d < 0) d = -d
	      m = (a < 0 ? -a : a) > (b < 0 ? -b : b) ? a : b
	      if (m < 0) m = -m; if (m < 1) m = 1
	      if (d > 1e-5 * m) bad = 1 } g = FNR }
	    END { exit bad || g != n || n == 0 }' "$3" "$2"; then
		fail "$1: metrics differ"; paste "$2" "$3" | head -5 >&2
	fi
}

# runs NAME INIT KS ARGS...: one plain process, then K ranks for each K
# of the list KS.
runs() {
	rn=$1 init=$2 ks=$3; shift 3
	eval "fields=\$${rn}_m"
	# shellcheck disable=SC2086
	train-step -m "$init" -o "$T/$rn.plain" "$@" <"$T/$rn.jsonl" |
		recs to-tsv $fields >"$T/$rn.plain.tsv" ||
		{ fail "$rn: plain run failed"; return; }
	[ "$(wc -l <"$T/$rn.plain.tsv")" -ge 3 ] ||
		fail "$rn: fewer than 3 steps"
	for k in $ks; do
		# shellcheck disable=SC2086
		mpi "$k" -m "$init" -o "$T/$rn.np$k" "$@" <"$T/$rn.jsonl" \
		    >"$T/$rn.np$k.m" || { fail "$rn: -np $k failed"; continue; }
		recs to-tsv $fields <"$T/$rn.np$k.m" >"$T/$rn.np$k.tsv"
		close "$rn -np $k metrics" "$T/$rn.np$k.tsv" "$T/$rn.plain.tsv"
		check "$rn -np $k weights" "$cmp_tool" "$T/$rn.np$k" \
		    "$T/$rn.plain" 1e-5
	done
}

# shellcheck disable=SC2086
runs sft "$F/init" "1 2 3" $sft
# shellcheck disable=SC2086
runs dpo "$F/init" "1 2 3" $dpo
# The other objectives at K = 3 alone, to keep the suite short.
# shellcheck disable=SC2086
runs simpo "$F/init" 3 --loss simpo --batch-size 2 $common
# shellcheck disable=SC2086
runs orpo "$F/init" 3 --loss orpo --batch-size 2 $common
# shellcheck disable=SC2086
runs kto "$F/init" 3 --loss kto --batch-size 2 --epochs 2 $common
# shellcheck disable=SC2086
runs ppo "$F/init" 3 --loss ppo --batch-size 2 $common
# rm at --lr 1e-2 drifts past 1e-5 in 4 steps between one process's own
# --micro-batch 1 and 2 (built with sanitizers): a smaller rate.
# shellcheck disable=SC2086
runs rm "$F/init_rm" 3 --loss rm --batch-size 2 --epochs 2 $common --lr 3e-3
# shellcheck disable=SC2086
runs pg "$F/init" "1 2 3" $pg
# LoRA-DPO: the base (adapters off) as the reference, dropout masks by
# token whatever rank runs it.
# shellcheck disable=SC2086
runs lora "$F/init" 3 --loss dpo --batch-size 2 --beta 0.5 --epochs 2 \
    --lora-rank 4 --lora-alpha 8 --lora-dropout 0.2 $common

# allreduce_seconds: in every step's metrics under -np 2 and 3, a
# number of seconds no larger than the step's; absent from one process's.
for k in 2 3; do
	recs to-tsv seconds allreduce_seconds <"$T/sft.np$k.m" |
	    awk -F '\t' '!($2 ~ /^[0-9.e-]+$/ && $2 >= 0 && $2 <= $1) { bad = 1 }
		END { exit bad || NR < 3 }' ||
	    fail "-np $k: allreduce_seconds missing or out of range"
done
recs to-json <"$T/sft.np1.m" | grep -q allreduce_seconds &&
    fail "-np 1: allreduce_seconds in the metrics"
# shellcheck disable=SC2086
train-step -m "$F/init" -o "$T/as.plain" $sft <"$T/sft.jsonl" |
    recs to-json | grep -q allreduce_seconds &&
    fail "one process: allreduce_seconds in the metrics"

# Resume across K: 2 steps at K = 2 over the first 8 records, then 2 at
# K = 3 over the next 8, equal 4 steps of one plain process over all 16
# (--no-shuffle; the schedule's horizon given).
rs="--loss sft --batch-size 4 --no-shuffle --schedule cosine --warmup 1 --schedule-steps 4 $common"
head -n 8 "$T/sft16.jsonl" >"$T/ra.jsonl"
tail -n 8 "$T/sft16.jsonl" >"$T/rb.jsonl"
# shellcheck disable=SC2086
mpi 2 -m "$F/init" -o "$T/r2" $rs <"$T/ra.jsonl" >"$T/r2.m" &&
# shellcheck disable=SC2086
mpi 3 -m "$T/r2" -o "$T/r3" $rs <"$T/rb.jsonl" >"$T/r3.m" ||
    fail "resume runs failed"
# shellcheck disable=SC2086
train-step -m "$F/init" -o "$T/r1" $rs <"$T/sft16.jsonl" >"$T/r1.m" ||
    fail "plain 4-step run failed"
check "resume: -np 2 then -np 3 == 4 plain steps" "$cmp_tool" "$T/r3" \
    "$T/r1" 1e-5
cat "$T/r2.m" "$T/r3.m" | recs to-tsv step lr loss >"$T/r23.tsv"
recs to-tsv step lr loss <"$T/r1.m" >"$T/r1.tsv"
close "resume: metrics" "$T/r23.tsv" "$T/r1.tsv"

# An error on rank 1 alone: its checkpoint is missing (as on a node
# without the file), while the other ranks wait in a collective.
# shellcheck disable=SC2016
expect_fail 1 '^train-step: /nonexistent/ckpt: ' \
    env OMP_NUM_THREADS=1 timeout 60 mpirun --oversubscribe -np 3 sh -c '
	m=$1; shift
	[ "$OMPI_COMM_WORLD_RANK" = 1 ] && m=/nonexistent/ckpt
	exec train-step -m "$m" "$@"' sh "$F/init" -o "$T/e1" $sft \
    <"$T/sft.jsonl"
# ... and later, inside the reference's forward passes: rank 1's --ref
# is missing, rank 0 is gathering log-probs.
# shellcheck disable=SC2016
expect_fail 1 '^train-step: /nonexistent/ref: ' \
    env OMP_NUM_THREADS=1 timeout 60 mpirun --oversubscribe -np 2 sh -c '
	r=$1; shift
	[ "$OMPI_COMM_WORLD_RANK" = 1 ] && r=/nonexistent/ref
	exec train-step --ref "$r" "$@"' sh "$F/init" -m "$F/init" \
    -o "$T/e2" --loss dpo --batch-size 2 <"$T/dpo.jsonl"
[ -e "$T/e1" ] || [ -e "$T/e2" ] && fail "a failed run left a checkpoint"

# Open MPI is the module's alone (lib/util/mpi_ops.h): the tools load it
# under mpirun only, and say so when it is not there (one rank: two
# ranks failing at once can interleave their messages on one line).
for t in train-step rollout score; do
	ldd "$top_builddir/tools/$t" | grep -q 'libmpi' &&
	    fail "$t is linked with libmpi"
done
expect_fail 1 "^train-step: MPI: started by mpirun, but prefpipe's MPI module does not load: .*/nonexistent/prefpipe-mpi.so" \
    env PREFPIPE_MPI_MODULE=/nonexistent/prefpipe-mpi.so \
    OMP_NUM_THREADS=1 timeout 60 mpirun --oversubscribe -np 1 \
    train-step -m "$F/init" -o "$T/e3" $sft <"$T/sft.jsonl"
[ -e "$T/e3" ] && fail "a run without its MPI module left a checkpoint"

finish
