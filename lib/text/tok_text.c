/*
 * tok_text.c: the text stages of a tokenizer.json: UTF-8 helpers,
 * patterns, normalizers, pre-tokenizers and decoders.  Each stage is a
 * small tree built from its JSON (build_x) and applied to strings; the
 * semantics follow the Rust tokenizers library, stage by stage.
 */
#include "config.h"

#include <err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "text/tok_impl.h"

void
tok_fail(struct tok_err *e, const char *field, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (e->failed)
		return;		/* the first error is the one to report */
	e->failed = 1;
	n = snprintf(e->buf, e->size, "%s: %s: ", e->file, field);
	if (n < 0 || (size_t)n >= e->size)
		return;
	va_start(ap, fmt);
	vsnprintf(e->buf + n, e->size - n, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* UTF-8 */

size_t
tu8_len(const unsigned char *s, size_t n)
{
	size_t len;

	if (s[0] < 0x80)
		return 1;
	len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 1;
	if (len > n)
		return 1;
	return tu8_valid(s, len) ? len : 1;
}

int32_t
tu8_get(const unsigned char *s, size_t n, size_t *len)
{
	utf8proc_int32_t c;
	utf8proc_ssize_t r;

	if (s[0] < 0x80) {
		*len = 1;
		return s[0];
	}
	r = utf8proc_iterate(s, n < 4 ? (utf8proc_ssize_t)n : 4, &c);
	if (r <= 0) {
		*len = 1;
		return s[0];
	}
	*len = r;
	return c;
}

void
tu8_put(struct strbuf *b, int32_t c)
{
	utf8proc_uint8_t u[4];

	sb_add(b, u, utf8proc_encode_char(c, u));
}

int
tu8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0, k, len;
	uint32_t c;

	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if (s[i] >= 0xc2 && s[i] <= 0xdf)
			len = 2, c = s[i] & 0x1f;
		else if (s[i] >= 0xe0 && s[i] <= 0xef)
			len = 3, c = s[i] & 0x0f;
		else if (s[i] >= 0xf0 && s[i] <= 0xf4)
			len = 4, c = s[i] & 0x07;
		else
			return 0;
		if (i + len > n)
			return 0;
		for (k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			c = c << 6 | (s[i + k] & 0x3f);
		}
		if ((len == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
		    (len == 4 && (c < 0x10000 || c > 0x10ffff)))
			return 0;
		i += len;
	}
	return 1;
}

/*
 * The length of the longest prefix of s that could start a valid sequence
 * (the "maximal subpart"), at least 1; and whether it is complete.
 */
static size_t
tu8_subpart(const unsigned char *s, size_t n, int *complete)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len, k;

	*complete = 0;
	if (s[0] < 0x80) {
		*complete = 1;
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		if (s[0] == 0xe0)
			lo = 0xa0;
		else if (s[0] == 0xed)
			hi = 0x9f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		if (s[0] == 0xf0)
			lo = 0x90;
		else if (s[0] == 0xf4)
			hi = 0x8f;
	} else
		return 1;
	for (k = 1; k < len; k++) {
		if (k >= n || s[k] < lo || s[k] > hi)
			return k;
		lo = 0x80, hi = 0xbf;
	}
	*complete = 1;
	return len;
}

void
tu8_lossy(struct strbuf *b, const unsigned char *s, size_t n)
{
	size_t i = 0, k;
	int ok;

	while (i < n) {
		k = tu8_subpart(s + i, n - i, &ok);
		if (ok)
			sb_add(b, s + i, k);
		else
			sb_add(b, "\xef\xbf\xbd", 3);
		i += k;
	}
}

int
tu_is_space(int32_t c)
{
	if (c < 0x80)
		return c == ' ' || (c >= 0x09 && c <= 0x0d);
	switch (c) {
	case 0x85: case 0xa0: case 0x1680: case 0x2028: case 0x2029:
	case 0x202f: case 0x205f: case 0x3000:
		return 1;
	}
	return c >= 0x2000 && c <= 0x200a;
}

/* Rust's char::is_numeric. */
static int
tu_is_numeric(int32_t c)
{
	switch ((int)utf8proc_category(c)) {
	case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL:
	case UTF8PROC_CATEGORY_NO:
		return 1;
	}
	return 0;
}

static int
tu_is_punct(int32_t c)
{
	if (c < 0x80)
		return (c >= 0x21 && c <= 0x2f) || (c >= 0x3a && c <= 0x40) ||
		    (c >= 0x5b && c <= 0x60) || (c >= 0x7b && c <= 0x7e);
	switch ((int)utf8proc_category(c)) {
	case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD:
	case UTF8PROC_CATEGORY_PS: case UTF8PROC_CATEGORY_PE:
	case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
	case UTF8PROC_CATEGORY_PO:
		return 1;
	}
	return 0;
}

/* A regex \w character, as the Rust regex crate has it: letters, marks,
 * decimal and letter numbers, connector punctuation, joiners. */
