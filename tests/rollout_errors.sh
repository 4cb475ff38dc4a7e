#!/bin/sh
# rollout: bad input and bad usage get the standard messages and statuses.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
# Threads that wait by spinning starve the busy ones on a loaded machine
# (make -j, other tests): these tests are about results, not speed.
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}; export OMP_WAIT_POLICY

ckpt init -o "$T/m" || fail "ckpt init"
ckpt init -o "$T/rm" --head score || fail "ckpt init --head score"
r() { rollout -m "$T/m" --max-tokens 2 "$@"; }

printf '{"id":"a","prompt":"ok"}\n{"id":"b"}\n' >"$T/noprompt"
expect_fail 1 '^rollout: .*noprompt: record 2: field "prompt": missing' \
    r "$T/noprompt"
printf '{"prompt":7}\n' >"$T/int"
expect_fail 1 'record 1: field "prompt": expected string, got integer' \
    r "$T/int"
printf '{"prompt":"x","id":[1]}\n' >"$T/id"
expect_fail 1 'record 1: field "id": expected string or integer, got array' \
    r "$T/id"
printf '{"messages":"hi"}\n' >"$T/msg"
expect_fail 1 'record 1: field "messages": expected array, got string' \
    r "$T/msg"
printf '{"messages":[{"role":"user"}]}\n' >"$T/msg2"
expect_fail 1 'record 1: field "messages": element 0: "content": missing' \
    r "$T/msg2"
printf '{"messages":[{"role":"user","content":5}]}\n' >"$T/msg3"
expect_fail 1 'field "messages": element 0: "content": expected string' \
    r "$T/msg3"
printf '{"prompt":""}\n' >"$T/empty"
# The byte tokenizer adds BOS, so an empty prompt still has a token.
check "empty prompt" r "$T/empty" >/dev/null
printf 'not a record\n' >"$T/junk"
expect_fail 1 '^rollout: ' r "$T/junk"

# Everything read before a bad record is written (prefpipe(7)): the
# prompts before it are sampled to their end, then the error.
recs gen arith -n 100 >"$T/good"
printf '{"id":"x","prompt":7}\n' | recs from-json >"$T/bad7"
cat "$T/good" "$T/bad7" >"$T/goodbad"
expect_fail 1 '^rollout: stdin: record 101: field "prompt": expected string, got integer$' \
    r <"$T/goodbad"
check "samples before a bad record ($(recs count <"$T/out"))" \
    test "$(recs count <"$T/out")" = 100
# Several samples, a baseline and a batch that splits prompts: every
# sample of every prompt before, in order, as if the input had ended.
r -n 3 --greedy-baseline --batch 5 <"$T/good" >"$T/want"
expect_fail 1 'record 101: field "prompt": expected string' \
    r -n 3 --greedy-baseline --batch 5 <"$T/goodbad"
same "samples before a bad record, -n 3" "$T/want" "$T/out"
# A record that cannot be read at all.
{ cat "$T/good"; printf 'not a record\n'; } >"$T/goodjunk"
expect_fail 1 '^rollout: stdin: record 101: ' r -n 3 --batch 5 <"$T/goodjunk"
r -n 3 --batch 5 <"$T/good" >"$T/want"
same "samples before an unreadable record" "$T/want" "$T/out"

# A tokenizer larger than the model: the token outside the vocabulary is
# named with its record and field, after the records before it.
mkdir "$T/big" && cp "$T/m"/* "$T/big" &&
    cp "$top_srcdir/tests/tokenizer/small_gpt2.json" "$T/big/tokenizer.json" ||
    fail "a checkpoint with a larger tokenizer"
printf '{"prompt":"a"}\n{"prompt":"b"}\n{"prompt":"the the"}\n' >"$T/vocab"
expect_fail 1 '^rollout: .*vocab: record 3: field "prompt": token 0 is 1169, outside the vocabulary \[0, 259\) of ' \
    rollout -m "$T/big" --max-tokens 2 "$T/vocab"
check "records before a token outside the vocabulary" \
    test "$(recs count <"$T/out")" = 2

# A NaN weight (the embedding of "Z"): the prompt it reaches stops the
# run with its record named, after the records before it; no NaN is
# ever written.
mkdir "$T/nan" && cp "$T/m"/* "$T/nan" || fail "copy of the checkpoint"
"$PYTHON3" - "$T/nan/model.safetensors" <<'E' || fail "NaN weights"
import json, struct, sys
f = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", f[:8])[0]
t = json.loads(f[8:8 + n])["model.embed_tokens.weight"]
C = t["shape"][1]
at = 8 + n + t["data_offsets"][0] + ord("Z") * C * 4
f[at:at + C * 4] = struct.pack("<f", float("nan")) * C
open(sys.argv[1], "wb").write(f)
E
printf '{"prompt":"a"}\n{"prompt":"b"}\n{"prompt":"Z"}\n{"prompt":"c"}\n' \
    >"$T/z"
expect_fail 1 '^rollout: .*z: record 3: field "logprobs": sample 0, token 0: log-probability -?nan: the model.s output is not finite$' \
    rollout -m "$T/nan" -n 2 --max-tokens 3 "$T/z"
check "records before a NaN log-probability" \
    test "$(recs count <"$T/out")" = 4
recs to-json <"$T/out" >"$T/outj"
check "no NaN written" test "$(grep -ci nan "$T/outj")" = 0

expect_fail 2 'usage: rollout' rollout
expect_fail 2 '^rollout: .*--top-p' r --top-p 1.5 </dev/null
expect_fail 2 '^rollout: .*--top-p' r --top-p 0 </dev/null
expect_fail 2 '^rollout: .*--temperature' r --temperature -1 </dev/null
expect_fail 2 '^rollout: .*--shard' r --shard 2/2 </dev/null
expect_fail 2 '^rollout: .*--shard' r --shard 1 </dev/null
expect_fail 2 '^rollout: .*--truncate' r --truncate right </dev/null
expect_fail 2 '^rollout: .*--stop' r --stop '' </dev/null
expect_fail 2 '^rollout: .*--chat-template' r --chat-template nope </dev/null
expect_fail 2 '^rollout: .*-n' r -n x </dev/null
expect_fail 1 '^rollout: .*no language-model head' \
    rollout -m "$T/rm" </dev/null
expect_fail 1 '^rollout: ' rollout -m "$T/nonexistent" </dev/null
finish
