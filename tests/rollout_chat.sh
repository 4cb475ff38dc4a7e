#!/bin/sh
# rollout: messages go through the chat template with the generation
# prompt; the template writes the special tokens itself.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
# Threads that wait by spinning starve the busy ones on a loaded machine
# (make -j, other tests): these tests are about results, not speed.
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}; export OMP_WAIT_POLICY

ckpt init -o "$T/m" || fail "ckpt init"
printf '%s\n' '{"id":1,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]}' >"$T/c.jsonl"
rollout -m "$T/m" --chat-template chatml --max-tokens 3 -J <"$T/c.jsonl" \
    >"$T/out" || fail "rollout chatml"
"$PYTHON3" - "$T/out" <<'X' || fail "chatml prompt tokens"
import json, sys
r = json.loads(open(sys.argv[1]).readline())
want = ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi"
        "<|im_end|>\n<|im_start|>assistant\n")
# The byte tokenizer has no <|im_start|>: every byte is a token.
assert r["prompt_tokens"] == list(want.encode()), r["prompt_tokens"]
assert r["messages"][1]["content"] == "Hi" and r["id"] == 1
X
# Without a template in the checkpoint: plain, the contents alone.
rollout -m "$T/m" --max-tokens 3 -J <"$T/c.jsonl" >"$T/plain" ||
    fail "rollout plain"
"$PYTHON3" -c 'import json,sys
r = json.loads(open(sys.argv[1]).readline())
assert bytes(t for t in r["prompt_tokens"] if t < 256).decode().startswith("Be brief."), r
' "$T/plain" || fail "plain template"
finish
