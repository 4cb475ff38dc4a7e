/*
 * model_impl.h: the network, written once over the operations of
 * lib/backend/backend.h, for a floating-point type REAL.  Included by
 * lib/model/model.c with REAL float (the library), and by
 * tests/unit_model_grad.c with REAL double, where the CPU backend's
 * kernels are compiled for double too and finite differences check the
 * backward pass.  Everything here is static.
 *
 * Reading order: where each weight lives (by its role in the architecture
 * table, lib/model/arch.h); the activations a forward pass keeps; the
 * decoder block, forward and backward, the one copy of it; then the
 * network around it: net_forward and net_backward (training), and
 * net_infer, the cached pass of prefill (model_extend) and of decoding
 * steps (sample_step), whichever backend runs it.
 *
 * Shapes in comments: N tokens of the pass, C = dim, Q = n_heads *
 * head_dim, KV = n_kv_heads * head_dim, F = hidden_dim, V = vocab, hd =
 * head_dim.
 */
#ifndef REAL
#error "define REAL (float or double) before including model_impl.h"
#endif
#ifndef BACKEND
#define BACKEND backend
#endif

#include <err.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>
#undef I

#include "backend/backend.h"
#include "model/arch.h"
#include "model/model.h"
#include "util/util.h"

#ifndef ATT_ROWS
#define ATT_ROWS 64
#endif

/* ------------------------------------------------------------------------ */
/* Rotary frequencies, from the config: the model's, not a kernel's. */

/*
 * The frequencies (hd/2) of base theta, scaled or not: linear divides them
 * all by factor; llama3: long wavelengths are slowed
 * by factor, short ones kept, the band between interpolated smoothly.
 */
static void
rope_freqs_base(REAL *freq, const struct model_config *c, double theta,
    int scaled)
{
	int half = c->head_dim / 2;

	for (int j = 0; j < half; j++) {
		double f = 1.0 / pow(theta, 2.0 * j / c->head_dim);

		if (scaled && c->rope_scaling == ROPE_LINEAR)
			f = f / c->rope_factor;
		if (scaled && c->rope_scaling == ROPE_LLAMA3) {
			double lo_wl = c->rope_orig_max_pos /
			    c->rope_low_freq_factor;
			double hi_wl = c->rope_orig_max_pos /
			    c->rope_high_freq_factor;
			double wl = 2 * M_PI / f;

			if (wl > lo_wl)
				f = f / c->rope_factor;
			else if (wl >= hi_wl) {
				double s = (c->rope_orig_max_pos / wl -
				    c->rope_low_freq_factor) /
				    (c->rope_high_freq_factor -
				    c->rope_low_freq_factor);
				f = (1 - s) * f / c->rope_factor + s * f;
			}
		}
		freq[j] = f;
	}
}

/* The model's frequencies; rope_local_theta's, unscaled (Gemma 3). */
static void
rope_freqs(REAL *freq, const struct model_config *c)
{
	rope_freqs_base(freq, c, c->rope_theta, 1);
}

/* ------------------------------------------------------------------------ */
/*
 * The weights: each tensor of the layout (model_tensors) by its role.  The
 * one place weights are wired; a gradient set is wired the same way, its
 * frozen tensors NULL.
 */

struct layer_w {
	REAL *p[ROLE_NLAYER];	/* by enum arch_role; NULL: absent, or held
				 * in 16 bits */
	const uint16_t *h[ROLE_NLAYER];	/* a frozen matrix held in 16 bits
					 * (model_hold), of type dt[]; or NULL */
	enum dtype dt[ROLE_NLAYER];
	/* LoRA, by enum lora_target: A (r,in), B (out,r); NULL: none */
	REAL *lora_a[LORA_NTARGET], *lora_b[LORA_NTARGET];
	struct layer_attrs at;
};

struct weights {
	REAL *embed;		/* (V,C) */
	struct layer_w *layer;	/* (n_layers) */
	REAL *norm;		/* (C) */
	REAL *out;		/* (V,C): lm_head, or embed when tied */
	REAL *score;		/* (num_labels, C) or NULL */
	/* embed and out when held in 16 bits (then embed, out NULL) */
	const uint16_t *embed_h, *out_h;
	enum dtype embed_dt, out_dt;
};

/*
 * Point w into base, laid out as t says.  With grad set, base is a
 * gradient set: trainable tensors at their offsets (they lie first, see
 * model_set_trainable), frozen ones NULL.
 */
static void
weights_point(struct weights *w, const struct model_config *c,
    const struct model_tensor *t, int nt, REAL *base, int grad, int xbf16)
{
	memset(w, 0, sizeof(*w));
	w->layer = xcalloc(c->n_layers, sizeof(*w->layer));
	for (int l = 0; l < c->n_layers; l++)
		arch_layer_attrs(c, l, &w->layer[l].at);
	for (int i = 0; i < nt; i++) {
		REAL *p = grad ? (t[i].trainable ? base + t[i].offset : NULL) :
		    base + t[i].offset;
		const uint16_t *h = grad ? NULL : t[i].half;

		if (t[i].layer >= 0 && t[i].lora) {
			struct layer_w *lw = &w->layer[t[i].layer];
			if (t[i].lora == 1)
				lw->lora_a[t[i].lora_target] = p;
			else
				lw->lora_b[t[i].lora_target] = p;
			continue;
		}
		if (t[i].dtype != DT_F32)	/* frozen, outside base */
			p = NULL;
		if (t[i].layer >= 0) {
			w->layer[t[i].layer].p[t[i].role] = p;
			w->layer[t[i].layer].h[t[i].role] = h;
			w->layer[t[i].layer].dt[t[i].role] = t[i].dtype |
			    (xbf16 && t[i].dtype == DT_BF16 ? DT_XBF16 : 0);
			continue;
		}
		switch (t[i].role) {
		case ROLE_EMBED:
			w->embed = p;
			w->embed_h = h;
			w->embed_dt = t[i].dtype;
			break;
		case ROLE_FINAL_NORM:
			w->norm = p;
			break;
		case ROLE_LM_HEAD:
			w->out = p;
			w->out_h = h;
			w->out_dt = t[i].dtype |
			    (xbf16 && t[i].dtype == DT_BF16 ? DT_XBF16 : 0);
			break;
		case ROLE_SCORE:
			w->score = p;
			break;
		}
	}
	if (c->lm_head && c->tie_embeddings) {
		w->out = w->embed;
		w->out_h = w->embed_h;
		w->out_dt = w->embed_dt |
		    (xbf16 && w->embed_dt == DT_BF16 ? DT_XBF16 : 0);
	}
}

/*
 * The products over a weight held either way: the weight's dtype picks
 * the operation (backend.h), fp32 p or 16-bit h.  A 16-bit weight is
 * frozen: it has no dw; a trainable bias beside it still gets its dbias.
 */
static void
net_mm(const struct BACKEND *be, void *bx, REAL *out, const REAL *x,
    const REAL *p, const uint16_t *h, enum dtype dt, const REAL *bias,
    const REAL *res, int N, int K, int O)
{
	if (h != NULL)
		be->matmul_h(bx, out, x, h, dt, bias, res, N, K, O);
	else
		be->matmul(bx, out, x, p, bias, res, N, K, O);
}

