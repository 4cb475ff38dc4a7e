/*
 * unit_sample: lib/sample on fixed distributions.  Each filter must keep
 * exactly the intended candidate set, with the intended probabilities, and
 * the fast paths must agree with a plain reference that sorts everything.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sampling/sample.h"
#include "util/util.h"

#include "check.h"

static struct sample_opts
opts(double T, double p, int k, double minp)
{
	struct sample_opts o = { T, p, k, minp };
	return o;
}

/*
 * The candidates of o over logits must be exactly the ids in want (in
 * any order), and their probabilities those in wantp (NULL: not checked).
 */
static void
expect_set(const char *what, const struct sample_opts *o, const float *logits,
    int V, const int *want, const double *wantp, int nwant)
{
	struct sample_ws w;
	sample_ws_init(&w, V);
	int n = sample_candidates(o, logits, V, &w);
	int ok = n == nwant;
	double sum = 0;
	for (int j = 0; ok && j < n; j++) {
		int found = -1;
		for (int i = 0; i < nwant; i++)
			if (want[i] == w.idx[j])
				found = i;
		if (found < 0)
			ok = 0;
		else if (wantp && fabs(w.p[j] - wantp[found]) > 1e-6)
			ok = 0;
		sum += w.p[j];
	}
	if (ok && fabs(sum - 1) > 1e-6)
		ok = 0;
	if (!ok) {
		fprintf(stderr, "%s: got {", what);
		for (int j = 0; j < n; j++)
			fprintf(stderr, " %d:%.6f", w.idx[j], w.p[j]);
		fprintf(stderr, " }, want {");
		for (int i = 0; i < nwant; i++)
			fprintf(stderr, " %d:%.6f", want[i],
			    wantp ? wantp[i] : -1.0);
		fprintf(stderr, " }\n");
		failures++;
	}
	sample_ws_free(&w);
}

/* The definitions, done the slow way: sort all, apply each in order. */
static int
cmp_desc(const void *a, const void *b, void *ctx)
{
	const float *l = ctx;
	int x = *(const int *)a, y = *(const int *)b;
	if (l[x] != l[y])
		return l[x] > l[y] ? -1 : 1;
	return x < y ? -1 : 1;
}

static int
reference(const struct sample_opts *o, const float *logits, int V, int *ids,
    double *p)
{
	for (int i = 0; i < V; i++)
		ids[i] = i;
	qsort_r(ids, V, sizeof(int), cmp_desc, (void *)logits);
	double m = logits[ids[0]];
	for (int i = 0; i < V; i++)
		p[i] = exp((logits[ids[i]] - m) / o->temperature);
	int n = V;
	if (o->top_k > 0 && o->top_k < n)
		n = o->top_k;
	double z = 0;
	for (int i = 0; i < n; i++)
		z += p[i];
	if (o->top_p < 1) {
		double c = 0;
		for (int i = 0; i < n; i++) {
			c += p[i] / z;
			if (c >= o->top_p) {
				n = i + 1;
				break;
			}
		}
	}
	for (int i = 1; i < n; i++)
		if (p[i] < o->min_p * p[0]) {
			n = i;
			break;
		}
	z = 0;
	for (int i = 0; i < n; i++)
		z += p[i];
	for (int i = 0; i < n; i++)
		p[i] /= z;
	return n;
}

static uint64_t lcg = 12345;
static double
unif(void)
{
	lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
	return (double)(lcg >> 11) * 0x1.0p-53;
}

static void
random_case(int V, double scale, int ties, const struct sample_opts *o)
{
	float *l = xmalloc(V * sizeof(float));
	int *ids = xmalloc(V * sizeof(int));
	double *p = xmalloc(V * sizeof(double));
	char what[128];

	for (int i = 0; i < V; i++) {
		/* Gumbel-ish spread; with ties, few distinct values. */
		double x = -log(-log(unif() * 0.999 + 0.0005));
		l[i] = ties ? (float)floor(x * 3) : (float)(scale * x);
	}
	int n = reference(o, l, V, ids, p);
	snprintf(what, sizeof what, "random V=%d scale=%g ties=%d T=%g p=%g "
	    "k=%d minp=%g", V, scale, ties, o->temperature, o->top_p,
	    o->top_k, o->min_p);
	expect_set(what, o, l, V, ids, p, n);
	free(l);
	free(ids);
	free(p);
}

