/* strmap.c: open addressing with linear probing; see strmap.h. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "util/strmap.h"
#include "util/util.h"

struct slot {
	char *key;	/* NULL: empty */
	size_t len;
	uint64_t hash;
	long value;
};

struct strmap {
	struct slot *slots;
	size_t cap, n;	/* cap is a power of two */
};

uint64_t
hash_bytes(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

struct strmap *
strmap_new(void)
{
	struct strmap *m = xcalloc(1, sizeof(*m));
	m->cap = 16;
	m->slots = xcalloc(m->cap, sizeof(*m->slots));
	return m;
}

void
strmap_clear(struct strmap *m)
{
	for (size_t i = 0; i < m->cap; i++) {
		free(m->slots[i].key);
		m->slots[i].key = NULL;
	}
	m->n = 0;
}

void
strmap_free(struct strmap *m)
{
	if (m == NULL)
		return;
	strmap_clear(m);
	free(m->slots);
	free(m);
}

static struct slot *
lookup(const struct strmap *m, const void *key, size_t len, uint64_t h)
{
	size_t i = (size_t)h & (m->cap - 1);
	for (;; i = (i + 1) & (m->cap - 1)) {
		struct slot *s = &m->slots[i];
		if (s->key == NULL || (s->hash == h && s->len == len &&
		    memcmp(s->key, key, len) == 0))
			return s;
	}
}

long
strmap_get(const struct strmap *m, const void *key, size_t len)
{
	struct slot *s = lookup(m, key, len, hash_bytes(key, len));
	return s->key == NULL ? -1 : s->value;
}

static void
grow(struct strmap *m)
{
	struct slot *old = m->slots;
	size_t oldcap = m->cap;
	m->cap *= 2;
	m->slots = xcalloc(m->cap, sizeof(*m->slots));
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].key != NULL)
			*lookup(m, old[i].key, old[i].len, old[i].hash) = old[i];
	free(old);
}

void
strmap_put(struct strmap *m, const void *key, size_t len, long value)
{
	if (2 * (m->n + 1) > m->cap)
		grow(m);
	uint64_t h = hash_bytes(key, len);
	struct slot *s = lookup(m, key, len, h);
	if (s->key == NULL) {
		s->key = xmalloc(len + 1);
		memcpy(s->key, key, len);
		s->len = len;
		s->hash = h;
		m->n++;
	}
	s->value = value;
}

size_t
strmap_size(const struct strmap *m)
{
	return m->n;
}
