# pipelines/experiments.mk: the iterative preference loop as a Makefile.
#
# usage: make -f pipelines/experiments.mk [-j2] [OUT=out/exp] [ROUNDS=3]
#            [RUNS="1 2"] [VAR=value ...]
#        (or make experiments at the top of the build tree)
#
# Round i's checkpoint of run r, $(OUT)/run<r>/round<i>, is a target that
# depends on round i-1's, so an interrupted run resumes where it stopped
# (each checkpoint is written under a temporary name and renamed into
# place), and the runs are independent targets that make -j builds side by
# side.  round0 is SFT (a common phase, then the run's seed), round i one
# round of on-policy DPO mining (pipelines/lib.sh: pp_dpo_round).  Every
# checkpoint gets a .acc file (greedy and T=1 held-out accuracy); the end
# products are $(OUT)/results.tsv, results.md, accuracy.png and the uniform
# soup of the last rounds, $(OUT)/soup.  Variables are passed to lib.sh
# through the environment (MODEL, PROMPTS, EVAL, LR, BETA, NLL, SAMPLES,
# DIGITS, NOISE, N_SFT, ...).
PIPELINES ?= $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
OUT ?= out/exp
ROUNDS ?= 4
RUNS ?= 1 2
SEED ?= 1
export ROUNDS SEED

LIB = PP_DIR=$(PIPELINES) . $(PIPELINES)/lib.sh
rounds := $(shell seq 1 $(ROUNDS))
last := $(foreach r,$(RUNS),$(OUT)/run$(r)/round$(ROUNDS))
accs := $(foreach r,$(RUNS),$(foreach i,0 $(rounds),$(OUT)/run$(r)/round$(i).acc))

all: $(OUT)/results.md

$(OUT)/data/stamp:
	$(LIB) && pp_gen_data $(OUT)/data
	touch $@

$(OUT)/sft-common: $(OUT)/data/stamp
	$(LIB) && pp_init_sft $(SEED) $@ $(OUT)/data/sft.mpk \
	    $$(( (N_SFT + SFT_BATCH - 1) / SFT_BATCH + (N_SFT2 + SFT_BATCH - 1) / SFT_BATCH ))

# run_rules R: the targets of run R.
define run_rules
$(OUT)/run$(1)/round0: $(OUT)/sft-common
	$$(LIB) && pp_sft_more $$< $$@ $(1) $(OUT)/data/sft2.mpk

$(foreach i,$(rounds),
$(OUT)/run$(1)/round$(i): $(OUT)/run$(1)/round$(shell expr $(i) - 1)
	$$(LIB) && pp_log "run $(1): DPO round $(i)" && \
	    pp_dpo_round $$< $$< $$@ $$$$((1000 * $(1) + $(i))) $(OUT)/data/prompts.mpk
)
endef
$(foreach r,$(RUNS),$(eval $(call run_rules,$(r))))

# Held-out accuracy of any checkpoint: NAME ROUND GREEDY T1.
$(OUT)/%.acc: $(OUT)/% $(OUT)/data/stamp
	$(LIB) && PP_EVAL=$(OUT)/data/eval.mpk && \
	    r=$$(basename $(@D)) i=$$(basename $* | sed 's/round//') && \
	    if [ "$$i" = 0 ]; then n=sft-$${r#run}; else n=dpo-$${r#run}; fi && \
	    pp_acc_row $$n $$i $< >$@.tmp && mv $@.tmp $@

$(OUT)/soup: $(last)
	rm -rf $@
	merge -o $@ $^ 2>/dev/null

$(OUT)/soup.acc: $(OUT)/soup $(OUT)/data/stamp
	$(LIB) && PP_EVAL=$(OUT)/data/eval.mpk && \
	    pp_acc_row soup $(ROUNDS) $< >$@.tmp && mv $@.tmp $@

$(OUT)/results.tsv: $(accs) $(OUT)/soup.acc
	{ printf 'model\tround\tgreedy\tt1\n'; cat $^; } >$@

$(OUT)/results.md: $(OUT)/results.tsv
	$(LIB) && pp_table $< >$@
	$(PIPELINES)/plot accuracy $< $(OUT)/accuracy.png
	cat $@

clean:
	rm -rf $(OUT)

.PHONY: all clean
.DELETE_ON_ERROR:
