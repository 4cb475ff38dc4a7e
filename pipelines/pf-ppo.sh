#!/bin/sh
# pipelines/pf-ppo.sh: policy filtration for PPO (PF-PPO) with an imperfect
# reward model.
#
# usage: pipelines/pf-ppo.sh
#        MODEL=path/to/hf-dir PROMPTS=prompts.jsonl EVAL=heldout.jsonl \
#            pipelines/pf-ppo.sh
#
# 1. An imperfect reward model, by RM:
#      head        (default) train-step --loss rm --add-head on RM_PAIRS
#                  verifier-labelled pairs of the SFT model's samples;
#      confidence  the frozen SFT model's summed log-probability of the
#                  response (score --logprob, handed to the reward field
#                  through score --cmd): a model is mostly right where it
#                  is sure, so this one is reliable at the top of its
#                  range, as PF-PPO's premise has it.
# 2. N = 5 samples per prompt scored by it (reward) and by the verifier
#    (correct); filter --r2 correct prints the R^2 table for the strategies
#    all, best, best-random, best-worst (as PF-PPO's Table 1).
# 3. PG_ROUNDS rounds of policy gradient (train-step --loss pg --advantage
#    rloo, PPO clipping, two PPO epochs), on KEEP-filtered samples versus
#    unfiltered ones, both rewarded by the reward model only.  KEEP=auto
#    (the default) takes the strategy of higher per-sample R^2 of
#    best-random and best-worst, as PF-PPO selects by R^2 (best keeps one
#    sample a prompt, which has no leave-one-out baseline).
# PG=ppo trains by PPO with a critic, as the paper, instead of RLOO.
# Writes OUT (default out/pf-ppo): task (the settings, pp_task: other
# settings in the same OUT are refused), r2.tsv, results.tsv, results.md.
# Overrides: RM (head), PG (rloo), RM_PAIRS (default 3000), PG_ROUNDS (3),
# PG_PROMPTS (512), PG_LR (3e-5), KEEP (auto), SFT_DIR (out/sft: the
# cached SFT model), and those of pipelines/lib.sh.
. "$(dirname "$0")/lib.sh"

OUT=${OUT:-out/pf-ppo}
SFT_DIR=${SFT_DIR:-out/sft}
RM_PAIRS=${RM_PAIRS:-3000}
PG_ROUNDS=${PG_ROUNDS:-3}
PG_PROMPTS=${PG_PROMPTS:-512}
PG_LR=${PG_LR:-3e-5}
KEEP=${KEEP:-auto}
RM=${RM:-head}
PG=${PG:-rloo}
N=5
case $PG in
rloo|ppo) ;;
*)	echo "pf-ppo.sh: PG=$PG: not rloo or ppo" >&2
	exit 2 ;;
esac
pp_task "$OUT" "model=${MODEL:-$SFT_DIR} digits=$DIGITS rm=$RM rm_pairs=$RM_PAIRS pg=$PG lr=$PG_LR prompts=$PG_PROMPTS keep=$KEEP"
sft=$(pp_default_sft "$SFT_DIR")
PP_EVAL=$SFT_DIR/data/eval.mpk
prompts=$SFT_DIR/data/prompts.mpk

# 1. The reward model: reward_model scores records on stdin (reward).
case $RM in
head)
	reward_model() { score --rm "$OUT/rm"; }
	if [ ! -d "$OUT/rm" ]; then
		pp_log "reward model: $RM_PAIRS verifier pairs"
		recs gen arith -n $((RM_PAIRS * 4)) --seed 777 --digits "$DIGITS" |
		    rollout -m "$sft" -n 4 --max-tokens "$MAXTOK" --seed 7 |
		    score --exact | pair --sorted | recs head -n "$RM_PAIRS" \
		    >"$OUT/rm.pairs"
		train-step -m "$sft" -o "$OUT/rm" --loss rm --add-head --lr 3e-4 \
		    --batch-size 16 --epochs 2 <"$OUT/rm.pairs" >"$OUT/rm.metrics"
	fi ;;
confidence)
	# shellcheck disable=SC2016
	reward_model() {
		score -q --logprob "$sft" --as conf |
		    score --cmd 'awk '\''{ match($0, /"conf_logprob":[-0-9.eE+]+/)
			print substr($0, RSTART + 15, RLENGTH - 15); fflush() }'\'
	} ;;
*)
	echo "pf-ppo.sh: RM=$RM: not head or confidence" >&2
	exit 2 ;;
