#!/bin/sh
# pair: each strategy, ties, margins, groups of one, greedy baselines,
# interleaved and sorted groups, common fields, determinism, errors.
. "${top_srcdir:-.}/tests/lib.sh"

# want NAME ARGS...: pair -J ARGS on $T/in must print exactly $T/want.
want() {
	name=$1; shift
	if pair -J "$@" "$T/in" >"$T/got" 2>"$T/err"; then
		same "$name" "$T/want" "$T/got"
	else
		fail "$name: exit $?: $(cat "$T/err")"
	fi
}

# Group a: rewards 3, 1, 3, 2 (a tie at the top) and a greedy baseline;
# b: one sample; c: two equal samples.  a and c interleave.  "finish" is
# the same in all of a but stays per-sample; "t" differs so is per-sample.
cat >"$T/in" <<'E'
{"id":"a","prompt":"P","prompt_tokens":[1,2],"sample":0,"reward":3,"finish":"stop","t":0}
{"id":"c","prompt":"Q","sample":0,"reward":5}
{"id":"a","prompt":"P","prompt_tokens":[1,2],"sample":1,"reward":1,"finish":"stop","t":0}
{"id":"a","greedy":true,"prompt":"P","reward":9,"response":"g"}
{"id":"a","prompt":"P","prompt_tokens":[1,2],"sample":2,"reward":3,"finish":"stop","t":1}
{"id":"b","prompt":"R","sample":0,"reward":1}
{"id":"c","prompt":"Q","sample":1,"reward":5}
{"id":"a","prompt":"P","prompt_tokens":[1,2],"sample":3,"reward":2,"finish":"stop","t":0}
E

C='{"id":"a","prompt":"P","prompt_tokens":[1,2],'
S0='{"sample":0,"reward":3,"finish":"stop","t":0}'
S1='{"sample":1,"reward":1,"finish":"stop","t":0}'
S2='{"sample":2,"reward":3,"finish":"stop","t":1}'
S3='{"sample":3,"reward":2,"finish":"stop","t":0}'
p() { echo "$C\"chosen\":$1,\"rejected\":$2,\"margin\":$3}"; }

# best-worst: the earlier of the tied 3s against the 1; b and c give none.
p "$S0" "$S1" 2.0 >"$T/want"
want "best-worst"

# all: every pair with a margin, by rank (s0, s2, s3, s1); the tie s0/s2
# gives none.
{
	p "$S0" "$S3" 1.0; p "$S0" "$S1" 2.0
	p "$S2" "$S3" 1.0; p "$S2" "$S1" 2.0
	p "$S3" "$S1" 1.0
} >"$T/want"
want "all" --strategy all
# --min-margin 1 keeps only the margins of 2.
{ p "$S0" "$S1" 2.0; p "$S2" "$S1" 2.0; } >"$T/want"
want "all, min-margin 1" --strategy all --min-margin 1
want "all, min-margin 1.5" --strategy all --min-margin 1.5
: >"$T/want"
want "best-worst, min-margin 2" --min-margin 2
# A negative margin lets ties pair.
pair -J --strategy all --min-margin -1 "$T/in" >"$T/got"
check "ties pair below a negative margin" test "$(wc -l <"$T/got")" = 7

# adjacent: s0-s2 ties (none), s2-s3, s3-s1.
{ p "$S2" "$S3" 1.0; p "$S3" "$S1" 1.0; } >"$T/want"
want "adjacent" --strategy adjacent

# best-random: s0 against one of s3, s1 (never its tie s2).
for s in 0 1 2 3 4 5 6 7; do
	pair -J --strategy best-random --seed $s "$T/in" >"$T/got"
	grep -qxF "$(p "$S0" "$S3" 1.0)" "$T/got" && echo 3 >>"$T/seen"
	grep -qxF "$(p "$S0" "$S1" 2.0)" "$T/got" && echo 1 >>"$T/seen"
	check "best-random one pair" test "$(wc -l <"$T/got")" = 1
done
check "best-random draws both" test "$(sort -u "$T/seen" | wc -l)" = 2
pair -J --strategy best-random --seed 1 --min-margin 1 "$T/in" >"$T/got"
p "$S0" "$S1" 2.0 >"$T/want"
same "best-random respects the margin" "$T/want" "$T/got"

# Groups come out in order of first appearance.
cat >"$T/in" <<'E'
{"id":"y","reward":1}
{"id":"x","reward":1}
{"id":"x","reward":0}
{"id":"y","reward":0}
E
printf '%s\n' \
    '{"id":"y","chosen":{"reward":1},"rejected":{"reward":0},"margin":1.0}' \
    '{"id":"x","chosen":{"reward":1},"rejected":{"reward":0},"margin":1.0}' \
    >"$T/want"
