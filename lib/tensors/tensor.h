/*
 * tensor.h: element types and tensor views, apart from any file format.
 *
 * A tensor here is a view: a name, a shape, and bytes in one of the
 * element types checkpoints store (F32, BF16, F16), plus their fp32 values
 * once someone asked for them.  The checkpoint code (lib/checkpoints/)
 * hands tensors out; the safetensors code parses them out of a file; both
 * use this module and neither calls the other's element code.
 *
 * The conversions round to nearest, ties to even, as torch's .to() does;
 * a NaN stays a NaN, and a finite value too large for the narrow type
 * becomes an infinity (which tensor_nonfinite then finds).
 */
#ifndef PREFPIPE_TENSOR_H
#define PREFPIPE_TENSOR_H

#include <stddef.h>
#include <stdint.h>

/* On-disk element types of a tensor. */
enum dtype { DT_F32, DT_BF16, DT_F16 };

/* "F32", "BF16", "F16": the safetensors spelling. */
const char *dtype_name(enum dtype dt);
/* "float32", "bfloat16", "float16": config.json's torch_dtype. */
const char *dtype_torch_name(enum dtype dt);
/* Parse "f32"/"bf16"/"f16" (any case; also "F32" etc.); -1 when unknown. */
int dtype_parse(const char *s);
/* Bytes per element. */
size_t dtype_size(enum dtype dt);

/* Element conversions: n elements, src may be unaligned. */
void dtype_to_f32(enum dtype dt, const void *src, float *dst, size_t n);
void dtype_from_f32(enum dtype dt, const float *src, void *dst, size_t n);
uint16_t f32_to_bf16(float x);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_f16(float x);
float f16_to_f32(uint16_t h);

/*
 * The index of the first element of p[0..n) (in dt) that is an infinity
 * or a NaN, or -1 when all are finite.
 */
long long dtype_nonfinite(enum dtype dt, const void *p, size_t n);

#define TENSOR_MAXDIM 4

/* A tensor of a loaded checkpoint or file. */
struct tensor {
	char *name;
	int ndim;
	int64_t shape[TENSOR_MAXDIM];
	size_t n;		/* elements: the product of shape */
	enum dtype dtype;	/* as stored on disk */
	const char *file;	/* the safetensors file it came from */
	/*
	 * fp32 values: NULL until someone fills it (ckpt_data).  Writable
	 * (copy-on-write over the mapping: changes never reach the file).
	 */
	float *data;
	const void *raw;	/* the stored bytes, dtype as on disk */
	/* private */
	int owned;		/* data was malloc'd (not a view of raw) */
};

/* Bytes of the stored data. */
static inline size_t tensor_bytes(const struct tensor *t)
{ return t->n * dtype_size(t->dtype); }

/* Same number of dimensions and sizes. */
int tensor_same_shape(int ndim, const int64_t *a, int mdim, const int64_t *b);

/* "[2, 3]" into buf; returns buf. */
char *tensor_shape_str(char *buf, size_t sz, int ndim, const int64_t *shape);

#endif
