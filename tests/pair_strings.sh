#!/bin/sh
# pair --from-strings: offline {prompt, chosen, rejected} datasets into
# pair records.
. "${top_srcdir:-.}/tests/lib.sh"

cat >"$T/in" <<'E'
{"prompt":"Hi","chosen":"Hello!","rejected":"Go away.","source":"uf"}
{"id":"q9","prompt":"2+2?","rejected":"5","chosen":"4"}
{"prompt":"Esc","chosen":"a \"quoted\"\nline","rejected":""}
E
cat >"$T/want" <<'E'
{"id":"1","prompt":"Hi","chosen":{"response":"Hello!"},"rejected":{"response":"Go away."},"source":"uf"}
{"id":"q9","prompt":"2+2?","rejected":{"response":"5"},"chosen":{"response":"4"}}
{"id":"3","prompt":"Esc","chosen":{"response":"a \"quoted\"\nline"},"rejected":{"response":""}}
E
pair -J --from-strings "$T/in" >"$T/got"
same "from-strings" "$T/want" "$T/got"

# Ordinals count across inputs; msgpack and zstd inputs work alike.
head -1 "$T/in" >"$T/one"
recs from-json -z "$T/one" >"$T/one.zst"
pair -J --from-strings "$T/one" "$T/one.zst" >"$T/got"
check "ordinals across inputs" test "$(sed 's/^{"id":"\([0-9]*\)".*/\1/' "$T/got" |
    tr '\n' ' ')" = "1 2 "

# The output feeds pair's consumers: msgpack by default.
pair --from-strings "$T/in" | recs to-json >"$T/got"
same "msgpack output" "$T/want" "$T/got"

printf '%s\n' '{"prompt":"x","chosen":"a"}' >"$T/bad"
expect_fail 1 '^pair: .*bad: record 1: field "rejected": missing' \
	pair --from-strings "$T/bad"
printf '%s\n' '{"prompt":"x","chosen":"a","rejected":"b"}' \
    '{"prompt":"x","chosen":[{"role":"assistant"}],"rejected":"b"}' >"$T/bad"
expect_fail 1 'bad: record 2: field "rejected": expected the type of chosen \(array\), got string$' \
	pair --from-strings "$T/bad"
expect_fail 2 'from-strings takes none' pair --from-strings --strategy all

finish