static void
net_mm_backward(const struct BACKEND *be, void *bx, REAL *dx, REAL *dw,
    REAL *dbias, const REAL *dout, const REAL *x, const REAL *p,
    const uint16_t *h, enum dtype dt, int N, int K, int O, int acc)
{
	if (h == NULL) {
		be->matmul_backward(bx, dx, dw, dbias, dout, x, p, N, K, O,
		    acc);
		return;
	}
	if (dw != NULL)
		errx(1, "model: a weight held in 16 bits has no gradient");
	if (dx != NULL)
		be->matmul_backward_h(bx, dx, dout, h, dt, N, K, O, acc);
	if (dbias != NULL)
		be->matmul_backward(bx, NULL, NULL, dbias, dout, x, NULL, N, K,
		    O, 0);
}

/* Layer l's weight of role r, in a product. */
static void
layer_mm(const struct BACKEND *be, void *bx, const struct layer_w *w, int r,
    REAL *out, const REAL *x, const REAL *bias, const REAL *res, int N,
    int K, int O)
{
	net_mm(be, bx, out, x, w->p[r], w->h[r], w->dt[r], bias, res, N, K, O);
}

static void
layer_mm_backward(const struct BACKEND *be, void *bx,
    const struct layer_w *w, int r, REAL *dx, REAL *dw, REAL *dbias,
    const REAL *dout, const REAL *x, int N, int K, int O, int acc)
{
	net_mm_backward(be, bx, dx, dw, dbias, dout, x, w->p[r], w->h[r],
	    w->dt[r], N, K, O, acc);
}

/* n products of one x (roles r[j]): one operation when the weights are
 * held alike, else one each. */
static void
layer_mm_shared(const struct BACKEND *be, void *bx, const struct layer_w *w,
    int n, const int *r, REAL *const *out, const REAL *x,
    const REAL *const *bias, const int *O, int N, int K)
{
	const REAL *wp[4];
	const uint16_t *wh[4];
	int nh = 0, same = 1;

	for (int j = 0; j < n; j++) {
		wp[j] = w->p[r[j]];
		wh[j] = w->h[r[j]];
		nh += wh[j] != NULL;
		same &= w->dt[r[j]] == w->dt[r[0]];
	}
	if (nh == 0)
		be->matmul_shared(bx, n, out, x, wp, bias, O, N, K);
	else if (nh == n && same)
		be->matmul_shared_h(bx, n, out, x, wh, w->dt[r[0]], bias, O, N,
		    K);
	else
		for (int j = 0; j < n; j++)
			layer_mm(be, bx, w, r[j], out[j], x, bias[j], NULL, N,
			    K, O[j]);
}

/* x (N,C) = rows tok of the embedding, however it is held. */
static void
net_embed(const struct BACKEND *be, void *bx, const struct weights *w,
    REAL *x, const int *tok, int N, int C, int V)
{
	if (w->embed_h != NULL)
		be->embed_h(bx, x, w->embed_h, w->embed_dt, tok, N, C, V);
	else
		be->embed(bx, x, w->embed, tok, N, C, V);
}

/* ------------------------------------------------------------------------ */
/* Activations a forward pass keeps for the backward pass. */

struct layer_acts {
	REAL *x;		/* (N,C) the layer's input (residual stream) */
	REAL *ln1;		/* (N,C) */
	REAL *rstd1;		/* (N) */
	REAL *q;		/* (N,Q) after rope */
	REAL *k, *v;		/* (N,KV), k after rope */
	/* with q/k norms (arch.h): q and k as projected, and the norms' */
	REAL *qp, *kp;		/* (N,Q), (N,KV) */
	REAL *rstdq, *rstdk;	/* (N*H), (N*KVH) */
	REAL *att;		/* (sum over s of H * T_s^2) probabilities */
	REAL *atty;		/* (N,Q) attention output */
	REAL *xmid;		/* (N,C) residual after attention */
	REAL *ln2;		/* (N,C) */
	REAL *rstd2;		/* (N) */
	REAL *g, *u, *h;	/* (N,F) gate, up, act(gate) * up */
	/* with post-norms (Gemma 2): the attention's and the MLP's outputs
	 * before their norms, and the norms' rstds */
	REAL *ao, *mo;		/* (N,C) */
	REAL *rstdpa, *rstdpm;	/* (N) */
	/* LoRA: (alpha/r) drop(x) A^T of each target (N,r), or NULL */
	REAL *xa[LORA_NTARGET];
};

/*
 * With net->recompute, layer 0's buffers serve every layer but for x, the
 * residual stream each layer reads, kept per layer: the backward pass
 * runs each layer's forward again from its x before its backward.
 */
struct acts {
	int N, nseq;		/* of the last forward */
	int capN, capseq;
	size_t capatt;
	int caprows;		/* head_rows the buffers were cut for */
	int recomputed;		/* net->recompute they were cut for */
	int head_kept;		/* logits hold the forward's last piece */
	int head_done;		/* the head's backward ran in the forward
				 * (net->head_dlp): dln holds it */
	REAL *mem;		/* every activation, one allocation */
	struct layer_acts *layer;
	REAL *xf;		/* (N,C) the last layer's output */
	REAL *lnf;		/* (N,C) */
	REAL *rstdf;		/* (N) */
	REAL *logits;		/* (head_buf_rows, V) one piece of the rows'
				 * logits, then its gradient (head_forward,
				 * head_backward); NULL without lm_head */
	REAL *lse;		/* (N) log-sum-exp of each row's logits */
	REAL *scores;		/* (N,num_labels) */
	REAL *cs;		/* (N,hd) rope cos and sin */
	REAL *cs_local;		/* (N,hd) of freq_local, or NULL */
	/* backward scratch */
	REAL *dres;		/* (N,C) gradient of the residual stream */
	REAL *dln;		/* (N,C) */
	REAL *df1, *df2;	/* (N,F) */
	REAL *datty, *dq;	/* (N,Q) */
	REAL *dk, *dv;		/* (N,KV) */
	REAL *dqp, *dkp;	/* (N,Q), (N,KV) through the q/k norms */
	/* LoRA: d xa (N,r); with dropout, drop(x) and its gradient
	 * (N, the widest input) */
	REAL *dxa, *xd, *dxd;
	uint64_t *dkeys;	/* (N) the pass's dropout keys (model_batch) */
	int drop;		/* dropout in this pass */
	/* the batch */
	int *tokens, *targets, *pos;	/* (N) */
	int *last;		/* (nseq) a sequence's last row */
	int has_targets;
	/* the sequences, for attention */
	int *qoff, *nq, *p0;	/* (nseq) */
	size_t *aoff;		/* (nseq) */
	struct attn_batch ab;
};

