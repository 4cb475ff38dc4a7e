/*
 * model_impl.h: the arithmetic of the network, written once for a
 * floating-point type REAL and included twice: by lib/model/model.c with REAL
 * float (the library), and by tests/unit_model_grad.c with REAL double,
 * where finite differences of every operation and of the whole loss are
 * precise enough to check the backward pass.  Everything here is static.
 *
 * Reading order: the kernels (matmul, rmsnorm, rope, attention, swiglu,
 * log-softmax), each forward followed by its backward; then the network:
 * where each weight lives, the activations a forward pass keeps,
 * layer_forward, layer_backward, net_forward, net_backward, and the
 * cached decoding step net_extend.
 *
 * Shapes in comments: N tokens of the packed batch, C = dim, Q = n_heads *
 * head_dim, KV = n_kv_heads * head_dim, F = hidden_dim, V = vocab, T the
 * length of one sequence, hd = head_dim.
 *
 * Determinism: every parallel loop writes disjoint outputs, and every
 * reduction runs in a fixed order inside one thread, so results do not
 * depend on the number of threads.
 */
#ifndef REAL
#error "define REAL (float or double) before including model_impl.h"
#endif

#include <cblas.h>
#include <err.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>
#undef I		/* complex.h's imaginary unit: I is an input width here */

#include "model/model.h"
#include "util/util.h"

/* ------------------------------------------------------------------------ */
/*
 * Matrix products, row-major.  OpenBLAS runs single-threaded and the
 * threads are OpenMP's: a large product is cut into slabs of GEMM_SLAB
 * output rows (or columns), each a full-depth sgemm, spread over the
 * threads.  The cut depends only on the shape, never on the thread count,
 * because OpenBLAS does not sum the same way for every slab shape; so the
 * bits of every result are the same with 1 thread or 16.  And two thread
 * pools never spin against each other on the same cores.
 */
#define GEMM_SLAB 128

/*
 * Loops over fewer elements than this run in the calling thread: waking
 * the team costs more than they do, and a tiny model (the tests) then
 * never pays for barriers, even on a loaded machine.
 */
#define PAR_MIN 32768
#define PAR(n) ((n) >= PAR_MIN)

/* One cblas call in the calling thread. */
static void
gemm1(int transa, int transb, int M, int N, int K, REAL alpha, const REAL *A,
    int lda, const REAL *B, int ldb, REAL beta, REAL *C, int ldc)
{
	enum CBLAS_TRANSPOSE ta = transa ? CblasTrans : CblasNoTrans;
	enum CBLAS_TRANSPOSE tb = transb ? CblasTrans : CblasNoTrans;

	if (M <= 0 || N <= 0)
		return;
	if (sizeof(REAL) == sizeof(float))
		cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha,
		    (const float *)A, lda, (const float *)B, ldb, beta,
		    (float *)C, ldc);
	else
		cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, alpha,
		    (const double *)A, lda, (const double *)B, ldb, beta,
		    (double *)C, ldc);
}

/* C (M,N) = alpha op(A) (M,K) op(B) (K,N) + beta C, over all threads. */
static void
gemm(int transa, int transb, int M, int N, int K, REAL alpha, const REAL *A,
    int lda, const REAL *B, int ldb, REAL beta, REAL *C, int ldc)
{
	static int blas_single;
	int splitm = M >= N, len = splitm ? M : N, nslab;

	if (!blas_single) {
		openblas_set_num_threads(1);
		blas_single = 1;
	}
	nslab = (double)M * N * K < (1 << 18) ? 1 :
	    (len + GEMM_SLAB - 1) / GEMM_SLAB;
#pragma omp parallel for schedule(dynamic) if (nslab > 1)
	for (int t = 0; t < nslab; t++) {
		int i0 = t * GEMM_SLAB;
		int n = nslab == 1 ? len : len - i0 < GEMM_SLAB ? len - i0 :
		    GEMM_SLAB;

		if (splitm)
			gemm1(transa, transb, n, N, K, alpha,
			    transa ? A + i0 : A + (size_t)i0 * lda, lda, B, ldb,
			    beta, C + (size_t)i0 * ldc, ldc);
		else
			gemm1(transa, transb, M, n, K, alpha, A, lda,
			    transb ? B + (size_t)i0 * ldb : B + i0, ldb, beta,
			    C + i0, ldc);
	}
}

/*
 * The build targets baseline x86-64 (SSE2); these loops are where decoding
 * spends its time, so on x86-64 they are also compiled for AVX2 with FMA,
 * picked at load time.
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HOT_CLONES __attribute__((target_clones("arch=haswell", "default")))
#else
#define HOT_CLONES
#endif

/*
 * out (N,O) = inp (N,I) @ w^T for a few rows (decoding).  sgemm would
 * repack all of w on every call, costing more than the product; instead w
 * is streamed once, four weight rows at a time, each dotted with four
 * input rows at once: sixteen running sums in vector registers, so the
 * loop is bound by arithmetic, not loads.  Leftover rows take the plain
 * dot product.  Which path an output takes depends only on the shape.
 */
static HOT_CLONES void
dot_rows(REAL *out, const REAL *inp, const REAL *w, int n0, int N, int I,
    int O, int o, int accumulate)
{
	const REAL *wo = w + (size_t)o * I;

	for (int n = n0; n < N; n++) {
		const REAL *x = inp + (size_t)n * I;
		REAL s = 0;
#pragma omp simd reduction(+:s)
		for (int i = 0; i < I; i++)
			s += x[i] * wo[i];
		out[(size_t)n * O + o] = accumulate ?
		    out[(size_t)n * O + o] + s : s;
	}
}

