#!/bin/sh
# recs: every kind of bad input gets one clear message, exit status 1,
# and the records before it are still written; usage errors exit 2.
. "${top_srcdir:-.}/tests/lib.sh"

printf '{"a":1}\n{"a":2}\n' | recs from-json >"$T/good.mpk"
head -c $(( $(wc -c <"$T/good.mpk") - 1 )) "$T/good.mpk" >"$T/trunc.mpk"
expect_fail 1 '^recs: .*trunc.mpk: record 2: truncated msgpack at end of input$' \
	recs count "$T/trunc.mpk"
printf '\201\241a\301' >"$T/invalid.mpk"
expect_fail 1 '^recs: .*invalid.mpk: record 1: invalid msgpack$' recs count "$T/invalid.mpk"
printf '\201\241a\001\222\001\002' >"$T/array.mpk"
expect_fail 1 '^recs: .*array.mpk: record 2: not a map, got array$' recs count "$T/array.mpk"
printf '\201\005\001' >"$T/intkey.mpk"
expect_fail 1 '^recs: .*intkey.mpk: record 1: key 0 is not a string, got integer$' \
	recs count "$T/intkey.mpk"
printf '{"a":1}\n\n{"a":tru}\n' >"$T/bad.jsonl"
expect_fail 1 '^recs: .*bad.jsonl: record 2: invalid JSON at line 3, column 6: invalid literal$' \
	recs count "$T/bad.jsonl"
printf '{"a":1}\n[1]\n' >"$T/notmap.jsonl"
expect_fail 1 '^recs: .*notmap.jsonl: record 2: not a map, got array$' recs count "$T/notmap.jsonl"
printf '{"s":"\377"}\n' >"$T/utf8.jsonl"
expect_fail 1 'utf8.jsonl: record 1: invalid JSON at line 1, column 7: invalid UTF-8 in string$' \
	recs count "$T/utf8.jsonl"
# Invalid UTF-8 inside a msgpack str: an error naming record and field.
printf '\201\241a\001\202\241a\002\241s\242\303\050' >"$T/utf8.mpk"
expect_fail 1 '^recs: .*utf8.mpk: record 2: field "s": string is not valid UTF-8$' \
	recs to-json "$T/utf8.mpk"
check "records before the bad one are written" sh -c \
	'recs to-json "$1" 2>/dev/null | grep -qx "{\"a\":1}"' - "$T/utf8.mpk"
recs cat -z "$T/good.mpk" >"$T/good.zst"
head -c $(( $(wc -c <"$T/good.zst") - 3 )) "$T/good.zst" >"$T/trunc.zst"
expect_fail 1 '^recs: .*trunc.zst: corrupt zstd frame: truncated at end of input$' \
	recs count "$T/trunc.zst"
{ head -c 8 "$T/good.zst"; printf 'garbagegarbage'; } >"$T/corrupt.zst"
expect_fail 1 '^recs: .*corrupt.zst: corrupt zstd frame: ' recs count "$T/corrupt.zst"
expect_fail 1 '^recs: .*no-such-file: No such file or directory$' recs count "$T/no-such-file"
# Typed getters: a field of the wrong type names record and field.
printf '{"r":1}\n{"r":"x"}\n' >"$T/type.jsonl"
expect_fail 1 '^recs: stdin: record 2: field "r": expected number, got string$' \
	recs stats r <"$T/type.jsonl"

# Usage errors: status 2 and the usage line.
expect_fail 2 '^usage: recs cat' recs
expect_fail 2 'unknown command: frobnicate' recs frobnicate
expect_fail 2 '^usage: recs' recs head -n x
expect_fail 2 '^usage: recs' recs cat --no-such-option
expect_fail 2 'no fields named' recs to-tsv
check "--help exits 0" sh -c 'recs --help | grep -q "^usage: recs cat"'

# A reader that goes away (| head) ends recs quietly.
awk 'BEGIN { for (i = 0; i < 200000; i++) printf "{\"i\":%d,\"s\":\"xxxxxxxxxxxxxxxx\"}\n", i }' |
	recs from-json >"$T/big.mpk"
recs to-json "$T/big.mpk" 2>"$T/pipe.err" | head -1 >"$T/first"
check "head got the first record" grep -q '"i":0' "$T/first"
check "EPIPE is quiet" test ! -s "$T/pipe.err"
finish
