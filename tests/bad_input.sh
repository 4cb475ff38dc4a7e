#!/bin/sh
# bad_input: every tool's error paths, each with its exit status (1 for bad
# data or I/O, 2 for bad usage) and its message.  In a sanitizer build they
# run with leak detection on: a leak at exit changes the exit status (and
# LeakSanitizer reports it), so a leak on an error path fails here.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}; export OMP_WAIT_POLICY
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1"
export ASAN_OPTIONS

# bad STATUS PATTERN CMD...: expect_fail, and no leak report.
bad() {
	expect_fail "$@"
	if grep -q 'LeakSanitizer' "$T/err"; then
		shift 2
		fail "$*: leaks on its error exit: $(grep -m1 -A4 'leak of' "$T/err")"
	fi
}

tiny="$T/tiny"
ckpt init -o "$tiny" --dim 32 --layers 2 --heads 2 --ffn 64 --ctx 64 \
    --seed 1 || fail "ckpt init"
ckpt init -o "$T/wide" --dim 64 --layers 2 --heads 2 --ffn 64 --ctx 64 \
    --seed 1 || fail "ckpt init wide"
ckpt init -o "$T/rm" --dim 32 --layers 2 --heads 2 --ffn 64 --ctx 64 \
    --seed 1 --head score || fail "ckpt init rm"
(cd "$tiny" && tar -cf "$T/tiny.tar" .)
head -c 3000 "$T/tiny.tar" >"$T/trunc.tar"
mkdir "$T/empty"
# A checkpoint with an unreadable config.json.
cp -r "$tiny" "$T/badconf"; printf '{"hidden_size":' >"$T/badconf/config.json"
# A size written as a real too large for any integer (found by fuzz_config).
cp -r "$tiny" "$T/hugeconf"
sed 's/"hidden_size": *[0-9]*/"hidden_size": 1e30/' "$tiny/config.json" \
    >"$T/hugeconf/config.json"
# An rms_norm_eps no float holds (it would be inf; found by fuzz_config).
cp -r "$tiny" "$T/epsconf"
sed 's/"rms_norm_eps": *[0-9.e-]*/"rms_norm_eps": 1e306/' "$tiny/config.json" \
    >"$T/epsconf/config.json"
# A bad trainer_state.json next to an optimizer state.
cp -r "$tiny" "$T/s1"
printf '{"id":"a","prompt":"1+1=","response":"2"}\n' |
    train-step -m "$T/s1" -o "$T/s2" --loss sft >/dev/null 2>&1 ||
    fail "train-step to make a state"
printf '{"step":"x"}\n' >"$T/s2/trainer_state.json"
# A sharded checkpoint whose index names a shard with a path.
cp -r "$tiny" "$T/shard"
mv "$T/shard/model.safetensors" "$T/shard/model-00001-of-00001.safetensors"
printf '{"weight_map":{"model.norm.weight":"../x.safetensors"}}\n' \
    >"$T/shard/model.safetensors.index.json"

printf '{"id":"a","prompt":"1+1=","answer":"2","response":"2"}\n' >"$T/ok"
printf '{"id":"a","prompt":"1+1=","response":"2"}\n{"id":"b","prompt":7}\n' \
    >"$T/badprompt"
printf '{"id":"a","reward":1,"response":"x"}\n{"a":tru}\n' >"$T/badjson"
printf '{"a":1}\n' | recs from-json >"$T/one.mpk"
head -c $(( $(wc -c <"$T/one.mpk") - 1 )) "$T/one.mpk" >"$T/trunc.mpk"

# recs
bad 2 '^usage: recs cat' recs
bad 2 '^recs: unknown command: frobnicate' recs frobnicate
bad 2 '^usage: recs' recs head -n x
bad 2 '^recs: to-tsv: no fields named' recs to-tsv
bad 2 '^recs: gen: the only task is arith' recs gen foo
bad 2 '^recs: --split: train or eval' recs gen arith --split x
bad 1 '^recs: .*badjson: record 2: invalid JSON' recs cat "$T/badjson"
bad 1 '^recs: .*trunc.mpk: record 1: truncated msgpack' recs to-json "$T/trunc.mpk"
bad 1 '^recs: .*nothere: No such file or directory$' recs count "$T/nothere"
bad 1 '^recs: stdin: record 2: field "r": expected number, got string$' \
    recs stats r <<'X'
{"r":1}
{"r":"x"}
X

# ckpt
bad 2 '^usage: ckpt' ckpt
bad 2 '^ckpt: unknown subcommand "frob"' ckpt frob
bad 2 '^ckpt: init: -o OUT' ckpt init
bad 2 '^ckpt: --dtype: f32, bf16 or f16, not "q8"' ckpt init -o "$T/x" --dtype q8
bad 2 '^ckpt: --dim 30 is not a multiple of --heads 4' \
    ckpt init -o "$T/x" --dim 30 --heads 4
bad 2 '^ckpt: info: one checkpoint' ckpt info
bad 2 '^ckpt: diff: two checkpoints' ckpt diff "$tiny"
bad 1 '^ckpt: .*nothere: No such file or directory' ckpt info "$T/nothere"
bad 1 '^ckpt: .*trunc.tar: \./tokenizer.json: Truncated tar archive' \
    ckpt info "$T/trunc.tar"
bad 1 '^ckpt: .*trunc.tar: ' ckpt convert "$T/trunc.tar" "$T/conv"
bad 1 '^ckpt: .*badconf.*config.json: ' ckpt info "$T/badconf"
bad 1 '^ckpt: .*hugeconf.*"hidden_size" is not an integer' \
    ckpt info "$T/hugeconf"
