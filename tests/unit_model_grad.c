/*
 * unit_model_grad.c: finite-difference gradient checks in double
 * precision.  The network's arithmetic (lib/model/model_impl.h) is compiled here
 * with REAL double, so central differences with steps 1e-5 and 5e-6,
 * extrapolated (Richardson), are accurate to
 * about 1e-10 and any backward formula that is wrong shows up plainly.
 *
 * Each operation is checked alone (matmul with bias, rmsnorm, rope,
 * grouped-query attention over two packed sequences, swiglu, log-softmax
 * of target tokens, embedding), then the loss of whole tiny models with
 * respect to every parameter: GQA, tied and untied lm_head, Qwen2 biases,
 * llama3 rope scaling, a classification (reward) head, and Qwen3's
 * per-head q/k RMSNorms (through which q_proj's and k_proj's gradients
 * flow too) with and without its q/k/v/o biases, and Mistral's sliding
 * window (2 positions, shorter than the packed sequences of 5 and 3)
 * through every layer of a whole model.  Some of the models run again
 * with the classifier in pieces of 3 rows and recomputing each layer's
 * activations in the backward pass (test_model_ways).
 *
 * The loss of an operation with output y is sum(y * R) for a fixed random
 * R, whose gradient with respect to y is R: the backward pass must turn R
 * into the gradients the differences measure.
 */
#include <stdio.h>

/* Query blocks of 2 rows, so the blocked attention paths are exercised. */
#define ATT_ROWS 2
#include "model_f64.h"

static int failures;
static uint64_t rng = 42;

static double
randn(void)
{
	return model_rng_normal(&rng);
}

static double *
randv(size_t n, double sd)
{
	double *p = xmalloc(n * sizeof(double));
	for (size_t i = 0; i < n; i++)
		p[i] = sd * randn();
	return p;
}

