#!/bin/sh
# merge on real checkpoints: identities that must hold bit for bit, what the
# output carries, and inputs that cannot be merged.
. "$top_srcdir/tests/lib.sh"
cd "$T" || exit 1
check "init" ckpt init -o m --seed 1
check "init" ckpt init -o n --seed 2

# One model with weight 1, and soups of a model with itself, are the model.
check "one model" merge -o one --weights 1 m
same "one model" m/model.safetensors one/model.safetensors
same "config carried" m/config.json one/config.json
same "tokenizer carried" m/tokenizer.json one/tokenizer.json
same "generation config carried" m/generation_config.json one/generation_config.json
check "self soup" merge -o self m m
same "self soup" m/model.safetensors self/model.safetensors
check "self soup of 4" merge -o self4 m m m m
same "self soup of 4" m/model.safetensors self4/model.safetensors
check "task arithmetic on itself" merge -o ta --method task-arithmetic --base m m
same "base + 0" m/model.safetensors ta/model.safetensors
check "slerp t=0" merge -o s0 --method slerp --t 0 m n
ckpt diff -J m s0 | grep -qv '"max_abs":0.0' && fail "slerp t=0 is not the first"

# The output loads as a model; bf16 on request; no training state.
check "soup" merge -o soup m n
ckpt info soup >/dev/null || fail "soup does not load"
cp n/model.safetensors m/optimizer.safetensors
echo '{"step": 3}' >m/trainer_state.json
check "soup bf16" merge -o soup.tar.zst --dtype bf16 m n
ckpt info soup.tar.zst | grep -q 'BF16$' || fail "soup is not bf16"
ckpt info soup.tar.zst | grep -q 'optimizer\|trainer_state' &&
	fail "training state carried into a merge"

# Incompatible inputs.
check "init wide" ckpt init -o wide --dim 32 --heads 4
expect_fail 1 'wide/config.json: field "hidden_size" is 32, but 64 in m' \
    merge -o x m wide
check "init tied" ckpt init -o tied --tie
expect_fail 1 'tied/config.json: field "tie_word_embeddings" is true, but false in m' \
    merge -o x m tied
fx() { "$PYTHON3" "$top_srcdir/tests/merge_fixture.py" "$@"; }
if "$PYTHON3" -c 'import json' 2>/dev/null; then
	fx make A a=1,2 b=3,4 --tok x
	fx make B a=1,2 --tok x
	fx make C a=1,2 b=3,4:2,1 --tok x
	fx make D a=1,2 b=3,4 --tok y
	expect_fail 1 'B: tensor "b": missing \(A has it\)' merge -o x A B
	expect_fail 1 'A: tensor "b": not in B' merge -o x B A
	expect_fail 1 'C: tensor "b": shape \[2, 1\], but \[2\] in A' merge -o x A C
	expect_fail 1 'D/tokenizer.json: vocabulary differs from A' merge -o x A D
	expect_fail 1 'C: tensor "b": shape' merge -o x --method ties --density 1 --base A C
fi
[ -e x ] && fail "a failed merge left output"

# Usage.
expect_fail 2 'slerp: exactly two' merge -o x --method slerp m m m
expect_fail 2 'ties: --base is required' merge -o x --method ties --density 1 m
expect_fail 2 'ties: --density is required' merge -o x --method ties --base m m
expect_fail 2 'linear: --base is not used' merge -o x --base m m
expect_fail 2 '2 weights for 3 models' merge -o x --weights 1,2 m m m
expect_fail 2 '--t: only for slerp' merge -o x --t 0.5 m m
expect_fail 2 '--lambda: only for methods with --base' merge -o x --lambda 2 m m
expect_fail 2 'dare-linear: --density must be above 0' \
    merge -o x --method dare-linear --density 0 --base m m
expect_fail 2 'usage' merge -o x
expect_fail 2 'sum to 0' merge -o x --weights 1,-1 m n
finish
