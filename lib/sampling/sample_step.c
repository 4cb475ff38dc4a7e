/*
 * sample_step.c: one decoding step over B sequences, each one new token,
 * on the KV caches of lib/model/model.h.
 *
 * model_extend does the same through sgemm, and is what prefills prompts.
 * For decoding it has two problems this file exists to avoid:
 *
 *   - sgemm packs the weight matrix into its own layout at every call; with
 *     a handful of rows that copy costs several times the product itself.
 *     Here each weight row is read in place, once per step, and used for
 *     every sequence of the batch while it is in cache.
 *   - OpenBLAS sums a row differently depending on how many rows there are
 *     and where the row falls in its tiles, so a sample's log-probabilities
 *     (and, at a near tie, its tokens) would depend on which other samples
 *     happened to share its batch.  Here every output element is the same
 *     sequence of operations whatever B, the row's place, or the threads:
 *     eight partial sums over the input in order, added in a fixed tree.
 *
 * The arithmetic is the model's: RMSNorm and the rotary embeddings are
 * its own kernels (model_rmsnorm, model_rope), grouped-query attention and
 * SwiGLU are written here for a batch of single tokens (the exponentials
 * from lib/vmath); tests/rollout_basic.sh checks the result against
 * model_forward.
 */
#include "config.h"

#include <err.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "model/model.h"
#include "sampling/sample.h"
#include "util/util.h"
#include "backend/vmath.h"

struct layer_p {
	const float *ln1, *wq, *bq, *wk, *bk, *wv, *bv, *wo, *ln2, *wg, *wu,
	    *wd;
};

struct sample_step {
	struct model *m;
	struct layer_p *L;
	const float *embed, *norm, *out;
	float *freq;		/* (hd/2) */
	float *cs;		/* (maxB, hd) rope cos, sin this step */
	int *pos;		/* (maxB) the positions this step */
	int maxB, nth;
	size_t macs;		/* multiply-adds of the products a token */
	float *x, *xb, *q, *k, *v, *att, *g, *u;	/* (maxB, ...) */
	float *scores;		/* (nth, n_heads, scap) */
	int scap;
	int avx2;
};

static const float *
param(struct model *m, const char *fmt, int l, int need)
{
	char name[96];
	snprintf(name, sizeof name, fmt, l);
	const struct model_tensor *t = model_tensor(m, name);
	if (t == NULL) {
		if (need)
			errx(EXIT_DATA, "sample_step: no tensor %s", name);
		return NULL;
	}
	return m->params + t->offset;
}

struct sample_step *
sample_step_new(struct model *m, int maxB)
{
	const struct model_config *c = &m->cfg;
	struct sample_step *s = xcalloc(1, sizeof(*s));
	int C = c->dim, Q = model_q_dim(c), KV = model_kv_dim(c);
	int F = c->hidden_dim, hd = c->head_dim;

	s->m = m;
	s->maxB = maxB;
	s->L = xcalloc(c->n_layers > 0 ? c->n_layers : 1, sizeof(*s->L));
	for (int l = 0; l < c->n_layers; l++) {
		struct layer_p *p = &s->L[l];
		p->ln1 = param(m, "model.layers.%d.input_layernorm.weight", l, 1);
		p->wq = param(m, "model.layers.%d.self_attn.q_proj.weight", l, 1);
		p->bq = param(m, "model.layers.%d.self_attn.q_proj.bias", l, 0);
		p->wk = param(m, "model.layers.%d.self_attn.k_proj.weight", l, 1);
		p->bk = param(m, "model.layers.%d.self_attn.k_proj.bias", l, 0);
		p->wv = param(m, "model.layers.%d.self_attn.v_proj.weight", l, 1);
		p->bv = param(m, "model.layers.%d.self_attn.v_proj.bias", l, 0);
		p->wo = param(m, "model.layers.%d.self_attn.o_proj.weight", l, 1);
		p->ln2 = param(m,
		    "model.layers.%d.post_attention_layernorm.weight", l, 1);
		p->wg = param(m, "model.layers.%d.mlp.gate_proj.weight", l, 1);
		p->wu = param(m, "model.layers.%d.mlp.up_proj.weight", l, 1);
		p->wd = param(m, "model.layers.%d.mlp.down_proj.weight", l, 1);
	}
	s->embed = param(m, "model.embed_tokens.weight", 0, 1);
	s->norm = param(m, "model.norm.weight", 0, 1);
	s->out = c->tie_embeddings ? s->embed :
	    param(m, "lm_head.weight", 0, 1);

	s->freq = xcalloc(hd / 2 + 1, sizeof(float));
	model_rope_freqs(c, s->freq);

	s->macs = (size_t)c->n_layers * ((size_t)C * (Q + 2 * KV) +
	    (size_t)Q * C + 3 * (size_t)C * F) + (size_t)C * c->vocab_size;
	s->nth = 1;
#ifdef _OPENMP
	s->nth = omp_get_max_threads();
#endif
	s->x = xmalloc((size_t)maxB * C * sizeof(float));
	s->xb = xmalloc((size_t)maxB * (C > Q ? C : Q) * sizeof(float));
	s->q = xmalloc((size_t)maxB * Q * sizeof(float));
	s->k = xmalloc((size_t)maxB * KV * sizeof(float));
	s->v = xmalloc((size_t)maxB * KV * sizeof(float));
	s->att = xmalloc((size_t)maxB * Q * sizeof(float));
	s->g = xmalloc((size_t)maxB * F * sizeof(float));
	s->u = xmalloc((size_t)maxB * F * sizeof(float));
	s->cs = xmalloc((size_t)maxB * hd * sizeof(float));
	s->pos = xmalloc((size_t)maxB * sizeof(int));
	s->avx2 = pp_cpu_avx2();
	return s;
}

