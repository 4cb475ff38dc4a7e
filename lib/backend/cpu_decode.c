/*
 * cpu_decode.c: backend_cpu_decode, the operations of a decoding step:
 * one new token for each of B sequences, on their KV caches.
 *
 * backend_cpu does the same through sgemm, and is what prefills prompts.
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
 * A step runs in one OpenMP team (run): the products and the attention
 * share out their work (omp for), the small operations between them run
 * in one thread (omp single: RMSNorm and the rotary embeddings are
 * backend_cpu's own kernels, SwiGLU's exponentials lib/vmath's), and the
 * threads wait at a barrier there instead of being woken for every
 * product.  A step too small to pay for even that (a tiny model, one
 * sequence) runs in the calling thread.  The AVX2 paths are chosen at run
 * time (pp_cpu_avx2: the CPU, and PREFPIPE_NO_AVX2 unset), and for the
 * products of a batch AVX-512's where the CPU has it (PREFPIPE_NO_AVX512
 * unset), which give the same bits.
 * tests/unit_model.c checks a step against PyTorch's numbers and
 * tests/rollout_basic.sh against model_forward.
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

#include "backend/backend.h"
#include "backend/vmath.h"
#include "tensors/tensor.h"
#include "util/util.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    __GNUC__ >= 10
/* --compute bf16's kernel for AVX512_BF16 (chunk_avx512bf16) */
#define BF16DOT __attribute__((target("avx512f,avx512bw,avx512bf16")))
#endif

/* The runs of keys attention reads: the shared prefix's and the own
 * cache's (each a ring's tail and head, backend.h), the new token's. */
#define NRUN 5
/* The most products matmul_shared takes at once. */
#define MAXJOBS 4

/* Each thread's scores scratch, grown by the thread itself. */
struct dec_thread {
	float *scores;		/* (H, cap) */
	size_t cap;
	char pad[64 - sizeof(float *) - sizeof(size_t)];
};

struct dec_ctx {
	int avx2;		/* the AVX2 and FMA paths */
	int f16c;		/* and F16C's, for f16 weights */
	int avx512;		/* the AVX-512 products (chunk512_body) */
	int nth;		/* threads a step may use */
	struct dec_thread *th;	/* (nth) */
	int bf16dot;		/* AVX512_BF16's vdpbf16ps, for DT_XBF16 */
	float *xr;		/* (xrcap) x rounded to bf16 (DT_XBF16) */
	size_t xrcap;
};

static void *
dec_ctx_new(void)
{
	struct dec_ctx *c = xcalloc(1, sizeof(*c));

	c->nth = 1;
#ifdef _OPENMP
	c->nth = omp_get_max_threads();
#endif
	c->th = xcalloc(c->nth, sizeof(*c->th));
	c->avx2 = pp_cpu_avx2();
#if defined(__x86_64__) || defined(__i386__)
	c->f16c = c->avx2 && __builtin_cpu_supports("f16c");
#endif
#if defined(__x86_64__)
	c->avx512 = c->f16c && getenv("PREFPIPE_NO_AVX512") == NULL &&
	    __builtin_cpu_supports("avx512f") &&
	    __builtin_cpu_supports("avx512bw");
#endif
#ifdef BF16DOT
	c->bf16dot = getenv("PREFPIPE_NO_AVX512BF16") == NULL &&
	    __builtin_cpu_supports("avx512f") &&
	    __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512bf16");
#endif
	return c;
}

static void
dec_ctx_free(void *p)
{
	struct dec_ctx *c = p;

	if (c == NULL)
		return;
	for (int t = 0; t < c->nth; t++)
		free(c->th[t].scores);
	free(c->th);
	free(c->xr);
	free(c);
}

