#!/bin/sh
# score --cmd: a child that answers, in shell and in Python; one that
# prints garbage; one that dies, early or late; one that says too much,
# at a record or at the end;
# large records to a child that stops reading (EPIPE, not SIGPIPE).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

# A child that misbehaves in a way nobody can detect (reads without
# answering) would hang: no check may take more than a minute.
SCORE=$(command -v score)
score() { timeout 60 "$SCORE" "$@"; }

cat >"$T/in" <<'E'
{"id":1,"prompt":"a","response":"xy"}
{"id":2,"prompt":"b","response":"xyz","meta":{"k":[1,2.5,null,true]}}
{"id":3,"prompt":"c","response":""}
E

# A shell script: the answer is the length of the JSON line.
score --cmd 'while IFS= read -r l; do echo "${#l}"; done' -J "$T/in" \
    >"$T/got" || fail "shell child"
"$PYTHON3" - "$T/in" "$T/got" <<'E' || fail "shell child answers"
import json, sys
ins = [json.loads(l) for l in open(sys.argv[1])]
outs = [json.loads(l) for l in open(sys.argv[2])]
assert len(outs) == 3
for i, o in zip(ins, outs):
    r = o.pop("reward")
    assert o == i, (o, i)          # every field passes through, in order
    assert r == len(json.dumps(i, separators=(",", ":"))), (r, i)
E

# The child reads exactly the record as JSON; --as names the field.
score --cmd "tee '$T/seen' | sed -u 's/.*/-1.5e0/'" --as judge "$T/in" |
    recs to-tsv judge >"$T/got" || fail "sed child"
printf -- '-1.5\n-1.5\n-1.5\n' >"$T/want"
same "--as" "$T/want" "$T/got"
same "child input" "$T/in" "$T/seen"

# Python, flushing per line, from msgpack input.
cat >"$T/judge.py" <<'E'
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    print(len(r["response"]) * 0.5, flush=True)
E
recs from-json "$T/in" | score --cmd "'$PYTHON3' '$T/judge.py'" |
    recs to-tsv id reward >"$T/got" || fail "python child"
printf '1\t1.0\n2\t1.5\n3\t0.0\n' >"$T/want"
same "python child" "$T/want" "$T/got"

# Blank space around the number and CRLF line ends are fine.
printf '%s\n' '{"a":1}' | score --cmd "sed -u 's/.*/  7 \\r/'" |
    recs to-tsv reward >"$T/got" || fail "blanks"
printf '7.0\n' >"$T/want"
same "blanks" "$T/want" "$T/got"

# Garbage: status 1, naming the record and quoting the answer.
expect_fail 1 '^score: .*/in: record 1: --cmd: the command answered "yes", not a number$' \
    score --cmd 'while read -r l; do echo yes; done' "$T/in"
expect_fail 1 'record 2: --cmd: the command answered "1 2", not a number' \
    score --cmd 'read -r l; echo 1; read -r l; echo 1 2; cat >/dev/null' \
    "$T/in"
expect_fail 1 'record 1: --cmd: the command answered "", not a number' \
    score --cmd 'while read -r l; do echo; done' "$T/in"
expect_fail 1 'record 1: .*answered "nan", not a number' \
    score --cmd 'while read -r l; do echo nan; done' "$T/in"
expect_fail 1 'record 1: .*answered "inf", not a number' \
    score --cmd 'while read -r l; do echo inf; done' "$T/in"

# A child that dies: the record it left unanswered is named.
expect_fail 1 'record 3: --cmd: the command exited with status 4 before answering' \
    score --cmd 'read -r l; echo 1; read -r l; echo 2; exit 4' "$T/in"
expect_fail 1 'record 1: --cmd: the command exited with status 0 before answering' \
    score --cmd 'true' "$T/in"
expect_fail 1 'record 1: --cmd: the command was killed by signal 9' \
    score --cmd 'kill -9 $$' "$T/in"
expect_fail 1 'record 1: --cmd: the command exited with status 127' \
    score --cmd 'no-such-command-here' "$T/in"
# A missing line: an answer without its newline, then the end.
expect_fail 1 'record 1: --cmd: the command exited with status 0 before answering' \
    score --cmd 'read -r l; printf 1' "$T/in"
# The output so far holds the answered records, whole.
score --cmd 'read -r l; echo 1; exit 0' -J "$T/in" >"$T/got" 2>/dev/null
check "answered records before the error" test "$(wc -l <"$T/got")" -le 1

# Large records to a child that stops reading: score reports it (EPIPE)
# instead of dying of SIGPIPE, and an answer given before counts.
"$PYTHON3" -c 'import json
for i in range(4): print(json.dumps({"i": i, "response": "x" * 300000}))' \
    >"$T/big"
score --cmd 'exec 0<&-; echo 5; sleep 1' "$T/big" >"$T/out" 2>"$T/err"
st=$?
check "EPIPE: status 1, not a signal ($st)" test "$st" = 1
check "EPIPE: names record 2" grep -q 'record 2: --cmd: the command' \
    "$T/err"