want "interleaved groups"

# Common fields: equal in every sample; "x" differs in one, "z" is
# missing from one: both per-sample.  Byte-equal maps are common.
cat >"$T/in" <<'E'
{"id":"k","m":{"a":[1,2]},"x":1,"z":0,"reward":2,"ref_logprobs":[-1.5]}
{"id":"k","m":{"a":[1,2]},"x":1,"reward":1,"ref_logprobs":[-1.5]}
{"id":"k","m":{"a":[1,2]},"x":2,"z":0,"reward":0,"ref_logprobs":[-1.5]}
E
printf '%s\n' '{"id":"k","m":{"a":[1,2]},"chosen":{"x":1,"z":0,"reward":2,"ref_logprobs":[-1.5]},"rejected":{"x":2,"z":0,"reward":0,"ref_logprobs":[-1.5]},"margin":2.0}' >"$T/want"
want "common fields"

# Nested --by stays with its top-level field; other --group-by.
cat >"$T/in" <<'E'
{"q":1,"s":{"r":3},"prompt":"A"}
{"q":1,"s":{"r":4},"prompt":"A"}
E
printf '%s\n' '{"q":1,"prompt":"A","chosen":{"s":{"r":4}},"rejected":{"s":{"r":3}},"margin":1.0}' >"$T/want"
want "nested --by" --by s.r --group-by q

# --sorted streams: the same pairs on grouped input, a returning key
# starting a new group.
i=0
while [ $i -lt 30 ]; do
	j=0
	while [ $j -lt 6 ]; do
		echo "{\"id\":\"p$i\",\"sample\":$j,\"reward\":$(( (i * 5 + j * 7) % 4 ))}"
		j=$((j + 1))
	done
	i=$((i + 1))
done >"$T/many"
for st in best-worst best-random all adjacent; do
	pair -J --strategy $st --seed 9 "$T/many" >"$T/u"
	pair -J --strategy $st --seed 9 --sorted "$T/many" >"$T/s"
	same "$st --sorted" "$T/u" "$T/s"
done
printf '%s\n' '{"id":"a","reward":1}' '{"id":"b","reward":1}' \
    '{"id":"a","reward":0}' | pair -J --sorted >"$T/got"
check "--sorted: a returning key is a new group" test ! -s "$T/got"

# best-random depends on (seed, group) only: reversed group order, split
# across files, gives each group the same pair.
awk -F'"' '{ print $4 "\t" NR "\t" $0 }' "$T/many" | sort -t"$(printf '\t')" \
    -k1,1r -k2,2n | cut -f3- >"$T/rev"
head -50 "$T/rev" >"$T/rev1"
tail -n +51 "$T/rev" >"$T/rev2"
pair -J --strategy best-random --seed 4 "$T/many" | sort >"$T/a"
pair -J --strategy best-random --seed 4 "$T/rev1" "$T/rev2" | sort >"$T/b"
same "best-random independent of order and files" "$T/a" "$T/b"
pair -J --strategy best-random --seed 5 "$T/many" | sort >"$T/c"
check "best-random seeds differ" sh -c '! cmp -s "$1" "$2"' - "$T/a" "$T/c"

# msgpack in and out.
recs from-json "$T/many" | pair --strategy all | recs to-json >"$T/m1"
pair -J --strategy all "$T/many" >"$T/m2"
same "msgpack" "$T/m2" "$T/m1"

# Errors.
printf '%s\n' '{"id":"a","reward":1}' '{"id":"a","score":2}' >"$T/bad"
expect_fail 1 '^pair: .*bad: record 2: field "reward": missing' pair "$T/bad"
printf '%s\n' '{"id":"a","reward":[1]}' >"$T/bad"
expect_fail 1 'record 1: field "reward": expected number, got array$' pair "$T/bad"
printf '%s\n' '{"id":"a","reward":1}' '{"reward":2}' >"$T/bad"
expect_fail 1 'record 2: field "id": missing' pair "$T/bad"
# A greedy baseline needs no reward.
printf '%s\n' '{"id":"a","greedy":true}' | pair >/dev/null ||
    fail "greedy without reward"
expect_fail 2 'unknown strategy "worst"' pair --strategy worst
expect_fail 2 'usage: pair' pair --min-margin x
expect_fail 2 'usage: pair' pair --seed 1.5
expect_fail 2 'from-strings takes none' pair --from-strings --sorted
check "--help" sh -c 'pair --help | grep -q "^usage: pair"'

finish
