#!/bin/sh
# pipelines/kto.sh: on-policy KTO, end to end, on the verifier's verdicts.
#
# usage: pipelines/kto.sh
#        MODEL=path/to/hf-dir PROMPTS=prompts.jsonl EVAL=heldout.jsonl \
#            pipelines/kto.sh
#
# ROUNDS rounds (default 4) of
#   rollout -n SAMPLES | score --exact |
#       pair --kto --label-threshold 1 | score --logprob REF |
#       train-step --loss kto
# from the SFT model (cached in SFT_DIR, default out/sft): a correct sample
# is desirable, a wrong one undesirable, and each sample's mismatched
# response (KTO's reference point) is a sample of the next prompt.  REF is
# the round's starting policy.  Every round is evaluated on held-out
# prompts.  Writes OUT (default out/kto): results.tsv (with each round's
# desirable fraction and mean z0), results.md, accuracy.png.  Overrides:
# KTO_LR (1e-5: at the demo's DPO rate of 3e-4, without DPO's NLL term,
# pushing the wrong answers down wrecks this small model in one round),
# KTO_BETA (BETA), KTO_WU (the undesirable weight, 1) and KTO_WD (the
# desirable weight; default n_u / n_d of the round's samples, so both
# sides weigh alike), KTO_BATCH (DPO_BATCH), KTO_PROMPTS (512 a round),
# SAMPLES, ROUNDS, and those of pipelines/lib.sh.
. "$(dirname "$0")/lib.sh"

: "${KTO_LR:=1e-5}"
: "${KTO_BETA:=$BETA}"
: "${KTO_WD:=}"
: "${KTO_WU:=1}"
: "${KTO_BATCH:=$DPO_BATCH}"
: "${KTO_PROMPTS:=512}"
pp_rounds_start kto
sft=$pp_sft

# round POLICY OUT SEED PROMPTS: one round; OUT.samples the scored KTO
# records, OUT.metrics the training metrics.
round() {
	[ -d "$2" ] && return 0
	pp_mine "$1" "$3" "$4" |
	    pair --kto --sorted --by reward --label-threshold 1 |
	    score --logprob "$1" >"$2.samples"
	# Unless KTO_WD is given, the desirable weight that makes w_d n_d
	# equal w_u n_u, the low end of the paper's range [1, 4/3].
	wd=$KTO_WD
	[ -n "$wd" ] || wd=$(recs to-tsv label <"$2.samples" |
	    awk -v wu="$KTO_WU" '{ n++; d += $1 == "true" }
	    END { print (d > 0 && d < n) ? wu * (n - d) / d : 1 }')
	train-step -m "$1" -o "$2" --loss kto --reset-optimizer \
	    --lr "$KTO_LR" --beta "$KTO_BETA" \
	    --kto-desirable-weight "$wd" \
	    --kto-undesirable-weight "$KTO_WU" --batch-size "$KTO_BATCH" \
	    --seed "$3" <"$2.samples" >"$2.metrics"
}

printf 'model\tround\tgreedy\tt1\tdesirable\tkl\n' >"$OUT/results.tsv"
printf '%s\t\t\n' "$(pp_acc_row sft 0 "$sft")" >>"$OUT/results.tsv"
m=$sft i=1
while [ "$i" -le "$ROUNDS" ]; do
	pp_log "kto: round $i: rollout -n $SAMPLES | score --exact | pair --kto | score --logprob | train-step --loss kto"
	recs head -n "$KTO_PROMPTS" "$SFT_DIR/data/prompts.mpk" >"$OUT/prompts.mpk"
	round "$m" "$OUT/round$i" $((900 + i)) "$OUT/prompts.mpk"
	d=$(recs to-tsv desirable undesirable <"$OUT/round$i.metrics" |
	    awk '{ d += $1; n += $1 + $2 } END { if (n) print d / n }')
	z=$(recs stats kl <"$OUT/round$i.metrics" | recs to-tsv kl.mean)
	printf '%s\t%s\t%s\n' "$(pp_acc_row kto "$i" "$OUT/round$i")" "$d" "$z" \
	    >>"$OUT/results.tsv"
	pp_log "kto: round $i: $(tail -n 1 "$OUT/results.tsv" | cut -f3-)"
	m=$OUT/round$i i=$((i + 1))
done
pp_rounds_done kto
