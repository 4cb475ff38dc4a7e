/*
 * tok_bpe.c: the BPE model of tokenizer.json.
 *
 * A pre-token is split into characters, each looked up in the vocabulary
 * (unknown ones become byte-fallback tokens or the unk token), and then
 * the pair with the lowest merge rank is merged, again and again, until no
 * adjacent pair has a merge.  A binary heap of candidate merges keeps that
 * O(n log n) in the length of the word; merges made stale by an earlier
 * merge are recognised when popped and dropped.  Results are cached per
 * pre-token, since natural text repeats its words.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tok_impl.h"

/* ------------------------------------------------------------------------ */
/* String -> id hash table (open addressing, linear probing). */

/*
 * Keys are short (a pre-token is a word), so the hash takes eight bytes
 * at a time: a multiply and a rotate for each, then a final mix.
 */
static uint64_t
tok_hash(const char *s, size_t n)
{
	uint64_t h = 0x9E3779B97F4A7C15ULL ^ n, w;

	for (; n >= 8; s += 8, n -= 8) {
		memcpy(&w, s, 8);
		h = (h ^ w) * 0xBF58476D1CE4E5B9ULL;
		h = h << 31 | h >> 33;
	}
	if (n) {
		w = 0;
		memcpy(&w, s, n);
		h = (h ^ w) * 0x94D049BB133111EBULL;
	}
	h ^= h >> 29;
	h *= 0xBF58476D1CE4E5B9ULL;
	return h ^ (h >> 32);
}

void
tmap_init(struct tmap *m)
{
	memset(m, 0, sizeof(*m));
}

void
tmap_free(struct tmap *m)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		free(m->key[i]);
	free(m->key);
	free(m->klen);
	free(m->val);
	free(m->slot);
	free(m->tag);
	memset(m, 0, sizeof(*m));
}

/*
 * Each slot keeps the high half of its key's hash as a tag, so a probe
 * compares keys only when the tags agree: a big vocabulary's keys live
 * all over the heap, and touching them is what costs.
 */
int32_t
tmap_get(const struct tmap *m, const char *k, size_t n)
{
	size_t mask, i;
	uint64_t h;
	uint32_t e, tag;

	if (m->nslot == 0)
		return -1;
	mask = m->nslot - 1;
	h = tok_hash(k, n);
	tag = h >> 32;
	for (i = h & mask; (e = m->slot[i]) != 0; i = (i + 1) & mask) {
		e--;
		if (m->tag[i] == tag && m->klen[e] == n &&
		    memcmp(m->key[e], k, n) == 0)
			return m->val[e];
	}
	return -1;
}

static void
tmap_grow(struct tmap *m)
{
	size_t i, j, mask;

	uint64_t h;

	free(m->slot);
	free(m->tag);
	m->nslot = m->nslot ? m->nslot * 2 : 64;
	m->slot = xcalloc(m->nslot, sizeof(*m->slot));
	m->tag = xcalloc(m->nslot, sizeof(*m->tag));
	mask = m->nslot - 1;
	for (i = 0; i < m->n; i++) {
		h = tok_hash(m->key[i], m->klen[i]);
		for (j = h & mask; m->slot[j]; j = (j + 1) & mask)
			;
		m->slot[j] = i + 1;
		m->tag[j] = h >> 32;
	}
}

void
tmap_put(struct tmap *m, const char *k, size_t n, int32_t v)
{
	size_t mask, i;
	uint64_t h;
	uint32_t e;

	if ((m->n + 1) * 2 > m->nslot)
		tmap_grow(m);
	mask = m->nslot - 1;
	h = tok_hash(k, n);
	for (i = h & mask; (e = m->slot[i]) != 0; i = (i + 1) & mask) {
		e--;
		if (m->tag[i] == (uint32_t)(h >> 32) && m->klen[e] == n &&
		    memcmp(m->key[e], k, n) == 0) {
			m->val[e] = v;
			return;
		}
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 64;
		m->key = xreallocarray(m->key, m->cap, sizeof(*m->key));
		m->klen = xreallocarray(m->klen, m->cap, sizeof(*m->klen));
		m->val = xreallocarray(m->val, m->cap, sizeof(*m->val));
	}
	m->key[m->n] = memcpy(xmalloc(n + 1), k, n);
	m->key[m->n][n] = 0;
	m->klen[m->n] = n;
	m->val[m->n] = v;
	m->tag[i] = h >> 32;
	m->slot[i] = ++m->n;
}