int
tok_is_word_char(int32_t c)
{
	if (c < 0x80)
		return c == '_' || (c >= '0' && c <= '9') ||
		    ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
	if (c == 0x200c || c == 0x200d)
		return 1;
	switch ((int)utf8proc_category(c)) {
	case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL:
	case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
	case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
	case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
	case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL:
	case UTF8PROC_CATEGORY_PC:
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Pieces and token lists */

void
pieces_clear(struct pieces *p)
{
	sb_clear(&p->buf);
	p->n = 0;
}

void
pieces_free(struct pieces *p)
{
	sb_free(&p->buf);
	free(p->v);
	free(p->seg);
	memset(p, 0, sizeof(*p));
}

void
pieces_add(struct pieces *p, const char *s, size_t n, int first)
{
	size_t start = p->buf.len;

	if (n == 0)
		return;
	sb_add(&p->buf, s, n);
	pieces_commit(p, start, first);
}

void
pieces_commit(struct pieces *p, size_t start, int first)
{
	if (p->buf.len == start)
		return;
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 64;
		p->v = xreallocarray(p->v, p->cap, sizeof(*p->v));
	}
	p->v[p->n].off = start;
	p->v[p->n].len = p->buf.len - start;
	p->v[p->n].first = first;
	p->n++;
}

void
toklist_clear(struct toklist *l)
{
	sb_clear(&l->buf);
	l->n = 0;
}

void
toklist_free(struct toklist *l)
{
	sb_free(&l->buf);
	free(l->off);
	free(l->len);
	free(l->added);
	memset(l, 0, sizeof(*l));
}

void
toklist_add(struct toklist *l, const char *s, size_t n, int added)
{
	size_t start = l->buf.len;

	sb_add(&l->buf, s, n);
	toklist_commit(l, start, added);
}

void
toklist_commit(struct toklist *l, size_t start, int added)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->off = xreallocarray(l->off, l->cap, sizeof(*l->off));
		l->len = xreallocarray(l->len, l->cap, sizeof(*l->len));
		l->added = xreallocarray(l->added, l->cap, 1);
	}
	l->off[l->n] = start;
	l->len[l->n] = l->buf.len - start;
	l->added[l->n] = added;
	l->n++;
}

/* ------------------------------------------------------------------------ */
/* Patterns */

pcre2_code *
tok_regex(const char *src, struct tok_err *e, const char *field)
{
	pcre2_code *re;
	int errcode;
	PCRE2_SIZE erroff;
	PCRE2_UCHAR msg[160];

	re = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED,
	    PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &errcode,
	    &erroff, NULL);
	if (re == NULL) {
		pcre2_get_error_message(errcode, msg, sizeof(msg));
		tok_fail(e, field, "bad regex at offset %zu: %s", (size_t)erroff,
		    (char *)msg);
		return NULL;
	}
	/* JIT is an optimisation only: without it matching still works. */
	(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	return re;
}

int
tpat_build(struct tok_pattern *p, json_t *j, struct tok_err *e,
    const char *field)
{
	json_t *v;

	memset(p, 0, sizeof(*p));
	if ((v = json_object_get(j, "String")) != NULL && json_is_string(v)) {
		p->litlen = json_string_length(v);
		p->lit = xmalloc(p->litlen + 1);
		memcpy(p->lit, json_string_value(v), p->litlen + 1);
		if (p->litlen == 0) {
			tok_fail(e, field, "empty String pattern");
			return -1;
		}
		return 0;
	}
	if ((v = json_object_get(j, "Regex")) != NULL && json_is_string(v)) {
		if ((p->re = tok_regex(json_string_value(v), e, field)) == NULL)
			return -1;
		p->md = pcre2_match_data_create_from_pattern(p->re, NULL);
		return 0;
	}
	tok_fail(e, field, "expected {\"String\": ...} or {\"Regex\": ...}");
	return -1;
}

void
tpat_free(struct tok_pattern *p)
{
	free(p->lit);
	if (p->md)
		pcre2_match_data_free(p->md);
	if (p->re)
		pcre2_code_free(p->re);
	memset(p, 0, sizeof(*p));
}

_Thread_local char tpat_fault[192];

int
tpat_next(struct tok_pattern *p, const char *s, size_t n, size_t pos,
    size_t *ms, size_t *me)
{
	const char *f;
	PCRE2_SIZE *ov;
	int rc;

	if (p->lit) {
		if (pos >= n || (f = memmem(s + pos, n - pos, p->lit,
		    p->litlen)) == NULL)
			return 0;
		*ms = f - s;
		*me = *ms + p->litlen;
		return 1;
	}
	while (pos <= n) {
		rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, pos, 0, p->md, NULL);
		if (rc < 0 && rc != PCRE2_ERROR_NOMATCH)
			/* The JIT's stack ran out: the interpreter has more. */
			rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, pos,
			    PCRE2_NO_JIT, p->md, NULL);
		if (rc == PCRE2_ERROR_NOMATCH)
			return 0;
		if (rc < 0) {
			/*
			 * Splitting wrongly would be silent corruption: stop,
			 * and let encode or decode fail with the message.
			 */
			if (tpat_fault[0] == 0) {
				PCRE2_UCHAR msg[160];
				pcre2_get_error_message(rc, msg, sizeof(msg));
				snprintf(tpat_fault, sizeof(tpat_fault),
				    "regular expression failed (%s)",
				    (char *)msg);
			}
			return 0;
		}
		ov = pcre2_get_ovector_pointer(p->md);
		if (ov[1] > ov[0]) {
			*ms = ov[0];
			*me = ov[1];
			return 1;
		}
		/* An empty match splits nothing; look past it. */
		if (ov[0] >= n)
			return 0;
		pos = ov[0] + tu8_len((const unsigned char *)s + ov[0],
		    n - ov[0]);
	}
	return 0;
}

/* Replace every match of p in b with content (tmp is scratch). */
static void
replace_all(struct tok_pattern *p, const char *content, struct strbuf *b,
    struct strbuf *tmp)
{
	size_t pos = 0, ms, me;
	struct strbuf t;

