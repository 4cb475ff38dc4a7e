/*
 * json.c: JSON text to msgpack objects and back, for JSON Lines records.
 *
 * Why not jansson here: records must round-trip msgpack -> JSON -> msgpack
 * without loss, and jansson cannot hold integers above INT64_MAX, nor print
 * a float32 as the shortest decimal that reads back to the same float32, nor
 * keep binary strings.  So the record codec maps JSON text straight to
 * msgpack objects in a zone (no intermediate tree) and back.  jansson stays
 * the library for JSON documents (config.json, tokenizer.json).
 *
 * Mapping: null, true/false, strings, arrays and objects as themselves;
 * integers without fraction or exponent to msgpack integers when they fit
 * the 64-bit signed or unsigned range; every other number to float64;
 * NaN/Infinity/-Infinity as Python's json module writes them;
 * {"$bin": "<base64>"} to a bin value.  float32 is written as its shortest
 * round-tripping decimal and reads back as float64.
 */
#include "config.h"

#include <err.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "records/record.h"
#include "util/util.h"

/* ------------------------------------------------------------------------ */
/* UTF-8 and base64 */

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && s[1] < 0xa0)
			return 0;	/* overlong */
		if (c == 0xed && s[1] >= 0xa0)
			return 0;	/* surrogate */
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
		    (s[3] & 0xc0) != 0x80)
			return 0;
		if (c == 0xf0 && s[1] < 0x90)
			return 0;	/* overlong */
		if (c == 0xf4 && s[1] >= 0x90)
			return 0;	/* above U+10FFFF */
		return 4;
	}
	return 0;
}

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void
b64_encode(struct strbuf *b, const unsigned char *p, size_t n)
{
	sb_reserve(b, (n + 2) / 3 * 4);
	char *o = b->data + b->len;
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		unsigned v = p[i] << 16 | p[i + 1] << 8 | p[i + 2];
		*o++ = b64chars[v >> 18];
		*o++ = b64chars[v >> 12 & 63];
		*o++ = b64chars[v >> 6 & 63];
		*o++ = b64chars[v & 63];
	}
	if (i < n) {
		unsigned v = p[i] << 16 | (i + 1 < n ? p[i + 1] << 8 : 0);
		*o++ = b64chars[v >> 18];
		*o++ = b64chars[v >> 12 & 63];
		*o++ = i + 1 < n ? b64chars[v >> 6 & 63] : '=';
		*o++ = '=';
	}
	b->len = (size_t)(o - b->data);
	b->data[b->len] = 0;
}

static int
b64_value(int c)
{
	const char *p = c ? strchr(b64chars, c) : NULL;
	return p ? (int)(p - b64chars) : -1;
}

/* Decode base64 text into out (room for n/4*3 bytes); -1 when invalid. */
static long
b64_decode(const char *s, size_t n, unsigned char *out)
{
	if (n % 4 != 0)
		return -1;
	long len = 0;
	for (size_t i = 0; i < n; i += 4) {
		int v[4], pad = 0;
		for (int j = 0; j < 4; j++) {
			if (s[i + j] == '=' && i + 4 == n && j >= 2) {
				v[j] = 0;
				pad++;
			} else if (pad || (v[j] = b64_value(s[i + j])) < 0)
				return -1;
		}
		unsigned x = v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3];
		out[len++] = x >> 16;
		if (pad < 2)
			out[len++] = x >> 8 & 255;
		if (pad < 1)
			out[len++] = x & 255;
	}
	return len;
}

/* ------------------------------------------------------------------------ */
/* Emitting */

#define STR_(x) #x
#define STR(x) STR_(x)
#define TOO_DEEP "nesting deeper than " STR(REC_MAX_DEPTH) " levels"