/* ------------------------------------------------------------------------ */
/* Merge table: (left id, right id) -> (rank, merged id). */

static size_t
merge_slot(const struct bpe *m, uint64_t key)
{
	return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 20) &
	    (m->nmslot - 1);
}

/* The merge of pair (a, b): its rank and new id; 0 when there is none. */
static int
merge_find(const struct bpe *m, int32_t a, int32_t b, uint32_t *rank,
    int32_t *newid)
{
	uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
	size_t i;

	if (m->nmslot == 0)
		return 0;
	for (i = merge_slot(m, key); m->mnew[i] >= 0;
	    i = (i + 1) & (m->nmslot - 1))
		if (m->mkey[i] == key) {
			*rank = m->mrank[i];
			*newid = m->mnew[i];
			return 1;
		}
	return 0;
}

static void
merge_put(struct bpe *m, int32_t a, int32_t b, uint32_t rank, int32_t newid)
{
	uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
	size_t i;

	/* A pair listed twice keeps its later rank, as a map insert does. */
	for (i = merge_slot(m, key); m->mnew[i] >= 0;
	    i = (i + 1) & (m->nmslot - 1))
		if (m->mkey[i] == key)
			break;
	m->mkey[i] = key;
	m->mrank[i] = rank;
	m->mnew[i] = newid;
}

/* ------------------------------------------------------------------------ */
/* Loading */

static char *
opt_string(json_t *model, const char *key, struct tok_err *e)
{
	json_t *v = json_object_get(model, key);

	if (v == NULL || json_is_null(v))
		return NULL;
	if (!json_is_string(v)) {
		char f[64];
		snprintf(f, sizeof(f), "model.%s", key);
		tok_fail(e, f, "expected a string or null");
		return NULL;
	}
	return xstrdup(json_string_value(v));
}

static int
opt_bool(json_t *model, const char *key)
{
	json_t *v = json_object_get(model, key);
	return v != NULL && json_is_true(v);
}

/* Split merges entry i into its two halves. */
static int
merge_parts(json_t *v, size_t i, const char **a, size_t *alen,
    const char **b, size_t *blen, struct tok_err *e)
{
	char f[64];
	const char *s, *sp;

	snprintf(f, sizeof(f), "model.merges[%zu]", i);
	if (json_is_string(v)) {
		/* Old form "a b": the tokens themselves hold no space. */
		s = json_string_value(v);
		if ((sp = strchr(s, ' ')) == NULL || strchr(sp + 1, ' ')) {
			tok_fail(e, f, "expected \"A B\", got \"%s\"", s);
			return -1;
		}
		*a = s;
		*alen = sp - s;
		*b = sp + 1;
		*blen = strlen(sp + 1);
		return 0;
	}
	if (json_is_array(v) && json_array_size(v) == 2 &&
	    json_is_string(json_array_get(v, 0)) &&
	    json_is_string(json_array_get(v, 1))) {
		*a = json_string_value(json_array_get(v, 0));
		*alen = json_string_length(json_array_get(v, 0));
		*b = json_string_value(json_array_get(v, 1));
		*blen = json_string_length(json_array_get(v, 1));
		return 0;
	}
	tok_fail(e, f, "expected \"A B\" or [\"A\", \"B\"]");
	return -1;
}

