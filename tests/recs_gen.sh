#!/bin/sh
# recs gen arith --sft --noise P: exactly the fraction P of responses is
# wrong in expectation, every wrong one differs from the answer, and
# --noise without --sft (no response to corrupt) is a usage error.
. "${top_srcdir:-.}/tests/lib.sh"

# wrong FILE: how many responses differ from their answer.
wrong() {
	recs to-tsv answer response <"$1" | awk -F '\t' '$1 != $2 { n++ } END { print n + 0 }'
}
# A near miss keeps the length and changes one digit, never leading 0.
near_misses() {
	recs to-tsv answer response <"$1" | awk -F '\t' '
	$1 != $2 {
		if (length($1) != length($2) || ($2 ~ /^0./)) bad++
		d = 0
		for (i = 1; i <= length($1); i++)
			if (substr($1, i, 1) != substr($2, i, 1)) d++
		if (d != 1) bad++
	}
	END { print bad + 0 }'
}

for digits in 1 3; do
	recs gen arith -n 4000 --seed 5 --digits $digits --sft --noise 1 >"$T/all"
	check "noise 1, $digits digits: every response wrong" test "$(wrong "$T/all")" = 4000
	check "noise 1, $digits digits: near misses" test "$(near_misses "$T/all")" = 0
	recs gen arith -n 4000 --seed 5 --digits $digits --sft --noise 0 >"$T/none"
	check "noise 0, $digits digits: every response right" test "$(wrong "$T/none")" = 0
	# 4000 draws at P = 0.3: the standard deviation of the count is 29,
	# so 1200 +- 120 fails by chance about once in 10^4.
	recs gen arith -n 4000 --seed 5 --digits $digits --sft --noise 0.3 >"$T/some"
	n=$(wrong "$T/some")
	[ "$n" -ge 1080 ] && [ "$n" -le 1320 ] ||
		fail "noise 0.3, $digits digits: $n of 4000 wrong, want about 1200"
done

expect_fail 2 '^recs: gen: --noise needs --sft$' recs gen arith --noise 0.3
expect_fail 2 '^usage: recs' recs gen arith --noise 0.3
expect_fail 2 'noise' recs gen arith --sft --noise 1.5
finish
