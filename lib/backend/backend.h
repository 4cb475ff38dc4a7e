/*
 * backend.h: the operations the decoder block (lib/model/model_impl.h) is
 * written over, and the KV cache they read and write.  The block and the
 * network around it never touch numbers themselves: they call these, so a
 * second implementation (a GPU's) can be added as one more table of
 * functions without changing the block.
 *
 * Two implementations on the CPU:
 *
 *   backend_cpu (cpu.c, cpu_impl.h): OpenBLAS single-threaded, cut into
 *     slabs across OpenMP threads by shape only, so results are the same
 *     bits whatever the thread count.  Training forward and backward, and
 *     prefill (model_extend).  Each operation opens its own parallel
 *     region when it is large enough.
 *   backend_cpu_decode (cpu_decode.c): decoding steps of single tokens
 *     for a batch of sequences.  Every output element is the same sequence
 *     of operations whatever the batch size, a row's place in it, or the
 *     threads (AVX2 with FMA chosen at run time, the plain path with
 *     PREFPIPE_NO_AVX2 set), so a sample never depends on its batch.  It
 *     has no backward operations.
 *
 * Execution.  A pass (a forward, a backward, a decoding step) is handed to
 * run(), which calls fn(arg) once in each thread of the team it chooses
 * (backend_cpu: the calling thread alone; backend_cpu_decode: one OpenMP
 * team for the whole step when the step is large enough).  fn then calls
 * the operations, every thread with the same arguments, and computes
 * nothing but pointers and sizes in its own locals.  An operation returns
 * in every thread once its outputs are complete and visible to all of
 * them.  Operations outside run() act as with a team of one.
 *
 * Shapes: N rows (tokens), linear layers as PyTorch stores them, w (O,K),
 * out (N,O) = x (N,K) w^T.  Pointers NULL where the text says "or NULL".
 * The table is written once for an element type T by BACKEND_OPS: the
 * library's backends are float (struct backend); the double-precision
 * gradient check builds the same table for double (tests/unit_model_grad.c).
 *
 * Weights in 16 bits.  A frozen matrix may be held in bf16 or f16 as a
 * checkpoint stores it (half the memory, and half the bytes a decoding
 * step must read); the _h operations take it so.  Activations, norms,
 * biases and the KV cache stay T.  backend_cpu widens panels of w into
 * scratch and calls the same sgemm on the same shapes, so its results are
 * those of the widened weights; backend_cpu_decode reads the 16-bit rows
 * directly (AVX2: eight at a time zero-extended and shifted for bf16,
 * F16C's vcvtph2ps for f16) in the same order of operations as fp32, so
 * its results are the bits of the widened weights'.
 */
#ifndef PREFPIPE_BACKEND_H
#define PREFPIPE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "tensors/tensor.h"	/* enum dtype: a 16-bit weight's type */

/*
 * --compute bf16: or'ed into a bf16 weight's wt in the forward products
 * (matmul_h, matmul_shared_h), it asks for bf16 arithmetic, as the CPU's
 * bf16 dot-product instructions do it: x rounded to bf16 (to nearest,
 * ties to even) first, each product of two bf16 values exact in fp32,
 * the sums in fp32.  The backward product (dx) ignores it.
 */
#define DT_XBF16 0x100

/*
 * The keys and values one sequence has seen, for every layer, in fp32.
 * A fork shares the positions its base held when it was made, a prompt
 * read once for all its samples, and holds only its own after.
 *
 * When every layer has a sliding window (window > 0), no query reaches a
 * key more than window - 1 positions back, so a cache keeps only its
 * last slots positions in a ring: position p (>= off) is at slot
 * (p - off) % slots, and decoding memory is bounded by the window, not
 * by cap.  Without windows slots is cap - off and the ring never wraps.
 */
struct kv_cache {
	int len;		/* positions filled, the base's included */
	int cap;		/* positions it can hold, the base's included */
	int slots;		/* positions it keeps of its own (from off) */
	int window;		/* the widest layer's window; 0: some layer
				 * sees every position */
	int nlayers, kvdim;
	const struct kv_cache *base;	/* a fork's shared prefix, or NULL */
	int off;		/* the positions in base (0 without one) */
	float *k;		/* (nlayers, slots, kvdim): positions off.. */
	float *v;		/* (nlayers, slots, kvdim) */
};

/* Where position p (off <= p < len, still kept) of layer l is in kc. */
static inline size_t
kv_row(const struct kv_cache *kc, int l, int p)
{
	return ((size_t)l * kc->slots + (size_t)((p - kc->off) % kc->slots)) *
	    kc->kvdim;
}

