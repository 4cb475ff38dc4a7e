#!/bin/sh
# ckpt init, info, convert and diff: round trips between the forms are bit
# for bit, bf16 rounds like torch, and a Python reader with only json, numpy
# and torch reads what we write.
. "$top_srcdir/tests/lib.sh"
cd "$T" || exit 1

check "init" ckpt init -o m --seed 7
check "init again" ckpt init -o m2 --seed 7
same "init is deterministic" m/model.safetensors m2/model.safetensors
check "init, another seed" ckpt init -o m3 --seed 8
if cmp -s m/model.safetensors m3/model.safetensors; then
	fail "seeds 7 and 8 give the same weights"
fi
for f in config.json tokenizer.json tokenizer_config.json \
    generation_config.json model.safetensors; do
	[ -f "m/$f" ] || fail "init wrote no $f"
done

# info: text and records.
ckpt info m >info.txt || fail "info"
grep -q 'LlamaForCausalLM' info.txt || fail "info: no architecture"
grep -q 'parameters    139968' info.txt || fail "info: parameter count"
grep -Eq '^model.embed_tokens.weight +\[259, 64\] +F32' info.txt ||
	fail "info: embedding line"
ckpt info -J m >info.json || fail "info -J"
[ "$(wc -l <info.json)" -eq 22 ] || fail "info -J: want 22 records"
grep -q '"params":139968' info.json || fail "info -J: params"

# convert: directory -> tar.zst -> directory, tar, tar.gz, bit for bit.
check "to tar.zst" ckpt convert m m.tar.zst
check "from tar.zst" ckpt convert m.tar.zst back
for f in config.json tokenizer.json tokenizer_config.json \
    generation_config.json model.safetensors; do
	same "dir -> tar.zst -> dir: $f" m/$f back/$f
done
check "to tar" ckpt convert back m.tar
check "to tar.gz" ckpt convert m.tar m.tar.gz
check "tar.gz to dir" ckpt convert m.tar.gz back2
same "via tar and tar.gz" m/model.safetensors back2/model.safetensors
tar -tzf m.tar.gz | grep -qx 'm/config.json' ||
	fail "tar.gz does not hold m/config.json"
ckpt info m.tar.zst >/dev/null || fail "info on an archive"

# Shards with an index, as on the Hub, become one model.safetensors.
cp -r m sharded
check "shard" "$PYTHON3" "$top_srcdir/tests/ckpt_shard.py" sharded
ckpt info sharded | grep -q 'model-00002-of-00002.safetensors' ||
	fail "not sharded"
check "shards to one file" ckpt convert sharded unsharded
same "shards to one file" m/model.safetensors unsharded/model.safetensors
[ -e unsharded/model.safetensors.index.json ] && fail "index carried over"

# diff: a checkpoint and its copy are 0 apart everywhere.
ckpt diff -J m m.tar.zst >diff.json || fail "diff"
[ "$(grep -c '"l2":0.0,"cosine":1.0,"max_abs":0.0' diff.json)" -eq 21 ] ||
	fail "diff of copies not zero: $(head -2 diff.json)"
ckpt diff -J m m3 | grep -q '"name":"model.norm.weight","l2":0.0' ||
	fail "diff: norms of two inits differ"

# bf16: rounded to nearest even exactly as torch does; f16 loads.
check "convert bf16" ckpt convert --dtype bf16 m mb
grep -q '"torch_dtype": "bfloat16"' mb/config.json || fail "torch_dtype"
check "bf16 back to f32" ckpt convert --dtype f32 mb mf
check "bf16 again: same bits" ckpt convert --dtype bf16 mf mb2
same "bf16 -> f32 -> bf16" mb/model.safetensors mb2/model.safetensors
check "init f16" ckpt init -o mh --dtype f16 --seed 7
ckpt info mh | grep -q 'F16$' || fail "f16 init is not F16"

# Training state rides along untouched, whatever --dtype says.
cp -r m st; cp m3/model.safetensors st/optimizer.safetensors
echo '{"step": 5}' >st/trainer_state.json
check "state to bf16 archive" ckpt convert --dtype bf16 st st.tar.zst
check "state back" ckpt convert st.tar.zst st2
same "optimizer state kept" st/optimizer.safetensors st2/optimizer.safetensors
same "trainer state kept" st/trainer_state.json st2/trainer_state.json

# A Python reader agrees on format, shapes, config and bf16 rounding.
check "qwen2, tied, score head" ckpt init -o q --arch qwen2 --tie \
    --head score --vocab-size 300 --dim 32 --heads 2 --kv-heads 1
if "$PYTHON3" -c 'import importlib.util as u, sys; sys.exit(not u.find_spec("torch"))' 2>/dev/null; then
	check "python reads it" "$PYTHON3" \
	    "$top_srcdir/tests/ckpt_safetensors.py" m:mb q
else
	echo "no torch in $PYTHON3: python checks skipped" >&2
fi
ckpt info q | grep -q 'Qwen2ForSequenceClassification' ||
	fail "no sequence classification architecture"
ckpt info q | grep -Eq '^score.weight +\[1, 32\]' || fail "no score.weight"
ckpt info q | grep -q 'lm_head' && fail "score model has an lm_head"
ckpt info q | grep -q 'vocab 300' || fail "padded vocabulary"

# A tokenizer of one's own: its size and special tokens, and the files next
# to it.
check "init --tokenizer FILE" ckpt init -o tk --tokenizer m/tokenizer.json \
    --vocab-size 320 --dim 32 --heads 2
ckpt info tk | grep -q 'vocab 320' || fail "--tokenizer FILE: vocab"
grep -q '"eos_token_id": 257' tk/config.json || fail "--tokenizer FILE: eos"
grep -q '"pad_token": "<|pad|>"' tk/tokenizer_config.json ||
	fail "--tokenizer FILE: no tokenizer_config.json"

# Usage errors.
expect_fail 2 'usage' ckpt
expect_fail 2 'unknown subcommand' ckpt frob
expect_fail 2 'less than the tokenizer' ckpt init -o x --vocab-size 100
expect_fail 2 'usage' ckpt convert m
expect_fail 1 'nothere: No such file' ckpt info nothere
finish
