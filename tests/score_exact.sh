#!/bin/sh
# score --exact: the verifier, --extract patterns, --answer-field, --as,
# pair records, and every missing-field, wrong-type and usage error.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

cat >"$T/in" <<'E'
{"id":1,"prompt":"2+2?","response":" 4 \n","answer":"4"}
{"id":2,"prompt":"2+2?","response":"The answer is 4.","answer":" 4"}
{"id":3,"prompt":"x","response":"#### 12\nno, #### 13\n","answer":"13","gold":"12"}
{"id":4,"prompt":"x","response":"","answer":""}
E

# Plain comparison: trimmed on both sides, otherwise exact.
score --exact -J "$T/in" >"$T/got" || fail "score --exact"
cat >"$T/want" <<'E'
{"id":1,"prompt":"2+2?","response":" 4 \n","answer":"4","reward":1.0}
{"id":2,"prompt":"2+2?","response":"The answer is 4.","answer":" 4","reward":0.0}
{"id":3,"prompt":"x","response":"#### 12\nno, #### 13\n","answer":"13","gold":"12","reward":0.0}
{"id":4,"prompt":"x","response":"","answer":"","reward":1.0}
E
same "exact" "$T/want" "$T/got"

# --extract: the last match, its group 1 when it has one; no match is 0.
score --exact --extract '####\s*(\d+)' --as correct "$T/in" |
    recs to-tsv id correct >"$T/got" || fail "--extract group"
printf '1\t0.0\n2\t0.0\n3\t1.0\n4\t0.0\n' >"$T/want"
same "extract group 1" "$T/want" "$T/got"
score --exact --extract '\d+' "$T/in" | recs to-tsv reward >"$T/got" ||
    fail "--extract whole match"
printf '1.0\n1.0\n1.0\n0.0\n' >"$T/want"
same "extract whole match" "$T/want" "$T/got"
# A group that takes no part in the last match extracts "".
score --exact --extract '(a)?b' "$T/in" </dev/null >/dev/null ||
    fail "optional group"
printf '%s\n' '{"response":"ab then b","answer":""}' |
    score --exact --extract '(a)?b' | recs to-tsv reward >"$T/got"
printf '1.0\n' >"$T/want"
same "unset group" "$T/want" "$T/got"
# Empty matches do not stall the scan; UTF-8 and invalid bytes are fine.
printf '%s\n' '{"response":"x=é; y=ü","answer":"ü"}' \
    '{"response":"abc","answer":""}' |
    score --exact --extract '=(\S*)|z*' | recs to-tsv reward >"$T/got"
printf '0.0\n1.0\n' >"$T/want"
same "empty matches" "$T/want" "$T/got"
printf '%s\n' '{"response":"x=é; y=ü","answer":"ü"}' |
    score --exact --extract '=(\S)' | recs to-tsv reward >"$T/got"
printf '1.0\n' >"$T/want"
same "UTF-8 characters" "$T/want" "$T/got"
printf '{"response":"\\u00ff 7","answer":"7"}\n' |
    score --exact --extract '\d' | recs to-tsv reward >"$T/got"
same "non-ASCII response" "$T/want" "$T/got"
# Boxed answers, as math verifiers write them.
printf '%s\n' '{"response":"so \\boxed{3} or \\boxed{42}","answer":"42"}' |
    score --exact --extract '\\boxed\{([^}]*)\}' | recs to-tsv reward \
    >"$T/got"
same "boxed" "$T/want" "$T/got"

# --answer-field names another field.
sed -n 3p "$T/in" | score --exact --answer-field gold \
    --extract '####\s*(\d+)' | recs to-tsv id reward >"$T/got"
printf '3\t0.0\n' >"$T/want"
same "answer-field" "$T/want" "$T/got"

# Pair records: both sides against the shared answer; msgpack in and out.
printf '%s\n' '{"prompt":"q","answer":"4","chosen":{"response":"4"},"rejected":{"response":"5","x":1}}' |
    recs from-json | score --exact | recs to-json >"$T/got"
cat >"$T/want" <<'E'
{"prompt":"q","answer":"4","chosen":{"response":"4","reward":1.0},"rejected":{"response":"5","x":1,"reward":0.0}}
E
same "pair" "$T/want" "$T/got"

# Scorers chain: a second score keeps the first.
score --exact --as correct "$T/in" | score --exact --extract '\d+' |
    recs to-tsv correct reward | head -2 >"$T/got"
printf '1.0\t1.0\n0.0\t1.0\n' >"$T/want"
same "chained" "$T/want" "$T/got"

# Records of many fields (from JSON and from msgpack) gain the field.
"$PYTHON3" -c 'import json
for n in range(6, 12):
    d = {"response": "x", "answer": "x"}
    d.update(("k%d" % i, i) for i in range(n))
    print(json.dumps(d))' >"$T/wide"
recs from-json "$T/wide" | score --exact | recs to-json >"$T/got" ||
    fail "wide records"
