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

finish
