/*
 * rng.h: seeded random numbers.  xoshiro256** seeded through splitmix64;
 * streams derived from (seed, key...) so that a sample's randomness depends
 * only on what identifies it, not on batch order or thread count.
 */
#ifndef PREFPIPE_RNG_H
#define PREFPIPE_RNG_H

#include <stddef.h>
#include <stdint.h>

struct rng {
	uint64_t s[4];
};

/* A generator from one 64-bit seed. */
void rng_seed(struct rng *g, uint64_t seed);
/* A generator for the stream named by seed and a list of keys. */
void rng_stream(struct rng *g, uint64_t seed, const uint64_t *keys, size_t n);
uint64_t rng_next(struct rng *g);
/* Uniform in [0, 1) with 53 random bits. */
double rng_uniform(struct rng *g);
/* Uniform integer in [0, n), without modulo bias. */
uint64_t rng_below(struct rng *g, uint64_t n);
/* Standard normal (Box-Muller; uses two uniforms per call). */
double rng_normal(struct rng *g);

/* One round of splitmix64: a good 64-bit mixing function on its own. */
uint64_t splitmix64(uint64_t *state);

#endif
