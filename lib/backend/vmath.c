/*
 * vmath.c: the loops of vmath.h, twice: once with AVX2 and libmvec's
 * eight-wide expf, once in plain C for any other CPU.  Which one runs is
 * decided by the CPU, once, so a process never mixes the two.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>

#include "util/util.h"
#include "backend/vmath.h"

#if defined(__x86_64__) && defined(HAVE_LIBMVEC)
#define VMATH_AVX2 1
#include <immintrin.h>

/* glibc's AVX2 expf of eight floats (the x86-64 vector function ABI). */
extern __m256 _ZGVdN8v_expf(__m256);
#ifdef HAVE__ZGVDN8V_TANHF
#define VMATH_TANH 1
extern __m256 _ZGVdN8v_tanhf(__m256);
#endif
#endif

/* The fixed tree every sum of eight lanes is added in. */
static double
tree8(const double d[8])
{
	return ((d[0] + d[1]) + (d[2] + d[3])) + ((d[4] + d[5]) + (d[6] + d[7]));
}

/* ------------------------------------------------------------------------ */
/* Plain C */

static float
max_plain(const float *x, size_t n)
{
	float m = x[0];
	for (size_t i = 1; i < n; i++)
		if (x[i] > m)
			m = x[i];
	return m;
}

static size_t
find_plain(const float *x, size_t n, float v)
{
	for (size_t i = 0; i < n; i++)
		if (x[i] == v)
			return i;
	return 0;
}

static double
exp_sum_plain(float *y, const float *x, float shift, float scale, size_t n)
{
	double d[8] = { 0 };
	for (size_t i = 0; i < n; i++) {
		float e = expf((x[i] - shift) * scale);
		if (y != NULL)
			y[i] = e;
		d[i % 8] += e;
	}
	return tree8(d);
}

static void
silu_mul_plain(float *h, const float *g, const float *u, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h[i] = g[i] / (1 + expf(-g[i])) * u[i];
}

/* The plain gelu of one element, in the order the AVX2 loop takes. */
static float
gelu_plain1(float g)
{
	float k = (float)VMATH_GELU_K, a = (float)VMATH_GELU_A;
	return 0.5f * g * (1 + tanhf(k * (g + a * g * g * g)));
}

static void
softcap_plain(float *y, const float *x, float cap, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] = cap * tanhf(x[i] / cap);
}

static void
gelu_mul_plain(float *h, const float *g, const float *u, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h[i] = gelu_plain1(g[i]) * u[i];
}

/* ------------------------------------------------------------------------ */
/* AVX2 */

#ifdef VMATH_AVX2
#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static float
max_avx2(const float *x, size_t n)
{
	/* maxps keeps its second operand when the first is a NaN, as the
	 * plain loop skips NaNs. */
	__m256 m0 = _mm256_set1_ps(x[0]), m1 = m0;
	size_t i = 0;
	float r[8], m;

	for (; i + 16 <= n; i += 16) {
		m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0);
		m1 = _mm256_max_ps(_mm256_loadu_ps(x + i + 8), m1);
	}
	_mm256_storeu_ps(r, _mm256_max_ps(m1, m0));
	m = r[0];
	for (int k = 1; k < 8; k++)
		if (r[k] > m)
			m = r[k];
	for (; i < n; i++)
		if (x[i] > m)
			m = x[i];
	return m;
}

AVX2 static size_t
find_avx2(const float *x, size_t n, float v)
{
	__m256 vv = _mm256_set1_ps(v);
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		int bits = _mm256_movemask_ps(_mm256_cmp_ps(
		    _mm256_loadu_ps(x + i), vv, _CMP_EQ_OQ));
		if (bits)
			return i + (size_t)__builtin_ctz((unsigned)bits);
	}
	for (; i < n; i++)
		if (x[i] == v)
			return i;
	return 0;
}

AVX2 static double
exp_sum_avx2(float *y, const float *x, float shift, float scale, size_t n)
{
	__m256 s = _mm256_set1_ps(shift), c = _mm256_set1_ps(scale), e;
	__m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
	double d[8];
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		e = _ZGVdN8v_expf(_mm256_mul_ps(_mm256_sub_ps(
		    _mm256_loadu_ps(x + i), s), c));
		if (y != NULL)
			_mm256_storeu_ps(y + i, e);
		lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
		hi = _mm256_add_pd(hi, _mm256_cvtps_pd(
		    _mm256_extractf128_ps(e, 1)));
	}
	if (i < n) {
		/* The last few through the same function, padded with
		 * -inf, whose exponential adds nothing. */
		float t[8];
		size_t k, left = n - i;
		for (k = 0; k < 8; k++)
			t[k] = k < left ? x[i + k] : -INFINITY;
		e = _ZGVdN8v_expf(_mm256_mul_ps(_mm256_sub_ps(
		    _mm256_loadu_ps(t), s), c));
		_mm256_storeu_ps(t, e);
		for (k = 0; y != NULL && k < left; k++)
			y[i + k] = t[k];
		lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
		hi = _mm256_add_pd(hi, _mm256_cvtps_pd(
		    _mm256_extractf128_ps(e, 1)));
	}
	_mm256_storeu_pd(d, lo);
	_mm256_storeu_pd(d + 4, hi);
	return tree8(d);
}

