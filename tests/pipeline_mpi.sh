#!/bin/sh
# pipeline_mpi: the pipelines with NP=2 (pipelines/lib.sh's pp_par): a
# DPO round's rollout, score --logprob and train-step each run under the
# launcher with -n 2, and give one process's samples (the same bytes),
# pairs (the same records in the same order, reference log-probs within
# float rounding), metrics and accuracy; pipelines/slurm-dpo.sbatch, its
# Slurm variables set by hand, runs the demo over SLURM_NTASKS ranks of
# SLURM_CPUS_PER_TASK threads through mpirun, or srun (its choices checked
# on a stand-in demo.sh).
. "${top_srcdir:-.}/tests/lib.sh"
need_mpi
export OMP_NUM_THREADS=1
tiny_task "$T" || fail "the tiny task and its SFT model"

# The launcher: mpirun, each call logged.
mkdir "$T/bin"
cat >"$T/bin/mpirun-log" <<EOS
#!/bin/sh
echo "mpirun \$*" >>"$T/launch.log"
echo "\${OMPI_MCA_orte_tmpdir_base:-none}" >>"$T/tmpdirs.log"
exec timeout 60 mpirun "\$@"
EOS
chmod +x "$T/bin/mpirun-log"

SAMPLES=4 MAXTOK=4 SEED=1 DPO_BATCH=8 MPIRUN=$T/bin/mpirun-log
MPIRUN_ARGS=--oversubscribe PP_DIR=$top_srcdir/pipelines PP_EVAL=$T/eval
export SAMPLES MAXTOK SEED DPO_BATCH MPIRUN MPIRUN_ARGS PP_DIR PP_EVAL
# round NP NAME: a mining round and its DPO step, the samples alone, and
# the accuracy row, over NP ranks.
round() {
	(NP=$1 && . "$top_srcdir/pipelines/lib.sh" &&
	    pp_mine "$T/sft" 1001 "$T/prompts" >"$T/$2.samples" &&
	    pp_dpo_round "$T/sft" "$T/sft" "$T/$2" 1001 "$T/prompts" &&
	    pp_acc_row x 1 "$T/$2" >"$T/$2.row") 2>"$T/$2.err" ||
	    fail "NP=$1: $(cat "$T/$2.err")"
}
round 1 one
[ ! -s "$T/launch.log" ] || fail "NP=1 called the launcher: $(cat "$T/launch.log")"
round 2 two
for t in rollout score train-step; do
	grep -q "^mpirun -n 2 --oversubscribe $t " "$T/launch.log" ||
	    fail "NP=2: no $t under the launcher: $(cat "$T/launch.log")"
done
# Each mpirun its own Open MPI session directory (two of a pipeline run
# at once), removed after.
[ "$(sort -u "$T/tmpdirs.log" | grep -c /pp-mpi.)" = "$(wc -l <"$T/launch.log")" ] ||
    fail "NP=2: not one session directory a call: $(cat "$T/tmpdirs.log")"
while read -r d; do
	[ ! -e "$d" ] || fail "NP=2: $d left behind"
done <"$T/tmpdirs.log"
grep -q "score --exact" "$T/launch.log" &&
    fail "NP=2: score --exact (a verifier, no model) went to the launcher"
same "NP=2: the samples" "$T/one.samples" "$T/two.samples"
same "NP=2: the held-out accuracy" "$T/one.row" "$T/two.row"
strip() { recs to-json "$1" | sed 's/,"ref_logprobs":\[[^]]*\]//g
    s/,"ref_logprob":[-0-9.e]*//g'; }
strip "$T/one.pairs" >"$T/one.s"
strip "$T/two.pairs" >"$T/two.s"
same "NP=2: the pairs, in order, but for the reference log-probs" \
    "$T/one.s" "$T/two.s"
[ "$(wc -l <"$T/one.s")" -ge 8 ] || fail "only $(wc -l <"$T/one.s") pairs"
# within TOL FILE1 FILE2: TSV files, number by number within TOL relative.
within() {
	paste "$2" "$3" | awk -F '\t' -v tol="$1" '{ h = NF / 2
	    for (j = 1; j <= h; j++) { a = $j; b = $(j + h); d = a - b
	      if (d < 0) d = -d; m = a < 0 ? -a : a; if (m < 1) m = 1
	      if (d > tol * m) bad = 1 } } END { exit bad || NR == 0 }'
}
for f in one two; do
	recs to-tsv chosen.ref_logprob rejected.ref_logprob <"$T/$f.pairs" \
	    >"$T/$f.refs"
	recs to-tsv step loss grad_norm tokens margin <"$T/$f.metrics" \
	    >"$T/$f.m"
