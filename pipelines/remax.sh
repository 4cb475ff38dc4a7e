#!/bin/sh
# pipelines/remax.sh: on-policy policy gradient with the remax advantage
# estimator, end to end, on the verifier's reward.
#
# usage: pipelines/remax.sh
#        MODEL=path/to/hf-dir PROMPTS=prompts.jsonl EVAL=heldout.jsonl \
#            pipelines/remax.sh
#
# ROUNDS rounds (default 4) on PG_PROMPTS training prompts of
#   rollout -n 8 --greedy-baseline | score --exact |
#       train-step --loss pg --advantage remax --clip 0.2 --ppo-epochs 2
# from the SFT model (cached in SFT_DIR, default out/sft), each evaluated
# on held-out prompts.  Writes OUT (default out/remax): results.tsv (with the
# mean training reward of each round), results.md, accuracy.png.
# Overrides: PG_LR (3e-5), PG_BATCH (64), PG_PROMPTS (512 a round),
# SAMPLES, ROUNDS, and those of
# pipelines/lib.sh.
. "$(dirname "$0")/lib.sh"
pp_pg_pipeline remax remax