score --exact -J "$T/wide" >"$T/got2" || fail "wide records from JSON"
"$PYTHON3" - "$T/wide" "$T/got" "$T/got2" <<'E' || fail "wide records"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
for f in sys.argv[2:]:
    b = [json.loads(l) for l in open(f)]
    assert len(a) == len(b)
    for x, y in zip(a, b):
        x["reward"] = 1.0
        assert x == y and list(x) == list(y), (x, y)
E

# -z writes zstd.
score --exact -z "$T/in" | recs count >"$T/got"
echo 4 >"$T/want"
same "zstd" "$T/want" "$T/got"

# Data errors name the input, the record and the field: status 1.
printf '%s\n' '{"response":"4","answer":"4"}' '{"response":"4"}' >"$T/bad"
expect_fail 1 '^score: .*/bad: record 2: field "answer": missing$' \
    score --exact "$T/bad"
printf '%s\n' '{"answer":"4"}' >"$T/bad"
expect_fail 1 'record 1: field "response": missing' score --exact "$T/bad"
printf '%s\n' '{"response":4,"answer":"4"}' >"$T/bad"
expect_fail 1 'record 1: field "response": expected string, got integer' \
    score --exact "$T/bad"
printf '%s\n' '{"response":"4","answer":4}' >"$T/bad"
expect_fail 1 'record 1: field "answer": expected string, got integer' \
    score --exact "$T/bad"
printf '%s\n' '{"response":"4","ans":"4"}' >"$T/bad"
expect_fail 1 'record 1: field "answer": missing' score --exact "$T/bad"
expect_fail 1 'record 1: field "gold": missing' \
    score --exact --answer-field gold "$T/bad"
printf '%s\n' '{"answer":"4","chosen":{"response":"4"},"rejected":{"text":"5"}}' \
    >"$T/bad"
expect_fail 1 'record 1: field "rejected.response": missing' \
    score --exact "$T/bad"
printf '%s\n' '{"answer":"4","chosen":{"response":"4"}}' >"$T/bad"
expect_fail 1 'record 1: field "rejected": missing' score --exact "$T/bad"
printf '%s\n' '{"answer":"4","chosen":"4","rejected":{"response":"5"}}' \
    >"$T/bad"
expect_fail 1 'record 1: field "chosen": expected map, got string' \
    score --exact "$T/bad"
printf '%s\n' '{"answer":"4","chosen":{"response":[1]},"rejected":{"response":"5"}}' \
    >"$T/bad"
expect_fail 1 'record 1: field "chosen.response": expected string, got array' \
    score --exact "$T/bad"
printf 'not json\n' >"$T/bad"
expect_fail 1 'score: ' score --exact "$T/bad"
expect_fail 1 'score: .*nonexistent' score --exact "$T/nonexistent"
# Output holds whole records only: the good record before a bad one.
printf '%s\n' '{"response":"4","answer":"4"}' '{"response":"4"}' >"$T/bad"
score --exact -J "$T/bad" >"$T/got" 2>/dev/null
check "whole records before an error" test "$(wc -l <"$T/got")" -le 1

# Usage errors: status 2.
expect_fail 2 'no scorer' score
expect_fail 2 'one scorer per invocation' score --exact --cmd cat
expect_fail 2 '--extract: missing closing parenthesis' \
    score --exact --extract '(' "$T/in"
expect_fail 2 '--extract does not apply to --cmd' \
    score --cmd cat --extract x
expect_fail 2 '--answer-field does not apply' score --cmd cat \
    --answer-field x
expect_fail 2 '--details does not apply to --exact' score --exact --details
expect_fail 2 '--batch-tokens does not apply to --exact' \
    score --exact -b 10
expect_fail 2 '--batch-tokens: not an integer' score --logprob x -b ten
expect_fail 2 '--as: empty' score --exact --as ''
expect_fail 2 'usage:' score --exact --bogus
score --help >"$T/got" || fail "--help"
check "help names every scorer" grep -q -- '--flr' "$T/got"

# A pattern that hits PCRE2's match limit on one record's response names
# that record and field, and the records before it are written.
printf '%s\n' '{"id":"a","response":"c","answer":"c"}' \
    '{"id":"b","response":"aaaaaaaaaaaaaaaaaaaaaaaab","answer":"1"}' >"$T/lim.jsonl"
expect_fail 1 '^score: .*lim.jsonl: record 2: field "response": --extract: match limit exceeded$' \
	score --exact --extract '(*LIMIT_MATCH=1000)(?:a|a)*c|\d' "$T/lim.jsonl"
score -J --exact --extract '(*LIMIT_MATCH=1000)(?:a|a)*c|\d' "$T/lim.jsonl" \
    >"$T/lim.out" 2>/dev/null
check "match limit: the record before is written" \
	test "$(cat "$T/lim.out")" = '{"id":"a","response":"c","answer":"c","reward":1.0}'

finish
