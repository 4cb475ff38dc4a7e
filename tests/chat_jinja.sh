#!/bin/sh
# Chat templates by their own text: a checkpoint's chat_template
# (tokenizer_config.json, or chat_template.jinja, which wins) runs through
# lib/text/jinja in rollout, score and train-step, with --template-arg;
# its errors name the file, line and column.  And training on assistant
# turns only: the tokens the template writes for them ({% generation %}
# blocks where it has them, else the difference of prefix renderings).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}; export OMP_WAIT_POLICY
J=$top_srcdir/tests/jinja

ckpt init -o "$T/base" --dim 16 --layers 1 --heads 2 --kv-heads 1 \
    --ffn 24 --ctx 1024 --vocab-size 260 --seed 5 >/dev/null ||
    fail "ckpt init"
# with_template DIR FILE: a copy of base with FILE as its chat_template
with_template() {
	rm -rf "$1"; cp -r "$T/base" "$1"
	"$PYTHON3" - "$1/tokenizer_config.json" "$2" <<'X'
import json, sys
p, t = sys.argv[1], sys.argv[2]
c = json.load(open(p))
c["chat_template"] = open(t).read()
c["bos_token"], c["eos_token"] = "<bos>", "<end_of_turn>"
json.dump(c, open(p, "w"))
X
}
# prompt_is OUT TEXT: rollout's prompt tokens are TEXT's bytes (the byte
# tokenizer: id = byte)
prompt_is() {
	"$PYTHON3" -c 'import json, sys
r = json.loads(open(sys.argv[1]).readline())
want = list(sys.argv[2].encode())
assert r["prompt_tokens"] == want, (bytes(t for t in r["prompt_tokens"] if t < 256), sys.argv[2])
' "$1" "$2"
}
nl='
'

