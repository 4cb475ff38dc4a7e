#!/bin/sh
# bench_bf16: rollout's decoding with bf16 weights (issue 16), on a random
# checkpoint of Qwen2.5-0.5B's shape (dim 896, 24 layers, 14 heads, 2 kv
# heads, ffn 4864, vocabulary 151,936, tied; 494M parameters, 2 GB in
# fp32, 1 GB in bf16).  In one run, the configurations taking turns:
#
#   f32       the fp32 checkpoint, held fp32 (the baseline)
#   bf16      its `ckpt convert --dtype bf16`, held as stored (in place)
#   bf16 n=8  the same, eight samples of one prompt decoding together
#   f32>bf16  the fp32 checkpoint with --weights bf16 (rounded at load)
#   bf16>f32  the bf16 checkpoint with --weights f32 (widened at load)
#
# (the last two: load time and peak RSS only, a --max-tokens 1 run).
# Goals: bf16 n=1 >= 1.7x f32 n=1; bf16 n=8 >= 4x bf16 n=1.  Decoding
# tokens/s is what rollout --stats measures of its decoding steps (not
# loading and prefill: reading a 2 GB checkpoint here took from 4 to 20 s
# run to run, where the page cache had kept it or not), the best of REPS
# runs (default 3); load, the least; peak RSS is the run's (wait4).  It
# needs about 3 GB of disk under TMPDIR and 4 GB of memory; on a shared
# machine run it alone (flock).
#
#   sh bench/bench_bf16.sh [TOKENS]	(default 32 a sample)
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${PYTHON3:=/usr/bin/python3}"
PATH="$top_builddir/tools:$PATH"
M=${1:-32}
REPS=${REPS:-3}
T=$(mktemp -d "${TMPDIR:-/tmp}/bench_bf16.XXXXXX")
trap 'rm -rf "$T"' EXIT
echo "threads: ${OMP_NUM_THREADS:-all}; load: $(cut -d' ' -f1-3 /proc/loadavg)"

echo '{"id":"p","prompt":"Once upon a time"}' >"$T/one.jsonl"
t0=$(date +%s)
ckpt init -o "$T/f32" --arch qwen2 --dim 896 --layers 24 --heads 14 \
    --kv-heads 2 --ffn 4864 --vocab-size 151936 --ctx 1024 --tie \
    --seed 1 >/dev/null || exit 1
# No EOS: every sample runs the full TOKENS, so batches stay full.
for f in config.json generation_config.json; do
	"$PYTHON3" -c 'import json, sys
c = json.load(open(sys.argv[1])); c["eos_token_id"] = []
json.dump(c, open(sys.argv[1], "w"))' "$T/f32/$f" || exit 1
done
ckpt convert --dtype bf16 "$T/f32" "$T/bf16" || exit 1
echo "checkpoints: $(du -sm "$T/f32" | cut -f1) MB fp32, \
$(du -sm "$T/bf16" | cut -f1) MB bf16 ($(($(date +%s) - t0)) s to make)"

"$PYTHON3" - "$T" "$M" "$REPS" <<'X'
import json, os, re, subprocess, sys, time

T, M, REPS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def timed(cmd, stdin):
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    err = p.stderr.read().decode()
    _, status, ru = os.wait4(p.pid, 0)
    t = time.monotonic() - t0
    if status != 0:
        sys.exit("%s: status %d: %s" % (" ".join(cmd), status, err))
    return None, t, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, err

class Config:
    """One way to decode: the best figures seen over the runs."""
    def __init__(self, name, ck, n, extra=(), load_only=False):
        self.name, self.ck, self.n, self.extra = name, ck, n, list(extra)
        self.load_only = load_only
        self.tps, self.load, self.rss = 0.0, float("inf"), 0

    def run(self):
        with open(os.path.join(T, "one.jsonl")) as f:
            _, _, _, rss, st = timed(
                ["rollout", "-q", "-J", "--stats", "-m", self.ck, "-n",
                 str(self.n), "--max-tokens",
                 "1" if self.load_only else str(M)] + self.extra, f)
        # rollout --stats: "...; load L s; ...; decode D s, N tokens, R tok/s"
        m = re.search(r"load ([0-9.]+) s;.*decode [0-9.]+ s, ([0-9]+) "
                      r"tokens, ([0-9.]+) tok/s", st)
        if m is None:
            sys.exit("no --stats line: " + st)
        self.load = min(self.load, float(m.group(1)))
        self.rss = max(self.rss, rss)
        self.toks = int(m.group(2))
        if not self.load_only:
            self.tps = max(self.tps, float(m.group(3)))

f32, b16 = os.path.join(T, "f32"), os.path.join(T, "bf16")
cfgs = [Config("f32", f32, 1), Config("bf16", b16, 1),
        Config("bf16 n=8", b16, 8),
        Config("f32>bf16", f32, 1, ["--weights", "bf16"], True),
        Config("bf16>f32", b16, 1, ["--weights", "f32"], True)]
for r in range(REPS):
    for cfg in cfgs:
        cfg.run()
        sys.stderr.write("run %d/%d %s: %.2f tok/s, load %.2f s\n"
                         % (r + 1, REPS, cfg.name, cfg.tps, cfg.load))
base = cfgs[0].tps
for cfg in cfgs:
    if cfg.load_only:
        print("%-9s n=%d: load %.2f s; peak RSS %5.0f MB"
              % (cfg.name, cfg.n, cfg.load, cfg.rss))
        continue
    print("%-9s n=%d: %6.2f tok/s decoding (%.2fx f32); load %.2f s; "
          "peak RSS %5.0f MB" % (cfg.name, cfg.n, cfg.tps, cfg.tps / base,
                                 cfg.load, cfg.rss))
b1, b8 = cfgs[1].tps, cfgs[2].tps
print("goals: bf16 n=1 / f32 n=1 = %.2fx (>= 1.7); "
      "bf16 n=8 / bf16 n=1 = %.2fx (>= 4)" % (b1 / base, b8 / b1))
X
st=$?
[ $st -eq 0 ] || echo "bench_bf16: the measurements ended with status $st" >&2
exit $st