static int
thread_num(void)
{
#ifdef _OPENMP
	return omp_get_thread_num();
#else
	return 0;
#endif
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

#define AI static inline __attribute__((always_inline))

/*
 * Weights: fp32, or 16-bit as a checkpoint stores them (backend.h).  wt
 * is a constant in each copy of the kernels (chunk_fn below), so each
 * copy loads one way: an enum dtype, with W_AVX2 in the AVX2 copies.
 * bf16 is the top half of an fp32: eight elements zero-extended to 32
 * bits and shifted left by 16 (vpmovzxwd, vpslld); f16 goes through
 * F16C's vcvtph2ps.  Those two are GCC's builtins, not the intrinsics of
 * immintrin.h: a builtin in a branch the constant wt removes is never
 * expanded in the plain copies, where an intrinsic could not even be
 * inlined.  The plain copies widen bf16 with portable vector code and
 * f16 an element at a time (f16_to_f32).  Widening is exact, so the sums
 * below are the same operations on the same values as with the widened
 * weights in fp32, in every copy.
 */
#define W_AVX2 16
#define WT(wt) ((wt) & (W_AVX2 - 1))
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define X86_BUILTINS 1
typedef short v8hi __attribute__((vector_size(16)));
typedef int v8si __attribute__((vector_size(32)));
#endif
typedef unsigned short v8u16 __attribute__((vector_size(16)));
typedef unsigned int v8u32 __attribute__((vector_size(32)));

AI float
wload1(const void *w, size_t i, int wt)
{
	uint16_t h;

	if (WT(wt) == DT_F32)
		return ((const float *)w)[i];
	memcpy(&h, (const uint16_t *)w + i, sizeof h);
	return WT(wt) == DT_BF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

AI v8
wload8(const void *w, size_t i, int wt)
{
	v8 f;

	if (WT(wt) == DT_F32)
		return load8((const float *)w + i);
#ifdef X86_BUILTINS
	if (wt == (DT_BF16 | W_AVX2) || wt == (DT_F16 | W_AVX2)) {
		v8hi h;
		v8si u;
		memcpy(&h, (const uint16_t *)w + i, sizeof h);
		if (wt == (DT_F16 | W_AVX2))
			return __builtin_ia32_vcvtph2ps256(h);
		u = __builtin_ia32_pmovzxwd256(h) << 16;
		memcpy(&f, &u, sizeof f);
		return f;
	}
#endif
	if (WT(wt) == DT_BF16) {
		v8u16 h;
		v8u32 u;
		memcpy(&h, (const uint16_t *)w + i, sizeof h);
		u = __builtin_convertvector(h, v8u32) << 16;
		memcpy(&f, &u, sizeof f);
		return f;
	}
	for (int k = 0; k < 8; k++)
		f[k] = wload1(w, i + k, wt);
	return f;
}

/*
 * Prefetch element i of w, at every step of eight as for fp32 (so a
 * 16-bit row's cache line is asked for four times, an fp32 one's twice):
 * asking once a line measured no better (bench/bench_bf16.sh, bf16 at
 * 1.26x fp32 against 1.47x, on a loaded machine).
 */
AI void
wprefetch(const void *w, size_t i, int wt)
{
	__builtin_prefetch((const char *)w + i * (WT(wt) == DT_F32 ? 4 : 2));
}

/* Element i of w, as a pointer. */
AI const void *
wrow(const void *w, size_t i, int wt)
{
	return (const char *)w + i * (WT(wt) == DT_F32 ? 4 : 2);
}

AI float
hsum(const v8 *ap, const float *x, const void *w, int wt, int i8, int I)
{
	v8 a = *ap;
	float s = ((a[0] + a[1]) + (a[2] + a[3])) +
	    ((a[4] + a[5]) + (a[6] + a[7]));
	for (int i = i8; i < I; i++)
		s += x[i] * wload1(w, i, wt);
	return s;
}

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
k4x3(const float *x, int I, const void *w, int wt, float *r)
{
	v8 a00 = { 0 }, a01 = { 0 }, a02 = { 0 }, a10 = { 0 };
	v8 a11 = { 0 }, a12 = { 0 }, a20 = { 0 }, a21 = { 0 };
	v8 a22 = { 0 }, a30 = { 0 }, a31 = { 0 }, a32 = { 0 };
	int i8 = I & ~7;

	for (int i = 0; i < i8; i += 8) {
		v8 w0 = wload8(w, i, wt), w1 = wload8(w, I + i, wt);
		v8 w2 = wload8(w, 2 * I + i, wt), xv;
		wprefetch(w, 3 * I + i, wt);
		wprefetch(w, 4 * I + i, wt);
		wprefetch(w, 5 * I + i, wt);
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
			    wload1(w, (size_t)(k % 3) * I + i, wt);
}

/* Four rows by two outputs: r[2 * row + output]. */
AI void
k4x2(const float *x, int I, const void *w, int wt, float *r)
{
	v8 a00 = { 0 }, a01 = { 0 }, a10 = { 0 }, a11 = { 0 };
	v8 a20 = { 0 }, a21 = { 0 }, a30 = { 0 }, a31 = { 0 };
	int i8 = I & ~7;

	for (int i = 0; i < i8; i += 8) {
		v8 w0 = wload8(w, i, wt), w1 = wload8(w, I + i, wt), xv;
		/* The next two weight rows, while these are multiplied:
		 * they come from memory, the batch's rows from cache. */
		wprefetch(w, 2 * I + i, wt);
		wprefetch(w, 3 * I + i, wt);
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
			    wload1(w, (size_t)(k % 2) * I + i, wt);
}

/* One row by four outputs. */
AI void
k1x4(const float *x, int I, const void *w, int wt, float *r)
{
	v8 a0 = { 0 }, a1 = { 0 }, a2 = { 0 }, a3 = { 0 };
	int i8 = I & ~7;

	for (int i = 0; i < i8; i += 8) {
		v8 xv = load8(x + i);
		a0 += xv * wload8(w, i, wt);
		a1 += xv * wload8(w, I + i, wt);
		a2 += xv * wload8(w, 2 * I + i, wt);
		a3 += xv * wload8(w, 3 * I + i, wt);
	}
	r[0] = hsum(&a0, x, w, wt, i8, I);
	r[1] = hsum(&a1, x, wrow(w, I, wt), wt, i8, I);
	r[2] = hsum(&a2, x, wrow(w, 2 * (size_t)I, wt), wt, i8, I);
	r[3] = hsum(&a3, x, wrow(w, 3 * (size_t)I, wt), wt, i8, I);
}

/* One row by eight outputs, whose rows of w lie ldw floats apart (the
 * rows of a weight matrix, or the keys of a head in a KV cache). */
AI void
k1x8(const float *x, int I, const void *w, int wt, size_t ldw, float *r)
{
	v8 a0 = { 0 }, a1 = { 0 }, a2 = { 0 }, a3 = { 0 };
	v8 a4 = { 0 }, a5 = { 0 }, a6 = { 0 }, a7 = { 0 };
	int i8 = I & ~7;

	for (int i = 0; i < i8; i += 8) {
		v8 xv = load8(x + i);
		/* The next eight rows, one cache line in two iterations. */
		if ((i & 15) == 0)
			for (int k = 8; k < 16; k++)
				wprefetch(w, k * ldw + i, wt);
		a0 += xv * wload8(w, i, wt);
		a1 += xv * wload8(w, ldw + i, wt);
		a2 += xv * wload8(w, 2 * ldw + i, wt);
		a3 += xv * wload8(w, 3 * ldw + i, wt);
		a4 += xv * wload8(w, 4 * ldw + i, wt);
		a5 += xv * wload8(w, 5 * ldw + i, wt);
		a6 += xv * wload8(w, 6 * ldw + i, wt);
		a7 += xv * wload8(w, 7 * ldw + i, wt);
	}
	v8 v = reduce8(a0, a1, a2, a3, a4, a5, a6, a7);
	memcpy(r, &v, sizeof v);
	for (int i = i8; i < I; i++)
		for (int k = 0; k < 8; k++)
			r[k] += x[i] * wload1(w, k * ldw + i, wt);
}

/* One row by one output. */
AI float
k1x1(const float *x, int I, const void *w, int wt)
{
	v8 a = { 0 };
	int i8 = I & ~7;

	for (int i = 0; i < i8; i += 8)
		a += load8(x + i) * wload8(w, i, wt);
	return hsum(&a, x, w, wt, i8, I);
}

AI void
put(float *o, float v, const float *bias, int acc)
{
	if (bias)
		v += *bias;
	*o = acc ? *o + v : v;
}

/* Outputs o0..o1 of rows b0..B one row at a time, eight outputs at once
 * (the rows past a batch's last block of four). */
AI void
rows_alone(float *out, const float *x, const void *w, int wt,
    const float *bias, int b0, int B, int I, int O, int acc, int o0, int o1)
{
	float r[8];

	for (int b = b0; b < B; b++) {
		const float *xb = x + (size_t)b * I;
		float *ob = out + (size_t)b * O;
		int o = o0;
		for (; o + 8 <= o1; o += 8) {
			k1x8(xb, I, wrow(w, (size_t)o * I, wt), wt, I, r);
			for (int k = 0; k < 8; k++)
				put(ob + o + k, r[k], bias ? bias + o + k :
				    NULL, acc);
		}
		for (; o + 4 <= o1; o += 4) {
			k1x4(xb, I, wrow(w, (size_t)o * I, wt), wt, r);
			for (int k = 0; k < 4; k++)
				put(ob + o + k, r[k], bias ? bias + o + k :
				    NULL, acc);
		}
		for (; o < o1; o++)
			put(ob + o, k1x1(xb, I, wrow(w, (size_t)o * I, wt),
			    wt), bias ? bias + o : NULL, acc);
	}
}

/* Outputs o0..o1 for every row of the batch: each weight row comes from
 * memory once and serves all the rows while it is in cache. */
AI void
chunk_body(float *out, const float *x, const void *w, int wt,
    const float *bias, int B, int I, int O, int acc, int o0, int o1)
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
				k4x3(x + (size_t)b * I, I, wrow(w,
				    (size_t)o * I, wt), wt, r);
				for (int k = 0; k < 12; k++)
					put(ob + (size_t)(k / 3) * O + o +
					    k % 3, r[k], bias ? bias + o +
					    k % 3 : NULL, acc);
			}
	for (; o + 2 <= o1; o += 2)
		for (b = 0; b < B4; b += 4) {
			float *ob = out + (size_t)b * O;
			k4x2(x + (size_t)b * I, I, wrow(w, (size_t)o * I,
			    wt), wt, r);
			for (int k = 0; k < 8; k++)
				put(ob + (size_t)(k / 2) * O + o + k % 2, r[k],
				    bias ? bias + o + k % 2 : NULL, acc);
		}
	for (; o < o1; o++)
		for (b = 0; b < B4; b++)
			put(out + (size_t)b * O + o, k1x1(x + (size_t)b * I, I,
			    wrow(w, (size_t)o * I, wt), wt), bias ? bias + o : NULL, acc);
	rows_alone(out, x, w, wt, bias, B4, B, I, O, acc, o0, o1);
}

/*
 * The same outputs on AVX-512, twice the work an instruction.  A v16
 * holds two v8 side by side: lanes 0-7 the running sums of one (row,
 * output), lanes 8-15 those of the next output, each lane adding the
 * same products in the same order as the AVX2 kernels' v8 would.  The
 * weights of two rows go in one v16 (wload8 twice, then put together),
 * a row of the batch in both halves; the halves are then taken apart and
 * added by reduce8.  So every output is, bit for bit, the one the AVX2
 * kernels give (tests/unit_model_weights.c checks it), and the choice of
 * kernel by the CPU changes no sample.
 */
#ifdef X86_BUILTINS
typedef float v16 __attribute__((vector_size(64)));

AI v16
join8(v8 a, v8 b)
{
	return __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
	    10, 11, 12, 13, 14, 15);
}

AI v8
half8(v16 a, int hi)
{
	return hi ? __builtin_shufflevector(a, a, 8, 9, 10, 11, 12, 13, 14,
	    15) : __builtin_shufflevector(a, a, 0, 1, 2, 3, 4, 5, 6, 7);
}

/* Eight floats at p, in both halves: one vbroadcastf64x4 from memory
 * (putting two loads together took a shuffle more). */
AI v16
dup8(const float *p)
{
	typedef double v4df __attribute__((vector_size(32)));
	typedef double v8df __attribute__((vector_size(64)));
	v4df d;
	v8df r;
	v16 f;

	memcpy(&d, p, sizeof d);
	r = __builtin_ia32_broadcastf64x4_512(d, (v8df){ 0 },
	    (unsigned char)-1);
	memcpy(&f, &r, sizeof f);
	return f;
}

/* R rows (2 to 8, a constant) by four outputs: r[4 * row + output].
 * R * 2 running v16s: sixteen for R = 8, in AVX-512's 32 registers with
 * room for the weights; each pair of weight rows serves all R rows. */
AI void
kRx4(const float *x, int R, int I, const void *w, int wt, float *r)
{
	v16 a[9][2];
	int i8 = I & ~7;

#pragma GCC unroll 8
	for (int b = 0; b < R; b++)
		a[b][0] = a[b][1] = (v16){ 0 };
	for (int i = 0; i < i8; i += 8) {
		v16 w01 = join8(wload8(w, i, wt), wload8(w, I + i, wt));
		v16 w23 = join8(wload8(w, 2 * (size_t)I + i, wt),
		    wload8(w, 3 * (size_t)I + i, wt));
		/* the next four weight rows, from memory meanwhile */
#pragma GCC unroll 4
		for (int k = 4; k < 8; k++)
			wprefetch(w, k * (size_t)I + i, wt);
#pragma GCC unroll 8
		for (int b = 0; b < R; b++) {
			v16 xx = dup8(x + (size_t)b * I + i);
			a[b][0] += xx * w01;
			a[b][1] += xx * w23;
		}
	}
	/* two rows a reduce8; an odd R's last with zeros for a partner */
	if (R & 1)
		a[R][0] = a[R][1] = (v16){ 0 };
#pragma GCC unroll 4
	for (int b = 0; b < R; b += 2) {
		v8 v = reduce8(half8(a[b][0], 0), half8(a[b][0], 1),
		    half8(a[b][1], 0), half8(a[b][1], 1),
		    half8(a[b + 1][0], 0), half8(a[b + 1][0], 1),
		    half8(a[b + 1][1], 0), half8(a[b + 1][1], 1));
		memcpy(r + 4 * b, &v, (b + 1 < R ? 8 : 4) * sizeof(float));
	}
	for (int i = i8; i < I; i++)
		for (int k = 0; k < 4 * R; k++)
			r[k] += x[(size_t)(k / 4) * I + i] *
			    wload1(w, (size_t)(k % 4) * I + i, wt);
}

/* The rows of the next block when rem are left (rem >= 2): 8 while that
 * leaves two or more, else 4, 3 or 2 so that none is left alone (a
 * lone row would read every weight once more, from memory). */
AI int
block_rows(int rem)
{
	if (rem >= 10 || rem == 8)
		return 8;
	if (rem == 9 || rem == 7 || rem == 6 || rem == 4)
		return 4;
	return rem == 5 ? 3 : rem;
}

/* chunk_body's outputs, the blocks of rows by kRx4: eight rows, four,
 * three or two (block_rows), by four outputs, since a batch whose samples
 * end one by one passes through every size; one row alone, and the
 * outputs past the last four, as chunk_body does them. */
AI void
chunk512_body(float *out, const float *x, const void *w, int wt,
    const float *bias, int B, int I, int O, int acc, int o0, int o1)
{
	float r[32];
	int o = o0, b, R;
	int Bk = B >= 2 ? B : 0;	/* rows in blocks: all but a lone one */

	if (Bk > 0)
		for (; o + 4 <= o1; o += 4)
			for (b = 0; b < Bk; b += R) {
				const float *xb = x + (size_t)b * I;
				const void *wo = wrow(w, (size_t)o * I, wt);
				float *ob = out + (size_t)b * O;
				R = block_rows(Bk - b);
				switch (R) {
				case 8: kRx4(xb, 8, I, wo, wt, r); break;
				case 4: kRx4(xb, 4, I, wo, wt, r); break;
				case 3: kRx4(xb, 3, I, wo, wt, r); break;
				default: kRx4(xb, 2, I, wo, wt, r); break;
				}
				for (int k = 0; k < 4 * R; k++)
					put(ob + (size_t)(k / 4) * O + o +
					    k % 4, r[k], bias ? bias + o +
					    k % 4 : NULL, acc);
			}
	for (; o < o1; o++)
		for (b = 0; b < Bk; b++)
			put(out + (size_t)b * O + o, k1x1(x + (size_t)b * I, I,
			    wrow(w, (size_t)o * I, wt), wt), bias ? bias + o :
			    NULL, acc);
	rows_alone(out, x, w, wt, bias, Bk, B, I, O, acc, o0, o1);
}
#endif

/*
 * Attention of query heads h0..h1 of one sequence over its keys, which lie
 * in up to three runs: the prefix a fork shares with its prompt's other
 * samples, then its own in its cache, then the new token's, not yet
 * stored (g = 0, 1, 2; k[g] and v[g] (L[g], KV)).  The keys are
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
attend_body(const float *q, const float *const k[NRUN],
    const float *const v[NRUN], const int L[NRUN], int KV, int hd, int grp,
    int h0, int h1, float scale, float cap, float *sc, float *out)
{
	int i8 = hd & ~7, n = 0;
	float r[8];

	for (int g = 0; g < NRUN; g++)
		n += L[g];

	for (int g = 0, j0 = 0; g < NRUN; j0 += L[g], g++) {
		int j = 0;
		for (; j + 8 <= L[g]; j += 8)
			for (int h = h0; h < h1; h++) {
				const float *qh = q + (size_t)h * hd;
				const float *k0 = k[g] + (size_t)j * KV +
				    (size_t)(h / grp) * hd;
				k1x8(qh, hd, k0, DT_F32, KV, r);
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
				    hsum(&a, qh, kj, DT_F32, i8, hd) * scale;
			}
	}

	/* Gemma 2's attention softcap, before the softmax */
	if (cap > 0)
		vmath_softcap(sc, sc, cap, (size_t)(h1 - h0) * n);

	float inv[h1 - h0];
	for (int h = h0; h < h1; h++) {
		float *sh = sc + (size_t)(h - h0) * n;
		inv[h - h0] = (float)(1 / vmath_exp_sum(sh, sh,
		    vmath_max(sh, n), n));
	}

	float *o = out + (size_t)h0 * hd;
	memset(o, 0, (size_t)(h1 - h0) * hd * sizeof(float));
	for (int g = 0, j0 = 0; g < NRUN; j0 += L[g], g++)
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

typedef void attend_fn(const float *, const float *const[NRUN],
    const float *const[NRUN], const int[NRUN], int, int, int, int, int,
    float, float, float *, float *);

__attribute__((target("avx2,fma"))) static void
attend_avx2(const float *q, const float *const k[NRUN],
    const float *const v[NRUN], const int L[NRUN], int KV, int hd, int grp,
    int h0, int h1, float scale, float cap, float *sc, float *out)
{
	attend_body(q, k, v, L, KV, hd, grp, h0, h1, scale, cap, sc, out);
}

static void
attend_generic(const float *q, const float *const k[NRUN],
    const float *const v[NRUN], const int L[NRUN], int KV, int hd, int grp,
    int h0, int h1, float scale, float cap, float *sc, float *out)
{
	attend_body(q, k, v, L, KV, hd, grp, h0, h1, scale, cap, sc, out);
}

typedef void chunk_fn(float *, const float *, const void *, const float *,
    int, int, int, int, int, int);

/*
 * The same code for each weight type, once for any x86-64 and once with
 * AVX2, FMA and F16C.
 */
#define CHUNK(name, target, wt)						\
target static void							\
name(float *out, const float *x, const void *w, const float *bias,	\
    int B, int I, int O, int acc, int o0, int o1)			\
{									\
	chunk_body(out, x, w, wt, bias, B, I, O, acc, o0, o1);		\
}
#define AVX2 __attribute__((target("avx2,fma,f16c")))
CHUNK(chunk_avx2, AVX2, DT_F32)
CHUNK(chunk_avx2_bf16, AVX2, DT_BF16 | W_AVX2)
CHUNK(chunk_avx2_f16, AVX2, DT_F16 | W_AVX2)
CHUNK(chunk_generic, , DT_F32)
CHUNK(chunk_generic_bf16, , DT_BF16)
CHUNK(chunk_generic_f16, , DT_F16)
#undef AVX2
#undef CHUNK

#ifdef X86_BUILTINS
#define CHUNK512(name, wt)						\
__attribute__((target("avx2,fma,f16c,avx512f,avx512bw"))) static void	\
name(float *out, const float *x, const void *w, const float *bias,	\
    int B, int I, int O, int acc, int o0, int o1)			\
{									\
	chunk512_body(out, x, w, wt, bias, B, I, O, acc, o0, o1);	\
}
CHUNK512(chunk_avx512, DT_F32)
CHUNK512(chunk_avx512_bf16, DT_BF16 | W_AVX2)
CHUNK512(chunk_avx512_f16, DT_F16 | W_AVX2)
#undef CHUNK512
#endif

#ifdef BF16DOT
/*
 * --compute bf16 (DT_XBF16) on a CPU with AVX512_BF16: x, already rounded
 * to bf16 values (dec_round_x, so converting it again is exact), and the
 * weight's bf16 as stored go to vdpbf16ps, which adds each pair's two
 * products (exact) to a lane's fp32 sum: sixteen lanes over i mod 32, the
 * last I mod 32 elements masked to zeros, then the lanes added.  Each
 * output is computed the same way whatever B, its block and the threads.
 * Only where the CPU has the instructions (dec_ctx_new), so it is tested
 * only there: tests/unit_model_weights.c against the portable path.
 */

/* Rows b0..b0+R of x by weight rows o..o+NO (R <= 4, NO <= 4, both
 * constants where it is inlined): each pair's sum as above, the R x NO
 * of them side by side so that a weight load and a conversion of x to
 * bf16 serve several (one output alone converted x once a weight row,
 * and ran three times slower than --compute f32 at n = 8). */
BF16DOT static inline __attribute__((always_inline)) void
bf16dot_block(float *out, const float *x, const uint16_t *wh,
    const float *bias, int R, int NO, int I, int O, int acc, int b0, int o)
{
	__m512 s[4][4];
	int i32 = I & ~31, n = I - i32;

#pragma GCC unroll 4
	for (int r = 0; r < R; r++)
#pragma GCC unroll 4
		for (int k = 0; k < NO; k++)
			s[r][k] = _mm512_setzero_ps();
	for (int i = 0; i < i32; i += 32) {
		__m512bh wv[4];
#pragma GCC unroll 4
		for (int k = 0; k < NO; k++)
			wv[k] = (__m512bh)_mm512_loadu_si512(wh +
			    (size_t)(o + k) * I + i);
#pragma GCC unroll 4
		for (int r = 0; r < R; r++) {
			const float *xb = x + (size_t)(b0 + r) * I + i;
			__m512bh xv = _mm512_cvtne2ps_pbh(
			    _mm512_loadu_ps(xb + 16), _mm512_loadu_ps(xb));
#pragma GCC unroll 4
			for (int k = 0; k < NO; k++)
				s[r][k] = _mm512_dpbf16_ps(s[r][k], xv, wv[k]);
		}
	}
	if (n > 0) {
		__mmask16 m0 = n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1);
		__mmask16 m1 = n > 16 ? (__mmask16)((1u << (n - 16)) - 1) : 0;
		__mmask32 mw = (__mmask32)((1ull << n) - 1);
#pragma GCC unroll 4
		for (int r = 0; r < R; r++) {
			const float *xb = x + (size_t)(b0 + r) * I + i32;
			__m512bh xv = _mm512_cvtne2ps_pbh(
			    _mm512_maskz_loadu_ps(m1, xb + 16),
			    _mm512_maskz_loadu_ps(m0, xb));
#pragma GCC unroll 4
			for (int k = 0; k < NO; k++)
				s[r][k] = _mm512_dpbf16_ps(s[r][k], xv,
				    (__m512bh)_mm512_maskz_loadu_epi16(mw, wh +
				    (size_t)(o + k) * I + i32));
		}
	}
#pragma GCC unroll 4
	for (int r = 0; r < R; r++)
#pragma GCC unroll 4
		for (int k = 0; k < NO; k++)
			put(out + (size_t)(b0 + r) * O + o + k,
			    _mm512_reduce_add_ps(s[r][k]),
			    bias ? bias + o + k : NULL, acc);
}