int
build_bpe(struct bpe *m, json_t *j, struct tok_err *e)
{
	json_t *vocab, *merges, *v;
	const char *key, *a, *b;
	size_t i, alen, blen, plen, n;
	int32_t id, maxid = -1, ida, idb, idn;
	struct strbuf sb;
	char hex[8];

	memset(m, 0, sizeof(*m));
	tmap_init(&m->vocab);
	tmap_init(&m->cache);
	sb_init(&m->tmp);
	m->unk = -1;

	vocab = json_object_get(j, "vocab");
	if (!json_is_object(vocab)) {
		tok_fail(e, "model.vocab", "expected an object of token: id");
		return -1;
	}
	json_object_foreach(vocab, key, v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > INT32_MAX - 1) {
			tok_fail(e, "model.vocab", "token \"%s\": expected a "
			    "non-negative integer id", key);
			return -1;
		}
		id = json_integer_value(v);
		tmap_put(&m->vocab, key, strlen(key), id);
		if (id > maxid)
			maxid = id;
	}
	m->nid = maxid + 1;
	m->id2tok = xcalloc(m->nid ? m->nid : 1, sizeof(char *));
	m->id2len = xcalloc(m->nid ? m->nid : 1, sizeof(uint32_t));
	for (i = 0; i < m->vocab.n; i++) {
		m->id2tok[m->vocab.val[i]] = m->vocab.key[i];
		m->id2len[m->vocab.val[i]] = m->vocab.klen[i];
	}

	m->prefix = opt_string(j, "continuing_subword_prefix", e);
	m->suffix = opt_string(j, "end_of_word_suffix", e);
	if (e->failed)
		return -1;
	m->fuse_unk = opt_bool(j, "fuse_unk");
	m->byte_fallback = opt_bool(j, "byte_fallback");
	m->ignore_merges = opt_bool(j, "ignore_merges");
	if ((v = json_object_get(j, "dropout")) != NULL && json_is_number(v) &&
	    json_number_value(v) > 0) {
		tok_fail(e, "model.dropout", "BPE dropout is not supported");
		return -1;
	}
	if ((v = json_object_get(j, "unk_token")) != NULL && !json_is_null(v)) {
		if (!json_is_string(v)) {
			tok_fail(e, "model.unk_token", "expected a string");
			return -1;
		}
		/* An unk token missing from the vocabulary is an error in HF. */
		m->unk = tmap_get(&m->vocab, json_string_value(v),
		    json_string_length(v));
		if (m->unk < 0) {
			tok_fail(e, "model.unk_token", "\"%s\" is not in "
			    "model.vocab", json_string_value(v));
			return -1;
		}
	}
	for (i = 0; i < 256; i++) {
		snprintf(hex, sizeof(hex), "<0x%02X>", (unsigned)i);
		m->byteid[i] = tmap_get(&m->vocab, hex, 6);
	}

	merges = json_object_get(j, "merges");
	if (merges == NULL || json_is_null(merges))
		merges = NULL;
	else if (!json_is_array(merges)) {
		tok_fail(e, "model.merges", "expected an array");
		return -1;
	}
	n = merges ? json_array_size(merges) : 0;
	for (m->nmslot = 64; m->nmslot < n * 2; m->nmslot *= 2)
		;
	m->mkey = xcalloc(m->nmslot, sizeof(*m->mkey));
	m->mrank = xcalloc(m->nmslot, sizeof(*m->mrank));
	m->mnew = xmalloc(m->nmslot * sizeof(*m->mnew));
	memset(m->mnew, 0xff, m->nmslot * sizeof(*m->mnew));
	plen = m->prefix ? strlen(m->prefix) : 0;
	sb_init(&sb);
	for (i = 0; i < n; i++) {
		if (merge_parts(json_array_get(merges, i), i, &a, &alen, &b,
		    &blen, e) < 0)
			break;
		ida = tmap_get(&m->vocab, a, alen);
		idb = tmap_get(&m->vocab, b, blen);
		sb_clear(&sb);
		sb_add(&sb, a, alen);
		/* With a subword prefix, "a ##b" merges into "ab". */
		if (plen && blen >= plen && memcmp(b, m->prefix, plen) == 0)
			sb_add(&sb, b + plen, blen - plen);
		else
			sb_add(&sb, b, blen);
		idn = tmap_get(&m->vocab, sb.data, sb.len);
		if (ida < 0 || idb < 0 || idn < 0) {
			char f[64];
			snprintf(f, sizeof(f), "model.merges[%zu]", i);
			tok_fail(e, f, "token \"%s\" is not in model.vocab",
			    ida < 0 ? a : idb < 0 ? b : sb.data);
			break;
		}
		merge_put(m, ida, idb, i, idn);
	}
	sb_free(&sb);
	return e->failed ? -1 : 0;
}