	sb_clear(tmp);
	while (tpat_next(p, b->data, b->len, pos, &ms, &me)) {
		sb_add(tmp, b->data + pos, ms - pos);
		sb_adds(tmp, content);
		pos = me;
	}
	if (pos == 0)
		return;
	sb_add(tmp, b->data + pos, b->len - pos);
	t = *b, *b = *tmp, *tmp = t;
}

/* ------------------------------------------------------------------------ */
/* JSON helpers for building stages */

static const char *
type_of(json_t *j, struct tok_err *e, const char *field)
{
	json_t *t;

	if (!json_is_object(j) || (t = json_object_get(j, "type")) == NULL ||
	    !json_is_string(t)) {
		tok_fail(e, field, "expected an object with a \"type\"");
		return NULL;
	}
	return json_string_value(t);
}

static int
get_bool(json_t *j, const char *key, int def)
{
	json_t *v = json_object_get(j, key);

	if (v == NULL || !json_is_boolean(v))
		return def;
	return json_is_true(v);
}

static const char *
get_str(json_t *j, const char *key, const char *def)
{
	json_t *v = json_object_get(j, key);

	if (v == NULL || !json_is_string(v))
		return def;
	return json_string_value(v);
}

/* The sub-stages of a Sequence, built with build. */
static void **
build_list(json_t *j, const char *key, size_t *n, struct tok_err *e,
    const char *field, void *(*build)(json_t *, struct tok_err *,
    const char *))
{
	json_t *arr = json_object_get(j, key);
	void **v;
	size_t i;
	char f[256];

	*n = 0;
	if (!json_is_array(arr)) {
		tok_fail(e, field, "Sequence without a \"%s\" array", key);
		return NULL;
	}
	v = xcalloc(json_array_size(arr) + 1, sizeof(*v));
	for (i = 0; i < json_array_size(arr); i++) {
		snprintf(f, sizeof(f), "%s.%s[%zu]", field, key, i);
		if ((v[i] = build(json_array_get(arr, i), e, f)) == NULL)
			break;
		(*n)++;
	}
	return v;
}

/* The replacement character of Metaspace, as UTF-8. */
static int
get_replacement(json_t *j, char *repl, size_t *len, struct tok_err *e,
    const char *field)
{
	const char *r = get_str(j, "replacement", "\xe2\x96\x81");
	size_t n = strlen(r);

	if (n == 0 || n > 4 || tu8_len((const unsigned char *)r, n) != n) {
		tok_fail(e, field, "replacement must be one character");
		return -1;
	}
	memcpy(repl, r, n);
	repl[n] = 0;
	*len = n;
	return 0;
}

