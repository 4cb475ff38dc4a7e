#!/bin/sh
# train_options: --ref, --add-head, --max-length, the pg estimators, and
# the errors: usage, bad records, non-finite steps.
. "$top_srcdir/tests/lib.sh"
F=$fixtures/train

# near GOT WANT TOL: |got - want| <= TOL
near() {
	awk -v g="$1" -v w="$2" -v t="$3" 'BEGIN {
		d = g - w; if (d < 0) d = -d; exit !(d <= t) }'
}

# --ref: the reference equal to the policy gives h = 0, loss log 2.
sed 's/,"ref_logprob":[-0-9.e]*//g' "$F/dpo.jsonl" >"$T/noref.jsonl"
train-step -m "$F/init" -o "$T/dref" --loss dpo --ref "$F/init" \
    --batch-size 3 <"$T/noref.jsonl" | recs to-tsv loss margin >"$T/dref.tsv"
read -r loss margin <"$T/dref.tsv"
check "dpo --ref loss" near "$loss" 0.693147 1e-5
check "dpo --ref margin" near "$margin" 0 1e-5
expect_fail 1 'record 1: field "chosen.ref_logprob": missing' \
    train-step -m "$F/init" -o "$T/x" --loss dpo <"$T/noref.jsonl"
test -e "$T/x" && fail "a checkpoint was written after an error"

# The DPO variants and IPO run and stay finite.
for v in hinge ipo robust; do
	train-step -m "$F/init" -o "$T/v" --loss dpo --dpo-variant $v \
	    --label-smoothing 0.1 <"$F/dpo.jsonl" >"$T/v.m" ||
	    fail "dpo-variant $v failed"
done

# --add-head: a causal LM becomes a reward model with a zero head, so
# every reward is 0 at the first step.
train-step -m "$F/init" -o "$T/rm" --loss rm --add-head <"$F/rm.jsonl" |
    recs to-tsv loss >"$T/rm.tsv"
check "add-head loss" near "$(cat "$T/rm.tsv")" 0.693147 1e-6
check "add-head config" grep -q ForSequenceClassification "$T/rm/config.json"
expect_fail 1 'needs a reward model' \
    train-step -m "$F/init" -o "$T/x" --loss rm <"$F/rm.jsonl"

# --max-length: drop, or --truncate responses, said in the metrics.
train-step -m "$F/init" -o "$T/ml" --loss sft --max-length 8 \
    <"$F/sft.jsonl" | recs to-tsv records dropped >"$T/ml.tsv"
check "max-length drop" grep -q '^1	2$' "$T/ml.tsv"
train-step -m "$F/init" -o "$T/ml" --loss sft --max-length 8 --truncate \
    <"$F/sft.jsonl" | recs to-tsv records truncated >"$T/ml.tsv"
check "max-length truncate" grep -q '^3	2$' "$T/ml.tsv"

# Every advantage estimator and KL estimator, both aggregations.
for a in reinforce rloo grpo; do
	for k in k1 k2 k3; do
		train-step -m "$F/init" -o "$T/pg" --loss pg --advantage $a \
		    --kl-coef 0.05 --kl-estimator $k --loss-agg seq \
		    --ppo-epochs 2 <"$F/pg.jsonl" >"$T/pg.m" ||
		    fail "pg $a $k failed"
	done
done
check "ppo-epochs: two steps" test "$(recs count <"$T/pg.m")" -eq 2
expect_fail 1 'group has no greedy sample' \
    train-step -m "$F/init" -o "$T/x" --loss pg --advantage remax \
    <"$F/pg.jsonl"
# remax with a greedy baseline per group: the baselines are not trained.
sed -n '1p;4p' "$F/pg.jsonl" | sed 's/"sample":0/"sample":-1,"greedy":true/' \
    >"$T/greedy.jsonl"
cat "$F/pg.jsonl" >>"$T/greedy.jsonl"
train-step -m "$F/init" -o "$T/pg" --loss pg --advantage remax \
    --batch-size 16 <"$T/greedy.jsonl" | recs to-tsv records >"$T/g.tsv"
check "remax trains the 6 samples" grep -qx 6 "$T/g.tsv"

# Without rollout log-probs the policy's own are the old ones (ratio 1);
# with --ref the same model, the KL is 0.
sed 's/"logprobs":\[[^]]*\],//; s/"ref_logprobs":\[[^]]*\],//' \
    "$F/pg.jsonl" >"$T/pgbare.jsonl"
grep -q logprobs "$T/pgbare.jsonl" && fail "sed left log-probs in"
train-step -m "$F/init" -o "$T/pg" --loss pg --ref "$F/init" \
    --kl-coef 0.1 --batch-size 6 <"$T/pgbare.jsonl" |
    recs to-tsv ratio_mean clip_fraction kl >"$T/bare.tsv"