void
sample_step_free(struct sample_step *s)
{
	if (s == NULL)
		return;
	free(s->L);
	free(s->freq);
	free(s->x);
	free(s->xb);
	free(s->q);
	free(s->k);
	free(s->v);
	free(s->att);
	free(s->g);
	free(s->u);
	free(s->cs);
	free(s->pos);
	free(s->scores);
	free(s);
}

/* ------------------------------------------------------------------------ */
/*
 * out (B,O) = x (B,I) @ w^T (w is (O,I)), plus bias, or added to out.
 *
 * Every element: eight running sums s[l] += x[i] w[i] over i = l mod 8 in
 * increasing order, added as ((s0+s1)+(s2+s3))+((s4+s5)+(s6+s7)), then
 * the last I mod 8 products in order.  Tiles of rows and outputs only
 * share loads, never sums.
 */
typedef float v8 __attribute__((vector_size(32)));
/* The helpers below are always inlined: no v8 crosses a call. */
#pragma GCC diagnostic ignored "-Wpsabi"

static inline __attribute__((always_inline)) v8
load8(const float *p)
{
	v8 v;
	memcpy(&v, p, sizeof v);
	return v;
}

static inline __attribute__((always_inline)) float
hsum(const v8 *ap, const float *x, const float *w, int i8, int I)
{
	v8 a = *ap;
	float s = ((a[0] + a[1]) + (a[2] + a[3])) +
	    ((a[4] + a[5]) + (a[6] + a[7]));
	for (int i = i8; i < I; i++)
		s += x[i] * w[i];
	return s;
}

#define AI static inline __attribute__((always_inline))

typedef int v8i __attribute__((vector_size(32)));

/*
 * Eight hsums at once: lane k of the result is a_k's lanes added in
 * hsum's tree, ((0+1)+(2+3))+((4+5)+(6+7)), by pairwise shuffles (the
 * shape of AVX's horizontal add) instead of one lane at a time.
 */
AI v8
reduce8(v8 a0, v8 a1, v8 a2, v8 a3, v8 a4, v8 a5, v8 a6, v8 a7)
{
	const v8i ev = { 0, 2, 8, 10, 4, 6, 12, 14 };
	const v8i od = { 1, 3, 9, 11, 5, 7, 13, 15 };
	const v8i lo = { 0, 1, 2, 3, 8, 9, 10, 11 };
	const v8i hi = { 4, 5, 6, 7, 12, 13, 14, 15 };
	v8 t0 = __builtin_shuffle(a0, a1, ev) + __builtin_shuffle(a0, a1, od);
	v8 t1 = __builtin_shuffle(a2, a3, ev) + __builtin_shuffle(a2, a3, od);
	v8 t2 = __builtin_shuffle(a4, a5, ev) + __builtin_shuffle(a4, a5, od);
	v8 t3 = __builtin_shuffle(a6, a7, ev) + __builtin_shuffle(a6, a7, od);
	v8 u0 = __builtin_shuffle(t0, t1, ev) + __builtin_shuffle(t0, t1, od);
	v8 u1 = __builtin_shuffle(t2, t3, ev) + __builtin_shuffle(t2, t3, od);
	return __builtin_shuffle(u0, u1, lo) + __builtin_shuffle(u0, u1, hi);
}

