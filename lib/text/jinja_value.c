/*
 * jinja_value.c: the arena, and values as Python has them: truth,
 * equality, order, str(), repr() and json.dumps().
 */
#include "config.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/jinja_impl.h"
#include "text/tok_impl.h"

/* ------------------------------------------------------------------------ */
/* Arena */

struct jblock {
	struct jblock *next;
	size_t used, cap;
	max_align_t data[];
};

#define JBLOCK 65536

void *
ja_alloc(struct jarena *a, size_t n)
{
	struct jblock *b = a->blocks;

	n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	if (b == NULL || b->used + n > b->cap) {
		size_t cap = n > JBLOCK ? n : JBLOCK;
		b = xmalloc(sizeof(*b) + cap);
		b->used = 0;
		b->cap = cap;
		b->next = a->blocks;
		a->blocks = b;
	}
	void *p = (char *)b->data + b->used;
	b->used += n;
	memset(p, 0, n);
	return p;
}

char *
ja_strndup(struct jarena *a, const char *s, size_t n)
{
	char *p = ja_alloc(a, n + 1);
	if (n)
		memcpy(p, s, n);
	p[n] = 0;
	return p;
}

void
ja_free(struct jarena *a)
{
	struct jblock *b, *nb;

	for (b = a->blocks; b; b = nb) {
		nb = b->next;
		free(b);
	}
	a->blocks = NULL;
}

/* ------------------------------------------------------------------------ */
/* Making values */

struct jv jv_undef_v = { .t = JV_UNDEF };
struct jv jv_none_v = { .t = JV_NONE };
struct jv jv_true_v = { .t = JV_BOOL, .u.b = 1 };
struct jv jv_false_v = { .t = JV_BOOL, .u.b = 0 };

struct jv *
jv_new(struct jctx *c, enum jv_type t)
{
	struct jv *v = ja_alloc(&c->arena, sizeof(*v));
	v->t = t;
	return v;
}

struct jv *
jv_undefined_why(struct jctx *c, const char *why)
{
	struct jv *v = jv_new(c, JV_UNDEF);
	v->undef_name = why;
	return v;
}

struct jv *
jv_undefined(struct jctx *c, const char *name)
{
	size_t n = strlen(name) + 32;
	char *why = ja_alloc(&c->arena, n);
	snprintf(why, n, "'%s' is undefined", name);
	return jv_undefined_why(c, why);
}

struct jv *
jv_bool(int b)
{
	return b ? &jv_true_v : &jv_false_v;
}

struct jv *
jv_int(struct jctx *c, long long i)
{
	struct jv *v = jv_new(c, JV_INT);
	v->u.i = i;
	return v;
}

struct jv *
jv_float(struct jctx *c, double f)
{
	struct jv *v = jv_new(c, JV_FLOAT);
	v->u.f = f;
	return v;
}

struct jv *
jv_str(struct jctx *c, const char *s, size_t n)
{
	struct jv *v = jv_new(c, JV_STR);
	v->u.s.p = ja_strndup(&c->arena, s, n);
	v->u.s.n = n;
	return v;
}

struct jv *
jv_strz(struct jctx *c, const char *s)
{
	return jv_str(c, s, strlen(s));
}

struct jv *
jv_list(struct jctx *c)
{
	return jv_new(c, JV_LIST);
}

void
jv_push(struct jctx *c, struct jv *l, struct jv *x)
{
	if (l->u.l.n == l->u.l.cap) {
		size_t cap = l->u.l.cap ? 2 * l->u.l.cap : 8;
		struct jv **v = ja_alloc(&c->arena, cap * sizeof(*v));
		if (l->u.l.n)
			memcpy(v, l->u.l.v, l->u.l.n * sizeof(*v));
		l->u.l.v = v;
		l->u.l.cap = cap;
	}
	l->u.l.v[l->u.l.n++] = x;
}

struct jv *
jv_dict(struct jctx *c, enum jv_type t)
{
	return jv_new(c, t);
}

/* The index of key k in d, or -1. */
static ptrdiff_t
dict_find(const struct jv *d, const char *k, size_t kn)
{
	for (size_t i = 0; i < d->u.d.n; i++)
		if (strlen(d->u.d.k[i]) == kn && memcmp(d->u.d.k[i], k, kn) == 0)
			return (ptrdiff_t)i;
	return -1;
}

