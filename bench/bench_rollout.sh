#!/bin/sh
# bench_rollout: rollout's decoding speed in tokens/s, at n = 1 (one
# stream) and n = 8 (eight samples of one prompt decoding together), on a
# dim-288, 6-layer, 32000-token model (the shape of llama2.c's stories15M)
# and on ckpt init's default dim-64 model; against bench_rollout_ref, a
# plain single-stream decoder of the same weights (llama2.c's way).
#
# Decoding time is a run's time less that of the same run with
# --max-tokens 1 (loading the checkpoint, prefilling the prompt).  Two
# figures each: tokens per second of wall time, and tokens per second of
# CPU time (user + system), which a shared machine disturbs much less at
# one thread; at several threads, idle OpenMP threads spin, so use wall.
# Times are the least of REPS runs (default 5), the configurations
# taking turns.
#
#   sh bench/bench_rollout.sh [TOKENS]	(default 256 a sample)
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${PYTHON3:=/usr/bin/python3}"
PATH="$top_builddir/tools:$PATH"
ref="$top_builddir/bench/bench_rollout_ref"
M=${1:-256}
REPS=${REPS:-5}
T=$(mktemp -d "${TMPDIR:-/tmp}/bench_rollout.XXXXXX")
trap 'rm -rf "$T"' EXIT
[ -x "$ref" ] || make -C "$top_builddir" bench/bench_rollout_ref >/dev/null ||
    exit 1
echo "threads: ${OMP_NUM_THREADS:-all}; load: $(cut -d' ' -f1-3 /proc/loadavg)"

echo '{"id":"p","prompt":"Once upon a time"}' >"$T/one.jsonl"
i=0
while [ $i -lt 8 ]; do
	printf '{"id":"p%d","prompt":"Once upon a time, number %d"}\n' $i $i
	i=$((i + 1))
done >"$T/eight.jsonl"

ckpt init -o "$T/m288" --dim 288 --layers 6 --heads 6 --ffn 768 \
    --vocab-size 32000 --ctx 512 --tie --seed 1 >/dev/null || exit 1
ckpt init -o "$T/m64" --seed 1 >/dev/null || exit 1
# No EOS: every sample runs the full TOKENS, so batches stay full (the
# byte model would otherwise stop one sample in 259 at each step).
for m in m288 m64; do
	for f in config.json generation_config.json; do
		"$PYTHON3" -c 'import json, sys
c = json.load(open(sys.argv[1])); c["eos_token_id"] = []
json.dump(c, open(sys.argv[1], "w"))' "$T/$m/$f" || exit 1
	done
done

"$PYTHON3" - "$T" "$M" "$REPS" "$ref" <<'X'
import json, os, resource, subprocess, sys, time

T, M, REPS, ref = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def timed(cmd, stdin=None):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    out = subprocess.run(cmd, stdin=stdin, stdout=subprocess.PIPE,
                         check=True).stdout
    t = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return out, t, cpu

def rollout(ck, n, prompts, m, extra=()):
    with open(prompts) as f:
        return timed(["rollout", "-q", "-J", "-m", ck, "-n", str(n),
                      "--max-tokens", str(m)] + list(extra), f)

class Config:
    """One way to decode: the best (least) times seen over the runs."""
    def __init__(self, ck, n, prompts, extra=()):
        self.ck, self.n, self.prompts, self.extra = ck, n, prompts, extra
        self.w = self.c = self.w1 = self.c1 = float("inf")
        self.toks = 0

    def run(self):
        # Decoding time is a run's time less that of the same run with
        # --max-tokens 1, each the least of its runs: the difference of
        # two noisy minima, not the best of noisy differences.
        _, w1, c1 = rollout(self.ck, self.n, self.prompts, 1, self.extra)
        out, w, c = rollout(self.ck, self.n, self.prompts, M, self.extra)
        recs = [json.loads(l) for l in out.splitlines()]
        self.toks = sum(len(r["response_tokens"]) - 1 for r in recs)
        self.w, self.c = min(self.w, w), min(self.c, c)
        self.w1, self.c1 = min(self.w1, w1), min(self.c1, c1)

    def tps(self):
        return (self.toks / max(self.w - self.w1, 1e-3),
                self.toks / max(self.c - self.c1, 1e-3))

class Ref:
    def __init__(self, ck):
        self.ck, self.best, self.bound = ck, (0, 0), 0

    def run(self):
        out = subprocess.run([ref, self.ck, str(M)], stdout=subprocess.PIPE,
                             check=True, text=True).stdout.splitlines()
        # "ref: N tokens in S s, R tokens/s (C ms CPU a token)"
        w = float(out[0].split(", ")[1].split()[0])
        c = 1000 / float(out[0].split("(")[1].split()[0])
        self.best = max(self.best[0], w), max(self.best[1], c)
        # "read: B GB/s (W MB of weights)": a token reads every weight
        # (for weights larger than the caches: a small model's stay in
        # them, and its bound is the arithmetic, not memory)
        if len(out) > 1 and float(out[1].split("(")[1].split()[0]) > 32:
            b, mb = float(out[1].split()[1]), float(out[1].split("(")[1].split()[0])
            self.bound = max(self.bound, b * 1e3 / mb)

    def tps(self):
        return self.best

for m in ("m288", "m64"):
    ck = os.path.join(T, m)
    # Round-robin, so a change in the machine's load between the runs
    # falls on every configuration alike.
    one, eight = os.path.join(T, "one.jsonl"), os.path.join(T, "eight.jsonl")
    # and, beside the plain sampling of the targets, the filtered kind
    # (a random model's logits are flat: top-p's worst case)
    cfgs = [Ref(ck), Config(ck, 1, one), Config(ck, 8, one),
            Config(ck, 8, eight),
            Config(ck, 8, one, ["--temperature", "0.7", "--top-p", "0.9"])]
    for _ in range(REPS):
        for cfg in cfgs:
            cfg.run()
    r, n1, n8, n64, n8f = (cfg.tps() for cfg in cfgs)
    if cfgs[0].bound:
        print("%s memory bound: %.0f tok/s a stream (every weight read once"
              " a token at the threads' memory read rate); n=1 at %.0f%%,"
              " ref at %.0f%%"
              % (m, cfgs[0].bound, 100 * n1[0] / cfgs[0].bound,
                 100 * r[0] / cfgs[0].bound))
    print("%s n=8 at --temperature 0.7 --top-p 0.9: %.0f tok/s wall (%.2fx"
          " plain n=8)" % (m, n8f[0], n8f[0] / n8[0]))
    for i, what in ((0, "wall"), (1, "cpu")):
        print("%s %-4s: ref %6.0f tok/s | rollout n=1 %6.0f (%.2fx ref)"
              " | n=8 %6.0f (%.2fx n=1) | 8 prompts x n=8 %6.0f (%.2fx n=1)"
              % (m, what, r[i], n1[i], n1[i] / r[i], n8[i], n8[i] / n1[i],
                 n64[i], n64[i] / n1[i]))
X
