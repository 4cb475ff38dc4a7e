#!/bin/sh
# model_weights: --weights auto|f32|bf16|f16 through the tools.  A bf16
# (f16) checkpoint, held as stored, scores, samples and serves as a DPO
# reference exactly as the same checkpoint converted to fp32; --weights
# bf16 on an fp32 checkpoint as the checkpoint `ckpt convert --dtype
# bf16`'d, norms and biases kept fp32 (so: as a model whose matrices alone
# were rounded); frozen tensors of the policy held in 16 bits train as
# fp32 ones do.  Bad values are usage errors.  The kernels are checked
# against rounded fp32 in tests/unit_model_weights.c.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

ckpt init -o "$T/m" --arch qwen2 --dim 72 --layers 2 --heads 6 \
    --kv-heads 2 --ffn 136 --ctx 128 --seed 3 || fail "ckpt init"
ckpt init -o "$T/l" --dim 64 --layers 2 --heads 4 --ffn 96 --ctx 128 \
    --tie --seed 4 || fail "ckpt init --tie"
for c in m l; do
	ckpt convert --dtype bf16 "$T/$c" "$T/$c.bf16" &&
	ckpt convert --dtype f32 "$T/$c.bf16" "$T/$c.bf16.f32" &&
	ckpt convert --dtype f16 "$T/$c" "$T/$c.f16" &&
	ckpt convert --dtype f32 "$T/$c.f16" "$T/$c.f16.f32" ||
	    fail "ckpt convert $c"
done

