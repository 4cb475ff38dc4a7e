#!/bin/sh
# filter: every strategy on hand-made groups, ties, groups of one, greedy
# baselines, interleaved groups, weights, determinism, and errors.
. "${top_srcdir:-.}/tests/lib.sh"

# want NAME ARGS...: filter -J ARGS on $T/in must print exactly $T/want.
want() {
	name=$1; shift
	if filter -J "$@" "$T/in" >"$T/got" 2>"$T/err"; then
		same "$name" "$T/want" "$T/got"
	else
		fail "$name: exit $?: $(cat "$T/err")"
	fi
}

# Group a: four samples with a tie at the top and a greedy baseline; group
# b: one sample; group c: two equal samples.  Groups a and c interleave.
cat >"$T/in" <<'E'
{"id":"a","sample":0,"reward":0.5}
{"id":"a","sample":1,"reward":0.9,"x":[1,{"y":2}]}
{"id":"c","sample":0,"reward":2}
{"id":"a","sample":2,"reward":0.1}
{"id":"a","greedy":true,"response":"g"}
{"id":"a","sample":3,"reward":0.9}
{"id":"c","sample":1,"reward":2}
{"id":"b","sample":0,"reward":-1}
E

# all, with nothing group-level: streams in input order.
cp "$T/in" "$T/want"
want "keep all streams"

# best: a's tie at 0.9 goes to the earlier sample; greedy passes; groups
# come out in order of first appearance, members in input order.
cat >"$T/want" <<'E'
{"id":"a","sample":1,"reward":0.9,"x":[1,{"y":2}]}
{"id":"a","greedy":true,"response":"g"}
{"id":"c","sample":0,"reward":2}
{"id":"b","sample":0,"reward":-1}
E
want "best" --keep best

cat >"$T/want" <<'E'
{"id":"a","sample":2,"reward":0.1}
{"id":"a","greedy":true,"response":"g"}
{"id":"c","sample":1,"reward":2}
{"id":"b","sample":0,"reward":-1}
E
want "worst" --keep worst

cat >"$T/want" <<'E'
{"id":"a","sample":1,"reward":0.9,"x":[1,{"y":2}]}
{"id":"a","sample":2,"reward":0.1}
{"id":"a","greedy":true,"response":"g"}
{"id":"c","sample":0,"reward":2}
{"id":"c","sample":1,"reward":2}
{"id":"b","sample":0,"reward":-1}
E
want "best-worst" --keep best-worst

# top:2 takes both of a's 0.9s; bottom:2 the two lowest.
cat >"$T/want" <<'E'
{"id":"a","sample":1,"reward":0.9,"x":[1,{"y":2}]}
{"id":"a","greedy":true,"response":"g"}
{"id":"a","sample":3,"reward":0.9}
{"id":"c","sample":0,"reward":2}
{"id":"c","sample":1,"reward":2}
{"id":"b","sample":0,"reward":-1}
E
want "top:2" --keep top:2
cat >"$T/want" <<'E'
{"id":"a","sample":0,"reward":0.5}
{"id":"a","sample":2,"reward":0.1}
{"id":"a","greedy":true,"response":"g"}
{"id":"c","sample":0,"reward":2}
{"id":"c","sample":1,"reward":2}
{"id":"b","sample":0,"reward":-1}
E
want "bottom:2" --keep bottom:2
# More than a group has: everything, grouped.
cat >"$T/want" <<'E'
{"id":"a","sample":0,"reward":0.5}
{"id":"a","sample":1,"reward":0.9,"x":[1,{"y":2}]}
{"id":"a","sample":2,"reward":0.1}
{"id":"a","greedy":true,"response":"g"}
{"id":"a","sample":3,"reward":0.9}
{"id":"c","sample":0,"reward":2}
{"id":"c","sample":1,"reward":2}
{"id":"b","sample":0,"reward":-1}
E
want "top:9" --keep top:9
want "random:9" --keep random:9

