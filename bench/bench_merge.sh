#!/bin/sh
# bench_merge: merge throughput and memory.
#
# A linear soup of two dim-512 models (8 layers, 32000-token vocabulary,
# 58M parameters, 222 MB of fp32 each) read from the page cache: input
# bytes per second of wall time, best of 3, against `cat` of the same files
# to /dev/null and to a file as baselines.  Then the peak RSS of a soup of 4
# such models, against (inputs + 1) x the largest tensor.
#
# The load average comes first: on a busy machine wall times stretch, and
# the CPU-time figure of merge is the steadier one.
#
# Files go to $BENCH_DIR, by default /dev/shm when it is there (a tmpfs:
# everything is in the page cache and fsync costs nothing), else $TMPDIR.
set -eu
dir=${BENCH_DIR:-}
if [ -z "$dir" ]; then
	if [ -d /dev/shm ] && [ -w /dev/shm ]; then dir=/dev/shm; else dir=${TMPDIR:-/tmp}; fi
fi
B=$(mktemp -d "$dir/bench_merge.XXXXXX")
trap 'rm -rf "$B"' EXIT
cd "$B"

for s in 1 2 3 4; do
	ckpt init -o m$s --dim 512 --layers 8 --heads 8 --vocab-size 32000 --seed $s
done
in_bytes=$(($(stat -c %s m1/model.safetensors) + $(stat -c %s m2/model.safetensors)))
cat m?/model.safetensors >/dev/null	# into the page cache
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"

# best3 CMD...: the least wall time of three runs, in seconds.
best3() {
	best=
	for i in 1 2 3; do
		rm -rf out out.bin
		t0=$(date +%s.%N)
		"$@"
		t1=$(date +%s.%N)
		best=$(echo "$t0 $t1 ${best:-1e9}" | awk '{d = $2 - $1; print (d < $3 ? d : $3)}')
	done
	echo "$best"
}
catnull() { cat m1/model.safetensors m2/model.safetensors >/dev/null; }
catfile() { cat m1/model.safetensors m2/model.safetensors >out.bin; }
t_merge=$(best3 merge -o out m1 m2)
# CPU seconds (user + system) of one merge: what it costs on a machine
# busy with other work, where wall time also counts the waiting.
rm -rf out
[ -x /usr/bin/time ] || { echo "bench_merge: needs /usr/bin/time (Debian: time)" >&2; exit 1; }
cpu=$( { /usr/bin/time -f '%U %S' merge -o out m1 m2; } 2>&1 | tail -1 |
    awk '{print $1 + $2}')
t_cat=$(best3 catnull)
t_catf=$(best3 catfile)
rm -rf out out.bin

awk -v b="$in_bytes" -v m="$t_merge" -v c="$t_cat" -v f="$t_catf" -v u="$cpu" 'BEGIN {
	printf "linear soup of 2 dim-512 models, %.0f MB of fp32 in (wall time, best of 3)\n", b / 1e6
	printf "  merge            %6.3f s  %6.2f GB/s\n", m, b / m / 1e9
	printf "  merge, CPU time  %6.3f s  %6.2f GB/s  (user + system)\n", u, b / u / 1e9
	printf "  cat >/dev/null   %6.3f s  %6.2f GB/s  (merge at %.2fx its time)\n", c, b / c / 1e9, m / c
	printf "  cat >file        %6.3f s  %6.2f GB/s  (merge at %.2fx its time)\n", f, b / f / 1e9, m / f
}'

# Peak memory of a soup of 4: the largest tensor is the 32000 x 512
# embedding (65.5 MB); the inputs are mmapped and dropped tensor by tensor.
rss=$( { /usr/bin/time -f %M merge -o out m1 m2 m3 m4; } 2>&1 | tail -1)
awk -v r="$rss" 'BEGIN {
	big = 32000 * 512 * 4 / 1024
	printf "soup of 4: peak RSS %.0f MB = %.2f x the largest tensor (%.1f MB); (inputs + 1) = 5\n",
	    r / 1024, r / big, big / 1024
}'