/* One output's or four's block of rows, R of them (a constant each). */
#define BF16DOT_ROWS(NO)						\
	switch (R) {							\
	case 4: bf16dot_block(out, x, wh, bias, 4, NO, I, O, acc, b, o); \
		break;							\
	case 3: bf16dot_block(out, x, wh, bias, 3, NO, I, O, acc, b, o); \
		break;							\
	case 2: bf16dot_block(out, x, wh, bias, 2, NO, I, O, acc, b, o); \
		break;							\
	default: bf16dot_block(out, x, wh, bias, 1, NO, I, O, acc, b, o); \
	}

BF16DOT static void
chunk_avx512bf16(float *out, const float *x, const void *w,
    const float *bias, int B, int I, int O, int acc, int o0, int o1)
{
	const uint16_t *wh = w;
	int o = o0;

	for (; o + 4 <= o1; o += 4)
		for (int b = 0, R; b < B; b += R) {
			R = B - b < 4 ? B - b : 4;
			BF16DOT_ROWS(4)
		}
	for (; o < o1; o++)
		for (int b = 0, R; b < B; b += R) {
			R = B - b < 4 ? B - b : 4;
			BF16DOT_ROWS(1)
		}
}
#undef BF16DOT_ROWS
#endif

/* The chunk function for weights of type wt. */
static chunk_fn *
chunk_for(const struct dec_ctx *s, int wt)
{
#ifdef BF16DOT
	if (wt == (DT_BF16 | DT_XBF16) && s->bf16dot)
		return chunk_avx512bf16;
#endif
	wt &= ~DT_XBF16;
	if (s->avx2 && !s->f16c && wt == DT_F16)
		return chunk_generic_f16;
#ifdef X86_BUILTINS
	if (s->avx512)
		return wt == DT_BF16 ? chunk_avx512_bf16 : wt == DT_F16 ?
		    chunk_avx512_f16 : chunk_avx512;
#endif
	if (s->avx2)
		return wt == DT_BF16 ? chunk_avx2_bf16 : wt == DT_F16 ?
		    chunk_avx2_f16 : chunk_avx2;
	return wt == DT_BF16 ? chunk_generic_bf16 : wt == DT_F16 ?
	    chunk_generic_f16 : chunk_generic;
}