struct jv *
jv_dict_get(const struct jv *d, const char *k, size_t kn)
{
	ptrdiff_t i = dict_find(d, k, kn);

	return i < 0 ? NULL : d->u.d.v[i];
}

struct jv *
jv_dict_del(struct jv *d, const char *k, size_t kn)
{
	ptrdiff_t i = dict_find(d, k, kn);
	size_t after;
	struct jv *v;

	if (i < 0)
		return NULL;
	v = d->u.d.v[i];
	after = d->u.d.n - (size_t)i - 1;
	memmove(d->u.d.k + i, d->u.d.k + i + 1, after * sizeof(*d->u.d.k));
	memmove(d->u.d.v + i, d->u.d.v + i + 1, after * sizeof(*d->u.d.v));
	d->u.d.n--;
	return v;
}

void
jv_dict_set(struct jctx *c, struct jv *d, const char *k, size_t kn,
    struct jv *v)
{
	ptrdiff_t i = dict_find(d, k, kn);

	if (i >= 0) {
		d->u.d.v[i] = v;
		return;
	}
	if (d->u.d.n == d->u.d.cap) {
		size_t cap = d->u.d.cap ? 2 * d->u.d.cap : 8;
		const char **nk = ja_alloc(&c->arena, cap * sizeof(*nk));
		struct jv **nv = ja_alloc(&c->arena, cap * sizeof(*nv));
		if (d->u.d.n) {
			memcpy(nk, d->u.d.k, d->u.d.n * sizeof(*nk));
			memcpy(nv, d->u.d.v, d->u.d.n * sizeof(*nv));
		}
		d->u.d.k = nk;
		d->u.d.v = nv;
		d->u.d.cap = cap;
	}
	d->u.d.k[d->u.d.n] = ja_strndup(&c->arena, k, kn);
	d->u.d.v[d->u.d.n++] = v;
}

struct jv *
jv_func(struct jctx *c, jfunc fn, struct jv *self, const char *name)
{
	struct jv *v = jv_new(c, JV_FUNC);
	v->u.fn.fn = fn;
	v->u.fn.self = self;
	v->u.fn.name = name;
	return v;
}

struct jv *
jv_from_json(struct jctx *c, const json_t *j)
{
	struct jv *v;
	const char *k;
	json_t *x;
	size_t i;

	switch (json_typeof(j)) {
	case JSON_OBJECT:
		v = jv_dict(c, JV_DICT);
		json_object_foreach((json_t *)j, k, x)
			jv_dict_set(c, v, k, strlen(k), jv_from_json(c, x));
		return v;
	case JSON_ARRAY:
		v = jv_list(c);
		json_array_foreach(j, i, x)
			jv_push(c, v, jv_from_json(c, x));
		return v;
	case JSON_STRING:
		return jv_str(c, json_string_value(j), json_string_length(j));
	case JSON_INTEGER:
		return jv_int(c, json_integer_value(j));
	case JSON_REAL:
		return jv_float(c, json_real_value(j));
	case JSON_TRUE:
		return &jv_true_v;
	case JSON_FALSE:
		return &jv_false_v;
	default:
		return &jv_none_v;
	}
}

/* ------------------------------------------------------------------------ */
/* Truth, equality, order */

int
jv_truthy(const struct jv *v)
{
	switch (v->t) {
	case JV_UNDEF: case JV_NONE:
		return 0;
	case JV_BOOL:
		return v->u.b;
	case JV_INT:
		return v->u.i != 0;
	case JV_FLOAT:
		return v->u.f != 0;
	case JV_STR:
		return v->u.s.n != 0;
	case JV_LIST:
		return v->u.l.n != 0;
	case JV_DICT:
		return v->u.d.n != 0;
	default:
		return 1;
	}
}

static int
is_num(const struct jv *v)
{
	return v->t == JV_INT || v->t == JV_FLOAT || v->t == JV_BOOL;
}

static double
num(const struct jv *v)
{
	return v->t == JV_FLOAT ? v->u.f : v->t == JV_INT ? (double)v->u.i :
	    v->u.b;
}