# m.mat: m's matrices rounded to bf16, its norms and biases not; what
# --weights bf16 computes with.
"$PYTHON3" - "$T/m" "$T/m.bf16" "$T/m.mat" <<'E' || fail "m.mat"
import json, os, shutil, struct, sys
src, b16, dst = sys.argv[1:]
def read(d):
    b = open(os.path.join(d, "model.safetensors"), "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:]
h, data = read(src)
hb, datab = read(b16)
out, meta = bytearray(), {}
for name, t in h.items():
    if name == "__metadata__":
        meta[name] = t
        continue
    s, e = t["data_offsets"]
    raw = data[s:e]
    if not (name.endswith("norm.weight") or name.endswith(".bias")):
        sb, eb = hb[name]["data_offsets"]
        raw = b"".join(b"\0\0" + datab[i:i + 2]
                       for i in range(sb, eb, 2))
    meta[name] = dict(t, data_offsets=[len(out), len(out) + len(raw)])
    out += raw
hdr = json.dumps(meta).encode()
hdr += b" " * (-len(hdr) % 8)
shutil.copytree(src, dst)
with open(os.path.join(dst, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(hdr)) + hdr + out)
E

cat >"$T/text" <<'E'
{"id":"a","prompt":"Hello","response":" world, and then some more text"}
{"id":"b","prompt":"2+2=","chosen":{"response":"4"},"rejected":{"response":"5!"}}
{"id":"c","prompt":"The quick brown fox","response":" jumps over the lazy dog."}
E

# --- score --logprob ------------------------------------------------------
for c in m l; do
	for d in bf16 f16; do
		score --logprob "$T/$c.$d.f32" -J "$T/text" >"$T/want" ||
		    fail "score $c.$d.f32"
		score --logprob "$T/$c.$d" -J "$T/text" >"$T/got" ||
		    fail "score $c.$d"
		same "score: $c $d checkpoint held as stored" "$T/got" \
		    "$T/want"
		score --logprob "$T/$c.$d" --weights f32 -J "$T/text" \
		    >"$T/got" || fail "score $c.$d --weights f32"
		same "score: $c $d checkpoint widened" "$T/got" "$T/want"
	done
done
score --logprob "$T/m.mat" -J "$T/text" >"$T/want" || fail "score m.mat"
score --logprob "$T/m" --weights bf16 -J "$T/text" >"$T/got" ||
    fail "score --weights bf16"
same "score: --weights bf16 rounds the matrices" "$T/got" "$T/want"
score --logprob "$T/m" -J "$T/text" >"$T/f32" || fail "score m"
check "score: --weights bf16 is not fp32" sh -c "! cmp -s '$T/got' '$T/f32'"
score --logprob "$T/m" --weights f32 -J "$T/text" >"$T/got" ||
    fail "score --weights f32"
same "score: auto of fp32 is fp32" "$T/got" "$T/f32"

# --- rollout: sampled and greedy text, logprobs, batches ------------------
printf '{"id":"%s","prompt":"%s"}\n' 1 "Once upon" 2 "a time" 3 "x" \
    >"$T/prompts"
strip() { "$PYTHON3" -c '
import json, sys
for l in sys.stdin:
    r = json.loads(l); r.pop("policy", None); print(json.dumps(r))'; }
for c in m l; do
	for d in bf16 f16; do
		for avx in "" 1; do
			for args in "-n 3 --seed 5" "-n 1 --temperature 0"; do
				# shellcheck disable=SC2086
				PREFPIPE_NO_AVX2=$avx rollout -m "$T/$c.$d" \
				    $args --max-tokens 12 -qJ "$T/prompts" |
				    strip >"$T/got"
				# shellcheck disable=SC2086
				PREFPIPE_NO_AVX2=$avx rollout \
				    -m "$T/$c.$d.f32" $args --max-tokens 12 \
				    -qJ "$T/prompts" | strip >"$T/want"
				same "rollout $c $d $args no_avx2=$avx" \
				    "$T/got" "$T/want"
			done
		done
	done
done
rollout -m "$T/m" --weights bf16 -n 4 --seed 2 --max-tokens 12 --batch 3 \
    -qJ "$T/prompts" | strip >"$T/got"
rollout -m "$T/m.mat" -n 4 --seed 2 --max-tokens 12 -qJ "$T/prompts" |
    strip >"$T/want"
same "rollout --weights bf16, batch 3 and 64" "$T/got" "$T/want"
check "rollout: 12 samples" test "$(wc -l <"$T/got")" -eq 12
# the fingerprint covers the bytes held: another for bf16 weights
p1=$(rollout -m "$T/m" -n 1 --max-tokens 1 -qJ "$T/prompts" |
    recs head -n 1 | recs to-tsv policy)
p2=$(rollout -m "$T/m" --weights bf16 -n 1 --max-tokens 1 -qJ \
    "$T/prompts" | recs head -n 1 | recs to-tsv policy)
p3=$(rollout -m "$T/m" --weights F32 -n 1 --max-tokens 1 -qJ \
    "$T/prompts" | recs head -n 1 | recs to-tsv policy)
check "rollout: fingerprints" test "$p1" = "$p3" -a "$p1" != "$p2"

# --- train-step: --ref, and --freeze'd tensors ----------------------------
cat >"$T/pairs" <<'E'
{"id":"p1","prompt":"Hello","chosen":{"response":" world"},"rejected":{"response":" there!"}}
{"id":"p2","prompt":"2+2=","chosen":{"response":"4"},"rejected":{"response":"5"}}
{"id":"p3","prompt":"abc","chosen":{"response":"def"},"rejected":{"response":"xyz"}}
{"id":"p4","prompt":"The","chosen":{"response":" end."},"rejected":{"response":" start"}}
E
args="--loss dpo --batch-size 2 --lr 1e-2 --no-shuffle -J"
metrics() { recs to-tsv loss margin grad_norm; }
# shellcheck disable=SC2086
train-step -m "$T/m" -o "$T/o1" $args --ref "$T/m.bf16.f32" <"$T/pairs" |
    metrics >"$T/want" || fail "train-step --ref fp32"
# shellcheck disable=SC2086
train-step -m "$T/m" -o "$T/o2" $args --ref "$T/m.bf16" <"$T/pairs" |
    metrics >"$T/got" || fail "train-step --ref bf16"
same "train-step: a bf16 --ref held as stored" "$T/got" "$T/want"
check "train-step: two steps" test "$(wc -l <"$T/got")" -eq 2
# shellcheck disable=SC2086
train-step -m "$T/m" -o "$T/o1" $args --ref "$T/m.mat" <"$T/pairs" |
    metrics >"$T/want" || fail "train-step --ref m.mat"
# shellcheck disable=SC2086
train-step -m "$T/m" -o "$T/o2" $args --ref "$T/m" --weights bf16 \
    <"$T/pairs" | metrics >"$T/got" || fail "train-step --weights bf16"
same "train-step: --ref with --weights bf16" "$T/got" "$T/want"

# The policy a bf16 checkpoint, some tensors frozen (q's weight but not
# its bias; the embedding): held in bf16 under auto, it trains as the
# fp32 conversion does, and writes the same checkpoint.
frozen='model.embed_tokens.weight,model.layers.0.self_attn.q_proj.weight,model.layers.*.mlp.up_proj.weight'
sargs="--loss sft --batch-size 2 --lr 1e-2 --no-shuffle -J"
grep -v chosen "$T/text" >"$T/sft"
cat "$T/sft" "$T/sft" >>"$T/sft2"
# shellcheck disable=SC2086
train-step -m "$T/m.bf16.f32" -o "$T/s1" $sargs --freeze "$frozen" \
    <"$T/sft2" | metrics >"$T/want" || fail "train-step --freeze fp32"
# shellcheck disable=SC2086
train-step -m "$T/m.bf16" -o "$T/s2" $sargs --freeze "$frozen" \
    <"$T/sft2" | metrics >"$T/got" || fail "train-step --freeze bf16"
"$PYTHON3" - "$T/got" "$T/want" <<'E' || fail "train-step --freeze: losses"
import sys
A = [l.split() for l in open(sys.argv[1])]
B = [l.split() for l in open(sys.argv[2])]
assert len(A) == len(B) == 2, (A, B)
for a, b in zip(A, B):
    for x, y in zip(a, b):
        assert abs(float(x) - float(y)) <= 1e-5 * (1 + abs(float(y))), (a, b)
E
ckpt diff -J "$T/s1" "$T/s2" | recs to-tsv name max_abs |
    awk -F '\t' '$2 > 1e-5 { print }' >"$T/diff"
check "train-step --freeze: the same checkpoint ($(head -1 "$T/diff"))" \
    test ! -s "$T/diff"
ckpt diff -J "$T/m.bf16.f32" "$T/s2" | recs to-tsv name max_abs |
    awk -F '\t' '$1 == "model.embed_tokens.weight" { print ($2 == 0) }' \
    >"$T/emb"
check "train-step --freeze: a frozen bf16 tensor written exactly" \
    test "$(cat "$T/emb")" = 1

# near WANT GOT: every reference log-prob of GOT (a pair's chosen and
# rejected too) within 0.05 of WANT's, and not all equal.
near() {
	"$PYTHON3" - "$1" "$2" <<'X'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
def lps(r):	# every ref_logprobs, a pair's chosen and rejected too
    for k, v in sorted(r.items()):
        if k == "ref_logprobs":
            yield from v
        elif isinstance(v, dict):
            yield from lps(v)
x, y = [list(lps(r)) for r in a], [list(lps(r)) for r in b]
assert [len(v) for v in x] == [len(v) for v in y] and sum(map(len, x)) > 20
d = max(abs(p - q) for u, v in zip(x, y) for p, q in zip(u, v))
assert 0 < d < 0.05, d
X
}

# A LoRA adapter on the bf16 checkpoint: its base held in 16 bits (the
# adapters in fp32) trains and scores as the same base widened to fp32.
# shellcheck disable=SC2086
train-step -m "$T/m.bf16" -o "$T/ad" --loss sft --batch-size 2 --lr 1e-2 \
    --lora-rank 4 -J <"$T/sft2" | recs to-tsv loss grad_norm >"$T/l16" ||
    fail "train-step --lora-rank"
# shellcheck disable=SC2086
train-step -m "$T/m.bf16" -o "$T/ad32" --loss sft --batch-size 2 --lr 1e-2 \
    --lora-rank 4 --weights f32 -J <"$T/sft2" | recs to-tsv loss grad_norm \
    >"$T/l32" || fail "train-step --lora-rank --weights f32"
same "LoRA on a bf16 base: the losses of its fp32 widening" "$T/l16" "$T/l32"
score --logprob "$T/ad" --weights f32 -J "$T/text" >"$T/want" ||
    fail "score adapter --weights f32"
score --logprob "$T/ad" -J "$T/text" >"$T/got" || fail "score adapter"
same "score: an adapter on its base in 16 bits" "$T/got" "$T/want"
score --logprob "$T/ad" --weights bf16 -J "$T/text" >"$T/got" ||
    fail "score adapter --weights bf16"
same "score: an adapter under --weights bf16" "$T/got" "$T/want"

# A frozen module_to_save of an adapter is held as the base's matrices are:
# near its fp32 scores, not equal (lm_head, trained, rounded to bf16).
# shellcheck disable=SC2086
train-step -m "$T/m.bf16" -o "$T/adm" --loss sft --batch-size 2 --lr 1e-2 \
    --lora-rank 4 --train-modules lm_head -J <"$T/sft2" >/dev/null ||
    fail "train-step --lora-rank --train-modules lm_head"
score --logprob "$T/adm" --weights f32 -J "$T/text" >"$T/want" ||
    fail "score adapter with lm_head --weights f32"
score --logprob "$T/adm" -J "$T/text" >"$T/got" ||
    fail "score adapter with lm_head"
check "score: an adapter's lm_head held in bf16 is not fp32's" \
    sh -c "! cmp -s '$T/got' '$T/want'"
near "$T/want" "$T/got" || fail "score: a held lm_head near fp32"

# --- --compute bf16 -------------------------------------------------------
# bf16 arithmetic on a bf16 checkpoint: not fp32's bits, but near them
# (the kernels' exact rule is checked in tests/unit_model_weights.c); on
# fp32 weights it changes nothing; --compute f32 is the default; rollout
# and train-step (a LoRA base, a --ref) take it too.
score --logprob "$T/m.bf16" -J "$T/text" >"$T/want" || fail "score bf16"
score --logprob "$T/m.bf16" --compute bf16 -J "$T/text" >"$T/got" ||
    fail "score --compute bf16"
check "score: --compute bf16 is not fp32 arithmetic" \
    sh -c "! cmp -s '$T/got' '$T/want'"
near "$T/want" "$T/got" || fail "score: --compute bf16 near fp32"
score --logprob "$T/m.bf16" --compute f32 -J "$T/text" >"$T/got" ||
    fail "score --compute f32"
same "score: --compute f32 is the default" "$T/got" "$T/want"
score --logprob "$T/m" --compute bf16 -J "$T/text" >"$T/got" ||
    fail "score fp32 --compute bf16"
same "score: --compute bf16 leaves fp32 weights alone" "$T/got" "$T/f32"
rollout -m "$T/m.bf16" --compute bf16 -n 2 --max-tokens 8 -J \
    "$T/prompts" >"$T/got" || fail "rollout --compute bf16"
check "rollout --compute bf16: 2 samples a prompt" \
    test "$(wc -l <"$T/got")" -eq $((2 * $(wc -l <"$T/prompts")))
train-step -m "$T/m.bf16" -o "$T/adc" --loss sft --batch-size 2 --lr 1e-2 \
    --lora-rank 4 --compute bf16 -J <"$T/sft2" | recs to-tsv loss \
    >"$T/lc" || fail "train-step --lora-rank --compute bf16"
check "train-step --compute bf16: not fp32's losses" \
    sh -c "! cmp -s '$T/lc' '$T/l16'"

# --- errors ---------------------------------------------------------------
expect_fail 2 'rollout: --weights: "fp8" is none of auto, f32, bf16, f16' \
    rollout -m "$T/m" --weights fp8 "$T/prompts"
expect_fail 2 'score: --weights: "" is none of' \
    score --logprob "$T/m" --weights "" "$T/text"
expect_fail 2 'score: --weights does not apply to --exact' \
    score --exact --weights bf16 "$T/text"
expect_fail 2 'train-step: --weights: "16" is none of' \
    train-step -m "$T/m" -o "$T/x" --loss sft --weights 16 <"$T/text"
expect_fail 2 'rollout: --compute: "f16" is neither f32 nor bf16' \
    rollout -m "$T/m" --compute f16 "$T/prompts"
expect_fail 2 'score: --compute does not apply to --exact' \
    score --exact --compute bf16 "$T/text"
expect_fail 2 'train-step: --compute: "x" is neither' \
    train-step -m "$T/m" -o "$T/x" --loss sft --compute x <"$T/text"

finish
