/*
 * sample.c: temperature, top-k, top-p and min-p over a row of logits.
 *
 * Sorting a 150000-token vocabulary at every step would cost more than a
 * small model's forward pass, so each filter first narrows the tokens it
 * can possibly keep, and only those are sorted:
 *
 *   top-k  a selection (quickselect) of the k best, then a sort of k;
 *   top-p  the tokens with weight at least (1 - p) Z / (V - 1), plus the
 *          best one: all the others together weigh less than (1 - p) Z,
 *          so the nucleus (weight >= p Z) lies within what is kept;
 *   min-p  the tokens with weight at least min_p times the largest.
 *
 * Weights are exp((logit - max) / T), so the largest is exactly 1.  Order
 * is by logit, then by id, a strict total order: ties are broken the same
 * way in every filter and on every machine.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sample.h"
#include "util.h"
#include "vmath.h"

void
sample_ws_init(struct sample_ws *w, int V)
{
	w->V = V;
	w->p = xreallocarray(NULL, V > 0 ? V : 1, sizeof(*w->p));
	/* one over, for sample_candidates' branchless gathering */
	w->idx = xreallocarray(NULL, V > 0 ? (size_t)V + 1 : 1,
	    sizeof(*w->idx));
	w->tmp = xreallocarray(NULL, V > 0 ? V : 1, sizeof(*w->tmp));
	w->keys = xreallocarray(NULL, V > 0 ? 2 * (size_t)V : 1,
	    sizeof(*w->keys));
}

void
sample_ws_free(struct sample_ws *w)
{
	free(w->p);
	free(w->idx);
	free(w->tmp);
	free(w->keys);
	w->p = w->tmp = NULL;
	w->keys = NULL;
	w->idx = NULL;
}

int
sample_argmax(const float *logits, int V)
{
	return (int)vmath_argmax(logits, V > 0 ? (size_t)V : 0);
}

double
sample_logsumexp(const float *logits, int V)
{
	float m = vmath_max(logits, V);

	if (isinf(m))
		return m;
	return m + log(vmath_exp_sum(NULL, logits, m, V));
}

float
sample_logprob(const float *logits, int V, int tok)
{
	return (float)((double)logits[tok] - sample_logsumexp(logits, V));
}

/* Whether token a comes before token b: higher logit, then lower id. */
static inline int
before(const float *logits, int a, int b)
{
	return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
}

/* Sort ids[0..n) into candidate order (insertion below 16, else quick). */
static void
sort_ids_cmp(const float *logits, int *ids, int n)
{
	while (n > 16) {
		int mid = ids[n / 2], i = 0, j = n - 1;
		while (i <= j) {
			while (before(logits, ids[i], mid))
				i++;
			while (before(logits, mid, ids[j]))
				j--;
			if (i <= j) {
				int t = ids[i];
				ids[i++] = ids[j];
				ids[j--] = t;
			}
		}
		/* Recurse into the smaller side, loop on the larger. */
		if (j + 1 < n - i) {
			sort_ids_cmp(logits, ids, j + 1);
			ids += i;
			n -= i;
		} else {
			sort_ids_cmp(logits, ids + i, n - i);
			n = j + 1;
		}
	}
	for (int i = 1; i < n; i++) {
		int x = ids[i], j = i;
		for (; j > 0 && before(logits, x, ids[j - 1]); j--)
			ids[j] = ids[j - 1];
		ids[j] = x;
	}
}

/*
 * The candidate order as one number, smaller first: the logit's bits made
 * to sort as unsigned integers, turned around (a higher logit first), then
 * the id.  -0 counts as 0, so the two zeros tie as they do for ==.
 */
static inline uint64_t
order_key(const float *logits, int id)
{
	float f = logits[id] == 0 ? 0 : logits[id];
	uint32_t u;

	memcpy(&u, &f, sizeof u);
	u = u & 0x80000000u ? ~u : u | 0x80000000u;
	return (uint64_t)~u << 32 | (uint32_t)id;
}

/*
 * Sort ids[0..n) into candidate order.  A flat distribution leaves tens
 * of thousands of candidates to top-p, where comparing logits through
 * their ids costs a millisecond a token; a radix sort of the keys, eight
 * bits a pass, skipping the passes whose digit is the same everywhere,
 * takes a tenth of that.  keys: room for 2n.
 */
static void
sort_ids(const float *logits, int *ids, int n, uint64_t *keys)
{
	uint64_t *a = keys, *b = keys + n, *t;
	size_t count[8][256];

	if (n < 256) {
		sort_ids_cmp(logits, ids, n);
		return;
	}
	/* Every pass's counts in one read of the keys. */
	memset(count, 0, sizeof count);
	for (int i = 0; i < n; i++) {
		uint64_t k = a[i] = order_key(logits, ids[i]);
		for (int d = 0; d < 8; d++)
			count[d][k >> 8 * d & 255]++;
	}
	for (int d = 0; d < 8; d++) {
		size_t at = 0, *c = count[d];
		if (c[a[0] >> 8 * d & 255] == (size_t)n)
			continue;	/* the same digit everywhere */
		for (int v = 0; v < 256; v++) {
			size_t m = c[v];
			c[v] = at;
			at += m;
		}
		for (int i = 0; i < n; i++)
			b[c[a[i] >> 8 * d & 255]++] = a[i];
		t = a;
		a = b;
		b = t;
	}
	for (int i = 0; i < n; i++)
		ids[i] = (int)(uint32_t)a[i];
}