void
free_bpe(struct bpe *m)
{
	tmap_free(&m->vocab);
	tmap_free(&m->cache);
	free(m->id2tok);
	free(m->id2len);
	free(m->mkey);
	free(m->mrank);
	free(m->mnew);
	free(m->prefix);
	free(m->suffix);
	free(m->sym);
	free(m->heap);
	free(m->cacheids);
	sb_free(&m->tmp);
}

/* ------------------------------------------------------------------------ */
/* The merge heap: the lowest rank first, then the leftmost position. */

static int
merge_less(const struct bpe_merge *x, const struct bpe_merge *y)
{
	return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static void
heap_push(struct bpe *m, uint32_t rank, int32_t pos, int32_t newid)
{
	struct bpe_merge t;
	size_t i, p;

	if (m->nheap == m->heapcap) {
		m->heapcap = m->heapcap ? m->heapcap * 2 : 64;
		m->heap = xreallocarray(m->heap, m->heapcap, sizeof(*m->heap));
	}
	t.rank = rank;
	t.pos = pos;
	t.newid = newid;
	for (i = m->nheap++; i > 0; i = p) {
		p = (i - 1) / 2;
		if (!merge_less(&t, &m->heap[p]))
			break;
		m->heap[i] = m->heap[p];
	}
	m->heap[i] = t;
}

static struct bpe_merge
heap_pop(struct bpe *m)
{
	struct bpe_merge top = m->heap[0], last = m->heap[--m->nheap];
	size_t i = 0, c;

	for (;;) {
		c = 2 * i + 1;
		if (c >= m->nheap)
			break;
		if (c + 1 < m->nheap && merge_less(&m->heap[c + 1], &m->heap[c]))
			c++;
		if (!merge_less(&m->heap[c], &last))
			break;
		m->heap[i] = m->heap[c];
		i = c;
	}
	if (m->nheap)
		m->heap[i] = last;
	return top;
}

/* Queue the merge of symbol pos with its right neighbour, if there is one. */
static void
queue_pair(struct bpe *m, int32_t pos)
{
	uint32_t rank;
	int32_t newid, next = m->sym[pos].next;

	if (next >= 0 && merge_find(m, m->sym[pos].id, m->sym[next].id, &rank,
	    &newid))
		heap_push(m, rank, pos, newid);
}

/* ------------------------------------------------------------------------ */
/* Encoding one pre-token */

static void
push_id(int32_t **ids, size_t *n, size_t *cap, int32_t id)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*ids = xreallocarray(*ids, *cap, sizeof(**ids));
	}
	(*ids)[(*n)++] = id;
}

static void
add_sym(struct bpe *m, size_t *n, int32_t id, uint32_t len)
{
	if (*n == m->nsymcap) {
		m->nsymcap = m->nsymcap ? m->nsymcap * 2 : 64;
		m->sym = xreallocarray(m->sym, m->nsymcap, sizeof(*m->sym));
	}
	m->sym[*n].id = id;
	m->sym[*n].prev = *n ? (int32_t)*n - 1 : -1;
	m->sym[*n].next = -1;
	m->sym[*n].len = len;
	if (*n)
		m->sym[*n - 1].next = *n;
	(*n)++;
}