/*
 * Positions from .. to - 1 of layer l in kc's own storage (off <= from,
 * to <= len, none overwritten yet) as at most two runs of rows, the ring's
 * tail then its head: k[r], v[r], n[r] for r < 2 (n[1] may be 0).
 */
static inline void
kv_runs(const struct kv_cache *kc, int l, int from, int to,
    const float *k[2], const float *v[2], int n[2])
{
	int first = (from - kc->off) % kc->slots;
	int len = to - from;

	n[0] = len < kc->slots - first ? len : kc->slots - first;
	n[1] = len - n[0];
	k[0] = kc->k + kv_row(kc, l, from);
	v[0] = kc->v + kv_row(kc, l, from);
	k[1] = kc->k + (size_t)l * kc->slots * kc->kvdim;
	v[1] = kc->v + (size_t)l * kc->slots * kc->kvdim;
}

/*
 * The sequences of a pass, for attention.  Sequence s has nq[s] queries
 * at rows qoff[s].. of the pass, at positions p0[s] .. p0[s]+nq[s]-1.
 * Training (kv NULL): p0 is 0 and the keys and values are the pass's own
 * rows.  With caches (kv[s]): attention first appends the sequence's new
 * keys and values at position kv[s]->len == p0[s] of the layer (len is
 * not changed: the caller advances it after the pass), then reads
 * positions 0 .. p0+nq-1 there.  aoff[s]: where the sequence's
 * probabilities (H, nq, p0 + nq) start in att, when they are kept.
 */
struct attn_batch {
	int nseq;
	const int *qoff, *nq, *p0;
	const size_t *aoff;		/* or NULL */
	struct kv_cache *const *kv;	/* (nseq) or NULL */
	int maxL;			/* the largest p0 + nq */
};

/* Attention's shape and attributes for one layer. */
struct attn_shape {
	int H, KVH, hd;		/* query heads, kv heads, head_dim */
	double scale;		/* scores are scale * q.k */
	int window;		/* > 0: a query sees its last window positions */
	double softcap;		/* > 0: scores become softcap * tanh(s /
				 * softcap) before the mask (Gemma 2) */
};

