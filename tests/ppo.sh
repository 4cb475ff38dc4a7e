#!/bin/sh
# ppo: score --value (a critic's per-token values, indexed as logprobs
# are; pairs; errors), and train-step --loss ppo and --loss value as
# users chain them: --add-head, --ref, --micro-batch invariance (mpirun:
# tests/train_mpi.sh), errors.  The steps' arithmetic is checked against PyTorch in
# tests/train_fixtures.sh.
. "${top_srcdir:-.}/tests/lib.sh"
F=$fixtures/train

# A critic: the fixtures' score-head model.  Its value of each response
# token is the head at the position before it: for a response of one
# token, --value's one value equals --rm's score of the prompt alone.
printf '%s\n' '{"prompt_tokens":[1,5,9],"response_tokens":[7]}' >"$T/one"
check "score --value" score -J --value "$F/init_rm" <"$T/one" >"$T/v"
recs to-tsv values <"$T/v" | tr -d '[]' >"$T/got"
printf '%s\n' '{"prompt_tokens":[1,5],"response_tokens":[9]}' |
    score -J --rm "$F/init_rm" | recs to-tsv reward >"$T/want"
awk 'NR == FNR { w = $1; next } { d = $1 - w; if (d < 0) d = -d
    exit !(d <= 1e-6 * (w < 0 ? -w : w) + 1e-7) }' "$T/want" "$T/got" ||
    fail "value of token 0 ($(cat "$T/got")) != --rm of the prompt ($(cat "$T/want"))"
# One value per response token, under --as; pairs get theirs per side.
score -J --value "$F/init_rm" --as v <"$F/ppo.jsonl" >"$T/vs"
recs to-tsv response_tokens v <"$T/vs" |
    awk -F'\t' '{ if (split($1, a, ",") != split($2, b, ",")) bad = 1 }
    END { exit bad }' || fail "score --value: a value per token"
printf '%s\n' '{"prompt_tokens":[1,5],"chosen":{"response_tokens":[7,8]},"rejected":{"response_tokens":[9]}}' |
    score -J --value "$F/init_rm" >"$T/pair"
[ -n "$(recs to-tsv chosen.values rejected.values <"$T/pair")" ] ||
    fail "score --value: pair sides"
expect_fail 1 'needs a critic' score --value "$F/init" <"$T/one"
expect_fail 2 'one scorer' score --value "$F/init_rm" --rm "$F/init_rm" \
    <"$T/one"

# ppo: the fixture's records, one step, at --micro-batch 1 too, equal
# (the advantages are whitened over all the samples before the batch is
# split).
train-step -q -m "$F/init" -o "$T/p1" $(cat "$F/ppo.args") \
    <"$F/ppo.jsonl" | recs to-tsv loss grad_norm >"$T/a" ||
    fail "ppo: train-step failed"
train-step -q -m "$F/init" -o "$T/p2" $(cat "$F/ppo.args") --micro-batch 1 \
    <"$F/ppo.jsonl" | recs to-tsv loss grad_norm >"$T/b"
awk -F'\t' 'NR == FNR { l = $1; g = $2; next }
    { exit !(($1 - l)^2 <= 1e-12 && ($2 - g)^2 <= 1e-10 * g * g) }' \
    "$T/a" "$T/b" || fail "ppo: --micro-batch 1 changes the step"
# --no-whiten changes it.
train-step -q -m "$F/init" -o "$T/p3" $(cat "$F/ppo.args") --no-whiten \
    <"$F/ppo.jsonl" | recs to-tsv loss >"$T/c"
cmp -s "$T/c" "$(cut -f1 "$T/a" >"$T/a1"; echo "$T/a1")" &&
    fail "ppo: --no-whiten has no effect"
# --ref computes what the records lack; --add-head makes a critic.
sed 's/,"ref_logprobs":\[[^]]*\]//' "$F/ppo.jsonl" >"$T/noref"
check "ppo --ref" train-step -q -m "$F/init" -o "$T/p4" --loss ppo \
    --ref "$F/init" <"$T/noref" >/dev/null
check "value --add-head" train-step -q -m "$F/init" -o "$T/critic" \
    --loss value --add-head <"$F/ppo.jsonl" >/dev/null
check "the new critic scores" score --value "$T/critic" <"$T/one" \
    >/dev/null

# Errors, naming the record and field.
sed 's/,"values":\[[^]]*\]//' "$F/ppo.jsonl" >"$T/novalues"
expect_fail 1 'record 1: field "values": missing' train-step -q \
    -m "$F/init" -o "$T/e" --loss ppo <"$T/novalues"
sed '1s/"values":\[[-0-9.e,]*\]/"values":[0.5]/' "$F/ppo.jsonl" >"$T/short"
expect_fail 1 'record 1: field "values": has 1 values for 3' train-step \
    -q -m "$F/init" -o "$T/e" --loss ppo <"$T/short"
expect_fail 1 'record 1: field "ref_logprobs": missing' train-step -q \
    -m "$F/init" -o "$T/e" --loss ppo <"$T/noref"
sed 's/"logprobs":\[[^]]*\],//' "$F/ppo.jsonl" >"$T/noold"
expect_fail 1 'record 1: field "logprobs": missing' train-step -q \
    -m "$F/init_rm" -o "$T/e" --loss value <"$T/noold"
expect_fail 1 'needs a critic' train-step -q \
    -m "$F/init" -o "$T/e" --loss value <"$F/ppo.jsonl"
expect_fail 2 'goes with --loss rm or value' train-step -q -m "$F/init" \
    -o "$T/e" --loss ppo --add-head <"$F/ppo.jsonl"
expect_fail 2 '--gamma' train-step -q -m "$F/init" -o "$T/e" --loss ppo \
    --gamma 2 <"$F/ppo.jsonl"
finish
