/* scorer.c: sides of a record and the --exact verifier; see scorer.h. */
#include "config.h"

#include <ctype.h>
#include <err.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "scoring/scorer.h"
#include "util/util.h"

/* ------------------------------------------------------------------------ */
/* Sides */

int
sides_open(struct rec *r, struct side s[2], int kl)
{
	static const char *names[2] = { "chosen", "rejected" };

	if (rec_get(r, "chosen") == NULL) {
		memset(&s[0], 0, sizeof(s[0]));
		s[0].top = r;
		if (!kl || rec_get(r, "kl") == NULL)
			return 1;
		memset(&s[1], 0, sizeof(s[1]));
		s[1].top = r;
		s[1].name = "kl";
		rec_need_sub(r, "kl", &s[1].sub);
		return 2;
	}
	/* Check both before copying either, so errors come in field order. */
	rec_need_map(r, "chosen");
	rec_need_map(r, "rejected");
	for (int i = 0; i < 2; i++) {
		memset(&s[i], 0, sizeof(s[i]));
		s[i].top = r;
		s[i].name = names[i];
		rec_need_sub(r, names[i], &s[i].sub);
	}
	return 2;
}

void
sides_close(struct side *s, int n)
{
	for (int i = 0; i < n; i++) {
		if (s[i].name == NULL)
			continue;
		if (s[i].dirty)
			rec_set_sub(s[i].top, s[i].name, &s[i].sub);
		rec_free(&s[i].sub);
		s[i].name = NULL;
	}
}

const msgpack_object *
side_get(const struct side *s, const char *key, int inherit)
{
	const msgpack_object *v;

	if (s->name == NULL)
		return rec_get(s->top, key);
	if ((v = rec_get(&s->sub, key)) != NULL)
		return v;
	return inherit ? rec_get(s->top, key) : NULL;
}

/*
 * The path of key in messages: inside the side when it is there or must be
 * there, else at the top.
 */
static const char *
side_path(const struct side *s, const char *key, int inherit, char *buf,
    size_t bufsz)
{
	if (s->name == NULL || (inherit && rec_get(&s->sub, key) == NULL))
		return key;
	snprintf(buf, bufsz, "%s.%s", s->name, key);
	return buf;
}

void
side_die(const struct side *s, const char *key, int inherit,
    const char *fmt, ...)
{
	char path[256], msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rec_die(s->top, key ? side_path(s, key, inherit, path, sizeof(path)) :
	    NULL, "%s", msg);
}

static const msgpack_object *
side_need(const struct side *s, const char *key, int inherit)
{
	const msgpack_object *v = side_get(s, key, inherit);

	if (v == NULL)
		side_die(s, key, inherit, "missing");
	return v;
}

const char *
side_need_str(const struct side *s, const char *key, int inherit,
    size_t *len)
{
	const msgpack_object *v = side_need(s, key, inherit);

	if (v->type != MSGPACK_OBJECT_STR)
		side_die(s, key, inherit, "expected string, got %s",
		    rec_type_name(v));
	*len = v->via.str.size;
	return v->via.str.ptr;
}

size_t
side_need_tokens(const struct side *s, const char *key, int inherit,
    int32_t **out)
{
	const msgpack_object *v = side_need(s, key, inherit);

	if (v->type != MSGPACK_OBJECT_ARRAY)
		side_die(s, key, inherit, "expected array, got %s",
		    rec_type_name(v));
	const msgpack_object_array *a = &v->via.array;
	int32_t *ids = xmalloc(a->size * sizeof(*ids));
	for (uint32_t i = 0; i < a->size; i++) {
		const msgpack_object *e = &a->ptr[i];
		if (e->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    e->via.u64 > INT32_MAX) {
			free(ids);
			side_die(s, key, inherit, "element %u: expected token "
			    "id, got %s", i, e->type ==
			    MSGPACK_OBJECT_POSITIVE_INTEGER ? "a large integer" :
			    rec_type_name(e));
		}
		ids[i] = (int32_t)e->via.u64;
	}
	*out = ids;
	return a->size;
}

void
side_set_num(struct side *s, const char *key, double v)
{
	if (s->name == NULL) {
		rec_set_num(s->top, key, v);
		return;
	}
	rec_set_num(&s->sub, key, v);
	s->dirty = 1;
}

