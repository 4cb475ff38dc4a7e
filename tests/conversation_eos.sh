#!/bin/sh
# conversation_eos: one messages -> tokens path and one end-of-turn policy
# for rollout, score and train-step, on a checkpoint shaped like
# Meta-Llama-3-8B-Instruct as first published: the real Llama 3 tokenizer
# (tests/tokenizer/small_llama3.json, its merges cut down), config.json
# eos_token_id 128001 (<|end_of_text|>), generation_config.json
# [128001, 128009], tokenizer_config.json eos_token <|end_of_text|> and
# the Llama 3 chat template.  rollout stops at <|eot_id|> (128009); a
# chat response from text must then end with <|eot_id|> in train-step and
# score too, and a plain text response with <|end_of_text|>.
. "$top_srcdir/tests/lib.sh"
cmp_tool=$top_builddir/tests/unit_train_cmp
L=$T/l3
EOT=128009 EOTEXT=128001

ckpt init -o "$L" --tokenizer "$top_srcdir/tests/tokenizer/small_llama3.json" \
    --dim 16 --layers 1 --heads 2 --ffn 32 --ctx 64 --seed 1 >/dev/null ||
    fail "ckpt init"
"$PYTHON3" - "$L" "$top_srcdir/tests/tokenizer/chat_templates.json" <<'X' ||
import json, sys
d, templates = sys.argv[1], json.load(open(sys.argv[2]))
# Meta's tokenizer.json adds BOS in its post-processor (the fixture's
# merges are cut down, and so was this).
tok = json.load(open(d + "/tokenizer.json"))
bos = "<|begin_of_text|>"
tok["post_processor"] = {"type": "Sequence", "processors": [
    tok["post_processor"],
    {"type": "TemplateProcessing",
     "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}}],
     "pair": [{"SpecialToken": {"id": bos, "type_id": 0}},
              {"Sequence": {"id": "A", "type_id": 0}},
              {"SpecialToken": {"id": bos, "type_id": 1}},
              {"Sequence": {"id": "B", "type_id": 1}}],
     "special_tokens": {bos: {"id": bos, "ids": [128000], "tokens": [bos]}}}]}
json.dump(tok, open(d + "/tokenizer.json", "w"))
cfg = {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>",
       "chat_template": templates["llama3"], "clean_up_tokenization_spaces": True,
       "model_input_names": ["input_ids", "attention_mask"],
       "tokenizer_class": "PreTrainedTokenizerFast"}
s = json.dumps(cfg, indent=2)
# As Meta's file has it: a model_max_length no double holds exactly.
s = s[:-2] + ',\n  "model_max_length": 1000000000000000019884624838656\n}'
open(d + "/tokenizer_config.json", "w").write(s)
json.dump({"bos_token_id": 128000, "eos_token_id": [128001, 128009],
           "do_sample": True, "temperature": 0.6, "top_p": 0.9,
           "max_length": 4096, "transformers_version": "4.40.0.dev0"},
          open(d + "/generation_config.json", "w"), indent=2)
X
    fail "writing the Hub's files"
grep -q '"eos_token_id": 128001' "$L/config.json" ||
    fail "config.json does not say 128001"

# Token ids written by hand from the Llama 3 format, through the
# tokenizer only (ckpt tokenize), not through the chat template.
ids() { # TEXT [--no-special]
	printf '%s\n' "$1" | "$PYTHON3" -c 'import json,sys
print(json.dumps({"text": sys.stdin.read()[:-1]}))' |
	    ckpt tokenize ${2-} -J "$L" | sed 's/.*"tokens":\[\([^]]*\)\].*/\1/'
}
nl='
'
P_chat=$(ids "<|begin_of_text|><|start_header_id|>user<|end_header_id|>${nl}${nl}Hi<|eot_id|><|start_header_id|>assistant<|end_header_id|>${nl}${nl}" --no-special)
P_plain=$(ids "Hi")
R=$(ids "Hello there" --no-special)
Y=$(ids "Yes" --no-special)
N=$(ids "No" --no-special)
case $P_chat in 128000,128006,*,128007,*,128009,128006,*,128007,*) ;;
*) fail "hand-made chat prompt: $P_chat" ;; esac
case $P_plain in 128000,*) ;; *) fail "plain prompt lacks BOS: $P_plain" ;; esac

msgs='"messages":[{"role":"user","content":"Hi"}]'
echo "{$msgs,\"response\":\"Hello there\"}" >"$T/chat.jsonl"
echo "{\"prompt_tokens\":[$P_chat],\"response_tokens\":[$R,$EOT]}" \
    >"$T/chat_eot.jsonl"
echo "{\"prompt_tokens\":[$P_chat],\"response_tokens\":[$R,$EOTEXT]}" \
    >"$T/chat_eotext.jsonl"
