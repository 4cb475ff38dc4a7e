# pipelines/lib.sh: shell functions shared by the pipelines; source it.
#
#   . "$(dirname "$0")/lib.sh"
#
# It puts the built tools on PATH (when they are not there already), sets
# the defaults of the embedded arithmetic task and model, and defines:
#
#   pp_log MSG...                  progress line on stderr
#   pp_task DIR DESC               DIR's cached outputs are of DESC
#   pp_run NAME CMD...             run CMD with a progress line and timing
#   pp_gen_data DIR                SFT set, held-out set, round prompts
#   pp_init_sft SEED OUT DATA      ckpt init + train-step --loss sft
#   pp_sft_more IN OUT SEED DATA   more SFT steps, shuffle seed SEED
#   pp_eval CKPT TEMP [EVAL]       print held-out accuracy (0..1)
#   pp_mine POLICY SEED PROMPTS    rollout -n N | score --exact (samples)
#   pp_dpo_round POLICY REF OUT SEED PROMPTS
#                                  one round of on-policy preference mining
#   pp_dpo_train POLICY OUT SEED   the DPO update of a round (OUT.pairs)
#   pp_table TSV                   print a results table as Markdown
#   pp_par CMD ARGS...             CMD over NP ranks (MPIRUN), or plain
#   pp_mine_shard POLICY REF SEED PROMPTS I N
#                                  shard I/N of a round's mining (pairs)
#   pp_union DIR N                 recs cat DIR/part.0 ... part.(N-1)
#   pp_ppo_update POLICY REF CRITIC OUT CRITIC_OUT SEED
#                                  one PPO update of policy and critic
#   pp_critic0 POLICY OUT          a critic that starts at 0
#
# Environment overrides (all optional):
#   MODEL      a Hugging Face checkpoint to start from instead of the SFT
#              model the pipeline trains (skips SFT)
#   PROMPTS    prompt records with an answer field (mining), EVAL held-out
#              prompt records with an answer (evaluation)
#   DIGITS NOISE SYSTEMATIC N_SFT N_SFT2 N_EVAL N_PROMPTS   the embedded task
#   SAMPLES LR BETA NLL ROUNDS SEED MAXTOK  hyper-parameters
#   OMP_NUM_THREADS   threads per tool, or per rank (default 1: the
#              pipelines run independent runs side by side instead)
#   NP         ranks per tool (default 1: plain processes).  With NP > 1,
#              every rollout, score --logprob and train-step runs as
#              `$MPIRUN -n $NP $MPIRUN_ARGS tool ...` (see rollout(1),
#              score(1) and train-step(1) under MPI): the same samples
#              and pairs, byte for byte and within float rounding, and
#              the same training within float rounding, over NP processes
#   MPIRUN     the launcher (default mpirun; in a Slurm allocation also
#              "srun --mpi=pmix", see pipelines/slurm-dpo.sbatch)
#   MPIRUN_ARGS   its options (default none; --oversubscribe for more
#              ranks than cores, -x PATH to pass PATH to other nodes)

set -eu

pp_here=$(cd "${PP_DIR:-$(dirname "$0")}" && pwd)
pp_root=$(cd "$pp_here/.." && pwd)
if ! command -v rollout >/dev/null 2>&1 || [ -n "${PP_FORCE_TOOLS:-}" ]; then
	PATH="${top_builddir:-$pp_root}/tools:$PATH"
fi
export PATH
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
: "${NP:=1}"
: "${MPIRUN:=mpirun}"
: "${MPIRUN_ARGS:=}"
case $NP in
''|*[!0-9]*|0) echo "pipelines: NP=$NP: not a positive number of ranks" >&2
	exit 2 ;;
esac

