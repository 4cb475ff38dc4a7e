# compare.sh: sourced by tests/tokenizer_*.sh after lib.sh.
# compare NAME REF OURS [CORPUS]: the two dumps must agree line by line,
# except the lines tokenizer/known_diffs.txt lists for NAME.
compare() {
	cname=$1 cref=$2 cours=$3
	ccorpus=${4:-$top_srcdir/tests/tokenizer/corpus.jsonl}
	if [ "$(wc -l < "$cref")" != "$(wc -l < "$cours")" ]; then
		fail "$cname: $(wc -l < "$cref") reference lines, $(wc -l < "$cours") ours"
		return
	fi
	paste -d '\n' "$cref" "$cours" "$ccorpus" |
	    paste - - - | awk -F '\t' -v name="$cname" '
		FILENAME != "-" { if ($0 !~ /^#/) skip[$1 " " $2] = 1; next }
		{ n++ }
		$1 == $2 { same++; next }
		(name " " n) in skip { known++; next }
		{ bad++; if (bad <= 3) printf "  line %d: %s\n    reference %s\n    ours      %s\n", n, $3, $1, $2 > "/dev/stderr" }
		END {
			printf "%s: %d strings, %d identical, %d known differences, %d wrong\n", name, n, same, known, bad
			exit bad > 0
		}' FS='[ \t]' "$top_srcdir/tests/tokenizer/known_diffs.txt" FS='\t' - ||
	    fail "$cname: encode/decode differs from the reference"
}
