#!/bin/sh
# merge keeps its promises at the edges: a soup of a model with itself is
# the model bit for bit, whatever the number of copies; and a weight that
# would not be finite (an overflow, or a value too large for f16) stops
# the merge with status 1, naming the tensor, and writes nothing.
. "$top_srcdir/tests/lib.sh"
cd "$T" || exit 1
"$PYTHON3" -c 'import json' 2>/dev/null || skip "no $PYTHON3"
fx="$PYTHON3 $top_srcdir/tests/merge_fixture.py"

check "init" ckpt init -o a --dim 32 --layers 2 --heads 2 --ffn 64 --ctx 64 \
    --seed 1
for n in 3 5 6 7; do
	set --; i=0
	while [ $i -lt $n ]; do set -- "$@" a; i=$((i + 1)); done
	check "soup of $n" merge -o s$n "$@"
	same "soup of $n copies" a/model.safetensors s$n/model.safetensors
	same "soup of $n: config" a/config.json s$n/config.json
done
check "weighted soup" merge -o w --weights 0.1,0.7,0.2 a a a
same "weighted soup of copies" a/model.safetensors w/model.safetensors
check "bf16 soup" merge -o b3 --dtype bf16 a a a
check "bf16 once" merge -o b1 --dtype bf16 a
same "bf16 soup of 3 = bf16 of one" b1/model.safetensors b3/model.safetensors

# Non-finite weights.  Values near FLT_MAX overflow a sum; 70000 is finite
# in fp32 but not in f16.
$fx make big w=3e38,1,2,3 n=1,1 || fail "fixture"
$fx make huge w=70000,1,2,3 n=1,1 || fail "fixture"
$fx make nan w=1,nan,2,3 n=1,1 || fail "fixture"
expect_fail 1 '^merge: mo: model.safetensors: tensor "w": element 0 is infinite: a weight must be finite$' \
    merge -o mo --weights 1,1 --no-normalize big big
expect_fail 1 '^merge: mo: model.safetensors: tensor "w": element 0, 70000, is too large for F16$' \
    merge -o mo --dtype f16 huge
expect_fail 1 '^merge: mo: model.safetensors: tensor "w": element 1 is NaN' \
    merge -o mo nan huge
[ -e mo ] && fail "a failed merge left mo behind"
ls -a | grep -q '\.tmp-' && fail "a failed merge left its temporary"
check "bf16 holds 70000" merge -o ok --dtype bf16 huge

finish
