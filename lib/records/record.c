/*
 * record.c: a record's fields, typed getters and pass-through setters.
 *
 * A record is the array of key/value pairs of one msgpack map.  Values point
 * into memory owned by the record's zone: the unpacker's buffer for a record
 * read from msgpack, the parser's output for one read from JSON.  A setter
 * replaces a value in place, or appends a field, so the order and bytes of
 * every field it does not touch stay as they came in.
 */
#include "config.h"

#include <err.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "records/record.h"
#include "util/util.h"

/* ------------------------------------------------------------------------ */
/* Lifetime */

void
rec_init(struct rec *r, const char *src, uint64_t recno)
{
	r->kv = NULL;
	r->n = r->cap = 0;
	r->zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	if (r->zone == NULL)
		err(EXIT_DATA, "out of memory");
	r->src = src;
	r->recno = recno;
	rec_touch(r);
}

void
rec_free(struct rec *r)
{
	if (r->zone != NULL)
		msgpack_zone_free(r->zone);
	r->zone = NULL;
	r->kv = NULL;
	r->n = r->cap = 0;
}

void *
rec_zalloc(msgpack_zone *z, size_t n)
{
	void *p = msgpack_zone_malloc(z, n ? n : 1);
	if (p == NULL)
		err(EXIT_DATA, "out of memory");
	return p;
}

/* Bytes need no alignment; empty strings may come with no pointer. */
static const char *
bytes_copy(msgpack_zone *z, const char *p, size_t n)
{
	char *q = msgpack_zone_malloc_no_align(z, n ? n : 1);
	if (q == NULL)
		err(EXIT_DATA, "out of memory");
	if (n)
		memcpy(q, p, n);
	return q;
}

void
rec_obj_copy(msgpack_zone *z, msgpack_object *dst, const msgpack_object *src)
{
	*dst = *src;
	switch (src->type) {
	case MSGPACK_OBJECT_STR:
	case MSGPACK_OBJECT_BIN:
		dst->via.str.ptr = bytes_copy(z, src->via.str.ptr,
		    src->via.str.size);
		break;
	case MSGPACK_OBJECT_EXT:
		dst->via.ext.ptr = bytes_copy(z, src->via.ext.ptr,
		    src->via.ext.size);
		break;
	case MSGPACK_OBJECT_ARRAY: {
		uint32_t n = src->via.array.size;
		msgpack_object *a = rec_zalloc(z, n * sizeof(*a));
		for (uint32_t i = 0; i < n; i++)
			rec_obj_copy(z, &a[i], &src->via.array.ptr[i]);
		dst->via.array.ptr = a;
		break;
	}
	case MSGPACK_OBJECT_MAP: {
		uint32_t n = src->via.map.size;
		msgpack_object_kv *kv = rec_zalloc(z, n * sizeof(*kv));
		for (uint32_t i = 0; i < n; i++) {
			rec_obj_copy(z, &kv[i].key, &src->via.map.ptr[i].key);
			rec_obj_copy(z, &kv[i].val, &src->via.map.ptr[i].val);
		}
		dst->via.map.ptr = kv;
		break;
	}
	default:
		break;
	}
}

void
rec_copy(struct rec *dst, const struct rec *src)
{
	rec_init(dst, src->src, src->recno);
	dst->kv = rec_zalloc(dst->zone, src->n * sizeof(*dst->kv));
	dst->n = dst->cap = src->n;
	for (uint32_t i = 0; i < src->n; i++) {
		rec_obj_copy(dst->zone, &dst->kv[i].key, &src->kv[i].key);
		rec_obj_copy(dst->zone, &dst->kv[i].val, &src->kv[i].val);
	}
}

msgpack_object
rec_as_object(const struct rec *r)
{
	msgpack_object o;
	o.type = MSGPACK_OBJECT_MAP;
	o.via.map.size = r->n;
	o.via.map.ptr = r->kv;
	return o;
}

/* ------------------------------------------------------------------------ */
/* Lookup */

static int
key_is(const msgpack_object *k, const char *key, size_t len)
{
	return k->type == MSGPACK_OBJECT_STR && k->via.str.size == len &&
	    (len == 0 || memcmp(k->via.str.ptr, key, len) == 0);
}

static int
find(const msgpack_object_kv *kv, uint32_t n, const char *key, size_t len)
{
	for (uint32_t i = 0; i < n; i++)
		if (key_is(&kv[i].key, key, len))
			return (int)i;
	return -1;
}

const msgpack_object *
rec_get(const struct rec *r, const char *key)
{
	int i = find(r->kv, r->n, key, strlen(key));
	return i < 0 ? NULL : &r->kv[i].val;
}

