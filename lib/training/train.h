/*
 * train.h: the training loop of train-step as a library: records in,
 * optimizer steps, metrics out, a checkpoint with its optimizer state.
 *
 * Everything a run needs lives in one struct train_ctx, so a program can
 * hold several (and a later data-parallel trainer one per process).  The
 * order of calls:
 *
 *     train_opts_init(&o);  ... set o ...
 *     t = train_new(&o);             the checkpoint, the model, the tokenizer
 *     train_read(t, reader);         records into examples
 *     train_prepare(t);              advantages, reference and rollout
 *                                    log-probs, optimizer state, schedule
 *     while (train_step(t, &mt))     one optimizer step each
 *             ... train_metrics_rec(t, &mt, &rec) ...
 *     train_save(t);                 weights, moments, trainer_state.json
 *     train_free(t);
 *
 * Errors in the data end the program with status 1 (errx, rec_die), the
 * message naming the record and field; a step whose loss, gradient norm,
 * optimizer state or weights would be non-finite ends it before anything
 * is written.
 */
#ifndef PREFPIPE_TRAIN_H
#define PREFPIPE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "training/loss.h"
#include "training/optim.h"

struct rec;
struct rec_reader;

enum train_objective { OBJ_SFT, OBJ_DPO, OBJ_RM, OBJ_PG, OBJ_SIMPO, OBJ_ORPO,
	OBJ_KTO, OBJ_PPO, OBJ_VALUE, OBJ_COUNT };
/* The sample objectives: a response, its reward and rollout log-probs. */
#define OBJ_IS_SAMPLE(o) ((o) == OBJ_PG || (o) == OBJ_PPO || \
	(o) == OBJ_VALUE)
/* Those trained through a score head rather than token log-probs. */
#define OBJ_IS_HEAD(o) ((o) == OBJ_RM || (o) == OBJ_VALUE)
/* The reference-free pair objectives read pairs as DPO does. */
#define OBJ_IS_PAIR_LM(o) ((o) == OBJ_DPO || (o) == OBJ_SIMPO || \
	(o) == OBJ_ORPO)
enum train_agg { AGG_TOKEN, AGG_SEQ };

/* "sft", "dpo", "rm", "pg": the enum, or -1; and back. */
int train_objective_parse(const char *s);
const char *train_objective_name(int objective);

struct train_opts {
	const char *model, *out, *ref, *dtype, *chat_template;
	const struct json_t *template_args;	/* --template-arg, or NULL */
	int objective;			/* enum train_objective */
	double lr, min_lr, weight_decay, clip_grad, beta1, beta2, eps;
	long long batch, micro, epochs, max_steps, warmup, sched_steps;
	int schedule;			/* enum lr_schedule */
	uint64_t seed;
	int shuffle, truncate, reset_optimizer, add_head;
	int recompute;			/* model_set_recompute on the policy */
	const char *freeze;		/* comma-separated globs, or NULL */
	/* LoRA: new adapters (rank > 0), or those of -m ADAPTER */
	int lora_rank;
	double lora_alpha, lora_dropout;
	int lora_alpha_set, lora_dropout_set;
	const char *lora_targets;	/* comma-separated, or NULL: all */
	const char *train_modules;	/* trained whole with the adapters */
	const char *base;		/* an adapter's base (--base) */
	const char *weights;		/* --weights TYPE (model_from_ckpt_opts) of the
					 * reference and the frozen tensors;
					 * NULL: auto */
	const char *compute;		/* --compute TYPE (model_set_compute)
					 * of the same; NULL: f32 */
	long long max_length;		/* <= 0: the model's context */
	/* dpo */
	double beta, label_smoothing, nll_coef;
	double simpo_gamma, orpo_lambda;
	double kto_desirable, kto_undesirable;	/* kto's weights */
	int dpo_variant;
	/* pg */
	int advantage, scale, kl_est, agg;
	double clip, kl_coef;
	long long ppo_epochs;
	/* ppo, value: GAE over per-token rewards, the critic's clipping */
	double gamma, lambda, value_clip;
	int whiten;
};

/* train-step's defaults (see train-step(1)). */
void train_opts_init(struct train_opts *o);

/* What one optimizer step adds up, for its metrics record. */
struct train_metrics {
	int64_t step;			/* updates made, this one included */
	double lr, grad_norm, seconds;
	size_t records;
	double loss;
	long long tokens, truncated;
	double scored;					/* sft */
	double correct, chosen, rejected, margin, pairs;	/* dpo, rm */
	double nll;					/* orpo */
	double kl, desirable, undesirable;		/* kto */
	double reward_sum, adv_sum, adv_sq, samples;		/* pg */
	struct pg_stats pg;
	double value_sum, return_sum, vclipped;		/* value */
};

struct train_ctx;

struct train_ctx *train_new(const struct train_opts *o);
void train_free(struct train_ctx *t);

/* Every record of rd into an example (or dropped for its length). */
void train_read(struct train_ctx *t, struct rec_reader *rd);
/* Examples kept, and dropped as too long. */
size_t train_nexamples(const struct train_ctx *t);
uint64_t train_ndropped(const struct train_ctx *t);

/* After train_read: everything the steps need. */
void train_prepare(struct train_ctx *t);
/* Steps this run will make. */
int64_t train_planned(const struct train_ctx *t);

/*
 * The next optimizer step of the plan (epochs, batches, PPO epochs);
 * fills *mt and returns 1, or returns 0 when the plan is done.
 */
int train_step(struct train_ctx *t, struct train_metrics *mt);
/* The metrics of a step as a record (initialised here). */
void train_metrics_rec(const struct train_ctx *t,
    const struct train_metrics *mt, struct rec *o);

/* The checkpoint to o.out: weights, moments, trainer_state.json. */
void train_save(struct train_ctx *t);

#endif