/* out[n0..n0+3][o..o+3] = x rows n0.. dotted with w rows o..: 4 x 4 sums. */
static HOT_CLONES void
dot_block4(REAL *out, const REAL *inp, const REAL *w, int n, int I, int O,
    int o, int accumulate)
{
	const REAL *w0 = w + (size_t)o * I, *w1 = w0 + I;
	const REAL *w2 = w1 + I, *w3 = w2 + I;
	const REAL *x0 = inp + (size_t)n * I, *x1 = x0 + I;
	const REAL *x2 = x1 + I, *x3 = x2 + I;
	REAL s00 = 0, s01 = 0, s02 = 0, s03 = 0;
	REAL s10 = 0, s11 = 0, s12 = 0, s13 = 0;
	REAL s20 = 0, s21 = 0, s22 = 0, s23 = 0;
	REAL s30 = 0, s31 = 0, s32 = 0, s33 = 0;

#pragma omp simd reduction(+:s00,s01,s02,s03,s10,s11,s12,s13,s20,s21,s22,s23,s30,s31,s32,s33)
	for (int i = 0; i < I; i++) {
		REAL a0 = x0[i], a1 = x1[i], a2 = x2[i], a3 = x3[i];
		REAL b0 = w0[i], b1 = w1[i], b2 = w2[i], b3 = w3[i];
		s00 += a0 * b0; s01 += a0 * b1; s02 += a0 * b2; s03 += a0 * b3;
		s10 += a1 * b0; s11 += a1 * b1; s12 += a1 * b2; s13 += a1 * b3;
		s20 += a2 * b0; s21 += a2 * b1; s22 += a2 * b2; s23 += a2 * b3;
		s30 += a3 * b0; s31 += a3 * b1; s32 += a3 * b2; s33 += a3 * b3;
	}
	REAL r[4][4] = { { s00, s01, s02, s03 }, { s10, s11, s12, s13 },
	    { s20, s21, s22, s23 }, { s30, s31, s32, s33 } };
	for (int a = 0; a < 4; a++)
		for (int b = 0; b < 4; b++) {
			REAL *d = out + (size_t)(n + a) * O + o + b;
			*d = accumulate ? *d + r[a][b] : r[a][b];
		}
}

static void
matmul_few(REAL *out, const REAL *inp, const REAL *w, int N, int I, int O,
    int accumulate)
{
	int nob = O / 4;

#pragma omp parallel for if (PAR((size_t)O * N * I))
	for (int ob = 0; ob <= nob; ob++) {
		int o = ob * 4, n = 0;

		if (ob == nob) {	/* the last O % 4 weight rows */
			for (; o < O; o++)
				dot_rows(out, inp, w, 0, N, I, O, o, accumulate);
			continue;
		}
		for (; n + 4 <= N; n += 4)
			dot_block4(out, inp, w, n, I, O, o, accumulate);
		for (int b = 0; b < 4; b++)	/* the last N % 4 input rows */
			dot_rows(out, inp, w, n, N, I, O, o + b, accumulate);
	}
}

/* Below this many rows a linear layer is a set of dot products. */
#define MATMUL_FEW_ROWS 16

/*
 * A linear layer as PyTorch stores it: out (N,O) = inp (N,I) @ w^T + bias,
 * w (O,I).  accumulate adds to out instead (the residual connections).
 */
static void
matmul_forward(REAL *out, const REAL *inp, const REAL *w, const REAL *bias,
    int N, int I, int O, int accumulate)
{
	if (N < MATMUL_FEW_ROWS)
		matmul_few(out, inp, w, N, I, O, accumulate);
	else
		gemm(0, 1, N, O, I, 1, inp, I, w, I, accumulate ? 1 : 0, out,
		    O);
	if (bias != NULL) {
#pragma omp parallel for if (PAR((size_t)N * O))
		for (int n = 0; n < N; n++)
			for (int o = 0; o < O; o++)
				out[(size_t)n * O + o] += bias[o];
	}
}

/*
 * dinp (N,I) = dout (N,O) @ w (set, or added when accumulate: q, k and v
 * share one input); dw (O,I) += dout^T @ inp; dbias (O) += column sums.
 */
static void
matmul_backward(REAL *dinp, REAL *dw, REAL *dbias, const REAL *dout,
    const REAL *inp, const REAL *w, int N, int I, int O, int accumulate)
{
	if (dinp != NULL)
		gemm(0, 0, N, I, O, 1, dout, O, w, I, accumulate ? 1 : 0,
		    dinp, I);
	gemm(1, 0, O, I, N, 1, dout, O, inp, I, 1, dw, I);
	if (dbias != NULL) {
		/* One output column per iteration: a fixed summation order. */
#pragma omp parallel for if (PAR((size_t)N * O))
		for (int o = 0; o < O; o++) {
			REAL s = 0;
			for (int n = 0; n < N; n++)
				s += dout[(size_t)n * O + o];
			dbias[o] += s;
		}
	}
}

/* ------------------------------------------------------------------------ */
/* RMSNorm: out = w * x / sqrt(mean(x^2) + eps), rstd (N) kept for backward. */

static void
rmsnorm_forward(REAL *out, REAL *rstd, const REAL *x, const REAL *w, int N,
    int C, REAL eps)
{
#pragma omp parallel for if (PAR((size_t)N * C))
	for (int n = 0; n < N; n++) {
		const REAL *xn = x + (size_t)n * C;
		REAL *on = out + (size_t)n * C, ss = 0, r;

		for (int c = 0; c < C; c++)
			ss += xn[c] * xn[c];
		r = 1 / sqrt(ss / C + eps);
		for (int c = 0; c < C; c++)
			on[c] = w[c] * (xn[c] * r);
		rstd[n] = r;
	}
}

/*
 * With xhat = x * r and y = w * xhat:
 *   dx = r * (w*dy - xhat * mean(w*dy*xhat)),  dw = sum over rows dy*xhat.
 * dx is added (it is the residual stream's gradient).
 */
static void
rmsnorm_backward(REAL *dx, REAL *dw, const REAL *dout, const REAL *x,
    const REAL *w, const REAL *rstd, int N, int C)
{
#pragma omp parallel for if (PAR((size_t)N * C))
	for (int n = 0; n < N; n++) {
		const REAL *xn = x + (size_t)n * C, *dn = dout + (size_t)n * C;
		REAL *dxn = dx + (size_t)n * C, r = rstd[n], dot = 0;

		for (int c = 0; c < C; c++)
			dot += w[c] * dn[c] * xn[c] * r;
		dot /= C;
		for (int c = 0; c < C; c++)
			dxn[c] += r * (w[c] * dn[c] - xn[c] * r * dot);
	}
	/* Columns in parallel, rows in order: deterministic. */
#pragma omp parallel for if (PAR((size_t)N * C))
	for (int c = 0; c < C; c++) {
		REAL s = 0;
		for (int n = 0; n < N; n++)
			s += dout[(size_t)n * C + c] * x[(size_t)n * C + c] *
			    rstd[n];
		dw[c] += s;
	}
}