struct net {
	struct model_config cfg;
	const struct BACKEND *be;	/* training and prefill */
	void *bx;		/* its context */
	struct weights w;	/* parameters */
	struct weights gw;	/* gradients, same layout (or empty) */
	REAL norm_offset;	/* the final norm's (arch.h) */
	REAL *freq;		/* (hd/2) rope frequencies */
	REAL *freq_local;	/* (hd/2) the sliding layers' (Gemma 3), or
				 * NULL */
	int lora_off;		/* adapters switched off: the base alone */
	const uint64_t *drop_keys;	/* (N) LoRA dropout of the next
					 * net_forward, or NULL */
	int head_rows;		/* rows of logits at once; 0: head_rows_of */
	int recompute;		/* keep only each layer's input (struct acts) */
	int xbf16;		/* --compute bf16: DT_XBF16 on bf16 weights */
	const REAL *head_dlp;	/* (N) the next forward's d loss / d logprob,
				 * known before it (model_set_head_grad) */
	struct acts a;
};

static void
net_init(struct net *net, const struct model_config *c,
    const struct BACKEND *be, const struct model_tensor *t, int nt,
    REAL *params, REAL *grads)
{
	memset(net, 0, sizeof(*net));
	net->cfg = *c;
	net->be = be;
	net->bx = be->ctx_new();
	weights_point(&net->w, c, t, nt, params, 0, 0);
	if (grads != NULL)
		weights_point(&net->gw, c, t, nt, grads, 1, 0);
	net->norm_offset = arch_of(c)->norm == NORM_RMS_PLUS_ONE ? 1 : 0;
	net->freq = xmalloc(c->head_dim / 2 * sizeof(REAL));
	rope_freqs(net->freq, c);
	if (c->rope_local_theta > 0) {
		net->freq_local = xmalloc(c->head_dim / 2 * sizeof(REAL));
		rope_freqs_base(net->freq_local, c, c->rope_local_theta, 0);
	}
}

/* Re-wire after the layout changed (model_set_trainable) or grads came. */
static void __attribute__((unused))
net_rewire(struct net *net, const struct model_tensor *t, int nt,
    REAL *params, REAL *grads)
{
	free(net->w.layer);
	free(net->gw.layer);
	memset(&net->gw, 0, sizeof(net->gw));
	weights_point(&net->w, &net->cfg, t, nt, params, 0, net->xbf16);
	if (grads != NULL)
		weights_point(&net->gw, &net->cfg, t, nt, grads, 1, 0);
}

static void
net_free(struct net *net)
{
	net->be->ctx_free(net->bx);
	free(net->w.layer);
	free(net->gw.layer);
	free(net->freq);
	free(net->freq_local);
	free(net->a.mem);
	free(net->a.layer);
	free(net->a.tokens);
	free(net->a.targets);
	free(net->a.pos);
	free(net->a.last);
	free(net->a.qoff);
	free(net->a.nq);
	free(net->a.p0);
	free(net->a.aoff);
	free(net->a.dkeys);
}

/* Probabilities a sequence keeps: (H, nq, p0 + nq). */
static size_t
attn_probs_size(int H, int nq, int p0)
{
	return (size_t)H * nq * (p0 + nq);
}

/* The widest input of a LoRA target: drop(x)'s row. */
static size_t
lora_widest_input(const struct model_config *c)
{
	size_t C = c->dim, Q = model_q_dim(c), F = c->hidden_dim;
	size_t w = C > Q ? C : Q;

	return w > F ? w : F;
}

/*
 * The classifier (lm_head) runs over pieces of rows, so (N, V) logits are
 * never held whole: a piece's logits, their log-sum-exp and target's
 * log-probability in the forward (only lse (N) kept), the same logits
 * computed again in the backward and turned at once into the gradients
 * of the final norm's output and of lm_head (llm.c's fused classifier).
 *
 * Pieces of head_rows rows, about HEAD_FLOATS logits each (256 MiB in
 * fp32, a multiple of 16 rows), the last one taking in a remainder of
 * fewer than HEAD_MIN_ROWS rows: a backend may sum a product of few rows
 * another way (the CPU's dot products below 16).  The cut is a function
 * of N and V alone, never of the threads, so the bits stay the same
 * whatever the thread count.  Against one product over all N rows, a
 * row's logits may round differently (OpenBLAS need not sum a row alike
 * for every row count, as with batches of another size before), and
 * lm_head's gradient is summed piece by piece: float rounding.
 */
#define HEAD_FLOATS (64 << 20)
#define HEAD_MIN_ROWS 16

/* Rows of a piece: net->head_rows, or by default from V. */
static int
head_rows_of(const struct model_config *c, int rows)
{
	int r = HEAD_FLOATS / (c->vocab_size > 0 ? c->vocab_size : 1);

	if (rows > 0)
		return rows;
	r -= r % HEAD_MIN_ROWS;
	return r > HEAD_MIN_ROWS ? r : HEAD_MIN_ROWS;
}

/* Pieces of N rows. */
static int
head_npieces(int N, int R)
{
	int n = (N + R - 1) / R;

	if (n > 1 && N % R != 0 && N % R < HEAD_MIN_ROWS)
		n--;		/* the remainder joins the last piece */
	return n > 0 ? n : 1;
}

/* Piece i of np: rows *n0 .. *n0 + the count returned. */
static int
head_piece(int N, int R, int np, int i, int *n0)
{
	*n0 = i * R;
	return i + 1 < np ? R : N - i * R;
}

/* Rows the logits buffer must hold: the largest piece. */
static size_t
head_buf_rows(size_t N, int R)
{
	size_t r = (size_t)R + HEAD_MIN_ROWS - 1;

	return N < r ? N : r;
}

/*
 * Floats of the activations for N tokens and natt attention
 * probabilities, logits in pieces of R rows, with or without recompute.
 */
static size_t
acts_floats(const struct model_config *c, size_t N, size_t natt, int R,
    int recompute)
{
	size_t C = c->dim, Q = model_q_dim(c), KV = model_kv_dim(c);
	size_t F = c->hidden_dim, V = c->vocab_size, L = c->n_layers;
	size_t qk = arch_of(c)->qk_norm, pn = arch_of(c)->post_norms;
	size_t per = N * (4 * C + 2 * Q + 2 * KV + 3 * F + 2) + natt +
	    qk * N * (Q + KV + c->n_heads + c->n_kv_heads) +
	    pn * N * (2 * C + 2);
	size_t fin = N * (2 * C + 2 + (size_t)c->num_labels + c->head_dim) +
	    (c->lm_head ? head_buf_rows(N, R) * V : 0) +
	    (c->rope_local_theta > 0) * N * c->head_dim;
	size_t back = N * (2 * C + 2 * F + 2 * Q + 2 * KV) + qk * N * (Q + KV);
	size_t lr = c->lora.rank, nt = 0, win = lora_widest_input(c);

	for (int j = 0; j < LORA_NTARGET; j++)
		nt += lr > 0 && (c->lora.targets & (1u << j));
	per += N * lr * nt;
	back += nt > 0 ? N * lr + (c->lora.dropout > 0) * 2 * N * win : 0;
	/* recompute: every layer's x, one layer's everything else */
	size_t layers = recompute ? L * N * C + per - N * C : L * per;

	return layers + fin + back;
}

/* The backend's attention scratch for sequences up to maxL (cpu_impl.h). */
static size_t __attribute__((unused))
attn_scratch_floats(int maxL)
{
	return (size_t)omp_get_max_threads() * 2 * ATT_ROWS * maxL;
}

