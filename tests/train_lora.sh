#!/bin/sh
# train_lora: train-step --lora-rank on a frozen base, written as a PEFT
# adapter directory; the adapter read by rollout, score, train-step and
# merge; the errors.
#   - new adapters start as the base (PEFT's B = 0): log-probs equal;
#   - only the adapters are written, the base is untouched and frozen;
#   - the adapter applied on the fly scores as its fold (merge) does;
#   - resuming continues Adam's step from the adapter's own state;
#   - dropout is seeded and does not depend on the micro-batch size;
#   - a soup of adapters is the soup of their folds;
#   - every objective trains adapters (the reference of dpo, kto and
#     pg's KL is the base).
. "$top_srcdir/tests/lib.sh"
F=$fixtures/train

# near GOT WANT TOL: |got - want| <= TOL
near() {
	awk -v g="$1" -v w="$2" -v t="$3" 'BEGIN {
		d = g - w; if (d < 0) d = -d; exit !(d <= t) }'
}

# sums FILE: the per-pair sums of chosen ref log-probs, one a line
sums() { recs to-tsv ref_logprob <"$1"; }

ckpt init -o "$T/base" --dim 32 --layers 2 --heads 2 --ffn 64 --ctx 64 \
    --seed 1 || fail "ckpt init"
recs gen arith -n 8 --sft --seed 3 >"$T/sft" || fail "recs gen"
args="--loss sft --batch-size 4 --lr 1e-2 --no-shuffle"

# PEFT's init: B = 0, so the adapted model is the base, bit for bit.
# shellcheck disable=SC2086
train-step -m "$T/base" -o "$T/a0" $args --lora-rank 4 --max-steps 0 \
    <"$T/sft" >/dev/null || fail "train-step --max-steps 0"
rollout -m "$T/base" -n 2 --seed 5 <"$T/sft" >"$T/ro" || fail "rollout"
score --logprob "$T/base" <"$T/ro" | sums /dev/stdin >"$T/s.base"
score --logprob "$T/a0" <"$T/ro" | sums /dev/stdin >"$T/s.a0"
same "fresh adapters score as the base" "$T/s.base" "$T/s.a0"

# A as kaiming_uniform(a = sqrt 5): within +-1/sqrt(in), spread to near
# the bound; B all zero.
if "$PYTHON3" -c 'import json' 2>/dev/null; then
	"$PYTHON3" - "$T/a0/adapter_model.safetensors" >"$T/init" <<'PY' ||
