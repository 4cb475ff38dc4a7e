/*
 * sample.c: temperature, top-k, top-p and min-p over a row of logits.
 *
 * Sorting a 150000-token vocabulary at every step would cost more than a
 * small model's forward pass, and on a flat distribution top-p keeps most
 * of it, so no filter sorts.  Each finds its set by selection, in time
 * linear in what it looks at:
 *
 *   top-k  a quickselect of the k best;
 *   top-p  first the tokens with weight at least (1 - p) Z / (V - 1), plus
 *          the best one (all the others together weigh less than (1 - p)
 *          Z, so the nucleus lies within), then a quickselect that keeps
 *          the mass of the part known to come first, down to the nucleus;
 *   min-p  the tokens with weight at least min_p times the largest.
 *
 * Weights are exp((logit - max) / T), so the largest is exactly 1.  Order
 * is by logit, then by id, a strict total order: ties are broken the same
 * way in every filter and on every machine.  The candidates come out in
 * id order.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sampling/sample.h"
#include "util/util.h"
#include "backend/vmath.h"

void
sample_ws_init(struct sample_ws *w, int V)
{
	w->V = V;
	w->p = xreallocarray(NULL, V > 0 ? V : 1, sizeof(*w->p));
	w->idx = xreallocarray(NULL, V > 0 ? V : 1, sizeof(*w->idx));
	w->wt = xreallocarray(NULL, V > 0 ? V : 1, sizeof(*w->wt));
	w->keys = xreallocarray(NULL, V > 0 ? V : 1, sizeof(*w->keys));
	w->mark = xmalloc(V > 0 ? (size_t)V : 1);
}

void
sample_ws_free(struct sample_ws *w)
{
	free(w->p);
	free(w->idx);
	free(w->wt);
	free(w->keys);
	free(w->mark);
	w->p = w->wt = NULL;
	w->keys = NULL;
	w->mark = NULL;
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

/*
 * The candidate order as one number, smaller first: the logit's bits made
 * to sort as unsigned integers, turned around (a higher logit first), then
 * the id, in the low 32 bits.  -0 counts as 0, so the two zeros tie as
 * they do for ==.
 */
static inline uint64_t
order_key(const float *logits, int id)
{
	float f = logits[id] + 0.0f;	/* -0 + 0 is +0 */
	uint32_t u;

	/* Without a branch, as the signs come mixed: flip every bit of a
	 * negative, only the sign bit of the others. */
	memcpy(&u, &f, sizeof u);
	u ^= (uint32_t)-(int32_t)(u >> 31) | 0x80000000u;
	return (uint64_t)~u << 32 | (uint32_t)id;
}

static inline int
key_id(uint64_t key)
{
	return (int)(uint32_t)key;
}

/* Swap pairs i and j of (key, wt). */
static inline void
swap_pair(uint64_t *key, float *wt, int i, int j)
{
	uint64_t k = key[i];
	float x = wt[i];

	key[i] = key[j];
	key[j] = k;
	wt[i] = wt[j];
	wt[j] = x;
}

/*
 * Partition key[lo..hi) (and wt with it) around the median of three: the
 * keys before the pivot first, then the pivot, at the index returned, then
 * the keys after it.  Keys are distinct, so the pivot is the only key
 * equal to itself and every call makes progress.
 */
static int
partition(uint64_t *key, float *wt, int lo, int hi)
{
	int mid = lo + (hi - lo) / 2, last = hi - 1;

	/* median of key[lo], key[mid], key[last] to key[last] */
	if (key[mid] < key[lo])
		swap_pair(key, wt, mid, lo);
	if (key[last] < key[lo])
		swap_pair(key, wt, last, lo);
	if (key[mid] < key[last])
		swap_pair(key, wt, mid, last);
	/* Without a branch (Lomuto's, swapping every time): on which side
	 * a key falls is a coin toss the branch predictor loses.  What lies
	 * in [at, i) is after the pivot, so a swap there changes nothing of
	 * the order's invariant. */
	uint64_t pv = key[last];
	int at = lo;
	for (int i = lo; i < last; i++) {
		uint64_t k = key[i];
		float x = wt[i];
		key[i] = key[at];
		wt[i] = wt[at];
		key[at] = k;
		wt[at] = x;
		at += k < pv;
	}
	swap_pair(key, wt, at, last);
	return at;
}

/* Move the k first keys in candidate order to key[0..k), in any order. */
static void
select_keys(uint64_t *key, float *wt, int n, int k)
{
	int lo = 0, hi = n;

	while (hi - lo > 1) {
		int at = partition(key, wt, lo, hi);
		if (at == k || at + 1 == k)
			return;
		if (at > k)
			hi = at;
		else
			lo = at + 1;
	}
}

/*
 * top-p's nucleus: move the shortest run of first keys in candidate order
 * whose weights sum to at least target to the front, and return its
 * length (n if the sum never gets there, by rounding).  A quickselect
 * that keeps the mass of what it has put in front: each round learns on
 * which side of its pivot the run ends.
 */
