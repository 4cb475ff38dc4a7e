#!/bin/sh
# filter --sorted and pair --sorted: a bad record after a complete group
# ends the run with its message, but only after that group is written
# (prefpipe(7): everything read before a bad record is written).
. "${top_srcdir:-.}/tests/lib.sh"

printf '%s\n' '{"id":"a","reward":1}' '{"id":"a","reward":2}' \
    '{"id":"b","reward":"x"}' >"$T/in.jsonl"

expect_fail 1 '^filter: .*in.jsonl: record 3: field "reward": expected number, got string$' \
	filter --sorted --keep best "$T/in.jsonl"
filter -J --sorted --keep best "$T/in.jsonl" >"$T/f" 2>/dev/null
check "filter --sorted: the group before the bad record is written" \
	test "$(cat "$T/f")" = '{"id":"a","reward":2}'

expect_fail 1 '^pair: .*in.jsonl: record 3: field "reward": expected number, got string$' \
	pair --sorted "$T/in.jsonl"
pair -J --sorted "$T/in.jsonl" >"$T/p" 2>/dev/null
check "pair --sorted: the group before the bad record is paired" \
	test "$(recs count "$T/p")" = 1

# A bad record inside a group still takes only that group down.
printf '%s\n' '{"id":"a","reward":1}' '{"id":"b","reward":1}' \
    '{"id":"b","reward":"x"}' >"$T/mid.jsonl"
filter -J --sorted --keep best "$T/mid.jsonl" >"$T/m" 2>/dev/null
check "filter --sorted: the complete group a is written, b is not" \
	test "$(cat "$T/m")" = '{"id":"a","reward":1}'
finish