import json, math, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
for name, t in sorted(h.items()):
    if name == "__metadata__":
        continue
    lo, hi = t["data_offsets"]
    v = struct.unpack("<%df" % ((hi - lo) // 4), b[8 + n + lo:8 + n + hi])
    big = max(abs(x) for x in v)
    if name.endswith("lora_B.weight"):
        print(name, "zero" if big == 0 else "nonzero")
    else:
        bound = 1 / math.sqrt(t["shape"][1])
        print(name, "ok" if 0.9 * bound < big <= bound else "bad %g" % big)
PY
	    fail "reading the initial adapter"
	check "every A within its bound, every B zero" test \
	    "$(grep -c ' ok$\| zero$' "$T/init")" -eq 28 -a \
	    "$(wc -l <"$T/init")" -eq 28
fi

# Two steps; the directory is PEFT's.
# shellcheck disable=SC2086
train-step -m "$T/base" -o "$T/a1" $args --lora-rank 4 --lora-alpha 8 \
    --lora-targets q_proj,v_proj,down_proj <"$T/sft" >"$T/m1" ||
    fail "train-step --lora-rank"
check "adapter_config.json" test -f "$T/a1/adapter_config.json"
check "no config.json, no model.safetensors" test ! -f "$T/a1/config.json" \
    -a ! -f "$T/a1/model.safetensors"
check "tokenizer carried" test -f "$T/a1/tokenizer.json"
check "peft_type" grep -q '"peft_type": "LORA"' "$T/a1/adapter_config.json"
check "r" grep -q '"r": 4' "$T/a1/adapter_config.json"
check "lora_alpha" grep -q '"lora_alpha": 8' "$T/a1/adapter_config.json"
check "task_type" grep -q '"task_type": "CAUSAL_LM"' "$T/a1/adapter_config.json"
tr -d ' \n' <"$T/a1/adapter_config.json" >"$T/ac"
check "target_modules" grep -q \
    '"target_modules":\["q_proj","v_proj","down_proj"\]' "$T/ac"
ad=$T/a1/adapter_model.safetensors
check "PEFT's names" grep -aq \
    'base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight' "$ad"
check "only the targets" sh -c "! grep -aq 'k_proj' '$ad' &&
    ! grep -aq 'embed_tokens' '$ad'"
# lora_A (r, in) = [4, 32], down_proj's lora_A [4, 64], lora_B (out, r)
check "lora_A shape" sh -c "tr -d ' ' <'$ad' | grep -aq \
    'layers.0.mlp.down_proj.lora_A.weight\":{\"dtype\":\"F32\",\"shape\":\[4,64\]'"
check "lora_B shape" sh -c "tr -d ' ' <'$ad' | grep -aq \
    'layers.0.self_attn.q_proj.lora_B.weight\":{\"dtype\":\"F32\",\"shape\":\[32,4\]'"

# On the fly equals folded, within float rounding.
merge -q -o "$T/fold" "$T/a1" || fail "merge ADAPTER"
check "the fold is a full checkpoint" test -f "$T/fold/model.safetensors" \
    -a -f "$T/fold/config.json"
score --logprob "$T/a1" <"$T/ro" | sums /dev/stdin >"$T/s.a1"
score --logprob "$T/fold" <"$T/ro" | sums /dev/stdin >"$T/s.fold"
check "the adapters moved the model" sh -c \
    "! cmp -s '$T/s.a1' '$T/s.base'"
paste "$T/s.a1" "$T/s.fold" | awk '{ d = $1 - $2; if (d < 0) d = -d
    if (d > 1e-4) bad++ } END { exit bad > 0 }' ||
    fail "adapter and fold log-probs differ: $(paste "$T/s.a1" "$T/s.fold" | head -3)"
ckpt diff -J "$T/base" "$T/fold" | recs to-tsv name max_abs |
    awk -F '\t' '$2 != 0 { print $1 }' >"$T/moved"
check "the fold moves the targets alone" test "$(grep -c . "$T/moved")" \
    -eq 6 -a "$(grep -vc 'q_proj\|v_proj\|down_proj' "$T/moved")" -eq 0
rollout -m "$T/a1" -n 2 --seed 5 <"$T/sft" | recs count >"$T/n" ||
    fail "rollout ADAPTER"
check "rollout samples an adapter" test "$(cat "$T/n")" = 16

# Resume: the adapter's own optimizer state, the step goes on.
check "moments of the adapters" grep -aq \
    'exp_avg_sq.model.layers.0.self_attn.q_proj.lora_A.weight' \
    "$T/a1/optimizer.safetensors"
check "no moments of the base" sh -c \
    "! grep -aq 'exp_avg.model.embed_tokens' '$T/a1/optimizer.safetensors'"
# shellcheck disable=SC2086
train-step -m "$T/a1" -o "$T/a2" $args <"$T/sft" >"$T/m2" ||
    fail "resume from an adapter"
check "resume continues the step count" test \
    "$(recs to-tsv step <"$T/m2" | tr '\n' ' ')" = "3 4 "
check "resume keeps the base" grep -q "\"base_model_name_or_path\": \"$(cd "$T/base" && pwd -P)\"" \
    "$T/a2/adapter_config.json"
# shellcheck disable=SC2086
train-step -m "$T/a2" -o "$T/a2" $args <"$T/sft" >/dev/null ||
    fail "an adapter replaced in place"
# --base overrides base_model_name_or_path.
cp -r "$T/a1" "$T/moved_a1"
sed 's|"base_model_name_or_path": ".*"|"base_model_name_or_path": "gone"|' \
    "$T/a1/adapter_config.json" >"$T/moved_a1/adapter_config.json"
# shellcheck disable=SC2086
train-step -m "$T/moved_a1" --base "$T/base" -o "$T/a3" $args \
    <"$T/sft" >"$T/m3" || fail "--base"
# metrics without their timings
steps() { recs to-tsv step loss grad_norm <"$1"; }
steps "$T/m2" >"$T/m2.t"
steps "$T/m3" >"$T/m3.t"
same "--base: the same steps" "$T/m2.t" "$T/m3.t"
score --logprob "$T/moved_a1" --base "$T/base" <"$T/ro" |
    sums /dev/stdin >"$T/s.moved"
same "score --base" "$T/s.a1" "$T/s.moved"
rollout -m "$T/a1" -n 1 --seed 5 <"$T/sft" | recs to-tsv response >"$T/r1"
rollout -m "$T/moved_a1" --base "$T/base" -n 1 --seed 5 <"$T/sft" |
    recs to-tsv response >"$T/r2"
same "rollout --base" "$T/r1" "$T/r2"

# Dropout: seeded, and the same with micro-batches of one.
for k in 1 2; do
	# shellcheck disable=SC2086
	train-step -m "$T/base" -o "$T/d$k" $args --lora-rank 4 \
	    --lora-dropout 0.3 --seed 9 <"$T/sft" >"$T/dm$k" ||
	    fail "--lora-dropout"
done
same "dropout is seeded" "$T/d1/adapter_model.safetensors" \
    "$T/d2/adapter_model.safetensors"
# shellcheck disable=SC2086
train-step -m "$T/base" -o "$T/d3" $args --lora-rank 4 --lora-dropout 0.3 \
    --seed 9 --micro-batch 1 <"$T/sft" >"$T/dm3" || fail "--micro-batch 1"
l1=$(recs to-tsv loss <"$T/dm1" | tail -n 1)
l3=$(recs to-tsv loss <"$T/dm3" | tail -n 1)
check "dropout does not depend on the micro-batch" near "$l1" "$l3" 1e-5
# shellcheck disable=SC2086
train-step -m "$T/base" -o "$T/d4" $args --lora-rank 4 \
    --seed 9 <"$T/sft" >"$T/dm4" || fail "no dropout"
l4=$(recs to-tsv loss <"$T/dm4" | tail -n 1)
if near "$l1" "$l4" 1e-7; then fail "dropout changes the step"; fi

# A soup of adapters is the soup of their folds.
merge -q -o "$T/fold2" "$T/a2" || fail "merge ADAPTER 2"
merge -q -o "$T/soup" "$T/a1" "$T/a2" || fail "merge ADAPTER ADAPTER"
merge -q -o "$T/soupf" "$T/fold" "$T/fold2" || fail "merge folds"
same "soup of adapters" "$T/soup/model.safetensors" \
    "$T/soupf/model.safetensors"

# DPO: the base is the reference (adapters off), as --ref BASE is.
sed 's/,"ref_logprob":[-0-9.e]*//g' "$F/dpo.jsonl" >"$T/noref"
train-step -m "$F/init" -o "$T/p1" --loss dpo --lora-rank 2 \
    --batch-size 3 <"$T/noref" >"$T/pm1" || fail "dpo --lora-rank"
train-step -m "$F/init" -o "$T/p2" --loss dpo --lora-rank 2 \
    --batch-size 3 --ref "$F/init" <"$T/noref" >"$T/pm2" ||
    fail "dpo --lora-rank --ref"
steps "$T/pm1" >"$T/pm1.t"
steps "$T/pm2" >"$T/pm2.t"
same "dpo: the base with adapters off is the reference" "$T/pm1.t" \
    "$T/pm2.t"
# KTO's reference is the base too; SimPO and ORPO need none.
sed 's/,"ref_logprob":[-0-9.e]*//g' "$F/kto.jsonl" >"$T/kto"
# shellcheck disable=SC2046
train-step -m "$F/init" -o "$T/k1" $(cat "$F/kto.args") --lora-rank 2 \
    <"$T/kto" >"$T/km1" || fail "kto --lora-rank"
# shellcheck disable=SC2046
train-step -m "$F/init" -o "$T/k2" $(cat "$F/kto.args") --lora-rank 2 \
    --ref "$F/init" <"$T/kto" >"$T/km2" || fail "kto --lora-rank --ref"
steps "$T/km1" >"$T/km1.t"
steps "$T/km2" >"$T/km2.t"
same "kto: the base with adapters off is the reference" "$T/km1.t" \
    "$T/km2.t"
for l in simpo orpo; do
	# shellcheck disable=SC2046
	train-step -m "$F/init" -o "$T/$l" $(cat "$F/$l.args") --lora-rank 2 \
	    <"$F/$l.jsonl" >/dev/null || fail "$l --lora-rank"
done
# rm and pg
train-step -m "$F/init_rm" -o "$T/rm" --loss rm --lora-rank 2 \
    --train-modules score --batch-size 4 <"$F/rm.jsonl" >/dev/null ||
    fail "rm --lora-rank"
check "rm: SEQ_CLS" grep -q '"SEQ_CLS"' "$T/rm/adapter_config.json"
check "rm: the head trained whole" grep -aq 'base_model.model.score.weight' \
    "$T/rm/adapter_model.safetensors"
sed 's/,"ref_logprobs":\[[-0-9.e,]*\]//' "$F/pg.jsonl" >"$T/pg"
train-step -m "$F/init" -o "$T/pg1" --loss pg --kl-coef 0.1 --lora-rank 2 \
    --batch-size 6 <"$T/pg" >/dev/null || fail "pg --kl-coef --lora-rank"

# Errors.
expect_fail 2 'train-step: --lora-rank' \
    train-step -m "$T/base" -o "$T/x" --loss sft --lora-rank 0 <"$T/sft"
expect_fail 2 'train-step: --lora-targets: unknown target "nope"' \
    train-step -m "$T/base" -o "$T/x" --loss sft --lora-rank 2 \
    --lora-targets q_proj,nope <"$T/sft"
expect_fail 2 'go with --lora-rank' \
    train-step -m "$T/base" -o "$T/x" --loss sft --lora-alpha 4 <"$T/sft"
expect_fail 2 'train-step: --train-modules: "nope" is no module' \
    train-step -m "$T/base" -o "$T/x" --loss sft --lora-rank 2 \
    --train-modules nope <"$T/sft"
expect_fail 2 'must match it' \
    train-step -m "$T/a1" -o "$T/x" --loss sft --lora-rank 8 <"$T/sft"
expect_fail 2 'train-step: --base: .* is no adapter directory' \
    train-step -m "$T/base" --base "$T/base" -o "$T/x" --loss sft <"$T/sft"
expect_fail 2 'score: --base: .* is no adapter directory' \
    score --logprob "$T/base" --base "$T/base" <"$T/ro"
expect_fail 2 'rollout: --base: .* is no adapter directory' \
    rollout -m "$T/base" --base "$T/base" <"$T/sft"
expect_fail 2 'score: --base does not apply to --exact' \
    score --exact --base "$T/base" <"$T/ro"
expect_fail 1 'base_model_name_or_path.*"gone" is no checkpoint' \
    score --logprob "$T/moved_a1" <"$T/ro"
ckpt init -o "$T/wide" --dim 48 --layers 2 --heads 2 --ffn 64 --ctx 64 \
    --seed 1 || fail "ckpt init wide"
expect_fail 1 'lora_A.weight" has shape \[4, 32\], the base .* say \[4, 48\]' \
    train-step -m "$T/a1" --base "$T/wide" -o "$T/x" --loss sft <"$T/sft"
expect_fail 1 'a LoRA adapter directory, not a model \(merge' \
    ckpt info "$T/a1"
mkdir "$T/bad"
printf '{"peft_type": "LORA", "r": 2, "target_modules": ["q_proj"], "use_dora": true, "base_model_name_or_path": "%s"}\n' \
    "$T/base" >"$T/bad/adapter_config.json"
expect_fail 1 '"use_dora" is not supported' \
    score --logprob "$T/bad" <"$T/ro"
finish
