#!/bin/sh
# An empty checkpoint (an empty directory, tar or tar.zst) is "config.json:
# missing" in every tool that reads one, status 1.  The sanitizer build
# checks the way there: no qsort or bsearch over a NULL array of no files.
. "$top_srcdir/tests/lib.sh"
cd "$T" || exit 1
command -v tar >/dev/null || skip "no tar"

mkdir empty
tar -cf empty.tar -T /dev/null || skip "tar cannot write an empty archive"
if command -v zstd >/dev/null; then
	zstd -q empty.tar -o empty.tar.zst
fi
check "init" ckpt init -o m --dim 16 --layers 1 --heads 2 --ffn 32 --ctx 16 \
    --seed 1
echo '{"prompt":"a"}' >p.jsonl

for e in empty empty.tar empty.tar.zst; do
	[ -e "$e" ] || continue
	sep=/; [ -d "$e" ] || sep=': '
	miss="^[a-z-]+: $e$sep""config.json: missing$"
	expect_fail 1 "$miss" ckpt info "$e"
	expect_fail 1 "$miss" ckpt convert "$e" out
	expect_fail 1 "$miss" ckpt diff "$e" m
	expect_fail 1 "$miss" ckpt tokenize "$e" p.jsonl
	expect_fail 1 "$miss" merge -o merged m "$e"
	expect_fail 1 "$miss" rollout -m "$e" p.jsonl
	expect_fail 1 "$miss" train-step -m "$e" -o t --loss sft <p.jsonl
done
finish