# --drop-uniform: c (all equal) and b (one member) go; a's greedy stays.
cat >"$T/want" <<'E'
{"id":"a","sample":0,"reward":0.5}
{"id":"a","sample":1,"reward":0.9,"x":[1,{"y":2}]}
{"id":"a","sample":2,"reward":0.1}
{"id":"a","greedy":true,"response":"g"}
{"id":"a","sample":3,"reward":0.9}
E
want "drop-uniform" --drop-uniform
# ... and a group of nothing but a greedy baseline still passes it.
printf '{"id":"g","greedy":true}\n' | filter -J --drop-uniform >"$T/got"
printf '{"id":"g","greedy":true}\n' >"$T/want"
same "lone greedy baseline" "$T/want" "$T/got"

# best-random: the best plus exactly one other ranked member.
filter -J --keep best-random --seed 3 "$T/in" >"$T/got"
check "best-random keeps best" grep -q '"sample":1,"reward":0.9' "$T/got"
check "best-random keeps greedy" grep -q '"greedy":true' "$T/got"
check "best-random keeps 2 of a" test "$(grep -c '"id":"a","sample"' "$T/got")" = 2
check "best-random: group of one" grep -q '"id":"b"' "$T/got"
check "best-random: c keeps 2" test "$(grep -c '"id":"c"' "$T/got")" = 2

# random:K is a deterministic function of (seed, group): the same whatever
# the other groups are, their order, and how the input is split.
i=0
while [ $i -lt 40 ]; do
	j=0
	while [ $j -lt 8 ]; do
		echo "{\"id\":\"p$i\",\"sample\":$j,\"reward\":$(( (i * 7 + j * 3) % 5 ))}"
		j=$((j + 1))
	done
	i=$((i + 1))
done >"$T/many"
# The same records, the groups interleaved in reverse order (each group's
# members still in order), split across two files.
j=0
while [ $j -lt 8 ]; do
	i=39
	while [ $i -ge 0 ]; do
		echo "{\"id\":\"p$i\",\"sample\":$j,\"reward\":$(( (i * 7 + j * 3) % 5 ))}"
		i=$((i - 1))
	done
	j=$((j + 1))
done >"$T/mixed"
head -150 "$T/mixed" >"$T/mixed1"
tail -n +151 "$T/mixed" >"$T/mixed2"
for s in 1 2; do
	for k in random:3 best-random; do
		filter -J --keep $k --seed $s "$T/many" >"$T/r1"
		filter -J --keep $k --seed $s "$T/many" >"$T/r2"
		same "$k seed $s reproducible" "$T/r1" "$T/r2"
		filter -J --keep $k --seed $s "$T/mixed1" "$T/mixed2" |
		    sort >"$T/r3"
		sort "$T/r1" >"$T/r1s"
		same "$k seed $s independent of order and files" "$T/r1s" "$T/r3"
		filter -J --keep $k --seed $s --sorted "$T/many" >"$T/r4"
		same "$k seed $s --sorted" "$T/r1" "$T/r4"
	done
done
# ... and of the input's format: a key hashes the same from JSON or msgpack.
recs from-json "$T/many" | filter --keep random:3 --seed 1 | recs to-json >"$T/r5"
filter -J --keep random:3 --seed 1 "$T/many" >"$T/r6"
same "random:3 from msgpack" "$T/r6" "$T/r5"
check "random:3 keeps 3 per group" test "$(wc -l <"$T/r1")" -ge 40
filter -J --keep random:3 --seed 1 "$T/many" >"$T/s1"
filter -J --keep random:3 --seed 2 "$T/many" >"$T/s2"
check "seeds differ" sh -c '! cmp -s "$1" "$2"' - "$T/s1" "$T/s2"
check "random:3: 3 per group" test "$(wc -l <"$T/s1")" = 120

# --sorted on interleaved input: a key that comes back is a new group.
printf '%s\n' '{"id":"a","reward":1}' '{"id":"b","reward":5}' \
    '{"id":"a","reward":2}' | filter -J --sorted --keep best >"$T/got"
check "--sorted: returning key is a new group" test "$(wc -l <"$T/got")" = 3

# --weight pow:2 over a's kept samples (0.5, 0.9, 0.1, 0.9):
# |r|^2 = .25 .81 .01 .81, mean .47.
printf '%s\n' '{"id":"a","reward":0.5}' '{"id":"a","reward":-0.9,"weight":7}' \
    '{"id":"a","reward":0.1}' '{"id":"a","greedy":true}' \
    '{"id":"z","reward":0}' '{"id":"z","reward":0}' >"$T/w"
