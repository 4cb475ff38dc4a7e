#!/bin/sh
# ab.sh: an old build of prefpipe against a new one, in the same run, the
# two taking turns: the check that a change costs no speed and no memory.
#
#   sh bench/ab.sh BASE [NEW]		(or: make bench-ab BASE=rev [NEW=rev])
#
# BASE is a git revision; NEW another one or, left out, the working tree
# as it is (tracked changes and untracked files git does not ignore, build
# directories left out).  Each is exported from git (git archive of its
# tree) and built with autoreconf -fi, configure and make of the four tools
# the measures run; the tools are kept in $AB_CACHE/<tree> (16 digits of
# the tree hash), so a second run of the same trees builds nothing.  The
# working tree's hash comes from a temporary index: its blobs go into the
# repository's object store as loose objects, which git gc drops in time.
#
# Inputs are made once, by BASE's ckpt init (a new build must read the old
# checkpoints; the old one need not read new ones):
#   train-step	bench_train.sh's model (dim 256, 4 layers, 4 heads, 2 KV
#		heads, ffn 688, vocabulary 4096) and batch: 8 records of
#		32 prompt + 128 response tokens, or 8 pairs of them for DPO,
#		reference log-probs in the records.  --epochs AB_STEPS+1 of
#		the batch in one invocation; the first step (warm-up) is
#		dropped, the fastest of the rest kept.  SFT tok/s is the
#		forward + backward + update of a step; DPO is its step time.
#   rollout	bench_rollout.sh's model (dim 288, 6 layers, 6 heads, ffn
#		768, vocabulary 32000, tied; stories15M's shape), EOS off so
#		every sample runs AB_TOKENS tokens; n = 1 and n = 8 of one
#		prompt.  Decoding time is a run's wall time less that of the
#		same run with --max-tokens 1 (loading, prefill), each the
#		least of its runs, as bench_rollout.sh takes it.
#   score	--logprob over bench_score's model (dim 256, 4 layers, 8
#		heads, 4 KV heads, vocabulary 4096) and records (96 prompt
#		+ 32 response tokens): AB_SCORE_RECORDS records less a run of
#		one record (loading), -b 4096, msgpack out to /dev/null.
#   peak RSS	/usr/bin/time -f %M of the train-step runs (SFT, DPO) and of
#		rollout n = 8.
# Every measure runs old, then new, REPS times; the best of each (least
# time, least RSS) per build goes into a table on stdout: measure, old,
# new, new/old, of wall time, then the same of CPU time (user + system; for
# train-step: a run of AB_STEPS + 1 steps less a run of one).  Ratios are
# of speed (for a time, old/new) and of memory; a speed ratio below 0.95 is
# flagged SLOWER (wall) or SLOWER-CPU, a peak RSS above the old one (by
# more than AB_RSS_SLACK) MORE-RSS.  What it does goes to stderr.
#
# On a machine busy with other work wall times stretch and the turns share
# that out only on average: run it twice, and trust what both runs say.
# CPU time is steadier there, but idle OpenMP threads spin by default and
# that counts as CPU: with OMP_WAIT_POLICY=passive (as make check runs the
# tests) the CPU columns count the work.
#
# Knobs (environment):
#   REPS=5		turns of each build
#   AB_CACHE=out/ab	where built tools are kept (under the source tree)
#   AB_JOBS=2		make -j
#   AB_CONFIGURE=	extra configure arguments (CFLAGS=... and the like)
#   AB_TOKENS=256	rollout tokens a sample
#   AB_STEPS=3		timed train-step steps an invocation
#   AB_SCORE_RECORDS=128	score --logprob records
#   AB_RSS_SLACK=1024	KiB of peak RSS above old's that are not flagged
#			(the same build's peak moves by ~100 KiB run to run)
#   AB_STRICT=		1: exit 3 when anything is flagged
#   OMP_NUM_THREADS=2	threads of every tool
#   OMP_WAIT_POLICY	passed through as set (the bench scripts leave it)
#   PYTHON3=python3	for editing config.json (as bench_rollout.sh does)
# Exit status: 0, 1 when a build or a run fails, 2 for bad usage, 3 (with
# AB_STRICT=1) when a measure is flagged.
set -eu
usage() {
	echo "usage: sh bench/ab.sh BASE [NEW]   (NEW: the working tree)" >&2
	exit 2
}
[ $# -ge 1 ] && [ $# -le 2 ] && [ -n "$1" ] || usage
top=$(cd "$(dirname "$0")/.." && pwd)
REPS=${REPS:-5}
CACHE=${AB_CACHE:-$top/out/ab}
JOBS=${AB_JOBS:-2}
M=${AB_TOKENS:-256}
STEPS=${AB_STEPS:-3}
NREC=${AB_SCORE_RECORDS:-128}
SLACK=${AB_RSS_SLACK:-1024}
PYTHON3=${PYTHON3:-python3}
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
# OpenBLAS's pthreads build starts a worker thread when it is loaded, which
# spins for about 0.1 s of a core even though the tools run it in one
# thread: noise in every whole-run time below (the Makefile's bench rule).
export OPENBLAS_NUM_THREADS=1
TOOLS="ckpt train-step rollout score"
for v in "$REPS" "$JOBS" "$M" "$STEPS" "$NREC" "$SLACK"; do
	case $v in ''|*[!0-9]*) echo "ab: '$v': not a number" >&2; exit 2;; esac