/* The word as initial symbols: one per character, or per byte. */
static size_t
word_symbols(struct bpe *m, const char *s, size_t n)
{
	size_t i, cl, k, nsym = 0;
	int32_t id;
	int known;

	for (i = 0; i < n; i += cl) {
		cl = tu8_len((const unsigned char *)s + i, n - i);
		sb_clear(&m->tmp);
		if (m->prefix && i > 0)
			sb_adds(&m->tmp, m->prefix);
		sb_add(&m->tmp, s + i, cl);
		if (m->suffix && i + cl == n)
			sb_adds(&m->tmp, m->suffix);
		if ((id = tmap_get(&m->vocab, m->tmp.data, m->tmp.len)) >= 0) {
			add_sym(m, &nsym, id, cl);
			continue;
		}
		if (m->byte_fallback) {
			for (known = 1, k = 0; k < cl; k++)
				if (m->byteid[(unsigned char)s[i + k]] < 0)
					known = 0;
			if (known) {
				for (k = 0; k < cl; k++)
					add_sym(m, &nsym,
					    m->byteid[(unsigned char)s[i + k]], 1);
				continue;
			}
		}
		if (m->unk < 0)
			continue;	/* no unk token: the character is dropped */
		if (m->fuse_unk && nsym > 0 && m->sym[nsym - 1].id == m->unk)
			m->sym[nsym - 1].len += cl;
		else
			add_sym(m, &nsym, m->unk, cl);
	}
	return nsym;
}

static void
merge_word(struct bpe *m, size_t nsym)
{
	struct bpe_merge top;
	size_t i;
	int32_t next;
	uint32_t rank;
	int32_t newid;

	m->nheap = 0;
	for (i = 0; i + 1 < nsym; i++)
		queue_pair(m, i);
	while (m->nheap) {
		top = heap_pop(m);
		/* Stale: the left symbol was merged away or changed. */
		if (m->sym[top.pos].len == 0 || (next = m->sym[top.pos].next) < 0)
			continue;
		if (!merge_find(m, m->sym[top.pos].id, m->sym[next].id, &rank,
		    &newid) || newid != top.newid)
			continue;
		m->sym[top.pos].id = newid;
		m->sym[top.pos].len += m->sym[next].len;
		m->sym[top.pos].next = m->sym[next].next;
		m->sym[next].len = 0;
		if (m->sym[next].next >= 0)
			m->sym[m->sym[next].next].prev = top.pos;
		if (m->sym[top.pos].prev >= 0)
			queue_pair(m, m->sym[top.pos].prev);
		queue_pair(m, top.pos);
	}
}

/* Words this long are not cached: they are rare and would crowd it. */
#define CACHE_MAXLEN	256
#define CACHE_MAXWORDS	(1 << 18)

void
bpe_encode(struct bpe *m, const char *s, size_t n, int32_t **ids,
    size_t *nids, size_t *cap)
{
	size_t nsym, start, i, cnt;
	int32_t id, off;

	if (n == 0)
		return;
	if (n < CACHE_MAXLEN && (off = tmap_get(&m->cache, s, n)) >= 0) {
		cnt = m->cacheids[off];
		for (i = 0; i < cnt; i++)
			push_id(ids, nids, cap, m->cacheids[off + 1 + i]);
		return;
	}
	start = *nids;
	if (m->ignore_merges && (id = tmap_get(&m->vocab, s, n)) >= 0)
		push_id(ids, nids, cap, id);
	else {
		nsym = word_symbols(m, s, n);
		merge_word(m, nsym);
		for (i = 0; i < nsym; i = m->sym[i].next) {
			push_id(ids, nids, cap, m->sym[i].id);
			if (m->sym[i].next < 0)
				break;
		}
	}
	if (n >= CACHE_MAXLEN)
		return;
	if (m->cache.n >= CACHE_MAXWORDS) {
		tmap_free(&m->cache);
		m->ncacheids = 0;
	}
	cnt = *nids - start;
	while (m->ncacheids + cnt + 1 > m->cacheidscap) {
		m->cacheidscap = m->cacheidscap ? m->cacheidscap * 2 : 4096;
		m->cacheids = xreallocarray(m->cacheids, m->cacheidscap,
		    sizeof(*m->cacheids));
	}
	off = m->ncacheids;
	m->cacheids[off] = cnt;
	/* A word of no ids (every symbol dropped) may have *ids NULL. */
	if (cnt > 0)
		memcpy(m->cacheids + off + 1, *ids + start,
		    cnt * sizeof(int32_t));
	m->ncacheids += cnt + 1;
	tmap_put(&m->cache, s, n, off);
}