/* ------------------------------------------------------------------------ */
/*
 * Rotary position embeddings, HF's rotate-half convention: in each head,
 * element j < hd/2 rotates with element j + hd/2 by angle pos * freq[j].
 */

/*
 * The frequencies (hd/2), with llama3 scaling: long wavelengths are slowed
 * by factor, short ones kept, the band between interpolated smoothly.
 */
static void
rope_freqs(REAL *freq, const struct model_config *c)
{
	int half = c->head_dim / 2;

	for (int j = 0; j < half; j++) {
		double f = 1.0 / pow(c->rope_theta, 2.0 * j / c->head_dim);

		if (c->rope_scaling == ROPE_LLAMA3) {
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

/* cs (N, hd) = cos (first half) and sin (second half) at each position. */
static void
rope_table(REAL *cs, const int *pos, const REAL *freq, int N, int hd)
{
	int half = hd / 2;

#pragma omp parallel for if (PAR((size_t)N * hd))
	for (int n = 0; n < N; n++)
		for (int j = 0; j < half; j++) {
			REAL a = (REAL)pos[n] * freq[j];
			cs[(size_t)n * hd + j] = cos(a);
			cs[(size_t)n * hd + half + j] = sin(a);
		}
}

/* Rotate x (N, nh*hd) in place; sign -1 applies the inverse (backward). */
static void
rope_apply(REAL *x, const REAL *cs, int N, int nh, int hd, int sign)
{
	int half = hd / 2;

#pragma omp parallel for if (PAR((size_t)N * nh * hd))
	for (int n = 0; n < N; n++) {
		const REAL *cn = cs + (size_t)n * hd, *sn = cn + half;
		for (int h = 0; h < nh; h++) {
			REAL *xh = x + ((size_t)n * nh + h) * hd;
			for (int j = 0; j < half; j++) {
				REAL a = xh[j], b = xh[j + half];
				REAL co = cn[j], si = sign * sn[j];
				xh[j] = a * co - b * si;
				xh[j + half] = b * co + a * si;
			}
		}
	}
}

/* ------------------------------------------------------------------------ */
/*
 * Causal grouped-query attention over packed sequences.  Sequence s has
 * nq[s] queries starting at row qoff[s] of q, at positions p0[s] ..
 * p0[s]+nq[s]-1; its keys and values are rows 0 .. p0[s]+nq[s]-1 of
 * kb[s], vb[s] (row stride KV): the packed batch itself when training,
 * a KV cache when decoding.  Query head h reads kv head h / (H / KVH).
 */
struct attn_seqs {
	int nseq;
	int *qoff, *nq, *p0;
	size_t *aoff;		/* offset of the sequence's probabilities */
	const REAL **kb, **vb;
};

/* Probabilities a sequence keeps: (H, nq, p0 + nq). */
static size_t
attn_probs_size(int H, int nq, int p0)
{
	return (size_t)H * nq * (p0 + nq);
}

/*
 * Queries are taken ATT_ROWS at a time: each block is two small sgemms
 * (scores against the keys it can see, then probabilities times values)
 * in the thread that owns the (sequence, head), and a block only reaches
 * the keys up to its last query, so little of the causal triangle's
 * masked half is computed.
 */
#ifndef ATT_ROWS
#define ATT_ROWS 64
#endif

/*
 * out (N,Q).  att, if not NULL, keeps each (s, h) block of probabilities
 * (nq, L) with zeros above the diagonal; else rowbuf gives each thread a
 * scratch of ATT_ROWS * maxL.
 */
static void
attention_forward(REAL *out, REAL *att, REAL *rowbuf, int maxL,
    const REAL *q, const struct attn_seqs *as, int H, int KVH, int hd)
{
	int Q = H * hd, KV = KVH * hd, grp = H / KVH;
	REAL scale = 1 / sqrt((REAL)hd);
	size_t work = 0;

	for (int s = 0; s < as->nseq; s++)
		work += (size_t)as->nq[s] * (as->p0[s] + as->nq[s]) * Q;
#pragma omp parallel for schedule(dynamic) if (PAR(work))
	for (int sh = 0; sh < as->nseq * H; sh++) {
		int s = sh / H, h = sh % H, g = h / grp;
		int n = as->nq[s], p0 = as->p0[s], L = p0 + n;
		const REAL *kb = as->kb[s] + (size_t)g * hd;
		const REAL *vb = as->vb[s] + (size_t)g * hd;
		const REAL *qh = q + (size_t)as->qoff[s] * Q + (size_t)h * hd;
		REAL *oh = out + (size_t)as->qoff[s] * Q + (size_t)h * hd;

		for (int i0 = 0; i0 < n; i0 += ATT_ROWS) {
			int r = n - i0 < ATT_ROWS ? n - i0 : ATT_ROWS;
			int Lc = p0 + i0 + r;	/* keys the block sees */
			int ld = att != NULL ? L : maxL;
			REAL *P = att != NULL ?
			    att + as->aoff[s] + ((size_t)h * n + i0) * L :
			    rowbuf + (size_t)omp_get_thread_num() * ATT_ROWS *
			    maxL;

			/* S (r, Lc) = Q_blk K^T */
			gemm1(0, 1, r, Lc, hd, scale, qh + (size_t)i0 * Q, Q,
			    kb, KV, 0, P, ld);
			for (int i = 0; i < r; i++) {
				REAL *p = P + (size_t)i * ld, mx = -INFINITY;
				REAL sum = 0;
				int last = p0 + i0 + i;	/* own position */

				for (int j = 0; j <= last; j++)
					if (p[j] > mx)
						mx = p[j];
				for (int j = 0; j <= last; j++) {
					p[j] = exp(p[j] - mx);
					sum += p[j];
				}
				for (int j = 0; j <= last; j++)
					p[j] /= sum;
				for (int j = last + 1; j < (att != NULL ? L : Lc);
				    j++)
					p[j] = 0;
			}
			/* O_blk (r, hd) = P V */
			gemm1(0, 0, r, hd, Lc, 1, P, ld, vb, KV, 0,
			    oh + (size_t)i0 * Q, Q);
		}
	}
}

/*
 * Backward of training attention (p0 = 0, keys in the batch itself).
 * dq (N,Q), dk (N,KV), dv (N,KV) are overwritten.  With P the
 * probabilities and S the scaled scores, for each block of queries:
 *   dV += P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(P * dP)),
 *   dQ = scale dS K,  dK += scale dS^T Q.
 * One (sequence, kv head) per iteration, so the query heads that share a
 * kv head add to its dK, dV in a fixed order and no two threads write the
 * same rows.  rowbuf: ATT_ROWS * maxL per thread.
 */
static void
attention_backward(REAL *dq, REAL *dk, REAL *dv, const REAL *dout,
    const REAL *q, const REAL *k, const REAL *v, const REAL *att,
    REAL *rowbuf, int maxL, const struct attn_seqs *as, int H, int KVH,
    int hd)
{
	int Q = H * hd, KV = KVH * hd, grp = H / KVH;
	REAL scale = 1 / sqrt((REAL)hd);
	size_t work = 0;

	for (int s = 0; s < as->nseq; s++)
		work += (size_t)as->nq[s] * as->nq[s] * Q;
#pragma omp parallel for schedule(dynamic) if (PAR(work))
	for (int sg = 0; sg < as->nseq * KVH; sg++) {
		int s = sg / KVH, g = sg % KVH, n = as->nq[s];
		size_t o = as->qoff[s];
		REAL *dS = rowbuf + (size_t)omp_get_thread_num() * ATT_ROWS *
		    maxL;
		const REAL *kg = k + o * KV + g * hd, *vg = v + o * KV + g * hd;
		REAL *dkg = dk + o * KV + g * hd, *dvg = dv + o * KV + g * hd;

		for (int i = 0; i < n; i++)
			for (int e = 0; e < hd; e++) {
				dkg[(size_t)i * KV + e] = 0;
				dvg[(size_t)i * KV + e] = 0;
			}
		for (int h = g * grp; h < (g + 1) * grp; h++) {
			const REAL *doh = dout + o * Q + h * hd;
			const REAL *qh = q + o * Q + h * hd;
			REAL *dqh = dq + o * Q + h * hd;

			for (int i0 = 0; i0 < n; i0 += ATT_ROWS) {
				int r = n - i0 < ATT_ROWS ? n - i0 : ATT_ROWS;
				int Lc = i0 + r;
				const REAL *P = att + as->aoff[s] +
				    ((size_t)h * n + i0) * n;

				/* dV (Lc, hd) += P_blk^T dO_blk */
				gemm1(1, 0, Lc, hd, r, 1, P, n,
				    doh + (size_t)i0 * Q, Q, 1, dvg, KV);
				/* dP (r, Lc) = dO_blk V^T */
				gemm1(0, 1, r, Lc, hd, 1, doh + (size_t)i0 * Q,
				    Q, vg, KV, 0, dS, Lc);
				for (int i = 0; i < r; i++) {
					const REAL *p = P + (size_t)i * n;
					REAL *d = dS + (size_t)i * Lc, rs = 0;
					int last = i0 + i;

					for (int j = 0; j <= last; j++)
						rs += p[j] * d[j];
					for (int j = 0; j <= last; j++)
						d[j] = p[j] * (d[j] - rs) * scale;
					for (int j = last + 1; j < Lc; j++)
						d[j] = 0;
				}
				/* dQ_blk (r, hd) = dS K;  dK (Lc, hd) += dS^T Q_blk */
				gemm1(0, 0, r, hd, Lc, 1, dS, Lc, kg, KV, 0,
				    dqh + (size_t)i0 * Q, Q);
				gemm1(1, 0, Lc, hd, r, 1, dS, Lc,
				    qh + (size_t)i0 * Q, Q, 1, dkg, KV);
			}
		}
	}
}

/* ------------------------------------------------------------------------ */
/* SwiGLU: h = silu(g) * u, silu(g) = g * sigmoid(g). */

static void
swiglu_forward(REAL *h, const REAL *g, const REAL *u, size_t n)
{
#pragma omp parallel for if (PAR(n))
	for (size_t i = 0; i < n; i++)
		h[i] = g[i] / (1 + exp(-g[i])) * u[i];
}

/* dg, du from dh; dg may be dh (each element is read before written). */
static void
swiglu_backward(REAL *dg, REAL *du, const REAL *dh, const REAL *g,
    const REAL *u, size_t n)
{
#pragma omp parallel for if (PAR(n))
	for (size_t i = 0; i < n; i++) {
		REAL sg = 1 / (1 + exp(-g[i])), d = dh[i];
		du[i] = d * g[i] * sg;
		dg[i] = d * u[i] * sg * (1 + g[i] * (1 - sg));
	}
}

/* ------------------------------------------------------------------------ */
/*
 * Log-probabilities of target tokens: lp = logit[y] - logsumexp(logits),
 * with the maximum subtracted first so no exp overflows.  lse (N) is kept.
 */
static void
logprob_forward(REAL *lp, REAL *lse, const REAL *logits, const int *targets,
    int N, int V)
{
#pragma omp parallel for if (PAR((size_t)N * V))
	for (int n = 0; n < N; n++) {
		const REAL *l = logits + (size_t)n * V;
		REAL mx = -INFINITY, s = 0;

		for (int i = 0; i < V; i++)
			if (l[i] > mx)
				mx = l[i];
		for (int i = 0; i < V; i++)
			s += exp(l[i] - mx);
		lse[n] = mx + log(s);
		if (lp != NULL)
			lp[n] = targets[n] >= 0 ? l[targets[n]] - lse[n] : 0;
	}
}

/*
 * d lp / d logit[i] = [i == y] - softmax[i]: the logits (N,V) are turned
 * into their gradient in place.
 */
static void
logprob_backward(REAL *logits, const REAL *lse, const REAL *dlp,
    const int *targets, int N, int V)
{
#pragma omp parallel for if (PAR((size_t)N * V))
	for (int n = 0; n < N; n++) {
		REAL *l = logits + (size_t)n * V;
		REAL d = dlp != NULL && targets != NULL && targets[n] >= 0 ?
		    dlp[n] : 0;

		for (int i = 0; i < V; i++)
			l[i] = d == 0 ? 0 : -d * exp(l[i] - lse[n]);
		if (d != 0)
			l[targets[n]] += d;
	}
}

/* ------------------------------------------------------------------------ */
/* Token embeddings: x[n] = E[tok[n]]; dE[tok[n]] += dx[n]. */

static void
embed_forward(REAL *x, const REAL *E, const int *tok, int N, int C, int V)
{
#pragma omp parallel for if (PAR((size_t)N * C))
	for (int n = 0; n < N; n++) {
		if (tok[n] < 0 || tok[n] >= V)
			errx(EXIT_DATA, "token %d is outside the vocabulary "
			    "(0..%d)", tok[n], V - 1);
		memcpy(x + (size_t)n * C, E + (size_t)tok[n] * C,
		    C * sizeof(REAL));
	}
}

/* Blocks of columns in parallel, tokens in order: repeated tokens add up
 * deterministically. */
static void
embed_backward(REAL *dE, const REAL *dx, const int *tok, int N, int C)
{
	int nb = (C + 63) / 64;

#pragma omp parallel for if (PAR((size_t)N * C))
	for (int b = 0; b < nb; b++) {
		int c0 = b * 64, c1 = c0 + 64 < C ? c0 + 64 : C;
		for (int n = 0; n < N; n++) {
			REAL *d = dE + (size_t)tok[n] * C;
			const REAL *s = dx + (size_t)n * C;
			for (int c = c0; c < c1; c++)
				d[c] += s[c];
		}
	}
}

/* ------------------------------------------------------------------------ */
/* The network: where each weight lives in the flat arrays. */

struct layer_w {
	REAL *ln1;		/* (C) input_layernorm */
	REAL *wq, *bq;		/* (Q,C), (Q) or NULL */
	REAL *wk, *bk;		/* (KV,C), (KV) */
	REAL *wv, *bv;		/* (KV,C), (KV) */
	REAL *wo;		/* (C,Q) */
	REAL *ln2;		/* (C) post_attention_layernorm */
	REAL *wg, *wu;		/* (F,C) gate_proj, up_proj */
	REAL *wd;		/* (C,F) down_proj */
};

struct weights {
	REAL *embed;		/* (V,C) */
	struct layer_w *layer;	/* (n_layers) */
	REAL *norm;		/* (C) */
	REAL *out;		/* (V,C): lm_head, or embed when tied */
	REAL *score;		/* (num_labels, C) or NULL */
};

/* Point w's fields into base, which is laid out as the tensor list says. */
static void
weights_point(struct weights *w, const struct model_config *c,
    const struct model_tensor *t, int nt, REAL *base)
{
	memset(w, 0, sizeof(*w));
	w->layer = xcalloc(c->n_layers, sizeof(*w->layer));
	for (int i = 0; i < nt; i++) {
		REAL *p = base + t[i].offset;
		const char *nm = t[i].name, *f;
		int l;

		if (strcmp(nm, "model.embed_tokens.weight") == 0)
			w->embed = p;
		else if (strcmp(nm, "model.norm.weight") == 0)
			w->norm = p;
		else if (strcmp(nm, "lm_head.weight") == 0)
			w->out = p;
		else if (strcmp(nm, "score.weight") == 0)
			w->score = p;
		else if (sscanf(nm, "model.layers.%d.", &l) == 1) {
			struct layer_w *L = &w->layer[l];
			f = strchr(nm + strlen("model.layers."), '.') + 1;
#define W(s, field) else if (strcmp(f, s) == 0) L->field = p
			if (0) ;
			W("input_layernorm.weight", ln1);
			W("self_attn.q_proj.weight", wq);
			W("self_attn.q_proj.bias", bq);
			W("self_attn.k_proj.weight", wk);
			W("self_attn.k_proj.bias", bk);
			W("self_attn.v_proj.weight", wv);
			W("self_attn.v_proj.bias", bv);
			W("self_attn.o_proj.weight", wo);
			W("post_attention_layernorm.weight", ln2);
			W("mlp.gate_proj.weight", wg);
			W("mlp.up_proj.weight", wu);
			W("mlp.down_proj.weight", wd);
#undef W
		}
	}
	if (c->lm_head && c->tie_embeddings)
		w->out = w->embed;
}

/* ------------------------------------------------------------------------ */
/* Activations a forward pass keeps for the backward pass. */

struct layer_acts {
	REAL *x;		/* (N,C) the layer's input (residual stream) */
	REAL *ln1;		/* (N,C) */
	REAL *rstd1;		/* (N) */
	REAL *q;		/* (N,Q) after rope */
	REAL *k, *v;		/* (N,KV), k after rope */
	REAL *att;		/* (sum over s of H * T_s^2) probabilities */
	REAL *atty;		/* (N,Q) attention output */
	REAL *xmid;		/* (N,C) residual after attention */
	REAL *ln2;		/* (N,C) */
	REAL *rstd2;		/* (N) */
	REAL *g, *u, *h;	/* (N,F) gate, up, silu(gate) * up */
};

struct acts {
	int N, nseq;		/* of the last forward */
	int capN, capseq;
	size_t capatt;
	REAL *mem;		/* every activation, one allocation */
	struct layer_acts *layer;
	REAL *xf;		/* (N,C) the last layer's output */
	REAL *lnf;		/* (N,C) */
	REAL *rstdf;		/* (N) */
	REAL *logits;		/* (N,V), the gradient after backward */
	REAL *lse;		/* (N) */
	REAL *scores;		/* (N,num_labels) */
	REAL *cs;		/* (N,hd) rope cos and sin */
	/* backward scratch */
	REAL *dres;		/* (N,C) gradient of the residual stream */
	REAL *dln;		/* (N,C) */
	REAL *df1, *df2;	/* (N,F) */
	REAL *datty, *dq;	/* (N,Q) */
	REAL *dk, *dv;		/* (N,KV) */
	REAL *rowbuf;		/* (nthr, ATT_ROWS, maxL) per-thread scratch */
	int maxL, nthr;
	/* the batch */
	int *tokens, *targets, *pos;	/* (N) */
	int has_targets;
	struct attn_seqs as;
};

struct net {
	struct model_config cfg;
	struct weights w;	/* parameters */
	struct weights gw;	/* gradients, same layout (or empty) */
	REAL *freq;		/* (hd/2) rope frequencies */
	struct acts a;
};

static void
net_init(struct net *net, const struct model_config *c,
    const struct model_tensor *t, int nt, REAL *params, REAL *grads)
{
	memset(net, 0, sizeof(*net));
	net->cfg = *c;
	weights_point(&net->w, c, t, nt, params);
	if (grads != NULL)
		weights_point(&net->gw, c, t, nt, grads);
	net->freq = xmalloc(c->head_dim / 2 * sizeof(REAL));
	rope_freqs(net->freq, c);
}

static void __attribute__((unused))
net_set_grads(struct net *net, const struct model_tensor *t, int nt,
    REAL *grads)
{
	free(net->gw.layer);
	weights_point(&net->gw, &net->cfg, t, nt, grads);
}

static void
net_free(struct net *net)
{
	free(net->w.layer);
	free(net->gw.layer);
	free(net->freq);
	free(net->a.mem);
	free(net->a.layer);
	free(net->a.tokens);
	free(net->a.targets);
	free(net->a.pos);
	free(net->a.as.qoff);
	free(net->a.as.nq);
	free(net->a.as.p0);
	free(net->a.as.aoff);
	free(net->a.as.kb);
	free(net->a.as.vb);
}

/* Floats of the activations for N tokens and natt attention probabilities. */
static size_t
acts_floats(const struct model_config *c, size_t N, size_t natt, int maxL)
{
	size_t C = c->dim, Q = model_q_dim(c), KV = model_kv_dim(c);
	size_t F = c->hidden_dim, V = c->vocab_size, L = c->n_layers;
	size_t per = N * (4 * C + 2 * Q + 2 * KV + 3 * F + 2) + natt;
	size_t fin = N * (2 * C + 2 + V + (size_t)c->num_labels + c->head_dim);
	size_t back = N * (2 * C + 2 * F + 2 * Q + 2 * KV) +
	    (size_t)omp_get_max_threads() * ATT_ROWS * maxL;

	return L * per + fin + back;
}

/* Make room for a batch of N tokens; no allocation when it fits. */
static void
acts_reserve(struct net *net, int N, int nseq, size_t natt, int maxL)
{
	const struct model_config *c = &net->cfg;
	struct acts *a = &net->a;
	size_t C = c->dim, Q = model_q_dim(c), KV = model_kv_dim(c);
	size_t F = c->hidden_dim, V = c->vocab_size;
	REAL *p;

	if (nseq > a->capseq) {
		a->capseq = nseq;
		a->as.qoff = xreallocarray(a->as.qoff, nseq, sizeof(int));
		a->as.nq = xreallocarray(a->as.nq, nseq, sizeof(int));
		a->as.p0 = xreallocarray(a->as.p0, nseq, sizeof(int));
		a->as.aoff = xreallocarray(a->as.aoff, nseq, sizeof(size_t));
		a->as.kb = xreallocarray(a->as.kb, nseq, sizeof(REAL *));
		a->as.vb = xreallocarray(a->as.vb, nseq, sizeof(REAL *));
	}
	if (N <= a->capN && natt <= a->capatt && maxL <= a->maxL &&
	    omp_get_max_threads() <= a->nthr)
		return;
	if (N > a->capN) {
		a->tokens = xreallocarray(a->tokens, N, sizeof(int));
		a->targets = xreallocarray(a->targets, N, sizeof(int));
		a->pos = xreallocarray(a->pos, N, sizeof(int));
	}
	a->capN = N > a->capN ? N : a->capN;
	a->capatt = natt > a->capatt ? natt : a->capatt;
	a->maxL = maxL > a->maxL ? maxL : a->maxL;
	a->nthr = omp_get_max_threads();
	N = a->capN;
	free(a->mem);
	a->mem = xmalloc(acts_floats(c, N, a->capatt, a->maxL) * sizeof(REAL));
	if (a->layer == NULL)
		a->layer = xcalloc(c->n_layers, sizeof(*a->layer));
	p = a->mem;
#define TAKE(dst, n) do { (dst) = p; p += (n); } while (0)
	for (int l = 0; l < c->n_layers; l++) {
		struct layer_acts *la = &a->layer[l];
		TAKE(la->x, N * C);
		TAKE(la->ln1, N * C);
		TAKE(la->rstd1, N);
		TAKE(la->q, N * Q);
		TAKE(la->k, N * KV);
		TAKE(la->v, N * KV);
		TAKE(la->att, a->capatt);
		TAKE(la->atty, N * Q);
		TAKE(la->xmid, N * C);
		TAKE(la->ln2, N * C);
		TAKE(la->rstd2, N);
		TAKE(la->g, N * F);
		TAKE(la->u, N * F);
		TAKE(la->h, N * F);
	}
	TAKE(a->xf, N * C);
	TAKE(a->lnf, N * C);
	TAKE(a->rstdf, N);
	TAKE(a->logits, N * V);
	TAKE(a->lse, N);
	TAKE(a->scores, N * (size_t)c->num_labels);
	TAKE(a->cs, N * (size_t)c->head_dim);
	TAKE(a->dres, N * C);
	TAKE(a->dln, N * C);
	TAKE(a->df1, N * F);
	TAKE(a->df2, N * F);
	TAKE(a->datty, N * Q);
	TAKE(a->dq, N * Q);
	TAKE(a->dk, N * KV);
	TAKE(a->dv, N * KV);
	TAKE(a->rowbuf, (size_t)a->nthr * ATT_ROWS * a->maxL);
#undef TAKE
}

/* ------------------------------------------------------------------------ */
/* One transformer block, forward: x -> xmid -> xout. */

static void
layer_forward(const struct net *net, const struct layer_w *w,
    struct layer_acts *la, REAL *xout, const struct attn_seqs *as,
    REAL *rowbuf, int maxL, int N)
{
	const struct model_config *c = &net->cfg;
	int C = c->dim, Q = model_q_dim(c), KV = model_kv_dim(c);
	int F = c->hidden_dim, hd = c->head_dim;

	/* attention: pre-norm, projections, rotary, softmax(QK^T)V, output */
	rmsnorm_forward(la->ln1, la->rstd1, la->x, w->ln1, N, C, c->norm_eps);
	matmul_forward(la->q, la->ln1, w->wq, w->bq, N, C, Q, 0);
	matmul_forward(la->k, la->ln1, w->wk, w->bk, N, C, KV, 0);
	matmul_forward(la->v, la->ln1, w->wv, w->bv, N, C, KV, 0);
	rope_apply(la->q, net->a.cs, N, c->n_heads, hd, 1);
	rope_apply(la->k, net->a.cs, N, c->n_kv_heads, hd, 1);
	attention_forward(la->atty, la->att, rowbuf, maxL, la->q, as,
	    c->n_heads, c->n_kv_heads, hd);
	memcpy(la->xmid, la->x, (size_t)N * C * sizeof(REAL));
	matmul_forward(la->xmid, la->atty, w->wo, NULL, N, Q, C, 1);

	/* MLP: pre-norm, down(silu(gate(x)) * up(x)) */
	rmsnorm_forward(la->ln2, la->rstd2, la->xmid, w->ln2, N, C,
	    c->norm_eps);
	matmul_forward(la->g, la->ln2, w->wg, NULL, N, C, F, 0);
	matmul_forward(la->u, la->ln2, w->wu, NULL, N, C, F, 0);
	swiglu_forward(la->h, la->g, la->u, (size_t)N * F);
	memcpy(xout, la->xmid, (size_t)N * C * sizeof(REAL));
	matmul_forward(xout, la->h, w->wd, NULL, N, F, C, 1);
}

/*
 * One block, backward.  dres (N,C) holds d loss / d xout on entry and
 * d loss / d x on return (the residual passes it through; the branches
 * add to it).
 */
static void
layer_backward(struct net *net, int l, REAL *dres)
{
	const struct model_config *c = &net->cfg;
	struct acts *a = &net->a;
	const struct layer_w *w = &net->w.layer[l];
	struct layer_w *gw = &net->gw.layer[l];
	struct layer_acts *la = &a->layer[l];
	int N = a->N, C = c->dim, Q = model_q_dim(c), KV = model_kv_dim(c);
	int F = c->hidden_dim, hd = c->head_dim;

	/* MLP branch */
	matmul_backward(a->df1, gw->wd, NULL, dres, la->h, w->wd, N, F, C, 0);
	swiglu_backward(a->df1, a->df2, a->df1, la->g, la->u, (size_t)N * F);
	matmul_backward(a->dln, gw->wg, NULL, a->df1, la->ln2, w->wg, N, C,
	    F, 0);
	matmul_backward(a->dln, gw->wu, NULL, a->df2, la->ln2, w->wu, N, C,
	    F, 1);
	rmsnorm_backward(dres, gw->ln2, a->dln, la->xmid, w->ln2, la->rstd2,
	    N, C);

	/* attention branch */
	matmul_backward(a->datty, gw->wo, NULL, dres, la->atty, w->wo, N, Q,
	    C, 0);
	attention_backward(a->dq, a->dk, a->dv, a->datty, la->q, la->k, la->v,
	    la->att, a->rowbuf, a->maxL, &a->as, c->n_heads, c->n_kv_heads,
	    hd);
	rope_apply(a->dq, a->cs, N, c->n_heads, hd, -1);
	rope_apply(a->dk, a->cs, N, c->n_kv_heads, hd, -1);
	matmul_backward(a->dln, gw->wq, gw->bq, a->dq, la->ln1, w->wq, N, C,
	    Q, 0);
	matmul_backward(a->dln, gw->wk, gw->bk, a->dk, la->ln1, w->wk, N, C,
	    KV, 1);
	matmul_backward(a->dln, gw->wv, gw->bv, a->dv, la->ln1, w->wv, N, C,
	    KV, 1);
	rmsnorm_backward(dres, gw->ln1, a->dln, la->x, w->ln1, la->rstd1, N,
	    C);
}

/* ------------------------------------------------------------------------ */
/* The whole network over a packed batch. */

static void
net_forward(struct net *net, const struct model_batch *b, REAL *logprobs)
{
	const struct model_config *c = &net->cfg;
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
	acts_reserve(net, N, b->nseq, natt, maxL);
	a->N = N;
	a->nseq = b->nseq;
	a->has_targets = b->targets != NULL;
	natt = 0;
	for (int s = 0; s < b->nseq; s++) {
		a->as.qoff[s] = off;
		a->as.nq[s] = b->len[s];
		a->as.p0[s] = 0;
		a->as.aoff[s] = natt;
		natt += attn_probs_size(c->n_heads, b->len[s], 0);
		for (int i = 0; i < b->len[s]; i++)
			a->pos[off + i] = i;
		off += b->len[s];
	}
	a->as.nseq = b->nseq;
	memcpy(a->tokens, b->tokens, N * sizeof(int));
	for (int n = 0; n < N; n++) {
		a->targets[n] = b->targets != NULL ? b->targets[n] : -1;
		if (a->targets[n] >= V && c->lm_head)
			errx(EXIT_DATA, "target token %d is outside the "
			    "vocabulary (0..%d)", a->targets[n], V - 1);
	}
	rope_table(a->cs, a->pos, net->freq, N, c->head_dim);

	embed_forward(a->layer[0].x, net->w.embed, a->tokens, N, C, V);
	for (int l = 0; l < c->n_layers; l++) {
		struct layer_acts *la = &a->layer[l];
		/* keys and values: this layer's packed rows */
		for (int s = 0; s < b->nseq; s++) {
			a->as.kb[s] = la->k + (size_t)a->as.qoff[s] *
			    model_kv_dim(c);
			a->as.vb[s] = la->v + (size_t)a->as.qoff[s] *
			    model_kv_dim(c);
		}
		layer_forward(net, &net->w.layer[l], la,
		    l + 1 < c->n_layers ? a->layer[l + 1].x : a->xf, &a->as,
		    a->rowbuf, a->maxL, N);
	}
	rmsnorm_forward(a->lnf, a->rstdf, a->xf, net->w.norm, N, C,
	    c->norm_eps);
	if (c->lm_head) {
		matmul_forward(a->logits, a->lnf, net->w.out, NULL, N, C, V, 0);
		logprob_forward(logprobs, a->lse, a->logits, a->targets, N, V);
	}
	if (c->num_labels > 0)
		matmul_forward(a->scores, a->lnf, net->w.score, NULL, N, C,
		    c->num_labels, 0);
}

/* Gradients of the last forward, added to net->gw. */
static void
net_backward(struct net *net, const REAL *dlogprobs, const REAL *dscores)
{
	const struct model_config *c = &net->cfg;
	struct acts *a = &net->a;
	int N = a->N, C = c->dim, V = c->vocab_size;

	memset(a->dln, 0, (size_t)N * C * sizeof(REAL));
	if (c->lm_head) {
		logprob_backward(a->logits, a->lse, dlogprobs, a->targets, N,
		    V);
		matmul_backward(a->dln, net->gw.out, NULL, a->logits, a->lnf,
		    net->w.out, N, C, V, 1);
	}
	if (c->num_labels > 0 && dscores != NULL)
		matmul_backward(a->dln, net->gw.score, NULL, dscores, a->lnf,
		    net->w.score, N, C, c->num_labels, 1);
	memset(a->dres, 0, (size_t)N * C * sizeof(REAL));
	rmsnorm_backward(a->dres, net->gw.norm, a->dln, a->xf, net->w.norm,
	    a->rstdf, N, C);
	for (int l = c->n_layers - 1; l >= 0; l--)
		layer_backward(net, l, a->dres);
	embed_backward(net->gw.embed, a->dres, a->tokens, N, C);
}

#ifdef MODEL_IMPL_EXTEND
/* ------------------------------------------------------------------------ */
/*
 * Cached decoding: B sequences, ntok[s] new tokens each, packed; keys and
 * values go into each sequence's cache (float: the KV cache is always
 * fp32) and attention reads them there.  Only one layer's activations
 * exist at a time; logits (B,V) after each sequence's last token.
 */
static void
net_extend(struct net *net, struct kv_cache **kv, int B, const int *ntok,
    const int *tokens, REAL *logits)
{
	const struct model_config *c = &net->cfg;
	struct acts *a = &net->a;
	int C = c->dim, V = c->vocab_size, KV = model_kv_dim(c);
	int N = 0, maxL = 0, off = 0;
	struct layer_acts la;
	REAL *x, *xout, *tmp;

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
	/* Layer 0's buffers serve every layer; layer 1's x ping-pongs. */
	acts_reserve(net, N, B, 0, maxL);
	la = a->layer[0];
	la.att = NULL;
	x = la.x;
	xout = c->n_layers > 1 ? a->layer[1].x : a->xf;
	for (int s = 0; s < B; s++) {
		a->as.qoff[s] = off;
		a->as.nq[s] = ntok[s];
		a->as.p0[s] = kv[s]->len;
		for (int i = 0; i < ntok[s]; i++)
			a->pos[off + i] = kv[s]->len + i;
		off += ntok[s];
	}
	a->as.nseq = B;
	a->N = 0;		/* nothing for model_backward */
	rope_table(a->cs, a->pos, net->freq, N, c->head_dim);
	embed_forward(x, net->w.embed, tokens, N, C, V);
	for (int l = 0; l < c->n_layers; l++) {
		const struct layer_w *w = &net->w.layer[l];
		int hd = c->head_dim;

		/* The attention half of layer_forward, with the new keys and
		 * values written into the caches before attention reads them. */
		la.x = x;
		rmsnorm_forward(la.ln1, la.rstd1, x, w->ln1, N, C, c->norm_eps);
		matmul_forward(la.q, la.ln1, w->wq, w->bq, N, C,
		    model_q_dim(c), 0);
		matmul_forward(la.k, la.ln1, w->wk, w->bk, N, C, KV, 0);
		matmul_forward(la.v, la.ln1, w->wv, w->bv, N, C, KV, 0);
		rope_apply(la.q, a->cs, N, c->n_heads, hd, 1);
		rope_apply(la.k, a->cs, N, c->n_kv_heads, hd, 1);
		for (int s = 0; s < B; s++) {
			size_t base = ((size_t)l * kv[s]->cap + kv[s]->len) * KV;
			size_t rows = (size_t)a->as.qoff[s] * KV;
			for (size_t i = 0; i < (size_t)ntok[s] * KV; i++) {
				kv[s]->k[base + i] = la.k[rows + i];
				kv[s]->v[base + i] = la.v[rows + i];
			}
			a->as.kb[s] = (const REAL *)(kv[s]->k +
			    (size_t)l * kv[s]->cap * KV);
			a->as.vb[s] = (const REAL *)(kv[s]->v +
			    (size_t)l * kv[s]->cap * KV);
		}
		attention_forward(la.atty, NULL, a->rowbuf, a->maxL, la.q,
		    &a->as, c->n_heads, c->n_kv_heads, hd);
		memcpy(la.xmid, x, (size_t)N * C * sizeof(REAL));
		matmul_forward(la.xmid, la.atty, w->wo, NULL, N,
		    model_q_dim(c), C, 1);
		rmsnorm_forward(la.ln2, la.rstd2, la.xmid, w->ln2, N, C,
		    c->norm_eps);
		matmul_forward(la.g, la.ln2, w->wg, NULL, N, C,
		    c->hidden_dim, 0);
		matmul_forward(la.u, la.ln2, w->wu, NULL, N, C,
		    c->hidden_dim, 0);
		swiglu_forward(la.h, la.g, la.u, (size_t)N * c->hidden_dim);
		memcpy(xout, la.xmid, (size_t)N * C * sizeof(REAL));
		matmul_forward(xout, la.h, w->wd, NULL, N, c->hidden_dim, C, 1);
		tmp = x;
		x = xout;
		xout = tmp;
	}
	for (int s = 0; s < B; s++)
		kv[s]->len += ntok[s];
	/* The last token of each sequence: gather its row, then norm and
	 * lm_head on B rows only. */
	for (int s = 0; s < B; s++)
		memcpy(a->dres + (size_t)s * C,
		    x + (size_t)(a->as.qoff[s] + ntok[s] - 1) * C,
		    C * sizeof(REAL));
	rmsnorm_forward(a->lnf, a->rstdf, a->dres, net->w.norm, B, C,
	    c->norm_eps);
	if (c->lm_head)
		matmul_forward(logits, a->lnf, net->w.out, NULL, B, C, V, 0);
}
#endif /* MODEL_IMPL_EXTEND */
