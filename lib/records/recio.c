/*
 * recio.c: reading and writing record streams.
 *
 * Reading is three layers, each input detected on its own:
 *   bytes     read(2) from a file or stdin;
 *   decoded   the bytes, or what zstd makes of them when the input starts
 *             with a zstd or skippable frame's magic (concatenated frames
 *             allowed);
 *   records   msgpack maps from msgpack_unpacker, or JSON Lines parsed by
 *             json.c when the first non-blank decoded byte is '{'.
 * Memory is bounded by the largest record: the unpacker and the line buffer
 * only ever hold the record being read and the read-ahead.
 *
 * Writing encodes whole records into a buffer and hands the buffer to
 * write(2) (through zstd when asked), so output never holds half a record.
 */
#include "config.h"

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "records/record.h"
#include "util/strmap.h"
#include "util/util.h"

enum { CHUNK = 1 << 16 };

/*
 * Whether the input starts like zstd: a frame's magic, or a skippable
 * frame's (pzstd puts one first, holding the size of the next frame).
 * The magic numbers are little-endian 32-bit words.
 */
static int
is_zstd(const unsigned char *p)
{
	uint32_t m = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
	    (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
	return m == ZSTD_MAGICNUMBER || (m & ZSTD_MAGIC_SKIPPABLE_MASK) ==
	    ZSTD_MAGIC_SKIPPABLE_START;
}

/* ------------------------------------------------------------------------ */
/* Decoded bytes of one input */

struct input {
	const char *name;
	int fd;
	int eof;		/* read(2) returned 0 */
	unsigned char *raw;	/* read-ahead of the input's bytes */
	size_t rawlen, rawpos;
	ZSTD_DCtx *zstd;	/* non-NULL: the input is compressed */
	size_t zret;		/* 0: between frames */
};

static void
fill_raw(struct input *in)
{
	ssize_t n;
	do
		n = read(in->fd, in->raw, CHUNK);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		err(EXIT_DATA, "%s", in->name);
	in->rawlen = (size_t)n;
	in->rawpos = 0;
	in->eof = n == 0;
}

static void
input_open(struct input *in, const char *path)
{
	memset(in, 0, sizeof(*in));
	if (strcmp(path, "-") == 0) {
		in->name = "stdin";
		in->fd = 0;
	} else {
		in->name = path;
		if ((in->fd = open(path, O_RDONLY)) < 0)
			err(EXIT_DATA, "%s", path);
	}
	in->raw = xmalloc(CHUNK);
	/* The magic is the first four bytes; short reads must not hide it. */
	while (in->rawlen < 4) {
		ssize_t n = read(in->fd, in->raw + in->rawlen, CHUNK -
		    in->rawlen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			err(EXIT_DATA, "%s", in->name);
		if (n == 0)
			break;
		in->rawlen += (size_t)n;
	}
	if (in->rawlen >= 4 && is_zstd(in->raw)) {
		if ((in->zstd = ZSTD_createDCtx()) == NULL)
			errx(EXIT_DATA, "out of memory");
	}
}

static void
input_close(struct input *in)
{
	if (in->fd > 0)
		close(in->fd);
	ZSTD_freeDCtx(in->zstd);
	free(in->raw);
	memset(in, 0, sizeof(*in));
}

/* Up to cap decoded bytes into dst; 0 only at the end of the input. */
static size_t
input_read(struct input *in, void *dst, size_t cap)
{
	if (in->zstd == NULL) {
		if (in->rawpos == in->rawlen && !in->eof)
			fill_raw(in);
		size_t n = in->rawlen - in->rawpos;
		if (n > cap)
			n = cap;
		memcpy(dst, in->raw + in->rawpos, n);
		in->rawpos += n;
		return n;
	}
	for (;;) {
		if (in->rawpos == in->rawlen && !in->eof)
			fill_raw(in);
		ZSTD_inBuffer ib = { in->raw, in->rawlen, in->rawpos };
		ZSTD_outBuffer ob = { dst, cap, 0 };
		size_t r = ZSTD_decompressStream(in->zstd, &ob, &ib);
		if (ZSTD_isError(r))
			rec_fail("%s: corrupt zstd frame: %s", in->name,
			    ZSTD_getErrorName(r));
		/*
		 * 0 means a frame just ended.  A call that made no progress
		 * reports what a next frame would need: not a truncation.
		 */
		if (ib.pos > in->rawpos || ob.pos > 0)
			in->zret = r;
		in->rawpos = ib.pos;
		if (ob.pos > 0)
			return ob.pos;
		if (in->eof && in->rawpos == in->rawlen) {
			if (in->zret != 0)
				rec_fail("%s: corrupt zstd frame: "
				    "truncated at end of input", in->name);
			return 0;
		}
	}
}

/* ------------------------------------------------------------------------ */
/* Reader */

enum { FMT_NONE, FMT_MSGPACK, FMT_JSON };

/*
 * msgpack-c allocates an array's or map's objects as soon as it reads the
 * header, trusting the count: a header claiming 2^32-1 items asks for
 * 100 GB.  Its fixed stack also ends a record nested deeper than its
 * limit with the same "out of memory" as a real one.  So the reader walks
 * the bytes of each record first, allocating nothing, and hands the
 * unpacker only a record that is whole and within REC_MAX_DEPTH: every
 * count it then allocates for is backed by at least as many bytes.  The
 * walk resumes where it stopped when more bytes come.
 */
struct mp_scan {
	size_t pos;		/* bytes of the record walked */
	int depth;		/* containers open at pos */
	uint64_t left[REC_MAX_DEPTH];	/* items each still holds */
};

enum { SCAN_MORE, SCAN_DONE, SCAN_INVALID, SCAN_TOO_DEEP };

/* A big-endian unsigned integer of n bytes. */
static uint64_t
be(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/*
 * The whole size of an item by its first byte, where that alone tells it
 * (fixints, nil, booleans, floats, ints, fixexts), else 0: the walk's fast
 * path, since records are mostly such items and short strings.
 */
static const unsigned char fixed_size[256] = {
	[0x00 ... 0x7f] = 1, [0xe0 ... 0xff] = 1,
	[0xc0] = 1, [0xc2] = 1, [0xc3] = 1,
	[0xca] = 5, [0xcb] = 9,
	[0xcc] = 2, [0xcd] = 3, [0xce] = 5, [0xcf] = 9,
	[0xd0] = 2, [0xd1] = 3, [0xd2] = 5, [0xd3] = 9,
	[0xd4] = 3, [0xd5] = 4, [0xd6] = 6, [0xd7] = 10, [0xd8] = 18,
};

/*
 * Walk p[0..n), the bytes from the start of the record, from sc->pos on.
 * SCAN_DONE: the record is sc->pos bytes long.
 */
static int
mp_scan(struct mp_scan *sc, const unsigned char *p, size_t n)
{
	size_t pos = sc->pos;
	int ret = SCAN_MORE;

	while (pos < n) {
		unsigned b = p[pos];
		size_t avail = n - pos, size;
		/* Branches first for what records hold most. */
		if (b < 0x80)
			size = 1;			/* positive fixint */
		else if (b >= 0xa0 && b <= 0xbf)
			size = 1 + (b & 0x1f);		/* fixstr */
		else
			size = fixed_size[b];
		if (size != 0) {
			if (avail < size)
				break;
			pos += size;
		} else {
			uint64_t items = 0;	/* map: 2 per pair */
			size_t hl;		/* header bytes */
			if (b <= 0x8f) {
				items = 2 * (uint64_t)(b & 0x0f);
				hl = 1;
			} else if (b <= 0x9f) {
				items = b & 0x0f;
				hl = 1;
			} else if (b == 0xc1) {
				ret = SCAN_INVALID;
				break;
			} else {
				/* Length fields of str, bin, ext, array, map. */
				int lb = b == 0xc4 || b == 0xc7 || b == 0xd9 ? 1 :
				    b == 0xc5 || b == 0xc8 || b == 0xda ||
				    b == 0xdc || b == 0xde ? 2 : 4;
				hl = 1 + (size_t)lb;
				if (avail < hl)
					break;
				uint64_t len = be(p + pos + 1, lb);
				if (b < 0xdc) {
					if (b >= 0xc7 && b <= 0xc9)
						len++;	/* ext: the type byte */
					if (avail - hl < len)
						break;
					pos += hl + (size_t)len;
					goto item_done;
				}
				items = b >= 0xde ? 2 * len : len;
			}
			if (sc->depth >= REC_MAX_DEPTH) {
				ret = SCAN_TOO_DEEP;
				break;
			}
			pos += hl;
			if (items > 0) {
				sc->left[sc->depth++] = items;
				continue;
			}
		}
	item_done:
		/* An item ended: so may the containers around it. */
		while (sc->depth > 0 && --sc->left[sc->depth - 1] == 0)
			sc->depth--;
		if (sc->depth == 0) {
			ret = SCAN_DONE;
			break;
		}
	}
	sc->pos = pos;
	return ret;
}

struct rec_reader {
	char **paths;
	int npaths, next;	/* inputs, and the next one to open */
	struct input in;
	int open, format;
	uint64_t recno;		/* records read from the current input */
	uint64_t lineno;	/* JSON: lines read from the current input */
	msgpack_unpacker unp;
	int unp_ready;
	struct mp_scan scan;	/* the walk of the next record's bytes */
	char *buf;		/* JSON: decoded bytes, [start, end) unread */
	size_t start, end, cap;
};

struct rec_reader *
rec_reader_open(char *const *paths, int npaths)
{
	static char *stdin_only[] = { "-" };
	struct rec_reader *rd = xcalloc(1, sizeof(*rd));
	if (npaths == 0) {
		paths = stdin_only;
		npaths = 1;
	}
	rd->paths = (char **)paths;
	rd->npaths = npaths;
	return rd;
}

void
rec_reader_close(struct rec_reader *rd)
{
	if (rd == NULL)
		return;
	if (rd->open)
		input_close(&rd->in);
	if (rd->unp_ready)
		msgpack_unpacker_destroy(&rd->unp);
	free(rd->buf);
	free(rd);
}

/*
 * Open the next input and read decoded bytes until the first non-blank one
 * tells the format.  The bytes read stay in rd->buf.  Returns 0 when there
 * are no more inputs.
 */
static int
next_input(struct rec_reader *rd)
{
	for (;;) {
		if (rd->open) {
			input_close(&rd->in);
			rd->open = 0;
		}
		if (rd->next == rd->npaths)
			return 0;
		input_open(&rd->in, rd->paths[rd->next++]);
		rd->open = 1;
		rd->recno = rd->lineno = 0;
		rd->start = rd->end = 0;
		memset(&rd->scan, 0, sizeof(rd->scan));
		rd->format = FMT_NONE;
		for (;;) {
			size_t i;
			for (i = rd->start; i < rd->end; i++) {
				char c = rd->buf[i];
				if (c != ' ' && c != '\t' && c != '\n' &&
				    c != '\r')
					break;
			}
			if (i < rd->end) {
				rd->format = rd->buf[i] == '{' ? FMT_JSON :
				    FMT_MSGPACK;
				break;
			}
			if (rd->end == rd->cap) {
				rd->cap = rd->cap ? 2 * rd->cap : CHUNK;
				rd->buf = xrealloc(rd->buf, rd->cap);
			}
			size_t n = input_read(&rd->in, rd->buf + rd->end,
			    rd->cap - rd->end);
			if (n == 0)
				break;	/* blank input: no records */
			rd->end += n;
		}
		if (rd->format == FMT_NONE)
			continue;
		if (rd->format == FMT_MSGPACK) {
			if (rd->unp_ready)
				msgpack_unpacker_destroy(&rd->unp);
			if (!msgpack_unpacker_init(&rd->unp, CHUNK))
				errx(EXIT_DATA, "out of memory");
			rd->unp_ready = 1;
			size_t n = rd->end - rd->start;
			if (!msgpack_unpacker_reserve_buffer(&rd->unp, n))
				errx(EXIT_DATA, "out of memory");
			memcpy(msgpack_unpacker_buffer(&rd->unp),
			    rd->buf + rd->start, n);
			msgpack_unpacker_buffer_consumed(&rd->unp, n);
			rd->start = rd->end = 0;
		}
		return 1;
	}
}

/*
 * Duplicate keys.  A tool reads and updates the first of two equal keys,
 * and a reader that keeps the last would see a stale value, so a record
 * holds each key once, in its own map and in every map inside it.
 */

/* Where the duplicate is: the steps from the record to it, innermost first. */
struct dup_path {
	int n;
	const msgpack_object *key[REC_MAX_DEPTH + 1];	/* NULL: array index */
	uint32_t index[REC_MAX_DEPTH + 1];
};

static int
same_key(const msgpack_object *a, const msgpack_object *b)
{
	return a->type == MSGPACK_OBJECT_STR && b->type == MSGPACK_OBJECT_STR &&
	    a->via.str.size == b->via.str.size && (a->via.str.size == 0 ||
	    memcmp(a->via.str.ptr, b->via.str.ptr, a->via.str.size) == 0);
}

/*
 * The index of a string key of m equal to an earlier one, or -1.  Records
 * have a dozen fields: a scan over them is cheaper than hashing, which is
 * kept for large maps.
 */
static long
dup_key(const msgpack_object_map *m)
{
	enum { SCAN_UP_TO = 16 };
	uint32_t n = m->size;
	if (n <= SCAN_UP_TO) {
		for (uint32_t i = 1; i < n; i++)
			for (uint32_t j = 0; j < i; j++)
				if (same_key(&m->ptr[j].key, &m->ptr[i].key))
					return i;
		return -1;
	}
	/* Open addressing over indices + 1 (0: empty), load below 1/2. */
	size_t cap = 64;
	while (cap < 2 * (size_t)n)
		cap *= 2;
	uint32_t *slot = xcalloc(cap, sizeof(*slot));
	long found = -1;
	for (uint32_t i = 0; i < n && found < 0; i++) {
		const msgpack_object *k = &m->ptr[i].key;
		if (k->type != MSGPACK_OBJECT_STR)
			continue;
		size_t h = (size_t)hash_bytes(k->via.str.ptr, k->via.str.size);
		for (h &= cap - 1; slot[h] != 0; h = (h + 1) & (cap - 1))
			if (same_key(&m->ptr[slot[h] - 1].key, k)) {
				found = i;
				break;
			}
		if (found < 0)
			slot[h] = i + 1;
	}
	free(slot);
	return found;
}

/* Whether o, or a map anywhere in it, has a duplicate key; where, in *p. */
static int
has_dup(const msgpack_object *o, struct dup_path *p)
{
	if (o->type == MSGPACK_OBJECT_MAP) {
		const msgpack_object_map *m = &o->via.map;
		long d = dup_key(m);
		if (d >= 0) {
			p->key[p->n++] = &m->ptr[d].key;
			return 1;
		}
		for (uint32_t i = 0; i < m->size; i++) {
			const msgpack_object *v = &m->ptr[i].val;
			if ((v->type == MSGPACK_OBJECT_MAP ||
			    v->type == MSGPACK_OBJECT_ARRAY) && has_dup(v, p)) {
				p->key[p->n++] = &m->ptr[i].key;
				return 1;
			}
		}
	} else if (o->type == MSGPACK_OBJECT_ARRAY) {
		const msgpack_object_array *a = &o->via.array;
		for (uint32_t i = 0; i < a->size; i++) {
			const msgpack_object *v = &a->ptr[i];
			if ((v->type == MSGPACK_OBJECT_MAP ||
			    v->type == MSGPACK_OBJECT_ARRAY) && has_dup(v, p)) {
				p->key[p->n] = NULL;
				p->index[p->n++] = i;
				return 1;
			}
		}
	}
	return 0;
}

/* The path as a field name: "chosen.reward", "messages[2].role". */
static void
dup_path_str(const struct dup_path *p, char *buf, size_t sz)
{
	struct strbuf b;
	sb_init(&b);
	for (int i = p->n - 1; i >= 0; i--) {
		const msgpack_object *k = p->key[i];
		if (k == NULL) {
			sb_printf(&b, "[%u]", p->index[i]);
			continue;
		}
		if (i < p->n - 1)
			sb_addc(&b, '.');
		if (k->type == MSGPACK_OBJECT_STR)
			sb_add(&b, k->via.str.ptr, k->via.str.size);
		else
			sb_printf(&b, "(%s key)", rec_type_name(k));
	}
	snprintf(buf, sz, "%s", b.data ? b.data : "");
	sb_free(&b);
}

/*
 * The top-level value must be a map with string keys, each key once (in
 * nested maps too).  On failure *zone is freed first, so an error hook
 * that returns (a fuzzer) leaks nothing.
 */
static void
check_map(struct rec_reader *rd, const msgpack_object *o, msgpack_zone *zone)
{
	char msg[512] = "";
	if (o->type != MSGPACK_OBJECT_MAP)
		snprintf(msg, sizeof(msg), "not a map, got %s",
		    rec_type_name(o));
	for (uint32_t i = 0; !*msg && i < o->via.map.size; i++) {
		const msgpack_object *k = &o->via.map.ptr[i].key;
		if (k->type != MSGPACK_OBJECT_STR)
			snprintf(msg, sizeof(msg), "key %u is not a string, "
			    "got %s", i, rec_type_name(k));
	}
	struct dup_path p;
	p.n = 0;
	if (!*msg && has_dup(o, &p)) {
		char path[400];
		dup_path_str(&p, path, sizeof(path));
		snprintf(msg, sizeof(msg), "field \"%s\": duplicate key", path);
	}
	if (*msg) {
		msgpack_zone_free(zone);
		rec_fail("%s: record %llu: %s", rd->in.name,
		    (unsigned long long)rd->recno, msg);
	}
}

static int
read_msgpack(struct rec_reader *rd, struct rec *r)
{
	for (;;) {
		/* The unparsed bytes; the walk goes on where it stopped. */
		const unsigned char *p = (const unsigned char *)rd->unp.buffer +
		    rd->unp.off;
		size_t avail = rd->unp.used - rd->unp.off;
		int sc = mp_scan(&rd->scan, p, avail);
		if (sc == SCAN_INVALID)
			rec_fail("%s: record %llu: invalid msgpack",
			    rd->in.name, (unsigned long long)rd->recno + 1);
		if (sc == SCAN_TOO_DEEP)
			rec_fail("%s: record %llu: nesting deeper than %d levels",
			    rd->in.name, (unsigned long long)rd->recno + 1,
			    REC_MAX_DEPTH);
		if (sc == SCAN_MORE) {
			if (!msgpack_unpacker_reserve_buffer(&rd->unp, CHUNK))
				errx(EXIT_DATA, "out of memory");
			size_t n = input_read(&rd->in,
			    msgpack_unpacker_buffer(&rd->unp),
			    msgpack_unpacker_buffer_capacity(&rd->unp));
			if (n == 0) {
				if (avail > 0)
					rec_fail("%s: record %llu: truncated "
					    "msgpack at end of input",
					    rd->in.name,
					    (unsigned long long)rd->recno + 1);
				return 0;
			}
			msgpack_unpacker_buffer_consumed(&rd->unp, n);
			continue;
		}
		memset(&rd->scan, 0, sizeof(rd->scan));
		msgpack_unpacked res;
		msgpack_unpacked_init(&res);
		size_t size = 0;
		msgpack_unpack_return ret = msgpack_unpacker_next_with_size(
		    &rd->unp, &res, &size);
		if (ret == MSGPACK_UNPACK_SUCCESS) {
			rd->recno++;
			r->zone = msgpack_unpacked_release_zone(&res);
			check_map(rd, &res.data, r->zone);
			r->kv = res.data.via.map.ptr;
			r->n = res.data.via.map.size;
			r->cap = 0;	/* borrowed from the unpacked data */
			r->src = rd->in.name;
			r->recno = rd->recno;
			rec_touch(r);
			/*
			 * Keep the record's bytes when they lie whole in the
			 * unpacker's current buffer (a record split by a refill
			 * is not contiguous).  The buffer starts with a counter
			 * of at most 8 bytes, so a start past that is inside it.
			 * Its string keys make the zone hold a reference to the
			 * buffer, so the bytes live as long as the record.
			 */
			if (r->n > 0 && rd->unp.off >= size + 8) {
				r->raw = rd->unp.buffer + rd->unp.off - size;
				r->rawlen = size;
			}
			return 1;
		}
		msgpack_unpacked_destroy(&res);
		/* The walk found a whole, valid record: only memory is left. */
		if (ret == MSGPACK_UNPACK_NOMEM_ERROR)
			errx(EXIT_DATA, "%s: record %llu: out of memory",
			    rd->in.name, (unsigned long long)rd->recno + 1);
		rec_fail("%s: record %llu: invalid msgpack", rd->in.name,
		    (unsigned long long)rd->recno + 1);
	}
}

/* The next line of JSON text, without its newline; NULL at the end. */
static char *
next_line(struct rec_reader *rd, size_t *len)
{
	size_t scan = rd->start;
	for (;;) {
		char *nl = memchr(rd->buf + scan, '\n', rd->end - scan);
		if (nl != NULL) {
			char *line = rd->buf + rd->start;
			*len = (size_t)(nl - line);
			rd->start = (size_t)(nl - rd->buf) + 1;
			return line;
		}
		/* Make room: slide the partial line down, or grow. */
		scan = rd->end - rd->start;
		if (rd->start > 0) {
			memmove(rd->buf, rd->buf + rd->start, scan);
			rd->end = scan;
			rd->start = 0;
		}
		if (rd->end == rd->cap) {
			rd->cap *= 2;
			rd->buf = xrealloc(rd->buf, rd->cap);
		}
		size_t n = input_read(&rd->in, rd->buf + rd->end, rd->cap -
		    rd->end);
		if (n == 0) {
			if (rd->start == rd->end)
				return NULL;
			/* The last line has no newline. */
			char *line = rd->buf + rd->start;
			*len = rd->end - rd->start;
			rd->start = rd->end;
			return line;
		}
		rd->end += n;
	}
}

static int
read_json(struct rec_reader *rd, struct rec *r)
{
	for (;;) {
		size_t len;
		char *line = next_line(rd, &len);
		if (line == NULL)
			return 0;
		rd->lineno++;
		size_t i = 0;
		while (i < len && (line[i] == ' ' || line[i] == '\t' ||
		    line[i] == '\r'))
			i++;
		if (i == len)
			continue;	/* blank lines separate nothing */
		rd->recno++;
		rec_init(r, rd->in.name, rd->recno);
		msgpack_object o;
		char msg[128];
		size_t pos;
		if (json_parse(line, len, r->zone, &o, msg, sizeof(msg),
		    &pos) < 0) {
			rec_free(r);
			rec_fail("%s: record %llu: invalid JSON at line "
			    "%llu, column %zu: %s", rd->in.name,
			    (unsigned long long)rd->recno,
			    (unsigned long long)rd->lineno, pos + 1, msg);
		}
		check_map(rd, &o, r->zone);
		r->kv = o.via.map.ptr;
		r->n = o.via.map.size;
		r->cap = 0;
		return 1;
	}
}

int
rec_read(struct rec_reader *rd, struct rec *r)
{
	for (;;) {
		if (!rd->open && !next_input(rd))
			return 0;
		int got = rd->format == FMT_JSON ? read_json(rd, r) :
		    read_msgpack(rd, r);
		if (got)
			return 1;
		input_close(&rd->in);
		rd->open = 0;
	}
}

/* ------------------------------------------------------------------------ */
/* Writer */

enum { FLUSH_AT = 1 << 16 };

struct rec_writer {
	int fd;
	const char *name;
	int json;
	int eager;		/* flush every record: a terminal */
	uint64_t nrec;		/* records written */
	struct strbuf out;	/* encoded, unwritten records */
	msgpack_packer pk;
	ZSTD_CCtx *zstd;
	struct strbuf zout;
};

void
rec_output_option(int opt, int *flags)
{
	if (opt == 'J')
		*flags = (*flags & ~REC_AUTO) | REC_JSON;
	else if (opt == 'z')
		*flags |= REC_ZSTD;
}

static int
pack_to_strbuf(void *data, const char *buf, size_t len)
{
	sb_add(data, buf, len);
	return 0;
}

/*
 * Open writers, flushed at exit: a tool that stops on bad input record N
 * still delivers records 1..N-1 whole, so nothing before the error is lost.
 */
static struct rec_writer *open_writers[8];
static int exiting;

static void
flush_at_exit(void)
{
	exiting = 1;
	for (size_t i = 0; i < sizeof(open_writers) / sizeof(*open_writers); i++)
		if (open_writers[i] != NULL)
			rec_writer_close(open_writers[i]);
}

struct rec_writer *
rec_writer_open(int fd, const char *name, int flags)
{
	static int registered;
	struct rec_writer *w = xcalloc(1, sizeof(*w));
	if (!registered) {
		atexit(flush_at_exit);
		registered = 1;
	}
	for (size_t i = 0; i < sizeof(open_writers) / sizeof(*open_writers); i++)
		if (open_writers[i] == NULL) {
			open_writers[i] = w;
			break;
		}
	w->fd = fd;
	w->name = name;
	w->eager = isatty(fd);
	w->json = (flags & REC_JSON) || ((flags & REC_AUTO) && w->eager);
	sb_init(&w->out);
	sb_init(&w->zout);
	msgpack_packer_init(&w->pk, &w->out, pack_to_strbuf);
	if (flags & REC_ZSTD) {
		if ((w->zstd = ZSTD_createCCtx()) == NULL)
			errx(EXIT_DATA, "out of memory");
		ZSTD_CCtx_setParameter(w->zstd, ZSTD_c_compressionLevel, 3);
		w->eager = 0;
	}
	return w;
}

/* Take w off the list flushed at exit. */
static void
forget_writer(struct rec_writer *w)
{
	for (size_t i = 0; i < sizeof(open_writers) / sizeof(*open_writers); i++)
		if (open_writers[i] == w)
			open_writers[i] = NULL;
}

static void
write_all(struct rec_writer *w, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(w->fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EPIPE)
			_exit(EXIT_DATA);	/* the reader left: quietly */
		if (k < 0 && exiting) {
			warn("%s", w->name);
			_exit(EXIT_DATA);
		}
		if (k < 0) {
			/*
			 * The output is broken (ENOSPC, EIO): flushing it
			 * again at exit would only repeat the message.
			 */
			forget_writer(w);
			err(EXIT_DATA, "%s", w->name);
		}
		p += k;
		n -= (size_t)k;
	}
}

static void
compress_out(struct rec_writer *w, ZSTD_EndDirective mode)
{
	ZSTD_inBuffer ib = { w->out.data, w->out.len, 0 };
	for (;;) {
		sb_reserve(&w->zout, ZSTD_CStreamOutSize());
		ZSTD_outBuffer ob = { w->zout.data, w->zout.cap - 1, 0 };
		size_t left = ZSTD_compressStream2(w->zstd, &ob, &ib, mode);
		if (ZSTD_isError(left))
			errx(EXIT_DATA, "%s: zstd: %s", w->name,
			    ZSTD_getErrorName(left));
		write_all(w, w->zout.data, ob.pos);
		if (mode == ZSTD_e_continue ? ib.pos == ib.size : left == 0)
			break;
	}
}

void
rec_writer_flush(struct rec_writer *w)
{
	if (w->zstd != NULL)
		compress_out(w, ZSTD_e_continue);
	else
		write_all(w, w->out.data, w->out.len);
	sb_clear(&w->out);
}

static void
encode_json(struct rec_writer *w, const msgpack_object_kv *kv, uint32_t n,
    const char *src, uint64_t recno)
{
	size_t mark = w->out.len;
	sb_addc(&w->out, '{');
	for (uint32_t i = 0; i < n; i++) {
		if (i)
			sb_addc(&w->out, ',');
		int e = kv[i].key.type == MSGPACK_OBJECT_STR ?
		    json_emit_in(&w->out, &kv[i].key, 1) : JSON_BAD_KEY;
		if (e == 0) {
			sb_addc(&w->out, ':');
			e = json_emit_in(&w->out, &kv[i].val, 1);
		}
		if (e != 0) {
			/* Keep the records before this one; drop this one. */
			w->out.len = mark;
			rec_writer_flush(w);
			if (kv[i].key.type != MSGPACK_OBJECT_STR)
				rec_fail("%s: record %llu: key %u is "
				    "not a string", src,
				    (unsigned long long)recno, i);
			rec_fail("%s: record %llu: field \"%.*s\": %s",
			    src, (unsigned long long)recno,
			    (int)kv[i].key.via.str.size, kv[i].key.via.str.ptr,
			    json_emit_error(e));
		}
	}
	sb_add(&w->out, "}\n", 2);
}

/*
 * msgpack_pack_object, refusing to go deeper than REC_MAX_DEPTH: o is
 * inside depth containers.  Returns -1 when too deep.
 */
static int
pack_obj(msgpack_packer *pk, const msgpack_object *o, int depth)
{
	if (o->type == MSGPACK_OBJECT_ARRAY) {
		if (depth >= REC_MAX_DEPTH)
			return -1;
		msgpack_pack_array(pk, o->via.array.size);
		for (uint32_t i = 0; i < o->via.array.size; i++)
			if (pack_obj(pk, &o->via.array.ptr[i], depth + 1) < 0)
				return -1;
		return 0;
	}
	if (o->type == MSGPACK_OBJECT_MAP) {
		if (depth >= REC_MAX_DEPTH)
			return -1;
		msgpack_pack_map(pk, o->via.map.size);
		for (uint32_t i = 0; i < o->via.map.size; i++)
			if (pack_obj(pk, &o->via.map.ptr[i].key, depth + 1) < 0 ||
			    pack_obj(pk, &o->via.map.ptr[i].val, depth + 1) < 0)
				return -1;
		return 0;
	}
	msgpack_pack_object(pk, *o);
	return 0;
}

static void
encode_msgpack(struct rec_writer *w, const msgpack_object_kv *kv, uint32_t n,
    const char *src, uint64_t recno)
{
	size_t mark = w->out.len;
	msgpack_pack_map(&w->pk, n);
	for (uint32_t i = 0; i < n; i++) {
		msgpack_pack_object(&w->pk, kv[i].key);
		if (pack_obj(&w->pk, &kv[i].val, 1) < 0) {
			/* As a reader would refuse it: keep the ones before. */
			w->out.len = mark;
			rec_writer_flush(w);
			if (kv[i].key.type != MSGPACK_OBJECT_STR)
				rec_fail("%s: record %llu: key %u: nesting "
				    "deeper than %d levels", src,
				    (unsigned long long)recno, i,
				    REC_MAX_DEPTH);
			rec_fail("%s: record %llu: field \"%.*s\": nesting "
			    "deeper than %d levels", src,
			    (unsigned long long)recno,
			    (int)kv[i].key.via.str.size, kv[i].key.via.str.ptr,
			    REC_MAX_DEPTH);
		}
	}
}

static void
encode(struct rec_writer *w, const msgpack_object_kv *kv, uint32_t n,
    const char *raw, size_t rawlen, const char *src, uint64_t recno)
{
	if (w->json)
		encode_json(w, kv, n, src, recno);
	else if (raw != NULL)
		sb_add(&w->out, raw, rawlen);	/* read, so within the limit */
	else
		encode_msgpack(w, kv, n, src, recno);
	w->nrec++;
	if (w->eager || w->out.len >= FLUSH_AT)
		rec_writer_flush(w);
}

void
rec_write(struct rec_writer *w, const struct rec *r)
{
	encode(w, r->kv, r->n, r->raw, r->rawlen, r->src, r->recno);
}

void
rec_write_object(struct rec_writer *w, const msgpack_object *o)
{
	if (o->type != MSGPACK_OBJECT_MAP)
		errx(EXIT_DATA, "internal error: writing a %s as a record",
		    rec_type_name(o));
	/* Built by hand, so named by its place in the output. */
	encode(w, o->via.map.ptr, o->via.map.size, NULL, 0, w->name,
	    w->nrec + 1);
}

void
rec_writer_close(struct rec_writer *w)
{
	if (w == NULL)
		return;
	forget_writer(w);
	rec_writer_flush(w);
	if (w->zstd != NULL) {
		compress_out(w, ZSTD_e_end);
		ZSTD_freeCCtx(w->zstd);
	}
	sb_free(&w->out);
	sb_free(&w->zout);
	free(w);
}
