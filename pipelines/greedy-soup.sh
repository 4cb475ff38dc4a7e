#!/bin/sh
# pipelines/greedy-soup.sh: greedy soup over the checkpoints of a run
# (Wortsman et al., 2022).
#
# usage: pipelines/greedy-soup.sh [CKPT ...]
#        CKPTS="a b c" pipelines/greedy-soup.sh
#
# Without checkpoints, the ingredients are the demo's: every round of both
# runs in out/demo (DEMO=dir to change it; the demo is run first when it
# is missing).  Each ingredient is scored on a validation split (held-out
# prompts of another seed, none of them in the test set); they are ranked best first,
# and each is added to the soup only if the uniform soup with it scores
# better on validation than without (merge).  The test accuracy of the best
# ingredient, the uniform soup of all and the greedy soup is reported.
# Validation uses T=1 accuracy (METRIC=greedy for greedy decoding).
# Writes OUT (default out/greedy-soup): ingredients.tsv, results.md, soup/.
. "$(dirname "$0")/lib.sh"

OUT=${OUT:-out/greedy-soup}
DEMO=${DEMO:-out/demo}
METRIC=${METRIC:-t1}
mkdir -p "$OUT"
if [ $# -eq 0 ]; then
	set -- ${CKPTS:-}
fi
if [ $# -eq 0 ]; then
	[ -f "$DEMO/results.tsv" ] || OUT=$DEMO sh "$pp_here/demo.sh" >/dev/null
	for c in "$DEMO"/run*/round*; do
		case ${c##*/} in *.*) ;; *) [ -d "$c" ] && set -- "$@" "$c" ;; esac
	done
fi
test_set=$DEMO/data/eval.mpk
[ -n "${EVAL:-}" ] && test_set=$EVAL
[ -f "$test_set" ] || { recs gen arith -n "$N_EVAL" --seed 1000 --digits "$DIGITS" --split eval >"$OUT/test.mpk"; test_set=$OUT/test.mpk; }
# Validation: held-out problems of another seed, less those in the test set.
recs to-tsv prompt <"$test_set" | sort -u |
    sed 's/^/"prompt":"/; s/$/"/' >"$OUT/test.prompts"
recs gen arith -n $((N_EVAL * 4)) --seed 2000 --digits "$DIGITS" --split eval |
    recs to-json | grep -vF -f "$OUT/test.prompts" |
    awk -F'"prompt":"' '{ split($2, a, "\""); if (!(a[1] in seen)) { seen[a[1]] = 1; print } }' |
    head -n "$N_EVAL" | recs from-json >"$OUT/val.mpk"
PP_EVAL=$test_set
t=1; [ "$METRIC" = greedy ] && t=0

val() { pp_eval "$1" "$t" "$OUT/val.mpk"; }
pp_log "greedy soup: scoring $# ingredients on validation"
for m; do printf '%s\t%s\n' "$(val "$m")" "$m"; done | sort -rn >"$OUT/ingredients.tsv"
set -- $(cut -f2 "$OUT/ingredients.tsv")
best=$(head -n 1 "$OUT/ingredients.tsv" | cut -f1)
soup=$1
shift
for m; do
	rm -rf "$OUT/try"
	merge -o "$OUT/try" $soup "$m" 2>/dev/null
	s=$(val "$OUT/try")
	if awk -v s="$s" -v b="$best" 'BEGIN { exit !(s > b) }'; then
		soup="$soup $m" best=$s
		pp_log "add $m: validation $s"
	else
		pp_log "skip $m: validation $s <= $best"
	fi
done
rm -rf "$OUT/try" "$OUT/soup" "$OUT/uniform"
merge -o "$OUT/soup" $soup 2>/dev/null
merge -o "$OUT/uniform" $(cut -f2 "$OUT/ingredients.tsv") 2>/dev/null
first=$(head -n 1 "$OUT/ingredients.tsv" | cut -f2)
{
	printf 'model\tround\tgreedy\tt1\n'
	pp_acc_row best-single 0 "$first"
	pp_acc_row uniform-soup 0 "$OUT/uniform"
	pp_acc_row greedy-soup 0 "$OUT/soup"
} >"$OUT/results.tsv"
{
	echo "| model | ingredients | test greedy acc. | test T=1 acc. |"
	echo "| --- | --- | ---: | ---: |"
	awk -F'\t' -v f="$first" -v u="$(wc -l <"$OUT/ingredients.tsv") (all)" -v g="$soup" '
		NR > 1 { i = (NR == 2) ? f : (NR == 3) ? u : g
			printf "| %s | %s | %.1f %% | %.1f %% |\n", $1, i, 100 * $3, 100 * $4 }' "$OUT/results.tsv"
} >"$OUT/results.md"
pp_log "done: $OUT/results.md"
cat "$OUT/results.md"