static int
nucleus(uint64_t *key, float *wt, int n, double target)
{
	int lo = 0, hi = n;
	double acc = 0;		/* the weight of key[0..lo), all in */

	while (hi - lo > 16) {
		int at = partition(key, wt, lo, hi);
		double before = 0;
		for (int i = lo; i < at; i++)
			before += wt[i];
		if (acc + before >= target)
			hi = at;		/* it ends before the pivot */
		else if (acc + before + wt[at] >= target)
			return at + 1;		/* it ends at the pivot */
		else {
			acc += before + wt[at];
			lo = at + 1;
		}
	}
	/* The last few in order. */
	for (int i = lo + 1; i < hi; i++)
		for (int j = i; j > lo && key[j] < key[j - 1]; j--)
			swap_pair(key, wt, j, j - 1);
	for (int i = lo; i < hi; i++) {
		acc += wt[i];
		if (acc >= target)
			return i + 1;
	}
	return hi;
}

static int
cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
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

	/* The candidates as (key, weight) pairs: every token for top-k,
	 * else those that pass the cut (see the comment on top). */
	uint64_t *key = w->keys;
	float *wt = w->wt;
	if (topk) {
		for (int i = 0; i < V; i++)
			key[i] = order_key(logits, i);
		n = V;
	} else {
		double cut = 0;
		if (topp)
			cut = (1 - o->top_p) * Z / (V - 1 > 0 ? V - 1 : 1);
		if (minp && o->min_p > cut)
			cut = o->min_p;		/* the largest weight is 1 */
		int best = sample_argmax(logits, V);
		/* Without a branch: whether a token passes is a coin toss
		 * the branch predictor loses, on a flat distribution. */
		for (int i = 0; i < V; i++) {
			key[n] = order_key(logits, i);
			n += (i == best) | (w->p[i] >= cut);
		}
	}
	for (int j = 0; j < n; j++)
		wt[j] = w->p[key_id(key[j])];

	if (topk) {
		select_keys(key, wt, n, o->top_k);
		n = o->top_k;
	}
	if (topp) {
		/* top-p renormalises over what top-k left. */
		double mass = 0;
		if (topk)
			for (int j = 0; j < n; j++)
				mass += wt[j];
		else
			mass = Z;
		n = nucleus(key, wt, n, o->top_p * mass);
	}
	if (minp) {
		/* Weight is monotonic in the order: a threshold on it keeps
		 * a prefix, as the definition says. */
		int k = 0;
		for (int j = 0; j < n; j++) {
			key[k] = key[j];
			wt[k] = wt[j];
			k += wt[j] >= o->min_p;
		}
		n = k;
	}

	/* In id order, with their probabilities: a small set sorted, a
	 * large one swept out of a mark on every token. */
	double s = 0;
	if (n < V / 32) {
		for (int j = 0; j < n; j++)
			w->idx[j] = key_id(key[j]);
		qsort(w->idx, n, sizeof(*w->idx), cmp_int);
	} else {
		memset(w->mark, 0, (unsigned)V);
		for (int j = 0; j < n; j++)
			w->mark[key_id(key[j])] = 1;
		int k = 0;
		for (int i = 0; i < V; i++) {
			w->idx[k] = i;
			k += w->mark[i];
		}
	}
	for (int j = 0; j < n; j++)
		s += w->p[w->idx[j]];
	for (int j = 0; j < n; j++)
		w->p[j] = (float)(w->p[w->idx[j]] / s);
	return n;
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
 * The common case of a decoding step, with nothing filtered, in one pass
 * over the vocabulary (two at a temperature other than 1, for the
 * log-probability): the weights are never normalised, u being scaled by
 * their sum instead.
 */
int
sample_next(const struct sample_opts *o, const float *logits, int V,
    struct sample_ws *w, double u, float *logprob)
{
	int unfiltered = o->temperature > 0 && !(o->top_k > 0 &&
	    o->top_k < V) && o->top_p >= 1 && o->min_p <= 0;
	int t;

	if (!unfiltered) {
		t = sample_token(o, logits, V, w, u);
		*logprob = sample_logprob(logits, V, t);
		return t;
	}
	/* The weights at the temperature and their sum, then the token:
	 * whole blocks of eight are skipped by their sums, the block the
	 * draw falls in is walked token by token. */
	float m = vmath_max(logits, V);
	double Z = vmath_exp_sum_scaled(w->p, logits, m,
	    (float)(1 / o->temperature), V), cum = 0, target;
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
	/* The log-probability at temperature 1: Z is its normaliser only
	 * there. */
	if (o->temperature != 1)
		Z = vmath_exp_sum(NULL, logits, m, V);
	*logprob = (float)((double)logits[t] - m - log(Z));
	return t;
}