int
jv_equal(const struct jv *a, const struct jv *b)
{
	if (is_num(a) && is_num(b)) {
		if (a->t != JV_FLOAT && b->t != JV_FLOAT)
			return (a->t == JV_INT ? a->u.i : a->u.b) ==
			    (b->t == JV_INT ? b->u.i : b->u.b);
		return num(a) == num(b);
	}
	if (a->t != b->t)
		return 0;
	switch (a->t) {
	case JV_UNDEF: case JV_NONE:
		return 1;
	case JV_STR:
		return a->u.s.n == b->u.s.n &&
		    memcmp(a->u.s.p, b->u.s.p, a->u.s.n) == 0;
	case JV_LIST:
		if (a->u.l.n != b->u.l.n)
			return 0;
		for (size_t i = 0; i < a->u.l.n; i++)
			if (!jv_equal(a->u.l.v[i], b->u.l.v[i]))
				return 0;
		return 1;
	case JV_DICT:
		if (a->u.d.n != b->u.d.n)
			return 0;
		for (size_t i = 0; i < a->u.d.n; i++) {
			struct jv *y = jv_dict_get(b, a->u.d.k[i],
			    strlen(a->u.d.k[i]));
			if (y == NULL || !jv_equal(a->u.d.v[i], y))
				return 0;
		}
		return 1;
	default:
		return a == b;
	}
}

int
jv_compare(struct jctx *c, const struct jv *a, const struct jv *b)
{
	if (is_num(a) && is_num(b)) {
		double x = num(a), y = num(b);
		if (a->t == JV_INT && b->t == JV_INT)
			return (a->u.i > b->u.i) - (a->u.i < b->u.i);
		return (x > y) - (x < y);
	}
	if (a->t == JV_STR && b->t == JV_STR) {
		size_t n = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
		int r = memcmp(a->u.s.p, b->u.s.p, n);
		if (r)
			return r;
		return (a->u.s.n > b->u.s.n) - (a->u.s.n < b->u.s.n);
	}
	if (a->t == JV_LIST && b->t == JV_LIST) {
		for (size_t i = 0; i < a->u.l.n && i < b->u.l.n; i++) {
			int r = jv_compare(c, a->u.l.v[i], b->u.l.v[i]);
			if (r)
				return r;
		}
		return (a->u.l.n > b->u.l.n) - (a->u.l.n < b->u.l.n);
	}
	jfail(c, NULL, "'<' not supported between %s and %s",
	    jv_type_name(a), jv_type_name(b));
}

const char *
jv_type_name(const struct jv *v)
{
	static const char *const names[] = { "undefined", "none", "bool",
	    "int", "float", "str", "list", "dict", "namespace", "macro",
	    "function" };
	if (v->t == JV_LIST && v->is_tuple)
		return "tuple";
	return names[v->t];
}

/* ------------------------------------------------------------------------ */
/* str(), repr() */

/* Python's repr of a float: the shortest digits that read back,
 * positional for exponents -4..15 (with ".0" on integral values),
 * else d.ddde+XX. */