# The embedded task: 2-digit sums, SFT answers corrupted with probability
# NOISE (one digit off by one), so the SFT model is far from perfect when
# sampled.  SYSTEMATIC=1: always the last digit one up (recs gen arith
# --systematic), so that with NOISE above 1/2 the SFT model's commonest,
# greedy, answer is wrong while its samples still hold the right one.
: "${DIGITS:=2}"
: "${NOISE:=0.3}"
: "${SYSTEMATIC:=}"
: "${N_SFT:=15000}"          # common SFT phase
: "${N_SFT2:=15000}"         # per-seed SFT phase
: "${N_EVAL:=500}"
: "${N_PROMPTS:=2048}"
# The model: ~340k parameters, byte tokenizer.
: "${INIT_ARGS:=--tokenizer byte --dim 96 --layers 3 --heads 4 --ffn 256 --ctx 16}"
: "${SFT_LR:=1e-3}"
: "${SFT_BATCH:=16}"
# Preference rounds.
: "${SAMPLES:=8}"
: "${LR:=3e-4}"
: "${BETA:=0.1}"
: "${NLL:=1}"
: "${DPO_BATCH:=32}"
: "${DPO_EPOCHS:=1}"
: "${ROUNDS:=4}"
: "${SEED:=1}"
: "${MAXTOK:=8}"

pp_t0=$(date +%s)

pp_log() {
	printf '[%4ds] %s\n' "$(($(date +%s) - pp_t0))" "$*" >&2
}

# pp_task DIR DESC: the pipelines reuse what a directory already holds (a
# resumed run), so DIR/task records the settings DESC that shaped it, and
# a run of other settings into the same DIR is refused rather than handed
# the first one's data, models or rounds.
pp_task() {
	mkdir -p "$1"
	if [ -s "$1/task" ] && [ "$(cat "$1/task")" != "$2" ]; then
		echo "pipelines: $1 holds a run of $(cat "$1/task"), not $2: give another OUT (or SFT_DIR), or remove it" >&2
		exit 2
	fi
	printf '%s\n' "$2" >"$1/task"
}

# pp_run NAME CMD...: run CMD (a shell command string) with timing.
pp_run() {
	pp_name=$1; shift
	pp_log "$pp_name ..."
	pp_s=$(date +%s)
	sh -c "$*"
	pp_log "$pp_name done ($(($(date +%s) - pp_s)) s)"
}

# pp_par CMD ARGS...: CMD over NP ranks, `$MPIRUN -n $NP $MPIRUN_ARGS CMD
# ARGS...` (mpirun and srun both take -n), or CMD itself when NP is 1.
# Standard input goes to rank 0, which shares it; rank 0 alone writes.
#
# Open MPI 4's mpirun keeps its session files under one directory a user
# and host (TMPDIR/ompi.HOST.UID), and mpiruns that start and end at once
# (the two of a pipeline, side-by-side runs) can race on it and fail with
# "orte_session_dir failed" (open-mpi/ompi#8510): unless
# OMPI_MCA_orte_tmpdir_base is set, each mpirun gets its own, removed
# after.  srun's ranks have none.
pp_par() {
	if [ "$NP" -le 1 ]; then
		"$@"
		return
	fi
	pp_st=0
	# MPIRUN and MPIRUN_ARGS are word lists.
	# shellcheck disable=SC2086
	case $MPIRUN:${OMPI_MCA_orte_tmpdir_base:-} in
	srun*|*/srun*|*:?*)
		$MPIRUN -n "$NP" $MPIRUN_ARGS "$@" || pp_st=$? ;;
	*)	pp_sd=$(mktemp -d "${TMPDIR:-/tmp}/pp-mpi.XXXXXX")
		OMPI_MCA_orte_tmpdir_base=$pp_sd $MPIRUN -n "$NP" $MPIRUN_ARGS \
		    "$@" || pp_st=$?
		rm -rf "$pp_sd" ;;
	esac
	return "$pp_st"
}