static void
emit_string(struct strbuf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	sb_reserve(b, n + 2);
	b->data[b->len++] = '"';
	if (n == 0) {
		sb_addc(b, '"');
		return;
	}
	size_t run = 0;	/* bytes copied as they are, pending */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		sb_add(b, s + run, i - run);
		run = i + 1;
		switch (c) {
		case '"': sb_add(b, "\\\"", 2); break;
		case '\\': sb_add(b, "\\\\", 2); break;
		case '\n': sb_add(b, "\\n", 2); break;
		case '\t': sb_add(b, "\\t", 2); break;
		case '\r': sb_add(b, "\\r", 2); break;
		case '\b': sb_add(b, "\\b", 2); break;
		case '\f': sb_add(b, "\\f", 2); break;
		default: {
			char u[6] = { '\\', 'u', '0', '0', hex[c >> 4],
			    hex[c & 15] };
			sb_add(b, u, 6);
		}
		}
	}
	sb_add(b, s + run, n - run);
	sb_addc(b, '"');
}

static int
valid_utf8(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	if (n == 0)
		return 1;	/* msgpack-c gives empty strings a NULL pointer */
	while (i < n) {
		/* Skip ASCII eight bytes at a time: most text is ASCII. */
		while (i + 8 <= n) {
			uint64_t w;
			memcpy(&w, p + i, 8);
			if (w & 0x8080808080808080ull)
				break;
			i += 8;
		}
		if (i >= n)
			break;
		size_t k = utf8_seq(p + i, n - i);
		if (k == 0)
			return 0;
		i += k;
	}
	return 1;
}