int
rec_path_ok(const char *path)
{
	size_t n = strlen(path);

	return n > 0 && path[0] != '.' && path[n - 1] != '.' &&
	    strstr(path, "..") == NULL;
}

void
rec_path_option(const char *opt, const char *path)
{
	if (!rec_path_ok(path))
		pp_usage("%s: malformed field name \"%s\"", opt, path);
}

const msgpack_object *
rec_get_path(const struct rec *r, const char *path)
{
	const msgpack_object_kv *kv = r->kv;
	uint32_t n = r->n;
	for (;;) {
		const char *dot = strchr(path, '.');
		size_t len = dot ? (size_t)(dot - path) : strlen(path);
		int i = find(kv, n, path, len);
		if (i < 0)
			return NULL;
		const msgpack_object *v = &kv[i].val;
		if (dot == NULL)
			return v;
		if (v->type != MSGPACK_OBJECT_MAP)
			return NULL;
		kv = v->via.map.ptr;
		n = v->via.map.size;
		path = dot + 1;
	}
}

/* ------------------------------------------------------------------------ */
/* Errors */

const char *
rec_type_name(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return "nil";
	case MSGPACK_OBJECT_BOOLEAN:
		return "boolean";
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return "integer";
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return "float";
	case MSGPACK_OBJECT_STR:
		return "string";
	case MSGPACK_OBJECT_ARRAY:
		return "array";
	case MSGPACK_OBJECT_MAP:
		return "map";
	case MSGPACK_OBJECT_BIN:
		return "binary";
	case MSGPACK_OBJECT_EXT:
		return "ext";
	}
	return "unknown";
}

static void
default_error(const char *msg)
{
	warnx("%s", msg);
	exit(EXIT_DATA);
}

void (*rec_error_hook)(const char *msg) = default_error;

void
rec_fail(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rec_error_hook(msg);
	exit(EXIT_DATA);	/* a hook must not return */
}

void
rec_die(const struct rec *r, const char *key, const char *fmt, ...)
{
	struct strbuf b;
	va_list ap;

	sb_init(&b);
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	sb_reserve(&b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b.data, (size_t)n + 1, fmt, ap);
	va_end(ap);
	char msg[1024];
	if (key != NULL)
		snprintf(msg, sizeof(msg), "%s: record %llu: field \"%s\": %s",
		    r->src, (unsigned long long)r->recno, key, b.data);
	else
		snprintf(msg, sizeof(msg), "%s: record %llu: %s", r->src,
		    (unsigned long long)r->recno, b.data);
	sb_free(&b);
	rec_fail("%s", msg);
}

static const msgpack_object *
need(const struct rec *r, const char *key)
{
	const msgpack_object *v = rec_get(r, key);
	if (v == NULL)
		rec_die(r, key, "missing");
	return v;
}

static void __attribute__((noreturn))
wrong_type(const struct rec *r, const char *key, const char *want,
    const msgpack_object *got)
{
	rec_die(r, key, "expected %s, got %s", want, rec_type_name(got));
}

/* ------------------------------------------------------------------------ */
/* Typed getters */

static const char *
as_str(const struct rec *r, const char *key, const msgpack_object *v,
    size_t *len)
{
	if (v->type != MSGPACK_OBJECT_STR)
		wrong_type(r, key, "string", v);
	if (len != NULL)
		*len = v->via.str.size;
	return v->via.str.ptr;
}

static int
obj_int(const msgpack_object *v, int64_t *out)
{
	if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*out = v->via.i64;
		return 1;
	}
	if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
	    v->via.u64 <= (uint64_t)INT64_MAX) {
		*out = (int64_t)v->via.u64;
		return 1;
	}
	return 0;
}

int
rec_obj_num(const msgpack_object *v, double *out)
{
	switch (v->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		*out = (double)v->via.u64;
		return 1;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		*out = (double)v->via.i64;
		return 1;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		*out = v->via.f64;
		return 1;
	default:
		return 0;
	}
}

static int64_t
as_int(const struct rec *r, const char *key, const msgpack_object *v)
{
	int64_t x;
	if (!obj_int(v, &x)) {
		if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			rec_die(r, key, "integer %llu is out of range",
			    (unsigned long long)v->via.u64);
		wrong_type(r, key, "integer", v);
	}
	return x;
}

static double
as_num(const struct rec *r, const char *key, const msgpack_object *v)
{
	double x;
	if (!rec_obj_num(v, &x))
		wrong_type(r, key, "number", v);
	return x;
}