/* One product of a batch of matvec_jobs: out (B,O) = x w^T + bias. */
struct mv_job {
	float *out;
	const void *w;		/* fp32, or 16-bit of type wt */
	const float *bias;
	int O;
	int wt;
};

/*
 * Products that share their input x (B,I), as q, k and v do: chunks of
 * 24 outputs of all of them across the threads of the step's team (or
 * all in this thread outside one; see dec_run).  Which thread
 * computes an output changes nothing in how it is computed.
 */
static void
matvec_jobs(const struct dec_ctx *s, const float *x, int B, int I,
    int acc, const struct mv_job *jobs, int njobs)
{
	chunk_fn *f[MAXJOBS];
	int nchunk = 0, first[MAXJOBS];

	for (int j = 0; j < njobs; j++) {
		f[j] = chunk_for(s, jobs[j].wt);
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
		f[j](jb->out, x, jb->w, jb->bias, B, I, jb->O, acc, o0, o1);
	}
}


/* ------------------------------------------------------------------------ */
/* The operations. */

static void
dec_run(void *ctx, void (*fn)(void *), void *arg, double work)
{
	struct dec_ctx *c = ctx;
	int team = c->nth > 1 && work >= 262144;

#pragma omp parallel if (team) num_threads(c->nth)
	fn(arg);
}