/* Make room for a pass of N tokens; no allocation when it fits. */
static void
acts_reserve(struct net *net, int N, int nseq, size_t natt)
{
	const struct model_config *c = &net->cfg;
	struct acts *a = &net->a;
	size_t C = c->dim, Q = model_q_dim(c), KV = model_kv_dim(c);
	size_t F = c->hidden_dim, V = c->vocab_size;
	size_t H = c->n_heads, KVH = c->n_kv_heads;
	int qk = arch_of(c)->qk_norm, pn = arch_of(c)->post_norms;
	int R = head_rows_of(c, net->head_rows), rc = net->recompute;
	REAL *p;

	if (nseq > a->capseq) {
		a->capseq = nseq;
		a->qoff = xreallocarray(a->qoff, nseq, sizeof(int));
		a->nq = xreallocarray(a->nq, nseq, sizeof(int));
		a->p0 = xreallocarray(a->p0, nseq, sizeof(int));
		a->last = xreallocarray(a->last, nseq, sizeof(int));
		a->aoff = xreallocarray(a->aoff, nseq, sizeof(size_t));
	}
	if (N <= a->capN && natt <= a->capatt && R == a->caprows &&
	    rc == a->recomputed && a->mem != NULL)
		return;
	if (N > a->capN) {
		a->tokens = xreallocarray(a->tokens, N, sizeof(int));
		a->targets = xreallocarray(a->targets, N, sizeof(int));
		a->pos = xreallocarray(a->pos, N, sizeof(int));
	}
	a->capN = N > a->capN ? N : a->capN;
	a->capatt = natt > a->capatt ? natt : a->capatt;
	a->caprows = R;
	a->recomputed = rc;
	N = a->capN;
	free(a->mem);
	a->mem = xmalloc(acts_floats(c, N, a->capatt, R, rc) * sizeof(REAL));
	if (a->layer == NULL)
		a->layer = xcalloc(c->n_layers, sizeof(*a->layer));
	p = a->mem;
#define TAKE(dst, n) do { (dst) = p; p += (n); } while (0)
#define TAKE_IF(on, dst, n) do {					\
	if (on)								\
		TAKE(dst, n);						\
	else								\
		(dst) = NULL;						\
} while (0)
	for (int l = 0; l < c->n_layers; l++) {
		struct layer_acts *la = &a->layer[l];
		if (rc && l > 0) {	/* x its own, the rest layer 0's */
			REAL *x;
			TAKE(x, N * C);
			*la = a->layer[0];
			la->x = x;
			continue;
		}
		TAKE(la->x, N * C);
		TAKE(la->ln1, N * C);
		TAKE(la->rstd1, N);
		TAKE(la->q, N * Q);
		TAKE(la->k, N * KV);
		TAKE(la->v, N * KV);
		TAKE_IF(qk, la->qp, N * Q);
		TAKE_IF(qk, la->kp, N * KV);
		TAKE_IF(qk, la->rstdq, N * H);
		TAKE_IF(qk, la->rstdk, N * KVH);
		TAKE(la->att, a->capatt);
		TAKE(la->atty, N * Q);
		TAKE(la->xmid, N * C);
		TAKE(la->ln2, N * C);
		TAKE(la->rstd2, N);
		TAKE(la->g, N * F);
		TAKE(la->u, N * F);
		TAKE(la->h, N * F);
		TAKE_IF(pn, la->ao, N * C);
		TAKE_IF(pn, la->mo, N * C);
		TAKE_IF(pn, la->rstdpa, N);
		TAKE_IF(pn, la->rstdpm, N);
		for (int j = 0; j < LORA_NTARGET; j++)
			TAKE_IF(c->lora.rank > 0 &&
			    (c->lora.targets & (1u << j)), la->xa[j],
			    N * (size_t)c->lora.rank);
	}
	TAKE(a->xf, N * C);
	TAKE(a->lnf, N * C);
	TAKE(a->rstdf, N);
	TAKE_IF(c->lm_head, a->logits, head_buf_rows(N, R) * V);
	TAKE(a->lse, N);
	TAKE(a->scores, N * (size_t)c->num_labels);
	TAKE(a->cs, N * (size_t)c->head_dim);
	TAKE_IF(c->rope_local_theta > 0, a->cs_local, N * (size_t)c->head_dim);
	TAKE(a->dres, N * C);
	TAKE(a->dln, N * C);
	TAKE(a->df1, N * F);
	TAKE(a->df2, N * F);
	TAKE(a->datty, N * Q);
	TAKE(a->dq, N * Q);
	TAKE(a->dk, N * KV);
	TAKE(a->dv, N * KV);
	TAKE_IF(qk, a->dqp, N * Q);
	TAKE_IF(qk, a->dkp, N * KV);
	{
		int on = c->lora.rank > 0 && c->lora.targets != 0;
		int dr = on && c->lora.dropout > 0;
		size_t win = lora_widest_input(c);

		TAKE_IF(on, a->dxa, N * (size_t)c->lora.rank);
		TAKE_IF(dr, a->xd, N * win);
		TAKE_IF(dr, a->dxd, N * win);
	}
#undef TAKE_IF
#undef TAKE
}

/* ------------------------------------------------------------------------ */
/*
 * LoRA (PEFT's Linear): after a target's product out = x W^T, out +=
 * s drop(x) A^T B^T with s = alpha / r.  xa = s drop(x) A^T (N,r) is kept
 * for the backward pass (scaled: the dB product then needs no scale).
 * Dropout as torch's nn.Dropout in training mode: each element of the
 * adapter's input zeroed with probability p, the rest scaled by
 * 1/(1-p); its mask is a hash of (the token's key, layer, target,
 * column), so the backward pass draws it again instead of keeping it,
 * and neither the thread count nor how tokens are packed into passes
 * changes it.
 */
static uint64_t
lora_mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* y (N,K) = drop(x) of layer l's target j, row n keyed by key[n]; y may
 * be x. */
static void
lora_dropout(REAL *y, const REAL *x, int N, int K, const uint64_t *key,
    int l, int j, double p)
{
	uint64_t lj = 0x9E3779B97F4A7C15ULL * ((uint64_t)l * LORA_NTARGET + j +
	    1);
	REAL keep = (REAL)(1 / (1 - p));

#pragma omp parallel for schedule(static)
	for (int n = 0; n < N; n++) {
		uint64_t kn = lora_mix(key[n] ^ lj);
		for (int k = 0; k < K; k++) {
			size_t i = (size_t)n * K + k;
			double u = (lora_mix(kn + (uint64_t)k *
			    0xD1B54A32D192ED03ULL) >> 11) * 0x1.0p-53;
			y[i] = u < p ? 0 : x[i] * keep;
		}
	}
}

/* Whether the adapters of layer l's target j run in this pass. */
static int
lora_on(const struct net *net, int l, int j)
{
	return !net->lora_off && net->w.layer[l].lora_a[j] != NULL;
}

