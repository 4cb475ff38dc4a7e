/* tensor.c: see tensor.h. */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tensors/tensor.h"

static const struct {
	const char *name;
	const char *torch;
	size_t size;
} dtypes[] = {
	[DT_F32] = { "F32", "float32", 4 },
	[DT_BF16] = { "BF16", "bfloat16", 2 },
	[DT_F16] = { "F16", "float16", 2 },
};

const char *
dtype_name(enum dtype dt)
{
	return dtypes[dt].name;
}

const char *
dtype_torch_name(enum dtype dt)
{
	return dtypes[dt].torch;
}

size_t
dtype_size(enum dtype dt)
{
	return dtypes[dt].size;
}

int
dtype_parse(const char *s)
{
	for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
		if (strcasecmp(s, dtypes[i].name) == 0)
			return (int)i;
	return -1;
}

float
bf16_to_f32(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float x;
	memcpy(&x, &u, 4);
	return x;
}

/*
 * bf16 is the top half of an fp32: round the dropped half to nearest, ties
 * to even, by adding just under one half-ulp plus the kept lowest bit.  A
 * NaN keeps its sign and stays a NaN (quiet bit set) instead of rounding
 * into infinity.
 */
uint16_t
f32_to_bf16(float x)
{
	uint32_t u;
	memcpy(&u, &x, 4);
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((u >> 16) | 0x40);
	u += 0x7fffu + ((u >> 16) & 1);
	return (uint16_t)(u >> 16);
}

/*
 * The compiler's _Float16 converts with IEEE rounding (nearest, even).
 * clang before 15 has no _Float16 on x86-64, only the storage type __fp16,
 * which rounds the same but leaves a signalling NaN unquieted: good enough
 * for the fuzz targets (tests/fuzz/), the build that uses that clang.
 */
#if defined(__clang__) && !defined(__FLT16_MANT_DIG__)
typedef __fp16 half;
#else
typedef _Float16 half;
#endif

float
f16_to_f32(uint16_t h)
{
	half f;
	memcpy(&f, &h, 2);
	return (float)f;
}

uint16_t
f32_to_f16(float x)
{
	half f = (half)x;
	uint16_t h;
	memcpy(&h, &f, 2);
	return h;
}

void
dtype_to_f32(enum dtype dt, const void *src, float *dst, size_t n)
{
	const uint16_t *h = src;

	switch (dt) {
	case DT_F32:
		memcpy(dst, src, n * 4);
		break;
	case DT_BF16:
		for (size_t i = 0; i < n; i++) {
			uint16_t v;
			memcpy(&v, h + i, 2);	/* src may be unaligned */
			dst[i] = bf16_to_f32(v);
		}
		break;
	case DT_F16:
		for (size_t i = 0; i < n; i++) {
			uint16_t v;
			memcpy(&v, h + i, 2);
			dst[i] = f16_to_f32(v);
		}
		break;
	}
}

void
dtype_from_f32(enum dtype dt, const float *src, void *dst, size_t n)
{
	uint16_t *h = dst;

	switch (dt) {
	case DT_F32:
		memcpy(dst, src, n * 4);
		break;
	case DT_BF16:
		for (size_t i = 0; i < n; i++)
			h[i] = f32_to_bf16(src[i]);
		break;
	case DT_F16:
		for (size_t i = 0; i < n; i++)
			h[i] = f32_to_f16(src[i]);
		break;
	}
}

/*
 * By the exponent bits: all ones is an infinity or a NaN in each of the
 * three types.  No float arithmetic, so -ffast-math could not fold it.
 */
long long
dtype_nonfinite(enum dtype dt, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		if (dt == DT_F32) {
			uint32_t u;
			memcpy(&u, b + 4 * i, 4);
			if ((u & 0x7f800000u) == 0x7f800000u)
				return (long long)i;
		} else {
			uint16_t h;
			uint16_t e = dt == DT_BF16 ? 0x7f80 : 0x7c00;
			memcpy(&h, b + 2 * i, 2);
			if ((h & e) == e)
				return (long long)i;
		}
	}
	return -1;
}

int
tensor_same_shape(int ndim, const int64_t *a, int mdim, const int64_t *b)
{
	if (ndim != mdim)
		return 0;
	for (int d = 0; d < ndim; d++)
		if (a[d] != b[d])
			return 0;
	return 1;
}

char *
tensor_shape_str(char *buf, size_t sz, int ndim, const int64_t *shape)
{
	size_t o = 0;
	o += snprintf(buf + o, sz - o, "[");
	for (int d = 0; d < ndim && o < sz; d++)
		o += snprintf(buf + o, sz - o, "%s%" PRId64, d ? ", " : "",
		    shape[d]);
	if (o < sz)
		snprintf(buf + o, sz - o, "]");
	return buf;
}
