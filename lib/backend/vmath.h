/*
 * vmath.h: vector loops over float arrays that decoding runs once a
 * token: the exponentials of a softmax (over the keys of an attention
 * head, over the vocabulary) and its sum, the largest element, and the
 * SwiGLU gate, and Gemma's tanh: its softcaps and gelu.
 *
 * On a CPU with AVX2 the exponentials and tanh come from glibc's vector
 * math library (libmvec), eight at a time; elsewhere from expf and tanhf.  Either way
 * every element is computed on its own, whatever n and its place in the
 * array, and sums are taken in one fixed order, so a result depends on
 * the machine but never on how a batch was cut.
 */
#ifndef PREFPIPE_VMATH_H
#define PREFPIPE_VMATH_H

#include <stddef.h>

/* The largest of x[0..n), n >= 1; NaNs are skipped unless x[0] is one. */
float vmath_max(const float *x, size_t n);

/* The index of the first element equal to the largest: the lowest id
 * among equals, as a greedy decoder must choose.  0 for n <= 1. */
size_t vmath_argmax(const float *x, size_t n);

/*
 * y[i] = exp(x[i] - shift) for i < n (y may be x, or NULL to keep only
 * the sum), and their sum in double: eight running sums over i mod 8,
 * added in a fixed tree.
 */
double vmath_exp_sum(float *y, const float *x, float shift, size_t n);

/* The same with y[i] = exp((x[i] - shift) * scale): a softmax at
 * temperature 1 / scale. */
double vmath_exp_sum_scaled(float *y, const float *x, float shift,
    float scale, size_t n);

/* SwiGLU's gate: h[i] = g[i] / (1 + exp(-g[i])) * u[i] (h may be g). */
void vmath_silu_mul(float *h, const float *g, const float *u, size_t n);

/* The softcap: y[i] = cap * tanh(x[i] / cap) (y may be x). */
void vmath_softcap(float *y, const float *x, float cap, size_t n);

/* GeGLU's gate, gelu_pytorch_tanh: h[i] = g/2 (1 + tanh(k (g + a g^3))) u,
 * k = sqrt(2/pi), a = 0.044715, g = g[i], u = u[i] (h may be g). */
void vmath_gelu_mul(float *h, const float *g, const float *u, size_t n);

/* The constants of gelu_pytorch_tanh. */
#define VMATH_GELU_K 0.7978845608028654	/* sqrt(2/pi) */
#define VMATH_GELU_A 0.044715

#endif
