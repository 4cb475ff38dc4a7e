#!/bin/sh
# Checkpoints as the Hub holds them (tests/fixtures/hub, made by
# tests/gen_hub_fixtures.py) load in every tool, and what a checkpoint
# says is kept: config.json keys prefpipe does not use pass through
# train-step, merge and ckpt convert; model_type and architectures stay;
# torch_dtype says what was written; the tokenizer and generation files
# travel with the model; huge integers as transformers writes them are
# read; tied embeddings are written as transformers writes them.
. "$top_srcdir/tests/lib.sh"
cd "$T" || exit 1
H=$fixtures/hub
big=1000000000000000019884624838656
printf '%s\n' '{"tokens":[1,17,18,31,26,19,15]}' \
    '{"prompt_tokens":[1,20,28],"response_tokens":[4,23,9,30,13,24,22]}' \
    >sft.jsonl

# Every kind loads: as a model (info), and for training.
for k in tied_embed tied_alias tied_head untied sharded bf16; do
	ckpt info "$H/$k" >/dev/null || fail "info $k"
	train-step -m "$H/$k" -o "t_$k" --loss sft <sft.jsonl >/dev/null ||
	    fail "train-step on $k"
done
# Tied embeddings come back in transformers' form: the embedding, no head.
for k in tied_alias tied_head; do
	ckpt info "t_$k" >info.txt
	grep -q '^model.embed_tokens.weight ' info.txt ||
	    fail "$k: trained without model.embed_tokens.weight"
	grep -q '^lm_head.weight ' info.txt && fail "$k: trained with lm_head"
	same "$k trains as tied_embed" t_tied_embed/model.safetensors \
	    "t_$k/model.safetensors"
done
# ckpt convert, tensor by tensor, writes the same form: a head stored
# alone (with or without the alias) becomes the embedding.
for k in tied_embed tied_alias tied_head; do
	ckpt convert "$H/$k" "c_$k" || fail "convert $k"
done
for k in tied_alias tied_head; do
	same "$k converts as tied_embed" c_tied_embed/model.safetensors \
	    "c_$k/model.safetensors"
done
ckpt info c_tied_alias | grep -q '^lm_head.weight ' &&
    fail "convert tied_alias: lm_head.weight written"
same "sharded trains as untied" t_untied/model.safetensors \
    t_sharded/model.safetensors
same "bf16 trains as untied" t_untied/model.safetensors \
    t_bf16/model.safetensors

# The issue's reproduction: a Llama-2-style config ("pretraining_tp": 1 and
# the rest), trained, then merged with its base.
same "config.json through train-step" "$H/untied/config.json" \
    t_untied/config.json
check "merge base and trained" merge -o soup "$H/untied" t_untied
same "config.json through merge" "$H/untied/config.json" soup/config.json
check "convert" ckpt convert t_untied conv.tar.zst
check "convert back" ckpt convert conv.tar.zst conv
same "config.json through convert" "$H/untied/config.json" conv/config.json

# A Mistral config stays one; unknown keys and a huge integer stay as they
# are; torch_dtype says what was written; the tokenizer files come along.
cp -r "$H/untied" mis
sed -e 's/"LlamaForCausalLM"/"MistralForCausalLM"/' \
    -e 's/"model_type": "llama"/"model_type": "mistral"/' \
    -e "s/\"pretraining_tp\": 1/\"pretraining_tp\": 1, \"prefpipe_test_big\": $big/" \
    "$H/untied/config.json" >mis/config.json
printf '{"model_max_length": %s, "tokenizer_class": "LlamaTokenizer"}\n' \
    "$big" >mis/tokenizer_config.json
echo '{"bos_token": "<s>"}' >mis/special_tokens_map.json
ckpt info mis >/dev/null || fail "info: a huge integer in config.json"
check "train bf16" train-step -m mis -o mis_bf16 --loss sft --dtype bf16 \
    <sft.jsonl >/dev/null
"$PYTHON3" - mis/config.json mis_bf16/config.json <<'X' || fail "bf16 config"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert b.pop("torch_dtype") == "bfloat16", "torch_dtype"
assert a.pop("torch_dtype") == "float32"
assert a == b, "keys changed: %r" % set(a.items()) ^ set(b.items())
assert b["architectures"] == ["MistralForCausalLM"], b["architectures"]
assert b["model_type"] == "mistral"
assert b["prefpipe_test_big"] == 1000000000000000019884624838656
X
for f in tokenizer_config.json special_tokens_map.json \
    generation_config.json; do
	same "$f through train-step" "mis/$f" "mis_bf16/$f"
done
check "merge bf16" merge -o mis_m --dtype bf16 mis mis_bf16
grep -q '"torch_dtype": "bfloat16"' mis_m/config.json ||
	fail "merge --dtype bf16: torch_dtype"
check "merge f32 of bf16" merge -o mis_f mis_bf16
grep -q '"torch_dtype": "float32"' mis_f/config.json ||
	fail "merge writing f32: torch_dtype still bfloat16"
grep -q '"MistralForCausalLM"' mis_f/config.json || fail "merge: not mistral"
same "tokenizer_config.json through merge" mis/tokenizer_config.json \
    mis_f/tokenizer_config.json

# A reward head on a Mistral body: MistralForSequenceClassification.
printf '%s\n' '{"prompt_tokens":[1,8],"chosen":{"response_tokens":[22,6]},"rejected":{"response_tokens":[7,4]}}' >rm.jsonl
train-step -m mis -o mis_rm --loss rm --add-head <rm.jsonl >/dev/null ||
	fail "train-step --add-head"
grep -q '"MistralForSequenceClassification"' mis_rm/config.json ||
	fail "add-head: $(grep -A1 architectures mis_rm/config.json)"
"$PYTHON3" - mis/config.json mis_rm/config.json <<'X' || fail "add-head config"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert b.pop("id2label") == {"0": "LABEL_0"}
assert b.pop("label2id") == {"LABEL_0": 0}
assert b.pop("architectures") == ["MistralForSequenceClassification"]
a.pop("architectures")
assert a == b, "keys changed: %r" % (set(a) ^ set(b))
X
ckpt info mis_rm >/dev/null || fail "info of the reward model"

# ckpt init --tokenizer: the tokenizer read as every tool reads it, so a
# tokenizer_config.json with a huge model_max_length works, and its files
# come along as they are.
check "init" ckpt init -o m --dim 16 --layers 1 --heads 2 --ffn 32 --ctx 16
mkdir tok
cp m/tokenizer.json tok/
printf '{"model_max_length": %s, "bos_token": "<|bos|>", "eos_token": "<|eos|>"}\n' \
    "$big" >tok/tokenizer_config.json
echo '{"eos_token": "<|eos|>"}' >tok/special_tokens_map.json
echo '{"bos_token_id": 256, "eos_token_id": 257, "do_sample": false}' \
    >tok/generation_config.json
check "init --tokenizer with a huge integer" ckpt init -o m2 --dim 16 \
    --layers 1 --heads 2 --ffn 32 --ctx 16 --tokenizer tok/tokenizer.json
for f in tokenizer.json tokenizer_config.json special_tokens_map.json \
    generation_config.json; do
	same "init --tokenizer: $f" "tok/$f" "m2/$f"
done
grep -q '"eos_token_id": 257' m2/config.json || fail "init: eos id"
finish