# pp_gen_data DIR: DIR/sft.mpk (noisy SFT set), DIR/eval.mpk (held out),
# DIR/prompts.mpk (training prompts for mining; or $PROMPTS).
pp_gen_data() {
	pp_task "$1" "digits=$DIGITS noise=$NOISE systematic=$SYSTEMATIC n_sft=$N_SFT n_sft2=$N_SFT2 seed=$SEED n_eval=$N_EVAL n_prompts=$N_PROMPTS"
	if [ ! -s "$1/sft.mpk" ]; then
		recs gen arith -n "$N_SFT" --seed "$SEED" --digits "$DIGITS" \
		    --sft --noise "$NOISE" ${SYSTEMATIC:+--systematic} \
		    >"$1/sft.mpk.tmp"
		mv "$1/sft.mpk.tmp" "$1/sft.mpk"
		recs gen arith -n "$N_SFT2" --seed $((SEED + 50)) \
		    --digits "$DIGITS" --sft --noise "$NOISE" \
		    ${SYSTEMATIC:+--systematic} >"$1/sft2.mpk"
	fi
	if [ -n "${EVAL:-}" ]; then
		recs cat "$EVAL" >"$1/eval.mpk"
	elif [ ! -s "$1/eval.mpk" ]; then
		recs gen arith -n "$N_EVAL" --seed 1000 --digits "$DIGITS" \
		    --split eval >"$1/eval.mpk"
	fi
	if [ -n "${PROMPTS:-}" ]; then
		recs cat "$PROMPTS" >"$1/prompts.mpk"
	elif [ ! -s "$1/prompts.mpk" ]; then
		recs gen arith -n "$N_PROMPTS" --seed $((SEED + 100)) \
		    --digits "$DIGITS" >"$1/prompts.mpk"
	fi
}

# pp_init_sft SEED OUT DATA [STEPS]: a fresh model (ckpt init --seed SEED)
# trained on the SFT set DATA, metrics in OUT.metrics.  With STEPS, the
# cosine schedule spans STEPS optimizer steps, so that pp_sft_more can go on
# with it.  With MODEL set, OUT is a link to MODEL.
pp_init_sft() {
	if [ -n "${MODEL:-}" ]; then
		mkdir -p "$(dirname "$2")"
		rm -rf "$2"; ln -s "$(cd "$(dirname "$MODEL")" && pwd)/$(basename "$MODEL")" "$2"
		return
	fi
	[ -d "$2" ] && return 0
	mkdir -p "$(dirname "$2")"
	ckpt init -o "$2.init" $INIT_ARGS --seed "$1" >/dev/null
	pp_par train-step -m "$2.init" -o "$2.tmp" --loss sft --lr "$SFT_LR" \
	    --batch-size "$SFT_BATCH" --schedule cosine --warmup 20 \
	    ${4:+--schedule-steps "$4"} --seed "$1" <"$3" >"$2.metrics"
	rm -rf "$2.init"
	mv "$2.tmp" "$2"
}

# pp_sft_more IN OUT SEED DATA: go on training IN (its optimizer state and
# schedule) on DATA, shuffled with SEED.
pp_sft_more() {
	if [ -n "${MODEL:-}" ]; then
		mkdir -p "$(dirname "$2")"
		rm -rf "$2"; ln -s "$(cd "$(dirname "$MODEL")" && pwd)/$(basename "$MODEL")" "$2"
		return
	fi
	[ -d "$2" ] && return 0
	mkdir -p "$(dirname "$2")"
	# The learning rate, batch size and schedule are options, not state:
	# give them again (the horizon, --schedule-steps, is kept).
	pp_par train-step -m "$1" -o "$2.tmp" --loss sft --lr "$SFT_LR" \
	    --batch-size "$SFT_BATCH" --schedule cosine --warmup 20 \
	    --seed "$3" <"$4" >"$2.metrics"
	mv "$2.tmp" "$2"
}

# pp_eval CKPT TEMP [EVAL]: mean exact-match accuracy on the held-out set,
# one sample per prompt at temperature TEMP (0: greedy).
pp_eval() {
	pp_try=1
	while :; do
		pp_acc=$(pp_par rollout -m "$1" --temperature "$2" --max-tokens "$MAXTOK" \
		    --seed "$SEED" "${3:-$PP_EVAL}" |
		    score --exact | recs stats reward | recs to-tsv reward.mean)
		# A pipeline's failure shows as an empty result: try again (the
		# tools may be being rebuilt), then give up loudly.
		[ -n "$pp_acc" ] && break
		[ "$pp_try" -ge 3 ] && { pp_log "evaluation of $1 failed"; return 1; }
		pp_try=$((pp_try + 1)); sleep 2
	done
	printf '%s\n' "$pp_acc"
}