score --cmd 'head -c 10 >/dev/null; echo 1' "$T/big" >"$T/out" 2>"$T/err"
st=$?
check "partial read: status 1 ($st)" test "$st" = 1
check "partial read: names record 2" grep -q 'record 2:' "$T/err"
# A child that answers each record once it has read its first byte,
# while score is still writing the rest.
score --cmd "'$PYTHON3' -c 'import sys
while sys.stdin.buffer.read(1):
    sys.stdout.write(\"1\\n\"); sys.stdout.flush()
    sys.stdin.buffer.readline()'" "$T/big" | recs count >"$T/got" ||
    fail "early answers"
echo 4 >"$T/want"
same "early answers" "$T/want" "$T/got"
# But not before it was sent a record: four answers to the first record
# are three too many, whatever it means them for.  (Seen before it read
# a byte of the record, or after, as the extra lines after the first.)
expect_fail 1 '^score: .*/big: record 1: --cmd: the command answered more lines than records sent \("1"(, then "1"| came before it read this record)\)$' \
    score -J --cmd "'$PYTHON3' -c 'import sys
sys.stdout.write(\"1\\n\" * 4); sys.stdout.flush()
for l in sys.stdin: pass'" "$T/big"
check "answers ahead: nothing written" test ! -s "$T/out"

# Two lines for a record: an error at that record, before it is
# written, not rewards shifted by one from there on.  In one write:
expect_fail 1 '^score: .*/in: record 1: --cmd: the command answered more lines than records sent \("1", then "2"\)$' \
    score -J --cmd "while read -r l; do printf '1\\n2\\n'; done" "$T/in"
check "two lines: nothing written" test ! -s "$T/out"
# The records before the first one answered twice are written, whole.
cat >"$T/twice.py" <<'E'
import sys
for line in sys.stdin:
    print("7" if '"id":3' not in line else "8\n9", flush=True)
E
expect_fail 1 '^score: .*/in: record 3: --cmd: the command answered more lines than records sent \("8", then "9"\)$' \
    score -J --cmd "'$PYTHON3' '$T/twice.py'" "$T/in"
recs to-tsv id reward <"$T/out" >"$T/got"
printf '1\t7.0\n2\t7.0\n' >"$T/want"
same "answered twice: the records before" "$T/want" "$T/got"
# In two writes the second line may come after score has sent the next
# record, as its answer would; it is caught there (it came before the
# child read that record), or at the first record if it was in time.
# Either way no record goes out with the second line as its reward.
expect_fail 1 '^score: .*/in: record [12]: --cmd: the command answered more lines than records sent' \
    score -J --cmd 'while read -r l; do echo 1; echo 2; done' "$T/in"
check "two writes: no shifted reward" test "$(recs to-tsv reward <"$T/out" |
    grep -cv '^1\.0$')" = 0

# After the last record: more output, or a failing exit, is an error.
# (Seen with the last answer, it names that record, which is not written.)
expect_fail 1 '^score: (.*/in: record 3: --cmd: the command answered more lines than records sent \("1", then "2"\)|--cmd: the command answered more lines than records sent \(3 records\))$' \
    score --cmd 'while read -r l; do echo 1; done; echo 2' "$T/in"
expect_fail 1 '--cmd: the command exited with status 3 after 3 records' \
    score --cmd 'while read -r l; do echo 1; done; exit 3' "$T/in"
# No records: the command starts and ends.
score --cmd 'cat' </dev/null >"$T/got" || fail "no records"
check "no records: no output" test ! -s "$T/got"

# A batching scorer (issue 18): it reads 32 records, or to the end of its
# input, before it answers them all; the window keeps it fed, the end of
# input gets the last partial batch answered, answers go to their records.
awk 'BEGIN { for (i = 1; i <= 100; i++) printf "{\"i\":%d}\n", i }' \
    >"$T/hundred"
cat >"$T/batch.py" <<'E'
import json, sys
batch = []
def answer():
    for r in batch:
        print(r["i"] * 10)
    sys.stdout.flush()
    batch.clear()
for line in sys.stdin:
    batch.append(json.loads(line))
    if len(batch) == 32:
        answer()
answer()
E
timeout 60 score -J --cmd "'$PYTHON3' '$T/batch.py'" "$T/hundred" |
    recs to-tsv i reward >"$T/got" || fail "batching scorer"
awk 'BEGIN { for (i = 1; i <= 100; i++) printf "%d\t%d.0\n", i, 10 * i }' \
    >"$T/want"
same "batching scorer: every answer on its record" "$T/want" "$T/got"
# A bad record in the middle: the ones before it are answered and written.
{ head -40 "$T/hundred"; echo '{"i":'; } >"$T/badmid"
expect_fail 1 'badmid: record 41: invalid JSON' \
    timeout 60 score -J --cmd "'$PYTHON3' '$T/batch.py'" "$T/badmid"
check "bad record: the 40 before it written" test \
    "$(recs count "$T/out")" -eq 40
# Reads three lines and leaves: an error naming the first record it did
# not answer, not a hang.
expect_fail 1 'hundred: record 1: --cmd: the command exited with status 0 before answering' \
    timeout 60 score --cmd 'head -n 3 >/dev/null; exit 0' "$T/hundred"
# Answers two and leaves: the two are written, the third is named.
expect_fail 1 'hundred: record 3: --cmd: the command exited with status 0 before answering' \
    timeout 60 score -J --cmd "'$PYTHON3' -c 'import sys
for k in range(2):
    sys.stdin.readline(); print(1, flush=True)'" "$T/hundred"
check "two answers written" test "$(recs count "$T/out")" -eq 2
# Stops answering: --timeout makes it an error naming the record.
expect_fail 1 'hundred: record 1: --cmd: no answer from the command in 1 s \(--timeout\)' \
    timeout 60 score --timeout 1 --cmd 'cat >/dev/null; exec sleep 30' "$T/hundred"
# --window 1 is lockstep: a batching scorer then waits for records that
# never come, until --timeout.
expect_fail 1 'record 1: --cmd: no answer from the command in 1 s' \
    timeout 60 score --window 1 --timeout 1 --cmd "'$PYTHON3' '$T/batch.py'" \
    "$T/hundred"
expect_fail 2 '--window does not apply to --exact' \
    score --exact --window 4 "$T/hundred"

finish