done
[ "$REPS" -ge 1 ] && [ "$JOBS" -ge 1 ] && [ "$M" -ge 2 ] && [ "$STEPS" -ge 1 ] &&
    [ "$NREC" -ge 2 ] || { echo "ab: REPS, AB_JOBS, AB_STEPS must be at least 1, AB_TOKENS and AB_SCORE_RECORDS 2" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "ab: needs /usr/bin/time (Debian: time)" >&2; exit 1; }
git -C "$top" rev-parse --git-dir >/dev/null 2>&1 ||
    { echo "ab: $top: not a git checkout" >&2; exit 2; }
case $CACHE in /*) ;; *) CACHE=$(pwd)/$CACHE;; esac
mkdir -p "$CACHE"

T=$(mktemp -d "${TMPDIR:-/tmp}/bench_ab.XXXXXX")
STAGE=
trap 'rm -rf "$T" ${STAGE:+"$STAGE"}' EXIT
trap 'exit 130' HUP INT TERM
say() { echo "ab: $*" >&2; }

# tree_of REV: the tree hash of a revision, or of the working tree ("").
tree_of() {
	if [ -n "$1" ]; then
		git -C "$top" rev-parse --verify -q "$1^{tree}" ||
		    { say "$1: not a revision"; exit 2; }
		return
	fi
	# The working tree through a temporary index: tracked files as they
	# are, then the untracked ones git does not ignore, less any
	# directory holding a configured build (config.status) or the cache.
	GIT_INDEX_FILE=$T/index git -C "$top" read-tree HEAD
	GIT_INDEX_FILE=$T/index git -C "$top" add -u
	find "$top" -mindepth 2 -name config.status ! -path '*/.git/*' |
	    sed "s|^$top/||; s|/config.status\$|/|" >"$T/skip"
	case $CACHE in "$top"/*) echo "${CACHE#"$top"/}/" >>"$T/skip";; esac
	git -C "$top" ls-files -o --exclude-standard |
	    awk -v f="$T/skip" 'BEGIN { while ((getline l < f) > 0) s[++n] = l }
		{ for (i = 1; i <= n; i++) if (index($0, s[i]) == 1) next; print }' |
	    GIT_INDEX_FILE=$T/index git -C "$top" update-index --add --stdin
	GIT_INDEX_FILE=$T/index git -C "$top" write-tree
}

# build LABEL TREE: the tools of TREE, built once into $CACHE/TREE; sets BIN.
build() {
	d=$CACHE/$(echo "$2" | cut -c1-16)
	if [ -f "$d/ok" ]; then
		say "$1: tools of tree $2 from $d"
		BIN=$d/bin
		return
	fi
	b=$T/build.$1
	log=$T/build.$1.log
	mkdir -p "$b/src" "$b/build"
	say "$1: building tree $2 (autoreconf, configure, make -j$JOBS $TOOLS)"
	git -C "$top" archive --format=tar "$2" | tar -xf - -C "$b/src"
	paths=
	for t in $TOOLS; do paths="$paths tools/$t"; done
	# shellcheck disable=SC2086
	if ! ( cd "$b/src" && mkdir -p m4 build-aux && autoreconf -fi &&
	    cd "$b/build" && ../src/configure -q $AB_CONFIGURE_ARGS &&
	    make -j"$JOBS" $paths ) >"$log" 2>&1; then
		tail -n 40 "$log" >&2
		say "$1: build of tree $2 failed"
		exit 1
	fi
	# Into the cache under a temporary name, renamed when complete.
	STAGE=$CACHE/.stage.$$
	rm -rf "$STAGE"
	mkdir -p "$STAGE/bin"
	for t in $TOOLS; do cp "$b/build/tools/$t" "$STAGE/bin/"; done
	echo "$3" >"$STAGE/what"
	touch "$STAGE/ok"
	[ -e "$d" ] && [ ! -f "$d/ok" ] && rm -rf "$d"
	mv -T "$STAGE" "$d" 2>/dev/null || rm -rf "$STAGE"
	STAGE=
	rm -rf "$b" "$log"
	say "$1: built into $d"
	BIN=$d/bin
}
AB_CONFIGURE_ARGS=${AB_CONFIGURE:-}

base_rev=$(git -C "$top" rev-parse --verify -q "$1^{commit}") ||
    { say "$1: not a revision"; exit 2; }
base_what="$(git -C "$top" log -1 --format='%h %s' "$base_rev")"
if [ $# -eq 2 ]; then
	new_rev=$(git -C "$top" rev-parse --verify -q "$2^{commit}") ||
	    { say "$2: not a revision"; exit 2; }
	new_what="$(git -C "$top" log -1 --format='%h %s' "$new_rev")"
	new_tree=$(tree_of "$new_rev")
else
	new_tree=$(tree_of "")
	changes=$(git -C "$top" diff-tree -r --name-only HEAD "$new_tree" | wc -l)
	new_what="working tree: $(git -C "$top" log -1 --format=%h HEAD) + $changes changed files"
fi
base_tree=$(tree_of "$base_rev")
say "old: $base_what (tree $base_tree)"
say "new: $new_what (tree $new_tree)"

build old "$base_tree" "$base_what"
OLD=$BIN
build new "$new_tree" "$new_what"
NEW=$BIN

# The inputs, made once.
say "inputs: checkpoints by old's ckpt init, records"
"$OLD/ckpt" init -o "$T/mt" --dim 256 --layers 4 --heads 4 --kv-heads 2 \
    --ffn 688 --vocab-size 4096 --ctx 512 --seed 1 >/dev/null
"$OLD/ckpt" init -o "$T/ms" --dim 256 --layers 4 --heads 8 --kv-heads 4 \
    --ffn 688 --vocab-size 4096 --ctx 1024 --seed 1 >/dev/null
"$OLD/ckpt" init -o "$T/mr" --dim 288 --layers 6 --heads 6 --ffn 768 \
    --vocab-size 32000 --ctx 512 --tie --seed 1 >/dev/null
for f in config.json generation_config.json; do
	[ -f "$T/mr/$f" ] || continue
	"$PYTHON3" -c 'import json, sys
c = json.load(open(sys.argv[1])); c["eos_token_id"] = []
json.dump(c, open(sys.argv[1], "w"))' "$T/mr/$f"
done
for k in pairs sft; do
	awk -v kind=$k -f "$top/bench/records.awk" >"$T/$k.jsonl"
done
awk -v kind=score -v n="$NREC" -f "$top/bench/records.awk" >"$T/score.jsonl"
head -n 1 "$T/score.jsonl" >"$T/score1.jsonl"
echo '{"id":"p","prompt":"Once upon a time"}' >"$T/one.jsonl"

# run OUT IN CMD...: CMD <IN >OUT; sets W (wall seconds), C (CPU seconds,
# user + system), R (peak RSS KiB).
run() {
	out=$1 in=$2
	shift 2
	t0=$(date +%s.%N)
	if ! /usr/bin/time -f '%M %U %S' -o "$T/time" "$@" <"$in" >"$out" \
	    2>"$T/err"; then
		cat "$T/err" >&2
		say "failed: $*"
		exit 1
	fi
	t1=$(date +%s.%N)
	W=$(echo "$t0 $t1" | awk '{ printf "%.6f", $2 - $1 }')
	R=$(tail -n 1 "$T/time" | awk '{ print $1 }')
	C=$(tail -n 1 "$T/time" | awk '{ printf "%.2f", $2 + $3 }')
}
# keep NAME VALUE min|max: the best value of NAME so far.
keep() {
	f=$T/best.$1
	if [ -f "$f" ]; then
		awk -v a="$(cat "$f")" -v b="$2" -v m="$3" 'BEGIN {
		    print ((m == "min") == (b + 0 < a + 0) ? b : a) }' >"$f.n"
		mv "$f.n" "$f"
	else
		echo "$2" >"$f"
	fi
}
get() { cat "$T/best.$1"; }
# best_step METRICS: "tokens seconds" of the fastest step after the first.
best_step() {
	sed 1d "$1" | awk '{
		match($0, /"seconds":[0-9.e+-]+/)
		s = substr($0, RSTART + 10, RLENGTH - 10) + 0
		match($0, /"tokens":[0-9]+/)
		n = substr($0, RSTART + 9, RLENGTH - 9) + 0
		if (b == "" || s < b) { b = s; bn = n }
	}
	END { if (b == "") exit 1; print bn, b }'
}
# toks OUT: response tokens after the first, over a rollout's records.
toks() {
	awk '{ match($0, /"response_tokens":\[[^]]*\]/)
		s = substr($0, RSTART, RLENGTH)
		n += gsub(/,/, ",", s) }
	END { print n + 0 }' "$1"
}

# train WHO BIN LOSS RECORDS: the train-step measure of LOSS.  Wall time is
# the fastest step, from the metrics; CPU time a step is that of a run of
# STEPS + 1 steps less that of a run of one (loading, the warm-up step,
# writing the checkpoint), each the least of its runs.
train() {
	w=$1 bin=$2 loss=$3 recs=$4
	rm -rf "$T/o"
	run "$T/metrics" "$recs" "$bin/train-step" -m "$T/mt" -o "$T/o" \
	    --loss "$loss" --batch-size 8 --epochs 1 --no-shuffle -J
	keep "$w.$loss.c1" "$C" min
	c1=$C
	rm -rf "$T/o"
	run "$T/metrics" "$recs" "$bin/train-step" -m "$T/mt" -o "$T/o" \
	    --loss "$loss" --batch-size 8 --epochs $((STEPS + 1)) --no-shuffle -J
	rm -rf "$T/o"
	keep "$w.$loss.c" "$C" min
	keep "$w.${loss}_rss" "$R" min
	bs=$(best_step "$T/metrics") ||
	    { say "$w: $loss: no step metrics"; exit 1; }
	set -- $bs
	echo "$1" >"$T/best.$w.$loss.toks"
	keep "$w.$loss.s" "$2" min
	say "$w: $loss step of $1 tokens: $2 s; $((STEPS + 1)) steps $C s CPU less 1 step $c1 s; $R KiB"
}
# measure WHO BIN: one turn of every measure.
measure() {
	train "$1" "$2" sft "$T/sft.jsonl"
	train "$1" "$2" dpo "$T/pairs.jsonl"
	w=$1 bin=$2
	for n in 1 8; do
		run "$T/out" "$T/one.jsonl" "$bin/rollout" -q -J -m "$T/mr" \
		    -n $n --max-tokens 1
		keep "$w.r$n.w1" "$W" min
		keep "$w.r$n.c1" "$C" min
		w1=$W c1=$C
		run "$T/out" "$T/one.jsonl" "$bin/rollout" -q -J -m "$T/mr" \
		    -n $n --max-tokens "$M"
		keep "$w.r$n.w" "$W" min
		keep "$w.r$n.c" "$C" min
		k=$(toks "$T/out")
		echo "$k" >"$T/best.$w.r$n.toks"
		[ $n -eq 8 ] && keep "$w.r8_rss" "$R" min
		say "$w: rollout n=$n $k tokens: $W s ($C CPU) less $w1 s ($c1 CPU) for --max-tokens 1; $R KiB"
	done

	run /dev/null "$T/score1.jsonl" "$bin/score" --logprob "$T/ms" -b 4096
	keep "$w.s.w1" "$W" min
	keep "$w.s.c1" "$C" min
	w1=$W c1=$C
	run /dev/null "$T/score.jsonl" "$bin/score" --logprob "$T/ms" -b 4096
	keep "$w.s.w" "$W" min
	keep "$w.s.c" "$C" min
	say "$w: score --logprob $NREC records: $W s ($C CPU) less $w1 s ($c1 CPU) for 1"
}

say "threads: $OMP_NUM_THREADS, OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-(unset)}; load: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
i=1
while [ $i -le "$REPS" ]; do
	say "turn $i of $REPS"
	measure old "$OLD"
	measure new "$NEW"
	i=$((i + 1))
done

# The table, from the best times: each speed as "wall cpu" figures.
# rate WORK SECONDS LESS: WORK / (SECONDS - LESS), the difference kept
# above 1 ms.
rate() {
	echo "$1 $2 $3" | awk '{ d = $2 - $3
	    printf "%.1f", $1 / (d > 1e-3 ? d : 1e-3) }'
}
for w in old new; do
	k=$(get $w.sft.toks)
	echo "$(rate "$k" "$(get $w.sft.s)" 0)" \
	    "$(rate "$((k * STEPS))" "$(get $w.sft.c)" "$(get $w.sft.c1)")" \
	    >"$T/best.$w.sft"
	# ms a step
	echo "$(get $w.dpo.s) $(get $w.dpo.c) $(get $w.dpo.c1)" |
	    awk -v n="$STEPS" '{ printf "%.1f %.1f\n", $1 * 1e3, ($2 - $3) / n * 1e3 }' \
	    >"$T/best.$w.dpo"
	for n in 1 8; do
		k=$(get $w.r$n.toks)
		echo "$(rate "$k" "$(get $w.r$n.w)" "$(get $w.r$n.w1)")" \
		    "$(rate "$k" "$(get $w.r$n.c)" "$(get $w.r$n.c1)")" \
		    >"$T/best.$w.r$n"
	done
	k=$(((NREC - 1) * 128))
	echo "$(rate "$k" "$(get $w.s.w)" "$(get $w.s.w1)")" \
	    "$(rate "$k" "$(get $w.s.c)" "$(get $w.s.c1)")" >"$T/best.$w.score"
done
echo "old: $base_what"
echo "new: $new_what"
echo "$REPS turns, best of each; OMP_NUM_THREADS=$OMP_NUM_THREADS; load at the end: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
{
	echo "speed train-step_sft_fwd+bwd_(tok/s) $(get old.sft) $(get new.sft)"
	echo "time train-step_dpo_step_(ms) $(get old.dpo) $(get new.dpo)"
	echo "speed rollout_n=1_(tok/s) $(get old.r1) $(get new.r1)"
	echo "speed rollout_n=8_(tok/s) $(get old.r8) $(get new.r8)"
	echo "speed score_--logprob_(tok/s) $(get old.score) $(get new.score)"
	echo "rss train-step_sft_peak_RSS_(MiB) $(get old.sft_rss) - $(get new.sft_rss) -"
	echo "rss train-step_dpo_peak_RSS_(MiB) $(get old.dpo_rss) - $(get new.dpo_rss) -"
	echo "rss rollout_n=8_peak_RSS_(MiB) $(get old.r8_rss) - $(get new.r8_rss) -"
} | awk -v slack="$SLACK" '
	BEGIN {
		printf "%-32s %9s %9s %7s | %9s %9s %7s\n", "measure", "old",
		    "new", "new/old", "old cpu", "new cpu", "new/old"
	}
	{
		# $3 $4: old wall, cpu; $5 $6: new wall, cpu
		name = $2; gsub(/_/, " ", name); f = ""
		if ($1 == "rss") {
			r = $5 / $3
			if ($5 > $3 + slack) { f = "  MORE-RSS"; bad = 1 }
			printf "%-32s %9.1f %9.1f %7.3f |%s\n", name,
			    $3 / 1024, $5 / 1024, r, f
			next
		}
		if ($1 == "time") { r = $3 / $5; rc = $4 / $6 }
		else { r = $5 / $3; rc = $6 / $4 }
		if (r < 0.95) f = f "  SLOWER"
		if (rc < 0.95) f = f "  SLOWER-CPU"
		if (f != "") bad = 1
		printf "%-32s %9.1f %9.1f %7.3f | %9.1f %9.1f %7.3f%s\n", name,
		    $3, $5, r, $4, $6, rc, f
	}
	END { exit bad ? 3 : 0 }' || flagged=1
if [ "${flagged:-0}" = 1 ]; then
	say "flagged: new is slower (below 0.95x) or larger than old somewhere"
	[ "${AB_STRICT:-}" = 1 ] && exit 3
fi
exit 0
