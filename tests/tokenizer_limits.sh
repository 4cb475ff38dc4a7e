#!/bin/sh
# tokenizer_limits: a tokenizer regex that hits a PCRE2 limit on one
# record's text stops the tool with status 1, naming the input, the record
# and the field (issue 19 item 16), and the records before it are written.
# The pre-tokenizer's Split pattern backtracks exponentially on a run of
# a's; its own (*LIMIT_MATCH=1000) makes the limit hit at once.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

ckpt init -o "$T/m" --dim 32 --layers 2 --heads 2 --ffn 64 --ctx 64 \
    --seed 1 >/dev/null || { fail "ckpt init"; finish; }
"$PYTHON3" - "$T/m/tokenizer.json" <<'E' || fail "the fixture"
import json, sys
t = json.load(open(sys.argv[1]))
t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "behavior": "Isolated", "invert": False,
     "pattern": {"Regex": r"(*LIMIT_MATCH=1000)(?:a|a)*c|\S+|\s+"}},
    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
     "use_regex": False}]}
json.dump(t, open(sys.argv[1], "w"))
E
a=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
printf '{"id":"a","prompt":"1+1=","response":"2"}\n' >"$T/p.jsonl"
cp "$T/p.jsonl" "$T/r.jsonl"
printf '{"id":"b","prompt":"x %s","response":"2"}\n' "$a" >>"$T/p.jsonl"
printf '{"id":"b","prompt":"1+1=","response":"x %s"}\n' "$a" >>"$T/r.jsonl"
printf '{"id":"a","messages":[{"role":"user","content":"hi"}]}\n' >"$T/c.jsonl"
printf '{"id":"b","messages":[{"role":"user","content":"x %s"}]}\n' "$a" \
    >>"$T/c.jsonl"
msg='tokenizer: regular expression failed \(match limit exceeded\)$'

# The text is fine, and the model reads it: only the run of a's fails.
printf '{"text":"1+1="}\n' | ckpt tokenize -J "$T/m" >"$T/got" ||
    fail "tokenize a plain text"

# records STEP FILE N: the output of the last check holds N records.
records() {
	check "$1: the records before are written" \
	    test "$(recs count <"$T/out")" = "$2"
}

expect_fail 1 "^rollout: .*/p.jsonl: record 2: field \"prompt\": $msg" \
    rollout -m "$T/m" --max-tokens 2 "$T/p.jsonl"
records rollout 1
expect_fail 1 "^rollout: .*/c.jsonl: record 2: field \"messages\": $msg" \
    rollout -m "$T/m" --max-tokens 2 --chat-template chatml "$T/c.jsonl"
records "rollout, messages" 1
expect_fail 1 "^score: .*/p.jsonl: record 2: field \"prompt\": $msg" \
    score --logprob "$T/m" "$T/p.jsonl"
records "score, prompt" 1
expect_fail 1 "^score: .*/r.jsonl: record 2: field \"response\": $msg" \
    score --logprob "$T/m" "$T/r.jsonl"
records "score, response" 1
printf '{"text":"1+1="}\n{"text":"x %s"}\n' "$a" >"$T/t.jsonl"
expect_fail 1 "^ckpt: .*/t.jsonl: record 2: field \"text\": $msg" \
    ckpt tokenize "$T/m" "$T/t.jsonl"
records "ckpt tokenize" 1
# train-step: a conversation and a plain prompt name their record.
printf '{"id":"a","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"ok"}]}\n' >"$T/s.jsonl"
printf '{"id":"b","messages":[{"role":"user","content":"x %s"},{"role":"assistant","content":"ok"}]}\n' "$a" >>"$T/s.jsonl"
expect_fail 1 "^train-step: stdin: record 2: field \"messages\": $msg" \
    train-step -m "$T/m" -o "$T/o" --loss sft --chat-template chatml \
    <"$T/s.jsonl"
expect_fail 1 "^train-step: stdin: record 2: field \"prompt\": $msg" \
    train-step -m "$T/m" -o "$T/o" --loss sft <"$T/p.jsonl"

finish