# Gemma 3's template (refused before: no built-in is like it), as the
# reference rendered it (tests/jinja/ref/chats.jsonl, conversation 1).
with_template "$T/gemma" "$J/templates/gemma3.jinja"
printf '%s\n' '{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"What is 2+2?"}]}' >"$T/c1.jsonl"
want=$("$PYTHON3" -c 'import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["template"] == "gemma3" and r["conv"] == 1 and r["gen"] == 1:
        sys.stdout.write(r["text"] + ".")' "$J/ref/chats.jsonl")
want=${want%.}
rollout -m "$T/gemma" --max-tokens 1 -J <"$T/c1.jsonl" >"$T/out" ||
    fail "rollout gemma3"
check "gemma3 prompt" prompt_is "$T/out" "$want"
# raise_exception: its message, and the record
printf '%s\n' '{"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]}' >"$T/alt.jsonl"
expect_fail 1 'record 1: field "messages": Conversation roles must alternate user/assistant' \
    rollout -m "$T/gemma" --max-tokens 1 "$T/alt.jsonl"
# --chat-template still picks a built-in over the checkpoint's template
rollout -m "$T/gemma" --chat-template chatml --max-tokens 1 -J \
    <"$T/c1.jsonl" >"$T/out" || fail "rollout --chat-template chatml"
check "built-in over the template" prompt_is "$T/out" \
    "<|im_start|>system${nl}Be brief.<|im_end|>${nl}<|im_start|>user${nl}What is 2+2?<|im_end|>${nl}<|im_start|>assistant${nl}"

# chat_template.jinja wins over tokenizer_config.json's
cp -r "$T/gemma" "$T/file"
printf '%s\n' '{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}{% if add_generation_prompt %}[A]{% endif %}' \
    >"$T/file/chat_template.jinja"
rollout -m "$T/file" --max-tokens 1 -J <"$T/c1.jsonl" >"$T/out" ||
    fail "rollout chat_template.jinja"
check "chat_template.jinja" prompt_is "$T/out" \
    "[system] Be brief.[user] What is 2+2?[A]"

# The list form: "default", and "tool_use" when tools are given
cp -r "$T/base" "$T/named"
"$PYTHON3" - "$T/named/tokenizer_config.json" <<'X'
import json, sys
c = json.load(open(sys.argv[1]))
c["chat_template"] = [{"name": "tool_use", "template": "T{{ tools | length }}"},
                      {"name": "default", "template": "D{{ messages | length }}"}]
json.dump(c, open(sys.argv[1], "w"))
X
rollout -m "$T/named" --max-tokens 1 -J <"$T/c1.jsonl" >"$T/out" ||
    fail "rollout named default"
check "named default" prompt_is "$T/out" "D2"
rollout -m "$T/named" --max-tokens 1 -J --template-arg 'tools=[1, 2, 3]' \
    <"$T/c1.jsonl" >"$T/out" || fail "rollout named tool_use"
check "named tool_use" prompt_is "$T/out" "T3"

# --template-arg: Qwen3's enable_thinking, tools, and a string value
with_template "$T/qwen" "$J/templates/qwen3.jinja"
printf '%s\n' '{"messages":[{"role":"user","content":"Hi!"}]}' >"$T/hi.jsonl"
rollout -m "$T/qwen" --max-tokens 1 -J --template-arg enable_thinking=false \
    <"$T/hi.jsonl" >"$T/out" || fail "rollout --template-arg"
check "enable_thinking=false" prompt_is "$T/out" \
    "<|im_start|>user${nl}Hi!<|im_end|>${nl}<|im_start|>assistant${nl}<think>${nl}${nl}</think>${nl}${nl}"
rollout -m "$T/qwen" --max-tokens 1 -J --template-arg enable_thinking=true \
    <"$T/hi.jsonl" >"$T/out" || fail "rollout --template-arg true"
check "enable_thinking=true" prompt_is "$T/out" \
    "<|im_start|>user${nl}Hi!<|im_end|>${nl}<|im_start|>assistant${nl}"
rollout -m "$T/qwen" --max-tokens 1 -J \
    --template-arg 'tools=[{"type": "function", "function": {"name": "f"}}]' \
    <"$T/hi.jsonl" >"$T/out" || fail "rollout tools"
"$PYTHON3" -c 'import json, sys
r = json.loads(open(sys.argv[1]).readline())
t = bytes(r["prompt_tokens"]).decode()
assert "# Tools" in t and "{\"type\": \"function\", \"function\": {\"name\": \"f\"}}" in t, t
' "$T/out" || fail "tools reach the template"
cp -r "$T/base" "$T/greet"
printf '%s' '{{ greeting }}, {{ who | default("nobody") }}{{ n + 1 }}' \
    >"$T/greet/chat_template.jinja"
rollout -m "$T/greet" --max-tokens 1 -J --template-arg greeting=Hello \
    --template-arg n=41 <"$T/hi.jsonl" >"$T/out" || fail "string arg"
check "string and number args" prompt_is "$T/out" "Hello, nobody42"
expect_fail 2 'template-arg: "novalue": expected KEY=VALUE' \
    rollout -m "$T/qwen" --template-arg novalue "$T/hi.jsonl"
expect_fail 2 'template-arg does not apply to --exact' \
    score --exact --template-arg a=1 "$T/hi.jsonl"

# A syntax error: exit 1 naming the file, line and column
cp -r "$T/base" "$T/bad"
printf 'ok\n{%% for m in messages %%}\n  {{ m.content | }}\n{%% endfor %%}\n' \
    >"$T/bad/chat_template.jinja"
expect_fail 1 "bad/chat_template.jinja: line 3, column 18: expected a name, got '}}'" \
    rollout -m "$T/bad" --max-tokens 1 "$T/hi.jsonl"
expect_fail 1 "bad/chat_template.jinja: line 3, column 18" \
    score --logprob "$T/bad" "$T/hi.jsonl"
with_template "$T/bad2" "$T/bad/chat_template.jinja"
printf '%s\n' '{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}' >"$T/ab.jsonl"
expect_fail 1 'bad2/tokenizer_config.json: chat_template: line 3, column 18' \
    train-step -m "$T/bad2" -o "$T/x" --loss sft <"$T/ab.jsonl"

# Assistant turns only.  Two templates for one conversation: with
# {% generation %} around the content and <|im_end|> (the newline after it
# is not the assistant's), and the same text without (the turn is the
# difference of prefix renderings: it takes the newline).
cat >"$T/gen.jinja" <<'X'
{%- for m in messages %}<|im_start|>{{ m.role }}
{% if m.role == 'assistant' %}{% generation %}{{ m.content }}<|im_end|>{% endgeneration %}
{% else %}{{ m.content }}<|im_end|>
{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}
X
sed 's/{% generation %}//; s/{% endgeneration %}//' "$T/gen.jinja" >"$T/pre.jinja"
conv='[{"role":"user","content":"47+58="},{"role":"assistant","content":"105"},{"role":"user","content":"12+30="},{"role":"assistant","content":"42"}]'
echo "{\"messages\":$conv}" >"$T/multi.jsonl"
for kind in gen pre; do
	with_template "$T/$kind" "$T/$kind.jinja"
	# each turn as a reply to the conversation before it
	"$PYTHON3" - "$T/multi.jsonl" >"$T/turns.jsonl" <<'X'
import json, sys
m = json.loads(open(sys.argv[1]).readline())["messages"]
for i, x in enumerate(m):
    if x["role"] == "assistant":
        print(json.dumps({"messages": m[:i], "response": x["content"]}))
X
	score --logprob "$T/$kind" -J "$T/turns.jsonl" >"$T/lp" ||
	    fail "$kind: score --logprob"
	train-step -m "$T/$kind" -o "$T/o" --loss sft <"$T/multi.jsonl" |
	    recs to-tsv loss >"$T/loss" || fail "$kind: train-step"
	"$PYTHON3" - "$kind" "$T/lp" "$T/loss" <<'X' || fail "$kind: scored tokens"
import json, sys
kind, lp, loss = sys.argv[1], sys.argv[2], float(open(sys.argv[3]).read())
rows = [json.loads(l) for l in open(lp)]
# the reply tokens: exactly the assistant's text as the template writes it
end = "<|im_end|>" if kind == "gen" else "<|im_end|>\n"
for r, want in zip(rows, ["105", "42"]):
    assert len(r["ref_logprobs"]) == len((want + end).encode()), (kind, r)
lps = [x for r in rows for x in r["ref_logprobs"]]
# SFT on the whole conversation scores those tokens and no others
want = -sum(lps) / len(lps)
assert abs(loss - want) < 1e-4 * abs(want), (kind, loss, want)
X
done
# DPO and RM records: the reply is the template's assistant turn, so the
# reference log-probs of score and the policy's of train-step agree (the
# loss at step 1 is log 2 when the policy is the reference)
printf '%s\n' "{\"messages\":[{\"role\":\"user\",\"content\":\"47+58=\"}],\"chosen\":{\"response\":\"105\"},\"rejected\":{\"response\":\"104\"}}" |
    score --logprob "$T/gen" -J >"$T/pair" || fail "score pair"
train-step -m "$T/gen" -o "$T/o" --loss dpo <"$T/pair" |
    recs to-tsv loss >"$T/dpo" || fail "train-step dpo"
"$PYTHON3" -c 'import math, sys
l = float(open(sys.argv[1]).read())
assert abs(l - math.log(2)) < 1e-5, l' "$T/dpo" || fail "dpo from the template"
# policy gradient on a sample in text: the reference's per-token values fit
# the template's tokens of the reply (a mismatch is an error), KL 0
printf '%s\n' "{\"messages\":[{\"role\":\"user\",\"content\":\"47+58=\"}],\"response\":\"105\",\"reward\":1}" |
    score --logprob "$T/gen" --as ref -J >"$T/pg" || fail "score pg"
train-step -m "$T/gen" -o "$T/o" --loss pg --kl-coef 0.1 <"$T/pg" |
    recs to-tsv kl >"$T/kl" || fail "train-step pg"
"$PYTHON3" -c 'import sys
k = float(open(sys.argv[1]).read())
assert abs(k) < 1e-6, k' "$T/kl" || fail "pg kl from the template"
finish