int
main(void)
{
	/* Five tokens, shuffled: id 2 0.4, id 0 0.3, id 4 0.15, id 1 0.1,
	 * id 3 0.05. */
	static const double P[5] = { 0.3, 0.1, 0.4, 0.05, 0.15 };
	float l[5];
	for (int i = 0; i < 5; i++)
		l[i] = (float)log(P[i]);
	struct sample_opts o;

	o = opts(1, 1, 0, 0);
	{
		int w[] = { 0, 1, 2, 3, 4 };
		expect_set("no filter", &o, l, 5, w, P, 5);
	}
	o = opts(1, 1, 2, 0);
	{
		int w[] = { 2, 0 };
		double p[] = { 0.4 / 0.7, 0.3 / 0.7 };
		expect_set("top-k 2", &o, l, 5, w, p, 2);
	}
	o = opts(1, 1, 5, 0);
	{
		int w[] = { 0, 1, 2, 3, 4 };
		expect_set("top-k = V", &o, l, 5, w, P, 5);
	}
	o = opts(1, 0.39, 0, 0);
	{
		int w[] = { 2 };
		double p[] = { 1 };
		expect_set("top-p 0.39", &o, l, 5, w, p, 1);
	}
	o = opts(1, 0.41, 0, 0);
	{
		int w[] = { 2, 0 };
		double p[] = { 0.4 / 0.7, 0.3 / 0.7 };
		expect_set("top-p 0.41", &o, l, 5, w, p, 2);
	}
	o = opts(1, 0.8, 0, 0);
	{
		int w[] = { 2, 0, 4 };
		double p[] = { 0.4 / 0.85, 0.3 / 0.85, 0.15 / 0.85 };
		expect_set("top-p 0.8", &o, l, 5, w, p, 3);
	}
	/* top-p measures mass after top-k: 0.4/0.85 + 0.3/0.85 >= 0.8. */
	o = opts(1, 0.8, 3, 0);
	{
		int w[] = { 2, 0 };
		double p[] = { 0.4 / 0.7, 0.3 / 0.7 };
		expect_set("top-k 3 then top-p 0.8", &o, l, 5, w, p, 2);
	}
	o = opts(1, 1, 0, 0.26);	/* threshold 0.104 */
	{
		int w[] = { 2, 0, 4 };
		expect_set("min-p 0.26", &o, l, 5, w, NULL, 3);
	}
	o = opts(1, 1, 0, 0.24);	/* threshold 0.096 */
	{
		int w[] = { 2, 0, 4, 1 };
		expect_set("min-p 0.24", &o, l, 5, w, NULL, 4);
	}
	o = opts(1, 1, 0, 1);
	{
		int w[] = { 2 };
		expect_set("min-p 1", &o, l, 5, w, NULL, 1);
	}
	/* Temperature 2: p ~ sqrt(P). */
	o = opts(2, 1, 0, 0);
	{
		int w[] = { 0, 1, 2, 3, 4 };
		double p[5], z = 0;
		for (int i = 0; i < 5; i++)
			z += sqrt(P[i]);
		for (int i = 0; i < 5; i++)
			p[i] = sqrt(P[i]) / z;
		expect_set("temperature 2", &o, l, 5, w, p, 5);
	}
	/* min-p applies to the tempered distribution: at T = 2 the
	 * threshold 0.55 * sqrt(0.4) = 0.348 keeps sqrt(0.15) = 0.387, where
	 * at T = 1 it would keep only 0.4 and 0.3. */
	o = opts(2, 1, 0, 0.55);
	{
		int w[] = { 2, 0, 4 };
		expect_set("min-p 0.55 at T 2", &o, l, 5, w, NULL, 3);
	}
	o = opts(0, 0.5, 3, 0.1);
	{
		int w[] = { 2 };
		double p[] = { 1 };
		expect_set("greedy", &o, l, 5, w, p, 1);
	}

	/* Ties: the lower id first, everywhere. */
	float t[5] = { 1, 3, 3, 0, 3 };
	CHECK(sample_argmax(t, 5) == 1);
	o = opts(1, 1, 2, 0);
	{
		int w[] = { 1, 2 };
		expect_set("top-k 2 with ties", &o, t, 5, w, NULL, 2);
	}
	o = opts(1, 1, 1, 0);
	{
		int w[] = { 1 };
		expect_set("top-k 1 with ties", &o, t, 5, w, NULL, 1);
	}
	float eq[4] = { 0, 0, 0, 0 };
	o = opts(1, 0.5, 0, 0);
	{
		int w[] = { 0, 1 };
		double p[] = { 0.5, 0.5 };
		expect_set("top-p 0.5 over four equals", &o, eq, 4, w, p, 2);
	}
	o = opts(1, 0.1, 0, 0);
	{
		int w[] = { 0 };
		expect_set("top-p 0.1 over four equals", &o, eq, 4, w, NULL, 1);
	}
	o = opts(0, 1, 0, 0);
	CHECK(sample_token(&o, t, 5, NULL, 0.99) == 1);

	/* A masked token (-inf) never becomes a candidate weight. */
	float mk[3] = { 0, -INFINITY, 0 };
	o = opts(1, 1, 0, 0);
	{
		int w[] = { 0, 1, 2 };
		double p[] = { 0.5, 0, 0.5 };
		expect_set("masked", &o, mk, 3, w, p, 3);
	}

	/* log-probability at temperature 1. */
	for (int i = 0; i < 5; i++)
		CHECK(fabs(sample_logprob(l, 5, i) - log(P[i])) < 1e-6);
	float big[2] = { 1000, 0 };
	CHECK(fabs(sample_logprob(big, 2, 0)) < 1e-6);
	CHECK(fabs(sample_logprob(big, 2, 1) + 1000) < 1e-3);

	/* Drawing: u on a fine grid lands on each token in proportion to
	 * its probability (the inverse of the cumulative distribution). */
	{
		struct sample_ws w;
		int count[5] = { 0 }, M = 100000;
		sample_ws_init(&w, 5);
		o = opts(1, 0.8, 0, 0);
		for (int i = 0; i < M; i++)
			count[sample_token(&o, l, 5, &w, (i + 0.5) / M)]++;
		CHECK(abs(count[2] - (int)(M * 0.4 / 0.85)) <= 2);
		CHECK(abs(count[0] - (int)(M * 0.3 / 0.85)) <= 2);
		CHECK(abs(count[4] - (int)(M * 0.15 / 0.85)) <= 2);
		CHECK(count[1] == 0 && count[3] == 0);
		sample_ws_free(&w);
	}

	/* sample_next: the token sample_token draws, with its logprob. */
	{
		struct sample_ws w;
		float lp, big[300];
		int M = 2000, differ = 0;
		for (int i = 0; i < 300; i++)
			big[i] = (float)(3 * sin(i * 1.7) + 0.01 * i);
		sample_ws_init(&w, 300);
		for (int a = 0; a < 3; a++) {
			o = a == 0 ? opts(1, 1, 0, 0) : a == 1 ?
			    opts(0.5, 0.9, 0, 0) : opts(1, 1, 10, 0);
			for (int i = 0; i < M; i++) {
				double u = (i + 0.37) / M;
				int t = sample_next(&o, big, 300, &w, u, &lp);
				differ += t != sample_token(&o, big, 300, &w, u);
				CHECK(fabsf(lp - sample_logprob(big, 300, t)) <
				    1e-5f);
			}
		}
		/* At a boundary the two may round apart: rarely. */
		CHECK(differ <= 2);
		sample_ws_free(&w);
	}

	/* The narrowing fast paths against the reference, large vocabularies
	 * with spread-out, peaked and heavily tied logits. */
	static const double temps[] = { 1, 0.7, 1.5 };
	static const double tops[] = { 1, 0.9, 0.5, 0.05 };
	static const int ks[] = { 0, 1, 40, 1000 };
	static const double minps[] = { 0, 0.05, 0.5 };
	for (int a = 0; a < 3; a++)
		for (int b = 0; b < 4; b++)
			for (int c = 0; c < 4; c++)
				for (int d = 0; d < 3; d++) {
					o = opts(temps[a], tops[b], ks[c],
					    minps[d]);
					random_case(5000, 1, 0, &o);
					random_case(5000, 6, 0, &o);
					random_case(3000, 1, 1, &o);
				}
	o = opts(1, 0.9, 0, 0);
	random_case(152000, 3, 0, &o);

	/* Zeros of both signs tie, as == says: the 400 best of 667 zeros
	 * (and 333 ones of -1) are the zeros of lowest id, whatever their
	 * sign; candidates come in id order. */
	{
		struct sample_ws w;
		float z[1000];
		for (int i = 0; i < 1000; i++)
			z[i] = i % 3 == 0 ? -0.0f : i % 3 == 1 ? 0.0f : -1;
		sample_ws_init(&w, 1000);
		o = opts(1, 1, 400, 0);
		int n = sample_candidates(&o, z, 1000, &w), ok = n == 400;
		for (int j = 0, i = 0; ok && j < n; j++, i++) {
			if (i % 3 == 2)
				i++;
			ok = w.idx[j] == i && fabsf(w.p[j] - 1.0f / 400) < 1e-6f;
		}
		CHECK(ok);
		sample_ws_free(&w);
	}

	return check_status();
}
