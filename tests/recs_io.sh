#!/bin/sh
# recs: the byte layer of record streams: write errors, zstd framings.
. "${top_srcdir:-.}/tests/lib.sh"

# A full disk: one message and exit 1, for a short and a long stream,
# plain and compressed (a long one fails while writing, a short one when
# the writer is closed).
if [ -w /dev/full ]; then
	for args in "-n 10" "-n 100000" "-n 10 -z" "-n 100000 -z"; do
		# shellcheck disable=SC2086
		recs gen arith $args >/dev/full 2>"$T/err"
		check "$args to /dev/full exits 1" test $? -eq 1
		n=$(wc -l <"$T/err")
		[ "$n" -eq 1 ] || fail "$args to /dev/full: $n messages: $(cat "$T/err")"
		check "$args: the message" grep -qx 'recs: stdout: No space left on device' "$T/err"
	done
	printf '{"a":1}\n' | recs cat -J >/dev/full 2>"$T/err"
	check "JSON to /dev/full: one message" test "$(wc -l <"$T/err")" -eq 1
fi

# zstd streams that start with a skippable frame (magic 0x184D2A50 to
# 0x184D2A5F, a 32-bit length, that many bytes), as pzstd writes them.
printf '{"a":1}\n{"a":2}\n' | recs from-json >"$T/two.mpk"
recs cat -z "$T/two.mpk" >"$T/two.zst"
{ printf 'P*M\030\004\000\000\000skip'; cat "$T/two.zst"; } >"$T/skip.zst"
recs to-json "$T/skip.zst" >"$T/skip.out" 2>"$T/err"
check "skippable frame first: read as zstd" test $? -eq 0
check "skippable frame first: the records" test "$(cat "$T/skip.out")" = \
	"$(printf '{"a":1}\n{"a":2}')"
# Every magic of the range, a frame between two others, an empty payload.
{ printf '_*M\030\000\000\000\000'; cat "$T/two.zst"; printf 'Z*M\030\001\000\000\000x';
  cat "$T/two.zst"; } >"$T/skip2.zst"
check "skippable frames between frames" test "$(recs count "$T/skip2.zst")" = 4
printf 'P*M\030\010\000\000\000abc' >"$T/skiptrunc.zst"
expect_fail 1 '^recs: .*skiptrunc.zst: corrupt zstd frame: truncated at end of input$' \
	recs count "$T/skiptrunc.zst"
if command -v pzstd >/dev/null 2>&1; then
	awk 'BEGIN { for (i = 0; i < 3000; i++) printf "{\"i\":%d}\n", i }' >"$T/many.jsonl"
	pzstd -q -p 2 -c "$T/many.jsonl" >"$T/many.pzst" 2>/dev/null
	check "pzstd output: every record" test "$(recs count "$T/many.pzst")" = 3000
	recs to-json "$T/many.pzst" >"$T/many.back"
	same "pzstd output: the records" "$T/many.jsonl" "$T/many.back"
fi
finish