static void
emit_uint(struct strbuf *b, uint64_t v)
{
	char tmp[24], *p = tmp + sizeof(tmp);
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	sb_add(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

/*
 * Floats are written as the shortest decimal that reads back to the same
 * value (at float32 precision for a float32), in one notation for both
 * widths: fixed for magnitudes in [1e-4, 1e15), exponent otherwise.  So a
 * float32 written, read back as float64 and written again keeps its text.
 *
 * Fixed notation: the fewest digits r * 10^-k (k may be negative) that
 * read back as v.  With r below 2^53 and |k| <= 22, r and 10^|k| are exact
 * doubles, so r / 10^k (or r * 10^-k, an exact integer here) is the
 * correctly rounded value of the decimal: the same test strtod makes.
 * float32 is checked with strtof, which rounds the decimal once, as a
 * reader would.  Returns 0 when v is outside what this handles.
 */
static int
emit_float_fixed(struct strbuf *b, double v, int single)
{
	static const double p10[] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
	    1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17 };
	double a = fabs(v);
	if (!(a >= 1e-4 && a < 1e15))
		return 0;
	/* Start at one significant digit. */
	for (int k = -(int)floor(log10(a)); k < 18; k++) {
		double m = k >= 0 ? nearbyint(a * p10[k]) :
		    nearbyint(a / p10[-k]);
		if (m >= 9007199254740992.0)	/* 2^53 */
			return 0;
		if (m == 0)
			continue;
		uint64_t r = (uint64_t)m;
		char digits[24], *d = digits + sizeof(digits);
		do {
			*--d = (char)('0' + r % 10);
			r /= 10;
		} while (r);
		int nd = (int)(digits + sizeof(digits) - d);
		char text[64], *t = text;
		if (v < 0)
			*t++ = '-';
		if (k < 0) {
			memcpy(t, d, (size_t)nd);
			t += nd;
			for (int z = 0; z < -k; z++)
				*t++ = '0';
			*t++ = '.';
			*t++ = '0';
		} else if (nd <= k) {
			*t++ = '0';
			*t++ = '.';
			for (int z = 0; z < k - nd; z++)
				*t++ = '0';
			memcpy(t, d, (size_t)nd);
			t += nd;
		} else {
			memcpy(t, d, (size_t)(nd - k));
			t += nd - k;
			*t++ = '.';
			if (k == 0)
				*t++ = '0';
			memcpy(t, d + nd - k, (size_t)k);
			t += k;
		}
		*t = 0;
		int same = single ? strtof(text, NULL) == (float)v :
		    k >= 0 ? m / p10[k] == a : m * p10[-k] == a;
		if (same) {
			sb_add(b, text, (size_t)(t - text));
			return 1;
		}
	}
	return 0;
}

static void
emit_float(struct strbuf *b, double v, int single)
{
	char tmp[40];
	if (isnan(v)) {
		sb_adds(b, "NaN");
		return;
	}
	if (isinf(v)) {
		sb_adds(b, v < 0 ? "-Infinity" : "Infinity");
		return;
	}
	if (v == 0) {
		sb_adds(b, signbit(v) ? "-0.0" : "0.0");
		return;
	}
	if (emit_float_fixed(b, v, single))
		return;
	/* The fewest digits that read back, from printf's %e. */
	int pmax = single ? 8 : 16;
	for (int p = 0;; p++) {
		snprintf(tmp, sizeof(tmp), "%.*e", p, v);
		if (p == pmax || (single ? strtof(tmp, NULL) == (float)v :
		    strtod(tmp, NULL) == v))
			break;
	}
	char *e = strchr(tmp, 'e');
	int exp = atoi(e + 1);
	if (exp < -4 || exp >= 15) {
		sb_adds(b, tmp);
		return;
	}
	/* In the fixed range after all: lay the digits out around the point. */
	char digits[24];
	int nd = 0;
	for (char *c = tmp; c < e; c++)
		if (*c >= '0' && *c <= '9')
			digits[nd++] = *c;
	if (v < 0)
		sb_addc(b, '-');
	if (exp < 0) {
		sb_add(b, "0.", 2);
		for (int z = 0; z < -exp - 1; z++)
			sb_addc(b, '0');
		sb_add(b, digits, (size_t)nd);
		return;
	}
	for (int i = 0; i <= exp; i++)
		sb_addc(b, i < nd ? digits[i] : '0');
	sb_addc(b, '.');
	if (nd > exp + 1)
		sb_add(b, digits + exp + 1, (size_t)(nd - exp - 1));
	else
		sb_addc(b, '0');
}

/* o inside depth containers; a container of its own is one level more. */
int
json_emit_in(struct strbuf *b, const msgpack_object *o, int depth)
{
	if ((o->type == MSGPACK_OBJECT_ARRAY || o->type == MSGPACK_OBJECT_MAP) &&
	    depth >= REC_MAX_DEPTH)
		return JSON_TOO_DEEP;
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		sb_add(b, "null", 4);
		return 0;
	case MSGPACK_OBJECT_BOOLEAN:
		if (o->via.boolean)
			sb_add(b, "true", 4);
		else
			sb_add(b, "false", 5);
		return 0;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		emit_uint(b, o->via.u64);
		return 0;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		sb_addc(b, '-');
		emit_uint(b, 0 - (uint64_t)o->via.i64);
		return 0;
	case MSGPACK_OBJECT_FLOAT32:
		emit_float(b, o->via.f64, 1);
		return 0;
	case MSGPACK_OBJECT_FLOAT64:
		emit_float(b, o->via.f64, 0);
		return 0;
	case MSGPACK_OBJECT_STR:
		if (!valid_utf8(o->via.str.ptr, o->via.str.size))
			return JSON_BAD_UTF8;
		emit_string(b, o->via.str.ptr, o->via.str.size);
		return 0;
	case MSGPACK_OBJECT_BIN:
		sb_add(b, "{\"$bin\":\"", 9);
		b64_encode(b, (const unsigned char *)o->via.bin.ptr,
		    o->via.bin.size);
		sb_add(b, "\"}", 2);
		return 0;
	case MSGPACK_OBJECT_ARRAY:
		sb_addc(b, '[');
		for (uint32_t i = 0; i < o->via.array.size; i++) {
			if (i)
				sb_addc(b, ',');
			int e = json_emit_in(b, &o->via.array.ptr[i],
			    depth + 1);
			if (e)
				return e;
		}
		sb_addc(b, ']');
		return 0;
	case MSGPACK_OBJECT_MAP:
		sb_addc(b, '{');
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];
			if (kv->key.type != MSGPACK_OBJECT_STR)
				return JSON_BAD_KEY;
			if (i)
				sb_addc(b, ',');
			int e = json_emit_in(b, &kv->key, depth + 1);
			if (e)
				return e;
			sb_addc(b, ':');
			if ((e = json_emit_in(b, &kv->val, depth + 1)))
				return e;
		}
		sb_addc(b, '}');
		return 0;
	case MSGPACK_OBJECT_EXT:
		return JSON_BAD_EXT;
	}
	return JSON_BAD_EXT;
}