/* out (N,O) += s drop(x) A^T B^T of layer l's target j, x (N,K). */
static void
lora_forward(const struct net *net, const struct BACKEND *be, void *bx,
    int l, int j, REAL *xa, const REAL *x, REAL *out, int N, int K, int O)
{
	const struct model_config *c = &net->cfg;
	const struct layer_w *w = &net->w.layer[l];
	int r = c->lora.rank;

	if (!lora_on(net, l, j))
		return;
	if (net->a.drop) {
		lora_dropout(net->a.xd, x, N, K, net->a.dkeys, l, j,
		    c->lora.dropout);
		x = net->a.xd;
	}
	be->matmul(bx, xa, x, w->lora_a[j], NULL, NULL, N, K, r);
	be->scale(bx, xa, (REAL)(c->lora.alpha / r), (size_t)N * r);
	be->matmul(bx, out, xa, w->lora_b[j], NULL, out, N, r, O);
}

/*
 * Backward of lora_forward: dout (N,O) given, dB += dout^T xa, dA +=
 * (s dout B)^T drop(x), and dx (N,K) += drop'(s dout B A).  A frozen
 * adapter (NULL gradients) still passes the gradient on.
 */
static void
lora_backward(struct net *net, int l, int j, REAL *dx, const REAL *dout,
    const REAL *x, int N, int K, int O)
{
	const struct model_config *c = &net->cfg;
	const struct BACKEND *be = net->be;
	void *bx = net->bx;
	struct acts *a = &net->a;
	const struct layer_w *w = &net->w.layer[l];
	const struct layer_w *gw = &net->gw.layer[l];
	int r = c->lora.rank;

	if (!lora_on(net, l, j))
		return;
	be->matmul_backward(bx, a->dxa, gw->lora_b[j], NULL, dout,
	    a->layer[l].xa[j], w->lora_b[j], N, r, O, 0);
	be->scale(bx, a->dxa, (REAL)(c->lora.alpha / r), (size_t)N * r);
	if (!a->drop) {
		be->matmul_backward(bx, dx, gw->lora_a[j], NULL, a->dxa, x,
		    w->lora_a[j], N, K, r, 1);
		return;
	}
	lora_dropout(a->xd, x, N, K, a->dkeys, l, j, c->lora.dropout);
	be->matmul_backward(bx, a->dxd, gw->lora_a[j], NULL, a->dxa, a->xd,
	    w->lora_a[j], N, K, r, 0);
	lora_dropout(a->dxd, a->dxd, N, K, a->dkeys, l, j, c->lora.dropout);
	be->add(bx, dx, dx, a->dxd, (size_t)N * K);
}

/* ------------------------------------------------------------------------ */
/*
 * The decoder block, forward: x -> xmid -> xout, pre-norm:
 *
 *   xmid = x + o_proj(attention(rope(qn(q_proj(n1))), rope(kn(k_proj(n1))),
 *          v_proj(n1))),  n1 = norm(x)
 *   xout = xmid + down_proj(silu(gate_proj(n2)) * up_proj(n2)),
 *          n2 = norm(xmid)
 *
 * where qn and kn are the identity, or with q/k norms (Qwen3) RMSNorms of
 * each head over head_dim: the norm op over (N * heads, hd) rows.
 *
 * Every step is an operation of be; in a decoding step every thread of
 * the team runs this with the same arguments (backend.h).  la's buffers
 * may coincide where nothing is kept (net_infer): xmid, xout and x one
 * residual stream, ln2 ln1, h g, qp q and kp k (the norms in place); att
 * and the rstds NULL.
 */
static void
block_forward(const struct net *net, const struct BACKEND *be, void *bx,
    int l, const struct layer_acts *la, REAL *xout, const REAL *cs,
    const struct attn_batch *ab, int N)
{
	const struct model_config *c = &net->cfg;
	const struct layer_w *w = &net->w.layer[l];
	int C = c->dim, Q = model_q_dim(c), KV = model_kv_dim(c);
	int F = c->hidden_dim;
	int H = c->n_heads, KVH = c->n_kv_heads, hd = c->head_dim;
	REAL eps = c->norm_eps, wofs = w->at.norm_offset;
	struct attn_shape sh = { H, KVH, hd, w->at.attn_scale, w->at.window,
	    w->at.attn_softcap };
	const REAL *qn = w->p[ROLE_Q_NORM], *kn = w->p[ROLE_K_NORM];
	REAL *qkv[3] = { qn != NULL ? la->qp : la->q,
	    kn != NULL ? la->kp : la->k, la->v };
	const int wqkv[3] = { ROLE_WQ, ROLE_WK, ROLE_WV };
	const REAL *bqkv[3] = { w->p[ROLE_BQ], w->p[ROLE_BK], w->p[ROLE_BV] };
	int oqkv[3] = { Q, KV, KV };
	REAL *gu[2] = { la->g, la->u };
	const int wgu[2] = { ROLE_WGATE, ROLE_WUP };
	const REAL *bgu[2] = { NULL, NULL };
	int ogu[2] = { F, F };
	const REAL *pa = w->p[ROLE_POST_ATTN_NORM], *pm = w->p[ROLE_POST_MLP_NORM];
	REAL *tmp = net->a.dln;	/* a post-norm's output, until added */

	if (w->at.local_rope)
		cs = net->a.cs_local;

	/* attention: pre-norm, projections, q/k norms, rotary,
	 * softmax(QK^T)V, output */
	be->rmsnorm(bx, la->ln1, la->rstd1, la->x, w->p[ROLE_ATTN_NORM], wofs,
	    N, C, eps);
	layer_mm_shared(be, bx, w, 3, wqkv, qkv, la->ln1, bqkv, oqkv, N, C);
	for (int j = LORA_Q; j <= LORA_V; j++)
		lora_forward(net, be, bx, l, j, la->xa[j], la->ln1, qkv[j], N,
		    C, oqkv[j]);
	if (qn != NULL)
		be->rmsnorm(bx, la->q, la->rstdq, la->qp, qn, wofs, N * H, hd,
		    eps);
	if (kn != NULL)
		be->rmsnorm(bx, la->k, la->rstdk, la->kp, kn, wofs, N * KVH,
		    hd, eps);
	be->rope(bx, la->q, la->k, cs, N, H, KVH, hd, 1);
	be->attention(bx, la->atty, la->att, la->q, la->k, la->v, ab, l, &sh);
	if (pa != NULL) {	/* post-norm, then the residual */
		layer_mm(be, bx, w, ROLE_WO, la->ao, la->atty, w->p[ROLE_BO],
		    NULL, N, Q, C);
		lora_forward(net, be, bx, l, LORA_O, la->xa[LORA_O], la->atty,
		    la->ao, N, Q, C);
		be->rmsnorm(bx, tmp, la->rstdpa, la->ao, pa, wofs, N, C, eps);
		be->add(bx, la->xmid, la->x, tmp, (size_t)N * C);
	} else {
		layer_mm(be, bx, w, ROLE_WO, la->xmid, la->atty,
		    w->p[ROLE_BO], la->x, N, Q, C);
		lora_forward(net, be, bx, l, LORA_O, la->xa[LORA_O], la->atty,
		    la->xmid, N, Q, C);
	}

	/* MLP: pre-norm, down(act(gate(x)) * up(x)), act silu or gelu */
	be->rmsnorm(bx, la->ln2, la->rstd2, la->xmid, w->p[ROLE_MLP_NORM],
	    wofs, N, C, eps);
	layer_mm_shared(be, bx, w, 2, wgu, gu, la->ln2, bgu, ogu, N, C);
	for (int j = LORA_GATE; j <= LORA_UP; j++)
		lora_forward(net, be, bx, l, j, la->xa[j], la->ln2,
		    gu[j - LORA_GATE], N, C, F);
	if (arch_of(c)->act == ACT_GELU_TANH)
		be->geglu(bx, la->h, la->g, la->u, (size_t)N * F);
	else
		be->swiglu(bx, la->h, la->g, la->u, (size_t)N * F);
	if (pm != NULL) {
		layer_mm(be, bx, w, ROLE_WDOWN, la->mo, la->h, NULL, NULL, N, F,
		    C);
		lora_forward(net, be, bx, l, LORA_DOWN, la->xa[LORA_DOWN],
		    la->h, la->mo, N, F, C);
		be->rmsnorm(bx, tmp, la->rstdpm, la->mo, pm, wofs, N, C, eps);
		be->add(bx, xout, la->xmid, tmp, (size_t)N * C);
	} else {
		layer_mm(be, bx, w, ROLE_WDOWN, xout, la->h, NULL, la->xmid,
		    N, F, C);
		lora_forward(net, be, bx, l, LORA_DOWN, la->xa[LORA_DOWN],
		    la->h, xout, N, F, C);
	}
}