/* Four rows by three outputs: r[3 * row + output].  Twelve running sums
 * keep both FMA pipes busy through their latency, where eight barely do. */
AI void
k4x3(const float *x, int I, const float *w, float *r)
{
	v8 a00 = { 0 }, a01 = { 0 }, a02 = { 0 }, a10 = { 0 };
	v8 a11 = { 0 }, a12 = { 0 }, a20 = { 0 }, a21 = { 0 };
	v8 a22 = { 0 }, a30 = { 0 }, a31 = { 0 }, a32 = { 0 };
	int i8 = I & ~7;

	for (int i = 0; i < i8; i += 8) {
		v8 w0 = load8(w + i), w1 = load8(w + I + i);
		v8 w2 = load8(w + 2 * I + i), xv;
		__builtin_prefetch(w + 3 * I + i);
		__builtin_prefetch(w + 4 * I + i);
		__builtin_prefetch(w + 5 * I + i);
		xv = load8(x + i);
		a00 += xv * w0;
		a01 += xv * w1;
		a02 += xv * w2;
		xv = load8(x + I + i);
		a10 += xv * w0;
		a11 += xv * w1;
		a12 += xv * w2;
		xv = load8(x + 2 * I + i);
		a20 += xv * w0;
		a21 += xv * w1;
		a22 += xv * w2;
		xv = load8(x + 3 * I + i);
		a30 += xv * w0;
		a31 += xv * w1;
		a32 += xv * w2;
	}
	v8 z = { 0 }, v = reduce8(a00, a01, a02, a10, a11, a12, a20, a21);
	memcpy(r, &v, sizeof v);
	v = reduce8(a22, a30, a31, a32, z, z, z, z);
	memcpy(r + 8, &v, 4 * sizeof(float));
	for (int i = i8; i < I; i++)
		for (int k = 0; k < 12; k++)
			r[k] += x[(size_t)(k / 3) * I + i] *
			    w[(size_t)(k % 3) * I + i];
}

/* Four rows by two outputs: r[2 * row + output]. */
AI void
k4x2(const float *x, int I, const float *w, float *r)
{
	v8 a00 = { 0 }, a01 = { 0 }, a10 = { 0 }, a11 = { 0 };
	v8 a20 = { 0 }, a21 = { 0 }, a30 = { 0 }, a31 = { 0 };
	int i8 = I & ~7;

	for (int i = 0; i < i8; i += 8) {
		v8 w0 = load8(w + i), w1 = load8(w + I + i), xv;
		/* The next two weight rows, while these are multiplied:
		 * they come from memory, the batch's rows from cache. */
		__builtin_prefetch(w + 2 * I + i);
		__builtin_prefetch(w + 3 * I + i);
		xv = load8(x + i);
		a00 += xv * w0;
		a01 += xv * w1;
		xv = load8(x + I + i);
		a10 += xv * w0;
		a11 += xv * w1;
		xv = load8(x + 2 * I + i);
		a20 += xv * w0;
		a21 += xv * w1;
		xv = load8(x + 3 * I + i);
		a30 += xv * w0;
		a31 += xv * w1;
	}
	v8 v = reduce8(a00, a01, a10, a11, a20, a21, a30, a31);
	memcpy(r, &v, sizeof v);
	for (int i = i8; i < I; i++)
		for (int k = 0; k < 8; k++)
			r[k] += x[(size_t)(k / 2) * I + i] *
			    w[(size_t)(k % 2) * I + i];
}