static void
float_to(struct strbuf *b, double f)
{
	char s[64], dig[32];
	int p, e, nd = 0;

	if (isnan(f)) {
		sb_adds(b, "nan");
		return;
	}
	if (isinf(f)) {
		sb_adds(b, f < 0 ? "-inf" : "inf");
		return;
	}
	for (p = 0; p < 17; p++) {
		snprintf(s, sizeof(s), "%.*e", p, f);
		if (strtod(s, NULL) == f)
			break;
	}
	/* s is [-]d[.ddd]e[+-]XX: its digits and exponent */
	const char *q = s;
	if (*q == '-') {
		sb_addc(b, '-');
		q++;
	}
	for (; *q && *q != 'e'; q++)
		if (*q != '.')
			dig[nd++] = *q;
	dig[nd] = 0;
	e = atoi(q + 1);
	while (nd > 1 && dig[nd - 1] == '0')
		dig[--nd] = 0;
	if (e >= -4 && e < 16) {
		if (e < 0) {
			sb_adds(b, "0.");
			for (int i = -1; i > e; i--)
				sb_addc(b, '0');
			sb_adds(b, dig);
		} else if (nd <= e + 1) {
			sb_adds(b, dig);
			for (int i = nd; i <= e; i++)
				sb_addc(b, '0');
			sb_adds(b, ".0");
		} else {
			sb_add(b, dig, e + 1);
			sb_addc(b, '.');
			sb_adds(b, dig + e + 1);
		}
		return;
	}
	sb_addc(b, dig[0]);
	if (nd > 1) {
		sb_addc(b, '.');
		sb_adds(b, dig + 1);
	}
	sb_printf(b, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
}

void
jv_repr_to(struct strbuf *b, const struct jv *v)
{
	switch (v->t) {
	case JV_STR: {
		/* Python picks ' unless the string has ' and no ". */
		int q = memchr(v->u.s.p, '\'', v->u.s.n) &&
		    !memchr(v->u.s.p, '"', v->u.s.n) ? '"' : '\'';
		sb_addc(b, q);
		for (size_t i = 0; i < v->u.s.n; i++) {
			unsigned char ch = v->u.s.p[i];
			if (ch == q || ch == '\\') {
				sb_addc(b, '\\');
				sb_addc(b, ch);
			} else if (ch == '\n')
				sb_adds(b, "\\n");
			else if (ch == '\t')
				sb_adds(b, "\\t");
			else if (ch == '\r')
				sb_adds(b, "\\r");
			else if (ch < 0x20 || ch == 0x7f)
				sb_printf(b, "\\x%02x", ch);
			else
				sb_addc(b, ch);
		}
		sb_addc(b, q);
		break;
	}
	case JV_LIST:
		sb_addc(b, v->is_tuple ? '(' : '[');
		for (size_t i = 0; i < v->u.l.n; i++) {
			if (i)
				sb_adds(b, ", ");
			jv_repr_to(b, v->u.l.v[i]);
		}
		if (v->is_tuple && v->u.l.n == 1)
			sb_addc(b, ',');
		sb_addc(b, v->is_tuple ? ')' : ']');
		break;
	case JV_DICT:
		sb_addc(b, '{');
		for (size_t i = 0; i < v->u.d.n; i++) {
			struct jv k = { .t = JV_STR };
			k.u.s.p = v->u.d.k[i];
			k.u.s.n = strlen(v->u.d.k[i]);
			if (i)
				sb_adds(b, ", ");
			jv_repr_to(b, &k);
			sb_adds(b, ": ");
			jv_repr_to(b, v->u.d.v[i]);
		}
		sb_addc(b, '}');
		break;
	default:
		jv_str_to(b, v);
	}
}

void
jv_str_to(struct strbuf *b, const struct jv *v)
{
	switch (v->t) {
	case JV_UNDEF:
		break;
	case JV_NONE:
		sb_adds(b, "None");
		break;
	case JV_BOOL:
		sb_adds(b, v->u.b ? "True" : "False");
		break;
	case JV_INT:
		sb_printf(b, "%lld", v->u.i);
		break;
	case JV_FLOAT:
		float_to(b, v->u.f);
		break;
	case JV_STR:
		sb_add(b, v->u.s.p, v->u.s.n);
		break;
	case JV_LIST: case JV_DICT:
		jv_repr_to(b, v);
		break;
	case JV_NS:
		sb_adds(b, "<Namespace>");
		break;
	case JV_MACRO:
		sb_adds(b, "<Macro>");
		break;
	case JV_FUNC:
		sb_printf(b, "<built-in function %s>", v->u.fn.name);
		break;
	}
}

struct jv *
jv_to_str(struct jctx *c, struct jv *v)
{
	struct strbuf b;
	struct jv *r;

	if (v->t == JV_STR)
		return v;
	sb_init(&b);
	sb_adds(&b, "");
	jv_str_to(&b, v);
	r = jv_str(c, b.data, b.len);
	sb_free(&b);
	return r;
}

size_t
jv_strlen(const struct jv *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->u.s.n; i++)
		if (((unsigned char)s->u.s.p[i] & 0xc0) != 0x80)
			n++;
	return n;
}

/* ------------------------------------------------------------------------ */
/* json.dumps */

static void
json_string_to(struct strbuf *b, const char *s, size_t n, int ascii)
{
	sb_addc(b, '"');
	for (size_t i = 0; i < n;) {
		unsigned char ch = s[i];
		size_t cl = 1;
		switch (ch) {
		case '"': sb_adds(b, "\\\""); break;
		case '\\': sb_adds(b, "\\\\"); break;
		case '\n': sb_adds(b, "\\n"); break;
		case '\r': sb_adds(b, "\\r"); break;
		case '\t': sb_adds(b, "\\t"); break;
		case '\b': sb_adds(b, "\\b"); break;
		case '\f': sb_adds(b, "\\f"); break;
		default:
			if (ch < 0x20)
				sb_printf(b, "\\u%04x", ch);
			else if (ch < 0x80 || !ascii) {
				sb_addc(b, ch);
			} else {
				int32_t cp = tu8_get((const unsigned char *)s +
				    i, n - i, &cl);
				if (cp >= 0x10000) {
					cp -= 0x10000;
					sb_printf(b, "\\u%04x\\u%04x",
					    0xd800 + (cp >> 10),
					    0xdc00 + (cp & 0x3ff));
				} else
					sb_printf(b, "\\u%04x", cp);
			}
		}
		i += cl;
	}
	sb_addc(b, '"');
}

