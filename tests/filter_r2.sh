#!/bin/sh
# filter --r2: R-squared of reward against a ground truth, binned and per
# sample, checked against values worked by hand.
. "${top_srcdir:-.}/tests/lib.sh"

# Two groups, interleaved; a greedy baseline that must not count.
cat >"$T/in" <<'E'
{"id":"g1","reward":1,"correct":false}
{"id":"g2","reward":4,"correct":0}
{"id":"g1","reward":2,"correct":true}
{"id":"g2","reward":5,"correct":1}
{"id":"g1","reward":3,"correct":false}
{"id":"g2","reward":6,"correct":1.0}
{"id":"g1","greedy":true,"correct":true}
E

# All six, three bins: (1.5, .5) (3.5, 0) (5.5, 1).
#   bins:    Sxy = 1, Sxx = 8, Syy = .5          R2 = 1 / 4 = .25
#   samples: Sxy = 2.5, Sxx = 17.5, Syy = 1.5    R2 = 6.25 / 26.25
filter --r2 correct --bins 3 "$T/in" >"$T/out" 2>"$T/err"
check "r2 exit" test $? = 0
echo 'filter: r2: by=reward truth=correct keep=all n=6 bins=3 r2_binned=0.25 r2_samples=0.238095' >"$T/want"
same "r2, keep all" "$T/want" "$T/err"
check "r2 passes the records" test "$(recs count "$T/out")" = 7

# best-worst keeps rewards 1, 3 (g1) and 4, 6 (g2), truths 0 0 0 1.
#   bins of 2: (2, 0) (5, .5): two points, R2 = 1
#   samples: Sxy = 2.5, Sxx = 13, Syy = .75      R2 = 6.25 / 9.75
filter --keep best-worst --r2 correct --bins 2 --report "$T/rep" "$T/in" \
    >/dev/null 2>"$T/err"
echo 'filter: r2: by=reward truth=correct keep=best-worst n=4 bins=2 r2_binned=1 r2_samples=0.641026' >"$T/want"
same "r2, best-worst" "$T/want" "$T/err"
recs to-json "$T/rep" >"$T/rep.json"
/usr/bin/python3 - "$T/rep.json" <<'E' || fail "report record"
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
assert len(r) == 1, r
r = r[0]
assert list(r) == ["strategy", "by", "truth", "n", "bins", "r2_binned",
    "r2_samples"], r
assert r["strategy"] == "best-worst" and r["by"] == "reward", r
assert r["truth"] == "correct" and r["n"] == 4 and r["bins"] == 2, r
assert abs(r["r2_binned"] - 1) < 1e-12, r
assert abs(r["r2_samples"] - 6.25 / 9.75) < 1e-12, r
E
# -J writes the report as JSON too.
filter -J --r2 correct --report "$T/rep2" "$T/in" >/dev/null 2>&1
check "report as JSON" grep -q '^{"strategy":"all",' "$T/rep2"

# Default 10 bins with 6 records: one bin per record, so both agree.
filter --r2 correct "$T/in" 2>&1 >/dev/null |
    grep -q 'bins=6 r2_binned=0.238095 r2_samples=0.238095$' ||
    fail "fewer records than bins"

# A constant truth: undefined, nan on stderr, null in the report.
printf '%s\n' '{"id":1,"reward":1,"ok":1}' '{"id":1,"reward":2,"ok":1}' |
    filter -J --r2 ok --report "$T/rep3" 2>"$T/err" >/dev/null
check "nan printed" grep -q 'r2_binned=nan r2_samples=nan$' "$T/err"
check "null reported" grep -q '"r2_binned":null,"r2_samples":null' "$T/rep3"
# Nothing kept at all.
printf '' | filter --r2 ok 2>"$T/err"
check "empty input" grep -q 'n=0 bins=0 r2_binned=nan' "$T/err"

# Errors.
printf '%s\n' '{"id":1,"reward":1,"ok":1}' '{"id":1,"reward":2}' >"$T/bad"
expect_fail 1 'bad: record 2: field "ok": missing' filter --r2 ok "$T/bad"
printf '%s\n' '{"id":1,"reward":1,"ok":"yes"}' >"$T/bad"
expect_fail 1 'record 1: field "ok": expected number or boolean, got string' \
	filter --r2 ok "$T/bad"
# A dropped record's truth is never looked at.
printf '%s\n' '{"id":1,"reward":1,"ok":1}' '{"id":1,"reward":2}' >"$T/bad"
check "truth of dropped records" sh -c \
	'filter --keep worst --r2 ok "$1" >/dev/null 2>&1' - "$T/bad"

finish