/* One row by four outputs. */
AI void
k1x4(const float *x, int I, const float *w, float *r)
{
	v8 a0 = { 0 }, a1 = { 0 }, a2 = { 0 }, a3 = { 0 };
	int i8 = I & ~7;

	for (int i = 0; i < i8; i += 8) {
		v8 xv = load8(x + i);
		a0 += xv * load8(w + i);
		a1 += xv * load8(w + I + i);
		a2 += xv * load8(w + 2 * I + i);
		a3 += xv * load8(w + 3 * I + i);
	}
	r[0] = hsum(&a0, x, w, i8, I);
	r[1] = hsum(&a1, x, w + I, i8, I);
	r[2] = hsum(&a2, x, w + 2 * I, i8, I);
	r[3] = hsum(&a3, x, w + 3 * I, i8, I);
}

/* One row by eight outputs, whose rows of w lie ldw floats apart (the
 * rows of a weight matrix, or the keys of a head in a KV cache). */
AI void
k1x8(const float *x, int I, const float *w, size_t ldw, float *r)
{
	v8 a0 = { 0 }, a1 = { 0 }, a2 = { 0 }, a3 = { 0 };
	v8 a4 = { 0 }, a5 = { 0 }, a6 = { 0 }, a7 = { 0 };
	int i8 = I & ~7;

	for (int i = 0; i < i8; i += 8) {
		v8 xv = load8(x + i);
		/* The next eight rows, one cache line in two iterations. */
		if ((i & 15) == 0)
			for (int k = 8; k < 16; k++)
				__builtin_prefetch(w + k * ldw + i);
		a0 += xv * load8(w + i);
		a1 += xv * load8(w + ldw + i);
		a2 += xv * load8(w + 2 * ldw + i);
		a3 += xv * load8(w + 3 * ldw + i);
		a4 += xv * load8(w + 4 * ldw + i);
		a5 += xv * load8(w + 5 * ldw + i);
		a6 += xv * load8(w + 6 * ldw + i);
		a7 += xv * load8(w + 7 * ldw + i);
	}
	v8 v = reduce8(a0, a1, a2, a3, a4, a5, a6, a7);
	memcpy(r, &v, sizeof v);
	for (int i = i8; i < I; i++)
		for (int k = 0; k < 8; k++)
			r[k] += x[i] * w[k * ldw + i];
}

/* One row by one output. */
AI float
k1x1(const float *x, int I, const float *w)
{
	v8 a = { 0 };
	int i8 = I & ~7;

	for (int i = 0; i < i8; i += 8)
		a += load8(x + i) * load8(w + i);
	return hsum(&a, x, w, i8, I);
}

AI void
put(float *o, float v, const float *bias, int acc)
{
	if (bias)
		v += *bias;
	*o = acc ? *o + v : v;
}

/* Outputs o0..o1 for every row of the batch: each weight row comes from
 * memory once and serves all the rows while it is in cache. */
AI void
chunk_body(float *out, const float *x, const float *w, const float *bias,
    int B, int I, int O, int acc, int o0, int o1)
{
	float r[12];
	int b;

	int B4 = B & ~3, o = o0;

	/* Three weight rows stay in L1 while every block of four rows of
	 * the batch goes past them. */
	if (B4 > 0)
		for (; o + 3 <= o1; o += 3)
			for (b = 0; b < B4; b += 4) {
				float *ob = out + (size_t)b * O;
				k4x3(x + (size_t)b * I, I, w + (size_t)o * I,
				    r);
				for (int k = 0; k < 12; k++)
					put(ob + (size_t)(k / 3) * O + o +
					    k % 3, r[k], bias ? bias + o +
					    k % 3 : NULL, acc);
			}
	for (; o + 2 <= o1; o += 2)
		for (b = 0; b < B4; b += 4) {
			float *ob = out + (size_t)b * O;
			k4x2(x + (size_t)b * I, I, w + (size_t)o * I, r);
			for (int k = 0; k < 8; k++)
				put(ob + (size_t)(k / 2) * O + o + k % 2, r[k],
				    bias ? bias + o + k % 2 : NULL, acc);
		}
	for (; o < o1; o++)
		for (b = 0; b < B4; b++)
			put(out + (size_t)b * O + o, k1x1(x + (size_t)b * I, I,
			    w + (size_t)o * I), bias ? bias + o : NULL, acc);
	b = B4;
	for (; b < B; b++) {
		const float *xb = x + (size_t)b * I;
		float *ob = out + (size_t)b * O;
		o = o0;
		for (; o + 8 <= o1; o += 8) {
			k1x8(xb, I, w + (size_t)o * I, I, r);
			for (int k = 0; k < 8; k++)
				put(ob + o + k, r[k], bias ? bias + o + k :
				    NULL, acc);
		}
		for (; o + 4 <= o1; o += 4) {
			k1x4(xb, I, w + (size_t)o * I, r);
			for (int k = 0; k < 4; k++)
				put(ob + o + k, r[k], bias ? bias + o + k :
				    NULL, acc);
		}
		for (; o < o1; o++)
			put(ob + o, k1x1(xb, I, w + (size_t)o * I),
			    bias ? bias + o : NULL, acc);
	}
}