/*
 * The block, backward.  dres (N,C) holds d loss / d xout on entry and
 * d loss / d x on return (the residual passes it through; the branches
 * add to it).  A frozen weight's gradient pointer is NULL: its dW product
 * is skipped, the input gradient still flows.
 */
static void
block_backward(struct net *net, int l, REAL *dres)
{
	const struct model_config *c = &net->cfg;
	const struct BACKEND *be = net->be;
	void *bx = net->bx;
	struct acts *a = &net->a;
	const struct layer_w *w = &net->w.layer[l];
	REAL *const *gw = net->gw.layer[l].p;
	struct layer_acts *la = &a->layer[l];
	int N = a->N, C = c->dim, Q = model_q_dim(c), KV = model_kv_dim(c);
	int F = c->hidden_dim, hd = c->head_dim;
	int H = c->n_heads, KVH = c->n_kv_heads;
	REAL wofs = w->at.norm_offset;
	struct attn_shape sh = { H, KVH, hd, w->at.attn_scale, w->at.window,
	    w->at.attn_softcap };
	const REAL *qn = w->p[ROLE_Q_NORM], *kn = w->p[ROLE_K_NORM];
	REAL *dq = a->dq, *dk = a->dk;
	const REAL *pa = w->p[ROLE_POST_ATTN_NORM], *pm = w->p[ROLE_POST_MLP_NORM];
	const REAL *dbr = dres;	/* d loss / d a branch's output */

	/* MLP branch, through its post-norm (into dln, free until the
	 * matmuls below fill it) */
	if (pm != NULL) {
		memset(a->dln, 0, (size_t)N * C * sizeof(REAL));
		be->rmsnorm_backward(bx, a->dln, gw[ROLE_POST_MLP_NORM], dres,
		    la->mo, pm, wofs, la->rstdpm, N, C);
		dbr = a->dln;
	}
	layer_mm_backward(be, bx, w, ROLE_WDOWN, a->df1, gw[ROLE_WDOWN], NULL,
	    dbr, la->h, N, F, C, 0);
	lora_backward(net, l, LORA_DOWN, a->df1, dbr, la->h, N, F, C);
	if (arch_of(c)->act == ACT_GELU_TANH)
		be->geglu_backward(bx, a->df1, a->df2, a->df1, la->g, la->u,
		    (size_t)N * F);
	else
		be->swiglu_backward(bx, a->df1, a->df2, a->df1, la->g, la->u,
		    (size_t)N * F);
	layer_mm_backward(be, bx, w, ROLE_WGATE, a->dln, gw[ROLE_WGATE], NULL,
	    a->df1, la->ln2, N, C, F, 0);
	layer_mm_backward(be, bx, w, ROLE_WUP, a->dln, gw[ROLE_WUP], NULL,
	    a->df2, la->ln2, N, C, F, 1);
	lora_backward(net, l, LORA_GATE, a->dln, a->df1, la->ln2, N, C, F);
	lora_backward(net, l, LORA_UP, a->dln, a->df2, la->ln2, N, C, F);
	be->rmsnorm_backward(bx, dres, gw[ROLE_MLP_NORM], a->dln, la->xmid,
	    w->p[ROLE_MLP_NORM], wofs, la->rstd2, N, C);

	/* attention branch, through its post-norm */
	dbr = dres;
	if (pa != NULL) {
		memset(a->dln, 0, (size_t)N * C * sizeof(REAL));
		be->rmsnorm_backward(bx, a->dln, gw[ROLE_POST_ATTN_NORM], dres,
		    la->ao, pa, wofs, la->rstdpa, N, C);
		dbr = a->dln;
	}
	layer_mm_backward(be, bx, w, ROLE_WO, a->datty, gw[ROLE_WO],
	    gw[ROLE_BO], dbr, la->atty, N, Q, C, 0);
	lora_backward(net, l, LORA_O, a->datty, dbr, la->atty, N, Q, C);
	be->attention_backward(bx, a->dq, a->dk, a->dv, a->datty, la->q,
	    la->k, la->v, la->att, &a->ab, &sh);
	be->rope(bx, a->dq, a->dk, w->at.local_rope ? a->cs_local : a->cs, N,
	    H, KVH, hd, -1);
	/* through the q/k norms: their backward adds to its dx, zeroed
	 * first as net_backward zeroes its accumulators */
	if (qn != NULL) {
		memset(a->dqp, 0, (size_t)N * Q * sizeof(REAL));
		be->rmsnorm_backward(bx, a->dqp, gw[ROLE_Q_NORM], a->dq, la->qp,
		    qn, wofs, la->rstdq, N * H, hd);
		dq = a->dqp;
	}
	if (kn != NULL) {
		memset(a->dkp, 0, (size_t)N * KV * sizeof(REAL));
		be->rmsnorm_backward(bx, a->dkp, gw[ROLE_K_NORM], a->dk, la->kp,
		    kn, wofs, la->rstdk, N * KVH, hd);
		dk = a->dkp;
	}
	layer_mm_backward(be, bx, w, ROLE_WQ, a->dln, gw[ROLE_WQ], gw[ROLE_BQ],
	    dq, la->ln1, N, C, Q, 0);
	layer_mm_backward(be, bx, w, ROLE_WK, a->dln, gw[ROLE_WK], gw[ROLE_BK],
	    dk, la->ln1, N, C, KV, 1);
	layer_mm_backward(be, bx, w, ROLE_WV, a->dln, gw[ROLE_WV], gw[ROLE_BV],
	    a->dv, la->ln1, N, C, KV, 1);
	lora_backward(net, l, LORA_Q, a->dln, dq, la->ln1, N, C, Q);
	lora_backward(net, l, LORA_K, a->dln, dk, la->ln1, N, C, KV);
	lora_backward(net, l, LORA_V, a->dln, a->dv, la->ln1, N, C, KV);
	be->rmsnorm_backward(bx, dres, gw[ROLE_ATTN_NORM], a->dln, la->x,
	    w->p[ROLE_ATTN_NORM], wofs, la->rstd1, N, C);
}