static void
json_newline(struct strbuf *b, int indent, int depth)
{
	sb_addc(b, '\n');
	for (int i = 0; i < indent * depth; i++)
		sb_addc(b, ' ');
}

void
jv_json_to(struct jctx *c, struct strbuf *b, const struct jv *v,
    const struct jjson_opts *o, int depth)
{
	int indent = o->indent, ascii = o->ascii, sort = o->sort;
	const char *sep = o->item_sep ? o->item_sep : indent >= 0 ? "," : ", ";
	const char *ksep = o->key_sep ? o->key_sep : ": ";

	if (depth > 64)
		jfail(c, NULL, "tojson: nested too deep");
	switch (v->t) {
	case JV_UNDEF: case JV_NONE:
		sb_adds(b, "null");
		break;
	case JV_BOOL:
		sb_adds(b, v->u.b ? "true" : "false");
		break;
	case JV_INT: case JV_FLOAT:
		if (v->t == JV_FLOAT && (isnan(v->u.f) || isinf(v->u.f)))
			sb_adds(b, isnan(v->u.f) ? "NaN" : v->u.f < 0 ?
			    "-Infinity" : "Infinity");
		else
			jv_str_to(b, v);
		break;
	case JV_STR:
		json_string_to(b, v->u.s.p, v->u.s.n, ascii);
		break;
	case JV_LIST:
		sb_addc(b, '[');
		for (size_t i = 0; i < v->u.l.n; i++) {
			if (i)
				sb_adds(b, sep);
			if (indent >= 0)
				json_newline(b, indent, depth + 1);
			jv_json_to(c, b, v->u.l.v[i], o, depth + 1);
		}
		if (indent >= 0 && v->u.l.n)
			json_newline(b, indent, depth);
		sb_addc(b, ']');
		break;
	case JV_DICT: case JV_NS: {
		size_t n = v->u.d.n, *ord = xcalloc(n + 1, sizeof(*ord));
		for (size_t i = 0; i < n; i++)
			ord[i] = i;
		if (sort)	/* insertion sort: chat-sized dicts */
			for (size_t i = 1; i < n; i++)
				for (size_t j = i; j > 0 && strcmp(
				    v->u.d.k[ord[j - 1]], v->u.d.k[ord[j]]) > 0;
				    j--) {
					size_t t = ord[j];
					ord[j] = ord[j - 1];
					ord[j - 1] = t;
				}
		sb_addc(b, '{');
		for (size_t i = 0; i < n; i++) {
			const char *k = v->u.d.k[ord[i]];
			if (i)
				sb_adds(b, sep);
			if (indent >= 0)
				json_newline(b, indent, depth + 1);
			json_string_to(b, k, strlen(k), ascii);
			sb_adds(b, ksep);
			jv_json_to(c, b, v->u.d.v[ord[i]], o, depth + 1);
		}
		free(ord);
		if (indent >= 0 && n)
			json_newline(b, indent, depth);
		sb_addc(b, '}');
		break;
	}
	default:
		jfail(c, NULL, "tojson: a %s is not JSON", jv_type_name(v));
	}
}

/* ------------------------------------------------------------------------ */
/* Iteration */

struct jv *
jv_iterate(struct jctx *c, struct jv *v)
{
	struct jv *l;

	switch (v->t) {
	case JV_LIST:
		return v;
	case JV_UNDEF:
		return jv_list(c);
	case JV_DICT:
		l = jv_list(c);
		for (size_t i = 0; i < v->u.d.n; i++)
			jv_push(c, l, jv_strz(c, v->u.d.k[i]));
		return l;
	case JV_STR:
		l = jv_list(c);
		for (size_t i = 0; i < v->u.s.n;) {
			size_t cl = tu8_len((const unsigned char *)v->u.s.p + i,
			    v->u.s.n - i);
			jv_push(c, l, jv_str(c, v->u.s.p + i, cl));
			i += cl;
		}
		return l;
	default:
		jfail(c, NULL, "'%s' object is not iterable", jv_type_name(v));
	}
}