/*
 * Attention of query heads h0..h1 of one sequence over its keys, which lie
 * in up to two runs: the prefix a fork shares with its prompt's other
 * samples, then its own (g = 0, 1; k[g] and v[g] (L[g], KV)).  The keys are
 * read a block of eight rows at a time, every head taking its scores from
 * the block while it is in cache, and the values row by row, so each run
 * is one pass in address order.  A key's score is summed as the matrix
 * products sum (eight lanes, hsum's tree), eight keys in one reduction,
 * and comes out the same whichever run or block it is in; then a softmax
 * per head (vmath), and the values weighted by it, summed over the keys in
 * order and normalised at the end.
 *
 *   q (H*hd), sc (H, L[0] + L[1]) scratch, out (H*hd)
 */
AI void
attend_body(const float *q, const float *const k[2],
    const float *const v[2], const int L[2], int KV, int hd, int grp, int h0,
    int h1, float scale, float *sc, float *out)
{
	int i8 = hd & ~7, n = L[0] + L[1];
	float r[8];

	for (int g = 0, j0 = 0; g < 2; j0 += L[g], g++) {
		int j = 0;
		for (; j + 8 <= L[g]; j += 8)
			for (int h = h0; h < h1; h++) {
				const float *qh = q + (size_t)h * hd;
				const float *k0 = k[g] + (size_t)j * KV +
				    (size_t)(h / grp) * hd;
				k1x8(qh, hd, k0, KV, r);
				for (int t = 0; t < 8; t++)
					sc[(size_t)(h - h0) * n + j0 + j + t] =
					    r[t] * scale;
			}
		for (; j < L[g]; j++)
			for (int h = h0; h < h1; h++) {
				const float *qh = q + (size_t)h * hd;
				const float *kj = k[g] + (size_t)j * KV +
				    (size_t)(h / grp) * hd;
				v8 a = { 0 };
				for (int i = 0; i < i8; i += 8)
					a += load8(qh + i) * load8(kj + i);
				sc[(size_t)(h - h0) * n + j0 + j] =
				    hsum(&a, qh, kj, i8, hd) * scale;
			}
	}

	float inv[h1 - h0];
	for (int h = h0; h < h1; h++) {
		float *sh = sc + (size_t)(h - h0) * n;
		inv[h - h0] = (float)(1 / vmath_exp_sum(sh, sh,
		    vmath_max(sh, n), n));
	}

	float *o = out + (size_t)h0 * hd;
	memset(o, 0, (size_t)(h1 - h0) * hd * sizeof(float));
	for (int g = 0, j0 = 0; g < 2; j0 += L[g], g++)
		for (int j = 0; j < L[g]; j++) {
			const float *vj = v[g] + (size_t)j * KV;
			for (int h = h0; h < h1; h++) {
				const float *vh = vj + (size_t)(h / grp) * hd;
				float *oh = out + (size_t)h * hd;
				v8 w = { 0 };
				w += sc[(size_t)(h - h0) * n + j0 + j];
				for (int i = 0; i < i8; i += 8) {
					v8 acc = load8(oh + i) +
					    w * load8(vh + i);
					memcpy(oh + i, &acc, sizeof acc);
				}
				for (int i = i8; i < hd; i++)
					oh[i] += w[0] * vh[i];
			}
		}
	for (int h = h0; h < h1; h++)
		for (int i = 0; i < hd; i++)
			out[(size_t)h * hd + i] *= inv[h - h0];
}

