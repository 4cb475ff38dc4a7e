/*
 * bench_sample: what choosing a token costs, per token, over a row of
 * 32000 logits, for each kind of sampling rollout offers, against the
 * plain one (temperature 1, nothing filtered: one pass over the row).
 * Two rows: logits spread as N(0, 3), and flat ones, uniform in [0, 1),
 * as a random model gives, where top-p keeps most of the vocabulary.
 *
 *   bench_sample [V]
 *
 * Prints "ROW OPTIONS: US us a token (R x plain)", each the best of five
 * timings of 200 draws.
 */
#include "config.h"

#include <err.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/rng.h"
#include "sampling/sample.h"
#include "util/util.h"

static double
time_draws(const struct sample_opts *o, const float *l, int V,
    struct sample_ws *w)
{
	double best = INFINITY;
	volatile int sink = 0;
	float lp;

	for (int r = 0; r < 5; r++) {
		double t0 = pp_now();
		for (int i = 0; i < 200; i++)
			sink += sample_next(o, l, V, w, (i + 0.5) / 200, &lp);
		double t = (pp_now() - t0) / 200;
		if (t < best)
			best = t;
	}
	(void)sink;
	return best;
}

int
main(int argc, char **argv)
{
	static const struct {
		const char *name;
		struct sample_opts o;
	} kinds[] = {
		{ "plain", { 1, 1, 0, 0 } },
		{ "--temperature 0.7", { 0.7, 1, 0, 0 } },
		{ "--top-k 50", { 1, 1, 50, 0 } },
		{ "--top-p 0.9", { 1, 0.9, 0, 0 } },
		{ "--min-p 0.05", { 1, 1, 0, 0.05 } },
		{ "--temperature 0.7 --top-k 50 --top-p 0.95",
		    { 0.7, 0.95, 50, 0 } },
	};
	int V = argc > 1 ? atoi(argv[1]) : 32000;
	float *l = xmalloc((size_t)V * sizeof(float));
	struct sample_ws w;
	struct rng g;

	if (V < 2)
		errx(2, "usage: bench_sample [V >= 2]");
	sample_ws_init(&w, V);
	for (int row = 0; row < 2; row++) {
		rng_seed(&g, 7);
		for (int i = 0; i < V; i++)
			l[i] = row == 0 ? (float)(3 * rng_normal(&g)) :
			    (float)rng_uniform(&g);
		double plain = 0;
		for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
			double t = time_draws(&kinds[k].o, l, V, &w);
			if (k == 0)
				plain = t;
			printf("%s %s: %.1f us a token (%.2fx plain)\n",
			    row == 0 ? "N(0,3)" : "flat", kinds[k].name,
			    t * 1e6, t / plain);
		}
	}
	sample_ws_free(&w);
	free(l);
	return 0;
}
