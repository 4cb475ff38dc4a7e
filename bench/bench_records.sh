#!/bin/sh
# bench_records: record stream throughput.
#   recs cat       msgpack -> msgpack re-encoding, MB/s (target >= 200)
#   to/from-json   recs from-json and recs to-json against `jq -c .` over
#                  the same JSON Lines (target: recs >= 3x faster)
# Figures are best of 3 runs, all on this machine in this run.
set -eu
N=${BENCH_RECORDS:-200000}
T=$(mktemp -d "${TMPDIR:-/tmp}/prefpipe-bench.XXXXXX")
trap 'rm -rf "$T"' EXIT

# Rollout-like records: text, token arrays, float log-probs, nested map.
awk -v n="$N" 'BEGIN {
	srand(1);
	for (i = 0; i < n; i++) {
		printf "{\"id\":\"p%d\",\"sample\":%d,\"prompt\":\"What is %d+%d? Answer with a number.\",", i / 8, i % 8, i, i * 7
		printf "\"response\":\"The answer is %d.\",\"prompt_tokens\":[", i * 8
		for (j = 0; j < 24; j++) printf "%s%d", (j ? "," : ""), int(rand() * 32000)
		printf "],\"response_tokens\":["
		for (j = 0; j < 16; j++) printf "%s%d", (j ? "," : ""), int(rand() * 32000)
		printf "],\"logprobs\":["
		for (j = 0; j < 16; j++) printf "%s%.6f", (j ? "," : ""), -rand() * 5
		printf "],\"finish\":\"stop\",\"reward\":%d,\"meta\":{\"policy\":\"abc123\",\"greedy\":false}}\n", i % 2
	}
}' >"$T/in.jsonl"
recs from-json "$T/in.jsonl" >"$T/in.mpk"

# best SECONDS of three runs of a command line (stdout to /dev/null)
best() {
	b=""
	for k in 1 2 3; do
		s=$(date +%s.%N)
		sh -c "$1" >/dev/null
		e=$(date +%s.%N)
		b=$(echo "$s $e ${b:-1e9}" | awk '{ t = $2 - $1; print (t < $3 ? t : $3) }')
	done
	echo "$b"
}
mb() { echo "$1 $2" | awk '{ printf "%.1f", $1 / 1e6 / $2 }'; }

mpk=$(wc -c <"$T/in.mpk")
json=$(wc -c <"$T/in.jsonl")
echo "records: $N; msgpack $(mb "$mpk" 1) MB, JSON Lines $(mb "$json" 1) MB"

t=$(best "recs cat '$T/in.mpk'")
echo "recs cat (msgpack re-encode): $(mb "$mpk" "$t") MB/s of msgpack ($t s)"
t0=$(best "cat '$T/in.mpk'")
echo "  baseline cat(1): $(mb "$mpk" "$t0") MB/s"

tf=$(best "recs from-json '$T/in.jsonl'")
tt=$(best "recs to-json '$T/in.mpk'")
echo "recs from-json: $(mb "$json" "$tf") MB/s of JSON ($tf s)"
echo "recs to-json:   $(mb "$json" "$tt") MB/s of JSON ($tt s)"
if command -v jq >/dev/null 2>&1; then
	tj=$(best "jq -c . '$T/in.jsonl'")
	echo "jq -c .:        $(mb "$json" "$tj") MB/s of JSON ($tj s)"
	echo "$tj $tf $tt" | awk '{ printf "ratio jq / recs from-json: %.1fx, jq / recs to-json: %.1fx (target >= 3x)\n", $1 / $2, $1 / $3 }'
else
	echo "jq not installed: no ratio"
fi
