#!/bin/sh
# ckpt's refusals, each with its status and message: sizes ckpt init cannot
# make, configs no tool can run, checkpoints holding non-finite weights;
# and a checkpoint reached through a symbolic link.
. "$top_srcdir/tests/lib.sh"
cd "$T" || exit 1

# init: absurd sizes are a usage error before any allocation, so the
# sanitizer build says so too instead of aborting.
expect_fail 2 "^ckpt: init: these sizes make [0-9]{13} parameters; ckpt init makes at most 2147483648" \
    ckpt init -o big --dim 65536 --vocab-size 16777216 --heads 1 --layers 1 --ffn 1
expect_fail 2 "^ckpt: init: these sizes make [0-9]+ parameters" \
    ckpt init -o big --dim 8192 --layers 1024 --heads 64 --ffn 1048576
[ -e big ] && fail "init left big behind"

# info refuses what every other tool refuses (model_config_from_json):
# no layers, heads that do not divide, no vocabulary.
check "init" ckpt init -o m --dim 32 --layers 2 --heads 4 --ffn 64 --ctx 64 \
    --seed 1
echo '{"prompt":"a"}' >p.jsonl
# bad KEY VALUE: a copy of m whose config.json sets KEY to VALUE.
bad() {
	rm -rf bad; cp -r m bad
	sed "s/\"$1\": [0-9]*/\"$1\": $2/" m/config.json >bad/config.json
}
bad num_hidden_layers 0
expect_fail 1 "^ckpt: bad/config.json: \"num_hidden_layers\" = 0 is out of range" ckpt info bad
expect_fail 1 "\"num_hidden_layers\" = 0 is out of range" rollout -m bad p.jsonl
bad num_key_value_heads 3
expect_fail 1 "^ckpt: bad/config.json: model config: num_attention_heads 4 is not a multiple of num_key_value_heads 3" ckpt info bad
expect_fail 1 "num_attention_heads 4 is not a multiple" rollout -m bad p.jsonl
bad vocab_size 0
expect_fail 1 "^ckpt: bad/config.json: \"vocab_size\" = 0 is out of range" ckpt info -J bad
bad head_dim 7
expect_fail 1 "^ckpt: bad/config.json: model config: head_dim 7 is odd" ckpt info bad
check "info of a good config" ckpt info m

# A symbolic link to a checkpoint directory, read and written through: the
# checkpoint it points to is replaced, and the link stays a link.
check "init m2" ckpt init -o m2 --dim 32 --layers 2 --heads 4 --ffn 64 \
    --ctx 64 --seed 2
cp -r m target; ln -s target link
mkdir sub; ln -s ../target sub/link
check "convert from a link" ckpt convert link from-link
same "convert from a link" m/model.safetensors from-link/model.safetensors
check "convert onto a link" ckpt convert m2 link
[ -L link ] || fail "convert replaced the link itself"
same "convert onto a link" m2/model.safetensors target/model.safetensors
check "convert onto a relative link" ckpt convert m sub/link
same "through sub/link" m/model.safetensors target/model.safetensors
ls -a | grep -q '\.tmp-' && fail "a temporary directory is left"
check "to an archive" ckpt convert m m.tar
ln -s m.tar alink.tar
check "convert onto a link to an archive" ckpt convert m2 alink.tar
[ -L alink.tar ] || fail "convert replaced the archive's link"
check "from the archive" ckpt convert m.tar back
same "onto an archive link" m2/model.safetensors back/model.safetensors

# diff does not report a distance to a NaN or an infinity (a NaN compares
# false with everything, and passed for 0).
fx="$PYTHON3 $top_srcdir/tests/merge_fixture.py"
$fx make fa w=1,2,3,4 n=1,1 && $fx make fn w=1,nan,3,4 n=1,1 &&
    $fx make fi w=1,2,3,4 n=inf,1 || fail "fixture"
expect_fail 1 '^ckpt: fn/model.safetensors: tensor "w": element 1 is NaN$' \
    ckpt diff fa fn
expect_fail 1 '^ckpt: fn/model.safetensors: tensor "w": element 1 is NaN$' \
    ckpt diff -J fn fa
expect_fail 1 '^ckpt: fi/model.safetensors: tensor "n": element 0 is infinite$' \
    ckpt diff fa fi
ckpt diff -J fa fa >d.json || fail "diff of finite tensors"
grep -q '"name":"w","l2":0.0' d.json || fail "diff fa fa: $(cat d.json)"

finish
