#!/bin/sh
# bench_score_cmd: score --cmd's throughput, records/s, with the window
# against strict lockstep (--window 1), round-robin, best of REPS runs,
# on two outside scorers in Python: one that answers each line as it
# reads it, and one that reads 32 records before it answers them (which
# lockstep cannot feed: it waits for records that never come).
set -u
N=${BENCH_CMD_RECORDS:-20000}
REPS=${REPS:-3}
PY=${PYTHON3:-python3}
T=$(mktemp -d "${TMPDIR:-/tmp}/prefpipe-bench.XXXXXX")
trap 'rm -rf "$T"' EXIT

awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++)
	printf "{\"id\":\"p%d\",\"response\":\"The answer is %d.\",\"answer\":\"%d\"}\n", i, i, i }' |
    recs from-json >"$T/in"
cat >"$T/line.py" <<'E'
import sys
for line in sys.stdin:
    print(len(line) % 7, flush=True)
E
cat >"$T/batch.py" <<'E'
import sys
batch = []
def answer():
    sys.stdout.write("".join("%d\n" % (len(l) % 7) for l in batch))
    sys.stdout.flush()
    batch.clear()
for line in sys.stdin:
    batch.append(line)
    if len(batch) == 32:
        answer()
answer()
E

# best SECONDS of a command line, taking turns with the others (REPS
# rounds of every configuration, the least time of each kept).
run() { s=$(date +%s.%N); sh -c "$1" >/dev/null; e=$(date +%s.%N); echo "$s $e" | awk '{ print $2 - $1 }'; }
lock_line=1e9 win_line=1e9 win_batch=1e9
for r in $(seq "$REPS"); do
	t=$(run "score --window 1 --cmd '$PY $T/line.py' $T/in")
	lock_line=$(echo "$t $lock_line" | awk '{ print ($1 < $2 ? $1 : $2) }')
	t=$(run "score --cmd '$PY $T/line.py' $T/in")
	win_line=$(echo "$t $win_line" | awk '{ print ($1 < $2 ? $1 : $2) }')
	t=$(run "score --cmd '$PY $T/batch.py' $T/in")
	win_batch=$(echo "$t $win_batch" | awk '{ print ($1 < $2 ? $1 : $2) }')
done
rate() { echo "$N $1" | awk '{ printf "%.0f", $1 / $2 }'; }
echo "score --cmd, $N records, best of $REPS:"
echo "  per-line scorer, --window 1 (lockstep): $(rate "$lock_line") records/s"
echo "  per-line scorer, window (default 256):  $(rate "$win_line") records/s ($(echo "$lock_line $win_line" | awk '{ printf "%.2f", $1 / $2 }')x lockstep)"
echo "  batch-of-32 scorer, window:             $(rate "$win_batch") records/s (lockstep: waits forever)"