void
side_set_float_array(struct side *s, const char *key, const float *v,
    size_t n)
{
	if (s->name == NULL) {
		rec_set_float_array(s->top, key, v, n);
		return;
	}
	rec_set_float_array(&s->sub, key, v, n);
	s->dirty = 1;
}

/* ------------------------------------------------------------------------ */
/* --exact */

struct exact {
	pcre2_code *re;
	pcre2_match_data *md;
	int group;		/* 1 when the pattern has a capture group */
	char err[256];		/* why the last match failed (returned -1) */
};

struct exact *
exact_new(const char *pattern)
{
	struct exact *e = xcalloc(1, sizeof(*e));
	int code;
	PCRE2_SIZE off;
	uint32_t ncap;

	if (pattern == NULL)
		return e;
	/*
	 * Responses are model output: they may hold invalid UTF-8, which must
	 * not make the match fail as a whole.
	 */
	e->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
	    PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &code, &off, NULL);
	if (e->re == NULL) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(code, msg, sizeof(msg));
		free(e);	/* a leak at exit would change the status */
		pp_usage("--extract: %s at offset %zu of \"%s\"", (char *)msg,
		    (size_t)off, pattern);
	}
	pcre2_pattern_info(e->re, PCRE2_INFO_CAPTURECOUNT, &ncap);
	e->group = ncap > 0;
	e->md = pcre2_match_data_create_from_pattern(e->re, NULL);
	return e;
}

void
exact_free(struct exact *e)
{
	if (e == NULL)
		return;
	pcre2_match_data_free(e->md);
	pcre2_code_free(e->re);
	free(e);
}

const char *
exact_error(const struct exact *e)
{
	return e->err;
}

int
exact_extract(struct exact *e, const char *text, size_t len,
    const char **out, size_t *outlen)
{
	PCRE2_SIZE start = 0;
	uint32_t opts = 0;
	int found = 0;

	/* The last match: step through them all, as a global match would. */
	while (start <= len) {
		int rc = pcre2_match(e->re, (PCRE2_SPTR)text, len, start, opts,
		    e->md, NULL);
		if (rc == PCRE2_ERROR_NOMATCH) {
			if (opts == 0)
				break;
			/* An empty match here: try one character on. */
			start++;
			while (start < len && (text[start] & 0xC0) == 0x80)
				start++;
			opts = 0;
			continue;
		}
		if (rc < 0) {
			/* A match limit, say: the caller names the record. */
			pcre2_get_error_message(rc, (PCRE2_UCHAR *)e->err,
			    sizeof(e->err));
			return -1;
		}
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
		int g = e->group ? 1 : 0;
		if (ov[2 * g] == PCRE2_UNSET) {
			*out = text + len;	/* the group took no part */
			*outlen = 0;
		} else {
			*out = text + ov[2 * g];
			*outlen = ov[2 * g + 1] - ov[2 * g];
		}
		found = 1;
		/*
		 * After an empty match retry at the same place without
		 * allowing another empty one, so the scan always moves on.
		 */
		opts = ov[0] == ov[1] ? PCRE2_NOTEMPTY_ATSTART |
		    PCRE2_ANCHORED : 0;
		start = ov[1];
	}
	return found;
}

static void
trim(const char **s, size_t *len)
{
	while (*len > 0 && isspace((unsigned char)**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && isspace((unsigned char)(*s)[*len - 1]))
		(*len)--;
}

int
exact_match(struct exact *e, const char *resp, size_t rlen,
    const char *answer, size_t alen)
{
	if (e->re != NULL) {
		int rc = exact_extract(e, resp, rlen, &resp, &rlen);
		if (rc <= 0)
			return rc;
	}
	trim(&resp, &rlen);
	trim(&answer, &alen);
	return rlen == alen && memcmp(resp, answer, rlen) == 0;
}

/* ------------------------------------------------------------------------ */

int
parse_number_line(const char *s, size_t len, double *v)
{
	char buf[128], *end;

	while (len > 0 && isspace((unsigned char)*s)) {
		s++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = 0;
	errno = 0;
	*v = strtod(buf, &end);
	if (*end != 0 || errno == ERANGE || !isfinite(*v))
		return -1;
	return 0;
}