static int
as_bool(const struct rec *r, const char *key, const msgpack_object *v)
{
	if (v->type != MSGPACK_OBJECT_BOOLEAN)
		wrong_type(r, key, "boolean", v);
	return v->via.boolean;
}

const char *
rec_need_str(const struct rec *r, const char *key, size_t *len)
{
	return as_str(r, key, need(r, key), len);
}

int64_t
rec_need_int(const struct rec *r, const char *key)
{
	return as_int(r, key, need(r, key));
}

double
rec_need_num(const struct rec *r, const char *key)
{
	return as_num(r, key, need(r, key));
}

int
rec_need_bool(const struct rec *r, const char *key)
{
	return as_bool(r, key, need(r, key));
}

const msgpack_object_map *
rec_need_map(const struct rec *r, const char *key)
{
	const msgpack_object *v = need(r, key);
	if (v->type != MSGPACK_OBJECT_MAP)
		wrong_type(r, key, "map", v);
	return &v->via.map;
}

const char *
rec_opt_str(const struct rec *r, const char *key, size_t *len,
    const char *def)
{
	const msgpack_object *v = rec_get(r, key);
	if (v == NULL) {
		if (len != NULL)
			*len = def ? strlen(def) : 0;
		return def;
	}
	return as_str(r, key, v, len);
}

int64_t
rec_opt_int(const struct rec *r, const char *key, int64_t def)
{
	const msgpack_object *v = rec_get(r, key);
	return v == NULL ? def : as_int(r, key, v);
}

double
rec_opt_num(const struct rec *r, const char *key, double def)
{
	const msgpack_object *v = rec_get(r, key);
	return v == NULL ? def : as_num(r, key, v);
}

int
rec_opt_bool(const struct rec *r, const char *key, int def)
{
	const msgpack_object *v = rec_get(r, key);
	return v == NULL ? def : as_bool(r, key, v);
}

static const msgpack_object_array *
need_array(const struct rec *r, const char *key)
{
	const msgpack_object *v = need(r, key);
	if (v->type != MSGPACK_OBJECT_ARRAY)
		wrong_type(r, key, "array", v);
	return &v->via.array;
}

size_t
rec_need_int_array(const struct rec *r, const char *key, int32_t **out)
{
	const msgpack_object_array *a = need_array(r, key);
	int32_t *v = xmalloc(a->size * sizeof(*v));
	for (uint32_t i = 0; i < a->size; i++) {
		int64_t x;
		if (!obj_int(&a->ptr[i], &x) || x < INT32_MIN || x > INT32_MAX) {
			free(v);
			rec_die(r, key, "element %u: expected 32-bit integer, got %s",
			    i, rec_type_name(&a->ptr[i]));
		}
		v[i] = (int32_t)x;
	}
	*out = v;
	return a->size;
}

size_t
rec_need_float_array(const struct rec *r, const char *key, float **out)
{
	const msgpack_object_array *a = need_array(r, key);
	float *v = xmalloc(a->size * sizeof(*v));
	for (uint32_t i = 0; i < a->size; i++) {
		double x;
		if (!rec_obj_num(&a->ptr[i], &x)) {
			free(v);
			rec_die(r, key, "element %u: expected number, got %s",
			    i, rec_type_name(&a->ptr[i]));
		}
		v[i] = (float)x;
	}
	*out = v;
	return a->size;
}

void
rec_need_sub(const struct rec *r, const char *key, struct rec *sub)
{
	const msgpack_object_map *m = rec_need_map(r, key);
	rec_init(sub, r->src, r->recno);
	sub->kv = rec_zalloc(sub->zone, m->size * sizeof(*sub->kv));
	sub->n = sub->cap = m->size;
	for (uint32_t i = 0; i < m->size; i++) {
		if (m->ptr[i].key.type != MSGPACK_OBJECT_STR)
			rec_die(r, key, "key %u is not a string (got %s)", i,
			    rec_type_name(&m->ptr[i].key));
		rec_obj_copy(sub->zone, &sub->kv[i].key, &m->ptr[i].key);
		rec_obj_copy(sub->zone, &sub->kv[i].val, &m->ptr[i].val);
	}
}

/* ------------------------------------------------------------------------ */
/* Setters */

