/*
 * cpu_impl.h: the CPU backend's kernels and its table of operations
 * (backend.h), written once for a floating-point type REAL and included
 * twice: by lib/backend/cpu.c with REAL float (backend_cpu), and by
 * tests/unit_model_grad.c with REAL double, where finite differences of
 * every operation and of the whole loss are precise enough to check the
 * backward pass.  Everything here is static.
 *
 * Reading order: the kernels (matmul, rmsnorm, rope, attention, swiglu,
 * log-softmax, embedding, AdamW), each forward followed by its backward;
 * then the operations of backend.h over them, and the table.
 *
 * Determinism: every parallel loop writes disjoint outputs, and every
 * reduction runs in a fixed order inside one thread, so results do not
 * depend on the number of threads.
 */
#ifndef REAL
#error "define REAL (float or double) before including cpu_impl.h"
#endif
#ifndef BACKEND
#define BACKEND backend
#endif

#include <cblas.h>
#include <err.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>
#undef I		/* complex.h's imaginary unit: I is an input width here */

#include "backend/backend.h"
#include "backend/vmath.h"
#include "tensors/tensor.h"
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

/* OpenBLAS in one thread: the threads are OpenMP's (above). */
static void
blas_single(void)
{
	static int done;

	if (!done) {
		openblas_set_num_threads(1);
		done = 1;
	}
}

/* C (M,N) = alpha op(A) (M,K) op(B) (K,N) + beta C, over all threads. */
static void
gemm(int transa, int transb, int M, int N, int K, REAL alpha, const REAL *A,
    int lda, const REAL *B, int ldb, REAL beta, REAL *C, int ldc)
{
	int splitm = M >= N, len = splitm ? M : N, nslab;

	blas_single();
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
 * The build targets baseline x86-64 (SSE2); these loops are where short
 * products spend their time, so on x86-64 they are also compiled for
 * AVX2, picked at load time by the CPU's features.  (Not "arch=haswell":
 * GCC picks that clone by the CPU's model, so an AMD CPU, or an Intel one
 * newer than Haswell, ran the SSE2 copy.)  AVX2 without FMA: the vector
 * loops do the same operations as the plain copy, so which copy runs
 * changes no result.
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HOT_CLONES __attribute__((target_clones("avx2", "default")))
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
dot_rows(REAL *out, const REAL *inp, const REAL *wo, int n0, int N, int I,
    int O, int o, int accumulate)
{
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

/* out[n0..n0+3][o..o+3] = x rows n0.. dotted with w rows o.. (w0 is row
 * o): 4 x 4 sums. */
static HOT_CLONES void
dot_block4(REAL *out, const REAL *inp, const REAL *w0, int n, int I, int O,
    int o, int accumulate)
{
	const REAL *w1 = w0 + I;
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
				dot_rows(out, inp, w + (size_t)o * I, 0, N, I,
				    O, o, accumulate);
			continue;
		}
		for (; n + 4 <= N; n += 4)
			dot_block4(out, inp, w + (size_t)o * I, n, I, O, o,
			    accumulate);
		for (int b = 0; b < 4; b++)	/* the last N % 4 input rows */
			dot_rows(out, inp, w + (size_t)(o + b) * I, n, N, I, O,
			    o + b, accumulate);
	}
}

/* Below this many rows a linear layer is a set of dot products. */
#define MATMUL_FEW_ROWS 16

/* out (N,O) += bias (O), or nothing when bias is NULL. */
static void
add_bias(REAL *out, const REAL *bias, int N, int O)
{
	if (bias == NULL)
		return;
#pragma omp parallel for if (PAR((size_t)N * O))
	for (int n = 0; n < N; n++)
		for (int o = 0; o < O; o++)
			out[(size_t)n * O + o] += bias[o];
}

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
	add_bias(out, bias, N, O);
}

/*
 * dinp (N,I) = dout (N,O) @ w (set, or added when accumulate: q, k and v
 * share one input); dw (O,I) += dout^T @ inp; dbias (O) += column sums.
 * Any of dinp, dw, dbias may be NULL: that product is not computed.
 */
