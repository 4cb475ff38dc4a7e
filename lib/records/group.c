/*
 * group.c: see group.h.
 *
 * Records are deep-copied into one arena (a msgpack zone) rather than kept
 * in the zones the reader gave them: a zone per record costs a page or
 * more, and an unsorted run keeps every record until the end.  Members
 * live in one array, each group a chain through it, so adding a record
 * allocates nothing but arena space once the arrays have grown.  Records
 * of a stream mostly have the same keys in the same order: a key equal to
 * the previous record's is shared, not copied.
 *
 * (Keeping records as their msgpack bytes instead, unpacked when their
 * group is handed over, halves the memory of an unsorted run but costs a
 * third more instructions per record.)
 */
#include "config.h"

#include <err.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "records/group.h"
#include "util/strmap.h"
#include "util/util.h"

enum { ARENA_CHUNK = 1 << 16, NONE = (size_t)-1 };

struct gstate {
	size_t keyoff, keylen;	/* in gr->keys */
	uint64_t hash;
	size_t first, last;	/* members, chained by next */
	size_t n;
};

struct grouper {
	const char *by, *group_by;
	int sorted;
	group_fn *fn;
	void *arg;
	msgpack_zone *arena;
	struct member *mem;
	size_t nmem, capmem;
	struct gstate *gs;
	size_t ngs, capgs;
	struct strbuf keys;	/* every group's key bytes, end to end */
	struct strmap *index;	/* key bytes -> group (unsorted) */
	msgpack_sbuffer kb;	/* the current record's key bytes */
	msgpack_packer kp;
	uint64_t ord;
	/* The keys of the record added last, in the arena. */
	msgpack_object *lastkeys;
	uint32_t nlastkeys, caplastkeys;
	/* Scratch for handing a group over. */
	struct member **all, **ranked;
	size_t capscratch;
};

struct grouper *
grouper_new(const char *by, const char *group_by, int sorted, group_fn *fn,
    void *arg)
{
	struct grouper *gr = xcalloc(1, sizeof(*gr));
	gr->by = by;
	gr->group_by = group_by;
	gr->sorted = sorted;
	gr->fn = fn;
	gr->arg = arg;
	if ((gr->arena = msgpack_zone_new(ARENA_CHUNK)) == NULL)
		errx(EXIT_DATA, "out of memory");
	sb_init(&gr->keys);
	if (!sorted)
		gr->index = strmap_new();
	msgpack_sbuffer_init(&gr->kb);
	msgpack_packer_init(&gr->kp, &gr->kb, msgpack_sbuffer_write);
	return gr;
}

/* Best first; equal values in input order. */
static int
rank_cmp(const struct member *a, const struct member *b)
{
	if (a->val != b->val)
		return a->val > b->val ? -1 : 1;
	return a->ord < b->ord ? -1 : a->ord > b->ord;
}

static int
rank_qsort(const void *a, const void *b)
{
	return rank_cmp(*(struct member *const *)a, *(struct member *const *)b);
}

static void
rank(struct member **m, size_t n)
{
	/* Groups are mostly a handful of samples: insertion sort wins. */
	if (n > 24) {
		qsort(m, n, sizeof(*m), rank_qsort);
		return;
	}
	for (size_t i = 1; i < n; i++) {
		struct member *x = m[i];
		size_t j = i;
		for (; j > 0 && rank_cmp(x, m[j - 1]) < 0; j--)
			m[j] = m[j - 1];
		m[j] = x;
	}
}

static void
hand_over(struct grouper *gr, const struct gstate *s)
{
	if (s->n > gr->capscratch) {
		gr->capscratch = s->n * 2;
		gr->all = xreallocarray(gr->all, gr->capscratch,
		    sizeof(*gr->all));
		gr->ranked = xreallocarray(gr->ranked, gr->capscratch,
		    sizeof(*gr->ranked));
	}
	struct group g = {
		.key = gr->keys.data + s->keyoff, .keylen = s->keylen,
		.hash = s->hash, .m = gr->all, .ranked = gr->ranked,
	};
	for (size_t i = s->first; i != NONE; i = gr->mem[i].next) {
		struct member *m = &gr->mem[i];
		g.m[g.n++] = m;
		if (!m->greedy)
			g.ranked[g.nranked++] = m;
	}
	rank(g.ranked, g.nranked);
	gr->fn(&g, gr->arg);
}

/* Sorted: hand over the current group and forget it. */
static void
flush_sorted(struct grouper *gr)
{
	if (gr->ngs == 0)
		return;
	hand_over(gr, &gr->gs[0]);
	gr->ngs = 0;
	gr->nmem = 0;
	sb_clear(&gr->keys);
	msgpack_zone_clear(gr->arena);
	gr->nlastkeys = 0;	/* they were in the arena */
}

