#!/bin/sh
# filter --where: the expression language on records, and malformed
# expressions as usage errors that point at the column.
. "${top_srcdir:-.}/tests/lib.sh"

cat >"$T/in" <<'E'
{"id":"a","n":1,"reward":0.5,"finish":"stop","correct":true}
{"id":"b","n":2,"reward":-1,"finish":"length","correct":false}
{"id":"c","n":3,"chosen":{"reward":2},"finish":"stop"}
{"id":"d","n":4,"reward":null,"greedy":true}
E

# sel EXPR WANT: the n's of the records EXPR keeps, space-separated.
sel() {
	got=$(filter -J --where "$1" "$T/in" | sed 's/.*"n":\([0-9]*\).*/\1/' |
	    tr '\n' ' ')
	[ "$got" = "$2" ] || fail "--where '$1': got '$got', want '$2'"
}

sel 'reward > 0' '1 '
sel 'reward <= 0.5' '1 2 '
sel 'reward != 0.5' '2 '		# missing and null fields: false
sel '!(reward == 0.5)' '2 3 4 '
sel 'finish == "stop"' '1 3 '
sel 'finish != "stop" && n > 1' '2 '
sel 'finish == "stop" || n >= 4' '1 3 4 '
sel 'n > 1 && (finish == "stop" || greedy)' '3 4 '
sel 'n > 1 && finish == "stop" || greedy' '3 4 '
sel 'correct' '1 '
sel '!correct' '2 3 4 '
sel 'correct == false' '2 '
sel 'chosen.reward >= 2' '3 '
sel 'chosen.reward < 2' ''
sel 'id > "b"' '3 4 '
sel 'n == 2.0' '2 '
sel 'finish == 1' ''
sel 'finish != 1' '1 2 3 '
sel 'nosuch.deep == 1 || n == -1 || n < -1e3' ''
sel '  ( ( n<2 ) )  ' '1 '

# Applied before grouping, and to greedy baselines too.
printf '%s\n' '{"id":"a","reward":1,"finish":"length"}' \
    '{"id":"a","reward":0.5,"finish":"stop"}' \
    '{"id":"a","greedy":true,"finish":"length"}' |
    filter -J --keep best --where 'finish == "stop"' >"$T/got"
printf '{"id":"a","reward":0.5,"finish":"stop"}\n' >"$T/want"
same "--where before the strategy" "$T/want" "$T/got"

# Malformed: status 2, the column, a caret under it, the usage.
expect_fail 2 '^filter: --where: column 8: .*==' filter --where 'reward = 1'
expect_fail 2 '^    reward = 1$' filter --where 'reward = 1'
expect_fail 2 '^           \^$' filter --where 'reward = 1'
expect_fail 2 '^usage: filter' filter --where 'reward = 1'
expect_fail 2 'column 9: expected a field, number or string after' \
	filter --where 'reward >'
expect_fail 2 "column 1: unbalanced '\\('" filter --where '(a == 1'
expect_fail 2 "column 7: unbalanced '\\)'" filter --where 'a == 1)'
expect_fail 2 'column 8: expected' filter --where 'a == 1 b'
expect_fail 2 'column 6: unterminated string' filter --where 'a == "x'
expect_fail 2 "column 8: '&' is not an operator" filter --where 'a == 1 & b'
expect_fail 2 'column 1: empty expression' filter --where ''
expect_fail 2 "column 3: unexpected '#'" filter --where 'a #'
# A bad expression is found before any input is read.
expect_fail 2 'column 1' sh -c 'filter --where ")" /nonexistent'

finish
