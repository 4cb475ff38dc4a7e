/*
 * train_impl.h: the inside of struct train_ctx, shared by train.c (the
 * steps, the optimizer state) and train_examples.c (records into
 * examples).  Not for programs: they see train.h.
 */
#ifndef PREFPIPE_TRAIN_IMPL_H
#define PREFPIPE_TRAIN_IMPL_H

#include "training/train.h"

struct ckpt;
#include "model/model_lora.h"
struct conv;
struct model;
struct strmap;

/*
 * A token sequence and the positions whose next token the loss reads.
 * tgt[t] is tok[t + 1] at a scored position and -1 elsewhere; the scored
 * positions, in order, are the response tokens (nscored of them), and
 * old[] and ref[] (pg) run parallel to them.
 */
struct seq {
	int32_t *tok;		/* (len) */
	int32_t *tgt;		/* (len), or NULL for a reward model */
	int len, nscored;
	float *old;		/* (nscored) rollout log-probs, or NULL */
	float *ref;		/* (nscored) reference log-probs, or NULL */
	float *val;		/* (nscored) ppo, value: the critic's values */
	float *adv, *ret;	/* (nscored) ppo, value: GAE's advantages
				 * and returns */
	double ref_sum;		/* sum of the reference log-probs */
	int has_ref;
	int truncated;
	const char *field;	/* the record field it came from, for messages */
};

/*
 * One record: a sequence (sft, pg) or a pair of them (dpo, rm), or kto's
 * answer and its mismatched pair.
 */
struct example {
	struct seq s[2];	/* dpo, rm: chosen, rejected; kto: the
				 * answer, the prompt with kl's response */
	int label;		/* kto: the answer is desirable */
	int nseq;
	uint64_t recno;
	double label_smoothing;	/* dpo: the record's, else the option */
	double reward, weight, adv;	/* pg */
	int greedy, group;		/* pg */
};

struct train_ctx {
	struct train_opts o;
	struct ckpt *ckpt;	/* the model's, or an adapter's base */
	struct model_src msrc;	/* where it came from (model_lora.h) */
	struct model_lora lora;	/* the adapters trained, or rank 0 */
	const char *modules;	/* trained whole with them, or NULL */
	struct model *m;
	struct conv *conv;	/* messages -> tokens, the turn's end; NULL
				 * until train_conv opens it */
	const char *src;	/* the input's name, for messages */

	/* Examples */
	struct example *ex;
	size_t nex, capex;
	uint64_t ndropped;
	int max_len;		/* sequences never run longer than this */
	struct strmap *groups;	/* pg: group numbers by id */
	int ngroups;

	/* The optimizer */
	struct adamw adam;
	struct lr_sched sched;
	int sched_fixed;	/* the horizon was given, not inferred */

	/* Where the plan stands */
	size_t *order;		/* (nex) this epoch's order */
	size_t nbatches;
	int64_t planned, done;
	long long ep, pe;
	size_t b;
	int started;		/* the epoch's order is drawn */
};

/* Whether reference log-probs a record lacks can be computed: --ref, or
 * the base of a LoRA (its adapters switched off). */
int train_has_ref(const struct train_ctx *t);

/* train.c: the conversation rules, opened on first use. */
struct conv *train_conv(struct train_ctx *t);

/* train_examples.c */
int train_read_example(struct train_ctx *t, const struct rec *r,
    struct example *e);
void train_seq_free(struct seq *s);

#endif
