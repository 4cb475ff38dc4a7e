#!/bin/sh
# recs: a record holds each key once, in its own map and in the maps
# inside it, in msgpack and in JSON: a duplicate is bad data naming the
# input, the record and the key, and the records before it are written.
. "${top_srcdir:-.}/tests/lib.sh"

printf '{"ok":1}\n{"reward":0,"reward":0}\n' >"$T/dup.jsonl"
expect_fail 1 '^recs: .*dup.jsonl: record 2: field "reward": duplicate key$' \
	recs from-json "$T/dup.jsonl"
check "JSON: the record before the duplicate is written" \
	test "$(recs to-json "$T/dup.jsonl" 2>/dev/null)" = '{"ok":1}'
# The same in msgpack: {"ok":1} {"reward":0,"reward":1}.
printf '\201\242ok\001\202\246reward\000\246reward\001' >"$T/dup.mpk"
expect_fail 1 '^recs: .*dup.mpk: record 2: field "reward": duplicate key$' \
	recs cat "$T/dup.mpk"
check "msgpack: the record before the duplicate is written" \
	test "$(recs to-json "$T/dup.mpk" 2>/dev/null)" = '{"ok":1}'
# Through any tool that reads records.
expect_fail 1 '^filter: stdin: record 2: field "reward": duplicate key$' \
	filter --where 'reward > 0' <"$T/dup.mpk"
# Nested maps, and maps in arrays, named by their path.
printf '{"id":"a","chosen":{"reward":1,"x":2,"reward":0}}\n' >"$T/nested.jsonl"
expect_fail 1 '^recs: stdin: record 1: field "chosen.reward": duplicate key$' \
	recs count <"$T/nested.jsonl"
printf '{"messages":[{"role":"user"},{"role":"a","content":"","role":"b"}]}\n' |
	recs from-json >"$T/arr.out" 2>"$T/err"
check "dup in an array's map: exit 1" test $? -eq 1
check "dup in an array's map: named" grep -qx \
	'recs: stdin: record 1: field "messages\[1\]\.role": duplicate key' "$T/err"
# Large maps (a hash, not a scan): the duplicate is found at any place.
awk 'BEGIN { printf "{"; for (i = 0; i < 500; i++) printf "\"k%d\":%d,", i, i; print "\"k321\":0}" }' >"$T/big.jsonl"
expect_fail 1 '^recs: stdin: record 1: field "k321": duplicate key$' recs count <"$T/big.jsonl"
awk 'BEGIN { printf "{"; for (i = 0; i < 500; i++) printf "%s\"k%d\":%d", i ? "," : "", i, i; print "}" }' >"$T/big2.jsonl"
check "a large map without duplicates" test "$(recs count <"$T/big2.jsonl")" = 1
# Keys that only look alike are different keys.
printf '{"a":1,"A":2,"a ":3,"":4,"\\u0061b":5,"ab\\u0000":6}\n' >"$T/alike.jsonl"
check "similar keys are not duplicates" test "$(recs count <"$T/alike.jsonl")" = 1
printf '{"":1,"":2}\n' >"$T/empty.jsonl"
expect_fail 1 '^recs: stdin: record 1: field "": duplicate key$' recs count <"$T/empty.jsonl"
finish
