#!/bin/sh
# train_freeze: --freeze GLOBS trains the other tensors only.  Frozen
# tensors come out bit-identical and have no optimizer state; the rest
# move; resuming with the same set continues Adam's step, with another
# set it asks for --reset-optimizer; a glob that matches nothing, or one
# that freezes everything, is a usage error.
. "$top_srcdir/tests/lib.sh"

ckpt init -o "$T/tiny" --dim 32 --layers 2 --heads 2 --ffn 64 --ctx 64 \
    --seed 1 || fail "ckpt init"
recs gen arith -n 8 --sft --seed 3 >"$T/sft" || fail "recs gen"
frozen='model.embed_tokens.weight,model.layers.0.*'
args="--loss sft --batch-size 4 --lr 1e-2 --no-shuffle"

# shellcheck disable=SC2086
train-step -m "$T/tiny" -o "$T/f1" $args --freeze "$frozen" <"$T/sft" \
    >"$T/m1" || fail "train-step --freeze"

# Which tensors moved: name and whether max |a - b| is zero.
ckpt diff -J "$T/tiny" "$T/f1" | recs to-tsv name max_abs |
    awk -F '\t' '{ print $1 "\t" ($2 == 0 ? "same" : "moved") }' \
    >"$T/moved"
awk -F '\t' '{
	frozen = $1 == "model.embed_tokens.weight" ||
	    $1 ~ /^model\.layers\.0\./
	print $1 "\t" (frozen ? "same" : "moved")
}' "$T/moved" >"$T/want"
same "frozen tensors kept, trainable ones moved" "$T/moved" "$T/want"
check "21 tensors compared" test "$(wc -l <"$T/moved")" -eq 21

# Moments only for trainable tensors (the header is JSON text).
opt="$T/f1/optimizer.safetensors"
check "no moments for a frozen tensor" sh -c \
    "! grep -aq 'exp_avg.model.embed_tokens.weight' '$opt' &&
     ! grep -aq 'model.layers.0.mlp' '$opt'"
check "moments for a trainable tensor" \
    grep -aq 'exp_avg_sq.model.layers.1.mlp.up_proj.weight' "$opt"

# Resume with the same set: Adam's step goes on from 2.
# shellcheck disable=SC2086
train-step -m "$T/f1" -o "$T/f2" $args --freeze "$frozen" <"$T/sft" \
    >"$T/m2" || fail "resume with --freeze"
check "resume continues the step count" test \
    "$(recs to-tsv step <"$T/m2" | tr '\n' ' ')" = "3 4 "
ckpt diff -J "$T/f1" "$T/f2" | recs to-tsv name max_abs |
    awk -F "\t" '$1 == "model.embed_tokens.weight" { print ($2 == 0) }' \
    >"$T/emb"
check "still frozen after resume" test "$(cat "$T/emb")" = 1

# Resume with everything trainable: the frozen tensors have no moments.
# shellcheck disable=SC2086
expect_fail 1 'exp_avg\.model\.embed_tokens\.weight: missing.*--reset-optimizer' \
    train-step -m "$T/f1" -o "$T/f3" $args <"$T/sft"
# shellcheck disable=SC2086
train-step -m "$T/f1" -o "$T/f3" $args --reset-optimizer <"$T/sft" \
    >/dev/null || fail "--reset-optimizer after --freeze"

# Usage errors name the pattern.
# shellcheck disable=SC2086
expect_fail 2 'train-step: --freeze: "nope\*" matches no tensor' \
    train-step -m "$T/tiny" -o "$T/x" $args --freeze 'lm_head.weight,nope*' \
    <"$T/sft"
# shellcheck disable=SC2086
expect_fail 2 'train-step: --freeze: "\*" freezes every tensor' \
    train-step -m "$T/tiny" -o "$T/x" $args --freeze '*' <"$T/sft"
# shellcheck disable=SC2086
expect_fail 2 'train-step: --freeze: an empty' \
    train-step -m "$T/tiny" -o "$T/x" $args --freeze 'lm_head.weight,,' \
    <"$T/sft"
check "no checkpoint after a usage error" test ! -e "$T/x"
finish