# pp_mine POLICY SEED PROMPTS: SAMPLES samples per prompt, scored.
pp_mine() {
	pp_par rollout -m "$1" -n "$SAMPLES" --max-tokens "$MAXTOK" --seed "$2" "$3" |
	    score --exact
}

# pp_dpo_round POLICY REF OUT SEED PROMPTS: on-policy preference mining and
# one DPO update; OUT.pairs the pairs, OUT.metrics the training metrics.
pp_dpo_round() {
	[ -d "$3" ] && return 0
	pp_mine "$1" "$4" "$5" |
	    filter --sorted --keep best-worst |
	    pair --sorted |
	    pp_par score --logprob "$2" >"$3.pairs"
	pp_dpo_train "$1" "$3" "$4"
}

# pp_dpo_train POLICY OUT SEED: the DPO update of a round, from the pairs
# in OUT.pairs (reference log-probs scored) to the checkpoint OUT and its
# metrics OUT.metrics.
pp_dpo_train() {
	pp_n=$(recs count "$2.pairs")
	[ "${pp_n:-0}" -gt 0 ] || { pp_log "no pairs mined from $1"; return 1; }
	pp_par train-step -m "$1" -o "$2" --loss dpo --reset-optimizer \
	    --lr "$LR" --beta "$BETA" --nll-coef "$NLL" \
	    --batch-size "$DPO_BATCH" --epochs "$DPO_EPOCHS" --seed "$3" \
	    <"$2.pairs" >"$2.metrics"
}

# pp_ppo_update POLICY REF CRITIC OUT CRITIC_OUT SEED: one PPO update of
# POLICY into OUT (train-step --loss ppo, GAE, a KL to REF) and of CRITIC
# into CRITIC_OUT (--loss value), on the rewarded samples on stdin, which
# it scores with REF's log-probs and CRITIC's values first (OUT.samples,
# removed after); OUT.metrics and CRITIC_OUT.metrics the metrics.
: "${PPO_KL:=0.05}"
: "${PPO_GAMMA:=1}"
: "${PPO_LAMBDA:=0.95}"
: "${PPO_EPOCHS:=2}"
: "${VALUE_LR:=1e-4}"
pp_ppo_update() {
	pp_gae="--kl-coef $PPO_KL --gamma $PPO_GAMMA --lambda $PPO_LAMBDA"
	score -q --logprob "$2" --as ref | score -q --value "$3" >"$4.samples"
	# shellcheck disable=SC2086
	train-step -q -m "$1" -o "$4" --loss ppo --reset-optimizer \
	    --lr "$PG_LR" --batch-size "$PG_BATCH" --clip 0.2 \
	    --ppo-epochs "$PPO_EPOCHS" --seed "$6" $pp_gae \
	    <"$4.samples" >"$4.metrics"
	# shellcheck disable=SC2086
	train-step -q -m "$3" -o "$5" --loss value \
	    --lr "$VALUE_LR" --batch-size "$PG_BATCH" --value-clip 0.2 \
	    --ppo-epochs "$PPO_EPOCHS" --seed "$6" $pp_gae \
	    <"$4.samples" >"$5.metrics"
	rm -f "$4.samples"
}

# pp_critic0 POLICY OUT: a critic that starts at 0: POLICY's trunk with a
# new scalar head (train-step --loss value --add-head, no step).
pp_critic0() {
	[ -d "$2" ] && return 0
	printf '%s\n' '{"prompt_tokens":[1],"response_tokens":[2],"reward":0,"values":[0],"logprobs":[0],"ref_logprobs":[0]}' |
	    train-step -q -m "$1" -o "$2" --loss value --add-head \
	    --max-steps 0 >/dev/null
}

