/*
 * optim.c: AdamW, learning-rate schedules and gradient clipping.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "training/optim.h"
#include "util/util.h"

void
adamw_init(struct adamw *o, size_t n, double beta1, double beta2, double eps,
    double weight_decay)
{
	memset(o, 0, sizeof(*o));
	o->beta1 = beta1;
	o->beta2 = beta2;
	o->eps = eps;
	o->weight_decay = weight_decay;
	o->n = n;
	o->m = xcalloc(n ? n : 1, sizeof(float));
	o->v = xcalloc(n ? n : 1, sizeof(float));
	struct optim_range all = { 0, n, 1 };
	adamw_set_ranges(o, &all, 1);
}

void
adamw_free(struct adamw *o)
{
	free(o->m);
	free(o->v);
	free(o->ranges);
	memset(o, 0, sizeof(*o));
}

void
adamw_set_ranges(struct adamw *o, const struct optim_range *r, int nr)
{
	free(o->ranges);
	o->ranges = xreallocarray(NULL, nr ? nr : 1, sizeof(*r));
	memcpy(o->ranges, r, nr * sizeof(*r));
	o->nranges = nr;
}

void
adamw_step(struct adamw *o, float *p, const float *g, double lr)
{
	o->t++;
	/* Bias corrections in double: b^t underflows gently, not to 1 - 1. */
	double bc1 = 1 - pow(o->beta1, (double)o->t);
	double bc2 = 1 - pow(o->beta2, (double)o->t);

	/* The arithmetic is the backend's optimizer operation, one call a
	 * range; decay multiplies p before the Adam update, as torch does. */
	for (int r = 0; r < o->nranges; r++) {
		const struct optim_range *rg = &o->ranges[r];
		backend_cpu.adamw(NULL, p + rg->offset, g + rg->offset,
		    o->m + rg->offset, o->v + rg->offset, rg->n, lr,
		    o->beta1, o->beta2, o->eps,
		    rg->decay ? o->weight_decay : 0, bc1, bc2);
	}
}

int
lr_schedule_parse(const char *s)
{
	if (strcmp(s, "constant") == 0)
		return SCHED_CONSTANT;
	if (strcmp(s, "linear") == 0)
		return SCHED_LINEAR;
	if (strcmp(s, "cosine") == 0)
		return SCHED_COSINE;
	return -1;
}

const char *
lr_schedule_name(enum lr_schedule k)
{
	switch (k) {
	case SCHED_LINEAR: return "linear";
	case SCHED_COSINE: return "cosine";
	default: return "constant";
	}
}

double
lr_at(const struct lr_sched *s, int64_t step)
{
	if (step < s->warmup)
		return s->lr * (double)(step + 1) / (double)s->warmup;
	if (s->kind == SCHED_CONSTANT)
		return s->lr;
	int64_t span = s->total - s->warmup;
	if (span <= 0 || step >= s->total)
		return s->min_lr;
	double p = (double)(step - s->warmup) / (double)span;
	double f = s->kind == SCHED_LINEAR ? 1 - p : 0.5 * (1 + cos(M_PI * p));
	return s->min_lr + (s->lr - s->min_lr) * f;
}

double
grad_norm(const float *g, size_t n)
{
	/*
	 * Fixed-size blocks summed in order: the same result for any thread
	 * count, and a data-parallel sum of squares would split the same way.
	 */
	enum { BLOCK = 1 << 14 };
	size_t nb = (n + BLOCK - 1) / BLOCK;
	double *part = xcalloc(nb ? nb : 1, sizeof(double));
#pragma omp parallel for schedule(static)
	for (size_t b = 0; b < nb; b++) {
		size_t end = (b + 1) * BLOCK < n ? (b + 1) * BLOCK : n;
		double s = 0;
		for (size_t i = b * BLOCK; i < end; i++)
			s += (double)g[i] * g[i];
		part[b] = s;
	}
	double s = 0;
	for (size_t b = 0; b < nb; b++)
		s += part[b];
	free(part);
	return sqrt(s);
}

double
grad_clip(float *g, size_t n, double norm, double max_norm)
{
	if (max_norm <= 0 || !(norm > max_norm))
		return 1;
	double scale = max_norm / (norm + 1e-6);
	float f = (float)scale;
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++)
		g[i] *= f;
	return scale;
}