int
json_emit(struct strbuf *b, const msgpack_object *o)
{
	return json_emit_in(b, o, 0);
}

const char *
json_emit_error(int code)
{
	switch (code) {
	case JSON_BAD_UTF8:
		return "string is not valid UTF-8";
	case JSON_BAD_KEY:
		return "map key is not a string";
	case JSON_BAD_EXT:
		return "msgpack ext values have no JSON form";
	case JSON_TOO_DEEP:
		return TOO_DEEP;
	}
	return "cannot be written as JSON";
}

/* ------------------------------------------------------------------------ */
/* Parsing */



struct parser {
	const char *s, *end, *p;
	msgpack_zone *zone;
	const char *err;
	const char *errp;
	int depth;		/* open arrays and objects */
	/* Children of the open containers, as a stack shared by all levels. */
	msgpack_object *items;
	size_t nitems, capitems;
	struct strbuf str;	/* a string being unescaped */
};

static int
fail(struct parser *ps, const char *at, const char *msg)
{
	if (ps->err == NULL) {
		ps->err = msg;
		ps->errp = at;
	}
	return -1;
}

static void
skip_ws(struct parser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' ||
	    *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static void *
pzalloc(struct parser *ps, size_t n)
{
	void *p = msgpack_zone_malloc(ps->zone, n ? n : 1);
	if (p == NULL)
		errx(EXIT_DATA, "out of memory");
	return p;
}

static void
push(struct parser *ps, const msgpack_object *o)
{
	if (ps->nitems == ps->capitems) {
		ps->capitems = ps->capitems ? 2 * ps->capitems : 64;
		ps->items = xreallocarray(ps->items, ps->capitems,
		    sizeof(*ps->items));
	}
	ps->items[ps->nitems++] = *o;
}

static long
parse_hex4(struct parser *ps)
{
	if (ps->end - ps->p < 4)
		return fail(ps, ps->p, "truncated \\u escape");
	long v = 0;
	for (int i = 0; i < 4; i++) {
		int h = pp_hexval((unsigned char)ps->p[i]);
		if (h < 0)
			return fail(ps, ps->p + i, "invalid \\u escape");
		v = v << 4 | h;
	}
	ps->p += 4;
	return v;
}

/* Append code point c as UTF-8. */
static void
put_utf8(struct strbuf *b, unsigned long c)
{
	utf8proc_uint8_t u[4];
	utf8proc_ssize_t n = utf8proc_encode_char((utf8proc_int32_t)c, u);
	sb_add(b, u, (size_t)n);
}

/* A string at ps->p (after the opening quote) into a zone copy. */
static int
parse_string(struct parser *ps, msgpack_object *out)
{
	const char *start = ps->p;
	const unsigned char *p = (const unsigned char *)ps->p;
	const unsigned char *end = (const unsigned char *)ps->end;

	/* Fast path: no escapes, so the text is the string. */
	while (p < end && *p != '"' && *p != '\\' && *p >= 0x20 && *p < 0x80)
		p++;
	sb_clear(&ps->str);
	for (;;) {
		if (p >= end)
			return fail(ps, start - 1, "unterminated string");
		unsigned c = *p;
		if (c == '"')
			break;
		if (c < 0x20)
			return fail(ps, (const char *)p,
			    "control character in string");
		if (c >= 0x80) {
			size_t k = utf8_seq(p, (size_t)(end - p));
			if (k == 0)
				return fail(ps, (const char *)p,
				    "invalid UTF-8 in string");
			p += k;
			continue;
		}
		if (c != '\\') {
			p++;
			continue;
		}
		/* An escape: move what came before into the buffer. */
		sb_add(&ps->str, start, (size_t)((const char *)p - start));
		ps->p = (const char *)p + 1;
		if (ps->p >= ps->end)
			return fail(ps, (const char *)p, "unterminated string");
		char e = *ps->p++;
		switch (e) {
		case '"': sb_addc(&ps->str, '"'); break;
		case '\\': sb_addc(&ps->str, '\\'); break;
		case '/': sb_addc(&ps->str, '/'); break;
		case 'b': sb_addc(&ps->str, '\b'); break;
		case 'f': sb_addc(&ps->str, '\f'); break;
		case 'n': sb_addc(&ps->str, '\n'); break;
		case 'r': sb_addc(&ps->str, '\r'); break;
		case 't': sb_addc(&ps->str, '\t'); break;
		case 'u': {
			const char *at = ps->p - 2;
			long c1 = parse_hex4(ps);
			if (c1 < 0)
				return -1;
			unsigned long cp = (unsigned long)c1;
			if (c1 >= 0xdc00 && c1 <= 0xdfff)
				return fail(ps, at, "lone surrogate in \\u escape");
			if (c1 >= 0xd800 && c1 <= 0xdbff) {
				if (ps->end - ps->p < 2 || ps->p[0] != '\\' ||
				    ps->p[1] != 'u')
					return fail(ps, at,
					    "lone surrogate in \\u escape");
				ps->p += 2;
				long c2 = parse_hex4(ps);
				if (c2 < 0)
					return -1;
				if (c2 < 0xdc00 || c2 > 0xdfff)
					return fail(ps, at,
					    "lone surrogate in \\u escape");
				cp = 0x10000 + (((unsigned long)c1 - 0xd800) << 10) +
				    ((unsigned long)c2 - 0xdc00);
			}
			put_utf8(&ps->str, cp);
			break;
		}
		default:
			return fail(ps, ps->p - 2, "invalid escape in string");
		}
		start = ps->p;
		p = (const unsigned char *)ps->p;
	}
	const char *text = start;
	size_t n = (size_t)((const char *)p - start);
	if (ps->str.len) {
		sb_add(&ps->str, start, n);
		text = ps->str.data;
		n = ps->str.len;
	}
	char *copy = pzalloc(ps, n);
	memcpy(copy, text, n);
	out->type = MSGPACK_OBJECT_STR;
	out->via.str.ptr = copy;
	out->via.str.size = (uint32_t)n;
	ps->p = (const char *)p + 1;
	return 0;
}

static int
parse_number(struct parser *ps, msgpack_object *out)
{
	const char *start = ps->p, *p = ps->p, *end = ps->end;
	int neg = 0, integral = 1;

	if (p < end && *p == '-') {
		neg = 1;
		p++;
	}
	if (end - p >= 8 && memcmp(p, "Infinity", 8) == 0) {
		out->type = MSGPACK_OBJECT_FLOAT64;
		out->via.f64 = neg ? -INFINITY : INFINITY;
		ps->p = p + 8;
		return 0;
	}
	if (p >= end || *p < '0' || *p > '9')
		return fail(ps, start, "invalid number");
	if (*p == '0')
		p++;
	else
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	if (p < end && *p == '.') {
		integral = 0;
		p++;
		if (p >= end || *p < '0' || *p > '9')
			return fail(ps, p, "invalid number: digit expected");
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		integral = 0;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
			return fail(ps, p, "invalid number: digit expected");
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	ps->p = p;
	if (integral) {
		/* Exact 64-bit integers; larger ones become floats. */
		uint64_t v = 0;
		const char *d = start + neg;
		int overflow = 0;
		for (; d < p; d++) {
			unsigned dig = (unsigned)(*d - '0');
			if (v > (UINT64_MAX - dig) / 10) {
				overflow = 1;
				break;
			}
			v = v * 10 + dig;
		}
		if (!overflow && !neg) {
			out->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
			out->via.u64 = v;
			return 0;
		}
		if (!overflow && neg && v <= (uint64_t)INT64_MAX + 1) {
			if (v == 0) {
				out->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
				out->via.u64 = 0;
			} else {
				out->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
				out->via.i64 = (int64_t)(0 - v);
			}
			return 0;
		}
	}
	/* strtod needs a terminated string: numbers are short. */
	char tmp[128], *heap = NULL, *num = tmp;
	size_t n = (size_t)(p - start);
	if (n >= sizeof(tmp))
		num = heap = xmalloc(n + 1);
	memcpy(num, start, n);
	num[n] = 0;
	out->type = MSGPACK_OBJECT_FLOAT64;
	out->via.f64 = strtod(num, NULL);
	free(heap);
	return 0;
}

static int
literal(struct parser *ps, const char *word, size_t n)
{
	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
		return fail(ps, ps->p, "invalid literal");
	ps->p += n;
	return 0;
}

/* {"$bin": "<base64>"} stands for a bin value. */
static int
maybe_bin(struct parser *ps, msgpack_object *o, const char *at)
{
	if (o->via.map.size != 1)
		return 0;
	const msgpack_object_kv *kv = o->via.map.ptr;
	if (kv->key.via.str.size != 4 || memcmp(kv->key.via.str.ptr, "$bin",
	    4) != 0 || kv->val.type != MSGPACK_OBJECT_STR)
		return 0;
	size_t n = kv->val.via.str.size;
	unsigned char *bytes = pzalloc(ps, n / 4 * 3);
	long len = b64_decode(kv->val.via.str.ptr, n, bytes);
	if (len < 0)
		return fail(ps, at, "invalid base64 in \"$bin\"");
	o->type = MSGPACK_OBJECT_BIN;
	o->via.bin.ptr = (const char *)bytes;
	o->via.bin.size = (uint32_t)len;
	return 0;
}

static int parse_value(struct parser *ps, msgpack_object *out);

static int
parse_array(struct parser *ps, msgpack_object *out)
{
	size_t base = ps->nitems;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == ']') {
		ps->p++;
	} else {
		for (;;) {
			msgpack_object v;
			if (parse_value(ps, &v) < 0)
				return -1;
			push(ps, &v);
			skip_ws(ps);
			if (ps->p >= ps->end)
				return fail(ps, ps->p, "unterminated array");
			if (*ps->p == ']') {
				ps->p++;
				break;
			}
			if (*ps->p != ',')
				return fail(ps, ps->p, "expected ',' or ']'");
			ps->p++;
		}
	}
	size_t n = ps->nitems - base;
	msgpack_object *a = pzalloc(ps, n * sizeof(*a));
	if (n)	/* items is NULL until the first value anywhere */
		memcpy(a, ps->items + base, n * sizeof(*a));
	ps->nitems = base;
	out->type = MSGPACK_OBJECT_ARRAY;
	out->via.array.ptr = a;
	out->via.array.size = (uint32_t)n;
	return 0;
}

static int
parse_object(struct parser *ps, msgpack_object *out)
{
	const char *at = ps->p - 1;
	size_t base = ps->nitems;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == '}') {
		ps->p++;
	} else {
		for (;;) {
			msgpack_object k, v;
			skip_ws(ps);
			if (ps->p >= ps->end)
				return fail(ps, ps->p, "unterminated object");
			if (*ps->p != '"')
				return fail(ps, ps->p, "expected string key");
			ps->p++;
			if (parse_string(ps, &k) < 0)
				return -1;
			skip_ws(ps);
			if (ps->p >= ps->end || *ps->p != ':')
				return fail(ps, ps->p, "expected ':'");
			ps->p++;
			if (parse_value(ps, &v) < 0)
				return -1;
			push(ps, &k);
			push(ps, &v);
			skip_ws(ps);
			if (ps->p >= ps->end)
				return fail(ps, ps->p, "unterminated object");
			if (*ps->p == '}') {
				ps->p++;
				break;
			}
			if (*ps->p != ',')
				return fail(ps, ps->p, "expected ',' or '}'");
			ps->p++;
		}
	}
	size_t n = (ps->nitems - base) / 2;
	msgpack_object_kv *kv = pzalloc(ps, n * sizeof(*kv));
	for (size_t i = 0; i < n; i++) {
		kv[i].key = ps->items[base + 2 * i];
		kv[i].val = ps->items[base + 2 * i + 1];
	}
	ps->nitems = base;
	out->type = MSGPACK_OBJECT_MAP;
	out->via.map.ptr = kv;
	out->via.map.size = (uint32_t)n;
	return maybe_bin(ps, out, at);
}

