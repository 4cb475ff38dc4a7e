#!/bin/sh
# The checkpoint code and the safetensors code depend on each other in one
# direction only: checkpoint.c uses safetensors.c, never the reverse, and
# the element types both need live in lib/tensors/.  Read from the objects:
# what each one leaves undefined against what the other defines.
. "$top_srcdir/tests/lib.sh"

lib=$top_builddir/lib
command -v nm >/dev/null || skip "no nm"
for o in checkpoints/checkpoint checkpoints/safetensors tensors/tensor; do
	[ -f "$lib/$o.o" ] || skip "no $lib/$o.o"
done

# uses A B: the symbols A.o takes from B.o.
uses() {
	nm -u "$lib/$1.o" | awk '{print $2}' | sort >"$T/u"
	nm --defined-only -g "$lib/$2.o" | awk '{print $3}' | sort >"$T/d"
	comm -12 "$T/u" "$T/d"
}

[ -n "$(uses checkpoints/checkpoint checkpoints/safetensors)" ] ||
	fail "checkpoint.o does not use safetensors.o (test broken?)"
s=$(uses checkpoints/safetensors checkpoints/checkpoint)
[ -z "$s" ] || fail "safetensors.o calls into checkpoint.o: $s"
s=$(uses tensors/tensor checkpoints/checkpoint; uses tensors/tensor \
    checkpoints/safetensors)
[ -z "$s" ] || fail "tensor.o calls into the checkpoint code: $s"

# And the headers: safetensors.h does not include checkpoint.h.
grep -q 'checkpoints/checkpoint.h' "$top_srcdir/lib/checkpoints/safetensors.h" \
    "$top_srcdir/lib/checkpoints/safetensors.c" &&
	fail "safetensors includes checkpoint.h"
finish