/* res is NULL, or out (the residual stream, added in place). */
static void
dec_matmul(void *ctx, float *out, const float *x, const float *w,
    const float *bias, const float *res, int N, int I, int O)
{
	struct mv_job j = { out, w, bias, O, DT_F32 };

	if (res != NULL && res != out) {
#pragma omp single
		memcpy(out, res, (size_t)N * O * sizeof(float));
	}
	matvec_jobs(ctx, x, N, I, res != NULL, &j, 1);
}

static void
dec_matmul_shared(void *ctx, int n, float *const *out, const float *x,
    const float *const *w, const float *const *bias, const int *O, int N,
    int I)
{
	struct mv_job j[MAXJOBS];

	if (n > MAXJOBS)
		errx(1, "backend cpu_decode: %d products at once", n);
	for (int i = 0; i < n; i++)
		j[i] = (struct mv_job){ out[i], w[i], bias[i], O[i], DT_F32 };
	matvec_jobs(ctx, x, N, I, 0, j, n);
}

/*
 * --compute bf16 (DT_XBF16 in wt): x (n) rounded to bf16 once, into the
 * context's scratch, by one thread of the team; the single's barrier
 * lets the others read it.  The products then take the rounded values
 * through the usual kernels: a bf16 times a bf16 is exact in fp32, so
 * each product and every sum are those of the bf16 instructions, whose
 * sums differ only in their order.
 */
