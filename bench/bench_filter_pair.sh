#!/bin/sh
# bench_filter_pair: records/s through filter and pair, against the same
# selection written in jq over the same records as JSON Lines.
#   filter --keep best-worst, pair (best-worst): target >= 1M records/s
# Input: BENCH_RECORDS (default 1,000,000) small {id, sample, reward}
# records in groups of 8, as msgpack.  Best of 3 runs (jq: 1 run), all on
# this machine in this run.
set -eu
N=${BENCH_RECORDS:-1000000}
T=$(mktemp -d "${TMPDIR:-/tmp}/prefpipe-bench.XXXXXX")
trap 'rm -rf "$T"' EXIT

awk -v n="$N" 'BEGIN {
	srand(1);
	for (i = 0; i < n; i++)
		printf "{\"id\":\"p%d\",\"sample\":%d,\"reward\":%.3f}\n",
		    i / 8, i % 8, rand()
}' >"$T/in.jsonl"
recs from-json "$T/in.jsonl" >"$T/in.mpk"

# secs RUNS CMDLINE: "WALL CPU" seconds, the run with the least wall time
# of RUNS; CPU (user + system) tells the tools' own cost on a busy machine.
if [ -x /usr/bin/time ]; then
	TIMER='/usr/bin/time -f "%e %U %S" -o "$T/time"'
else
	TIMER=''
fi
secs() {
	b="1e9 0"
	k=0
	while [ $k -lt "$1" ]; do
		s=$(date +%s.%N)
		eval "$TIMER sh -c \"\$2\"" >/dev/null
		e=$(date +%s.%N)
		c=$( [ -n "$TIMER" ] && awk '{ print $2 + $3 }' "$T/time" || echo 0)
		b=$(echo "$s $e $c $b" | awk '{ t = $2 - $1
		    if (t < $4) print t, $3; else print $4, $5 }')
		k=$((k + 1))
	done
	echo "$b"
}
# line LABEL "WALL CPU": one figure.
line() {
	echo "$1 $2 $N" | awk '{ printf "%-42s %7.3f s %6.2f M/s   cpu %6.3f s %6.2f M/s\n",
	    $1, $2, $4 / $2 / 1e6, $3, ($3 > 0 ? $4 / $3 / 1e6 : 0) }' | tr '_' ' '
}

# jq, streaming over contiguous groups as --sorted does: the group so far
# in .g, a finished one in .out.
JQ_GROUPS='foreach (inputs, null) as $r ({g: [], out: null};
	if $r == null or (.g | length > 0 and .[0].id != $r.id)
	then {out: .g, g: (if $r == null then [] else [$r] end)}
	else {out: null, g: (.g + [$r])} end;
	.out // empty | select(length > 0))'
# best-worst, ties to the earlier (sort_by is stable), in input order.
JQ_FILTER="$JQ_GROUPS"' | . as $g | (to_entries | sort_by(-.value.reward))
	| [.[0].key, .[-1].key] | unique | .[] | $g[.]'
JQ_PAIR="$JQ_GROUPS"' | sort_by(-.reward) | .[0] as $b | .[-1] as $w
	| select($b.reward - $w.reward > 0)
	| {id: $b.id, chosen: ($b | del(.id)), rejected: ($w | del(.id)),
	   margin: ($b.reward - $w.reward)}'

# The jq programs must select what the tools do.
if command -v jq >/dev/null 2>&1; then
	head -8000 "$T/in.jsonl" >"$T/small.jsonl"
	filter -J --keep best-worst "$T/small.jsonl" | jq -c . >"$T/f1"
	jq -nc "$JQ_FILTER" "$T/small.jsonl" | jq -c . >"$T/f2"
	cmp -s "$T/f1" "$T/f2" || { echo "jq filter disagrees" >&2; exit 1; }
	pair -J "$T/small.jsonl" | jq -c . >"$T/p1"
	jq -nc "$JQ_PAIR" "$T/small.jsonl" | jq -c . >"$T/p2"
	cmp -s "$T/p1" "$T/p2" || { echo "jq pair disagrees" >&2; exit 1; }
fi

echo "$N records {id, sample, reward}, groups of 8, msgpack in and out"
f=$(secs 3 "filter --keep best-worst $T/in.mpk")
line "filter_--keep_best-worst" "$f"
fs=$(secs 3 "filter --keep best-worst --sorted $T/in.mpk")
line "filter_--keep_best-worst_--sorted" "$fs"
p=$(secs 3 "pair $T/in.mpk")
line "pair" "$p"
ps=$(secs 3 "pair --sorted $T/in.mpk")
line "pair_--sorted" "$ps"
fj=$(secs 3 "filter -J --keep best-worst --sorted $T/in.jsonl")
line "filter_--keep_best-worst_--sorted_(JSON)" "$fj"
pj=$(secs 3 "pair -J --sorted $T/in.jsonl")
line "pair_--sorted_(JSON)" "$pj"
if command -v jq >/dev/null 2>&1; then
	jf=$(secs 1 "jq -nc '$JQ_FILTER' $T/in.jsonl")
	line "jq_best-worst_filter_(JSON)" "$jf"
	jp=$(secs 1 "jq -nc '$JQ_PAIR' $T/in.jsonl")
	line "jq_best-worst_pair_(JSON)" "$jp"
	# Wall-time ratios, then CPU-time ratios.
	echo "$jf $f $fj $jp $p $pj" | awk '{
	    printf "ratio jq/filter wall: %.1fx (msgpack), %.1fx (JSON); cpu: %.1fx, %.1fx\n",
		$1 / $3, $1 / $5, $2 / ($4 ? $4 : 1e-9), $2 / ($6 ? $6 : 1e-9)
	    printf "ratio jq/pair   wall: %.1fx (msgpack), %.1fx (JSON); cpu: %.1fx, %.1fx\n",
		$7 / $9, $7 / $11, $8 / ($10 ? $10 : 1e-9), $8 / ($12 ? $12 : 1e-9) }'
else
	echo "jq not found: no comparison"
fi
