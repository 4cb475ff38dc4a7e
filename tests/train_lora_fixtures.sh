#!/bin/sh
# train_lora_fixtures: one LoRA step of SFT (every target, lm_head as
# modules_to_save) and of DPO (q_proj and v_proj; the reference the base
# with the adapters off) against PyTorch (tests/gen_lora_fixtures.py):
# loss, gradient norm and every adapter tensor within 1e-4 relative.  The
# adapters start from PEFT adapter directories whose base is given
# relative to them.
. "$top_srcdir/tests/lib.sh"
F=$fixtures/lora
cmp_tool=$top_builddir/tests/unit_train_cmp

for n in sft dpo; do
	# shellcheck disable=SC2046
	if ! train-step -m "$F/${n}_init" -o "$T/$n" $(cat "$F/$n.args") \
	    <"$F/$n.jsonl" >"$T/$n.metrics"; then
		fail "$n: train-step failed"; continue
	fi
	recs to-tsv loss grad_norm <"$T/$n.metrics" >"$T/$n.tsv"
	read -r loss gn <"$T/$n.tsv"
	want_loss=$(sed 's/.*"loss": *\([-0-9.eE+]*\).*/\1/' "$F/$n.expect.json")
	want_gn=$(sed 's/.*"grad_norm": *\([-0-9.eE+]*\).*/\1/' \
	    "$F/$n.expect.json")
	close_rel "lora $n loss" "$loss" "$want_loss"
	close_rel "lora $n grad_norm" "$gn" "$want_gn"
	check "lora $n adapter" "$cmp_tool" "$T/$n" "$F/$n.expect.safetensors" \
	    1e-4
	check "lora $n is an adapter directory" test -f \
	    "$T/$n/adapter_config.json" -a ! -f "$T/$n/config.json" -a \
	    ! -f "$T/$n/model.safetensors"
	check "lora $n optimizer state" test -f "$T/$n/optimizer.safetensors"
done
check "modules_to_save kept" grep -q '"lm_head"' "$T/sft/adapter_config.json"
finish