read -r ratio clipf kl <"$T/bare.tsv"
check "on-policy ratio" near "$ratio" 1 1e-5
check "on-policy clip" near "$clipf" 0 0
check "ref kl" near "$kl" 0 1e-6
expect_fail 1 'field "ref_logprobs": missing' \
    train-step -m "$F/init" -o "$T/x" --loss pg --kl-coef 0.1 \
    <"$T/pgbare.jsonl"

# Chat records: SFT on messages scores the assistant turns, which with a
# byte-level tokenizer (id = byte) is the same as prompt and response
# tokens of the rendered text.
ckpt init -o "$T/byte" --dim 16 --layers 1 --heads 2 --kv-heads 1 \
    --ffn 24 --ctx 128 --vocab-size 260 --seed 3 >/dev/null ||
    fail "ckpt init failed"
bytes() { printf '%s' "$1" | od -An -tu1 | tr -s ' \n' ',,' |
    sed 's/^,//; s/,$//'; }
nl='
'
p=$(bytes "<|im_start|>user${nl}Hi<|im_end|>${nl}<|im_start|>assistant${nl}")
r=$(bytes "Hello!<|im_end|>${nl}")
echo "{\"prompt_tokens\":[$p],\"response_tokens\":[$r]}" >"$T/pr.jsonl"
echo '{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"}]}' \
    >"$T/chat.jsonl"
train-step -m "$T/byte" -o "$T/c1" --loss sft --chat-template chatml \
    --lr 1e-3 <"$T/chat.jsonl" | recs to-tsv loss >"$T/c1.tsv"
train-step -m "$T/byte" -o "$T/c2" --loss sft --lr 1e-3 <"$T/pr.jsonl" |
    recs to-tsv loss >"$T/c2.tsv"
same "chat sft loss" "$T/c1.tsv" "$T/c2.tsv"
check "chat sft weights" "$top_builddir/tests/unit_train_cmp" "$T/c1" \
    "$T/c2" 1e-6
echo '{"messages":[{"role":"user","content":"Hi"}]}' >"$T/chat.jsonl"
expect_fail 1 'record 1: field "messages": no assistant turn' \
    train-step -m "$T/byte" -o "$T/x" --loss sft <"$T/chat.jsonl"
expect_fail 2 'chat-template' train-step -m "$T/byte" -o "$T/x" --loss sft \
    --chat-template nosuch <"$T/chat.jsonl"

# Weights in bf16 and an archive: the moments stay fp32, and training
# continues from the archive.
train-step -m "$F/init" -o "$T/b.tar.zst" --loss sft --dtype bf16 \
    <"$F/sft.jsonl" >/dev/null || fail "bf16 tar.zst run failed"
ckpt info -J "$T/b.tar.zst" >"$T/info" 2>&1
check "bf16 weights" grep -q '"dtype":"BF16"' "$T/info"
train-step -m "$T/b.tar.zst" -o "$T/b2" --loss sft <"$F/sft.jsonl" |
    recs to-tsv step >"$T/b2.tsv"
check "continued from archive" grep -qx 2 "$T/b2.tsv"

# Errors: usage (2), data (1) naming record and field.
expect_fail 2 'usage' train-step -m "$F/init" --loss sft
expect_fail 2 'usage' train-step -m "$F/init" -o "$T/x" --loss foo
expect_fail 2 'usage' train-step -m "$F/init" -o "$T/x" --loss sft --lr x
echo '{"prompt_tokens":"a","response_tokens":[3]}' >"$T/bad.jsonl"
expect_fail 1 'record 1: field "prompt_tokens"' \
    train-step -m "$F/init" -o "$T/x" --loss sft <"$T/bad.jsonl"
echo '{"prompt_tokens":[1],"response_tokens":[3,99]}' >"$T/bad.jsonl"
expect_fail 1 'record 1: field "response_tokens".*vocabulary' \
    train-step -m "$F/init" -o "$T/x" --loss sft <"$T/bad.jsonl"
echo '{"id":"a","prompt_tokens":[1],"response_tokens":[3]}' >"$T/bad.jsonl"
expect_fail 1 'record 1: field "reward": missing' \
    train-step -m "$F/init" -o "$T/x" --loss pg <"$T/bad.jsonl"

# A non-finite loss stops the run at its step, without a checkpoint:
# rollout log-probs of -1e30 make the ratio infinite.
{
	echo '{"id":"a","prompt_tokens":[1],"response_tokens":[3],"logprobs":[-1e30],"reward":1}'
	echo '{"id":"a","prompt_tokens":[1],"response_tokens":[4],"logprobs":[-1e30],"reward":0}'
} >"$T/inf.jsonl"
expect_fail 1 'step 1: non-finite loss' \
    train-step -m "$F/init" -o "$T/x" --loss pg <"$T/inf.jsonl"
test -e "$T/x" && fail "a checkpoint was written after a non-finite step"
finish
