/*
 * unit_optim: AdamW against numbers worked out by hand, learning-rate
 * schedules at their corners, and gradient clipping.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "training/optim.h"

static int failures;

static void
near(const char *what, double got, double want, double tol)
{
	double err = fabs(got - want) / (fabs(want) > 1 ? fabs(want) : 1);
	if (!(err <= tol)) {
		printf("FAIL: %s: got %.9g, want %.9g\n", what, got, want);
		failures++;
	}
}

/*
 * Three steps of one parameter, lr 0.1, betas (0.9, 0.999), eps 1e-8,
 * weight decay 0.5, gradients +1, -1, +2; worked by hand:
 *
 * t=1: p = 1 * (1 - 0.05) = 0.95
 *      m = 0.1, v = 0.001; mhat = 0.1/0.1 = 1, vhat = 0.001/0.001 = 1
 *      p = 0.95 - 0.1 * 1/(1 + 1e-8) = 0.85 (+1e-9)
 * t=2: p = 0.85 * 0.95 = 0.8075
 *      m = 0.09 - 0.1 = -0.01, v = 0.000999 + 0.001 = 0.001999
 *      mhat = -0.01/0.19 = -0.0526315789, vhat = 0.001999/0.001999 = 1
 *      p = 0.8075 + 0.1 * 0.0526315789 = 0.8127631579
 * t=3: p = 0.8127631579 * 0.95 = 0.7721250000
 *      m = -0.009 + 0.2 = 0.191, v = 0.001997001 + 0.004 = 0.005997001
 *      bc1 = 0.271, bc2 = 0.002997001
 *      mhat = 0.7047970480, vhat = 2.0010006670, sqrt = 1.4145673073
 *      p = 0.772125 - 0.1 * 0.4982424 = 0.7223...
 */
static void
test_adamw_by_hand(void)
{
	struct adamw o;
	float p = 1, g;
	adamw_init(&o, 1, 0.9, 0.999, 1e-8, 0.5);
	g = 1;
	adamw_step(&o, &p, &g, 0.1);
	near("adamw t=1", p, 0.85, 1e-6);
	g = -1;
	adamw_step(&o, &p, &g, 0.1);
	near("adamw t=2", p, 0.8127631579, 1e-6);
	g = 2;
	adamw_step(&o, &p, &g, 0.1);
	near("adamw t=3", p, 0.772125 - 0.1 * 0.7047970480 / 1.4145673073,
	    1e-6);
	near("adamw m", o.m[0], 0.191, 1e-6);
	near("adamw v", o.v[0], 0.005997001, 1e-6);
	if (o.t != 3) {
		printf("FAIL: t = %lld\n", (long long)o.t);
		failures++;
	}
	adamw_free(&o);
}

/*
 * Constant gradients: mhat = g and vhat = g^2 at every step, so each step
 * moves by lr * g / (|g| + eps) and decay multiplies by (1 - lr wd); over
 * five steps with ranges, the undecayed stretch moves by 5 lr exactly.
 */
static void
test_adamw_ranges(void)
{
	enum { N = 6 };
	float p[N] = { 1, 2, 3, 4, 5, 6 };
	float g[N] = { 0.5, -0.5, 3, -3, 1e-3, -1e-3 };
	struct optim_range r[2] = { { 0, 3, 1 }, { 3, 3, 0 } };
	struct adamw o;
	adamw_init(&o, N, 0.9, 0.99, 1e-8, 0.1);
	adamw_set_ranges(&o, r, 2);
	double lr = 0.01;
	double want[N];
	for (int i = 0; i < N; i++)
		want[i] = p[i];
	for (int s = 0; s < 5; s++) {
		adamw_step(&o, p, g, lr);
		for (int i = 0; i < N; i++) {
			if (i < 3)
				want[i] *= 1 - lr * 0.1;
			want[i] -= lr * g[i] / (fabs(g[i]) + 1e-8);
		}
	}
	for (int i = 0; i < N; i++) {
		char what[64];
		snprintf(what, sizeof(what), "adamw ranges p[%d]", i);
		near(what, p[i], want[i], 1e-5);
	}
	adamw_free(&o);
}

static void
test_schedules(void)
{
	struct lr_sched s = { SCHED_CONSTANT, 1.0, 0.1, 4, 14 };
	near("warmup 0", lr_at(&s, 0), 0.25, 1e-12);
	near("warmup 3", lr_at(&s, 3), 1.0, 1e-12);
	near("constant", lr_at(&s, 100), 1.0, 1e-12);
	s.kind = SCHED_LINEAR;
	near("linear start", lr_at(&s, 4), 1.0, 1e-12);
	near("linear mid", lr_at(&s, 9), 0.55, 1e-12);
	near("linear end", lr_at(&s, 14), 0.1, 1e-12);
	near("linear after", lr_at(&s, 99), 0.1, 1e-12);
	s.kind = SCHED_COSINE;
	near("cosine start", lr_at(&s, 4), 1.0, 1e-12);
	near("cosine mid", lr_at(&s, 9), 0.55, 1e-12);
	/* a quarter of the way: 0.1 + 0.9 * (1 + cos(pi/4)) / 2 */
	s.total = 12;
	near("cosine quarter", lr_at(&s, 6), 0.1 + 0.9 * (1 + sqrt(0.5)) / 2,
	    1e-12);
	near("cosine end", lr_at(&s, 12), 0.1, 1e-12);
	if (lr_schedule_parse("cosine") != SCHED_COSINE ||
	    lr_schedule_parse("step") != -1) {
		printf("FAIL: lr_schedule_parse\n");
		failures++;
	}
}

static void
test_clip(void)
{
	float g[4] = { 3, 4, 0, 0 };
	double n = grad_norm(g, 4);
	near("norm", n, 5, 1e-12);
	near("no clip", grad_clip(g, 4, n, 10), 1, 0);
	near("off", grad_clip(g, 4, n, 0), 1, 0);
	double s = grad_clip(g, 4, n, 1);
	near("clip scale", s, 1 / (5 + 1e-6), 1e-12);
	near("clipped norm", grad_norm(g, 4), 1, 1e-6);
	/* A long vector: blocks summed in order equal the plain sum. */
	size_t big = 100003;
	float *v = malloc(big * sizeof(float));
	double want = 0;
	for (size_t i = 0; i < big; i++) {
		v[i] = (float)((i % 7) - 3) * 0.25f;
		want += (double)v[i] * v[i];
	}
	near("norm long", grad_norm(v, big), sqrt(want), 1e-12);
	free(v);
}

int
main(void)
{
	test_adamw_by_hand();
	test_adamw_ranges();
	test_schedules();
	test_clip();
	if (failures)
		printf("%d failure(s)\n", failures);
	return failures ? 1 : 0;
}
