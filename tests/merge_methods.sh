#!/bin/sh
# Each merge method against values computed by hand on tiny tensors.
. "$top_srcdir/tests/lib.sh"
cd "$T" || exit 1
"$PYTHON3" -c "import json" 2>/dev/null || skip "no $PYTHON3"
fx() { "$PYTHON3" "$top_srcdir/tests/merge_fixture.py" "$@"; }

# is NAME OUT WANT: tensor t of checkpoint OUT holds exactly WANT.
is() {
	got=$(fx get "$2" t)
	[ "$got" = "$3" ] || fail "$1: got \"$got\", want \"$3\""
}

# linear: the uniform soup, weighted, normalised or not.
fx make A t=1,2,3,4
fx make B t=3,2,1,0
merge -o o A B && is "uniform soup" o "2 2 2 2"
merge -o o --weights 1,3 A B && is "weighted soup" o "2.5 2 1.5 1"
merge -o o --weights 1,3 --no-normalize A B && is "unnormalised" o "10 8 6 4"

# slerp: orthogonal tensors at t = 0.5 and 0.25 (sin(pi/4), sin(3pi/8),
# sin(pi/8)); the angle scales the unnormalised tensors; nearly parallel
# or zero tensors fall back to straight-line interpolation.
fx make S1 t=1,0
fx make S2 t=0,1
merge -o o --method slerp S1 S2 && is "slerp t=.5" o "0.70710677 0.70710677"
merge -o o --method slerp --t 0.25 S1 S2 &&
	is "slerp t=.25" o "0.9238795 0.38268343"
fx make S3 t=2,0
fx make S4 t=0,4
merge -o o --method slerp S3 S4 && is "slerp scales" o "1.4142135 2.828427"
fx make P1 t=1,1
fx make P2 t=2,2.001
merge -o o --method slerp P1 P2 && is "slerp fallback" o "1.5 1.5005"
fx make Z t=0,0
merge -o o --method slerp --t 0.25 Z P1 && is "slerp zero" o "0.25 0.25"

# task arithmetic: base + lambda * sum w_i (x_i - base).
fx make Base0 t=0,0,0,0
fx make Base1 t=1,1,1,1
fx make TA t=1,2,3,4
fx make TB t=1,-2,0,0
merge -o o --method task-arithmetic --base Base0 TA TB && is "ta" o "2 0 3 4"
merge -o o --method task-arithmetic --base Base0 --lambda 0.5 TA TB &&
	is "ta lambda" o "1 0 1.5 2"
merge -o o --method task-arithmetic --base Base0 --normalize TA TB &&
	is "ta normalised" o "1 0 1.5 2"
merge -o o --method task-arithmetic --base Base1 TA TB && is "ta base" o "1 -1 2 3"
merge -o o --method task-arithmetic --base Base1 --weights 2,0 TA TB &&
	is "ta weights" o "1 3 5 7"

# TIES sign election: element 0 sums to 0 (a tie: + wins, so only A's +1
# stays); 1: - wins, B's -3 alone; 2: + wins, B's 2; 3: B's 0 does not
# count in the divisor.
fx make TC t=1,2,-1,3
fx make TD t=-1,-3,2,0
merge -o o --method ties --density 1 --base Base0 TC TD &&
	is "ties election" o "1 -3 2 3"
merge -o o --method ties --density 1 --base Base0 --weights 1,2 TC TD &&
	is "ties weighted" o "-1 -3 2 3"
merge -o o --method ties --density 1 --base Base0 --weights 1,2 \
    --no-normalize TC TD && is "ties unnormalised" o "-2 -6 4 3"
# Trimmed to the top half by magnitude: TC keeps 2, 3; TD keeps -3, 2.
merge -o o --method ties --density 0.5 --base Base0 TC TD &&
	is "ties trimmed" o "0 -3 2 3"
# Ties in magnitude at the cut: the first ones are kept.
fx make Ones t=1,1,1,1
merge -o o --method ties --density 0.5 --base Base0 Ones &&
	is "ties cut" o "1 1 0 0"
merge -o o --method ties --density 0.5 --base Base0 --lambda 2 Ones &&
	is "ties lambda" o "2 2 0 0"

# DARE: each entry kept with probability density and rescaled by
# 1/density; the mask follows the seed.
ones=$("$PYTHON3" -c 'print(",".join(["1"] * 4000))')
negs=$("$PYTHON3" -c 'print(",".join(["-0.5"] * 4000))')
zeros=$("$PYTHON3" -c 'print(",".join(["0"] * 4000))')
fx make DA t=$ones
fx make DB t=$negs
fx make DZ t=$zeros
merge -o d1 --method dare-linear --density 0.25 --seed 1 --base DZ DA
fx get d1 t | tr ' ' '\n' | sort | uniq -c >counts
[ "$(awk '{print $2}' counts | tr '\n' ' ')" = "0 4 " ] ||
	fail "dare: values other than 0 and 4: $(cat counts)"
kept=$(awk '$2 == 4 {print $1}' counts)
[ "$kept" -gt 900 ] && [ "$kept" -lt 1100 ] || fail "dare kept $kept of 4000"
merge -o d2 --method dare-linear --density 0.25 --seed 1 --base DZ DA
same "dare same seed" d1/model.safetensors d2/model.safetensors
merge -o d3 --method dare-linear --density 0.25 --seed 2 --base DZ DA
cmp -s d1/model.safetensors d3/model.safetensors && fail "dare: seed ignored"
# dare-ties against the two masks read back through dare-linear: where A
# is kept its 4 wins (4 - 2 > 0), else B's -2 where B is kept, else 0.
merge -o ma --method dare-linear --density 0.25 --weights 1,0 --base DZ DA DB
merge -o mb --method dare-linear --density 0.25 --weights 0,1 --base DZ DA DB
merge -o dt --method dare-ties --density 0.25 --base DZ DA DB
fx get ma t | tr ' ' '\n' >a.txt
fx get mb t | tr ' ' '\n' >b.txt
fx get dt t | tr ' ' '\n' >t.txt
paste a.txt b.txt | awk '{print $1 == 4 ? 4 : $2 == -2 ? -2 : 0}' >want.txt
same "dare-ties" want.txt t.txt
finish
