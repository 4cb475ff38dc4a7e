#!/bin/sh
# rollout: first-token frequencies over many samples match the model's
# probabilities (from a plain forward pass) within a chi-square bound, at
# temperature 1, at another temperature, and within a top-k / top-p set.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
# Threads that wait by spinning starve the busy ones on a loaded machine
# (make -j, other tests): these tests are about results, not speed.
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}; export OMP_WAIT_POLICY
chk="$top_builddir/tests/unit_sample_check"

ckpt init -o "$T/m" --seed 5 || fail "ckpt init"
echo '{"id":"p","prompt":"Once upon"}' >"$T/p.jsonl"
rollout -m "$T/m" -n 1 --max-tokens 1 <"$T/p.jsonl" >"$T/one" ||
    fail "rollout"
"$chk" -p "$T/m" <"$T/one" >"$T/probs" || fail "probabilities"

# chisq FILE T TOPK TOPP: samples in FILE against the probabilities
# tempered and filtered as rollout's options say.
chisq() {
	"$PYTHON3" - "$T/probs" "$@" <<'X'
import json, math, sys
probs = [float(l.split()[1]) for l in open(sys.argv[1])]
recs = [json.loads(l) for l in open(sys.argv[2])]
T, k, p = float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
w = [q ** (1 / T) for q in probs]
order = sorted(range(len(w)), key=lambda i: (-w[i], i))
keep = order[:k] if k else order
z = sum(w[i] for i in keep)
if p < 1:
    c, n = 0, len(keep)
    for j, i in enumerate(keep):
        c += w[i] / z
        if c >= p:
            n = j + 1
            break
    keep = keep[:n]
z = sum(w[i] for i in keep)
expect = {i: w[i] / z for i in keep}
count = {}
for r in recs:
    t = r["response_tokens"][0]
    assert t in expect, "token %d outside the candidate set" % t
    count[t] = count.get(t, 0) + 1
N = len(recs)
# Bins of expected count >= 5 each; the rest pooled into one.
bins, pool_e, pool_o = [], 0.0, 0
for i, q in expect.items():
    if N * q >= 5:
        bins.append((count.get(i, 0), N * q))
    else:
        pool_e += N * q
        pool_o += count.get(i, 0)
if pool_e > 0:
    bins.append((pool_o, pool_e))
stat = sum((o - e) ** 2 / e for o, e in bins)
df = len(bins) - 1
if df == 0:
    sys.exit(0 if bins[0][0] == N else 1)
# Wilson-Hilferty: the chi-square quantile at p = 1e-6 (z = 4.753).
z6 = 4.753
crit = df * (1 - 2 / (9 * df) + z6 * math.sqrt(2 / (9 * df))) ** 3
print("chi2 %.1f df %d bound %.1f" % (stat, df, crit))
sys.exit(0 if stat < crit else 1)
X
}

rollout -m "$T/m" -n 20000 --max-tokens 1 --batch 256 <"$T/p.jsonl" \
    >"$T/s1" || fail "rollout T=1"
recs to-json <"$T/s1" >"$T/s1.json"
check "chi-square at temperature 1" chisq "$T/s1.json" 1 0 1
rollout -m "$T/m" -n 20000 --max-tokens 1 --temperature 0.05 -J \
    <"$T/p.jsonl" >"$T/s2" || fail "rollout T=0.05"
check "chi-square at temperature 0.05" chisq "$T/s2" 0.05 0 1
rollout -m "$T/m" -n 5000 --max-tokens 1 --top-k 7 -J \
    <"$T/p.jsonl" >"$T/s3" || fail "rollout top-k"
check "chi-square in top-k 7" chisq "$T/s3" 1 7 1
rollout -m "$T/m" -n 5000 --max-tokens 1 --top-p 0.3 --temperature 0.05 \
    -J <"$T/p.jsonl" >"$T/s4" || fail "rollout top-p"
check "chi-square in top-p 0.3 at T 0.05" chisq "$T/s4" 0.05 0 0.3
finish