static void
matmul_backward(REAL *dinp, REAL *dw, REAL *dbias, const REAL *dout,
    const REAL *inp, const REAL *w, int N, int I, int O, int accumulate)
{
	if (dinp != NULL)
		gemm(0, 0, N, I, O, 1, dout, O, w, I, accumulate ? 1 : 0,
		    dinp, I);
	if (dw != NULL)
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
/*
 * The same products with a 16-bit weight (bf16 or f16, backend.h): the
 * weight is widened to REAL a panel at a time, into scratch, and the
 * panel goes to the very call the fp32 path makes for it (the same
 * shape, the same slab of outputs), so the result is the bits fp32
 * weights holding the same values give.  Where the fp32 path gives every
 * slab the whole weight (more rows of x than outputs), the whole weight
 * is widened once: then it is no larger than x or dout.
 */

/* dst (rows, n), ld n = columns c0.. of src (rows, ld), widened. */
static HOT_CLONES void
widen_panel(REAL *dst, const uint16_t *src, enum dtype wt, size_t rows,
    size_t ld, size_t c0, size_t n)
{
	for (size_t r = 0; r < rows; r++) {
		const uint16_t *s = src + r * ld + c0;
		REAL *d = dst + r * n;

		if (wt == DT_BF16)
			for (size_t i = 0; i < n; i++) {
				uint32_t u = (uint32_t)s[i] << 16;
				float f;
				memcpy(&f, &u, sizeof f);
				d[i] = f;
			}
		else
			for (size_t i = 0; i < n; i++)
				d[i] = f16_to_f32(s[i]);
	}
}

/* All of w (rows, ld), widened into a new allocation, rows in parallel. */
static REAL *
widen_all(const uint16_t *w, enum dtype wt, size_t rows, size_t ld)
{
	REAL *d = xmalloc((rows * ld > 0 ? rows * ld : 1) * sizeof(REAL));

#pragma omp parallel for if (PAR(rows * ld))
	for (size_t r = 0; r < rows; r++)
		widen_panel(d + r * ld, w + r * ld, wt, 1, ld, 0, ld);
	return d;
}

/* x (n) rounded to bf16 (DT_XBF16), a new allocation: in double (the
 * gradient checks) through float, so rounded twice. */
static REAL *
round_bf16(const REAL *x, size_t n)
{
	REAL *r = xmalloc((n > 0 ? n : 1) * sizeof(REAL));

#pragma omp parallel for if (PAR(n))
	for (size_t i = 0; i < n; i++)
		r[i] = bf16_to_f32(f32_to_bf16((float)x[i]));
	return r;
}

/*
 * gemm with B 16-bit: transb 1, B (N,K) the weight's rows (a forward
 * product); transb 0, B (K,N) the weight itself (dx of the backward).
 * The slabs are gemm's.
 */
static void
gemm_h(int transb, int M, int N, int K, const REAL *A, int lda,
    const uint16_t *B, enum dtype wt, int ldb, REAL beta, REAL *C, int ldc)
{
	int splitm = M >= N, nslab;

	nslab = (double)M * N * K < (1 << 18) ? 1 :
	    (N + GEMM_SLAB - 1) / GEMM_SLAB;
	if (splitm || nslab == 1) {
		size_t rows = transb ? N : K;
		REAL *Bw = widen_all(B, wt, rows, ldb);

		gemm(0, transb, M, N, K, 1, A, lda, Bw, ldb, beta, C, ldc);
		free(Bw);
		return;
	}
	blas_single();
#pragma omp parallel
	{
		REAL *P = xmalloc((size_t)GEMM_SLAB * K * sizeof(REAL));

#pragma omp for schedule(dynamic)
		for (int t = 0; t < nslab; t++) {
			int i0 = t * GEMM_SLAB;
			int n = N - i0 < GEMM_SLAB ? N - i0 : GEMM_SLAB;

			if (transb) {	/* rows i0.. of B: (n, K) */
				widen_panel(P, B + (size_t)i0 * ldb, wt, n, ldb,
				    0, K);
				gemm1(0, 1, M, n, K, 1, A, lda, P, K, beta,
				    C + i0, ldc);
			} else {	/* columns i0.. of B: (K, n) */
				widen_panel(P, B, wt, K, ldb, i0, n);
				gemm1(0, 0, M, n, K, 1, A, lda, P, n, beta,
				    C + i0, ldc);
			}
		}
		free(P);
	}
}

/* matmul_few's dot products, four rows of w widened at a time. */
static void
matmul_few_h(REAL *out, const REAL *inp, const uint16_t *w, enum dtype wt,
    int N, int I, int O, int accumulate)
{
	int nob = O / 4;

#pragma omp parallel if (PAR((size_t)O * N * I))
	{
		REAL *P = xmalloc((size_t)4 * I * sizeof(REAL));

#pragma omp for
		for (int ob = 0; ob <= nob; ob++) {
			int o = ob * 4, n = 0;
			int nr = ob == nob ? O - o : 4;

			widen_panel(P, w + (size_t)o * I, wt, nr, I, 0, I);
			if (ob == nob) {
				for (int b = 0; b < nr; b++)
					dot_rows(out, inp, P + (size_t)b * I, 0,
					    N, I, O, o + b, accumulate);
				continue;
			}
			for (; n + 4 <= N; n += 4)
				dot_block4(out, inp, P, n, I, O, o, accumulate);
			for (int b = 0; b < 4; b++)
				dot_rows(out, inp, P + (size_t)b * I, n, N, I,
				    O, o + b, accumulate);
		}
		free(P);
	}
}

static void
matmul_forward_h(REAL *out, const REAL *inp, const uint16_t *w,
    enum dtype wt, const REAL *bias, int N, int I, int O, int accumulate)
{
	if (N < MATMUL_FEW_ROWS)
		matmul_few_h(out, inp, w, wt, N, I, O, accumulate);
	else
		gemm_h(1, N, O, I, inp, I, w, wt, I, accumulate ? 1 : 0, out,
		    O);
	add_bias(out, bias, N, O);
}

/* ------------------------------------------------------------------------ */
/*
 * RMSNorm: out = (wofs + w) * x / sqrt(mean(x^2) + eps), rstd (N) kept for
 * backward (or NULL).  wofs is 0 (Llama) or 1 (Gemma's 1 + w); adding 0
 * changes no bit.
 */

static void
rmsnorm_forward(REAL *out, REAL *rstd, const REAL *x, const REAL *w,
    REAL wofs, int N, int C, REAL eps)
{
#pragma omp parallel for if (PAR((size_t)N * C))
	for (int n = 0; n < N; n++) {
		const REAL *xn = x + (size_t)n * C;
		REAL *on = out + (size_t)n * C, ss = 0, r;

		for (int c = 0; c < C; c++)
			ss += xn[c] * xn[c];
		r = 1 / sqrt(ss / C + eps);
		for (int c = 0; c < C; c++)
			on[c] = (wofs + w[c]) * (xn[c] * r);
		if (rstd != NULL)
			rstd[n] = r;
	}
}

/*
 * With xhat = x * r, W = wofs + w and y = W * xhat:
 *   dx = r * (W*dy - xhat * mean(W*dy*xhat)),  dw = sum over rows dy*xhat.
 * dx is added (it is the residual stream's gradient); dw NULL: frozen.
 */
#define NORM_COLS 64

static void
rmsnorm_backward(REAL *dx, REAL *dw, const REAL *dout, const REAL *x,
    const REAL *w, REAL wofs, const REAL *rstd, int N, int C)
{
#pragma omp parallel for if (PAR((size_t)N * C))
	for (int n = 0; n < N; n++) {
		const REAL *xn = x + (size_t)n * C, *dn = dout + (size_t)n * C;
		REAL *dxn = dx + (size_t)n * C, r = rstd[n], dot = 0;

		for (int c = 0; c < C; c++)
			dot += (wofs + w[c]) * dn[c] * xn[c] * r;
		dot /= C;
		for (int c = 0; c < C; c++)
			dxn[c] += r * ((wofs + w[c]) * dn[c] - xn[c] * r * dot);
	}
	if (dw == NULL)
		return;
	/* Columns in parallel, rows in order: deterministic.  A block of
	 * NORM_COLS columns walks the rows together, so that each row's
	 * stretch is read once, in order, rather than a column at a time
	 * down the rows (the same sums, in the same order). */
	int nb = (C + NORM_COLS - 1) / NORM_COLS;
#pragma omp parallel for if (PAR((size_t)N * C))
	for (int b = 0; b < nb; b++) {
		int c0 = b * NORM_COLS;
		int m = C - c0 < NORM_COLS ? C - c0 : NORM_COLS;
		REAL s[NORM_COLS] = { 0 };

		for (int n = 0; n < N; n++) {
			const REAL *dn = dout + (size_t)n * C + c0;
			const REAL *xn = x + (size_t)n * C + c0;

			for (int c = 0; c < m; c++)
				s[c] += dn[c] * xn[c] * rstd[n];
		}
		for (int c = 0; c < m; c++)
			dw[c0 + c] += s[c];
	}
}

/* ------------------------------------------------------------------------ */
/*
 * Gemma's tanh loops: in float, lib/backend/vmath's (libmvec's tanhf,
 * eight at a time, the values decoding takes), in blocks of this many
 * in parallel; in double (the gradient checks), tanh an element at a
 * time.  Each element is computed on its own either way.
 */
#define TANH_BLOCK 4096

/* x (n) = cap * tanh(x / cap), in the calling thread. */
static void
softcap_seq(REAL *x, REAL cap, size_t n)
{
	if (sizeof(REAL) == sizeof(float))
		vmath_softcap((float *)x, (const float *)x, (float)cap, n);
	else
		for (size_t i = 0; i < n; i++)
			x[i] = cap * tanh(x[i] / cap);
}

/* ------------------------------------------------------------------------ */
/*
 * Rotary position embeddings, HF's rotate-half convention: in each head,
 * element j < hd/2 rotates with element j + hd/2 by angle pos * freq[j].
 */

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
	const int *qoff, *nq, *p0;
	const size_t *aoff;	/* offset of the sequence's probabilities */
	const REAL **kb, **vb;
};

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
 * A query at position i sees keys lo .. i: all of them (window 0), or its
 * last window positions (sliding-window attention).
 */
