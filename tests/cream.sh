#!/bin/sh
# cream: pair --consistency (Kendall's tau of two rankings, worked by
# hand, ties, errors), score --logprob --ratio-to, and DPO on CREAM's
# soft labels: a pair with label_smoothing e trains as the flipped pair
# with 1 - e (the sigmoid loss's symmetry), above 0.5 included.
. "${top_srcdir:-.}/tests/lib.sh"
F=$fixtures/train

# a: prev reverses the ranking (tau -1, C 0); b: one of three orders
# disagrees (tau 1/3, C 2/3); c: prev ties everything (tau 0, C 1/2).
cat >"$T/in" <<'E'
{"id":"a","prompt":"p","response":"1","reward":3,"prev":1}
{"id":"a","prompt":"p","response":"2","reward":2,"prev":2}
{"id":"a","prompt":"p","response":"3","reward":1,"prev":3}
{"id":"b","prompt":"q","response":"4","reward":3,"prev":3}
{"id":"b","prompt":"q","response":"5","reward":2,"prev":1}
{"id":"b","prompt":"q","response":"6","reward":1,"prev":2}
{"id":"c","prompt":"r","response":"7","reward":2,"prev":0}
{"id":"c","prompt":"r","response":"8","reward":1,"prev":0}
E
pair -J --consistency prev "$T/in" |
    recs to-tsv id consistency label_smoothing >"$T/got"
printf 'a\t0.0\t1.0\nb\t0.6666666666666666\t0.33333333333333337\nc\t0.5\t0.5\n' >"$T/want"
same "pair --consistency" "$T/want" "$T/got"
# Without it, no soft labels.
pair -J "$T/in" | grep -q label_smoothing && fail "label_smoothing without --consistency"
sed '2s/,"prev":2//' "$T/in" >"$T/bad"
expect_fail 1 'record 2: field "prev": missing' pair --consistency prev "$T/bad"
sed '2s/"prev":2/"prev":"x"/' "$T/in" >"$T/bad"
expect_fail 1 'record 2: field "prev": expected number' pair \
    --consistency prev "$T/bad"
expect_fail 2 'takes none of' pair --kto --consistency prev "$T/in"

# --ratio-to: the sum less the other prefix's sum, side by side.
printf '%s\n' '{"prompt_tokens":[1,5],"chosen":{"response_tokens":[7,8]},"rejected":{"response_tokens":[9]}}' |
    score -J --logprob "$F/init" --as base |
    score -J --logprob "$F/init_qwen3" --as cur --ratio-to base >"$T/r"
recs to-tsv chosen.cur_logprob chosen.base_logprob chosen.cur_logratio <"$T/r" |
    awk -F'\t' '{ d = $1 - $2 - $3; exit !(d * d < 1e-10 && $3 != 0) }' ||
    fail "--ratio-to: cur_logratio != cur_logprob - base_logprob"
printf '%s\n' '{"prompt_tokens":[1,5],"response_tokens":[7]}' >"$T/one"
expect_fail 1 'record 1: field "none_logprob": missing' score --logprob \
    "$F/init" --ratio-to none <"$T/one"
expect_fail 2 'ratio-to' score --rm "$F/init_rm" --ratio-to base <"$T/one"

# DPO on soft labels: (w, l) at e equals (l, w) at 1 - e, one step.
# --label-smoothing itself stays in [0, 0.5]: the flipped pairs get
# theirs through their records.
dpo="--loss dpo --batch-size 3 --beta 0.5 --lr 1e-2 --no-shuffle"
flip() { sed 's/"chosen"/"X"/; s/"rejected"/"chosen"/; s/"X"/"rejected"/'; }
sed 's/,"label_smoothing":[0-9.]*//' "$F/dpo.jsonl" >"$T/plain"
sed 's/"id":"p1"/"id":"p1","label_smoothing":0.8/' "$T/plain" >"$T/soft"
flip <"$T/plain" | sed 's/"id":"p\([02]\)"/"id":"p\1","label_smoothing":1/' |
    sed 's/"id":"p1"/"id":"p1","label_smoothing":0.2/' >"$T/flip"
# shellcheck disable=SC2086
train-step -q -m "$F/init" -o "$T/s1" $dpo <"$T/soft" |
    recs to-tsv loss grad_norm >"$T/a" || fail "dpo on label 0.8"
# shellcheck disable=SC2086
train-step -q -m "$F/init" -o "$T/s2" $dpo <"$T/flip" |
    recs to-tsv loss grad_norm >"$T/b" || fail "dpo on flipped labels"
paste "$T/a" "$T/b" | awk -F'\t' '{ d = $1 - $3; g = $2 - $4
    exit !(d * d < 1e-12 && g * g < 1e-10 * $2 * $2) }' ||
    fail "soft labels: (w, l, e) != (l, w, 1 - e): $(cat "$T/a") vs $(cat "$T/b")"
check "soft labels: the same weights" "$top_builddir/tests/unit_train_cmp" \
    "$T/s1" "$T/s2" 1e-5
# The robust variant still needs e < 0.5.
expect_fail 1 'record 2: field "label_smoothing": 0.8 is outside' \
    train-step -q -m "$F/init" -o "$T/e" --loss dpo --dpo-variant robust \
    <"$T/soft"
finish