/* The value slot for key: the existing one, or a new field at the end. */
static msgpack_object *
slot(struct rec *r, const char *key)
{
	size_t len = strlen(key);
	int i = find(r->kv, r->n, key, len);
	rec_touch(r);
	if (i >= 0)
		return &r->kv[i].val;
	if (r->n >= r->cap) {
		/*
		 * Grow, or take a copy of an array borrowed from the reader
		 * (cap 0).  The old array stays in the zone; records are small.
		 */
		uint32_t cap = r->n < 4 ? 8 : 2 * r->n;
		msgpack_object_kv *kv = rec_zalloc(r->zone, cap * sizeof(*kv));
		if (r->n)
			memcpy(kv, r->kv, r->n * sizeof(*kv));
		r->kv = kv;
		r->cap = cap;
	}
	msgpack_object_kv *f = &r->kv[r->n++];
	char *k = rec_zalloc(r->zone, len);
	memcpy(k, key, len);
	f->key.type = MSGPACK_OBJECT_STR;
	f->key.via.str.ptr = k;
	f->key.via.str.size = (uint32_t)len;
	return &f->val;
}

void
rec_set_nil(struct rec *r, const char *key)
{
	slot(r, key)->type = MSGPACK_OBJECT_NIL;
}

void
rec_set_bool(struct rec *r, const char *key, int v)
{
	msgpack_object *o = slot(r, key);
	o->type = MSGPACK_OBJECT_BOOLEAN;
	o->via.boolean = v != 0;
}

void
rec_set_int(struct rec *r, const char *key, int64_t v)
{
	msgpack_object *o = slot(r, key);
	if (v >= 0) {
		o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
		o->via.u64 = (uint64_t)v;
	} else {
		o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
		o->via.i64 = v;
	}
}

void
rec_set_uint(struct rec *r, const char *key, uint64_t v)
{
	msgpack_object *o = slot(r, key);
	o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
	o->via.u64 = v;
}

void
rec_set_num(struct rec *r, const char *key, double v)
{
	msgpack_object *o = slot(r, key);
	o->type = MSGPACK_OBJECT_FLOAT64;
	o->via.f64 = v;
}

void
rec_set_strn(struct rec *r, const char *key, const char *s, size_t len)
{
	char *p = rec_zalloc(r->zone, len);
	memcpy(p, s, len);
	msgpack_object *o = slot(r, key);
	o->type = MSGPACK_OBJECT_STR;
	o->via.str.ptr = p;
	o->via.str.size = (uint32_t)len;
}

void
rec_set_str(struct rec *r, const char *key, const char *s)
{
	rec_set_strn(r, key, s, strlen(s));
}

void
rec_set_int_array(struct rec *r, const char *key, const int32_t *v, size_t n)
{
	msgpack_object *a = rec_zalloc(r->zone, n * sizeof(*a));
	for (size_t i = 0; i < n; i++) {
		if (v[i] >= 0) {
			a[i].type = MSGPACK_OBJECT_POSITIVE_INTEGER;
			a[i].via.u64 = (uint64_t)v[i];
		} else {
			a[i].type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
			a[i].via.i64 = v[i];
		}
	}
	msgpack_object *o = slot(r, key);
	o->type = MSGPACK_OBJECT_ARRAY;
	o->via.array.ptr = a;
	o->via.array.size = (uint32_t)n;
}

void
rec_set_float_array(struct rec *r, const char *key, const float *v, size_t n)
{
	msgpack_object *a = rec_zalloc(r->zone, n * sizeof(*a));
	for (size_t i = 0; i < n; i++) {
		a[i].type = MSGPACK_OBJECT_FLOAT32;
		a[i].via.f64 = v[i];
	}
	msgpack_object *o = slot(r, key);
	o->type = MSGPACK_OBJECT_ARRAY;
	o->via.array.ptr = a;
	o->via.array.size = (uint32_t)n;
}

void
rec_set_obj(struct rec *r, const char *key, const msgpack_object *v)
{
	msgpack_object copy;
	rec_obj_copy(r->zone, &copy, v);
	*slot(r, key) = copy;
}

void
rec_set_sub(struct rec *r, const char *key, const struct rec *sub)
{
	msgpack_object m = rec_as_object(sub);
	rec_set_obj(r, key, &m);
}

int
rec_del(struct rec *r, const char *key)
{
	int i = find(r->kv, r->n, key, strlen(key));
	if (i < 0)
		return 0;
	rec_touch(r);
	if (r->cap == 0) {
		/* A borrowed array: take a copy before changing it. */
		msgpack_object_kv *kv = rec_zalloc(r->zone, r->n * sizeof(*kv));
		memcpy(kv, r->kv, r->n * sizeof(*kv));
		r->kv = kv;
		r->cap = r->n;
	}
	memmove(&r->kv[i], &r->kv[i + 1], (r->n - (uint32_t)i - 1) *
	    sizeof(*r->kv));
	r->n--;
	return 1;
}