#define BACKEND_OPS(T)							\
	/* Run fn(arg) in the pass's team; work: multiply-adds, a hint. */ \
	void (*run)(void *ctx, void (*fn)(void *), void *arg, double work); \
	/* out (N,O) = x w^T + bias + res; res (N,O) may be out (the	\
	 * residual stream), bias and res may be NULL. */		\
	void (*matmul)(void *ctx, T *out, const T *x, const T *w,	\
	    const T *bias, const T *res, int N, int K, int O);		\
	/* n products of the same x (q, k and v; gate and up):		\
	 * out[j] (N,O[j]) = x w[j]^T + bias[j]. */			\
	void (*matmul_shared)(void *ctx, int n, T *const *out,		\
	    const T *x, const T *const *w, const T *const *bias,	\
	    const int *O, int N, int K);				\
	/* dx (N,K) = dout w (added when acc); dw (O,K) += dout^T x;	\
	 * dbias (O) += column sums of dout.  dx, dw, dbias may be NULL: \
	 * a frozen weight costs no dW product. */			\
	void (*matmul_backward)(void *ctx, T *dx, T *dw, T *dbias,	\
	    const T *dout, const T *x, const T *w, int N, int K, int O,	\
	    int acc);							\
	/* The same three with a 16-bit w (O,K) as a checkpoint stores	\
	 * it (wt DT_BF16 or DT_F16; a frozen matrix, model_from_ckpt_opts): each	\
	 * element widened to T inside, products and sums in T, so the	\
	 * results are those of w widened first.  A 16-bit weight has no \
	 * gradient: its backward is dx (N,K) = dout w (added when acc). */ \
	void (*matmul_h)(void *ctx, T *out, const T *x, const uint16_t *w, \
	    enum dtype wt, const T *bias, const T *res, int N, int K,	\
	    int O);							\
	void (*matmul_shared_h)(void *ctx, int n, T *const *out,	\
	    const T *x, const uint16_t *const *w, enum dtype wt,	\
	    const T *const *bias, const int *O, int N, int K);		\
	void (*matmul_backward_h)(void *ctx, T *dx, const T *dout,	\
	    const uint16_t *w, enum dtype wt, int N, int K, int O,	\
	    int acc);							\
	/* out (N,C) = x / rms(x) * (wofs + w); rstd (N) kept, or NULL. */ \
	void (*rmsnorm)(void *ctx, T *out, T *rstd, const T *x,		\
	    const T *w, T wofs, int N, int C, T eps);			\
	/* dx (N,C) += d/dx; dw (C) += d/dw (or NULL: frozen). */	\
	void (*rmsnorm_backward)(void *ctx, T *dx, T *dw, const T *dout, \
	    const T *x, const T *w, T wofs, const T *rstd, int N, int C); \
	/* cs (N,hd): cos and sin of pos[n] * freq[j], j < hd/2. */	\
	void (*rope_table)(void *ctx, T *cs, const int *pos,		\
	    const T *freq, int N, int hd);				\
	/* Rotate the heads of q (N,H*hd) and k (N,KVH*hd) in place, HF's \
	 * rotate-half convention; sign -1: the inverse (backward). */	\
	void (*rope)(void *ctx, T *q, T *k, const T *cs, int N, int H,	\
	    int KVH, int hd, int sign);					\
	/* Causal grouped-query attention: out (N,H*hd) from q (N,H*hd), \
	 * k, v (N,KVH*hd), of layer l (see struct attn_batch).  att	\
	 * keeps the probabilities for the backward pass, or NULL. */	\
	void (*attention)(void *ctx, T *out, T *att, const T *q,	\
	    const T *k, const T *v, const struct attn_batch *ab, int l,	\
	    const struct attn_shape *sh);				\
	/* dq, dk, dv (overwritten) from dout, training (kv NULL). */	\
	void (*attention_backward)(void *ctx, T *dq, T *dk, T *dv,	\
	    const T *dout, const T *q, const T *k, const T *v,		\
	    const T *att, const struct attn_batch *ab,			\
	    const struct attn_shape *sh);				\
	/* h (n) = silu(g) * u; h may be g. */				\
	void (*swiglu)(void *ctx, T *h, const T *g, const T *u, size_t n); \
	/* dg, du (n) from dh; dg may be dh. */				\
	void (*swiglu_backward)(void *ctx, T *dg, T *du, const T *dh,	\
	    const T *g, const T *u, size_t n);				\
	/* h (n) = gelu_tanh(g) * u (gelu_pytorch_tanh); h may be g. */ \
	void (*geglu)(void *ctx, T *h, const T *g, const T *u, size_t n); \
	/* dg, du (n) from dh; dg may be dh. */				\
	void (*geglu_backward)(void *ctx, T *dg, T *du, const T *dh,	\
	    const T *g, const T *u, size_t n);				\
	/* out (n) = a + b; out may be a or b. */			\
	void (*add)(void *ctx, T *out, const T *a, const T *b, size_t n); \
	/* x (n) *= s in place (Gemma's embedding normalizer). */	\
	void (*scale)(void *ctx, T *x, T s, size_t n);			\
	/* x (n) = cap * tanh(x / cap) in place (final logit softcap). */ \
	void (*softcap)(void *ctx, T *x, T cap, size_t n);		\
	/* x (N,C) = rows tok[n] of E (V,C); a token outside is an error. */ \
	void (*embed)(void *ctx, T *x, const T *E, const int *tok, int N, \
	    int C, int V);						\
	/* The same from a 16-bit table E (V,C) of type et. */		\
	void (*embed_h)(void *ctx, T *x, const uint16_t *E, enum dtype et, \
	    const int *tok, int N, int C, int V);			\
	/* dE (V,C) += dx at rows tok[n]. */				\
	void (*embed_backward)(void *ctx, T *dE, const T *dx,		\
	    const int *tok, int N, int C);				\
	/* dst (n,C) = rows row[i] of src. */				\
	void (*gather)(void *ctx, T *dst, const T *src, const int *row,	\
	    int n, int C);						\
	/* lse (N) = logsumexp of each row of logits (N,V); lp (N) =	\
	 * logit[target] - lse (0 where target < 0), or NULL. */	\
	void (*logprob)(void *ctx, T *lp, T *lse, const T *logits,	\
	    const int *targets, int N, int V);				\
	/* logits (N,V) become d loss / d logits, from dlp (N) or NULL; \
	 * cap > 0: the logits were softcap(raw, cap) and the gradient	\
	 * is taken on to the raw ones. */				\
	void (*logprob_backward)(void *ctx, T *logits, const T *lse,	\
	    const T *dlp, const int *targets, int N, int V, T cap);	\
	/* AdamW on n parameters: m, v moments; decayed if wd != 0;	\
	 * bc1 = 1 - b1^t, bc2 = 1 - b2^t. */				\
	void (*adamw)(void *ctx, T *p, const T *g, T *m, T *v, size_t n, \
	    double lr, double b1, double b2, double eps, double wd,	\
	    double bc1, double bc2);

struct backend {
	const char *name;
	void *(*ctx_new)(void);		/* scratch of one user */
	void (*ctx_free)(void *ctx);
	BACKEND_OPS(float)
};

extern const struct backend backend_cpu;
extern const struct backend backend_cpu_decode;

#endif