filter -J --weight pow:2 "$T/w" >"$T/got"
/usr/bin/python3 - "$T/got" <<'E' || fail "weights"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
mean = (.25 + .81 + .01) / 3
want = [.25 / mean, .81 / mean, .01 / mean, None, 1, 1]
got = [r.get("weight") for r in recs]
assert len(got) == len(want), got
for g, w in zip(got, want):
    assert (g is None) == (w is None) and (w is None or abs(g - w) < 1e-12), (got, want)
E
# Weights over what the strategy keeps: best-worst of a is 0.5 and -0.9,
# |r| mean 0.7; the old weight is replaced.
filter -J --keep best-worst --weight pow:1 "$T/w" | head -2 >"$T/got"
printf '%s\n' '{"id":"a","reward":0.5,"weight":0.7142857142857143}' \
    '{"id":"a","reward":-0.9,"weight":1.2857142857142858}' >"$T/want"
same "weights of best-worst" "$T/want" "$T/got"

# Other field names; nested --by; boolean --by; any key type.
printf '%s\n' '{"q":1,"s":{"r":3}}' '{"q":1,"s":{"r":4}}' '{"q":[2],"s":{"r":0}}' |
    filter -J --group-by q --by s.r --keep best >"$T/got"
printf '%s\n' '{"q":1,"s":{"r":4}}' '{"q":[2],"s":{"r":0}}' >"$T/want"
same "nested --by, other --group-by" "$T/want" "$T/got"
printf '%s\n' '{"id":1,"ok":false}' '{"id":1,"ok":true}' |
    filter -J --by ok --keep best >"$T/got"
printf '{"id":1,"ok":true}\n' >"$T/want"
same "boolean --by" "$T/want" "$T/got"

# msgpack in and out, and zstd, give the same records.
recs from-json "$T/in" >"$T/in.mpk"
filter --keep best-worst "$T/in.mpk" | recs to-json >"$T/m1"
filter -J --keep best-worst "$T/in" >"$T/m2"
same "msgpack input" "$T/m2" "$T/m1"
filter -z --keep best-worst "$T/in.mpk" | recs to-json >"$T/m3"
same "zstd output" "$T/m2" "$T/m3"

# Data errors: input, record number and field.
printf '%s\n' '{"id":"a","reward":1}' '{"id":"a","rwd":2}' >"$T/bad"
expect_fail 1 '^filter: .*bad: record 2: field "reward": missing' \
	filter --keep best "$T/bad"
expect_fail 1 'field "score": missing' filter --by score --keep best "$T/bad"
printf '%s\n' '{"id":"a","reward":"high"}' >"$T/bad2"
expect_fail 1 '^filter: .*bad2: record 1: field "reward": expected number, got string$' \
	filter --keep best "$T/bad2"
printf '%s\n' '{"reward":1}' >"$T/bad3"
expect_fail 1 '^filter: .*bad3: record 1: field "id": missing' \
	filter --keep best "$T/bad3"
printf '%s\n' '{"id":"a","reward":1,"greedy":"yes"}' >"$T/bad4"
expect_fail 1 'record 1: field "greedy": expected boolean' filter --keep best "$T/bad4"
printf '%s\n' '{"id":"a","reward":1e200}' '{"id":"a","reward":1}' >"$T/bad5"
expect_fail 1 'bad5: record 1: field "weight": \|r\|\^2 overflows' \
	filter --weight pow:2 "$T/bad5"
# No group-level option: a missing --by field does not matter.
check "keep all needs no reward" sh -c 'filter "$1" >/dev/null' - "$T/bad"

# Usage errors.
expect_fail 2 'unknown strategy "bestest"' filter --keep bestest
expect_fail 2 'usage: filter' filter --keep top:0
expect_fail 2 'usage: filter' filter --keep top:x
expect_fail 2 'expected pow:K' filter --weight exp:2
expect_fail 2 'usage: filter' filter --weight pow:-1
expect_fail 2 '--report needs --r2' filter --report "$T/r"
expect_fail 2 'usage: filter' filter --bins 0 --r2 c
expect_fail 2 'usage: filter' filter --seed -1
expect_fail 2 'usage: filter' filter --nosuch
check "--help" sh -c 'filter --help | grep -q "^usage: filter"'

finish