static const float *
dec_round_x(struct dec_ctx *c, const float *x, size_t n)
{
#pragma omp single
	{
		if (n > c->xrcap) {
			free(c->xr);
			c->xr = xmalloc(n * sizeof(float));
			c->xrcap = n;
		}
		for (size_t i = 0; i < n; i++)
			c->xr[i] = bf16_to_f32(f32_to_bf16(x[i]));
	}
	return c->xr;
}

/* The same with 16-bit weights, read as they are. */
static void
dec_matmul_h(void *ctx, float *out, const float *x, const uint16_t *w,
    enum dtype wt, const float *bias, const float *res, int N, int I, int O)
{
	struct mv_job j = { out, w, bias, O, wt };

	if (wt & DT_XBF16)
		x = dec_round_x(ctx, x, (size_t)N * I);

	if (res != NULL && res != out) {
#pragma omp single
		memcpy(out, res, (size_t)N * O * sizeof(float));
	}
	matvec_jobs(ctx, x, N, I, res != NULL, &j, 1);
}

static void
dec_matmul_shared_h(void *ctx, int n, float *const *out, const float *x,
    const uint16_t *const *w, enum dtype wt, const float *const *bias,
    const int *O, int N, int I)
{
	struct mv_job j[MAXJOBS];

	if (n > MAXJOBS)
		errx(1, "backend cpu_decode: %d products at once", n);
	for (int i = 0; i < n; i++)
		j[i] = (struct mv_job){ out[i], w[i], bias[i], O[i], wt };
	if (wt & DT_XBF16)
		x = dec_round_x(ctx, x, (size_t)N * I);
	matvec_jobs(ctx, x, N, I, 0, j, n);
}