bad 1 '^ckpt: .*epsconf.*"rms_norm_eps" = 1e.306 is out of range' \
    ckpt info "$T/epsconf"
bad 1 '^ckpt: .*index.json: tensor "model.norm.weight": bad shard name' \
    ckpt info "$T/shard"
bad 1 '^ckpt: tensor "model.embed_tokens.weight": shape \[259, 32\] in .*tiny, \[259, 64\] in .*wide$' \
    ckpt diff "$tiny" "$T/wide"
bad 1 '^ckpt: stdin: record 2: field "prompt": expected string' \
    ckpt tokenize --field prompt "$tiny" <"$T/badprompt"

# rollout
r() { rollout -m "$tiny" --max-tokens 2 "$@"; }
bad 2 '^usage: rollout' rollout
bad 2 '^rollout: .*--top-p' r --top-p 1.5 </dev/null
bad 2 '^rollout: .*--shard' r --shard 3/2 </dev/null
bad 2 '^rollout: --chat-template: ' r --chat-template nosuch </dev/null
bad 1 '^rollout: .*badprompt: record 2: field "prompt": expected string, got integer' \
    r "$T/badprompt"
bad 1 '^rollout: .*trunc.tar: \./tokenizer.json: Truncated tar archive' \
    rollout -m "$T/trunc.tar" "$T/ok"
bad 1 '^rollout: .*rm: a reward model has no language-model' \
    rollout -m "$T/rm" "$T/ok"
bad 1 '^rollout: .*nothere: No such file or directory' r "$T/nothere"

# score
bad 2 '^score: --extract: missing closing parenthesis at offset 1 of "\("$' \
    score --exact --extract '(' "$T/ok"
bad 2 '^usage: score' score
bad 2 '^score: --answer-field: empty field name' score --exact --answer-field '' "$T/ok"
bad 1 '^score: .*badprompt: record 1: field "answer": missing' \
    score --exact "$T/badprompt"
bad 1 '^score: .*trunc.tar: \./tokenizer.json: Truncated tar archive' \
    score --logprob "$T/trunc.tar" "$T/ok"
bad 1 '^score: .*trunc.tar: ' score --rm "$T/trunc.tar" "$T/ok"
bad 1 '^score: .*badprompt: record 2: field "prompt": expected string' \
    score --logprob "$tiny" "$T/badprompt"
bad 1 '^score: .*nothere: No such file or directory' score --exact "$T/nothere"

# filter
bad 2 '^usage: filter' filter --frob
bad 2 '^filter: --keep: unknown strategy "x"' filter --keep x </dev/null
bad 2 '^filter: --weight: expected pow:K' filter --weight x </dev/null
bad 2 '^filter: --report needs --r2' filter --report "$T/rep" </dev/null
bad 2 '^filter: --where: column ' filter --where 'reward >' </dev/null
bad 1 '^filter: .*badjson: record 2: invalid JSON' filter "$T/badjson"
bad 1 '^filter: stdin: record 2: field "reward": expected number' \
    filter --keep best <<'X'
{"id":"a","prompt":"a","reward":1}
{"id":"a","prompt":"a","reward":"x"}
X

# pair
bad 2 '^usage: pair' pair --frob
bad 2 '^pair: --strategy: unknown strategy "x"' pair --strategy x </dev/null
bad 2 '^pair: --from-strings takes none of' pair --from-strings --by x </dev/null
bad 1 '^pair: .*badjson: record 2: invalid JSON' pair "$T/badjson"
bad 1 '^pair: stdin: record 2: field "reward": expected number' pair <<'X'
{"id":"a","prompt":"a","response":"x","reward":1}
{"id":"a","prompt":"a","response":"y","reward":"x"}
X

# train-step
ts() { train-step -m "$tiny" -o "$T/out" "$@"; }
bad 2 '^usage: train-step' train-step
bad 2 '^train-step: ' ts --loss foo </dev/null
bad 2 '^train-step: unexpected operand' ts --loss sft "$T/ok"
bad 1 '^train-step: stdin: record 1: field "chosen.ref_logprob": missing' \
    ts --loss dpo <<'X'
{"id":"a","prompt":"1+1=","chosen":{"response":"2"},"rejected":{"response":"3"}}
X
bad 1 '^train-step: stdin: record 2: field "' \
    ts --loss sft <"$T/badprompt"
bad 1 '^train-step: .*s2: trainer_state.json: step: expected a non-negative integer' \
    train-step -m "$T/s2" -o "$T/out" --loss sft <"$T/ok"
bad 1 '^train-step: .*trunc.tar: \./tokenizer.json: Truncated tar archive' \
    train-step -m "$T/trunc.tar" -o "$T/out" --loss sft <"$T/ok"

# merge
bad 2 '^merge: -o OUT is required' merge "$tiny"
bad 2 '^merge: no checkpoints to merge' merge -o "$T/m"
bad 2 '^merge: --weights: 1 weights for 2 models' \
    merge -o "$T/m" --weights 1 "$tiny" "$tiny"
bad 2 '^merge: --method: ' merge -o "$T/m" --method x "$tiny"
bad 1 '^merge: .*wide/config.json: field "hidden_size" is 64, but 32 in ' \
    merge -o "$T/m" "$tiny" "$T/wide"
bad 1 '^merge: .*trunc.tar: \./tokenizer.json: Truncated tar archive' \
    merge -o "$T/m" "$T/trunc.tar" "$tiny"
bad 1 '^merge: .*nothere: No such file or directory' merge -o "$T/m" "$T/nothere" "$tiny"
check "no merge output after errors" test ! -e "$T/m"
finish
