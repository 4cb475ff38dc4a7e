#!/bin/sh
# rollout: the records it writes, greedy decoding against step-by-step
# argmax of plain forward passes, and logprobs against a separate forward
# pass over prompt + response, whatever the sampling settings.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
# Threads that wait by spinning starve the busy ones on a loaded machine
# (make -j, other tests): these tests are about results, not speed.
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}; export OMP_WAIT_POLICY
chk="$top_builddir/tests/unit_sample_check"

ckpt init -o "$T/m" --seed 3 || fail "ckpt init"
ckpt init -o "$T/q" --arch qwen2 --dim 48 --heads 4 --kv-heads 2 \
    --layers 3 --seed 4 || fail "ckpt init qwen2"
# Qwen3: q/k norms, head_dim 16 on a width of 40 (not 40 / 4), biases.
ckpt init -o "$T/q3" --arch qwen3 --dim 40 --heads 4 --kv-heads 2 \
    --head-dim 16 --attention-bias --layers 2 --seed 6 || fail "ckpt init qwen3"
# Mistral: a sliding window of 5 positions, shorter than the prompts and
# the responses, so prefill and decode both drop keys.
ckpt init -o "$T/mi" --arch mistral --sliding-window 5 --dim 32 --heads 4 \
    --kv-heads 2 --layers 2 --seed 7 || fail "ckpt init mistral"
# Gemma 2: post-norms, gelu tanh, softcaps, query_pre_attn_scalar, the
# embedding normalizer; a window of 6 on layer 0, which responses pass.
ckpt init -o "$T/g2" --arch gemma2 --sliding-window 6 --dim 32 \
    --heads 4 --kv-heads 2 --head-dim 12 --layers 2 --seed 8 || fail "ckpt init gemma2"
# Gemma 3: q/k norms, a local rope base on layers 0..4, global layer 5.
ckpt init -o "$T/g3" --arch gemma3 --sliding-window 5 --dim 32 \
    --heads 4 --kv-heads 2 --head-dim 8 --layers 6 --seed 9 || fail "ckpt init gemma3"