typedef void attend_fn(const float *, const float *const[2],
    const float *const[2], const int[2], int, int, int, int, int, float,
    float *, float *);

__attribute__((target("avx2,fma"))) static void
attend_avx2(const float *q, const float *const k[2], const float *const v[2],
    const int L[2], int KV, int hd, int grp, int h0, int h1, float scale,
    float *sc, float *out)
{
	attend_body(q, k, v, L, KV, hd, grp, h0, h1, scale, sc, out);
}

static void
attend_generic(const float *q, const float *const k[2],
    const float *const v[2], const int L[2], int KV, int hd, int grp, int h0,
    int h1, float scale, float *sc, float *out)
{
	attend_body(q, k, v, L, KV, hd, grp, h0, h1, scale, sc, out);
}

typedef void chunk_fn(float *, const float *, const float *, const float *,
    int, int, int, int, int, int);

/* The same code twice: once for any x86-64, once with AVX2 and FMA. */
__attribute__((target("avx2,fma"))) static void
chunk_avx2(float *out, const float *x, const float *w, const float *bias,
    int B, int I, int O, int acc, int o0, int o1)
{
	chunk_body(out, x, w, bias, B, I, O, acc, o0, o1);
}

static void
chunk_generic(float *out, const float *x, const float *w, const float *bias,
    int B, int I, int O, int acc, int o0, int o1)
{
	chunk_body(out, x, w, bias, B, I, O, acc, o0, o1);
}

/* One product of a batch of matvec_jobs: out (B,O) = x w^T + bias. */
struct mv_job {
	float *out;
	const float *w, *bias;
	int O;
};

/*
 * Products that share their input x (B,I), as q, k and v do: chunks of
 * 24 outputs of all of them across the threads of the step's team (or
 * all in this thread outside one; see sample_step).  Which thread
 * computes an output changes nothing in how it is computed.
 */
static void
matvec_jobs(const struct sample_step *s, const float *x, int B, int I,
    int acc, const struct mv_job *jobs, int njobs)
{
	chunk_fn *f = s->avx2 ? chunk_avx2 : chunk_generic;
	int nchunk = 0, first[4];

	for (int j = 0; j < njobs; j++) {
		first[j] = nchunk;
		nchunk += (jobs[j].O + 23) / 24;
	}
#pragma omp for schedule(static)
	for (int k = 0; k < nchunk; k++) {
		int j = njobs - 1;
		while (k < first[j])
			j--;
		const struct mv_job *jb = &jobs[j];
		int o0 = (k - first[j]) * 24;
		int o1 = o0 + 24 < jb->O ? o0 + 24 : jb->O;
		f(jb->out, x, jb->w, jb->bias, B, I, jb->O, acc, o0, o1);
	}
}

static void
matvec(const struct sample_step *s, float *out, const float *x,
    const float *w, const float *bias, int B, int I, int O, int acc)
{
	struct mv_job j = { out, w, bias, O };
	matvec_jobs(s, x, B, I, acc, &j, 1);
}

/* ------------------------------------------------------------------------ */