done
within 1e-5 "$T/one.refs" "$T/two.refs" ||
    fail "NP=2: reference log-probs differ past 1e-5"
within 1e-4 "$T/one.m" "$T/two.m" ||
    { fail "NP=2: metrics differ past 1e-4"; paste "$T/one.m" "$T/two.m" >&2; }
# The round's reference is its policy, as in the demo: the first step's
# margins are rounding noise around 0, which Adam (eps 1e-8) turns into
# updates that differ with the grouping of the sums (3e-5 to 5e-5 of a
# tensor's scale here): 1e-3 still tells a different run.
"$top_builddir/tests/unit_train_cmp" "$T/one" "$T/two" 1e-3 ||
    fail "NP=2: the DPO weights differ past 1e-3"

# slurm-dpo.sbatch as Slurm would start it: 2 tasks of 1 CPU, mpirun.
S=$top_srcdir/pipelines/slurm-dpo.sbatch
: >"$T/launch.log"
(unset NP MPIRUN OMP_NUM_THREADS
MODEL=$T/sft PROMPTS=$T/prompts EVAL=$T/eval ROUNDS=1 OUT=$T/demo \
    SLURM_JOB_ID=42 SLURM_NTASKS=2 SLURM_CPUS_PER_TASK=1 \
    SLURM_SUBMIT_DIR=$top_srcdir MPIRUN=$T/bin/mpirun-log \
    MPIRUN_ARGS="-x PATH -x OMP_NUM_THREADS --bind-to none --oversubscribe" \
    sh "$S") >"$T/demo.out" 2>"$T/demo.err" ||
    fail "slurm-dpo.sbatch (mpirun): $(tail -5 "$T/demo.err")"
grep -q '^| soup | 1 |' "$T/demo.out" || fail "slurm-dpo: no soup row"
[ "$(grep -c '^| dpo-[12] | 1 |' "$T/demo.out")" = 2 ] ||
    fail "slurm-dpo: not two DPO rows: $(cat "$T/demo.out")"
grep -q 'NP=2 ranks of 1 thread' "$T/demo.err" || fail "slurm-dpo: NP"
grep -q "one after the other" "$T/demo.err" ||
    fail "slurm-dpo: the two runs went side by side under NP=2"
for t in rollout score train-step; do
	grep -q "^mpirun -n 2 -x PATH .* $t " "$T/launch.log" ||
	    fail "slurm-dpo: no $t under mpirun -n 2"
done
# Its choices alone, on a stand-in demo.sh that prints what it was given:
# srun gets the CPUs per task from the environment (SRUN_CPUS_PER_TASK;
# from Slurm 22.05 on it does not inherit sbatch's --cpus-per-task) and
# no mpirun options; outside Slurm, one plain process.
mkdir -p "$T/top/pipelines"
cat >"$T/top/pipelines/demo.sh" <<'EOS'
echo "NP=$NP OMP=$OMP_NUM_THREADS MPIRUN=$MPIRUN ARGS=$MPIRUN_ARGS" \
    "SRUN=${SRUN_CPUS_PER_TASK:-} OUT=$OUT"
EOS
(unset NP MPIRUN MPIRUN_ARGS OMP_NUM_THREADS OUT SRUN_CPUS_PER_TASK
SLURM_JOB_ID=43 SLURM_NTASKS=8 SLURM_CPUS_PER_TASK=3 \
    SLURM_SUBMIT_DIR=$T/top MPIRUN="srun --mpi=pmix" sh "$S" 2>/dev/null
SLURM_JOB_ID=44 SLURM_NTASKS=4 SLURM_SUBMIT_DIR=$T/top sh "$S" 2>/dev/null
cd "$T/top" && sh "$S" 2>/dev/null) >"$T/env.out" || fail "slurm-dpo: stand-in"
cat >"$T/env.want" <<'EOS'
NP=8 OMP=3 MPIRUN=srun --mpi=pmix ARGS= SRUN=3 OUT=out/dpo-43
NP=4 OMP=1 MPIRUN=mpirun ARGS=-x PATH -x OMP_NUM_THREADS --bind-to none SRUN= OUT=out/dpo-44
NP=1 OMP=1 MPIRUN=mpirun ARGS=-x PATH -x OMP_NUM_THREADS --bind-to none SRUN= OUT=out/dpo-local
EOS
same "slurm-dpo: NP, threads, launcher" "$T/env.want" "$T/env.out"
expect_fail 2 'demo.sh: not found' env PREFPIPE_TOP=/nonexistent sh "$S"
expect_fail 2 "NP=x: not a positive number" env NP=x SLURM_SUBMIT_DIR="$top_srcdir" \
    OUT="$T/bad" sh "$S"
finish