static int
parse_value(struct parser *ps, msgpack_object *out)
{
	skip_ws(ps);
	if (ps->p >= ps->end)
		return fail(ps, ps->p, "unexpected end of input");
	const char *at;
	int rc;
	switch (*ps->p) {
	case '{':
		/*
		 * One level more than the limit, for {"$bin": ...}: a bin
		 * is no container.  Any other object there is too deep.
		 */
		if (ps->depth > REC_MAX_DEPTH)
			return fail(ps, ps->p, TOO_DEEP);
		at = ps->p++;
		ps->depth++;
		rc = parse_object(ps, out);
		ps->depth--;
		if (rc == 0 && out->type == MSGPACK_OBJECT_MAP &&
		    ps->depth >= REC_MAX_DEPTH)
			rc = fail(ps, at, TOO_DEEP);
		break;
	case '[':
		if (ps->depth >= REC_MAX_DEPTH)
			return fail(ps, ps->p, TOO_DEEP);
		ps->p++;
		ps->depth++;
		rc = parse_array(ps, out);
		ps->depth--;
		break;
	case '"':
		ps->p++;
		rc = parse_string(ps, out);
		break;
	case 't':
		rc = literal(ps, "true", 4);
		out->type = MSGPACK_OBJECT_BOOLEAN;
		out->via.boolean = true;
		break;
	case 'f':
		rc = literal(ps, "false", 5);
		out->type = MSGPACK_OBJECT_BOOLEAN;
		out->via.boolean = false;
		break;
	case 'n':
		rc = literal(ps, "null", 4);
		out->type = MSGPACK_OBJECT_NIL;
		break;
	case 'N':
		rc = literal(ps, "NaN", 3);
		out->type = MSGPACK_OBJECT_FLOAT64;
		out->via.f64 = NAN;
		break;
	case 'I':
		rc = literal(ps, "Infinity", 8);
		out->type = MSGPACK_OBJECT_FLOAT64;
		out->via.f64 = INFINITY;
		break;
	default:
		rc = parse_number(ps, out);
		break;
	}
	return rc;
}

int
json_parse(const char *text, size_t len, msgpack_zone *zone,
    msgpack_object *out, char *err, size_t errsz, size_t *errpos)
{
	static __thread struct parser cache;	/* reuse the stacks */
	struct parser *ps = &cache;

	ps->s = ps->p = text;
	ps->end = text + len;
	ps->zone = zone;
	ps->err = NULL;
	ps->errp = NULL;
	ps->depth = 0;
	ps->nitems = 0;
	int rc = parse_value(ps, out);
	if (rc == 0) {
		skip_ws(ps);
		if (ps->p != ps->end)
			rc = fail(ps, ps->p, "unexpected text after the value");
	}
	if (rc < 0) {
		snprintf(err, errsz, "%s", ps->err);
		*errpos = (size_t)(ps->errp - text);
	}
	return rc;
}