static void
dec_rmsnorm(void *ctx, float *out, float *rstd, const float *x,
    const float *w, float wofs, int N, int C, float eps)
{
	(void)ctx;
#pragma omp single
	backend_cpu.rmsnorm(NULL, out, rstd, x, w, wofs, N, C, eps);
}

static void
dec_rope_table(void *ctx, float *cs, const int *pos, const float *freq,
    int N, int hd)
{
	(void)ctx;
#pragma omp single
	backend_cpu.rope_table(NULL, cs, pos, freq, N, hd);
}

static void
dec_rope(void *ctx, float *q, float *k, const float *cs, int N, int H,
    int KVH, int hd, int sign)
{
	(void)ctx;
#pragma omp single
	backend_cpu.rope(NULL, q, k, cs, N, H, KVH, hd, sign);
}

/*
 * A sequence per iteration, or a share of its heads when there are fewer
 * sequences than threads.  The new token's key and value are read where
 * the projections left them, and stored into the cache by the iteration
 * of the sequence's first share, which no other iteration of this layer
 * reads.
 */
static void
dec_attention(void *ctx, float *out, float *att, const float *q,
    const float *k, const float *v, const struct attn_batch *ab, int l,
    const struct attn_shape *sh)
{
	struct dec_ctx *c = ctx;
	int B = ab->nseq, H = sh->H, hd = sh->hd, KV = sh->KVH * hd;
	int grp = H / sh->KVH, Q = H * hd;
	float scale = (float)sh->scale;
	attend_fn *af = c->avx2 ? attend_avx2 : attend_generic;
	int parts = B < c->nth ? (c->nth + B - 1) / B : 1;

	(void)att;
	if (ab->kv == NULL)
		errx(1, "backend cpu_decode: attention needs KV caches");
	if (parts > H)
		parts = H;
#pragma omp for schedule(dynamic, 1)
	for (int bp = 0; bp < B * parts; bp++) {
		int b = bp / parts, part = bp % parts;
		int h0 = H * part / parts, h1 = H * (part + 1) / parts;
		struct kv_cache *cb = ab->kv[b];
		const struct kv_cache *cp = cb->base;
		struct dec_thread *t = &c->th[thread_num()];
		size_t row = (size_t)ab->qoff[b] * KV;
		size_t need = (size_t)H * (cb->len + 1);
		const float *kk[NRUN] = { NULL }, *vv[NRUN] = { NULL };
		int L3[NRUN] = { 0 };
		/* A sliding window: the query at position len sees keys
		 * len - window + 1 .. len, the prefix's, then its own. */
		int lo = sh->window > 0 && cb->len - sh->window + 1 > 0 ?
		    cb->len - sh->window + 1 : 0;

		if ((lo > cb->off ? lo : cb->off) < cb->len - cb->slots ||
		    (cp != NULL && lo < cb->off && lo < cp->len - cp->slots))
			errx(1, "backend cpu_decode: a key the window sees "
			    "is no longer kept");
		if (cp != NULL && lo < cb->off)
			kv_runs(cp, l, lo, cb->off, kk, vv, L3);
		kv_runs(cb, l, lo > cb->off ? lo : cb->off, cb->len, kk + 2,
		    vv + 2, L3 + 2);
		kk[4] = k + row;
		vv[4] = v + row;
		L3[4] = 1;

		if (ab->nq[b] != 1)
			errx(1, "backend cpu_decode: one new token a sequence");
		if (need > t->cap) {
			free(t->scores);
			t->cap = need + need / 2;
			t->scores = xmalloc(t->cap * sizeof(float));
		}
		af(q + (size_t)b * Q, kk, vv, L3, KV, hd, grp, h0, h1, scale,
		    (float)sh->softcap, t->scores, out + (size_t)b * Q);
		/* The slot written held position len - slots, which no
		 * query sees (slots >= window): the other parts of this
		 * sequence may still be reading the rest. */
		if (part == 0) {
			size_t at = kv_row(cb, l, cb->len);
			memcpy(cb->k + at, k + row, KV * sizeof(float));
			memcpy(cb->v + at, v + row, KV * sizeof(float));
		}
	}
}