# Llama 3's rope scaling: the same weights, the config edited.
cp -R "$T/m" "$T/l3" || fail "cp"
"$PYTHON3" - "$T/l3/config.json" <<'X' || fail "llama3 config"
import json, sys
c = json.load(open(sys.argv[1]))
c["rope_theta"] = 500000.0
c["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0,
    "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    "original_max_position_embeddings": 16}
json.dump(c, open(sys.argv[1], "w"))
X
cat >"$T/p.jsonl" <<'X'
{"id":"a","prompt":"Hello","meta":{"k":[1,2]}}
{"prompt":"The cat sat"}
{"id":7,"prompt":"x"}
X

# Fields: every input field, then the sample's; ids filled in by ordinal.
rollout -m "$T/m" -n 2 --max-tokens 6 --greedy-baseline -J <"$T/p.jsonl" \
    >"$T/out" || fail "rollout"
"$PYTHON3" - "$T/out" <<'X' || fail "record fields"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
assert len(recs) == 9, len(recs)
assert [r["id"] for r in recs] == ["a"] * 3 + ["2"] * 3 + [7] * 3
assert [r["sample"] for r in recs] == [0, 1, -1] * 3
for r in recs:
    assert list(r)[:2] in (["id", "prompt"], ["prompt", "id"]), list(r)
    assert r["finish"] == "length" or r["response_tokens"][-1] == 257, r
    assert len(r["response_tokens"]) == len(r["logprobs"]) <= 6
    assert r["prompt_tokens"][0] == 256          # BOS
    assert isinstance(r["response"], str)
    assert len(r["policy"]) == 16 and r["policy"] == recs[0]["policy"]
    assert r.get("greedy") == (True if r["sample"] == -1 else None)
    assert all(x <= 0 for x in r["logprobs"])
assert recs[0]["meta"] == {"k": [1, 2]}
assert recs[0]["prompt_tokens"] == [256] + list(b"Hello")
X

# The policy fingerprint follows the weights, not the container.
tar -C "$T/m" -cf "$T/m.tar" . || fail "tar"
rollout -m "$T/m.tar" --max-tokens 6 -J <"$T/p.jsonl" >"$T/out.tar" ||
    fail "rollout from tar"
rollout -m "$T/m" --max-tokens 6 -J <"$T/p.jsonl" >"$T/out1" || fail "rollout"
same "archive" "$T/out1" "$T/out.tar"
rollout -m "$T/q" --max-tokens 6 -J <"$T/p.jsonl" >"$T/outq" || fail "rollout"
"$PYTHON3" -c 'import json,sys
a=json.loads(open(sys.argv[1]).readline()); b=json.loads(open(sys.argv[2]).readline())
assert a["policy"] != b["policy"]' "$T/out1" "$T/outq" || fail "policy differs"

# Greedy equals step-by-step argmax; logprobs equal a forward pass.
for m in m q q3 mi g2 g3 l3; do
	rollout -m "$T/$m" --temperature 0 -n 2 --max-tokens 40 \
	    <"$T/p.jsonl" >"$T/g" || fail "greedy $m"
	check "greedy $m is argmax" "$chk" -g "$T/$m" <"$T/g" >/dev/null
	rollout -m "$T/$m" -n 3 --max-tokens 30 --greedy-baseline \
	    <"$T/p.jsonl" >"$T/s" || fail "sample $m"
	check "sampled $m logprobs" "$chk" "$T/$m" <"$T/s" >/dev/null
	for opt in "--temperature 0.3" "--temperature 3" "--top-k 5" \
	    "--top-p 0.5" "--min-p 0.9" "--top-k 20 --top-p 0.9 --min-p 0.1"; do
		# shellcheck disable=SC2086
		rollout -m "$T/$m" -n 2 --max-tokens 20 $opt <"$T/p.jsonl" \
		    >"$T/s" || fail "rollout $opt"
		check "logprobs at T=1 with $opt" "$chk" "$T/$m" \
		    <"$T/s" >/dev/null
	done
done

# The plain kernels, which CPUs without AVX2 run, agree with the model too.
for m in m q q3 mi g2 g3; do
	PREFPIPE_NO_AVX2=1 rollout -m "$T/$m" --temperature 0 -n 2 \
	    --max-tokens 40 <"$T/p.jsonl" >"$T/g" || fail "plain greedy $m"
	check "plain greedy $m is argmax" "$chk" -g "$T/$m" <"$T/g" >/dev/null
	PREFPIPE_NO_AVX2=1 rollout -m "$T/$m" -n 3 --max-tokens 30 \
	    <"$T/p.jsonl" >"$T/s" || fail "plain sample $m"
	check "plain sampled $m logprobs" "$chk" "$T/$m" <"$T/s" >/dev/null
done

# The baseline is the same sequence as temperature 0.
rollout -m "$T/m" -n 0 --greedy-baseline --max-tokens 20 -J \
    <"$T/p.jsonl" >"$T/b" || fail "baseline"
rollout -m "$T/m" -n 1 --temperature 0 --max-tokens 20 -J \
    <"$T/p.jsonl" >"$T/t0" || fail "temperature 0"
"$PYTHON3" - "$T/b" "$T/t0" <<'X' || fail "baseline equals greedy"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert [r["response_tokens"] for r in a] == [r["response_tokens"] for r in b]
assert all(r["sample"] == -1 and r["greedy"] for r in a)
X

# Same seed, same samples; another seed, others.
rollout -m "$T/m" -n 2 --max-tokens 20 <"$T/p.jsonl" >"$T/s1"
rollout -m "$T/m" -n 2 --max-tokens 20 <"$T/p.jsonl" >"$T/s2"
rollout -m "$T/m" -n 2 --max-tokens 20 --seed 1 <"$T/p.jsonl" >"$T/s3"
same "reproducible" "$T/s1" "$T/s2"
if cmp -s "$T/s1" "$T/s3"; then fail "--seed changes nothing"; fi

# msgpack and zstd in, JSON out; -z compresses.
recs from-json <"$T/p.jsonl" | zstd -q >"$T/p.zst" || fail "zstd input"
rollout -m "$T/m" -n 2 --max-tokens 20 "$T/p.zst" >"$T/s4" || fail "rollout zst"
same "msgpack/zstd input" "$T/s1" "$T/s4"
rollout -m "$T/m" -n 2 --max-tokens 20 -z <"$T/p.jsonl" | zstd -dq >"$T/s5"
same "-z" "$T/s1" "$T/s5"

# Silent on stderr when it is not a terminal.
rollout -m "$T/m" --max-tokens 4 <"$T/p.jsonl" >/dev/null 2>"$T/err"
[ -s "$T/err" ] && fail "stderr not empty: $(cat "$T/err")"

# --stats: one line at the end, its counts those of the records written
# (each sample's first token is prefill's, the rest decoding's), the
# records unchanged.
rollout -m "$T/m" -n 2 --max-tokens 20 --stats <"$T/p.jsonl" >"$T/s6" \
    2>"$T/err" || fail "--stats"
same "--stats output" "$T/s1" "$T/s6"
recs to-json <"$T/s6" >"$T/s6.jsonl"
"$PYTHON3" - "$T/s6.jsonl" "$T/err" <<'X' || fail "--stats counts"
import json, re, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
err = open(sys.argv[2]).read().splitlines()
assert len(err) == 1, err
m = re.fullmatch(r"rollout: (\d+) prompts, (\d+) samples; load [0-9.]+ s; "
                 r"prefill [0-9.]+ s, (\d+) tokens; decode [0-9.]+ s, "
                 r"(\d+) tokens, [0-9.]+ tok/s", err[0])
assert m, err[0]
prompts, samples, pre, dec = map(int, m.groups())
assert prompts == len({r["id"] for r in recs}), (prompts, err[0])
assert samples == len(recs), (samples, err[0])
assert pre == sum(len(r["prompt_tokens"]) for r in recs) // 2, err[0]
assert dec == sum(len(r["response_tokens"]) - 1 for r in recs), err[0]
X
finish
