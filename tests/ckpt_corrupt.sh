#!/bin/sh
# Every kind of damaged checkpoint is an error (status 1) naming the file and
# the tensor: truncated or corrupt safetensors, a missing tensor, a shape that
# disagrees with config.json, missing or bad config.json, broken shards.
. "$top_srcdir/tests/lib.sh"
cd "$T" || exit 1
"$PYTHON3" -c 'import json' 2>/dev/null || skip "no $PYTHON3"
check "init" ckpt init -o good --seed 1

# damage MODE: a copy of good with model.safetensors damaged that way.
damage() {
	rm -rf "$1"; cp -r good "$1"
	"$PYTHON3" "$top_srcdir/tests/ckpt_corrupt.py" "$1" "$1/model.safetensors"
}
st='bad/model.safetensors'
damage truncate; mv truncate bad
expect_fail 1 "$st: tensor \"lm_head.weight\": data_offsets .* out of range.*truncated" ckpt info bad
rm -rf bad; damage hugelen; mv hugelen bad
expect_fail 1 "$st: header length [0-9]+ exceeds the file" ckpt info bad
rm -rf bad; damage notjson; mv notjson bad
expect_fail 1 "$st: header is not JSON" ckpt info bad
rm -rf bad; damage overlap; mv overlap bad
expect_fail 1 "$st: tensor \"model.norm.weight\": its data overlaps tensor \"model.layers.1.mlp.down_proj.weight\"" ckpt info bad
# The offsets must tile the data section exactly (the safetensors format).
rm -rf bad; damage lenminus; mv lenminus bad
expect_fail 1 "$st: trailing data: the tensors end at byte [0-9]+ of the data section's [0-9]+ .*wrong header length" ckpt info bad
rm -rf bad; damage lenplus; mv lenplus bad
expect_fail 1 "$st: (header is not JSON|tensor \"lm_head.weight\": data_offsets .* out of range)" ckpt info bad
rm -rf bad; damage gap; mv gap bad
expect_fail 1 "$st: tensor \"model.norm.weight\": data_offsets begin at [0-9]+, but the data before it ends at [0-9]+ \(a gap" ckpt info bad
rm -rf bad; damage trailing; mv trailing bad
expect_fail 1 "$st: trailing data" ckpt info bad
expect_fail 1 "$st: trailing data" merge -o merged bad
rm -rf bad; damage count; mv count bad
expect_fail 1 "$st: tensor \"model.norm.weight\": 256 bytes, but shape \[65\] of F32 needs 260" ckpt info bad
rm -rf bad; damage dtype; mv dtype bad
expect_fail 1 "$st: tensor \"model.norm.weight\": unsupported dtype I8" ckpt info bad
rm -rf bad; damage missing; mv missing bad
expect_fail 1 "bad/model.safetensors: tensor \"model.norm.weight\": missing" ckpt info bad
: >tiny.bin
rm -rf bad; cp -r good bad; cp tiny.bin bad/model.safetensors
expect_fail 1 "$st: truncated: 0 bytes" ckpt info bad

# config.json: disagreeing, missing, not JSON.
rm -rf bad; cp -r good bad
sed 's/"intermediate_size": 192/"intermediate_size": 100/' good/config.json >bad/config.json
expect_fail 1 "bad/model.safetensors: tensor \"model.layers.0.mlp.gate_proj.weight\" has shape \[192, 64\], config.json says \[100, 64\]" ckpt info bad
rm bad/config.json
expect_fail 1 "bad/config.json: missing" ckpt info bad
echo '{"model_type": ' >bad/config.json
expect_fail 1 "bad/config.json: not JSON" ckpt info bad
rm -rf bad; cp -r good bad; rm bad/model.safetensors
expect_fail 1 "bad/model.safetensors: missing" ckpt info bad

# Shards: the index names a shard that is not there, or a tensor its shard
# lacks.
rm -rf bad; cp -r good bad; mv bad/model.safetensors bad/model-00001-of-00002.safetensors
cat >bad/model.safetensors.index.json <<'X'
{"metadata": {}, "weight_map": {"model.norm.weight": "model-00001-of-00002.safetensors",
 "lm_head.weight": "model-00002-of-00002.safetensors"}}
X
expect_fail 1 "bad/model-00002-of-00002.safetensors: missing" ckpt info bad
cp bad/model-00001-of-00002.safetensors bad/model-00002-of-00002.safetensors
expect_fail 1 "tensor \"lm_head.weight\" is in both" ckpt info bad

# A corrupt archive.
head -c 1000 good/model.safetensors >bad.tar.zst
expect_fail 1 "bad.tar.zst: not a checkpoint" ckpt info bad.tar.zst
check "archive" ckpt convert good good.tar.zst
head -c 200000 good.tar.zst >cut.tar.zst
expect_fail 1 "cut.tar.zst: " ckpt info cut.tar.zst
expect_fail 1 "good/config.json: not a checkpoint" ckpt info good/config.json
finish