esac

# 2. The R^2 table on N samples per prompt.
pp_log "R^2 of the reward model against the verifier, N=$N"
recs head -n "$PG_PROMPTS" "$prompts" |
    rollout -m "$sft" -n "$N" --max-tokens "$MAXTOK" --seed 3 |
    score --exact --as correct | reward_model >"$OUT/samples.mpk"
printf 'strategy\tn\tr2_binned\tr2_samples\n' >"$OUT/r2.tsv"
for k in all best best-random best-worst; do
	filter --keep "$k" --r2 correct --report "$OUT/r2.$k" "$OUT/samples.mpk" \
	    >/dev/null 2>"$OUT/r2.$k.err"
	recs to-tsv strategy n r2_binned r2_samples <"$OUT/r2.$k" >>"$OUT/r2.tsv"
done
column -t "$OUT/r2.tsv" >&2 2>/dev/null || cat "$OUT/r2.tsv" >&2
if [ "$KEEP" = auto ]; then
	KEEP=$(awk -F'\t' '$1 == "best-random" || $1 == "best-worst" {
		if (k == "" || $4 > r) { k = $1; r = $4 } } END { print k }' "$OUT/r2.tsv")
	pp_log "KEEP=auto: $KEEP (the higher per-sample R^2 of best-random and best-worst)"
fi

# 3. Policy gradient, filtered versus not.
# PG=ppo: the paper's PPO, with a critic (score --value, GAE, a KL to the
# SFT model, train-step --loss value on the same filtered samples); a
# critic starts at 0 on the SFT model's trunk, one for each arm.
if [ "$PG" = ppo ]; then
	pp_critic0 "$sft" "$OUT/critic0"
fi
# pg_step POLICY OUT CRITIC: one update of POLICY into OUT on the filtered
# samples on stdin (and with PG=ppo, of CRITIC into OUT.critic).
pg_step() {
	if [ "$PG" = ppo ]; then
		pp_ppo_update "$1" "$sft" "$3" "$2" "$2.critic" 0
		return
	fi
	train-step -m "$1" -o "$2" --loss pg --advantage rloo \
	    --clip 0.2 --ppo-epochs 2 --reset-optimizer --lr "$PG_LR" \
	    --batch-size "$PG_BATCH" >"$2.metrics"
}
# pg_run NAME KEEP: PG_ROUNDS rounds from the SFT model.
pg_run() {
	m=$sft c=$OUT/critic0 i=1
	while [ "$i" -le "$PG_ROUNDS" ]; do
		o=$OUT/$1/round$i
		mkdir -p "$OUT/$1"
		if [ ! -d "$o" ]; then
			recs head -n "$PG_PROMPTS" "$prompts" |
			    rollout -m "$m" -n "$N" --max-tokens "$MAXTOK" --seed $((100 + i)) |
			    reward_model | filter --sorted --keep "$2" |
			    pg_step "$m" "$o" "$c"
		fi
		pp_log "$1: round $i: reward $(recs stats reward_mean <"$o.metrics" | recs to-tsv reward_mean.mean)"
		m=$o c=$o.critic i=$((i + 1))
	done
	pp_acc_row "$1" "$PG_ROUNDS" "$m" >"$OUT/$1.acc"
}
pp_log "policy gradient: $PG_ROUNDS rounds, $KEEP-filtered and unfiltered (side by side)"
pg_run "pg-$KEEP" "$KEEP" &
p1=$!
pg_run pg-all all &
p2=$!
wait "$p1"; wait "$p2"
{
	printf 'model\tround\tgreedy\tt1\n'
	pp_acc_row sft 0 "$sft"
	cat "$OUT/pg-$KEEP.acc" "$OUT/pg-all.acc"
} >"$OUT/results.tsv"
pp_table "$OUT/results.tsv" >"$OUT/results.md"
{ echo; echo "RM=$RM, PG=$PG; R^2 of the reward model against the verifier (N=$N), KEEP=$KEEP:"; echo
  awk -F'\t' 'NR == 1 { print "| strategy | n | R² (binned) | R² (samples) |"; print "| --- | ---: | ---: | ---: |"; next }
	{ printf "| %s | %s | %.3f | %.3f |\n", $1, $2, $3, $4 }' "$OUT/r2.tsv"; } >>"$OUT/results.md"
pp_log "done: $OUT/results.md"
cat "$OUT/results.md"
