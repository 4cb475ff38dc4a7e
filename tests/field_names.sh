#!/bin/sh
# A malformed field name in an option (empty, or with an empty component:
# "a..b", ".a", "a.") is a usage error, status 2, naming the option, in
# every tool that takes one, as it is in --where.  And recs stats --by
# over many groups.
. "${top_srcdir:-.}/tests/lib.sh"

echo '{"id":"a","reward":1}' >"$T/one.jsonl"
for opt in --by --group-by --r2; do
	for name in 'a..b' '' '.a' 'a.'; do
		expect_fail 2 "^filter: $opt: malformed field name \"$name\"\$" \
			filter "$opt" "$name" "$T/one.jsonl"
	done
done
for opt in --by --group-by; do
	expect_fail 2 "^pair: $opt: malformed field name \"a..b\"\$" \
		pair "$opt" a..b "$T/one.jsonl"
done
expect_fail 2 '^recs: stats: malformed field name "a\.\.b"$' \
	recs stats a..b <"$T/one.jsonl"
expect_fail 2 '^recs: stats: --by: malformed field name ""$' \
	recs stats --by "" <"$T/one.jsonl"
# A well-formed dotted path still works.
echo '{"id":"a","chosen":{"reward":2}}' | recs stats chosen.reward >"$T/s" 2>&1
check "recs stats chosen.reward" grep -q 'chosen.reward' "$T/s"

# 3000 groups, each seen twice: one stats record per group, in first-seen
# order, with its count.
awk 'BEGIN { for (r = 0; r < 2; r++) for (i = 0; i < 3000; i++)
	printf "{\"g\":%d,\"x\":%d}\n", i, i }' >"$T/many.jsonl"
recs stats -J --by g x <"$T/many.jsonl" >"$T/st"
check "stats --by: 3000 groups" test "$(wc -l <"$T/st")" = 3000
check "stats --by: first group first" \
	sh -c "head -n 1 '$T/st' | grep -q '\"g\":0,'"
check "stats --by: last group last" \
	sh -c "tail -n 1 '$T/st' | grep -q '\"g\":2999,'"
finish
