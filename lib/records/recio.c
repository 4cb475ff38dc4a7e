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

struct rec_reader {
	char **paths;
	int npaths, next;	/* inputs, and the next one to open */
	struct input in;
	int open, format;
	uint64_t recno;		/* records read from the current input */
	uint64_t lineno;	/* JSON: lines read from the current input */
	msgpack_unpacker unp;
	int unp_ready;
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
 * The top-level value must be a map with string keys.  On failure *zone is
 * freed first, so an error hook that returns (a fuzzer) leaks nothing.
 */
static void
check_map(struct rec_reader *rd, const msgpack_object *o, msgpack_zone *zone)
{
	char msg[128] = "";
	if (o->type != MSGPACK_OBJECT_MAP)
		snprintf(msg, sizeof(msg), "not a map, got %s",
		    rec_type_name(o));
	for (uint32_t i = 0; !*msg && i < o->via.map.size; i++) {
		const msgpack_object *k = &o->via.map.ptr[i].key;
		if (k->type != MSGPACK_OBJECT_STR)
			snprintf(msg, sizeof(msg), "key %u is not a string, "
			    "got %s", i, rec_type_name(k));
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
		if (ret == MSGPACK_UNPACK_PARSE_ERROR)
			rec_fail("%s: record %llu: invalid msgpack",
			    rd->in.name, (unsigned long long)rd->recno + 1);
		if (ret == MSGPACK_UNPACK_NOMEM_ERROR)
			rec_fail("%s: record %llu: out of memory (a corrupt "
			    "msgpack length?)",
			    rd->in.name, (unsigned long long)rd->recno + 1);
		/* MSGPACK_UNPACK_CONTINUE: the record goes on; read more. */
		if (!msgpack_unpacker_reserve_buffer(&rd->unp, CHUNK))
			errx(EXIT_DATA, "out of memory");
		size_t n = input_read(&rd->in, msgpack_unpacker_buffer(&rd->unp),
		    msgpack_unpacker_buffer_capacity(&rd->unp));
		if (n == 0) {
			if (msgpack_unpacker_message_size(&rd->unp) > 0)
				rec_fail("%s: record %llu: truncated "
				    "msgpack at end of input", rd->in.name,
				    (unsigned long long)rd->recno + 1);
			return 0;
		}
		msgpack_unpacker_buffer_consumed(&rd->unp, n);
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
		    json_emit(&w->out, &kv[i].key) : JSON_BAD_KEY;
		if (e == 0) {
			sb_addc(&w->out, ':');
			e = json_emit(&w->out, &kv[i].val);
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

static void
encode(struct rec_writer *w, const msgpack_object_kv *kv, uint32_t n,
    const char *raw, size_t rawlen, const char *src, uint64_t recno)
{
	if (w->json) {
		encode_json(w, kv, n, src, recno);
	} else if (raw != NULL) {
		sb_add(&w->out, raw, rawlen);
	} else {
		msgpack_pack_map(&w->pk, n);
		for (uint32_t i = 0; i < n; i++) {
			msgpack_pack_object(&w->pk, kv[i].key);
			msgpack_pack_object(&w->pk, kv[i].val);
		}
	}
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
	encode(w, o->via.map.ptr, o->via.map.size, NULL, 0, "output", 0);
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
