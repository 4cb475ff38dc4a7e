/*
 * optim.h: the optimizer of train-step over flat float arrays: AdamW with
 * bias correction and decoupled weight decay, learning-rate schedules with
 * warmup, and global-norm gradient clipping.
 *
 * Everything works on the two parallel arrays struct model keeps (params,
 * grads), so a data-parallel trainer only has to sum grads across
 * processes before optim_clip and adamw_step.
 *
 * AdamW, for step t = 1, 2, ... (t counts updates ever made, across
 * invocations, so bias correction continues where a checkpoint left it):
 *
 *     p <- p - lr * wd * p                 (decayed ranges only)
 *     m <- b1 m + (1 - b1) g
 *     v <- b2 v + (1 - b2) g^2
 *     p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 *
 * which is torch.optim.AdamW's arithmetic.
 */
#ifndef PREFPIPE_OPTIM_H
#define PREFPIPE_OPTIM_H

#include <stddef.h>
#include <stdint.h>

/* A stretch of the parameter array and whether weight decay applies. */
struct optim_range {
	size_t offset, n;
	int decay;
};

struct adamw {
	double beta1, beta2, eps, weight_decay;
	int64_t t;		/* updates made so far */
	size_t n;		/* parameters */
	float *m, *v;		/* (n) first and second moments */
	struct optim_range *ranges;	/* cover [0, n) */
	int nranges;
};

/* Zero moments, t = 0; every parameter decayed until ranges are set. */
void adamw_init(struct adamw *o, size_t n, double beta1, double beta2,
    double eps, double weight_decay);
void adamw_free(struct adamw *o);
/* Replace the decay ranges (copied). */
void adamw_set_ranges(struct adamw *o, const struct optim_range *r, int nr);
/* One update of p (n) from g (n) at learning rate lr; increments t. */
void adamw_step(struct adamw *o, float *p, const float *g, double lr);

/* Learning-rate schedules. */
enum lr_schedule { SCHED_CONSTANT, SCHED_LINEAR, SCHED_COSINE };

struct lr_sched {
	enum lr_schedule kind;
	double lr, min_lr;
	int64_t warmup;		/* steps of linear warmup */
	int64_t total;		/* horizon of the decay, warmup included */
};

/* "constant", "linear", "cosine": the enum, or -1. */
int lr_schedule_parse(const char *s);
const char *lr_schedule_name(enum lr_schedule k);

/*
 * The learning rate of step s (0-based, counted across invocations).
 * Warmup rises linearly as lr * (s + 1) / warmup, so the first step already
 * moves; then constant stays at lr, linear falls to min_lr at s = total,
 * cosine follows min_lr + (lr - min_lr) (1 + cos(pi p)) / 2 with p the
 * fraction of the decay done.  At and beyond total, min_lr (constant: lr).
 */
double lr_at(const struct lr_sched *s, int64_t step);

/* Euclidean norm of g (n), accumulated in double in a fixed order. */
double grad_norm(const float *g, size_t n);
/*
 * Global-norm clipping as torch.nn.utils.clip_grad_norm_: when max_norm > 0
 * and norm > max_norm, g is scaled by max_norm / (norm + 1e-6).  Returns
 * the scale applied (1 when none).
 */
double grad_clip(float *g, size_t n, double norm, double max_norm);

#endif
