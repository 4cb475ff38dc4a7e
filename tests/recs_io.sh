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
finish
