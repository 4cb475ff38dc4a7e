#!/bin/sh
# recs gen arith --sft --noise P: exactly the fraction P of responses is
# wrong in expectation, every wrong one differs from the answer, and
# --noise without --sft (no response to corrupt) is a usage error;
# --systematic puts every miss on the last digit, one up.
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

# --systematic: every wrong response is the answer with its last digit
# one up (9 to 0); the prompts, and which responses miss, are those of
# the same seed without it.
recs gen arith -n 2000 --seed 5 --digits 2 --sft --noise 0.55 --systematic >"$T/sys"
n=$(wrong "$T/sys")
# sd 22: 1100 +- 100 fails by chance about once in 10^5
[ "$n" -ge 1000 ] && [ "$n" -le 1200 ] ||
	fail "systematic 0.55: $n of 2000 wrong, want about 1100"
bad=$(recs to-tsv answer response <"$T/sys" | awk -F '\t' '
	$1 != $2 {
		l = length($1); d = substr($1, l, 1) + 0
		if (substr($2, 1, l - 1) != substr($1, 1, l - 1) ||
		    substr($2, l, 1) + 0 != (d + 1) % 10) bad++
	}
	END { print bad + 0 }')
check "systematic: the last digit one up" test "$bad" = 0
miss() { recs to-tsv prompt answer response | awk -F '\t' '{ print $1, $2, $2 != $3 }'; }
recs gen arith -n 200 --seed 5 --sft --noise 0.3 | miss >"$T/a"
recs gen arith -n 200 --seed 5 --sft --noise 0.3 --systematic | miss >"$T/b"
check "systematic: the same prompts and misses" cmp -s "$T/a" "$T/b"
expect_fail 2 '^recs: gen: --systematic needs --noise$' recs gen arith --sft --systematic

expect_fail 2 '^recs: gen: --noise needs --sft$' recs gen arith --noise 0.3
expect_fail 2 '^usage: recs' recs gen arith --noise 0.3
expect_fail 2 'noise' recs gen arith --sft --noise 1.5
finish
