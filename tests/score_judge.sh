#!/bin/sh
# score_judge: score --judge against the judge's own log-probabilities as
# score --logprob computes them (pointwise: the expected rating under the
# labels' renormalised probabilities; multi-token labels), the pairwise
# judge's symmetry (swapping chosen and rejected gives 1 - p: both orders
# are judged), the template's fields and braces, recs judge-data (and a
# judge trained on it), and errors.
. "${top_srcdir:-.}/tests/lib.sh"

ckpt init -o "$T/m" --dim 32 --layers 2 --heads 4 --kv-heads 2 --ffn 64 \
    --seed 3 >/dev/null
printf 'Q: {prompt} ({id})\nA: {response}\n{{rate}} 1 to 3:' >"$T/point"
printf '%s\n' '{"id":"x","prompt":"1+1=","response":"2"}' >"$T/in"
check "pointwise" score -J --judge "$T/m" --template "$T/point" \
    --labels 1,2,30 <"$T/in" >"$T/got"
# The same from score --logprob: the rendered template, then each label
# as the assistant's turn of a base model's plain conversation (a blank
# line, then the label), as train-step would learn it.
text='Q: 1+1= (x)\nA: 2\n{rate} 1 to 3:'	# JSON-escaped
tok() { printf '{"text":"%s"}\n' "$1" | ckpt tokenize -J --no-special "$T/m" |
    recs to-tsv tokens; }
p=$(tok "$text")
for l in 1 2 30; do
	printf '{"prompt_tokens":%s,"response_tokens":%s}\n' "$p" "$(tok "\\n\\n$l")"
done | score -J --logprob "$T/m" | recs to-tsv ref_logprob >"$T/sums"
[ "$(grep -c . "$T/sums")" -eq 3 ] || fail "score --logprob of the labels"
awk 'NR == FNR { s[NR] = $1; n = NR; next }
    { m = s[1]; for (i = 2; i <= n; i++) if (s[i] > m) m = s[i]
      v[1] = 1; v[2] = 2; v[3] = 30; z = 0; e = 0
      for (i = 1; i <= n; i++) { p = exp(s[i] - m); z += p; e += p * v[i] }
      want = e / z; d = $1 - want; if (d < 0) d = -d
      if (d > 1e-5 * want) { print "got " $1 ", want " want; exit 1 } }' \
    "$T/sums" "$(recs to-tsv reward <"$T/got" >"$T/r"; echo "$T/r")" ||
    fail "pointwise reward is not the expected rating of score --logprob's sums"
grep -q '"id":"x"' "$T/got" || fail "pointwise: fields do not pass through"

# Pairwise: both orders, so the swapped pair gets 1 - p.
printf 'Q: {prompt}\nA: {response_a}\nB: {response_b}\nBetter:' >"$T/pair"
printf '%s\n' '{"prompt":"1+1=","chosen":{"response":"2"},"rejected":{"response":"3 or so"}}' \
    '{"prompt":"2+2=","chosen":{"response":"4"},"rejected":{"response":"5"}}' >"$T/pairs"
score -J --judge "$T/m" --template "$T/pair" --pairwise <"$T/pairs" |
    recs to-tsv judge >"$T/p"
sed 's/"chosen"/"X"/; s/"rejected"/"chosen"/; s/"X"/"rejected"/' "$T/pairs" |
    score -J --judge "$T/m" --template "$T/pair" --pairwise --labels ' A, B' \
    --as j | recs to-tsv j >"$T/q"
score -J --judge "$T/m" --template "$T/pair" --pairwise --labels ' A, B' \
    <"$T/pairs" | recs to-tsv judge >"$T/p2"
paste "$T/p2" "$T/q" | awk '{ d = $1 + $2 - 1; if (d < 0) d = -d
    if (d > 1e-5 || $1 <= 0 || $1 >= 1) bad = 1 } END { exit bad }' ||
    fail "pairwise: judge(swapped) != 1 - judge"
[ "$(wc -l <"$T/p")" -eq 2 ] || fail "pairwise: two records"
# -b 1: every sequence its own pass, the same numbers.
score -J --judge "$T/m" --template "$T/pair" --pairwise -b 1 <"$T/pairs" |
    recs to-tsv judge >"$T/p1"
paste "$T/p" "$T/p1" | awk '{ d = $1 - $2; if (d < 0) d = -d
    if (d > 1e-6) bad = 1 } END { exit bad }' ||
    fail "pairwise: -b 1 changes the result"

# recs judge-data: each pair in both orders, the right label the
# answer (SFT) or the chosen side (--dpo); a judge trained on them learns
# to pick the chosen response, as score --judge measures it.
recs judge-data -J --template "$T/pair" "$T/pairs" >"$T/jd"
[ "$(grep -c . "$T/jd")" -eq 4 ] || fail "judge-data: two examples a pair"
sed -n 2p "$T/jd" | grep -q '"content":"Q: 1+1=\\nA: 3 or so\\nB: 2\\nBetter:"},{"role":"assistant","content":"B"}' ||
    fail "judge-data: the second order, answered B: $(sed -n 2p "$T/jd")"
recs judge-data -J --dpo --labels ' A, B' --template "$T/pair" "$T/pairs" |
    sed -n 1p | grep -q '"chosen":{"response":" A"},"rejected":{"response":" B"}' ||
    fail "judge-data --dpo: the chosen side"
ckpt init -o "$T/m64" --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 128 \
    --seed 3 >/dev/null
check "judge SFT" train-step -q -m "$T/m64" -o "$T/judge" --loss sft \
    --lr 3e-3 --batch-size 4 --epochs 100 --no-shuffle <"$T/jd" >/dev/null
score -J --judge "$T/judge" --template "$T/pair" --pairwise <"$T/pairs" |
    recs to-tsv judge | awk '{ if ($1 <= 0.9) bad = 1 } END { exit bad }' ||
    fail "a judge trained on judge-data does not pick the chosen responses"
expect_fail 1 'record 1: field "chosen.response": missing' \
    recs judge-data --template "$T/pair" "$T/in"
expect_fail 2 'two labels' recs judge-data --template "$T/pair" \
    --labels A "$T/pairs"

# Errors.
printf 'Q: {question}\n' >"$T/t2"
expect_fail 1 'record 1: field "question": missing' \
    score --judge "$T/m" --template "$T/t2" <"$T/in"
printf 'Q: {prompt\n}' >"$T/t3"
expect_fail 1 'line 1: a \{ without' score --judge "$T/m" --template "$T/t3" \
    <"$T/in"
printf 'Q: }\n' >"$T/t4"
expect_fail 1 'line 1: a \} without' score --judge "$T/m" --template "$T/t4" \
    <"$T/in"
expect_fail 1 'record 1: field "chosen.response": missing' \
    score --judge "$T/m" --template "$T/pair" --pairwise <"$T/in"
expect_fail 2 'two labels' score --judge "$T/m" --template "$T/pair" \
    --pairwise --labels A,B,C <"$T/pairs"
expect_fail 2 'a rating, a number' score --judge "$T/m" --template \
    "$T/point" --labels good,bad <"$T/in"
expect_fail 2 'needs --template' score --judge "$T/m" <"$T/in"
expect_fail 2 '--pairwise' score --logprob "$T/m" --pairwise <"$T/in"
expect_fail 1 'no-such' score --judge "$T/m" --template "$T/no-such" \
    <"$T/in"
finish