# pp_union DIR N: the outputs DIR/part.0 ... DIR/part.(N-1) of N shard
# jobs, concatenated in index order (recs cat; a glob would put part.10
# before part.2).  A part missing (a job that failed or never ran) or a
# DIR/part.N (jobs of another N) is an error, not a different union.
pp_union() {
	pp_d=$1 pp_i=$2
	[ ! -e "$pp_d/part.$2" ] ||
	    { pp_log "$pp_d/part.$2: a part beyond N=$2"; return 1; }
	set --
	while [ "$pp_i" -gt 0 ]; do
		pp_i=$((pp_i - 1))
		[ -f "$pp_d/part.$pp_i" ] || { pp_log "$pp_d/part.$pp_i:" \
		    "missing (the job of that shard failed or did not run)"
		    return 1; }
		set -- "$pp_d/part.$pp_i" "$@"
	done
	recs cat "$@"
}

# pp_mine_shard POLICY REF SEED PROMPTS I N: shard I/N of pp_dpo_round's
# mining, the pairs on stdout: one job of the shard-per-job form (GNU
# parallel, Slurm job arrays: pipelines/shards-*.sh), each a plain
# process.  rollout --shard I/N keeps the prompts whose id hashes to I
# modulo N, and the rest of the chain works prompt by prompt, so the N
# outputs hold between them exactly the pairs of one unsharded run, each
# prompt's pairs together; `recs cat` of them is that set in shard order
# (shard 0's prompts in input order, then shard 1's, ...), not one run's
# order: sorted as JSON lines the two are equal (tests/pipeline_shards.sh).
# `mpirun -n N rollout` (NP) writes one run's order instead.
pp_mine_shard() {
	rollout -m "$1" -n "$SAMPLES" --max-tokens "$MAXTOK" --seed "$3" \
	    --shard "$5/$6" "$4" |
	    score --exact |
	    filter --sorted --keep best-worst |
	    pair --sorted |
	    score --logprob "$2"
}

# pp_acc_row NAME ROUND CKPT: one line of the results table (TSV).
pp_acc_row() {
	pp_g=$(pp_eval "$3" 0)
	pp_t=$(pp_eval "$3" 1)
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$pp_g" "$pp_t"
}

# pp_table TSV: the results (model, round, greedy, t1) as a Markdown table,
# accuracies in percent.
pp_table() {
	awk -F'\t' 'BEGIN {
		print "| model | round | greedy acc. | T=1 acc. |"
		print "| --- | ---: | ---: | ---: |"
	}
	NR > 1 { printf "| %s | %s | %.1f %% | %.1f %% |\n", $1, $2, 100 * $3, 100 * $4 }' "$1"
}

# pp_default_sft DIR: print the path of the starting policy: MODEL when
# set, else the SFT model of seed SEED of the embedded task (the demo's
# run SEED), trained once into DIR (data in DIR/data) and reused after.
pp_default_sft() {
	pp_gen_data "$1/data"
	if [ -n "${MODEL:-}" ]; then
		printf '%s\n' "$MODEL"; return
	fi
	if [ ! -d "$1/sft" ]; then
		pp_log "SFT model of seed $SEED into $1/sft"
		pp_steps=$(( (N_SFT + SFT_BATCH - 1) / SFT_BATCH + (N_SFT2 + SFT_BATCH - 1) / SFT_BATCH ))
		pp_init_sft "$SEED" "$1/sft-common" "$1/data/sft.mpk" "$pp_steps"
		pp_sft_more "$1/sft-common" "$1/sft" "$SEED" "$1/data/sft2.mpk"
	fi
	printf '%s\n' "$1/sft"
}

