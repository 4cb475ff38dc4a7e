#!/bin/sh
# recs_rank: recs rank-accuracy's three accuracies worked by hand, --beta,
# --alpha, the prefixes, and its errors; then on pairs scored by two
# checkpoints (score --logprob --as), where the reference's accuracy of a
# model against itself is its ranking accuracy.
. "${top_srcdir:-.}/tests/lib.sh"

# Pair 1: the policy ranks it, the reference not (-5 < -4), but the
# margin 1 outweighs beta * -1; pair 2: neither model, and the margin
# outweighs beta * -5 only at beta 0.1; pair 3: both rank it.
cat >"$T/in" <<'E'
{"chosen":{"policy_logprob":-3,"ref_logprob":-5},"rejected":{"policy_logprob":-4,"ref_logprob":-4},"margin":1,"p":0.9}
{"chosen":{"policy_logprob":-6,"ref_logprob":-9},"rejected":{"policy_logprob":-2,"ref_logprob":-4},"margin":1,"p":0.5}
{"chosen":{"policy_logprob":-1,"ref_logprob":-1},"rejected":{"policy_logprob":-2,"ref_logprob":-3},"margin":0.2,"p":1}
E
acc() { recs rank-accuracy -J "$@" "$T/in" |
    recs to-tsv ranking_accuracy ref_ranking_accuracy idealized_ranking_accuracy; }
printf '0.6666666666666666\t0.3333333333333333\t1.0\n' >"$T/want"
acc >"$T/got"
same "beta 0.1" "$T/want" "$T/got"
printf '0.6666666666666666\t0.3333333333333333\t0.6666666666666666\n' >"$T/want"
acc --beta 0.5 >"$T/got"
same "beta 0.5" "$T/want" "$T/got"
# --alpha: logit(0.9) = 2.197 keeps pair 1; p = 0.5 gives pair 2 nothing
# but beta * -5; p = 1 is certain.
printf '0.6666666666666666\t0.3333333333333333\t0.6666666666666666\n' >"$T/want"
acc --alpha p >"$T/got"
same "--alpha" "$T/want" "$T/got"
# --ref names another prefix: none here, so only the policy's accuracy.
recs rank-accuracy -J --ref none "$T/in" | recs to-tsv pairs ranking_accuracy \
    idealized_ranking_accuracy >"$T/got"
printf '3\t0.6666666666666666\t\n' >"$T/want"
same "--ref none" "$T/want" "$T/got"
# --policy ref: the reference as the policy.
recs rank-accuracy -J --policy ref "$T/in" | recs to-tsv ranking_accuracy \
    >"$T/got"
echo 0.3333333333333333 >"$T/want"
same "--policy ref" "$T/want" "$T/got"

# Errors.
sed '2s/"policy_logprob":-2,//' "$T/in" >"$T/bad"
expect_fail 1 'record 2: field "rejected.policy_logprob": missing' \
    recs rank-accuracy "$T/bad"
sed '3s/,"ref_logprob":-3//; 3s/,"ref_logprob":-1}/}/' "$T/in" >"$T/bad"
expect_fail 1 'record 3: field "chosen.ref_logprob"|2 of 3 pairs' \
    recs rank-accuracy "$T/bad"
sed '1s/"p":0.9/"p":2/' "$T/in" >"$T/bad"
expect_fail 1 'record 1: field "p": 2 is not a probability' \
    recs rank-accuracy --alpha p "$T/bad"
sed 's/,"margin":[0-9.]*//' "$T/in" >"$T/bad"
expect_fail 1 'record 1: field "margin": missing' recs rank-accuracy "$T/bad"
expect_fail 1 'no pairs' recs rank-accuracy /dev/null
expect_fail 2 '--beta' recs rank-accuracy --beta 0 "$T/in"

# From score: the same checkpoint as policy and reference ranks alike.
ckpt init -o "$T/m" --dim 32 --layers 2 --heads 4 --kv-heads 2 --ffn 64 \
    --seed 3 >/dev/null
printf '%s\n' '{"prompt":"1+1=","chosen":{"response":"2"},"rejected":{"response":"3"},"margin":1}' \
    '{"prompt":"2+2=","chosen":{"response":"4"},"rejected":{"response":"5"},"margin":1}' |
    score --logprob "$T/m" --as policy | score --logprob "$T/m" |
    recs rank-accuracy -J | recs to-tsv ranking_accuracy ref_ranking_accuracy |
    awk -F'\t' '{ exit !($1 == $2) }' ||
    fail "one model as policy and reference: accuracies differ"
finish
