#!/bin/sh
# recs: the limits of the record codec, the same in msgpack and JSON:
# nesting depth (32 levels, the record's map counted), and counts in
# msgpack headers that the bytes cannot hold.
. "${top_srcdir:-.}/tests/lib.sh"

# nest N INNER: a record {"a": [[...INNER...]]} of N levels in all.
nest() {
	awk -v n="$1" -v inner="$2" 'BEGIN {
		s = "{\"a\":"; for (i = 2; i <= n; i++) s = s "["; s = s inner
		for (i = 2; i <= n; i++) s = s "]"; print s "}" }'
}

# 32 levels: JSON -> msgpack -> JSON gives the same text, and so does
# msgpack -> msgpack re-encoded (recs cat keeps the bytes; head -J does not).
nest 32 1 >"$T/d32.jsonl"
recs from-json "$T/d32.jsonl" >"$T/d32.mpk"
check "32 levels: from-json" test -s "$T/d32.mpk"
recs to-json "$T/d32.mpk" >"$T/d32.back"
same "32 levels: msgpack reads back" "$T/d32.jsonl" "$T/d32.back"
recs cat "$T/d32.mpk" | recs count >"$T/n"
check "32 levels: re-encoded msgpack reads back" test "$(cat "$T/n")" = 1
# Empty containers count; a bin value does not.
nest 32 '[]' >"$T/d33e.jsonl"
expect_fail 1 '^recs: .*d33e.jsonl: record 1: invalid JSON at line 1, column 37: nesting deeper than 32 levels$' \
	recs from-json "$T/d33e.jsonl"
nest 32 '{"$bin":"AAEC"}' >"$T/bin.jsonl"
recs from-json "$T/bin.jsonl" | recs to-json >"$T/bin.back"
same "a bin at level 33 is no container" "$T/bin.jsonl" "$T/bin.back"

# 33 levels: refused by from-json, naming the record; the one before is
# written.  (Before: JSON took 512 levels and msgpack could not read
# them back.)
{ echo '{"ok":1}'; nest 33 1; } >"$T/d33.jsonl"
expect_fail 1 '^recs: .*d33.jsonl: record 2: invalid JSON at line 2, column 37: nesting deeper than 32 levels$' \
	recs from-json "$T/d33.jsonl"
recs from-json "$T/d33.jsonl" 2>/dev/null | recs to-json >"$T/d33.out"
check "the record before the deep one is written" test "$(cat "$T/d33.out")" = '{"ok":1}'

# 33 levels of msgpack, built by hand: {"a": [[[...nil...]]]}.
mp_deep() {
	printf '\201\241a'
	i=2; while [ $i -le "$1" ]; do printf '\221'; i=$((i + 1)); done
	printf '\300'
}
{ printf '\201\242ok\001'; mp_deep 33; } >"$T/d33.mpk"
expect_fail 1 '^recs: .*d33.mpk: record 2: nesting deeper than 32 levels$' \
	recs to-json "$T/d33.mpk"
check "msgpack: the record before the deep one is written" \
	test "$(recs to-json "$T/d33.mpk" 2>/dev/null)" = '{"ok":1}'
mp_deep 32 >"$T/d32b.mpk"
check "msgpack: 32 levels read" test "$(recs count "$T/d32b.mpk")" = 1
# A deep record split across reads: the walk resumes where it stopped.
{ printf '\201\241b\306\000\001\000\000'; head -c 65536 /dev/zero; mp_deep 32;
  mp_deep 33; } >"$T/split.mpk"
expect_fail 1 '^recs: .*split.mpk: record 3: nesting deeper than 32 levels$' \
	recs count "$T/split.mpk"

# A tool that nests what it read one level deeper (pair puts each side in
# "chosen" and "rejected") refuses to write what could not be read back,
# naming the output record, in msgpack and in JSON; the pair before it is
# written.
deep=$(nest 32 1 | sed 's/^{"a":\(.*\)}$/\1/')
deep2=$(echo "$deep" | sed 's/1/2/')
cat >"$T/sides.jsonl" <<END
{"id":"a","reward":1,"response":"x","x":1}
{"id":"a","reward":0,"response":"y","x":2}
{"id":"b","reward":1,"response":"x","x":$deep}
{"id":"b","reward":0,"response":"y","x":$deep2}
END
for j in "" -J; do
	# shellcheck disable=SC2086
	expect_fail 1 '^pair: stdout: record 2: field "chosen": nesting deeper than 32 levels$' \
		pair $j "$T/sides.jsonl"
	# shellcheck disable=SC2086
	pair $j "$T/sides.jsonl" 2>/dev/null | recs to-json >"$T/pairs"
	check "pair $j: the pair before is written" test "$(grep -c '"id":"a"' "$T/pairs")" = 1
done

# msgpack headers claiming 2^32-1 items, with a few bytes or none after
# them: a data error, exit 1, in the plain and in the sanitizer build,
# not an attempt to allocate 100 GB (which a sanitizer aborts on).
for h in '\335\377\377\377\377' '\337\377\377\377\377' '\334\377\377' '\336\377\377'; do
	{ printf '\201\242ok\001'; printf '\201\241a'; printf "$h"; printf '\001\002\003'; } >"$T/huge.mpk"
	expect_fail 1 '^recs: .*huge.mpk: record 2: truncated msgpack at end of input$' \
		recs to-json "$T/huge.mpk"
	check "huge count: the record before is written" \
		test "$(recs to-json "$T/huge.mpk" 2>/dev/null)" = '{"ok":1}'
done
printf '\337\377\377\377\377\241a' >"$T/hugemap.mpk"
expect_fail 1 '^recs: .*hugemap.mpk: record 1: truncated msgpack at end of input$' \
	recs count "$T/hugemap.mpk"
# Strings, bins and exts claiming 4 GB: the same.
for h in '\333\377\377\377\377' '\306\377\377\377\377' '\311\377\377\377\377\001'; do
	{ printf '\201\241a'; printf "$h"; printf 'xyz'; } >"$T/hugestr.mpk"
	expect_fail 1 '^recs: .*hugestr.mpk: record 1: truncated msgpack at end of input$' \
		recs count "$T/hugestr.mpk"
done
finish
