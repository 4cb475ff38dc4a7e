/*
 * record.h: record streams, the one data format every prefpipe tool speaks.
 *
 * A record is a msgpack map with string keys.  A stream is a sequence of
 * records: msgpack, or JSON Lines, either of them optionally zstd-compressed.
 * Readers detect the form of each input by itself; writers emit msgpack
 * unless asked for JSON (or writing to a terminal).
 *
 * A record keeps its fields in their original order.  Getters read typed
 * values; setters add or replace one field and leave every other untouched,
 * so fields a tool does not know pass through it unchanged.
 *
 * Errors in the data end the program with status 1 and a message of the form
 *     tool: INPUT: record N: field "F": expected string, got integer
 */
#ifndef PREFPIPE_RECORD_H
#define PREFPIPE_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <msgpack.h>

/*
 * How deep a record may nest: the record's own map is level 1, a map or
 * array in one of its fields level 2, and so on; empty ones count too.
 * msgpack-c's unpacker keeps its open containers in a fixed stack of
 * MSGPACK_EMBED_STACK_SIZE (32) entries, so that is the most a msgpack
 * record can hold; JSON Lines and every writer keep the same limit, so
 * whatever a tool writes, in either form, reads back.
 */
#define REC_MAX_DEPTH 32
#if defined(MSGPACK_EMBED_STACK_SIZE) && MSGPACK_EMBED_STACK_SIZE < REC_MAX_DEPTH
#error "msgpack-c unpacks fewer levels than REC_MAX_DEPTH"
#endif

/* ------------------------------------------------------------------------ */
/* Records */

struct rec {
	msgpack_object_kv *kv;	/* fields, in order */
	uint32_t n, cap;	/* fields used; slots in kv (0: kv is borrowed) */
	msgpack_zone *zone;	/* owns every byte the record points to */
	const char *src;	/* input name, for messages ("stdin" for -) */
	uint64_t recno;		/* 1-based ordinal of the record in src */
	/*
	 * The msgpack bytes the record was read from, while it is unchanged
	 * (NULL otherwise): a writer copies them instead of packing again.
	 * Setters clear it; code that changes kv by hand calls rec_touch.
	 */
	const char *raw;
	size_t rawlen;
};

/* The record's fields were changed by hand: forget its original bytes. */
static inline void rec_touch(struct rec *r) { r->raw = NULL; r->rawlen = 0; }

/* An empty record with its own zone; src/recno name it in messages. */
void rec_init(struct rec *r, const char *src, uint64_t recno);
/* Release the record's memory; the struct may be reused with rec_init. */
void rec_free(struct rec *r);
/* A deep copy of src into dst, which owns its own zone afterwards. */
void rec_copy(struct rec *dst, const struct rec *src);

/* The value of field key, or NULL when the record has no such field. */
const msgpack_object *rec_get(const struct rec *r, const char *key);
/* Like rec_get, for a dotted path into nested maps ("chosen.reward"). */
const msgpack_object *rec_get_path(const struct rec *r, const char *path);
/*
 * Whether path is a well-formed field path: not empty, and no empty
 * component (a leading or trailing dot, or "..").  Tools check their
 * field options with it and refuse a malformed one as a usage error,
 * as --where does.
 */
int rec_path_ok(const char *path);
/* pp_usage (status 2) naming option opt unless rec_path_ok(path). */
void rec_path_option(const char *opt, const char *path);

/*
 * Typed getters.  rec_need_* end the program with the standard message when
 * the field is missing or has the wrong type.  rec_opt_* return def when it
 * is missing and still end the program on a wrong type.
 */
const char *rec_need_str(const struct rec *r, const char *key, size_t *len);
int64_t rec_need_int(const struct rec *r, const char *key);
double rec_need_num(const struct rec *r, const char *key); /* int or float */
int rec_need_bool(const struct rec *r, const char *key);
const msgpack_object_map *rec_need_map(const struct rec *r, const char *key);
const char *rec_opt_str(const struct rec *r, const char *key, size_t *len,
    const char *def);
int64_t rec_opt_int(const struct rec *r, const char *key, int64_t def);
double rec_opt_num(const struct rec *r, const char *key, double def);
int rec_opt_bool(const struct rec *r, const char *key, int def);

/*
 * Arrays: an array of integers (each must fit int32) into *out, or of numbers
 * (integers or floats) into floats.  The array is malloc'd; the caller frees
 * it.  Returns the length.  Missing or mistyped fields end the program.
 */
size_t rec_need_int_array(const struct rec *r, const char *key, int32_t **out);
size_t rec_need_float_array(const struct rec *r, const char *key, float **out);

/* A nested map as a record of its own (a copy; src/recno inherited). */
void rec_need_sub(const struct rec *r, const char *key, struct rec *sub);

