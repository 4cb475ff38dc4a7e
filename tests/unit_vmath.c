/*
 * unit_vmath: lib/vmath's loops against plain scalar code, on every
 * length from 0 to 70 (whole blocks of eight and the ragged ends), with
 * ties, NaNs and infinities.  It runs twice: on the CPU's own path, then
 * re-executed with PREFPIPE_NO_AVX2 set, on the plain one.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "backend/vmath.h"

#define NMAX 70

/* Relative difference, 0 for equal values (infinities included). */
static double
rel(double a, double b)
{
	if (a == b)
		return 0;
	return fabs(a - b) / fmax(fabs(a), fabs(b));
}

static void
check_max(void)
{
	float x[NMAX];

	for (int n = 1; n <= NMAX; n++) {
		for (int i = 0; i < n; i++)
			x[i] = (float)((i * 37) % 11) - 5;
		float m = x[0];
		size_t at = 0;
		for (int i = 1; i < n; i++)
			if (x[i] > m) {
				m = x[i];
				at = (size_t)i;
			}
		CHECK(vmath_max(x, n) == m);
		CHECK(vmath_argmax(x, n) == at);	/* the first of ties */

		/* A NaN anywhere but first is skipped; -inf is a value. */
		if (n > 1) {
			float keep = x[n - 1];
			x[n - 1] = NAN;
			CHECK(vmath_max(x, n) == vmath_max(x, n - 1));
			x[n - 1] = INFINITY;
			CHECK(vmath_argmax(x, n) == (size_t)n - 1);
			x[n - 1] = keep;
		}
	}
	float all[3] = { -INFINITY, -INFINITY, -INFINITY };
	CHECK(vmath_max(all, 3) == -INFINITY);
	CHECK(vmath_argmax(all, 3) == 0);
	CHECK(vmath_argmax(all, 0) == 0);
}

static void
check_exp_sum(void)
{
	float x[NMAX], y[NMAX], y2[NMAX];

	for (int i = 0; i < NMAX; i++)
		x[i] = (float)(sin(i * 1.7) * 20);
	x[5] = -INFINITY;			/* a masked entry: exp is 0 */
	for (int n = 0; n <= NMAX; n++) {
		double d[8] = { 0 }, s;
		s = vmath_exp_sum(y, x, 3.5f, n);
		for (int i = 0; i < n; i++) {
			CHECK(rel(y[i], expf(x[i] - 3.5f)) < 1e-6);
			d[i % 8] += y[i];
		}
		/* The sum is the fixed tree over the eight lanes. */
		CHECK(s == ((d[0] + d[1]) + (d[2] + d[3])) +
		    ((d[4] + d[5]) + (d[6] + d[7])));
		/* Without y, the same sum; in place, the same values. */
		CHECK(vmath_exp_sum(NULL, x, 3.5f, n) == s);
		memcpy(y2, x, sizeof x);
		vmath_exp_sum(y2, y2, 3.5f, n);
		CHECK(n == 0 || memcmp(y, y2, n * sizeof(float)) == 0);
		/* Each element alone: the same whatever n. */
		vmath_exp_sum(y2, x, 3.5f, NMAX);
		CHECK(n == 0 || memcmp(y, y2, n * sizeof(float)) == 0);
	}
	CHECK(y2[5] == 0);
}

static void
check_silu(void)
{
	float g[NMAX], u[NMAX], h[NMAX], h2[NMAX];

	for (int i = 0; i < NMAX; i++) {
		g[i] = (float)(cos(i * 0.9) * 12);
		u[i] = (float)(i % 7) - 3;
	}
	for (int n = 0; n <= NMAX; n++) {
		vmath_silu_mul(h, g, u, n);
		for (int i = 0; i < n; i++) {
			double want = g[i] / (1 + exp(-(double)g[i])) * u[i];
			CHECK(fabs(h[i] - want) <= 1e-6 * (1 + fabs(want)));
		}
		vmath_silu_mul(h2, g, u, NMAX);
		CHECK(n == 0 || memcmp(h, h2, n * sizeof(float)) == 0);
	}
	memcpy(h2, g, sizeof g);
	vmath_silu_mul(h2, h2, u, NMAX);	/* in place */
	CHECK(memcmp(h, h2, sizeof h) == 0);
}

int
main(int argc, char **argv)
{
	(void)argc;
	check_max();
	check_exp_sum();
	check_silu();
	if (failures == 0 && getenv("PREFPIPE_NO_AVX2") == NULL) {
		setenv("PREFPIPE_NO_AVX2", "1", 1);
		execv("/proc/self/exe", argv);
	}
	return check_status();
}
