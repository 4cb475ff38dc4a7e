/*
 * strmap.h: a hash map from byte strings to small integers, for grouping
 * records by a key (the msgpack bytes of a field's value, say).  Keys are
 * copied; values are the caller's indices.
 */
#ifndef PREFPIPE_STRMAP_H
#define PREFPIPE_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct strmap;

struct strmap *strmap_new(void);
void strmap_free(struct strmap *m);
/* The value stored under key, or -1. */
long strmap_get(const struct strmap *m, const void *key, size_t len);
/* Store value under key (replacing any). */
void strmap_put(struct strmap *m, const void *key, size_t len, long value);
size_t strmap_size(const struct strmap *m);
/* Remove every key, keeping the table's memory. */
void strmap_clear(struct strmap *m);

/* 64-bit FNV-1a, also usable on its own (e.g. to shard by id). */
uint64_t hash_bytes(const void *p, size_t n);

#endif