void
sample_step(struct sample_step *s, struct kv_cache **kv, int B,
    const int *tokens, float *logits)
{
	struct model *m = s->m;
	const struct model_config *c = &m->cfg;
	int C = c->dim, Q = model_q_dim(c), KV = model_kv_dim(c);
	int F = c->hidden_dim, hd = c->head_dim, H = c->n_heads;
	int grp = H / c->n_kv_heads, V = c->vocab_size, maxlen = 0;
	float scale = (float)(1 / sqrt((float)hd));

	if (B > s->maxB)
		errx(1, "sample_step: %d sequences, room for %d", B, s->maxB);
	for (int b = 0; b < B; b++) {
		if (tokens[b] < 0 || tokens[b] >= V)
			errx(EXIT_DATA, "token %d is outside the vocabulary "
			    "(0..%d)", tokens[b], V - 1);
		if (kv[b]->len + 1 > kv[b]->cap)
			errx(EXIT_DATA, "sample_step: KV cache full (%d "
			    "positions)", kv[b]->cap);
		if (kv[b]->len + 1 > maxlen)
			maxlen = kv[b]->len + 1;
		memcpy(s->x + (size_t)b * C, s->embed + (size_t)tokens[b] * C,
		    C * sizeof(float));
		s->pos[b] = kv[b]->len;
	}
	model_rope_table(s->cs, s->pos, s->freq, B, hd);
	if (maxlen > s->scap) {
		s->scap = maxlen;
		s->scores = xreallocarray(s->scores, (size_t)s->nth *
		    c->n_heads * s->scap, sizeof(float));
	}

	/*
	 * One team of threads for the whole step: the products and the
	 * attention share out their work, the small steps between them run
	 * in one thread (single), and the threads wait at a barrier there
	 * instead of being woken for every product.  A step too small to
	 * pay for even that (a tiny model, one sequence) runs in this thread.
	 */
	int team = s->nth > 1 && (size_t)B * s->macs >= 262144;
	attend_fn *af = s->avx2 ? attend_avx2 : attend_generic;
	int parts = B < s->nth ? (s->nth + B - 1) / B : 1;
	if (parts > H)
		parts = H;

#pragma omp parallel if (team)
	{
	for (int l = 0; l < c->n_layers; l++) {
		const struct layer_p *p = &s->L[l];
		struct mv_job qkv[3] = { { s->q, p->wq, p->bq, Q },
		    { s->k, p->wk, p->bk, KV }, { s->v, p->wv, p->bv, KV } };
		struct mv_job gu[2] = { { s->g, p->wg, NULL, F },
		    { s->u, p->wu, NULL, F } };

#pragma omp single
		model_rmsnorm(s->xb, s->x, p->ln1, B, C, c->norm_eps);
		matvec_jobs(s, s->xb, B, C, 0, qkv, 3);
#pragma omp single
		{
			model_rope(s->q, s->cs, B, H, hd);
			model_rope(s->k, s->cs, B, c->n_kv_heads, hd);
			for (int b = 0; b < B; b++) {
				struct kv_cache *cb = kv[b];
				size_t at = ((size_t)l * (cb->cap - cb->off) +
				    cb->len - cb->off) * KV;
				memcpy(cb->k + at, s->k + (size_t)b * KV,
				    KV * sizeof(float));
				memcpy(cb->v + at, s->v + (size_t)b * KV,
				    KV * sizeof(float));
			}
		}

		/* Attention: a sequence per iteration, or a share of its
		 * heads when there are fewer sequences than threads. */
#pragma omp for schedule(dynamic, 1)
		for (int bp = 0; bp < B * parts; bp++) {
			int b = bp / parts, part = bp % parts, t = 0;
			int h0 = H * part / parts, h1 = H * (part + 1) / parts;
#ifdef _OPENMP
			t = omp_get_thread_num();
#endif
			const struct kv_cache *cb = kv[b], *cp = cb->base;
			size_t own = (size_t)l * (cb->cap - cb->off) * KV;
			size_t pre = cp ? (size_t)l * cp->cap * KV : 0;
			const float *kk[2] = { cp ? cp->k + pre : NULL,
			    cb->k + own };
			const float *vv[2] = { cp ? cp->v + pre : NULL,
			    cb->v + own };
			int L2[2] = { cb->off, cb->len + 1 - cb->off };
			af(s->q + (size_t)b * Q, kk, vv, L2, KV, hd, grp, h0,
			    h1, scale, s->scores + (size_t)t * H * s->scap,
			    s->att + (size_t)b * Q);
		}
		matvec(s, s->x, s->att, p->wo, NULL, B, Q, C, 1);

#pragma omp single
		model_rmsnorm(s->xb, s->x, p->ln2, B, C, c->norm_eps);
		matvec_jobs(s, s->xb, B, C, 0, gu, 2);
#pragma omp single
		vmath_silu_mul(s->g, s->g, s->u, (size_t)B * F);
		matvec(s, s->x, s->g, p->wd, NULL, B, F, C, 1);
	}
#pragma omp single
	{
		for (int b = 0; b < B; b++)
			kv[b]->len++;
		model_rmsnorm(s->xb, s->x, s->norm, B, C, c->norm_eps);
	}
	matvec(s, logits, s->xb, s->out, NULL, B, C, V, 0);
	}
}