static inline int
attn_lo(int i, int window)
{
	return window > 0 && i - window + 1 > 0 ? i - window + 1 : 0;
}

/*
 * out (N,Q).  att, if not NULL, keeps each (s, h) block of probabilities
 * (nq, L) with zeros outside what a query sees; else rowbuf gives each
 * thread a scratch of ATT_ROWS * maxL.  Scores are scale * q.k.
 */
static void
attention_forward(REAL *out, REAL *att, REAL *rowbuf, int maxL,
    const REAL *q, const struct attn_seqs *as, int H, int KVH, int hd,
    REAL scale, int window, REAL cap)
{
	int Q = H * hd, KV = KVH * hd, grp = H / KVH;
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
				int lo = attn_lo(last, window);

				if (cap > 0)
					softcap_seq(p + lo, cap,
					    (size_t)(last - lo + 1));
				for (int j = lo; j <= last; j++)
					if (p[j] > mx)
						mx = p[j];
				for (int j = lo; j <= last; j++) {
					p[j] = exp(p[j] - mx);
					sum += p[j];
				}
				for (int j = lo; j <= last; j++)
					p[j] /= sum;
				for (int j = 0; j < lo; j++)
					p[j] = 0;
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
    int hd, REAL scale, int window, REAL cap)
{
	int Q = H * hd, KV = KVH * hd, grp = H / KVH;
	size_t work = 0;

	for (int s = 0; s < as->nseq; s++)
		work += (size_t)as->nq[s] * as->nq[s] * Q;
#pragma omp parallel for schedule(dynamic) if (PAR(work))
	for (int sg = 0; sg < as->nseq * KVH; sg++) {
		int s = sg / KVH, g = sg % KVH, n = as->nq[s];
		size_t o = as->qoff[s];
		REAL *dS = rowbuf + (size_t)omp_get_thread_num() * 2 *
		    ATT_ROWS * maxL, *S = dS + (size_t)ATT_ROWS * maxL;
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
				/* softcapped: the scores again, for the
				 * tanh's derivative 1 - t^2 */
				if (cap > 0)
					gemm1(0, 1, r, Lc, hd, scale,
					    qh + (size_t)i0 * Q, Q, kg, KV, 0, S,
					    Lc);
				for (int i = 0; i < r; i++) {
					const REAL *p = P + (size_t)i * n;
					REAL *d = dS + (size_t)i * Lc, rs = 0;
					int last = i0 + i;
					int lo = attn_lo(last, window);

					for (int j = lo; j <= last; j++)
						rs += p[j] * d[j];
					for (int j = 0; j < lo; j++)
						d[j] = 0;
					for (int j = lo; j <= last; j++)
						d[j] = p[j] * (d[j] - rs) * scale;
					if (cap > 0) {
						/* t = tanh(s / cap), eight at a
						 * time (softcap_seq) */
						REAL *sc = S + (size_t)i * Lc;

						softcap_seq(sc + lo, cap,
						    (size_t)(last - lo + 1));
						for (int j = lo; j <= last; j++) {
							REAL t = sc[j] / cap;
							d[j] *= 1 - t * t;
						}
					}
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

/*
 * GeGLU with the tanh approximation (gelu_pytorch_tanh): h = gelu(g) * u,
 * gelu(g) = g/2 (1 + tanh(k (g + 0.044715 g^3))), k = sqrt(2/pi).
 */
#define GELU_K VMATH_GELU_K
#define GELU_A VMATH_GELU_A


static void
geglu_forward(REAL *h, const REAL *g, const REAL *u, size_t n)
{
	if (sizeof(REAL) == sizeof(float)) {
#pragma omp parallel for if (PAR(n))
		for (size_t b = 0; b < n; b += TANH_BLOCK)
			vmath_gelu_mul((float *)h + b, (const float *)g + b,
			    (const float *)u + b, n - b < TANH_BLOCK ? n - b :
			    TANH_BLOCK);
		return;
	}
#pragma omp parallel for if (PAR(n))
	for (size_t i = 0; i < n; i++) {
		REAL x = g[i];
		h[i] = (REAL)0.5 * x * (1 + tanh((REAL)GELU_K * (x +
		    (REAL)GELU_A * x * x * x))) * u[i];
	}
}

/* gelu'(g) = (1 + t)/2 + g/2 (1 - t^2) k (1 + 3 a g^2). */
static inline REAL
gelu_arg(REAL x)
{
	return (REAL)GELU_K * (x + (REAL)GELU_A * x * x * x);
}

/* Element i's gradients, given t = tanh(gelu_arg(g[i])).  dh[i] is read
 * before dg[i] is written (dg may be dh). */
static inline void
geglu_grad1(REAL *dg, REAL *du, const REAL *dh, const REAL *g,
    const REAL *u, size_t i, REAL t)
{
	REAL x = g[i], d = dh[i];
	REAL gl = (REAL)0.5 * x * (1 + t);
	REAL dgl = (REAL)0.5 * (1 + t) + (REAL)0.5 * x * (1 - t * t) *
	    (REAL)GELU_K * (1 + 3 * (REAL)GELU_A * x * x);

	du[i] = d * gl;
	dg[i] = d * u[i] * dgl;
}

static void
geglu_backward(REAL *dg, REAL *du, const REAL *dh, const REAL *g,
    const REAL *u, size_t n)
{
	if (sizeof(REAL) == sizeof(float)) {
		/* the tanh of a block at once: softcap_seq with cap 1 is
		 * tanh (x / 1 and 1 * t are exact) */
#pragma omp parallel for if (PAR(n))
		for (size_t b = 0; b < n; b += TANH_BLOCK) {
			size_t m = n - b < TANH_BLOCK ? n - b : TANH_BLOCK;
			REAL t[TANH_BLOCK];

			for (size_t i = 0; i < m; i++)
				t[i] = gelu_arg(g[b + i]);
			softcap_seq(t, 1, m);
			for (size_t i = 0; i < m; i++)
				geglu_grad1(dg, du, dh, g, u, b + i, t[i]);
		}
		return;
	}
#pragma omp parallel for if (PAR(n))
	for (size_t i = 0; i < n; i++)
		geglu_grad1(dg, du, dh, g, u, i, tanh(gelu_arg(g[i])));
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
    const int *targets, int N, int V, REAL cap)
{
#pragma omp parallel for if (PAR((size_t)N * V))
	for (int n = 0; n < N; n++) {
		REAL *l = logits + (size_t)n * V;
		REAL d = dlp != NULL && targets != NULL && targets[n] >= 0 ?
		    dlp[n] : 0;

		REAL ly = targets != NULL && targets[n] >= 0 ?
		    l[targets[n]] : 0;

		for (int i = 0; i < V; i++) {
			/* through cap * tanh(raw / cap): l is the capped */
			REAL t = cap > 0 ? l[i] / cap : 0;
			l[i] = d == 0 ? 0 : -d * exp(l[i] - lse[n]) *
			    (1 - t * t);
		}
		if (d != 0) {
			REAL t = cap > 0 ? ly / cap : 0;
			l[targets[n]] += d * (1 - t * t);
		}
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
/* AdamW on one range, torch.optim.AdamW's arithmetic (lib/training/optim.h). */

static void
adamw_update(REAL *p, const REAL *g, REAL *m, REAL *v, size_t n, double lr,
    double beta1, double beta2, double epsd, double wd, double bc1,
    double bc2)
{
	REAL b1 = (REAL)beta1, b2 = (REAL)beta2, eps = (REAL)epsd;
	REAL step = (REAL)(lr / bc1), rbc2 = (REAL)(1 / sqrt(bc2));
	REAL keep = wd != 0 ? (REAL)(1 - lr * wd) : 1;

#pragma omp parallel for schedule(static) if (PAR(n))
	for (size_t i = 0; i < n; i++) {
		REAL gi = g[i];
		m[i] = b1 * m[i] + (1 - b1) * gi;
		v[i] = b2 * v[i] + (1 - b2) * gi * gi;
		/* float's own sqrt where REAL is float: twice the
		 * throughput of double's, and the optimizer's numbers of
		 * before it moved here */
		REAL denom = (sizeof(REAL) == sizeof(float) ?
		    (REAL)sqrtf((float)v[i]) : (REAL)sqrt((double)v[i])) *
		    rbc2 + eps;
		p[i] = p[i] * keep - step * m[i] / denom;
	}
}

/* ------------------------------------------------------------------------ */
/*
 * The operations of backend.h over the kernels.  The context holds the
 * attention's scratch: each thread's block of rows, and the per-sequence
 * key and value pointers.
 */

struct cpu_ctx {
	REAL *rowbuf;		/* (nthr, ATT_ROWS, maxL) */
	size_t rowcap;
	const REAL **kb, **vb;	/* (seqcap) */
	int *p0;		/* (seqcap) positions before the queries in kb */
	int seqcap;
	REAL *win;		/* the windows' keys and values, contiguous */
	size_t wincap;
};

static void *
cpu_ctx_new(void)
{
	return xcalloc(1, sizeof(struct cpu_ctx));
}

static void
cpu_ctx_free(void *p)
{
	struct cpu_ctx *c = p;

	if (c == NULL)
		return;
	free(c->rowbuf);
	free(c->kb);
	free(c->vb);
	free(c->p0);
	free(c->win);
	free(c);
}

/* Scratch for ab: one block of rows a thread, the sequences' pointers. */
static void
cpu_reserve(struct cpu_ctx *c, const struct attn_batch *ab)
{
	size_t need = (size_t)omp_get_max_threads() * 2 * ATT_ROWS *
	    (ab->maxL > 0 ? ab->maxL : 1);	/* backward: dS and S */

	if (need > c->rowcap) {
		free(c->rowbuf);
		c->rowbuf = xmalloc(need * sizeof(REAL));
		c->rowcap = need;
	}
	if (ab->nseq > c->seqcap) {
		c->seqcap = ab->nseq;
		c->kb = xreallocarray(c->kb, ab->nseq, sizeof(*c->kb));
		c->vb = xreallocarray(c->vb, ab->nseq, sizeof(*c->vb));
		c->p0 = xreallocarray(c->p0, ab->nseq, sizeof(*c->p0));
	}
}

/* A pass runs in the calling thread: each operation brings its own team. */
static void
cpu_run(void *ctx, void (*fn)(void *), void *arg, double work)
{
	(void)ctx;
	(void)work;
	fn(arg);
}

static void
cpu_matmul(void *ctx, REAL *out, const REAL *x, const REAL *w,
    const REAL *bias, const REAL *res, int N, int I, int O)
{
	(void)ctx;
	if (res != NULL && res != out)
		memcpy(out, res, (size_t)N * O * sizeof(REAL));
	matmul_forward(out, x, w, bias, N, I, O, res != NULL);
}

static void
cpu_matmul_shared(void *ctx, int n, REAL *const *out, const REAL *x,
    const REAL *const *w, const REAL *const *bias, const int *O, int N,
    int I)
{
	(void)ctx;
	for (int j = 0; j < n; j++)
		matmul_forward(out[j], x, w[j], bias[j], N, I, O[j], 0);
}

static void
cpu_matmul_backward(void *ctx, REAL *dx, REAL *dw, REAL *dbias,
    const REAL *dout, const REAL *x, const REAL *w, int N, int I, int O,
    int acc)
{
	(void)ctx;
	matmul_backward(dx, dw, dbias, dout, x, w, N, I, O, acc);
}

static void
cpu_matmul_h(void *ctx, REAL *out, const REAL *x, const uint16_t *w,
    enum dtype wt, const REAL *bias, const REAL *res, int N, int I, int O)
{
	REAL *xr = NULL;

	(void)ctx;
	if (wt & DT_XBF16)
		x = xr = round_bf16(x, (size_t)N * I);
	if (res != NULL && res != out)
		memcpy(out, res, (size_t)N * O * sizeof(REAL));
	matmul_forward_h(out, x, w, wt & ~DT_XBF16, bias, N, I, O,
	    res != NULL);
	free(xr);
}

static void
cpu_matmul_shared_h(void *ctx, int n, REAL *const *out, const REAL *x,
    const uint16_t *const *w, enum dtype wt, const REAL *const *bias,
    const int *O, int N, int I)
{
	REAL *xr = NULL;

	(void)ctx;
	if (wt & DT_XBF16)
		x = xr = round_bf16(x, (size_t)N * I);
	for (int j = 0; j < n; j++)
		matmul_forward_h(out[j], x, w[j], wt & ~DT_XBF16, bias[j], N,
		    I, O[j], 0);
	free(xr);
}

/* dx (N,I) = dout (N,O) w (O,I): gemm(0, 0, N, I, O) with B = w. */
static void
cpu_matmul_backward_h(void *ctx, REAL *dx, const REAL *dout,
    const uint16_t *w, enum dtype wt, int N, int I, int O, int acc)
{
	(void)ctx;
	gemm_h(0, N, I, O, dout, O, w, wt & ~DT_XBF16, I, acc ? 1 : 0, dx,
	    I);
}

static void
cpu_rmsnorm(void *ctx, REAL *out, REAL *rstd, const REAL *x, const REAL *w,
    REAL wofs, int N, int C, REAL eps)
{
	(void)ctx;
	rmsnorm_forward(out, rstd, x, w, wofs, N, C, eps);
}

static void
cpu_rmsnorm_backward(void *ctx, REAL *dx, REAL *dw, const REAL *dout,
    const REAL *x, const REAL *w, REAL wofs, const REAL *rstd, int N, int C)
{
	(void)ctx;
	rmsnorm_backward(dx, dw, dout, x, w, wofs, rstd, N, C);
}

static void
cpu_rope_table(void *ctx, REAL *cs, const int *pos, const REAL *freq, int N,
    int hd)
{
	(void)ctx;
	rope_table(cs, pos, freq, N, hd);
}

static void
cpu_rope(void *ctx, REAL *q, REAL *k, const REAL *cs, int N, int H, int KVH,
    int hd, int sign)
{
	(void)ctx;
	rope_apply(q, cs, N, H, hd, sign);
	rope_apply(k, cs, N, KVH, hd, sign);
}

/*
 * A cache whose ring keeps fewer positions than it holds (a sliding
 * window, backend.h): the keys the queries reach, the window - 1 before
 * them and their own, are copied in order to c->win at *w, and the
 * queries then see p0 = the kept ones before them.  Attention only looks
 * at offsets between positions (rotary is in the keys already), so the
 * shift changes nothing.  The new keys go to the ring after, the last
 * slots of them.
 */
static void
cpu_window_keys(struct cpu_ctx *c, size_t *w, int s, const REAL *k,
    const REAL *v, const struct attn_batch *ab, int l, int KV)
{
	struct kv_cache *kc = ab->kv[s];
	int p0 = ab->p0[s], nq = ab->nq[s];
	int old = p0 < kc->window - 1 ? p0 : kc->window - 1;
	size_t rows = (size_t)ab->qoff[s] * KV, n = (size_t)(old + nq) * KV;
	REAL *kw = c->win + *w, *vw = kw + n;
	const float *rk[2], *rv[2];
	int rn[2], from;

	kv_runs(kc, l, p0 - old, p0, rk, rv, rn);
	for (int r = 0, at = 0; r < 2; at += rn[r], r++)
		for (size_t i = 0; i < (size_t)rn[r] * KV; i++) {
			kw[(size_t)at * KV + i] = rk[r][i];
			vw[(size_t)at * KV + i] = rv[r][i];
		}
	for (size_t i = 0; i < (size_t)nq * KV; i++) {
		kw[(size_t)old * KV + i] = k[rows + i];
		vw[(size_t)old * KV + i] = v[rows + i];
	}
	from = p0 + nq - kc->slots > p0 ? p0 + nq - kc->slots : p0;
	for (int p = from; p < p0 + nq; p++)
		for (int i = 0; i < KV; i++) {
			kc->k[kv_row(kc, l, p) + i] = k[rows +
			    (size_t)(p - p0) * KV + i];
			kc->v[kv_row(kc, l, p) + i] = v[rows +
			    (size_t)(p - p0) * KV + i];
		}
	c->kb[s] = kw;
	c->vb[s] = vw;
	c->p0[s] = old;
	*w += 2 * n;
}

/*
 * With caches, the new rows go in first (float: the KV cache is always
 * fp32), then attention reads the layer's whole cache (or, in a ring,
 * the window cpu_window_keys gathers).  Forks are decoded
 * by backend_cpu_decode only.
 */
static void
cpu_attention(void *ctx, REAL *out, REAL *att, const REAL *q, const REAL *k,
    const REAL *v, const struct attn_batch *ab, int l,
    const struct attn_shape *sh)
{
	struct cpu_ctx *c = ctx;
	int KV = sh->KVH * sh->hd;
	struct attn_seqs as;
	size_t need = 0, w = 0;

	cpu_reserve(c, ab);
	for (int s = 0; ab->kv != NULL && s < ab->nseq; s++) {
		const struct kv_cache *kc = ab->kv[s];
		if (kc->slots < kc->cap)
			need += 2 * (size_t)(kc->window - 1 + ab->nq[s]) * KV;
	}
	if (need > c->wincap) {
		free(c->win);
		c->win = xmalloc(need * sizeof(REAL));
		c->wincap = need;
	}
	for (int s = 0; s < ab->nseq; s++) {
		size_t rows = (size_t)ab->qoff[s] * KV;

		c->p0[s] = ab->p0[s];
		if (ab->kv == NULL) {
			c->kb[s] = k + rows;
			c->vb[s] = v + rows;
			continue;
		}
		struct kv_cache *kc = ab->kv[s];
		size_t layer = (size_t)l * kc->slots * KV;
		size_t at = layer + (size_t)kc->len * KV;

		if (kc->base != NULL)
			errx(1, "backend cpu: forked caches are decoded by "
			    "backend_cpu_decode");
		if (sizeof(REAL) != sizeof(float))
			errx(1, "backend cpu: KV caches are fp32");
		if (kc->slots < kc->cap) {
			/* the probabilities kept are laid out by p0 */
			if (att != NULL || sh->window <= 0 ||
			    sh->window > kc->window)
				errx(1, "backend cpu: a ring of KV slots needs "
				    "windowed attention and no kept "
				    "probabilities");
			cpu_window_keys(c, &w, s, k, v, ab, l, KV);
			continue;
		}
		for (size_t i = 0; i < (size_t)ab->nq[s] * KV; i++) {
			kc->k[at + i] = k[rows + i];
			kc->v[at + i] = v[rows + i];
		}
		c->kb[s] = (const REAL *)(kc->k + layer);
		c->vb[s] = (const REAL *)(kc->v + layer);
	}
	as = (struct attn_seqs){ ab->nseq, ab->qoff, ab->nq, c->p0, ab->aoff,
	    c->kb, c->vb };
	attention_forward(out, att, c->rowbuf, ab->maxL, q, &as, sh->H,
	    sh->KVH, sh->hd, (REAL)sh->scale, sh->window, (REAL)sh->softcap);
}

static void
cpu_attention_backward(void *ctx, REAL *dq, REAL *dk, REAL *dv,
    const REAL *dout, const REAL *q, const REAL *k, const REAL *v,
    const REAL *att, const struct attn_batch *ab,
    const struct attn_shape *sh)
{
	struct cpu_ctx *c = ctx;
	struct attn_seqs as;

	if (ab->kv != NULL)
		errx(1, "backend cpu: no backward through a KV cache");
	cpu_reserve(c, ab);
	as = (struct attn_seqs){ ab->nseq, ab->qoff, ab->nq, ab->p0, ab->aoff,
	    NULL, NULL };
	attention_backward(dq, dk, dv, dout, q, k, v, att, c->rowbuf,
	    ab->maxL, &as, sh->H, sh->KVH, sh->hd, (REAL)sh->scale,
	    sh->window, (REAL)sh->softcap);
}

static void
cpu_swiglu(void *ctx, REAL *h, const REAL *g, const REAL *u, size_t n)
{
	(void)ctx;
	swiglu_forward(h, g, u, n);
}

static void
cpu_swiglu_backward(void *ctx, REAL *dg, REAL *du, const REAL *dh,
    const REAL *g, const REAL *u, size_t n)
{
	(void)ctx;
	swiglu_backward(dg, du, dh, g, u, n);
}

static void
cpu_geglu(void *ctx, REAL *h, const REAL *g, const REAL *u, size_t n)
{
	(void)ctx;
	geglu_forward(h, g, u, n);
}

static void
cpu_geglu_backward(void *ctx, REAL *dg, REAL *du, const REAL *dh,
    const REAL *g, const REAL *u, size_t n)
{
	(void)ctx;
	geglu_backward(dg, du, dh, g, u, n);
}

static void
cpu_add(void *ctx, REAL *out, const REAL *a, const REAL *b, size_t n)
{
	(void)ctx;
#pragma omp parallel for if (PAR(n))
	for (size_t i = 0; i < n; i++)
		out[i] = a[i] + b[i];
}

static void
cpu_scale(void *ctx, REAL *x, REAL s, size_t n)
{
	(void)ctx;
#pragma omp parallel for if (PAR(n))
	for (size_t i = 0; i < n; i++)
		x[i] *= s;
}

static void
cpu_softcap(void *ctx, REAL *x, REAL cap, size_t n)
{
	(void)ctx;
#pragma omp parallel for if (PAR(n))
	for (size_t b = 0; b < n; b += TANH_BLOCK)
		softcap_seq(x + b, cap, n - b < TANH_BLOCK ? n - b :
		    TANH_BLOCK);
}

static void
cpu_embed(void *ctx, REAL *x, const REAL *E, const int *tok, int N, int C,
    int V)
{
	(void)ctx;
	embed_forward(x, E, tok, N, C, V);
}

static void
cpu_embed_h(void *ctx, REAL *x, const uint16_t *E, enum dtype et,
    const int *tok, int N, int C, int V)
{
	(void)ctx;
#pragma omp parallel for if (PAR((size_t)N * C))
	for (int n = 0; n < N; n++) {
		if (tok[n] < 0 || tok[n] >= V)
			errx(EXIT_DATA, "token %d is outside the vocabulary "
			    "(0..%d)", tok[n], V - 1);
		widen_panel(x + (size_t)n * C, E + (size_t)tok[n] * C, et, 1,
		    C, 0, C);
	}
}

static void
cpu_embed_backward(void *ctx, REAL *dE, const REAL *dx, const int *tok,
    int N, int C)
{
	(void)ctx;
	embed_backward(dE, dx, tok, N, C);
}

static void
cpu_gather(void *ctx, REAL *dst, const REAL *src, const int *row, int n,
    int C)
{
	(void)ctx;
	for (int i = 0; i < n; i++)
		memcpy(dst + (size_t)i * C, src + (size_t)row[i] * C,
		    C * sizeof(REAL));
}

static void
cpu_logprob(void *ctx, REAL *lp, REAL *lse, const REAL *logits,
    const int *targets, int N, int V)
{
	(void)ctx;
	logprob_forward(lp, lse, logits, targets, N, V);
}

static void
cpu_logprob_backward(void *ctx, REAL *logits, const REAL *lse,
    const REAL *dlp, const int *targets, int N, int V, REAL cap)
{
	(void)ctx;
	logprob_backward(logits, lse, dlp, targets, N, V, cap);
}

static void
cpu_adamw(void *ctx, REAL *p, const REAL *g, REAL *m, REAL *v, size_t n,
    double lr, double b1, double b2, double eps, double wd, double bc1,
    double bc2)
{
	(void)ctx;
	adamw_update(p, g, m, v, n, lr, b1, b2, eps, wd, bc1, bc2);
}

#define CPU_OPS_INIT {							\
	.name = "cpu",	\
	.ctx_new = cpu_ctx_new,	\
	.ctx_free = cpu_ctx_free,	\
	.run = cpu_run,	\
	.matmul = cpu_matmul,	\
	.matmul_shared = cpu_matmul_shared,	\
	.matmul_backward = cpu_matmul_backward,	\
	.matmul_h = cpu_matmul_h,	\
	.matmul_shared_h = cpu_matmul_shared_h,	\
	.matmul_backward_h = cpu_matmul_backward_h,	\
	.rmsnorm = cpu_rmsnorm,	\
	.rmsnorm_backward = cpu_rmsnorm_backward,	\
	.rope_table = cpu_rope_table,	\
	.rope = cpu_rope,	\
	.attention = cpu_attention,	\
	.attention_backward = cpu_attention_backward,	\
	.swiglu = cpu_swiglu,	\
	.swiglu_backward = cpu_swiglu_backward,	\
	.geglu = cpu_geglu,	\
	.geglu_backward = cpu_geglu_backward,	\
	.add = cpu_add,	\
	.scale = cpu_scale,	\
	.softcap = cpu_softcap,	\
	.embed = cpu_embed,	\
	.embed_h = cpu_embed_h,	\
	.embed_backward = cpu_embed_backward,	\
	.gather = cpu_gather,	\
	.logprob = cpu_logprob,	\
	.logprob_backward = cpu_logprob_backward,	\
	.adamw = cpu_adamw,	\
}

static const struct BACKEND cpu_ops __attribute__((unused)) = CPU_OPS_INIT;
