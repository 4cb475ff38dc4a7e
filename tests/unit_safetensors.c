/*
 * unit_safetensors: the element conversions (round to nearest even), the
 * header writer, and every way a safetensors file can be corrupt.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/safetensors.h"
#include "util/util.h"

static int failures;

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: FAIL: %s\n", __FILE__, __LINE__, #cond); \
	failures++; } } while (0)

static float
bits(uint32_t u)
{
	float x;
	memcpy(&x, &u, 4);
	return x;
}

static void
test_bf16(void)
{
	/* Exact values survive. */
	CHECK(f32_to_bf16(1.0f) == 0x3f80);
	CHECK(bf16_to_f32(0x3f80) == 1.0f);
	CHECK(f32_to_bf16(-2.0f) == 0xc000);
	/* Below half an ulp rounds down, above rounds up. */
	CHECK(f32_to_bf16(bits(0x3f807fff)) == 0x3f80);
	CHECK(f32_to_bf16(bits(0x3f808001)) == 0x3f81);
	/* Exactly half: to the even neighbour. */
	CHECK(f32_to_bf16(bits(0x3f808000)) == 0x3f80);
	CHECK(f32_to_bf16(bits(0x3f818000)) == 0x3f82);
	/* Overflow rounds to infinity; NaN stays NaN. */
	CHECK(f32_to_bf16(bits(0x7f7fffff)) == 0x7f80);
	CHECK(isnan(bf16_to_f32(f32_to_bf16(NAN))));
	CHECK(isinf(bf16_to_f32(f32_to_bf16(INFINITY))));
}

static void
test_f16(void)
{
	CHECK(f32_to_f16(1.0f) == 0x3c00);
	CHECK(f16_to_f32(0x3c00) == 1.0f);
	CHECK(f32_to_f16(65504.0f) == 0x7bff);
	CHECK(f32_to_f16(1e6f) == 0x7c00);
	/* 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even. */
	CHECK(f32_to_f16(1.0f + 0x1p-11f) == 0x3c00);
	CHECK(f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02);
	/* Subnormals. */
	CHECK(f32_to_f16(0x1p-24f) == 0x0001);
	CHECK(f16_to_f32(0x0001) == 0x1p-24f);
}

/* A file image: header text h, then nd data bytes. */
static unsigned char *
image(const char *h, size_t nd, size_t *len)
{
	size_t hl = strlen(h);
	unsigned char *p = xcalloc(1, 8 + hl + nd);
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)((uint64_t)hl >> (8 * i));
	memcpy(p + 8, h, hl);
	*len = 8 + hl + nd;
	return p;
}

/* Parsing header h over nd data bytes fails with a message holding want. */
static void
bad(const char *h, size_t nd, const char *want)
{
	size_t len;
	unsigned char *p = image(h, nd, &len);
	struct st_file f;
	char err[512] = "";
	int rc = st_parse(&f, "x.safetensors", p, len, err, sizeof err);
	if (rc == 0 || strstr(err, want) == NULL) {
		fprintf(stderr, "FAIL: header %s: got \"%s\", want \"%s\"\n",
		    h, err, want);
		failures++;
	}
	st_free(&f);
	free(p);
}

static void
test_corrupt(void)
{
	struct st_file f;
	char err[512];
	unsigned char small[4] = { 0 };

	CHECK(st_parse(&f, "x", small, 4, err, sizeof err) == -1 &&
	    strstr(err, "truncated"));
	st_free(&f);
	unsigned char big[16] = { 0xff, 0xff };
	CHECK(st_parse(&f, "x", big, 16, err, sizeof err) == -1 &&
	    strstr(err, "exceeds"));
	st_free(&f);

	bad("{\"a\": ", 0, "not JSON");
	bad("[1, 2]", 0, "not a JSON object");
	bad("{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}",
	    8, "tensor \"a\": unsupported dtype I64");
	bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}",
	    8, "tensor \"a\": data_offsets [0, 16] out of range");
	bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
	    8, "tensor \"a\": 8 bytes, but shape [3] of F32 needs 12");
	bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
	    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
	    12, "tensor \"b\": its data overlaps tensor \"a\"");
	/* The offsets tile the data: no gap, nothing after the last. */
	bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
	    "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
	    12, "tensor \"b\": data_offsets begin at 8, but the data before "
	    "it ends at 4 (a gap");
	bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
	    8, "data_offsets begin at 4, but the data before it ends at 0");
	bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
	    5, "trailing data: the tensors end at byte 4 of the data "
	    "section's 5");
	bad(" {}", 0, "header does not begin with '{'");
	bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}",
	    0, "tensor \"a\": shape is not");
	bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4,
	    "tensor \"a\": header entry lacks");
	bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}",
	    4, "out of range");
}

/* A header written by st_header parses back, data 8-byte aligned. */
static void
test_roundtrip(void)
{
	struct st_entry e[2] = {
		{ .name = "w", .dtype = DT_F32, .ndim = 2, .shape = { 2, 3 },
		  .begin = 0, .end = 24 },
		{ .name = "b", .dtype = DT_BF16, .ndim = 1, .shape = { 3 },
		  .begin = 24, .end = 30 },
	};
	size_t hl;
	unsigned char *h = st_header(e, 2, 0, &hl);
	CHECK(hl % 8 == 0);
	CHECK(memcmp(h + 8, "{\"__metadata__\":{\"format\":\"pt\"}", 31) == 0);
	size_t hl2;
	unsigned char *h2 = st_header(e, 2, hl + 64, &hl2);
	CHECK(hl2 == hl + 64 && h2[hl2 - 1] == ' ' && h2[0] == hl2 - 8);
	free(h2);

	unsigned char *p = xcalloc(1, hl + 30);
	memcpy(p, h, hl);
	float w[6] = { 1, 2, 3, 4, 5, 6 };
	float b[3] = { 1.5f, -2, 1.0f + 0x1p-8f };
	dtype_from_f32(DT_F32, w, p + hl, 6);
	dtype_from_f32(DT_BF16, b, p + hl + 24, 3);

	struct st_file f;
	char err[512];
	CHECK(st_parse(&f, "rt", p, hl + 30, err, sizeof err) == 0);
	CHECK(f.nt == 2);
	CHECK(strcmp(f.t[0].name, "w") == 0 && f.t[0].n == 6 &&
	    f.t[0].shape[1] == 3);
	CHECK(strcmp(f.t[1].name, "b") == 0 && f.t[1].dtype == DT_BF16);
	float back[6];
	dtype_to_f32(DT_F32, f.t[0].raw, back, 6);
	CHECK(memcmp(back, w, sizeof w) == 0);
	dtype_to_f32(DT_BF16, f.t[1].raw, back, 3);
	CHECK(back[0] == 1.5f && back[1] == -2 && back[2] == 1.0f);
	CHECK(f.meta && json_is_object(f.meta));
	st_free(&f);
	free(p);
	free(h);
}

int
main(void)
{
	test_bf16();
	test_f16();
	test_corrupt();
	test_roundtrip();
	if (failures)
		fprintf(stderr, "%d failure(s)\n", failures);
	return failures != 0;
}