# pp_pg_round POLICY OUT SEED PROMPTS ADVANTAGE [TRAIN-STEP OPTIONS...]:
# one round of on-policy policy gradient with the verifier's reward:
#   rollout -n SAMPLES [--greedy-baseline] | score --exact |
#       [filter --drop-uniform] | train-step --loss pg --advantage ADV
# remax gets the greedy baselines it needs; grpo and rloo drop the prompts
# whose samples all agree (no signal).  OUT.metrics the training metrics.
: "${PG_LR:=3e-5}"
: "${PG_BATCH:=64}"
: "${PG_PROMPTS:=512}"
pp_pg_round() {
	[ -d "$2" ] && return 0
	pp_p=$1 pp_o=$2 pp_s=$3 pp_pr=$4 pp_adv=$5; shift 5
	if [ "$pp_adv" = remax ]; then
		pp_par rollout -m "$pp_p" -n "$SAMPLES" --max-tokens "$MAXTOK" --seed "$pp_s" \
		    --greedy-baseline "$pp_pr" | score --exact >"$pp_o.samples"
	else
		pp_par rollout -m "$pp_p" -n "$SAMPLES" --max-tokens "$MAXTOK" --seed "$pp_s" \
		    "$pp_pr" | score --exact | filter --sorted --drop-uniform >"$pp_o.samples"
	fi
	pp_par train-step -m "$pp_p" -o "$pp_o" --loss pg --advantage "$pp_adv" \
	    --reset-optimizer --lr "$PG_LR" --batch-size "$PG_BATCH" \
	    --clip 0.2 "$@" <"$pp_o.samples" >"$pp_o.metrics"
	rm -f "$pp_o.samples"
}

# pp_pg_pipeline NAME ADVANTAGE: the body of grpo.sh and remax.sh: ROUNDS
# rounds from the SFT model (or MODEL), evaluated each round.
pp_pg_pipeline() {
	pp_rounds_start "$1"
	printf 'model\tround\tgreedy\tt1\treward\n' >"$OUT/results.tsv"
	printf '%s\t\n' "$(pp_acc_row sft 0 "$pp_sft")" >>"$OUT/results.tsv"
	pp_m=$pp_sft pp_i=1
	while [ "$pp_i" -le "$ROUNDS" ]; do
		pp_log "$1: round $pp_i: rollout -n $SAMPLES | score --exact | train-step --loss pg --advantage $2"
		recs head -n "$PG_PROMPTS" "$SFT_DIR/data/prompts.mpk" >"$OUT/prompts.mpk"
		pp_pg_round "$pp_m" "$OUT/round$pp_i" $((700 + pp_i)) \
		    "$OUT/prompts.mpk" "$2" --ppo-epochs 2
		pp_r=$(recs stats reward_mean <"$OUT/round$pp_i.metrics" | recs to-tsv reward_mean.mean)
		printf '%s\t%s\n' "$(pp_acc_row "$1" "$pp_i" "$OUT/round$pp_i")" "$pp_r" >>"$OUT/results.tsv"
		pp_log "$1: round $pp_i: $(tail -n 1 "$OUT/results.tsv" | cut -f3-)"
		pp_m=$OUT/round$pp_i pp_i=$((pp_i + 1))
	done
	pp_rounds_done "$1"
}

# pp_rounds_start NAME: the start of a pipeline of rounds from the SFT
# model: OUT (default out/NAME) made, pp_sft the starting policy (of
# SFT_DIR, default out/sft), PP_EVAL its held-out prompts.
pp_rounds_start() {
	OUT=${OUT:-out/$1}
	SFT_DIR=${SFT_DIR:-out/sft}
	mkdir -p "$OUT"
	pp_sft=$(pp_default_sft "$SFT_DIR")
	PP_EVAL=$SFT_DIR/data/eval.mpk
}

# pp_rounds_done NAME: the end of a pipeline of rounds from the SFT
# model: OUT/results.tsv as a table (results.md, also on stdout) and one
# curve (accuracy.png), the SFT row as round 0.
pp_rounds_done() {
	pp_table "$OUT/results.tsv" >"$OUT/results.md"
	awk -F'\t' -v OFS='\t' -v n="$1" 'NR > 1 { $1 = "x-" n } { print }' \
	    "$OUT/results.tsv" >"$OUT/plot.tsv"
	XLABEL='round (0 = SFT)' "$pp_here/plot" accuracy "$OUT/plot.tsv" "$OUT/accuracy.png" "$1: held-out accuracy"
	pp_log "done: $OUT/results.md"
	cat "$OUT/results.md"
}