static int
get_prepend_scheme(json_t *j, int *scheme, struct tok_err *e,
    const char *field)
{
	const char *s = get_str(j, "prepend_scheme", NULL);
	json_t *v;

	if (s == NULL) {
		/* The older form: add_prefix_space true or false. */
		v = json_object_get(j, "add_prefix_space");
		*scheme = v && json_is_false(v) ? PREPEND_NEVER :
		    PREPEND_ALWAYS;
		return 0;
	}
	if (strcmp(s, "always") == 0)
		*scheme = PREPEND_ALWAYS;
	else if (strcmp(s, "never") == 0)
		*scheme = PREPEND_NEVER;
	else if (strcmp(s, "first") == 0)
		*scheme = PREPEND_FIRST;
	else {
		tok_fail(e, field, "prepend_scheme \"%s\": expected always, "
		    "never or first", s);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Normalizers */

static void *
build_normalizer_v(json_t *j, struct tok_err *e, const char *field)
{
	return build_normalizer(j, e, field);
}

struct normalizer *
build_normalizer(json_t *j, struct tok_err *e, const char *field)
{
	struct normalizer *n;
	const char *type;
	char f[256];

	if ((type = type_of(j, e, field)) == NULL)
		return NULL;
	n = xcalloc(1, sizeof(*n));
	if (strcmp(type, "Sequence") == 0) {
		n->type = NORM_SEQ;
		n->sub = (struct normalizer **)build_list(j, "normalizers",
		    &n->nsub, e, field, build_normalizer_v);
	} else if (strcmp(type, "NFC") == 0)
		n->type = NORM_NFC;
	else if (strcmp(type, "NFD") == 0)
		n->type = NORM_NFD;
	else if (strcmp(type, "NFKC") == 0)
		n->type = NORM_NFKC;
	else if (strcmp(type, "NFKD") == 0)
		n->type = NORM_NFKD;
	else if (strcmp(type, "Lowercase") == 0)
		n->type = NORM_LOWER;
	else if (strcmp(type, "Prepend") == 0) {
		n->type = NORM_PREPEND;
		n->str = xstrdup(get_str(j, "prepend", ""));
	} else if (strcmp(type, "Replace") == 0) {
		n->type = NORM_REPLACE;
		n->str = xstrdup(get_str(j, "content", ""));
		snprintf(f, sizeof(f), "%s.pattern", field);
		tpat_build(&n->pat, json_object_get(j, "pattern"), e, f);
	} else if (strcmp(type, "Strip") == 0) {
		n->type = NORM_STRIP;
		n->left = get_bool(j, "strip_left", 1);
		n->right = get_bool(j, "strip_right", 1);
	} else
		tok_fail(e, field, "unsupported normalizer \"%s\" (supported: "
		    "Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Prepend, "
		    "Replace, Strip)", type);
	if (e->failed) {
		free_normalizer(n);
		return NULL;
	}
	return n;
}

void
free_normalizer(struct normalizer *n)
{
	size_t i;

	if (n == NULL)
		return;
	for (i = 0; i < n->nsub; i++)
		free_normalizer(n->sub[i]);
	free(n->sub);
	free(n->str);
	tpat_free(&n->pat);
	free(n);
}

static void
unicode_form(struct strbuf *b, int flags)
{
	utf8proc_uint8_t *out;
	utf8proc_ssize_t r;

	if (b->len == 0)
		return;
	r = utf8proc_map((const utf8proc_uint8_t *)b->data, b->len, &out,
	    UTF8PROC_STABLE | flags);
	if (r < 0)
		return;		/* invalid UTF-8: left as it is */
	sb_clear(b);
	sb_add(b, out, r);
	free(out);
}

static void
lowercase(struct strbuf *b, struct strbuf *tmp)
{
	size_t i, cl;
	int32_t c;
	struct strbuf t;

	sb_clear(tmp);
	for (i = 0; i < b->len; i += cl) {
		c = tu8_get((const unsigned char *)b->data + i, b->len - i,
		    &cl);
		if (cl == 1 && (unsigned char)b->data[i] >= 0x80)
			sb_addc(tmp, b->data[i]);	/* invalid byte */
		else if (c == 0x130)
			sb_add(tmp, "i\xcc\x87", 3);	/* full mapping of İ */
		else
			tu8_put(tmp, utf8proc_tolower(c));
	}
	t = *b, *b = *tmp, *tmp = t;
}

static void
strip(struct strbuf *b, int left, int right)
{
	size_t s = 0, e = b->len, cl, i;

	if (left)
		while (s < e && tu_is_space(tu8_get((const unsigned char *)
		    b->data + s, e - s, &cl)))
			s += cl;
	if (right)
		while (e > s) {
			/* Step back to the start of the last character. */
			for (i = e - 1; i > s && ((unsigned char)b->data[i] &
			    0xc0) == 0x80; i--)
				;
			if (!tu_is_space(tu8_get((const unsigned char *)
			    b->data + i, e - i, &cl)) || i + cl != e)
				break;
			e = i;
		}
	memmove(b->data, b->data + s, e - s);
	b->len = e - s;
	b->data[b->len] = 0;
}

void
tok_normalize(const struct normalizer *n, struct strbuf *b, struct strbuf *tmp)
{
	size_t i;

	switch (n->type) {
	case NORM_SEQ:
		for (i = 0; i < n->nsub; i++)
			tok_normalize(n->sub[i], b, tmp);
		break;
	case NORM_NFC:
		unicode_form(b, UTF8PROC_COMPOSE);
		break;
	case NORM_NFD:
		unicode_form(b, UTF8PROC_DECOMPOSE);
		break;
	case NORM_NFKC:
		unicode_form(b, UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
		break;
	case NORM_NFKD:
		unicode_form(b, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
		break;
	case NORM_LOWER:
		lowercase(b, tmp);
		break;
	case NORM_PREPEND:
		if (b->len == 0)
			break;	/* nothing to prepend to */
		sb_clear(tmp);
		sb_adds(tmp, n->str);
		sb_add(tmp, b->data, b->len);
		sb_clear(b);
		sb_add(b, tmp->data, tmp->len);
		break;
	case NORM_REPLACE:
		replace_all((struct tok_pattern *)&n->pat, n->str, b, tmp);
		break;
	case NORM_STRIP:
		strip(b, n->left, n->right);
		break;
	}
}

/* ------------------------------------------------------------------------ */
/* The byte-level alphabet of GPT-2: printable bytes stand for themselves,
 * the others are shifted to code points from U+0100 on, in order. */

char bytelevel_enc[256][3];
uint8_t bytelevel_enclen[256];
static int16_t bytelevel_rev[512];

static int
byte_printable(int b)
{
	return (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) ||
	    (b >= 0xae && b <= 0xff);
}

/* Filled before main runs, so that threads never race to fill it. */
static void __attribute__((constructor))
bytelevel_init(void)
{
	int b, next = 256, c;
	struct strbuf sb;

	for (c = 0; c < 512; c++)
		bytelevel_rev[c] = -1;
	sb_init(&sb);
	for (b = 0; b < 256; b++) {
		c = byte_printable(b) ? b : next++;
		sb_clear(&sb);
		tu8_put(&sb, c);
		memcpy(bytelevel_enc[b], sb.data, sb.len);
		bytelevel_enclen[b] = sb.len;
		bytelevel_rev[c] = b;
	}
	sb_free(&sb);
}

int
bytelevel_dec(int32_t c)
{
	return c >= 0 && c < 512 ? bytelevel_rev[c] : -1;
}

/* ------------------------------------------------------------------------ */
/* Pre-tokenizers */

/* GPT-2's pattern, which ByteLevel uses when use_regex is true. */
static const char gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|"
    "\\s+(?!\\S)|\\s+";

static void *
build_pretok_v(json_t *j, struct tok_err *e, const char *field)
{
	return build_pretok(j, e, field);
}

static int
get_behavior(json_t *j, int *b, struct tok_err *e, const char *field)
{
	static const char *names[] = { "Removed", "Isolated",
	    "MergedWithPrevious", "MergedWithNext", "Contiguous" };
	const char *s = get_str(j, "behavior", NULL);
	size_t i;

	if (s == NULL) {
		tok_fail(e, field, "Split without a \"behavior\"");
		return -1;
	}
	for (i = 0; i < 5; i++)
		if (strcmp(s, names[i]) == 0) {
			*b = i;
			return 0;
		}
	tok_fail(e, field, "behavior \"%s\": expected Removed, Isolated, "
	    "MergedWithPrevious, MergedWithNext or Contiguous", s);
	return -1;
}

struct pretok *
build_pretok(json_t *j, struct tok_err *e, const char *field)
{
	struct pretok *p;
	const char *type;
	char f[256];

	if ((type = type_of(j, e, field)) == NULL)
		return NULL;
	p = xcalloc(1, sizeof(*p));
	if (strcmp(type, "Sequence") == 0) {
		p->type = PT_SEQ;
		p->sub = (struct pretok **)build_list(j, "pretokenizers",
		    &p->nsub, e, field, build_pretok_v);
	} else if (strcmp(type, "ByteLevel") == 0) {
		p->type = PT_BYTELEVEL;
		p->add_prefix_space = get_bool(j, "add_prefix_space", 1);
		p->use_regex = get_bool(j, "use_regex", 1);
		if (p->use_regex) {
			p->pat.re = tok_regex(gpt2_regex, e, field);
			if (p->pat.re)
				p->pat.md = pcre2_match_data_create_from_pattern(
				    p->pat.re, NULL);
		}
	} else if (strcmp(type, "Split") == 0) {
		p->type = PT_SPLIT;
		snprintf(f, sizeof(f), "%s.pattern", field);
		if (tpat_build(&p->pat, json_object_get(j, "pattern"), e,
		    f) == 0)
			get_behavior(j, &p->behavior, e, field);
		p->invert = get_bool(j, "invert", 0);
	} else if (strcmp(type, "Metaspace") == 0) {
		p->type = PT_METASPACE;
		if (get_replacement(j, p->repl, &p->repllen, e, field) == 0)
			get_prepend_scheme(j, &p->prepend, e, field);
		p->split = get_bool(j, "split", 1);
	} else if (strcmp(type, "Digits") == 0) {
		p->type = PT_DIGITS;
		p->individual = get_bool(j, "individual_digits", 0);
	} else if (strcmp(type, "Whitespace") == 0) {
		p->type = PT_WHITESPACE;
		p->pat.re = tok_regex("\\w+|[^\\w\\s]+", e, field);
		if (p->pat.re)
			p->pat.md = pcre2_match_data_create_from_pattern(
			    p->pat.re, NULL);
	} else if (strcmp(type, "WhitespaceSplit") == 0)
		p->type = PT_WSSPLIT;
	else if (strcmp(type, "Punctuation") == 0) {
		p->type = PT_PUNCT;
		p->behavior = SPLIT_ISOLATED;
		if (json_object_get(j, "behavior"))
			get_behavior(j, &p->behavior, e, field);
	} else
		tok_fail(e, field, "unsupported pre-tokenizer \"%s\" (supported:"
		    " Sequence, ByteLevel, Split, Metaspace, Digits, Whitespace,"
		    " WhitespaceSplit, Punctuation)", type);
	if (e->failed) {
		free_pretok(p);
		return NULL;
	}
	return p;
}

void
free_pretok(struct pretok *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nsub; i++)
		free_pretok(p->sub[i]);
	free(p->sub);
	tpat_free(&p->pat);
	free(p);
}

/*
 * Splitting.  A piece is cut into segments, each a match of the pattern or
 * the text between matches; the behaviour then decides what becomes of
 * the matches (as SplitDelimiterBehavior does).  The segments live in the
 * scratch pieces' seg array.
 */
static void
seg_add(struct pieces *sc, size_t s, size_t e, int match)
{
	if (s == e)
		return;
	if (sc->nseg == sc->segcap) {
		sc->segcap = sc->segcap ? sc->segcap * 2 : 256;
		sc->seg = xreallocarray(sc->seg, sc->segcap, sizeof(*sc->seg));
	}
	sc->seg[sc->nseg].s = s;
	sc->seg[sc->nseg].e = e;
	sc->seg[sc->nseg].match = match;
	sc->nseg++;
}

/* Segments for the matches of a character class (one match per char). */
static void
seg_chars(struct pieces *sc, const char *s, size_t n, int (*pred)(int32_t))
{
	size_t i, cl, gap = 0;

	sc->nseg = 0;
	for (i = 0; i < n; i += cl) {
		if (pred(tu8_get((const unsigned char *)s + i, n - i, &cl))) {
			seg_add(sc, gap, i, 0);
			seg_add(sc, i, i + cl, 1);
			gap = i + cl;
		}
	}
	seg_add(sc, gap, n, 0);
}

static void
seg_pattern(struct pieces *sc, struct tok_pattern *p, const char *s,
    size_t n)
{
	size_t pos = 0, ms, me;

	sc->nseg = 0;
	while (tpat_next(p, s, n, pos, &ms, &me)) {
		seg_add(sc, pos, ms, 0);
		seg_add(sc, ms, me, 1);
		pos = me;
	}
	seg_add(sc, pos, n, 0);
}

/* Fold the segments by behaviour and add the resulting pieces to out. */
static void
seg_emit(struct pieces *sc, const char *s, int first, int behavior,
    int invert, struct pieces *out)
{
	struct seg *segs = sc->seg;
	size_t nsegs = sc->nseg, i, k = 0, lo = 0;
	int prev = 0, m;

	if (invert)
		for (i = 0; i < nsegs; i++)
			segs[i].match = !segs[i].match;
	/* Fold in place: segs[0..k) is the result. */
	switch (behavior) {
	case SPLIT_REMOVED:
		for (i = 0; i < nsegs; i++)
			if (!segs[i].match)
				segs[k++] = segs[i];
		break;
	case SPLIT_ISOLATED:
		k = nsegs;
		break;
	case SPLIT_MERGED_PREV:
		for (i = 0; i < nsegs; i++) {
			m = segs[i].match;
			if (m && !prev && k > 0)
				segs[k - 1].e = segs[i].e;
			else
				segs[k++] = segs[i];
			prev = m;
		}
		break;
	case SPLIT_MERGED_NEXT:
		/*
		 * From the end: a match joins the piece after it, unless
		 * that piece is a match too.  The result grows down from
		 * the top of the array, never overtaking the reader.
		 */
		lo = nsegs;
		for (i = nsegs; i-- > 0; ) {
			m = segs[i].match;
			if (m && !prev && lo < nsegs)
				segs[lo].s = segs[i].s;
			else
				segs[--lo] = segs[i];
			prev = m;
		}
		break;
	case SPLIT_CONTIGUOUS:
		for (i = 0; i < nsegs; i++) {
			m = segs[i].match;
			if (m == prev && k > 0)
				segs[k - 1].e = segs[i].e;
			else
				segs[k++] = segs[i];
			prev = m;
		}
		break;
	}
	if (behavior == SPLIT_MERGED_NEXT)
		k = nsegs;
	for (i = lo; i < k; i++)
		pieces_add(out, s + segs[i].s, segs[i].e - segs[i].s,
		    first && segs[i].s == 0);
}

static int is_space_pred(int32_t c) { return tu_is_space(c); }
static int is_punct_pred(int32_t c) { return tu_is_punct(c); }
static int is_num_pred(int32_t c) { return tu_is_numeric(c); }

/* Add s[0..n) to out, each byte replaced by its byte-level stand-in. */
static void
add_bytelevel(struct pieces *out, const char *s, size_t n, int first)
{
	size_t i, start = out->buf.len;
	const unsigned char *u = (const unsigned char *)s;

	if (n == 0)
		return;
	sb_reserve(&out->buf, 2 * n);
	for (i = 0; i < n; i++) {
		memcpy(out->buf.data + out->buf.len, bytelevel_enc[u[i]], 2);
		out->buf.len += bytelevel_enclen[u[i]];
	}
	out->buf.data[out->buf.len] = 0;
	pieces_commit(out, start, first);
}

static void
pretok_bytelevel(const struct pretok *p, const char *s, size_t n, int first,
    struct pieces *out, struct pieces *sc)
{
	struct strbuf *tmp = &sc->buf;
	size_t pos = 0, ms, me;

	if (p->add_prefix_space && (n == 0 || s[0] != ' ')) {
		sb_clear(tmp);
		sb_addc(tmp, ' ');
		sb_add(tmp, s, n);
		s = tmp->data;
		n = tmp->len;
	}
	if (!p->use_regex) {
		add_bytelevel(out, s, n, first);
		return;
	}
	while (tpat_next((struct tok_pattern *)&p->pat, s, n, pos, &ms,
	    &me)) {
		add_bytelevel(out, s + pos, ms - pos, first && pos == 0);
		add_bytelevel(out, s + ms, me - ms, first && ms == 0);
		pos = me;
	}
	add_bytelevel(out, s + pos, n - pos, first && pos == 0);
}

static void
pretok_metaspace(const struct pretok *p, const char *s, size_t n, int first,
    struct pieces *out, struct pieces *sc)
{
	struct strbuf *tmp = &sc->buf;
	size_t i;
	int pre;

	sb_clear(tmp);
	pre = p->prepend == PREPEND_ALWAYS ||
	    (p->prepend == PREPEND_FIRST && first);
	/* After spaces are replaced, a leading space is a replacement too. */
	if (pre && n > 0 && s[0] != ' ' && !(n >= p->repllen &&
	    memcmp(s, p->repl, p->repllen) == 0))
		sb_add(tmp, p->repl, p->repllen);
	for (i = 0; i < n; i++)
		if (s[i] == ' ')
			sb_add(tmp, p->repl, p->repllen);
		else
			sb_addc(tmp, s[i]);
	if (!p->split) {
		pieces_add(out, tmp->data, tmp->len, first);
		return;
	}
	/* Each replacement character starts a new piece. */
	{
		struct tok_pattern lit;

		memset(&lit, 0, sizeof(lit));
		lit.lit = (char *)p->repl;
		lit.litlen = p->repllen;
		seg_pattern(sc, &lit, tmp->data, tmp->len);
		seg_emit(sc, tmp->data, first, SPLIT_MERGED_NEXT, 0, out);
	}
}

static void
pretok_one(const struct pretok *p, const char *s, size_t n, int first,
    struct pieces *out, struct pieces *sc)
{
	switch (p->type) {
	case PT_BYTELEVEL:
		pretok_bytelevel(p, s, n, first, out, sc);
		break;
	case PT_SPLIT:
		seg_pattern(sc, (struct tok_pattern *)&p->pat, s, n);
		seg_emit(sc, s, first, p->behavior, p->invert, out);
		break;
	case PT_METASPACE:
		pretok_metaspace(p, s, n, first, out, sc);
		break;
	case PT_DIGITS:
		seg_chars(sc, s, n, is_num_pred);
		seg_emit(sc, s, first, p->individual ? SPLIT_ISOLATED :
		    SPLIT_CONTIGUOUS, 0, out);
		break;
	case PT_WHITESPACE:
		seg_pattern(sc, (struct tok_pattern *)&p->pat, s, n);
		seg_emit(sc, s, first, SPLIT_REMOVED, 1, out);
		break;
	case PT_WSSPLIT:
		seg_chars(sc, s, n, is_space_pred);
		seg_emit(sc, s, first, SPLIT_REMOVED, 0, out);
		break;
	case PT_PUNCT:
		seg_chars(sc, s, n, is_punct_pred);
		seg_emit(sc, s, first, p->behavior, 0, out);
		break;
	}
}

void
tok_pretokenize(const struct pretok *p, struct pieces *in, struct pieces *out,
    struct pieces *tmp)
{
	struct pieces t;
	size_t i, k;

	pieces_clear(out);
	if (p->type != PT_SEQ) {
		for (i = 0; i < in->n; i++)
			pretok_one(p, in->buf.data + in->v[i].off, in->v[i].len,
			    in->v[i].first, out, tmp);
		return;
	}
	/* A sequence: each stage reads the previous one's pieces. */
	if (p->nsub == 0) {
		for (i = 0; i < in->n; i++)
			pieces_add(out, in->buf.data + in->v[i].off,
			    in->v[i].len, in->v[i].first);
		return;
	}
	for (k = 0; k < p->nsub; k++) {
		tok_pretokenize(p->sub[k], in, out, tmp);
		if (k + 1 < p->nsub) {
			/* out becomes the next input; in is reused. */
			t = *in, *in = *out, *out = t;
		}
	}
}

/* ------------------------------------------------------------------------ */
/* Decoders */

static void *
build_decoder_v(json_t *j, struct tok_err *e, const char *field)
{
	return build_decoder(j, e, field);
}

struct decoder *
build_decoder(json_t *j, struct tok_err *e, const char *field)
{
	struct decoder *d;
	const char *type;
	char f[256];
	json_t *v;

	if ((type = type_of(j, e, field)) == NULL)
		return NULL;
	d = xcalloc(1, sizeof(*d));
	if (strcmp(type, "Sequence") == 0) {
		d->type = DEC_SEQ;
		d->sub = (struct decoder **)build_list(j, "decoders", &d->nsub,
		    e, field, build_decoder_v);
	} else if (strcmp(type, "ByteLevel") == 0)
		d->type = DEC_BYTELEVEL;
	else if (strcmp(type, "Replace") == 0) {
		d->type = DEC_REPLACE;
		d->str = xstrdup(get_str(j, "content", ""));
		snprintf(f, sizeof(f), "%s.pattern", field);
		tpat_build(&d->pat, json_object_get(j, "pattern"), e, f);
	} else if (strcmp(type, "ByteFallback") == 0)
		d->type = DEC_BYTEFALLBACK;
	else if (strcmp(type, "Fuse") == 0)
		d->type = DEC_FUSE;
	else if (strcmp(type, "Strip") == 0) {
		d->type = DEC_STRIP;
		d->str = xstrdup(get_str(j, "content", " "));
		d->strlen = strlen(d->str);
		v = json_object_get(j, "start");
		d->start = json_is_integer(v) ? json_integer_value(v) : 0;
		v = json_object_get(j, "stop");
		d->stop = json_is_integer(v) ? json_integer_value(v) : 0;
		if (d->strlen == 0)
			tok_fail(e, field, "Strip with an empty content");
	} else if (strcmp(type, "Metaspace") == 0) {
		d->type = DEC_METASPACE;
		if (get_replacement(j, d->repl, &d->repllen, e, field) == 0)
			get_prepend_scheme(j, &d->prepend, e, field);
	} else if (strcmp(type, "BPEDecoder") == 0) {
		d->type = DEC_BPE;
		d->str = xstrdup(get_str(j, "suffix", "</w>"));
		d->strlen = strlen(d->str);
	} else
		tok_fail(e, field, "unsupported decoder \"%s\" (supported: "
		    "Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, "
		    "Metaspace, BPEDecoder)", type);
	if (e->failed) {
		free_decoder(d);
		return NULL;
	}
	return d;
}

void
free_decoder(struct decoder *d)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < d->nsub; i++)
		free_decoder(d->sub[i]);
	free(d->sub);
	free(d->str);
	tpat_free(&d->pat);
	free(d);
}

#define TOK(l, i)	((l)->buf.data + (l)->off[i])

/*
 * ByteLevel: every token's characters back to bytes, all tokens joined,
 * then read as UTF-8 with invalid sequences replaced.  A token holding a
 * character outside the alphabet (an added token, say) is taken as is.
 */
static void
dec_bytelevel(struct toklist *in, struct toklist *out)
{
	struct strbuf raw;
	size_t i, k, cl, start;
	const unsigned char *s;
	int b;

	sb_init(&raw);
	for (i = 0; i < in->n; i++) {
		s = (const unsigned char *)TOK(in, i);
		start = raw.len;
		for (k = 0; k < in->len[i]; k += cl) {
			b = bytelevel_dec(tu8_get(s + k, in->len[i] - k, &cl));
			if (b < 0)
				break;
			sb_addc(&raw, b);
		}
		if (k < in->len[i]) {
			raw.len = start;
			sb_add(&raw, s, in->len[i]);
		}
	}
	sb_clear(&out->buf);
	out->n = 0;
	toklist_add(out, "", 0, 0);
	tu8_lossy(&out->buf, (const unsigned char *)raw.data, raw.len);
	out->len[0] = out->buf.len;
	sb_free(&raw);
}

/* ByteFallback: runs of <0xNN> tokens become the text of their bytes. */
static void
flush_bytes(struct toklist *out, struct strbuf *bytes)
{
	size_t i;

	if (bytes->len == 0)
		return;
	if (tu8_valid((const unsigned char *)bytes->data, bytes->len))
		toklist_add(out, bytes->data, bytes->len, 0);
	else
		for (i = 0; i < bytes->len; i++)	/* one U+FFFD a byte */
			toklist_add(out, "\xef\xbf\xbd", 3, 0);
	sb_clear(bytes);
}

static void
dec_bytefallback(struct toklist *in, struct toklist *out)
{
	struct strbuf bytes;
	const char *t;
	size_t i;

	sb_init(&bytes);
	for (i = 0; i < in->n; i++) {
		t = TOK(in, i);
		if (in->len[i] == 6 && memcmp(t, "<0x", 3) == 0 && t[5] == '>' &&
		    pp_hexval(t[3]) >= 0 && pp_hexval(t[4]) >= 0) {
			sb_addc(&bytes,
			    pp_hexval(t[3]) << 4 | pp_hexval(t[4]));
			continue;
		}
		flush_bytes(out, &bytes);
		toklist_add(out, t, in->len[i], in->added[i]);
	}
	flush_bytes(out, &bytes);
	sb_free(&bytes);
}

static void
dec_strip(const struct decoder *d, struct toklist *in, struct toklist *out)
{
	size_t i, s, e, n;
	int k;

	for (i = 0; i < in->n; i++) {
		const char *t = TOK(in, i);
		n = in->len[i];
		s = 0;
		e = n;
		for (k = 0; k < d->start && s + d->strlen <= e &&
		    memcmp(t + s, d->str, d->strlen) == 0; k++)
			s += d->strlen;
		for (k = 0; k < d->stop && e >= s + d->strlen &&
		    memcmp(t + e - d->strlen, d->str, d->strlen) == 0; k++)
			e -= d->strlen;
		toklist_add(out, t + s, e - s, in->added[i]);
	}
}

/* Metaspace: the replacement back to spaces; in the first token, when a
 * prefix was prepended on the way in, the replacement is dropped. */
static void
dec_metaspace(const struct decoder *d, struct toklist *in,
    struct toklist *out)
{
	size_t i, k, start;
	const char *t;

	for (i = 0; i < in->n; i++) {
		t = TOK(in, i);
		start = out->buf.len;
		for (k = 0; k < in->len[i]; ) {
			if (in->len[i] - k >= d->repllen &&
			    memcmp(t + k, d->repl, d->repllen) == 0) {
				if (i > 0 || d->prepend == PREPEND_NEVER)
					sb_addc(&out->buf, ' ');
				k += d->repllen;
			} else
				sb_addc(&out->buf, t[k++]);
		}
		toklist_commit(out, start, in->added[i]);
	}
}

static void
dec_replace(const struct decoder *d, struct toklist *in, struct toklist *out)
{
	struct strbuf b, tmp;
	size_t i;

	sb_init(&b);
	sb_init(&tmp);
	for (i = 0; i < in->n; i++) {
		sb_clear(&b);
		sb_add(&b, TOK(in, i), in->len[i]);
		replace_all((struct tok_pattern *)&d->pat, d->str, &b, &tmp);
		toklist_add(out, b.data, b.len, in->added[i]);
	}
	sb_free(&b);
	sb_free(&tmp);
}

static void
dec_bpe(const struct decoder *d, struct toklist *in, struct toklist *out)
{
	struct strbuf b, tmp;
	struct tok_pattern lit;
	size_t i;

	memset(&lit, 0, sizeof(lit));
	lit.lit = d->str;
	lit.litlen = d->strlen;
	sb_init(&b);
	sb_init(&tmp);
	for (i = 0; i < in->n; i++) {
		sb_clear(&b);
		sb_add(&b, TOK(in, i), in->len[i]);
		if (d->strlen)
			replace_all(&lit, i + 1 == in->n ? "" : " ", &b, &tmp);
		toklist_add(out, b.data, b.len, in->added[i]);
	}
	sb_free(&b);
	sb_free(&tmp);
}

void
tok_decode_tokens(const struct decoder *d, struct toklist *in,
    struct toklist *out)
{
	struct toklist t;
	size_t i;

	toklist_clear(out);
	switch (d->type) {
	case DEC_SEQ:
		for (i = 0; i < in->n; i++)
			toklist_add(out, TOK(in, i), in->len[i], in->added[i]);
		for (i = 0; i < d->nsub; i++) {
			t = *in, *in = *out, *out = t;
			tok_decode_tokens(d->sub[i], in, out);
		}
		break;
	case DEC_BYTELEVEL:
		dec_bytelevel(in, out);
		break;
	case DEC_REPLACE:
		dec_replace(d, in, out);
		break;
	case DEC_BYTEFALLBACK:
		dec_bytefallback(in, out);
		break;
	case DEC_FUSE:
		toklist_add(out, "", 0, 0);
		for (i = 0; i < in->n; i++)
			sb_add(&out->buf, TOK(in, i), in->len[i]);
		out->len[0] = out->buf.len;
		break;
	case DEC_STRIP:
		dec_strip(d, in, out);
		break;
	case DEC_METASPACE:
		dec_metaspace(d, in, out);
		break;
	case DEC_BPE:
		dec_bpe(d, in, out);
		break;
	}
}
