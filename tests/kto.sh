#!/bin/sh
# kto: pair --kto (labels, the mismatched responses of the next group,
# sorted and interleaved groups, errors), score --logprob on the kl side
# (the record's own prompt with kl's response), and train-step --loss
# kto's errors.  The loss itself is checked against PyTorch in
# tests/train_fixtures.sh.
. "${top_srcdir:-.}/tests/lib.sh"

# Three prompts: a (two samples), b (one), c (three).
cat >"$T/in" <<'E'
{"id":"a","prompt":"1+1=","response":"2","reward":1}
{"id":"a","prompt":"1+1=","response":"3","reward":0}
{"id":"b","prompt":"2+2=","response":"4","reward":1}
{"id":"c","prompt":"3+3=","response":"7","reward":0}
{"id":"c","prompt":"3+3=","response":"6","reward":1}
{"id":"c","prompt":"3+3=","response":"5","reward":0.5}
E
# Member j of a group takes member j mod n of the next group; c, the
# last, takes a's.  Labels: reward >= 0.5.
cat >"$T/want" <<'E'
{"id":"a","prompt":"1+1=","response":"2","reward":1,"label":true,"kl":{"response":"4"}}
{"id":"a","prompt":"1+1=","response":"3","reward":0,"label":false,"kl":{"response":"4"}}
{"id":"b","prompt":"2+2=","response":"4","reward":1,"label":true,"kl":{"response":"7"}}
{"id":"c","prompt":"3+3=","response":"7","reward":0,"label":false,"kl":{"response":"2"}}
{"id":"c","prompt":"3+3=","response":"6","reward":1,"label":true,"kl":{"response":"3"}}
{"id":"c","prompt":"3+3=","response":"5","reward":0.5,"label":true,"kl":{"response":"2"}}
E
check "pair --kto" pair -J --kto --label-threshold 0.5 "$T/in" >"$T/got"
same "pair --kto" "$T/want" "$T/got"
check "pair --kto --sorted" pair -J --kto --sorted --label-threshold 0.5 \
    "$T/in" >"$T/got"
same "pair --kto --sorted" "$T/want" "$T/got"
# Interleaved groups come out grouped, in order of first appearance.
sed -n '1p;3p;4p;2p;5p;6p' "$T/in" >"$T/mixed"
check "pair --kto interleaved" pair -J --kto --label-threshold 0.5 \
    "$T/mixed" >"$T/got"
same "pair --kto interleaved" "$T/want" "$T/got"
# A record's own label wins over the threshold; tokens travel as tokens.
printf '%s\n' '{"id":"x","prompt_tokens":[1,5],"response_tokens":[6,2],"label":false,"reward":9}' \
    '{"id":"y","prompt_tokens":[1,7],"response_tokens":[8,9,2],"label":true}' >"$T/tok"
printf '%s\n' '{"id":"x","prompt_tokens":[1,5],"response_tokens":[6,2],"label":false,"reward":9,"kl":{"response_tokens":[8,9,2]}}' \
    '{"id":"y","prompt_tokens":[1,7],"response_tokens":[8,9,2],"label":true,"kl":{"response_tokens":[6,2]}}' >"$T/want"
check "pair --kto labels" pair -J --kto --label-threshold 0.5 "$T/tok" \
    >"$T/got"
same "pair --kto labels" "$T/want" "$T/got"
# --by names the field the threshold reads.
pair -J --kto --by reward --label-threshold 2 "$T/in" |
    recs to-tsv label >"$T/got"
printf 'false\nfalse\nfalse\nfalse\nfalse\nfalse\n' >"$T/want"
same "pair --kto --by" "$T/want" "$T/got"

# Errors: no label and no threshold; one prompt only; no response to
# lend; options that belong to pairs.
expect_fail 1 'record 1: field "label": missing' pair --kto "$T/in"
head -n 2 "$T/in" >"$T/one"
expect_fail 1 'one group' pair --kto --label-threshold 0 "$T/one"
printf '%s\n' '{"id":"a","prompt":"p","response":"r","label":true}' \
    '{"id":"b","prompt":"q","label":true}' >"$T/noresp"
expect_fail 1 'record 2: field "response": missing' pair --kto "$T/noresp"
expect_fail 2 'takes none of' pair --kto --strategy all "$T/in"
expect_fail 2 'goes with --kto' pair --label-threshold 1 "$T/in"

# score --logprob scores both sides: the answer, and the record's prompt
# with kl's response, whose log-probs equal the same text as an answer.
ckpt init -o "$T/m" --dim 32 --layers 2 --heads 4 --kv-heads 2 --ffn 64 \
    --seed 3 >/dev/null
pair -J --kto --label-threshold 0.5 "$T/in" >"$T/k"
check "score --logprob kto" score -J --logprob "$T/m" <"$T/k" >"$T/ks"
recs to-tsv kl.ref_logprob <"$T/ks" | head -n 1 >"$T/got"
echo '{"prompt":"1+1=","response":"4"}' | score -J --logprob "$T/m" |
    recs to-tsv ref_logprob >"$T/want"
same "kl side = the prompt with kl's response" "$T/want" "$T/got"
[ "$(recs to-tsv ref_logprob <"$T/ks" | grep -c .)" -eq 6 ] ||
    fail "score --logprob: the answers' own ref_logprob missing"
# score --exact leaves kl alone.
sed 's/"reward"/"answer":"4","reward"/' "$T/k" | score -J --exact |
    grep -c '"kl":{"response":"[0-9]"}' >"$T/got"
echo 6 >"$T/want"
same "score --exact ignores kl" "$T/want" "$T/got"

# train-step --loss kto: one step from the scored records, and errors.
check "train-step --loss kto" train-step -q -m "$T/m" -o "$T/o" \
    --loss kto --batch-size 6 <"$T/ks" >"$T/metrics"
[ -n "$(recs to-tsv kl <"$T/metrics")" ] || fail "kto metrics lack kl"
sed 's/,"kl":{[^}]*}//' "$T/ks" >"$T/nokl"
expect_fail 1 'record 1: field "kl": missing' train-step -q -m "$T/m" \
    -o "$T/o2" --loss kto <"$T/nokl"
sed 's/"label":[a-z]*,//' "$T/ks" >"$T/nolabel"
expect_fail 1 'record 1: field "label": missing' train-step -q -m "$T/m" \
    -o "$T/o2" --loss kto <"$T/nolabel"
expect_fail 1 'record 1: field "kl.ref_logprob": missing' train-step -q \
    -m "$T/m" -o "$T/o2" --loss kto <"$T/k"
# --ref fills both sides' reference log-probs, as score --logprob does.
check "kto --ref" train-step -q -m "$T/m" -o "$T/o3" --loss kto \
    --batch-size 6 --ref "$T/m" <"$T/k" >"$T/metrics3"
recs to-tsv loss kl <"$T/metrics" >"$T/a"
recs to-tsv loss kl <"$T/metrics3" >"$T/b"
same "kto: --ref equals score --logprob's references" "$T/a" "$T/b"
finish
