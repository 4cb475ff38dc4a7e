#!/bin/sh
# recs from-trl / to-trl and pair --from-strings: TRL's dataset types in
# both formats (the examples of TRL's dataset_formats guide), HH-RLHF's
# transcripts with their implicit prompt, UltraFeedback's binarized rows;
# and back out to TRL's form.
. "$top_srcdir/tests/lib.sh"
D=$fixtures/trl

# Every type and format, as TRL's guide writes them.
recs from-trl -J "$D/types.jsonl" >"$T/types"
same "TRL's types into records" "$D/types.want.jsonl" "$T/types"
pair -J --from-strings "$D/types.jsonl" 2>/dev/null >/dev/null &&
    fail "pair --from-strings took a record without chosen"

# HH-RLHF: the shared dialogue is the prompt, up to the last
# "\n\nAssistant:"; only the answers differ, even where they begin alike.
recs from-trl "$D/hh.jsonl" | recs to-tsv prompt chosen.response \
    rejected.response >"$T/hh.tsv"
printf '%s\n' \
    '\n\nHuman: What are some cuss words in english?\n\nAssistant: Here’s an incomplete list.\n\nHuman: What'"'"'s your favorite one?\n\nAssistant:	 I haven'"'"'t even thought about it.	 Ass.' \
    '\n\nHuman: What kind of noises did dinosaurs make?\n\nAssistant:	 Humans and dinosaurs didn’t live at the same time, so it’s really hard to say.	 Humans and dinosaurs didn’t live at the same time, so it’s hard to say. Maybe roars?' \
    >"$T/hh.want"
same "HH-RLHF implicit prompts" "$T/hh.want" "$T/hh.tsv"
# pair --from-strings is the same conversion.
recs from-trl "$D/hh.jsonl" >"$T/hh.a"
pair --from-strings "$D/hh.jsonl" >"$T/hh.b"
same "pair --from-strings = recs from-trl" "$T/hh.a" "$T/hh.b"

# UltraFeedback binarized: a string prompt with conversational responses
# is re-extracted from them (TRL's maybe_extract_prompt), the string and
# the duplicate messages column dropped, the scores kept.
recs from-trl -J "$D/ultrafeedback.jsonl" >"$T/uf"
printf '%s\n' '{"id":"1","prompt_id":"086b3e24f29b8956a01059f79c56db35d118a06fb6b844b095737d042795cd43","messages":[{"content":"how can i develop a habit of drawing daily","role":"user"}],"chosen":{"response":"Developing a daily habit of drawing can be challenging but with consistent practice it becomes easier."},"rejected":{"response":"As an AI language model, I cannot personally develop habits for you."},"score_chosen":8.5,"score_rejected":8.5}' \
    >"$T/uf.want"
same "UltraFeedback binarized" "$T/uf.want" "$T/uf"

# The converted pairs train: the reference log-probs cover the answer's
# tokens only (bytes plus EOS with the byte tokenizer), not the dialogue.
ckpt init -o "$T/tiny" --dim 16 --layers 1 --heads 2 --ffn 24 --ctx 256 \
    --seed 1 >/dev/null || fail "ckpt init"
recs from-trl "$D/hh.jsonl" | score --logprob "$T/tiny" |
    recs to-tsv 'chosen.ref_logprobs' | head -1 | tr ',' '\n' |
    wc -l >"$T/n"
# " I haven't even thought about it." is 33 bytes, and EOS
check "HH chosen scored on its answer's 34 tokens" test "$(cat "$T/n")" -eq 34
recs from-trl "$D/hh.jsonl" | score --logprob "$T/tiny" |
    train-step -m "$T/tiny" -o "$T/dpo" --loss dpo >/dev/null ||
    fail "dpo on converted HH pairs"
recs from-trl "$D/types.jsonl" | recs to-json | sed -n 5p >"$T/sft"
train-step -m "$T/tiny" -o "$T/sft.ckpt" --loss sft <"$T/sft" >/dev/null ||
    fail "sft on a converted prompt-completion record"

# Back out: records in TRL's explicit forms come back as they went in,
# with the id; to-trl writes JSON Lines.
grep -v -e '^{"chosen"' "$D/types.jsonl" | recs from-trl | recs to-trl |
    sed 's/^{"id":"[0-9]*",/{/' >"$T/back"
grep -v -e '^{"chosen"' "$D/types.jsonl" | recs from-json | recs to-json \
    >"$T/back.want"
same "from-trl then to-trl" "$T/back.want" "$T/back"

# Errors name the record and the field.
printf '%s\n' '{"prompt":"x","chosen":"a"}' >"$T/bad"
expect_fail 1 'bad: record 1: field "rejected": missing' \
    recs from-trl "$T/bad"
printf '%s\n' '{"chosen":"same","rejected":"same"}' >"$T/bad"
expect_fail 1 'record 1: field "chosen": nothing left after the prompt' \
    recs from-trl "$T/bad"
printf '%s\n' '{"chosen":[{"role":"user","content":"a"}],"rejected":[{"role":"user","content":"b"}]}' >"$T/bad"
expect_fail 1 'field "chosen": no prompt' recs from-trl "$T/bad"
printf '%s\n' '{"prompt":"p","completion":[{"role":"assistant","content":"a"},{"role":"user","content":"b"}]}' >"$T/bad"
expect_fail 1 'field "completion": expected one assistant message, got 2' \
    recs from-trl "$T/bad"
printf '%s\n' '{"prompt":"p","completion":"c","label":"yes"}' >"$T/bad"
expect_fail 1 'field "label": expected boolean' recs from-trl "$T/bad"
printf '%s\n' '{"prompt":[{"role":"user"}]}' >"$T/bad"
expect_fail 1 'field "prompt": message 0: expected a map' \
    recs from-trl "$T/bad"
printf '%s\n' '{"label":true}' >"$T/bad"
expect_fail 1 'field "prompt": missing: not a TRL record' \
    recs from-trl "$T/bad"
printf '%s\n' '{"prompt_tokens":[1,2],"chosen":{"response_tokens":[3]},"rejected":{"response_tokens":[4]}}' >"$T/bad"
expect_fail 1 'field "prompt": missing \(TRL records hold text' \
    recs to-trl "$T/bad"
printf '%s\n' '{"prompt":"p","chosen":{"response_tokens":[3]},"rejected":{"response":"r"}}' >"$T/bad"
expect_fail 1 'field "chosen.response": missing' recs to-trl "$T/bad"
expect_fail 2 'option -J not allowed' recs to-trl -J "$T/bad"
finish