echo '{"prompt":"Hi","response":"Hello there"}' >"$T/plain.jsonl"
echo "{\"prompt_tokens\":[$P_plain],\"response_tokens\":[$R,$EOTEXT]}" \
    >"$T/plain_eotext.jsonl"

# train-step --loss sft: text and the tokens it must stand for train the
# same weights exactly; the other end token does not.
sft() { train-step -m "$L" -o "$T/$1" --loss sft --lr 1e-2 <"$T/$1.jsonl" \
    >/dev/null || fail "train-step $1"; }
for f in chat chat_eot chat_eotext plain plain_eotext; do sft $f; done
check "sft: a chat response ends with <|eot_id|>" \
    "$cmp_tool" "$T/chat" "$T/chat_eot" 0
"$cmp_tool" "$T/chat" "$T/chat_eotext" 0 >/dev/null &&
    fail "sft: the test cannot tell <|eot_id|> from <|end_of_text|>"
check "sft: plain text ends with <|end_of_text|>" \
    "$cmp_tool" "$T/plain" "$T/plain_eotext" 0

# train-step --loss dpo: both sides of a chat pair end their turn.
echo "{$msgs,\"chosen\":{\"response\":\"Yes\"},\"rejected\":{\"response\":\"No\"}}" \
    >"$T/pair.jsonl"
echo "{\"prompt_tokens\":[$P_chat],\"chosen\":{\"response_tokens\":[$Y,$EOT]},\"rejected\":{\"response_tokens\":[$N,$EOT]}}" \
    >"$T/pair_eot.jsonl"
for f in pair pair_eot; do
	train-step -m "$L" -o "$T/$f" --loss dpo --ref "$L" --lr 1e-2 \
	    <"$T/$f.jsonl" >/dev/null || fail "train-step dpo $f"
done
check "dpo: chat responses end with <|eot_id|>" \
    "$cmp_tool" "$T/pair" "$T/pair_eot" 0

# score --logprob reads the same tokens.
lps() { score --logprob "$L" -J "$1" | "$PYTHON3" -c 'import json,sys
print(json.loads(sys.stdin.readline())["ref_logprobs"])'; }
lps "$T/chat.jsonl" >"$T/s1"
lps "$T/chat_eot.jsonl" >"$T/s2"
same "score: a chat response ends with <|eot_id|>" "$T/s1" "$T/s2"
lps "$T/plain.jsonl" >"$T/s3"
lps "$T/plain_eotext.jsonl" >"$T/s4"
same "score: plain text ends with <|end_of_text|>" "$T/s3" "$T/s4"

# rollout stops at <|eot_id|>: a model made to put all its weight on it
# (every embedding 1, the blocks' outputs 0, lm_head zero but for the
# <|eot_id|> row).
cp -R "$L" "$T/eotm"
"$PYTHON3" - "$T/eotm/model.safetensors" $EOT <<'X' || fail "editing weights"
import json, struct, sys
p, eot = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, "rb").read())
n = struct.unpack("<Q", b[:8])[0]
h, base = json.loads(b[8:8 + n]), 8 + n
def span(name):
    s, e = h[name]["data_offsets"]
    return base + s, base + e
one = struct.pack("<f", 1.0)
s, e = span("model.embed_tokens.weight"); b[s:e] = one * ((e - s) // 4)
for t in ("self_attn.o_proj", "mlp.down_proj"):
    s, e = span("model.layers.0.%s.weight" % t); b[s:e] = bytes(e - s)
s, e = span("lm_head.weight"); b[s:e] = bytes(e - s)
row = s + eot * 16 * 4; b[row:row + 64] = one * 16
open(p, "wb").write(b)
X
echo "{\"id\":1,$msgs}" >"$T/prompt.jsonl"
rollout -m "$T/eotm" --temperature 0 --max-tokens 4 -J <"$T/prompt.jsonl" \
    >"$T/roll.jsonl" || fail "rollout"
"$PYTHON3" - "$T/roll.jsonl" "$P_chat" $EOT <<'X' || fail "rollout stop"
import json, sys
r = json.loads(open(sys.argv[1]).readline())
assert r["prompt_tokens"] == [int(x) for x in sys.argv[2].split(",")], r
assert r["response_tokens"] == [int(sys.argv[3])], r
assert r["finish"] == "stop" and r["response"] == "", r
X
# What rollout wrote trains the same from its text as from its tokens.
sed 's/"prompt_tokens":\[[^]]*\],//; s/"response_tokens":\[[^]]*\],//' \
    "$T/roll.jsonl" >"$T/rolltext.jsonl"
grep -q _tokens "$T/rolltext.jsonl" && fail "sed left tokens in"
train-step -m "$L" -o "$T/rt" --loss sft <"$T/rolltext.jsonl" >/dev/null &&
train-step -m "$L" -o "$T/rk" --loss sft <"$T/roll.jsonl" >/dev/null ||
    fail "train-step on rollout's output"
check "rollout's text and tokens train alike" "$cmp_tool" "$T/rt" "$T/rk" 0
finish