static double
by_value(const struct rec *r, const char *by)
{
	const msgpack_object *v = rec_get_path(r, by);
	double x;
	if (v == NULL)
		rec_die(r, by, "missing (the field to rank by; see --by)");
	switch (v->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return (double)v->via.u64;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return (double)v->via.i64;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		x = v->via.f64;
		if (isnan(x))
			rec_die(r, by, "is NaN, which cannot be ranked");
		return x;
	case MSGPACK_OBJECT_BOOLEAN:
		/* A verifier's pass/fail ranks as 1/0. */
		return v->via.boolean;
	default:
		rec_die(r, by, "expected number, got %s", rec_type_name(v));
	}
}

void
grouper_add(struct grouper *gr, const struct rec *r)
{
	const msgpack_object *k = rec_get_path(r, gr->group_by);
	if (k == NULL)
		rec_die(r, gr->group_by, "missing (the group key; see "
		    "--group-by)");
	msgpack_sbuffer_clear(&gr->kb);
	msgpack_pack_object(&gr->kp, *k);

	/*
	 * Sorted, a record with another key completes the current group:
	 * it is handed over before the record is checked further, so a bad
	 * record does not take the group before it down too.
	 */
	if (gr->sorted && gr->ngs > 0 && (gr->kb.size != gr->gs[0].keylen ||
	    memcmp(gr->kb.data, gr->keys.data, gr->kb.size) != 0))
		flush_sorted(gr);

	int greedy = rec_opt_bool(r, "greedy", 0);
	double val = greedy || gr->by == NULL ? 0 : by_value(r, gr->by);

	/* Find the record's group, or start one. */
	size_t g;
	if (gr->sorted)
		g = gr->ngs ? 0 : NONE;
	else {
		long v = strmap_get(gr->index, gr->kb.data, gr->kb.size);
		g = v < 0 ? NONE : (size_t)v;
	}
	if (g == NONE) {
		if (gr->ngs == gr->capgs) {
			gr->capgs = gr->capgs ? 2 * gr->capgs : 64;
			gr->gs = xreallocarray(gr->gs, gr->capgs,
			    sizeof(*gr->gs));
		}
		g = gr->ngs++;
		struct gstate *s = &gr->gs[g];
		s->keyoff = gr->keys.len;
		s->keylen = gr->kb.size;
		s->hash = hash_bytes(gr->kb.data, gr->kb.size);
		s->first = s->last = NONE;
		s->n = 0;
		sb_add(&gr->keys, gr->kb.data, gr->kb.size);
		if (!gr->sorted)
			strmap_put(gr->index, gr->kb.data, gr->kb.size,
			    (long)g);
	}

	if (gr->nmem == gr->capmem) {
		gr->capmem = gr->capmem ? 2 * gr->capmem : 256;
		gr->mem = xreallocarray(gr->mem, gr->capmem, sizeof(*gr->mem));
	}
	size_t i = gr->nmem++;
	struct member *m = &gr->mem[i];
	m->rec.kv = rec_zalloc(gr->arena, r->n * sizeof(*m->rec.kv));
	if (r->n > gr->caplastkeys) {
		gr->caplastkeys = r->n;
		gr->lastkeys = xreallocarray(gr->lastkeys, r->n,
		    sizeof(*gr->lastkeys));
	}
	for (uint32_t f = 0; f < r->n; f++) {
		const msgpack_object *key = &r->kv[f].key;
		msgpack_object *last = &gr->lastkeys[f];
		if (f < gr->nlastkeys && key->via.str.size ==
		    last->via.str.size && memcmp(key->via.str.ptr,
		    last->via.str.ptr, key->via.str.size) == 0)
			m->rec.kv[f].key = *last;
		else {
			rec_obj_copy(gr->arena, &m->rec.kv[f].key, key);
			*last = m->rec.kv[f].key;
		}
		rec_obj_copy(gr->arena, &m->rec.kv[f].val, &r->kv[f].val);
	}
	if (r->n > gr->nlastkeys)
		gr->nlastkeys = r->n;
	m->rec.n = r->n;
	m->rec.cap = 0;		/* kv is not the record's to grow */
	m->rec.zone = gr->arena;
	m->rec.src = r->src;
	m->rec.recno = r->recno;
	rec_touch(&m->rec);	/* its bytes are not r's */
	m->val = val;
	m->ord = gr->ord++;
	m->greedy = greedy;
	m->mark = 0;
	m->next = NONE;

	struct gstate *s = &gr->gs[g];
	if (s->last == NONE)
		s->first = i;
	else
		gr->mem[s->last].next = i;
	s->last = i;
	s->n++;
}

void
grouper_end(struct grouper *gr)
{
	if (gr->sorted)
		flush_sorted(gr);
	else
		for (size_t g = 0; g < gr->ngs; g++)
			hand_over(gr, &gr->gs[g]);
	msgpack_zone_free(gr->arena);
	free(gr->mem);
	free(gr->gs);
	free(gr->all);
	free(gr->ranked);
	free(gr->lastkeys);
	sb_free(&gr->keys);
	if (gr->index)
		strmap_free(gr->index);
	msgpack_sbuffer_destroy(&gr->kb);
	free(gr);
}

int
group_uniform(const struct group *g)
{
	for (size_t i = 1; i < g->nranked; i++)
		if (g->ranked[i]->val != g->ranked[0]->val)
			return 0;
	return 1;
}
