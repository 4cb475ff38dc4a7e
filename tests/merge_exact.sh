#!/bin/sh
# merge keeps its promises at the edges: a soup of a model with itself is
# the model bit for bit, whatever the number of copies.
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

finish
