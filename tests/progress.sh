#!/bin/sh
# progress: rollout, score, train-step and merge draw one progress line
# (lib/util/progress.c) when standard error is a terminal, end it with a
# newline, and draw nothing with -q or off a terminal.  script(1) gives
# the tools a terminal.
. "$top_srcdir/tests/lib.sh"
command -v script >/dev/null 2>&1 || skip "no script(1) for a terminal"

ckpt init -o "$T/tiny" --dim 16 --layers 1 --heads 2 --ffn 24 --ctx 64 \
    --seed 1 >/dev/null || fail "ckpt init"
recs gen arith -n 4 --sft >"$T/sft" || fail "recs gen"
recs gen arith -n 3 >"$T/prompts" || fail "recs gen"

# on_tty NAME CMD: CMD's terminal output (stdout to a file) into $T/NAME.
on_tty() {
	n=$1; shift
	script -qec "$* >$T/$n.out" /dev/null >"$T/$n.tty" 2>&1 ||
	    fail "$n: $* failed on a terminal"
	tr '\r' '\n' <"$T/$n.tty" >"$T/$n.lines"
}

# want NAME ERE: the last line drawn matches ERE.
want() {
	grep -v '^$' "$T/$1.lines" | tail -1 >"$T/$1.last"
	grep -Eq "$2" "$T/$1.last" ||
	    fail "$1: last progress \"$(cat "$T/$1.last")\" is not /$2/"
}

on_tty train "train-step -m $T/tiny -o $T/t1 --loss sft --batch-size 2 <$T/sft"
want train '^train-step: 2/2 steps, [0-9]+ tok/s, loss [0-9.]+ *$'
on_tty rollout "rollout -m $T/tiny --max-tokens 4 -n 2 <$T/prompts"
want rollout '^rollout: 3 prompts, [0-9]+ tok/s, 6 samples *$'
on_tty score "score --logprob $T/tiny <$T/sft"
want score '^score: 4 records, [0-9]+ tok/s *$'
on_tty merge "merge -o $T/m $T/tiny $T/t1"
# 12 tensors: embedding, 9 of the layer, final norm, head
want merge '^merge: 12/12 tensors *$'
check "train-step's records are whole" test "$(recs count "$T/train.out")" -eq 2

# -q, or no terminal: nothing on standard error.
on_tty quiet "{ train-step -q -m $T/tiny -o $T/t2 --loss sft <$T/sft; \
    rollout -q -m $T/tiny --max-tokens 4 <$T/prompts; \
    score -q --logprob $T/tiny <$T/sft; merge -q -o $T/m2 $T/tiny $T/t1; }"
check "-q draws nothing" test ! -s "$T/quiet.tty"
train-step -m "$T/tiny" -o "$T/t3" --loss sft <"$T/sft" >/dev/null \
    2>"$T/err" || fail "train-step off a terminal"
check "off a terminal nothing is drawn" test ! -s "$T/err"
finish