/*
 * Gemma's embedding normalizer, sqrt(hidden_size) computed and then cast
 * to the hidden dtype, as transformers does.
 */
static REAL
net_embed_scale(const struct model_config *c)
{
	return (REAL)sqrt((double)c->dim);
}

/* ------------------------------------------------------------------------ */
/*
 * The classifier over the rows n0 .. n0+n of the last forward: logits
 * (n,V) = lnf W_out^T, softcapped where the model caps them.  The
 * forward, the backward and model_logits cut the rows alike, so they see
 * the same numbers.
 */
static void
head_logits(struct net *net, REAL *logits, int n0, int n)
{
	const struct model_config *c = &net->cfg;
	int C = c->dim, V = c->vocab_size;

	net_mm(net->be, net->bx, logits, net->a.lnf + (size_t)n0 * C,
	    net->w.out, net->w.out_h, net->w.out_dt, NULL, NULL, n, C, V);
	if (c->final_softcap > 0)
		net->be->softcap(net->bx, logits, (REAL)c->final_softcap,
		    (size_t)n * V);
}

/* One piece's d loss / d logits, and at once dlnf (n,C) += dlogits W_out
 * and d W_out += dlogits^T lnf (none when lm_head is frozen). */
static void
head_piece_backward(struct net *net, const REAL *dlogprobs, REAL *dlnf,
    int n0, int n)
{
	const struct model_config *c = &net->cfg;
	struct acts *a = &net->a;
	int C = c->dim, V = c->vocab_size;

	net->be->logprob_backward(net->bx, a->logits, a->lse + n0,
	    dlogprobs + n0, a->targets + n0, n, V, (REAL)c->final_softcap);
	net_mm_backward(net->be, net->bx, dlnf + (size_t)n0 * C, net->gw.out,
	    NULL, a->logits, a->lnf + (size_t)n0 * C, net->w.out,
	    net->w.out_h, net->w.out_dt, n, C, V, 1);
}

/*
 * lse (N) and logprobs (N) (or NULL), piece by piece.  With head_dlp
 * (SFT's gradient, known before the pass), each piece's backward at once,
 * while its logits are there, into dln: the pieces last first, as
 * head_backward takes them, so d W_out is summed in the same order.
 */
static void
head_forward(struct net *net, REAL *logprobs)
{
	struct acts *a = &net->a;
	int N = a->N, V = net->cfg.vocab_size;
	int R = a->caprows, np = head_npieces(N, R);
	const REAL *dlp = net->head_dlp;

	net->head_dlp = NULL;	/* this pass's only */
	if (dlp != NULL)
		memset(a->dln, 0, (size_t)N * net->cfg.dim * sizeof(REAL));
	for (int k = 0; k < np; k++) {
		int i = dlp != NULL ? np - 1 - k : k, n0;
		int n = head_piece(N, R, np, i, &n0);

		head_logits(net, a->logits, n0, n);
		net->be->logprob(net->bx, logprobs != NULL ? logprobs + n0 :
		    NULL, a->lse + n0, a->logits, a->targets + n0, n, V);
		if (dlp != NULL)
			head_piece_backward(net, dlp, a->dln, n0, n);
	}
	a->head_kept = dlp == NULL;
	a->head_done = dlp != NULL;
}

/*
 * The pieces again, each turned into d loss / d logits and at once into
 * dlnf (N,C) += dlogits W_out and d W_out += dlogits^T lnf (none when
 * lm_head is frozen).  Last piece first: its logits are still there from
 * the forward, so a batch of one piece costs no product more than when
 * the logits were kept whole.
 */
static void
head_backward(struct net *net, const REAL *dlogprobs, REAL *dlnf)
{
	struct acts *a = &net->a;
	int N = a->N, R = a->caprows, np = head_npieces(N, R);

	for (int i = np - 1; i >= 0; i--) {
		int n0, n = head_piece(N, R, np, i, &n0);

		if (i < np - 1 || !a->head_kept)
			head_logits(net, a->logits, n0, n);
		a->head_kept = 0;
		head_piece_backward(net, dlogprobs, dlnf, n0, n);
	}
}

/* ------------------------------------------------------------------------ */
/*
 * Training: the whole network over a packed batch, every activation kept
 * (with net->recompute, each layer's input only).
 */

static void
net_forward(struct net *net, const struct model_batch *b, REAL *logprobs)
{
	const struct model_config *c = &net->cfg;
	const struct BACKEND *be = net->be;
	void *bx = net->bx;
	struct acts *a = &net->a;
	int N = model_batch_tokens(b), C = c->dim, V = c->vocab_size;
	size_t natt = 0;
	int maxL = 0, off = 0;

	for (int s = 0; s < b->nseq; s++) {
		if (b->len[s] < 1)
			errx(EXIT_DATA, "model: sequence %d is empty", s);
		natt += attn_probs_size(c->n_heads, b->len[s], 0);
		if (b->len[s] > maxL)
			maxL = b->len[s];
	}
	acts_reserve(net, N, b->nseq, natt);
	a->drop = net->cfg.lora.rank > 0 && net->cfg.lora.dropout > 0 &&
	    net->drop_keys != NULL && !net->lora_off;
	if (a->drop) {
		a->dkeys = xreallocarray(a->dkeys, N, sizeof(uint64_t));
		memcpy(a->dkeys, net->drop_keys, N * sizeof(uint64_t));
	}
	net->drop_keys = NULL;	/* this pass's only */
	a->N = N;
	a->nseq = b->nseq;
	a->has_targets = b->targets != NULL;
	natt = 0;
	for (int s = 0; s < b->nseq; s++) {
		a->qoff[s] = off;
		a->nq[s] = b->len[s];
		a->p0[s] = 0;
		a->aoff[s] = natt;
		natt += attn_probs_size(c->n_heads, b->len[s], 0);
		for (int i = 0; i < b->len[s]; i++)
			a->pos[off + i] = i;
		off += b->len[s];
	}
	a->ab = (struct attn_batch){ b->nseq, a->qoff, a->nq, a->p0, a->aoff,
	    NULL, maxL };
	memcpy(a->tokens, b->tokens, N * sizeof(int));
	for (int n = 0; n < N; n++) {
		a->targets[n] = b->targets != NULL ? b->targets[n] : -1;
		if (a->targets[n] >= V && c->lm_head)
			errx(EXIT_DATA, "target token %d is outside the "
			    "vocabulary (0..%d)", a->targets[n], V - 1);
	}
	be->rope_table(bx, a->cs, a->pos, net->freq, N, c->head_dim);
	if (net->freq_local != NULL)
		be->rope_table(bx, a->cs_local, a->pos, net->freq_local, N,
		    c->head_dim);
	net_embed(be, bx, &net->w, a->layer[0].x, a->tokens, N, C, V);
	if (arch_of(c)->embed_scale)
		be->scale(bx, a->layer[0].x, net_embed_scale(c), (size_t)N * C);
	for (int l = 0; l < c->n_layers; l++)
		block_forward(net, be, bx, l, &a->layer[l],
		    l + 1 < c->n_layers ? a->layer[l + 1].x : a->xf, a->cs,
		    &a->ab, N);
	be->rmsnorm(bx, a->lnf, a->rstdf, a->xf, net->w.norm, net->norm_offset,
	    N, C, c->norm_eps);
	/* without targets there is nothing to score nor differentiate */
	a->head_kept = 0;
	a->head_done = 0;
	if (c->lm_head && a->has_targets)
		head_forward(net, logprobs);
	else if (logprobs != NULL)
		memset(logprobs, 0, (size_t)N * sizeof(REAL));
	if (c->num_labels > 0)
		be->matmul(bx, a->scores, a->lnf, net->w.score, NULL, NULL, N, C,
		    c->num_labels);
}