static double
dot(const double *a, const double *b, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

/*
 * Compare the analytic gradient g (n) of loss() with respect to x (n)
 * against central differences; the error is measured against the size of
 * the gradient, so tiny components are not over-weighted.
 */
static void
fdcheck(const char *what, double *x, const double *g, size_t n,
    double (*loss)(void *), void *ctx)
{
	double h = 1e-5, worst = 0, scale = 1e-12;

	for (size_t i = 0; i < n; i++)
		if (fabs(g[i]) > scale)
			scale = fabs(g[i]);
	for (size_t i = 0; i < n; i++) {
		double x0 = x[i], d[2], num, e;

		/* Richardson: central differences at h and h/2 combined so
		 * the h^2 term cancels; softcapped models bend enough for
		 * it to reach 1e-6 otherwise */
		for (int k = 0; k < 2; k++) {
			double hk = k ? h / 2 : h, lp, lm;

			x[i] = x0 + hk;
			lp = loss(ctx);
			x[i] = x0 - hk;
			lm = loss(ctx);
			d[k] = (lp - lm) / (2 * hk);
		}
		x[i] = x0;
		num = (4 * d[1] - d[0]) / 3;
		e = fabs(num - g[i]) / scale;
		if (e > worst)
			worst = e;
	}
	if (worst > 1e-7) {
		fprintf(stderr, "FAIL %s: gradient error %.3g (of max |g| "
		    "%.3g)\n", what, worst, scale);
		failures++;
	} else
		printf("ok %-40s %zu values, error %.2g\n", what, n, worst);
}

/* ------------------------------------------------------------------------ */
/* matmul with bias */

enum { MN = 5, MI = 7, MO = 6 };
static struct { double *x, *w, *b, *y, *R; } mm;

static double
mm_loss(void *ctx)
{
	matmul_forward(mm.y, mm.x, mm.w, mm.b, MN, MI, MO, 0);
	return dot(mm.y, mm.R, MN * MO);
}

static void
test_matmul(void)
{
	double *dx = xcalloc(MN * MI, 8), *dw = xcalloc(MO * MI, 8);
	double *db = xcalloc(MO, 8);

	mm.x = randv(MN * MI, 1);
	mm.w = randv(MO * MI, 1);
	mm.b = randv(MO, 1);
	mm.y = xmalloc(MN * MO * 8);
	mm.R = randv(MN * MO, 1);
	matmul_backward(dx, dw, db, mm.R, mm.x, mm.w, MN, MI, MO, 0);
	fdcheck("matmul d/dx", mm.x, dx, MN * MI, mm_loss, NULL);
	fdcheck("matmul d/dw", mm.w, dw, MO * MI, mm_loss, NULL);
	fdcheck("matmul d/dbias", mm.b, db, MO, mm_loss, NULL);
	free(dx); free(dw); free(db);
	free(mm.x); free(mm.w); free(mm.b); free(mm.y); free(mm.R);
}

/* ------------------------------------------------------------------------ */
/* rmsnorm */

enum { RN = 4, RC = 9 };
static struct { double *x, *w, *y, *rstd, *R, wofs; } rn;

static double
rn_loss(void *ctx)
{
	rmsnorm_forward(rn.y, rn.rstd, rn.x, rn.w, rn.wofs, RN, RC, 1e-5);
	return dot(rn.y, rn.R, RN * RC);
}

static void
test_rmsnorm(double wofs)
{
	double *dx = xcalloc(RN * RC, 8), *dw = xcalloc(RC, 8);
	char what[64];

	rn.x = randv(RN * RC, 1);
	rn.w = randv(RC, 1);
	rn.y = xmalloc(RN * RC * 8);
	rn.rstd = xmalloc(RN * 8);
	rn.R = randv(RN * RC, 1);
	rn_loss(NULL);
	rn.wofs = wofs;
	rn_loss(NULL);
	rmsnorm_backward(dx, dw, rn.R, rn.x, rn.w, wofs, rn.rstd, RN, RC);
	snprintf(what, sizeof what, "rmsnorm (w + %g) d/dx", wofs);
	fdcheck(what, rn.x, dx, RN * RC, rn_loss, NULL);
	snprintf(what, sizeof what, "rmsnorm (w + %g) d/dw", wofs);
	fdcheck(what, rn.w, dw, RC, rn_loss, NULL);
	free(dx); free(dw);
	free(rn.x); free(rn.w); free(rn.y); free(rn.rstd); free(rn.R);
}

/* ------------------------------------------------------------------------ */
/* rope: linear in x; the backward is the inverse rotation */

enum { PN = 5, PH = 3, PD = 8 };
static struct { double *x, *y, *cs, *R; } rp;

static double
rp_loss(void *ctx)
{
	memcpy(rp.y, rp.x, PN * PH * PD * 8);
	rope_apply(rp.y, rp.cs, PN, PH, PD, 1);
	return dot(rp.y, rp.R, PN * PH * PD);
}

static void
test_rope(void)
{
	struct model_config c = { .head_dim = PD, .rope_theta = 100,
	    .rope_scaling = ROPE_LLAMA3, .rope_factor = 4,
	    .rope_low_freq_factor = 1, .rope_high_freq_factor = 4,
	    .rope_orig_max_pos = 16 };
	int pos[PN] = { 0, 1, 2, 7, 30 };
	double freq[PD / 2], *d = xmalloc(PN * PH * PD * 8);

	rope_freqs(freq, &c);
	rp.x = randv(PN * PH * PD, 1);
	rp.y = xmalloc(PN * PH * PD * 8);
	rp.cs = xmalloc(PN * PD * 8);
	rp.R = randv(PN * PH * PD, 1);
	rope_table(rp.cs, pos, freq, PN, PD);
	memcpy(d, rp.R, PN * PH * PD * 8);
	rope_apply(d, rp.cs, PN, PH, PD, -1);
	fdcheck("rope d/dx", rp.x, d, PN * PH * PD, rp_loss, NULL);
	free(d); free(rp.x); free(rp.y); free(rp.cs); free(rp.R);
}

/* ------------------------------------------------------------------------ */
/* attention: two packed sequences (5 and 3 tokens), 4 query heads, 2 kv */

enum { AH = 4, AKV = 2, AD = 3, AN = 8 };
static struct {
	double *q, *k, *v, *y, *att, *row, *R;
	struct attn_seqs as;
	int qoff[2], nq[2], p0[2];
	size_t aoff[2];
	const double *kb[2], *vb[2];
	double scale;
	int window;
	double cap;
} at;

static double
at_loss(void *ctx)
{
	for (int s = 0; s < 2; s++) {
		at.kb[s] = at.k + (size_t)at.qoff[s] * AKV * AD;
		at.vb[s] = at.v + (size_t)at.qoff[s] * AKV * AD;
	}
	attention_forward(at.y, at.att, at.row, 8, at.q, &at.as, AH, AKV, AD,
	    at.scale, at.window, at.cap);
	return dot(at.y, at.R, AN * AH * AD);
}

static void
test_attention(double scale, int window, double cap)
{
	size_t Q = AN * AH * AD, KV = AN * AKV * AD;
	double *dq = xmalloc(Q * 8), *dk = xmalloc(KV * 8);
	double *dv = xmalloc(KV * 8);
	char what[96];

	at.qoff[0] = 0; at.nq[0] = 5;
	at.qoff[1] = 5; at.nq[1] = 3;
	at.p0[0] = at.p0[1] = 0;
	at.aoff[0] = 0;
	at.aoff[1] = attn_probs_size(AH, 5, 0);
	at.as = (struct attn_seqs){ 2, at.qoff, at.nq, at.p0, at.aoff, at.kb,
	    at.vb };
	at.q = randv(Q, 1);
	at.k = randv(KV, 1);
	at.v = randv(KV, 1);
	at.y = xmalloc(Q * 8);
	at.att = xmalloc((at.aoff[1] + attn_probs_size(AH, 3, 0)) * 8);
	at.row = xmalloc((size_t)omp_get_max_threads() * 2 * ATT_ROWS * 8 * 8);
	at.R = randv(Q, 1);
	at.scale = scale;
	at.window = window;
	at.cap = cap;
	at_loss(NULL);
	attention_backward(dq, dk, dv, at.R, at.q, at.k, at.v, at.att, at.row,
	    8, &at.as, AH, AKV, AD, scale, window, cap);
	snprintf(what, sizeof what, "attention (GQA, window %d, softcap %g) "
	    "d/dq", window, cap);
	fdcheck(what, at.q, dq, Q, at_loss, NULL);
	snprintf(what, sizeof what, "attention (GQA, window %d, softcap %g) "
	    "d/dk", window, cap);
	fdcheck(what, at.k, dk, KV, at_loss, NULL);
	snprintf(what, sizeof what, "attention (GQA, window %d, softcap %g) "
	    "d/dv", window, cap);
	fdcheck(what, at.v, dv, KV, at_loss, NULL);
	free(dq); free(dk); free(dv);
	free(at.q); free(at.k); free(at.v); free(at.y); free(at.att);
	free(at.row); free(at.R);
}

/* ------------------------------------------------------------------------ */
/* swiglu */

enum { SN = 12 };
static struct { double *g, *u, *h, *R; } sw;

static double
sw_loss(void *ctx)
{
	swiglu_forward(sw.h, sw.g, sw.u, SN);
	return dot(sw.h, sw.R, SN);
}

static void
test_swiglu(void)
{
	double *dg = xmalloc(SN * 8), *du = xmalloc(SN * 8);

	sw.g = randv(SN, 2);
	sw.u = randv(SN, 1);
	sw.h = xmalloc(SN * 8);
	sw.R = randv(SN, 1);
	swiglu_backward(dg, du, sw.R, sw.g, sw.u, SN);
	fdcheck("swiglu d/dgate", sw.g, dg, SN, sw_loss, NULL);
	fdcheck("swiglu d/dup", sw.u, du, SN, sw_loss, NULL);
	free(dg); free(du); free(sw.g); free(sw.u); free(sw.h); free(sw.R);
}

/* gelu_pytorch_tanh(gate) * up, gates out to where the tanh saturates */

static double
gg_loss(void *ctx)
{
	geglu_forward(sw.h, sw.g, sw.u, SN);
	return dot(sw.h, sw.R, SN);
}

static void
test_geglu(void)
{
	double *dg = xmalloc(SN * 8), *du = xmalloc(SN * 8);

	sw.g = randv(SN, 2);
	sw.u = randv(SN, 1);
	sw.h = xmalloc(SN * 8);
	sw.R = randv(SN, 1);
	geglu_backward(dg, du, sw.R, sw.g, sw.u, SN);
	fdcheck("geglu (gelu tanh) d/dgate", sw.g, dg, SN, gg_loss, NULL);
	fdcheck("geglu (gelu tanh) d/dup", sw.u, du, SN, gg_loss, NULL);
	free(dg); free(du); free(sw.g); free(sw.u); free(sw.h); free(sw.R);
}

/* ------------------------------------------------------------------------ */
/* log-softmax of target tokens, including a skipped position and logits
 * large enough that a naive exp would overflow in float */

enum { LN = 4, LV = 6 };
static struct { double *l, *c, *lse, *lp, *R, cap; int tg[LN]; } ls;

/* With cap > 0 the logits are softcapped first (Gemma 2's final one). */
static double
ls_loss(void *ctx)
{
	memcpy(ls.c, ls.l, LN * LV * 8);
	if (ls.cap > 0)
		cpu_softcap(NULL, ls.c, ls.cap, LN * LV);
	logprob_forward(ls.lp, ls.lse, ls.c, ls.tg, LN, LV);
	return dot(ls.lp, ls.R, LN);
}

static void
test_logprob(double cap)
{
	double *d = xmalloc(LN * LV * 8);
	char what[64];

	ls.l = randv(LN * LV, 3);
	ls.l[2] += 200;
	if (cap > 0)	/* within reach of the cap, not saturated */
		ls.l[2] -= 200 - 2 * cap;
	ls.c = xmalloc(LN * LV * 8);
	ls.cap = cap;
	ls.lse = xmalloc(LN * 8);
	ls.lp = xmalloc(LN * 8);
	ls.R = randv(LN, 1);
	ls.tg[0] = 3; ls.tg[1] = -1; ls.tg[2] = 0; ls.tg[3] = 5;
	ls_loss(NULL);
	memcpy(d, ls.c, LN * LV * 8);
	logprob_backward(d, ls.lse, ls.R, ls.tg, LN, LV, cap);
	snprintf(what, sizeof what, "logprob (softcap %g) d/dlogits", cap);
	fdcheck(what, ls.l, d, LN * LV, ls_loss, NULL);
	free(d); free(ls.l); free(ls.c); free(ls.lse); free(ls.lp); free(ls.R);
}

/* ------------------------------------------------------------------------ */
/* The whole model */

static struct {
	struct net net;
	struct model_batch b;
	double *lp, *dlp, *dsc;
	int N;
	const uint64_t *keys;	/* LoRA dropout */
} wm;

/*
 * How test_model runs the network: the classifier in pieces of head_rows
 * rows (0: the default, one piece for these vocabularies; 3: pieces of 3
 * and 5 of the 8 tokens), and with recompute, each layer's activations
 * made again in the backward pass from its input.
 */
static int head_rows, recompute;

static void test_model(const char *what, struct model_config c);

/*
 * c as it is, then in pieces and recomputing (each alone too with
 * each_alone).
 */
static void
test_model_ways(const char *what, struct model_config c, int each_alone)
{
	char w[160];

	test_model(what, c);
	for (int k = each_alone ? 1 : 3; k <= 3; k++) {
		head_rows = k & 1 ? 3 : 0;
		recompute = (k & 2) != 0;
		snprintf(w, sizeof(w), "%s%s%s", what, head_rows ?
		    " pieces of 3" : "", recompute ? " recompute" : "");
		test_model(w, c);
	}
	head_rows = recompute = 0;
}

static double
model_loss(void *ctx)
{
	const struct model_config *c = &wm.net.cfg;
	double s = 0;

	wm.net.drop_keys = wm.keys;
	net_forward(&wm.net, &wm.b, wm.lp);
	if (c->lm_head)
		s += dot(wm.lp, wm.dlp, wm.N);
	if (c->num_labels > 0)
		s += dot(wm.net.a.scores, wm.dsc, (size_t)wm.N * c->num_labels);
	return s;
}

static uint64_t test_drop_seed;	/* LoRA dropout of test_model's passes */

static void
test_model(const char *what, struct model_config c)
{
	int nt, len[2] = { 5, 3 }, tok[8], tg[8];
	uint64_t dkeys[8];
	struct model_tensor *t;
	size_t np;
	double *p, *g;
	char name[160];

	t = model_tensors(&c, &nt);
	np = t[nt - 1].offset + t[nt - 1].n;
	p = xmalloc(np * 8);
	g = xcalloc(np, 8);
	for (int i = 0; i < nt; i++)
		for (size_t j = 0; j < t[i].n; j++)
			p[t[i].offset + j] = (t[i].is_norm ? 1 : 0) +
			    (t[i].is_norm || t[i].is_bias ? 0.2 : 0.4) *
			    randn();
	net_init(&wm.net, &c, &cpu_ops, t, nt, p, g);
	wm.net.head_rows = head_rows;
	wm.net.recompute = recompute;
	for (int i = 0; i < 8; i++) {
		tok[i] = (i * 5 + 1) % c.vocab_size;
		tg[i] = (i * 3 + 2) % c.vocab_size;
	}
	tg[4] = -1;
	wm.b = (struct model_batch){ 2, len, tok, tg };
	for (int i = 0; i < 8; i++)
		dkeys[i] = test_drop_seed * 1000 + i;
	wm.keys = test_drop_seed ? dkeys : NULL;
	wm.N = 8;
	wm.lp = xmalloc(8 * 8);
	wm.dlp = randv(8, 1);
	wm.dsc = c.num_labels > 0 ? randv(8 * (size_t)c.num_labels, 1) : NULL;
	model_loss(NULL);
	if (head_rows > 0 && c.lm_head &&
	    head_npieces(wm.N, wm.net.a.caprows) < 2) {
		fprintf(stderr, "FAIL %s the classifier in one piece\n", what);
		failures++;
	}
	net_backward(&wm.net, wm.dlp, wm.dsc);
	for (int i = 0; i < nt; i++) {
		snprintf(name, sizeof(name), "%s %s", what, t[i].name);
		fdcheck(name, p + t[i].offset, g + t[i].offset, t[i].n,
		    model_loss, NULL);
	}
	net_free(&wm.net);
	free(wm.lp); free(wm.dlp); free(wm.dsc);
	free(p); free(g); free(t);
}

/* ------------------------------------------------------------------------ */
/*
 * Frozen tensors: the CPU backend with its backward operations counted.
 * With part of the model frozen, the trainable tensors' gradients must be
 * the very numbers of the fully trainable model (the input gradients flow
 * through the frozen ones unchanged), and no weight-gradient work may be
 * done for a frozen tensor.
 */
static int ndw, ndx;

static void
count_matmul_backward(void *ctx, double *dx, double *dw, double *db,
    const double *dout, const double *x, const double *w, int N, int I,
    int O, int acc)
{
	ndw += dw != NULL;
	ndx += dx != NULL;
	cpu_ops.matmul_backward(ctx, dx, dw, db, dout, x, w, N, I, O, acc);
}

static void
count_rmsnorm_backward(void *ctx, double *dx, double *dw, const double *dout,
    const double *x, const double *w, double wofs, const double *rstd, int N,
    int C)
{
	ndw += dw != NULL;
	cpu_ops.rmsnorm_backward(ctx, dx, dw, dout, x, w, wofs, rstd, N, C);
}

static void
count_embed_backward(void *ctx, double *dE, const double *dx, const int *tok,
    int N, int C)
{
	ndw++;
	cpu_ops.embed_backward(ctx, dE, dx, tok, N, C);
}

/* Frozen: the embedding, layer 0 and lm_head; layer 1 and the norm train.
 * With adapters, as train-step --lora-rank trains: the base frozen, the
 * adapters alone trainable. */
static int frozen_base;

static int
frozen(const struct model_tensor *t)
{
	if (frozen_base)
		return !t->lora;
	return t->layer == 0 || t->role == ROLE_EMBED ||
	    t->role == ROLE_LM_HEAD;
}

static void
test_frozen(struct model_config c)
{
	struct backend_f64 be = cpu_ops;
	int nt, len[2] = { 5, 3 }, tok[8], tg[8], want_dw = 0, full_dx;
	struct model_tensor *t = model_tensors(&c, &nt);
	size_t np = t[nt - 1].offset + t[nt - 1].n;
	double *p = xmalloc(np * 8), *g0 = xcalloc(np, 8), *g1 = xcalloc(np, 8);
	double *dlp = randv(8, 1), worst = 0;
	uint64_t keys[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };	/* LoRA dropout */
	struct model_batch b = { 2, len, tok, tg };
	struct net net;
	int bad = 0;

	be.matmul_backward = count_matmul_backward;
	be.rmsnorm_backward = count_rmsnorm_backward;
	be.embed_backward = count_embed_backward;
	for (int i = 0; i < nt; i++)
		for (size_t j = 0; j < t[i].n; j++)
			p[t[i].offset + j] = (t[i].is_norm ? 1 : 0) +
			    (t[i].is_norm || t[i].is_bias ? 0.2 : 0.4) * randn();
	for (int i = 0; i < 8; i++) {
		tok[i] = (i * 5 + 1) % c.vocab_size;
		tg[i] = (i * 3 + 2) % c.vocab_size;
	}
	/* everything trainable */
	ndw = ndx = 0;
	net_init(&net, &c, &be, t, nt, p, g0);
	net.drop_keys = keys;
	net_forward(&net, &b, NULL);
	net_backward(&net, dlp, NULL);
	net_free(&net);
	full_dx = ndx;
	/* frozen */
	for (int i = 0; i < nt; i++) {
		t[i].trainable = !frozen(&t[i]);
		/* a weight gradient per trainable tensor but biases, which
		 * come with their matrix's product */
		want_dw += t[i].trainable && !t[i].is_bias;
	}
	ndw = ndx = 0;
	net_init(&net, &c, &be, t, nt, p, g1);
	net.drop_keys = keys;
	net_forward(&net, &b, NULL);
	net_backward(&net, dlp, NULL);
	net_free(&net);
	for (int i = 0; i < nt; i++)
		for (size_t j = 0; j < t[i].n; j++) {
			size_t k = t[i].offset + j;
			if (t[i].trainable && g1[k] != g0[k]) {
				double e = fabs(g1[k] - g0[k]);
				worst = e > worst ? e : worst;
				bad++;
			}
			if (!t[i].trainable && g1[k] != 0)
				bad++;
		}
	if (bad || ndw != want_dw || ndx != full_dx) {
		fprintf(stderr, "FAIL frozen: %d gradients differ (worst %.3g), "
		    "%d weight-gradient products (want %d), %d input "
		    "gradients (want %d)\n", bad, worst, ndw, want_dw, ndx,
		    full_dx);
		failures++;
	} else
		printf("ok frozen embed, layer 0, lm_head: same gradients, "
		    "%d weight-gradient products\n", ndw);
	free(p); free(g0); free(g1); free(dlp); free(t);
}

/* ------------------------------------------------------------------------ */
/*
 * LoRA's on-the-fly path against its fold: the adapted model's
 * log-probabilities equal those of the base with W + (alpha/r) B A, and
 * with the adapters switched off those of the base; with dropout they
 * differ (the masks do something).
 */
static void
test_lora_fold(struct model_config c)
{
	struct model_config cb = c;
	int nt, nb, len[2] = { 5, 3 }, tok[8], tg[8];
	struct model_tensor *t, *tb;
	struct net a, b;
	double *p, *pb, lpa[8], lpb[8], lpo[8], worst = 0, worst_off = 0;
	double s = c.lora.alpha / c.lora.rank, moved = 0;
	struct model_batch mb = { 2, len, tok, tg };

	cb.lora.rank = 0;
	t = model_tensors(&c, &nt);
	tb = model_tensors(&cb, &nb);
	p = randv(t[nt - 1].offset + t[nt - 1].n, 0.4);
	pb = xmalloc((tb[nb - 1].offset + tb[nb - 1].n) * 8);
	for (int i = 0; i < 8; i++) {
		tok[i] = (i * 5 + 1) % c.vocab_size;
		tg[i] = (i * 3 + 2) % c.vocab_size;
	}
	net_init(&a, &c, &cpu_ops, t, nt, p, NULL);
	net_forward(&a, &mb, lpa);
	a.lora_off = 1;
	net_forward(&a, &mb, lpo);
	/* the base: every tensor by name, the targets folded */
	for (int i = 0, k = 0; i < nt; i++) {
		if (t[i].lora)
			continue;
		memcpy(pb + tb[k].offset, p + t[i].offset, t[i].n * 8);
		k++;
	}
	net_init(&b, &cb, &cpu_ops, tb, nb, pb, NULL);
	net_forward(&b, &mb, lpb);
	for (int n = 0; n < 8; n++)
		worst_off = fmax(worst_off, fabs(lpo[n] - lpb[n]));
	for (int i = 0, k = 0; i < nt; i++) {
		if (t[i].lora) {
			if (t[i].lora == 2) {
				/* W (O,K) += s B (O,r) A (r,K) */
				const double *A = p + t[i - 1].offset;
				const double *B = p + t[i].offset;
				int O = t[i].shape[0], r = c.lora.rank;
				int K = t[i - 1].shape[1];
				double *W = NULL;
				for (int q = 0; q < nb; q++)
					if (tb[q].layer == t[i].layer &&
					    tb[q].role == t[i].role)
						W = pb + tb[q].offset;
				for (int o = 0; o < O; o++)
					for (int kk = 0; kk < K; kk++)
						for (int j = 0; j < r; j++)
							W[(size_t)o * K + kk] +=
							    s * B[o * r + j] *
							    A[j * K + kk];
			}
			continue;
		}
		k++;
	}
	net_forward(&b, &mb, lpb);
	for (int n = 0; n < 8; n++) {
		worst = fmax(worst, fabs(lpa[n] - lpb[n]));
		moved = fmax(moved, fabs(lpa[n] - lpo[n]));
	}
	if (worst > 1e-10 || worst_off > 1e-12 || moved < 1e-3) {
		fprintf(stderr, "FAIL lora fold: on the fly vs folded %g, "
		    "off vs base %g, adapters moved %g\n", worst, worst_off,
		    moved);
		failures++;
	}
	/* dropout changes the pass, the same keys the same way whatever
	 * the packing: the second sequence alone gets its rows' masks */
	net_free(&a);
	c.lora.dropout = 0.5;
	net_init(&a, &c, &cpu_ops, t, nt, p, NULL);
	uint64_t keys[8] = { 11, 12, 13, 14, 15, 16, 17, 18 };
	a.drop_keys = keys;
	net_forward(&a, &mb, lpo);
	struct model_batch m2 = { 1, len + 1, tok + 5, tg + 5 };
	a.drop_keys = keys + 5;
	net_forward(&a, &m2, lpb);
	worst = moved = 0;
	for (int n = 0; n < 8; n++)
		moved = fmax(moved, fabs(lpo[n] - lpa[n]));
	for (int n = 0; n < 3; n++)
		worst = fmax(worst, fabs(lpo[5 + n] - lpb[n]));
	if (worst > 1e-12 || moved < 1e-3) {
		fprintf(stderr, "FAIL lora dropout: repacked %g, vs none %g\n",
		    worst, moved);
		failures++;
	}
	net_free(&a);
	net_free(&b);
	free(p); free(pb); free(t); free(tb);
}

int
main(void)
{
	struct model_config c = {
		.arch = MODEL_LLAMA, .vocab_size = 11, .dim = 8,
		.n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 2,
		.hidden_dim = 12, .max_seq_len = 64, .norm_eps = 1e-5,
		.rope_theta = 10000, .lm_head = 1, .bos_id = -1, .pad_id = -1,
	};

	test_matmul();
	test_rmsnorm(0);
	test_rmsnorm(1);
	test_rope();
	test_attention(1 / sqrt(AD), 0, 0);
	test_attention(0.7, 3, 0);
	test_attention(0.9, 0, 1.5);	/* Gemma 2's attention softcap */
	test_attention(0.9, 3, 0.8);
	test_swiglu();
	test_geglu();
	test_logprob(0);
	test_logprob(2.5);		/* Gemma 2's final softcap */

	c.tie_embeddings = 1;
	test_model_ways("llama GQA tied:", c, 1);
	c.tie_embeddings = 0;
	c.head_dim = 4;		/* not dim / n_heads */
	c.n_kv_heads = 1;
	c.rope_theta = 50;
	c.rope_scaling = ROPE_LLAMA3;
	c.rope_factor = 8;
	c.rope_low_freq_factor = 1;
	c.rope_high_freq_factor = 4;
	c.rope_orig_max_pos = 16;
	test_model("llama untied llama3-rope:", c);
	c.arch = MODEL_QWEN2;
	c.qkv_bias = 1;
	c.rope_scaling = ROPE_NONE;
	c.n_kv_heads = 2;
	test_model("qwen2 bias untied:", c);
	c.tie_embeddings = 1;
	c.num_labels = 0;
	test_model("qwen2 bias tied:", c);
	c.lm_head = 0;
	c.tie_embeddings = 0;
	c.num_labels = 2;
	test_model_ways("qwen2 classifier:", c, 0);
	c.lm_head = 1;
	c.num_labels = 0;
	test_frozen(c);

	/* Qwen3: q/k norms over head_dim 6 (4 heads of 6 on a width of 8,
	 * not dim / heads), GQA */
	c.arch = MODEL_QWEN3;
	c.qkv_bias = 0;
	c.head_dim = 6;
	c.n_kv_heads = 2;
	c.tie_embeddings = 1;
	test_model("qwen3 qk-norm tied:", c);
	c.tie_embeddings = 0;
	c.qkv_bias = c.o_bias = 1;	/* attention_bias */
	c.n_kv_heads = 1;
	test_model_ways("qwen3 qk-norm attention_bias untied:", c, 0);
	c.lm_head = 0;
	c.num_labels = 1;
	test_model("qwen3 classifier:", c);
	c.lm_head = 1;
	c.num_labels = 0;
	test_frozen(c);

	/* Mistral: Llama's block, every layer's queries seeing their last
	 * two positions, so the sequence of 5 drops keys in both layers */
	c.arch = MODEL_MISTRAL;
	c.qkv_bias = c.o_bias = 0;
	c.head_dim = 2;
	c.n_kv_heads = 2;
	c.sliding_window = 2;
	test_model("mistral window 2 untied:", c);
	c.tie_embeddings = 1;
	c.sliding_window = 3;
	test_model("mistral window 3 tied:", c);
	c.tie_embeddings = 0;
	c.lm_head = 0;
	c.num_labels = 1;
	test_model("mistral classifier:", c);
	c.lm_head = 1;
	c.num_labels = 0;

	/* Gemma 2: (1 + w) norms, post-norms of the attention and MLP
	 * outputs, gelu tanh, scores scaled by query_pre_attn_scalar^-0.5
	 * and softcapped (small caps so the tanh bends), the final softcap,
	 * embeddings times sqrt(8); layer 0 slides over 3 positions, layer
	 * 1 sees all (4 layers: two of each) */
	c.arch = MODEL_GEMMA2;
	c.qkv_bias = c.o_bias = 0;
	c.head_dim = 6;
	c.n_kv_heads = 2;
	c.n_layers = 4;
	c.tie_embeddings = 1;
	c.query_pre_attn_scalar = 5;
	c.attn_softcap = 0.9;
	c.final_softcap = 1.7;
	c.sliding_window = 3;
	c.sliding_pattern = 2;
	test_model_ways("gemma2 tied:", c, 0);
	c.tie_embeddings = 0;
	c.qkv_bias = c.o_bias = 1;
	c.n_kv_heads = 1;
	c.n_layers = 2;
	test_model("gemma2 attention_bias untied:", c);
	test_frozen(c);

	/* Gemma 3 text: (1 + w) q/k norms, layers 0 and 1 sliding with
	 * their own rope base, layer 2 global with linear scaling; no
	 * attention softcap */
	c.arch = MODEL_GEMMA3;
	c.n_layers = 3;
	c.n_kv_heads = 2;
	c.attn_softcap = 0;
	c.final_softcap = 2.1;
	c.sliding_pattern = 3;
	c.rope_theta = 1000;
	c.rope_local_theta = 10;
	c.rope_scaling = ROPE_LINEAR;
	c.rope_factor = 4;
	test_model_ways("gemma3 qk-norm two ropes:", c, 0);
	test_frozen(c);

	/* LoRA on every target of Gemma 3 (q/k norms after q and k, two
	 * ropes), Gemma 2 (post-norms after o and down), Llama (rank 3,
	 * targets o, up alone), without and with dropout (the masks drawn
	 * again in the backward pass) */
	c.lora = (struct model_lora){ 2, 5, 0, (1u << LORA_NTARGET) - 1 };
	test_model("gemma3 lora all:", c);
	test_lora_fold(c);
	c.lora.dropout = 0.3;
	test_frozen(c);
	frozen_base = 1;
	test_frozen(c);
	frozen_base = 0;
	c.arch = MODEL_GEMMA2;
	c.n_layers = 2;
	c.rope_local_theta = 0;
	c.rope_scaling = ROPE_NONE;
	c.attn_softcap = 0.9;
	c.lora.dropout = 0;
	test_model("gemma2 lora all:", c);
	c = (struct model_config){
		.arch = MODEL_LLAMA, .vocab_size = 11, .dim = 8,
		.n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 2,
		.hidden_dim = 12, .max_seq_len = 64, .norm_eps = 1e-5,
		.rope_theta = 10000, .lm_head = 1, .bos_id = -1, .pad_id = -1,
		.tie_embeddings = 1,
		.lora = { 3, 1.5, 0.25, 1u << LORA_O | 1u << LORA_UP },
	};
	test_drop_seed = 99;
	test_model("llama lora o,up dropout:", c);
	c.lora.dropout = 0;
	test_lora_fold(c);
	test_drop_seed = 0;
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	return 0;
}
