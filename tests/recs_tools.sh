#!/bin/sh
# recs head, count, stats and to-tsv on hand-made records.
. "${top_srcdir:-.}/tests/lib.sh"

cat >"$T/s.jsonl" <<'JSON'
{"id":"p1","reward":1,"len":10,"name":"a"}
{"id":"p2","reward":0,"len":4}
{"id":"p1","reward":0,"len":6,"name":"b\tc"}
{"id":"p2","reward":0.5,"len":2}
{"id":"p1","reward":0.5}
JSON
recs head -n 2 "$T/s.jsonl" | recs to-json >"$T/h"
head -n 2 "$T/s.jsonl" >"$T/h.want"
same "head -n 2" "$T/h.want" "$T/h"
recs count "$T/s.jsonl" "$T/s.jsonl" >"$T/c"
check "count over two inputs" grep -qx 10 "$T/c"

# stats of every numeric field: reward mean .4, population std.
recs stats <"$T/s.jsonl" | recs to-json >"$T/st"
cat >"$T/st.want" <<'JSON'
{"count":5,"reward":{"count":5,"mean":0.4,"std":0.37416573867739417,"min":0.0,"max":1.0},"len":{"count":4,"mean":5.5,"std":2.958039891549808,"min":2.0,"max":10.0}}
JSON
same "stats" "$T/st.want" "$T/st"
recs stats --by id reward <"$T/s.jsonl" | recs to-json >"$T/sg"
cat >"$T/sg.want" <<'JSON'
{"id":"p1","count":3,"reward":{"count":3,"mean":0.5,"std":0.408248290463863,"min":0.0,"max":1.0}}
{"id":"p2","count":2,"reward":{"count":2,"mean":0.25,"std":0.25,"min":0.0,"max":0.5}}
JSON
same "stats --by id" "$T/sg.want" "$T/sg"

recs to-tsv -H id reward name <"$T/s.jsonl" >"$T/tsv"
printf 'id\treward\tname\np1\t1\ta\np2\t0\t\np1\t0\tb\\tc\np2\t0.5\t\np1\t0.5\t\n' >"$T/tsv.want"
same "to-tsv" "$T/tsv.want" "$T/tsv"
echo '{"m":{"x":1.5},"a":[1,2]}' | recs to-tsv m.x a >"$T/tsv2"
printf '1.5\t[1,2]\n' >"$T/tsv2.want"
same "to-tsv nested and arrays" "$T/tsv2.want" "$T/tsv2"

# gen arith: deterministic, train and eval disjoint, noise as asked.
recs gen arith -n 300 --seed 7 --sft --noise 0.3 >"$T/g1"
recs gen arith -n 300 --seed 7 --sft --noise 0.3 >"$T/g2"
same "gen arith is deterministic" "$T/g1" "$T/g2"
recs gen arith -n 300 --seed 8 >"$T/g3"
check "another seed, other problems" sh -c '! cmp -s "$1" "$2"' - "$T/g1" "$T/g3"
recs gen arith -n 3000 --digits 2 --split train | recs to-tsv prompt | sort -u >"$T/train"
recs gen arith -n 3000 --digits 2 --split eval | recs to-tsv prompt | sort -u >"$T/eval"
check "train and eval share no problem" test -z "$(comm -12 "$T/train" "$T/eval")"
check "eval problems exist" test "$(wc -l <"$T/eval")" -gt 100
recs to-tsv prompt answer response <"$T/g1" | awk -F '\t' '
	{ split($1, ab, /[+=]/); if (ab[1] + ab[2] != $2) bad++; if ($2 != $3) wrong++ }
	END { exit !(bad == 0 && wrong > 60 && wrong < 120) }' ||
	fail "gen arith: answers must be sums and about 30% of responses wrong"
expect_fail 2 'the only task is arith' recs gen poetry
finish