static void
dec_swiglu(void *ctx, float *h, const float *g, const float *u, size_t n)
{
	(void)ctx;
#pragma omp single
	vmath_silu_mul(h, g, u, n);
}

static void
dec_geglu(void *ctx, float *h, const float *g, const float *u, size_t n)
{
	(void)ctx;
#pragma omp single
	vmath_gelu_mul(h, g, u, n);
}

static void
dec_add(void *ctx, float *out, const float *a, const float *b, size_t n)
{
	(void)ctx;
#pragma omp single
	backend_cpu.add(NULL, out, a, b, n);
}

static void
dec_scale(void *ctx, float *x, float s, size_t n)
{
	(void)ctx;
#pragma omp single
	backend_cpu.scale(NULL, x, s, n);
}

static void
dec_softcap(void *ctx, float *x, float cap, size_t n)
{
	(void)ctx;
#pragma omp single
	vmath_softcap(x, x, cap, n);
}

static void
dec_embed(void *ctx, float *x, const float *E, const int *tok, int N, int C,
    int V)
{
	(void)ctx;
#pragma omp single
	backend_cpu.embed(NULL, x, E, tok, N, C, V);
}

static void
dec_embed_h(void *ctx, float *x, const uint16_t *E, enum dtype et,
    const int *tok, int N, int C, int V)
{
	(void)ctx;
#pragma omp single
	backend_cpu.embed_h(NULL, x, E, et, tok, N, C, V);
}

static void
dec_gather(void *ctx, float *dst, const float *src, const int *row, int n,
    int C)
{
	(void)ctx;
#pragma omp single
	backend_cpu.gather(NULL, dst, src, row, n, C);
}

/* No backward, no loss, no optimizer: a decoding step needs none. */
const struct backend backend_cpu_decode = {
	.name = "cpu_decode",
	.ctx_new = dec_ctx_new,
	.ctx_free = dec_ctx_free,
	.run = dec_run,
	.matmul = dec_matmul,
	.matmul_shared = dec_matmul_shared,
	.matmul_h = dec_matmul_h,
	.matmul_shared_h = dec_matmul_shared_h,
	.rmsnorm = dec_rmsnorm,
	.rope_table = dec_rope_table,
	.rope = dec_rope,
	.attention = dec_attention,
	.swiglu = dec_swiglu,
	.geglu = dec_geglu,
	.add = dec_add,
	.scale = dec_scale,
	.softcap = dec_softcap,
	.embed = dec_embed,
	.embed_h = dec_embed_h,
	.gather = dec_gather,
};