/*
 * Every error in the data ends in rec_fail: it formats the message and
 * calls rec_error_hook, which by default prints it after the program's name
 * and exits with status 1.  A fuzzer replaces the hook to longjmp back.
 */
extern void (*rec_error_hook)(const char *msg);
void rec_fail(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));

/* A number (integer or float) as a double: 1, or 0 for other types. */
int rec_obj_num(const msgpack_object *o, double *out);

/* End the program with the standard message about field key of r. */
void rec_die(const struct rec *r, const char *key, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));
/* The name of a msgpack type for messages: "string", "integer", ... */
const char *rec_type_name(const msgpack_object *o);

/* Setters: add key at the end, or replace its value in place. */
void rec_set_nil(struct rec *r, const char *key);
void rec_set_bool(struct rec *r, const char *key, int v);
void rec_set_int(struct rec *r, const char *key, int64_t v);
void rec_set_uint(struct rec *r, const char *key, uint64_t v);
void rec_set_num(struct rec *r, const char *key, double v);
void rec_set_str(struct rec *r, const char *key, const char *s);
void rec_set_strn(struct rec *r, const char *key, const char *s, size_t len);
void rec_set_int_array(struct rec *r, const char *key, const int32_t *v,
    size_t n);
/* Stored as float32: the model computes in fp32. */
void rec_set_float_array(struct rec *r, const char *key, const float *v,
    size_t n);
/* Any msgpack value, deep-copied into the record's zone. */
void rec_set_obj(struct rec *r, const char *key, const msgpack_object *v);
/* A nested map holding the fields of sub (deep-copied). */
void rec_set_sub(struct rec *r, const char *key, const struct rec *sub);
/* Remove key if present; returns whether it was there. */
int rec_del(struct rec *r, const char *key);

/* n bytes from zone z; running out of memory ends the program. */
void *rec_zalloc(msgpack_zone *z, size_t n);
/* A deep copy of src into dst, every byte allocated in z. */
void rec_obj_copy(msgpack_zone *z, msgpack_object *dst,
    const msgpack_object *src);

/* The record as one msgpack map object (valid until the record changes). */
msgpack_object rec_as_object(const struct rec *r);

/* ------------------------------------------------------------------------ */
/* Reading */

struct rec_reader;

/*
 * A reader over the inputs named in paths (NULL-terminated; "-" is stdin);
 * with no paths it reads stdin.  Each input is detected on its own:
 * msgpack, JSON Lines (first non-blank byte '{'), either zstd-compressed.
 */
struct rec_reader *rec_reader_open(char *const *paths, int npaths);
/* Read the next record into *r (which it rec_init's); 0 at the end. */
int rec_read(struct rec_reader *rd, struct rec *r);
void rec_reader_close(struct rec_reader *rd);

/* ------------------------------------------------------------------------ */
/* Writing */

enum {
	REC_JSON = 1,		/* JSON Lines instead of msgpack */
	REC_ZSTD = 2,		/* zstd-compress the stream */
	REC_AUTO = 4,		/* JSON when the output is a terminal */
};

struct rec_writer;

/* Apply -J (JSON) or -z (zstd), the output options of every tool. */
void rec_output_option(int opt, int *flags);

/* A writer on a file descriptor (1 for stdout); name is used in messages. */
struct rec_writer *rec_writer_open(int fd, const char *name, int flags);
void rec_write(struct rec_writer *w, const struct rec *r);
/* Any msgpack map, e.g. one built by hand. */
void rec_write_object(struct rec_writer *w, const msgpack_object *o);
void rec_writer_flush(struct rec_writer *w);
/* Flush, finish the zstd frame, check for errors; the fd stays open. */
void rec_writer_close(struct rec_writer *w);

/* ------------------------------------------------------------------------ */
/* JSON text, as the record codec writes and reads it */

/*
 * Append the JSON text of o to buf.  Returns 0, or one of the negative codes
 * below, after which buf holds a partial text to be thrown away.  o nests
 * at most REC_MAX_DEPTH levels; json_emit_in counts depth containers
 * around it as well (1 for the value of a record's field).
 */
enum { JSON_BAD_UTF8 = -1, JSON_BAD_KEY = -2, JSON_BAD_EXT = -3,
    JSON_TOO_DEEP = -4 };
struct strbuf;
int json_emit(struct strbuf *buf, const msgpack_object *o);
int json_emit_in(struct strbuf *buf, const msgpack_object *o, int depth);
const char *json_emit_error(int code);
/*
 * Parse one JSON value from text[0..len) into *out, allocating in zone.
 * Returns 0; on error -1 with a message in err and the byte offset of the
 * problem in *errpos.  Trailing whitespace is allowed, anything else is not;
 * nor is nesting deeper than REC_MAX_DEPTH.
 */
int json_parse(const char *text, size_t len, msgpack_zone *zone,
    msgpack_object *out, char *err, size_t errsz, size_t *errpos);

#endif