AVX2 static void
silu_mul_avx2(float *h, const float *g, const float *u, size_t n)
{
	const __m256 one = _mm256_set1_ps(1), zero = _mm256_setzero_ps();
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		__m256 gv = _mm256_loadu_ps(g + i);
		__m256 e = _ZGVdN8v_expf(_mm256_sub_ps(zero, gv));
		_mm256_storeu_ps(h + i, _mm256_mul_ps(_mm256_div_ps(gv,
		    _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
	}
	if (i < n) {
		float tg[8] = { 0 }, tu[8] = { 0 };
		size_t k, left = n - i;
		for (k = 0; k < left; k++) {
			tg[k] = g[i + k];
			tu[k] = u[i + k];
		}
		silu_mul_avx2(tg, tg, tu, 8);
		for (k = 0; k < left; k++)
			h[i + k] = tg[k];
	}
}

#ifdef VMATH_TANH
/*
 * The tanh loops: eight at a time, the last few padded with zeros (a
 * lane's value depends on its own input only), as silu_mul_avx2.
 */
AVX2 static void
softcap_avx2(float *y, const float *x, float cap, size_t n)
{
	const __m256 c = _mm256_set1_ps(cap);
	size_t i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, _mm256_mul_ps(c, _ZGVdN8v_tanhf(
		    _mm256_div_ps(_mm256_loadu_ps(x + i), c))));
	if (i < n) {
		float t[8] = { 0 };
		size_t k, left = n - i;
		for (k = 0; k < left; k++)
			t[k] = x[i + k];
		softcap_avx2(t, t, cap, 8);
		for (k = 0; k < left; k++)
			y[i + k] = t[k];
	}
}

/* gelu_plain1's operations, each rounded as there (no fused multiply-add:
 * the compiler may not contract intrinsics' separate products). */
AVX2 static void
gelu_mul_avx2(float *h, const float *g, const float *u, size_t n)
{
	const __m256 k = _mm256_set1_ps((float)VMATH_GELU_K);
	const __m256 a = _mm256_set1_ps((float)VMATH_GELU_A);
	const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1);
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		__m256 x = _mm256_loadu_ps(g + i);
		__m256 c = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(a, x), x),
		    x);
		__m256 t = _ZGVdN8v_tanhf(_mm256_mul_ps(k, _mm256_add_ps(x,
		    c)));
		__m256 gl = _mm256_mul_ps(_mm256_mul_ps(half, x),
		    _mm256_add_ps(one, t));
		_mm256_storeu_ps(h + i, _mm256_mul_ps(gl,
		    _mm256_loadu_ps(u + i)));
	}
	if (i < n) {
		float tg[8] = { 0 }, tu[8] = { 0 };
		size_t j, left = n - i;
		for (j = 0; j < left; j++) {
			tg[j] = g[i + j];
			tu[j] = u[i + j];
		}
		gelu_mul_avx2(tg, tg, tu, 8);
		for (j = 0; j < left; j++)
			h[i + j] = tg[j];
	}
}
#endif

static int
have_avx2(void)
{
	static int known = -1;
	if (known < 0)
		known = pp_cpu_avx2();
	return known;
}
#else
static int
have_avx2(void)
{
	return 0;
}
#endif

/* ------------------------------------------------------------------------ */

float
vmath_max(const float *x, size_t n)
{
#ifdef VMATH_AVX2
	if (have_avx2())
		return max_avx2(x, n);
#endif
	return max_plain(x, n);
}

size_t
vmath_argmax(const float *x, size_t n)
{
	if (n <= 1)
		return 0;
	float m = vmath_max(x, n);
#ifdef VMATH_AVX2
	if (have_avx2())
		return find_avx2(x, n, m);
#endif
	return find_plain(x, n, m);
}

double
vmath_exp_sum_scaled(float *y, const float *x, float shift, float scale,
    size_t n)
{
#ifdef VMATH_AVX2
	if (have_avx2())
		return exp_sum_avx2(y, x, shift, scale, n);
#endif
	return exp_sum_plain(y, x, shift, scale, n);
}

double
vmath_exp_sum(float *y, const float *x, float shift, size_t n)
{
	/* Times 1 is exact: the same values as no scale at all. */
	return vmath_exp_sum_scaled(y, x, shift, 1, n);
}

void
vmath_silu_mul(float *h, const float *g, const float *u, size_t n)
{
#ifdef VMATH_AVX2
	if (have_avx2()) {
		silu_mul_avx2(h, g, u, n);
		return;
	}
#endif
	silu_mul_plain(h, g, u, n);
}

void
vmath_softcap(float *y, const float *x, float cap, size_t n)
{
#ifdef VMATH_TANH
	if (have_avx2()) {
		softcap_avx2(y, x, cap, n);
		return;
	}
#endif
	softcap_plain(y, x, cap, n);
}

void
vmath_gelu_mul(float *h, const float *g, const float *u, size_t n)
{
#ifdef VMATH_TANH
	if (have_avx2()) {
		gelu_mul_avx2(h, g, u, n);
		return;
	}
#endif
	gelu_mul_plain(h, g, u, n);
}
