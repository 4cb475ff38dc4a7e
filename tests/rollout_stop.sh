#!/bin/sh
# rollout: where generation ends.  EOS (finish "stop", the EOS token kept
# in response_tokens but not in response), --stop strings (response cut
# before the first one), --max-tokens and the end of the context (finish
# "length"), and prompts too long for the context (an error naming the
# record, or cut on the left with --truncate left).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
# Threads that wait by spinning starve the busy ones on a loaded machine
# (make -j, other tests): these tests are about results, not speed.
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}; export OMP_WAIT_POLICY

ckpt init -o "$T/m" --seed 6 || fail "ckpt init"
ckpt init -o "$T/c" --ctx 16 --seed 6 || fail "ckpt init --ctx 16"
printf '{"id":"%s","prompt":"abc %s"}\n' 1 x 2 yy 3 zzz 4 w >"$T/p.jsonl"

# EOS: the byte model's EOS (257) comes up about once in 259 tokens.
rollout -m "$T/m" -n 50 --max-tokens 60 -J <"$T/p.jsonl" >"$T/e" ||
    fail "rollout"
"$PYTHON3" - "$T/e" <<'X' || fail "EOS and max-tokens"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
stops = 0
for r in recs:
    t = r["response_tokens"]
    assert 257 not in t[:-1], r
    if r["finish"] == "stop":
        stops += 1
        assert t[-1] == 257, r
    else:
        assert r["finish"] == "length" and len(t) == 60, r
    # response: the decoded tokens without special tokens
    text = bytes(x for x in t if x < 256).decode("utf-8", "replace")
    assert r["response"] == text, (r["response"], text)
assert stops > 10, stops
X

# max-tokens 0 and 1.
rollout -m "$T/m" --max-tokens 0 -J <"$T/p.jsonl" >"$T/z" || fail "max 0"
"$PYTHON3" -c 'import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    assert r["response_tokens"] == [] and r["response"] == "" and r["finish"] == "length"
' "$T/z" || fail "max-tokens 0"

# Stop strings: take two characters from the middle of a response made
# without them, then ask to stop there: the same tokens up to the one that
# completes the string, the text cut before it, finish "stop".
rollout -m "$T/m" -n 4 --max-tokens 80 --seed 9 -J <"$T/p.jsonl" >"$T/free" ||
    fail "rollout"
stop=$("$PYTHON3" - "$T/free" <<'X'
import json, sys
for l in open(sys.argv[1]):
    s = json.loads(l)["response"]
    for i in range(10, len(s) - 2):
        if s[i:i + 2].isascii() and s[i:i + 2].isprintable() and s[i] != "-":
            print(s[i:i + 2])
            sys.exit(0)
sys.exit(1)
X
) || fail "no stop string found"
rollout -m "$T/m" -n 4 --max-tokens 80 --seed 9 -J --stop "$stop" \
    --stop "never happens" <"$T/p.jsonl" >"$T/stopped" || fail "rollout --stop"
"$PYTHON3" - "$T/free" "$T/stopped" "$stop" <<'X' || fail "stop strings"
import json, sys
free = [json.loads(l) for l in open(sys.argv[1])]
cut = [json.loads(l) for l in open(sys.argv[2])]
stop = sys.argv[3]
hits = 0
for a, b in zip(free, cut):
    ta, tb = a["response_tokens"], b["response_tokens"]
    assert ta[:len(tb)] == tb and a["logprobs"][:len(tb)] == b["logprobs"]
    full = bytes(x for x in tb if x < 256).decode("utf-8", "replace")
    if b["finish"] == "stop" and tb[-1] != 257:
        hits += 1
        at = full.find(stop)
        assert at >= 0 and b["response"] == full[:at], (b, stop)
        # the first occurrence: the tokens before the last had none
        prev = bytes(x for x in tb[:-1] if x < 256).decode("utf-8", "replace")
        assert stop not in prev
    else:
        assert stop not in full and b == a, (a, b)
assert hits >= 1
X

# The context ends generation: 16 positions, a prompt of 1 + 10 tokens.
echo '{"prompt":"0123456789"}' >"$T/ten.jsonl"
rollout -m "$T/c" -n 20 --max-tokens 100 -J <"$T/ten.jsonl" >"$T/ctx" ||
    fail "rollout at the context end"
"$PYTHON3" -c 'import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    n = len(r["response_tokens"])
    assert n <= 5 and (r["finish"] == "stop" or n == 5), r
' "$T/ctx" || fail "context end"

# Too long: an error naming the record; --truncate left keeps the end.
printf '{"prompt":"short"}\n{"id":"long","prompt":"%s"}\n' \
    0123456789abcdefghij >"$T/long.jsonl"
expect_fail 1 'rollout: stdin: record 2: field "prompt": 21 tokens' \
    rollout -m "$T/c" <"$T/long.jsonl"
rollout -m "$T/c" --truncate left --max-tokens 3 -J <"$T/long.jsonl" \
    >"$T/trunc" || fail "--truncate left"
"$PYTHON3" -c 'import json,sys
r = [json.loads(l) for l in open(sys.argv[1])]
assert r[0]["prompt_tokens"] == [256] + list(b"short")
assert r[1]["prompt_tokens"] == list(b"0123456789abcdefghij")[-15:], r[1]
assert len(r[1]["response_tokens"]) == 1 and r[1]["finish"] in ("length", "stop")
' "$T/trunc" || fail "truncated prompt"
finish