/* Move the k first ids in candidate order to ids[0..k), in any order. */
static void
select_ids(const float *logits, int *ids, int n, int k)
{
	int lo = 0, hi = n - 1;

	while (hi - lo > 16) {
		int mid = ids[lo + (hi - lo) / 2], i = lo, j = hi;
		while (i <= j) {
			while (before(logits, ids[i], mid))
				i++;
			while (before(logits, mid, ids[j]))
				j--;
			if (i <= j) {
				int t = ids[i];
				ids[i++] = ids[j];
				ids[j--] = t;
			}
		}
		/* ids[lo..j] come before ids[j+1..i-1] come before ids[i..hi] */
		if (k <= j)
			hi = j;
		else if (k >= i)
			lo = i;
		else
			return;
	}
	sort_ids_cmp(logits, ids + lo, hi - lo + 1);
}

int
sample_candidates(const struct sample_opts *o, const float *logits, int V,
    struct sample_ws *w)
{
	int topk = o->top_k > 0 && o->top_k < V;
	int topp = o->top_p < 1;
	int minp = o->min_p > 0;
	double invT, Z = 0;
	float m;
	int n = 0;

	if (o->temperature <= 0) {
		w->idx[0] = sample_argmax(logits, V);
		w->p[0] = 1;
		return 1;
	}
	invT = 1 / o->temperature;
	m = vmath_max(logits, V);
	Z = vmath_exp_sum_scaled(w->p, logits, m, (float)invT, V);
	if (!topk && !topp && !minp) {
		for (int i = 0; i < V; i++) {
			w->idx[i] = i;
			w->p[i] = (float)(w->p[i] / Z);
		}
		return V;
	}

	/* Narrow down, then sort what is left (see the comment on top). */
	if (topk) {
		for (int i = 0; i < V; i++)
			w->idx[i] = i;
		select_ids(logits, w->idx, V, o->top_k);
		n = o->top_k;
	} else {
		double cut = 0;
		if (topp)
			cut = (1 - o->top_p) * Z / (V - 1 > 0 ? V - 1 : 1);
		if (minp && o->min_p > cut)
			cut = o->min_p;		/* the largest weight is 1 */
		int best = sample_argmax(logits, V);
		w->idx[n++] = best;
		/* Without a branch: whether a token passes is a coin toss
		 * the branch predictor loses, on a flat distribution. */
		for (int i = 0; i < V; i++) {
			w->idx[n] = i;
			n += (i != best) & (w->p[i] >= cut);
		}
	}
	sort_ids(logits, w->idx, n, w->keys);

	/* The weights in candidate order, gathered through tmp because
	 * p is indexed by token until then. */
	float *e = w->p;
	for (int j = 0; j < n; j++)
		w->tmp[j] = e[w->idx[j]];
	memcpy(e, w->tmp, n * sizeof(*e));

	int L = n;
	if (topp) {
		/* top-p renormalises over what top-k left. */
		double mass = 0, cum = 0;
		if (topk)
			for (int j = 0; j < n; j++)
				mass += e[j];
		else
			mass = Z;
		for (int j = 0; j < L; j++) {
			cum += e[j];
			if (cum >= o->top_p * mass) {
				L = j + 1;
				break;
			}
		}
	}
	if (minp) {
		for (int j = 1; j < L; j++)
			if (e[j] < o->min_p * e[0]) {
				L = j;
				break;
			}
	}
	double s = 0;
	for (int j = 0; j < L; j++)
		s += e[j];
	for (int j = 0; j < L; j++)
		e[j] = (float)(e[j] / s);
	return L;
}

int
sample_token(const struct sample_opts *o, const float *logits, int V,
    struct sample_ws *w, double u)
{
	if (o->temperature <= 0)
		return sample_argmax(logits, V);
	int n = sample_candidates(o, logits, V, w);
	double cum = 0;
	for (int j = 0; j < n; j++) {
		cum += w->p[j];
		if (u < cum)
			return w->idx[j];
	}
	/* Rounding left the sum a little under 1: the last candidate with
	 * any weight. */
	for (int j = n - 1; j > 0; j--)
		if (w->p[j] > 0)
			return w->idx[j];
	return w->idx[0];
}

/*
 * The common case of a decoding step in one pass over the vocabulary:
 * at temperature 1 with nothing filtered, the weights that are sampled
 * from are the ones the log-probability needs, and they are never
 * normalised, u being scaled by their sum instead.
 */
int
sample_next(const struct sample_opts *o, const float *logits, int V,
    struct sample_ws *w, double u, float *logprob)
{
	int plain = o->temperature == 1 && !(o->top_k > 0 && o->top_k < V) &&
	    o->top_p >= 1 && o->min_p <= 0;
	int t;

	if (!plain) {
		t = sample_token(o, logits, V, w, u);
		*logprob = sample_logprob(logits, V, t);
		return t;
	}
	/* The weights and their sum, then the token: whole blocks of eight
	 * are skipped by their sums, the block the draw falls in is walked
	 * token by token. */
	float m = vmath_max(logits, V);
	double Z = vmath_exp_sum(w->p, logits, m, V), cum = 0, target;
	int i = 0;
	target = u * Z;
	t = -1;
	for (; i + 8 <= V; i += 8) {
		const float *p = w->p + i;
		double b = (((double)p[0] + p[1]) + ((double)p[2] + p[3])) +
		    (((double)p[4] + p[5]) + ((double)p[6] + p[7]));
		if (target < cum + b)
			break;
		cum += b;
	}
	for (; i < V; i++) {
		cum += w->p[i];
		if (target < cum) {
			t = i;
			break;
		}
	}
	if (t < 0)		/* rounding: the last token with any weight */
		for (t = V - 1; t > 0 && w->p[t] == 0; t--)
			;
	*logprob = (float)((double)logits[t] - m - log(Z));
	return t;
}
