# tests/lib.sh: sourced by every shell test.  Run from `make check`, which
# puts the built tools first on PATH and sets top_srcdir and top_builddir.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${PYTHON3:=/usr/bin/python3}"
fixtures="$top_srcdir/tests/fixtures"
T=$(mktemp -d "${TMPDIR:-/tmp}/prefpipe-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
failures=0

# fail MESSAGE: record a failed check and go on.
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# check NAME CMD...: CMD must succeed.
check() {
	name=$1; shift
	if "$@"; then :; else fail "$name"; fi
}

# expect_fail STATUS PATTERN CMD...: CMD must exit with STATUS and print a
# message matching the extended regex PATTERN on stderr.
expect_fail() {
	want=$1 pat=$2; shift 2
	"$@" >"$T/out" 2>"$T/err"
	got=$?
	if [ "$got" != "$want" ]; then
		fail "$* exited $got, want $want; stderr: $(cat "$T/err")"
	elif ! grep -Eq -- "$pat" "$T/err"; then
		fail "$*: stderr \"$(cat "$T/err")\" does not match /$pat/"
	fi
}

# same NAME FILE1 FILE2: the files must be byte-identical.
same() {
	if ! cmp -s "$2" "$3"; then
		fail "$1: $2 and $3 differ"; diff "$2" "$3" | head -5 >&2
	fi
}

# close_rel NAME GOT WANT: two numbers, |got - want| <= 1e-4 |want|.
close_rel() {
	awk -v g="$2" -v w="$3" 'BEGIN {
		d = g - w; if (d < 0) d = -d; a = w < 0 ? -w : w
		exit !(d <= 1e-4 * a)
	}' || fail "$1: got $2, want $3"
}

# skip REASON: the test cannot run here (automake's status 77).
skip() { echo "SKIP: $*" >&2; exit 77; }

# need_mpi: skip unless the tools were built with MPI and mpirun is
# here; as root (CI, containers), tell Open MPI that is meant.
need_mpi() {
	grep -q '^#define HAVE_MPI 1' "$top_builddir/config.h" ||
		skip "built without MPI (configure found no Open MPI)"
	command -v mpirun >/dev/null 2>&1 ||
		skip "no mpirun on PATH (Debian: openmpi-bin)"
	if [ "$(id -u)" -eq 0 ]; then
		OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
		export OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM
	fi
}

# tiny_task DIR: the pipelines' embedded task at test size, in DIR: a
# tiny SFT model of one-digit sums (DIR/sft, noisy data so that its
# samples disagree), 96 training prompts (DIR/prompts), 16 held out
# (DIR/eval).
tiny_task() {
	recs gen arith -n 2000 --seed 3 --digits 1 --sft --noise 0.3 \
	    >"$1/sft.data" &&
	recs gen arith -n 96 --seed 4 --digits 1 >"$1/prompts" &&
	recs gen arith -n 16 --seed 5 --digits 1 --split eval >"$1/eval" &&
	ckpt init -o "$1/base" --tokenizer byte --dim 48 --layers 1 \
	    --heads 2 --ffn 96 --ctx 16 --seed 1 >/dev/null &&
	OMP_NUM_THREADS=1 train-step -m "$1/base" -o "$1/sft" --loss sft \
	    --lr 3e-3 --batch-size 32 --schedule cosine <"$1/sft.data" \
	    >/dev/null
}

# finish: exit with the test's status.
finish() {
	if [ "$failures" -ne 0 ]; then
		echo "$failures check(s) failed" >&2; exit 1
	fi
	exit 0
}
