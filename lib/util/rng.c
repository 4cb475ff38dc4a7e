/* rng.c: see rng.h. */
#include "config.h"

#include <math.h>

#include "util/rng.h"

uint64_t
splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void
rng_seed(struct rng *g, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		g->s[i] = splitmix64(&seed);
}

void
rng_stream(struct rng *g, uint64_t seed, const uint64_t *keys, size_t n)
{
	/* Fold each key through the mixer so nearby keys give far streams. */
	uint64_t h = seed;
	for (size_t i = 0; i < n; i++) {
		uint64_t st = h ^ keys[i];
		h = splitmix64(&st) + 0x632be59bd9b4e019ull * (i + 1);
	}
	rng_seed(g, h);
}

static inline uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t
rng_next(struct rng *g)
{
	uint64_t *s = g->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double
rng_uniform(struct rng *g)
{
	return (double)(rng_next(g) >> 11) * 0x1.0p-53;
}

uint64_t
rng_below(struct rng *g, uint64_t n)
{
	if (n == 0)
		return 0;
	/* Reject the top partial copy of [0, n) so every value is equal. */
	uint64_t limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t x;
	do
		x = rng_next(g);
	while (x >= limit);
	return x % n;
}

double
rng_normal(struct rng *g)
{
	double u1 = rng_uniform(g), u2 = rng_uniform(g);
	if (u1 < 1e-300)
		u1 = 1e-300;
	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}