/* Gradients of the last forward, added to net->gw. */
static void
net_backward(struct net *net, const REAL *dlogprobs, const REAL *dscores)
{
	const struct model_config *c = &net->cfg;
	const struct BACKEND *be = net->be;
	void *bx = net->bx;
	struct acts *a = &net->a;
	int N = a->N, C = c->dim;

	/* no gradient from the head without targets or dlogprobs; none
	 * to take again when the forward took it (head_forward) */
	if (!a->head_done) {
		memset(a->dln, 0, (size_t)N * C * sizeof(REAL));
		if (c->lm_head && a->has_targets && dlogprobs != NULL)
			head_backward(net, dlogprobs, a->dln);
	}
	a->head_done = 0;
	if (c->num_labels > 0 && dscores != NULL)
		be->matmul_backward(bx, a->dln, net->gw.score, NULL, dscores,
		    a->lnf, net->w.score, N, C, c->num_labels, 1);
	memset(a->dres, 0, (size_t)N * C * sizeof(REAL));
	be->rmsnorm_backward(bx, a->dres, net->gw.norm, a->dln, a->xf,
	    net->w.norm, net->norm_offset, a->rstdf, N, C);
	for (int l = c->n_layers - 1; l >= 0; l--) {
		/* recompute: layer l's activations again from its input
		 * (the last layer's are still there from the forward) */
		if (a->recomputed && l + 1 < c->n_layers)
			block_forward(net, be, bx, l, &a->layer[l],
			    a->layer[l + 1].x, a->cs, &a->ab, N);
		block_backward(net, l, a->dres);
	}
	if (net->gw.embed != NULL && arch_of(c)->embed_scale)
		be->scale(bx, a->dres, net_embed_scale(c), (size_t)N * C);
	if (net->gw.embed != NULL)
		be->embed_backward(bx, net->gw.embed, a->dres, a->tokens, N, C);
}

/* ------------------------------------------------------------------------ */
/*
 * Cached passes: B sequences, ntok[s] new tokens each, packed; their keys
 * and values go into each sequence's cache and attention reads them there.
 * One layer's buffers serve every layer, the residual stream updated in
 * place; logits (B,V) after each sequence's last token.  Prefill and
 * decoding are this one pass on two backends: be->run gives it the team it
 * runs in (backend.h).
 */
struct infer {
	struct net *net;
	const struct BACKEND *be;
	void *bx;
	int N, B;
	const int *tokens;
	REAL *logits;
};

static void
infer_body(void *arg)
{
	const struct infer *p = arg;
	struct net *net = p->net;
	const struct BACKEND *be = p->be;
	void *bx = p->bx;
	const struct model_config *c = &net->cfg;
	struct acts *a = &net->a;
	int N = p->N, B = p->B, C = c->dim, V = c->vocab_size;
	struct layer_acts la = a->layer[0];
	REAL *x = la.x, *xl = a->xf;

	la.att = NULL;
	la.rstd1 = la.rstd2 = la.rstdq = la.rstdk = NULL;
	la.rstdpa = la.rstdpm = NULL;
	la.qp = la.q;		/* the q/k norms in place */
	la.kp = la.k;
	la.xmid = x;
	la.ln2 = la.ln1;
	la.h = la.g;
	be->rope_table(bx, a->cs, a->pos, net->freq, N, c->head_dim);
	if (net->freq_local != NULL)
		be->rope_table(bx, a->cs_local, a->pos, net->freq_local, N,
		    c->head_dim);
	net_embed(be, bx, &net->w, x, p->tokens, N, C, V);
	if (arch_of(c)->embed_scale)
		be->scale(bx, x, net_embed_scale(c), (size_t)N * C);
	for (int l = 0; l < c->n_layers; l++)
		block_forward(net, be, bx, l, &la, x, a->cs, &a->ab, N);
	/* The last token of each sequence: norm and lm_head on B rows. */
	if (N > B)
		be->gather(bx, xl, x, a->last, B, C);
	else
		xl = x;
	be->rmsnorm(bx, a->lnf, NULL, xl, net->w.norm, net->norm_offset, B, C,
	    c->norm_eps);
	if (c->lm_head)
		net_mm(be, bx, p->logits, a->lnf, net->w.out, net->w.out_h,
		    net->w.out_dt, NULL, NULL, B, C, V);
	if (c->lm_head && c->final_softcap > 0)
		be->softcap(bx, p->logits, (REAL)c->final_softcap, (size_t)B * V);
}

/* Multiply-adds of one token's pass: a hint for be->run. */
static double
net_macs(const struct model_config *c)
{
	double C = c->dim, Q = model_q_dim(c), KV = model_kv_dim(c);
	double F = c->hidden_dim;

	return c->n_layers * (C * (Q + 2 * KV) + Q * C + 3 * C * F) +
	    C * c->vocab_size;
}

static void __attribute__((unused))
net_infer(struct net *net, const struct BACKEND *be, void *bx,
    struct kv_cache **kv, int B, const int *ntok, const int *tokens,
    REAL *logits)
{
	const struct model_config *c = &net->cfg;
	struct acts *a = &net->a;
	int N = 0, maxL = 0, off = 0;
	struct infer p;

	for (int s = 0; s < B; s++) {
		if (ntok[s] < 1)
			errx(EXIT_DATA, "model_extend: sequence %d has no "
			    "new tokens", s);
		if (kv[s]->len + ntok[s] > kv[s]->cap)
			errx(EXIT_DATA, "model_extend: KV cache full (%d + %d "
			    "> %d positions)", kv[s]->len, ntok[s],
			    kv[s]->cap);
		N += ntok[s];
		if (kv[s]->len + ntok[s] > maxL)
			maxL = kv[s]->len + ntok[s];
	}
	acts_reserve(net, N, B, 0);
	for (int s = 0; s < B; s++) {
		a->qoff[s] = off;
		a->nq[s] = ntok[s];
		a->p0[s] = kv[s]->len;
		a->last[s] = off + ntok[s] - 1;
		for (int i = 0; i < ntok[s]; i++)
			a->pos[off + i] = kv[s]->len + i;
		off += ntok[s];
	}
	a->ab = (struct attn_batch){ B, a->qoff, a->nq, a->p0, NULL, kv,
	    maxL };
	a->N = 0;		/* nothing for model_backward */
	a->drop = 0;		/* no dropout outside training */
	p = (struct infer){ net, be, bx, N, B, tokens, logits };
	be->run(bx, infer_body, &p, (double)N * net_macs(c));
	for (int s = 0; s < B; s++)
		kv[s]->len += ntok[s];
}
