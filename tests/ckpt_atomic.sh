#!/bin/sh
# Writes are atomic: a write killed part-way (the PREFPIPE_CKPT_CRASH_AFTER
# hook kills the writer with SIGKILL after that many tensors; and a real
# kill -9) leaves no checkpoint under the final name, and an older
# checkpoint there intact.
. "$top_srcdir/tests/lib.sh"
cd "$T" || exit 1
check "init" ckpt init -o m --seed 1
check "init old" ckpt init -o old --seed 2
check "old archive" ckpt convert old old.tar.zst
cp -r old old.saved; cp old.tar.zst old.tar.zst.saved

for out in new new.tar new.tar.zst; do
	(PREFPIPE_CKPT_CRASH_AFTER=5 ckpt convert m $out; exit $?) 2>/dev/null
	[ $? -eq 137 ] || fail "$out: the hook did not kill the writer"
	[ -e $out ] && fail "$out: a killed write left a checkpoint"
done
(PREFPIPE_CKPT_CRASH_AFTER=10 ckpt convert m old; exit $?) 2>/dev/null
same "killed write over old" old/model.safetensors old.saved/model.safetensors
(PREFPIPE_CKPT_CRASH_AFTER=10 ckpt convert m old.tar.zst; exit $?) 2>/dev/null
same "killed write over old.tar.zst" old.tar.zst old.tar.zst.saved
ckpt info old >/dev/null || fail "old no longer loads"

# What a killed write leaves is hidden, beside the target.
ls -a | grep -q '^\.new\.tmp-' || fail "no hidden temporary left"

# A real kill -9 at some point of a larger write: afterwards the checkpoint
# is either absent or complete.
ckpt init -o big --dim 256 --layers 8 --vocab-size 8192 &
pid=$!
sleep 0.1
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
if [ -e big ]; then
	ckpt info big >/dev/null || fail "kill -9 left a broken checkpoint"
fi

# A finished write replaces the old checkpoint.
check "replace" ckpt convert m old
same "replaced" m/model.safetensors old/model.safetensors
check "replace archive" ckpt convert m old.tar.zst
ckpt diff -J m old.tar.zst | grep -qv '"l2":0.0' && fail "archive not replaced"

# A directory that is not a checkpoint is never replaced.
mkdir junk; echo keep >junk/notes
expect_fail 1 "junk: exists and is not a checkpoint" ckpt convert m junk
[ -f junk/notes ] || fail "junk was touched"
finish
