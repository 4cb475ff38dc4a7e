/*
 * jinja_lex.c: template source into tokens, with jinja2's whitespace
 * control as transformers configures it:
 *
 *   {%- -%} {{- -}} {#- -#}   strip the whitespace before / after the tag
 *   trim_blocks              the newline after %} or #} goes
 *   lstrip_blocks            spaces and tabs from the start of a line to a
 *                            {% or {# go ({%+ keeps them)
 *   keep_trailing_newline    off: one newline at the end of the source goes
 */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/jinja_impl.h"
#include "text/tok_impl.h"

struct lexer {
	struct jarena *a;
	const char *src;
	size_t n;
	size_t pos;		/* where lexing is */
	size_t lc_pos;		/* line and column of lc_pos, advanced */
	int line, col;
	struct jtok *t;
	size_t nt, cap;
	const char *where;
	char *err;
	size_t errsz;
};

static void
linecol(struct lexer *l, size_t pos, int *line, int *col)
{
	if (pos < l->lc_pos) {	/* only for errors: count afresh */
		l->lc_pos = 0;
		l->line = l->col = 1;
	}
	for (; l->lc_pos < pos; l->lc_pos++)
		if (l->src[l->lc_pos] == '\n') {
			l->line++;
			l->col = 1;
		} else if (((unsigned char)l->src[l->lc_pos] & 0xc0) != 0x80)
			l->col++;
	*line = l->line;
	*col = l->col;
}

static int
lex_error(struct lexer *l, size_t pos, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	int line, col;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	linecol(l, pos, &line, &col);
	snprintf(l->err, l->errsz, "%s: line %d, column %d: %s", l->where,
	    line, col, msg);
	return -1;
}

static struct jtok *
push(struct lexer *l, enum jtok_type t, size_t pos, const char *p, size_t n)
{
	if (l->nt == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 256;
		l->t = xreallocarray(l->t, l->cap, sizeof(*l->t));
	}
	struct jtok *k = &l->t[l->nt++];
	memset(k, 0, sizeof(*k));
	k->t = t;
	k->p = p;
	k->n = n;
	linecol(l, pos, &k->line, &k->col);
	return k;
}

static int
is_ws(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
	    ch == '\f' || ch == '\v';
}

/*
 * The text [from, to) before a tag.  strip: the tag opens with '-';
 * lstrip: lstrip_blocks applies (a {% or {# without '+').
 */
static void
add_text(struct lexer *l, size_t from, size_t to, int strip, int lstrip)
{
	if (strip)
		while (to > from && is_ws(l->src[to - 1]))
			to--;
	else if (lstrip) {
		size_t i = to;
		while (i > from && (l->src[i - 1] == ' ' ||
		    l->src[i - 1] == '\t'))
			i--;
		/* only from the start of a line */
		if (i == 0 || l->src[i - 1] == '\n')
			to = i;
	}
	if (to > from)
		push(l, JT_TEXT, from, l->src + from, to - from);
}

/* A string literal at l->pos (the quote), decoded into the arena. */
static int
lex_string(struct lexer *l)
{
	size_t start = l->pos, i = l->pos + 1;
	char q = l->src[start];
	struct strbuf b;

	sb_init(&b);
	sb_adds(&b, "");
	for (; i < l->n && l->src[i] != q; i++) {
		char ch = l->src[i];
		if (ch != '\\') {
			sb_addc(&b, ch);
			continue;
		}
		if (++i >= l->n)
			break;
		ch = l->src[i];
		switch (ch) {
		case 'n': sb_addc(&b, '\n'); break;
		case 't': sb_addc(&b, '\t'); break;
		case 'r': sb_addc(&b, '\r'); break;
		case 'b': sb_addc(&b, '\b'); break;
		case 'f': sb_addc(&b, '\f'); break;
		case 'v': sb_addc(&b, '\v'); break;
		case '0': sb_addc(&b, '\0'); break;
		case '\\': case '\'': case '"': sb_addc(&b, ch); break;
		case '\n': break;
		case 'x': case 'u': case 'U': {
			int nd = ch == 'x' ? 2 : ch == 'u' ? 4 : 8;
			long cp = 0;
			for (int d = 0; d < nd; d++) {
				char h = i + 1 + d < l->n ? l->src[i + 1 + d] : 0;
				if (!isxdigit((unsigned char)h)) {
					sb_free(&b);
					return lex_error(l, i - 1, "bad \\%c "
					    "escape", ch);
				}
				cp = cp * 16 + (isdigit((unsigned char)h) ?
				    h - '0' : (tolower((unsigned char)h) - 'a' +
				    10));
			}
			i += nd;
			if (cp > 0x10ffff) {
				sb_free(&b);
				return lex_error(l, i, "bad \\%c escape", ch);
			}
			tu8_put(&b, (int32_t)cp);
			break;
		}
		default:	/* Python keeps an unknown escape as it is */
			sb_addc(&b, '\\');
			sb_addc(&b, ch);
		}
	}
	if (i >= l->n) {
		sb_free(&b);
		return lex_error(l, start, "unterminated string");
	}
	push(l, JT_STR, start, ja_strndup(l->a, b.data, b.len), b.len);
	sb_free(&b);
	l->pos = i + 1;
	return 0;
}

static int
lex_number(struct lexer *l)
{
	size_t start = l->pos, i = l->pos;
	char buf[128];
	size_t k = 0;
	int isf = 0;

	while (i < l->n && (isdigit((unsigned char)l->src[i]) ||
	    l->src[i] == '_'))
		i++;
	if (i + 1 < l->n && l->src[i] == '.' &&
	    isdigit((unsigned char)l->src[i + 1])) {
		isf = 1;
		for (i++; i < l->n && (isdigit((unsigned char)l->src[i]) ||
		    l->src[i] == '_'); i++)
			;
	}
	if (i < l->n && (l->src[i] == 'e' || l->src[i] == 'E')) {
		size_t j = i + 1;
		if (j < l->n && (l->src[j] == '+' || l->src[j] == '-'))
			j++;
		if (j < l->n && isdigit((unsigned char)l->src[j])) {
			isf = 1;
			for (i = j; i < l->n && isdigit((unsigned char)l->src[i]);
			    i++)
				;
		}
	}
	for (size_t j = start; j < i && k + 1 < sizeof(buf); j++)
		if (l->src[j] != '_')
			buf[k++] = l->src[j];
	buf[k] = 0;
	struct jtok *t = push(l, isf ? JT_FLOAT : JT_INT, start, l->src + start,
	    i - start);
	if (isf)
		t->f = strtod(buf, NULL);
	else
		t->i = strtoll(buf, NULL, 10);
	l->pos = i;
	return 0;
}

/* Whether a tag closes at l->pos; its length in *len, '-' in *strip. */
static int
at_close(struct lexer *l, int stmt, size_t *len, int *strip)
{
	const char *s = l->src + l->pos;
	size_t left = l->n - l->pos;
	char c2 = stmt ? '%' : '}';

	*strip = 0;
	if (left >= 2 && s[0] == c2 && s[1] == '}') {
		*len = 2;
		return 1;
	}
	if (left >= 3 && (s[0] == '-' || (stmt && s[0] == '+')) &&
	    s[1] == c2 && s[2] == '}') {
		*strip = s[0] == '-';
		*len = 3;
		return 1;
	}
	return 0;
}

static const char *const ops[] = { "//", "**", "==", "!=", "<=", ">=",
    "+", "-", "*", "/", "%", "~", "<", ">", "=", "(", ")", "[", "]", "{",
    "}", ",", ".", ":", "|", NULL };

/*
 * The inside of a tag, from l->pos to its close; returns 0 and leaves
 * l->pos after the close, with *strip for a '-' close.
 */
static int
lex_tag(struct lexer *l, int stmt, size_t open, int *strip)
{
	size_t len;
	int depth = 0;		/* of brackets: a } inside them is one */

	for (;;) {
		while (l->pos < l->n && is_ws(l->src[l->pos]))
			l->pos++;
		if (l->pos >= l->n)
			return lex_error(l, open, "unclosed %s",
			    stmt ? "{%" : "{{");
		if (depth == 0 && at_close(l, stmt, &len, strip)) {
			push(l, stmt ? JT_STMT_CLOSE : JT_EXPR_CLOSE, l->pos,
			    l->src + l->pos, len);
			l->pos += len;
			return 0;
		}
		char ch = l->src[l->pos];
		if (ch == '\'' || ch == '"') {
			if (lex_string(l) < 0)
				return -1;
			continue;
		}
		if (isdigit((unsigned char)ch)) {
			lex_number(l);
			continue;
		}
		if (isalpha((unsigned char)ch) || ch == '_') {
			size_t s = l->pos;
			while (l->pos < l->n && (isalnum((unsigned char)
			    l->src[l->pos]) || l->src[l->pos] == '_'))
				l->pos++;
			push(l, JT_NAME, s, l->src + s, l->pos - s);
			continue;
		}
		int k;
		for (k = 0; ops[k]; k++) {
			size_t on = strlen(ops[k]);
			if (l->n - l->pos >= on &&
			    memcmp(l->src + l->pos, ops[k], on) == 0)
				break;
		}
		if (ops[k] == NULL)
			return lex_error(l, l->pos, "unexpected character "
			    "'%c'", ch);
		if (strchr("([{", ops[k][0]))
			depth++;
		else if (strchr(")]}", ops[k][0]) && depth > 0)
			depth--;
		push(l, JT_OP, l->pos, ops[k], strlen(ops[k]));
		l->pos += strlen(ops[k]);
	}
}

/* After a tag: '-' strips all whitespace, trim_blocks one newline. */
static void
after_tag(struct lexer *l, int strip, int trim)
{
	if (strip)
		while (l->pos < l->n && is_ws(l->src[l->pos]))
			l->pos++;
	else if (trim) {
		if (l->pos < l->n && l->src[l->pos] == '\n')
			l->pos++;
		else if (l->pos + 1 < l->n && l->src[l->pos] == '\r' &&
		    l->src[l->pos + 1] == '\n')
			l->pos += 2;
	}
}

/*
 * {% raw %} at open (its name at namepos): the text up to {% endraw %}
 * as it is.  Returns 1 when it was one, 0 when not, -1 on error.
 */
static int
lex_raw(struct lexer *l, size_t open, int lstrip_next)
{
	const char *s = l->src + l->pos;
	size_t i = 0, left = l->n - l->pos;

	(void)lstrip_next;
	while (i < left && is_ws(s[i]))
		i++;
	if (left - i < 3 || memcmp(s + i, "raw", 3) != 0 ||
	    (i + 3 < left && (isalnum((unsigned char)s[i + 3]) ||
	    s[i + 3] == '_')))
		return 0;
	i += 3;
	while (i < left && is_ws(s[i]))
		i++;
	int strip = 0;
	if (i < left && s[i] == '-') {
		strip = 1;
		i++;
	}
	if (left - i < 2 || s[i] != '%' || s[i + 1] != '}')
		return 0;
	size_t body = l->pos + i + 2;
	l->pos = body;
	after_tag(l, strip, 1);
	body = l->pos;
	for (size_t j = body; j + 1 < l->n; j++) {
		if (l->src[j] != '{' || l->src[j + 1] != '%')
			continue;
		size_t k = j + 2;
		int lstrip = 0;
		if (k < l->n && l->src[k] == '-') {
			lstrip = 1;
			k++;
		}
		while (k < l->n && is_ws(l->src[k]))
			k++;
		if (l->n - k < 6 || memcmp(l->src + k, "endraw", 6) != 0)
			continue;
		k += 6;
		while (k < l->n && is_ws(l->src[k]))
			k++;
		int rstrip = 0;
		if (k < l->n && l->src[k] == '-') {
			rstrip = 1;
			k++;
		}
		if (l->n - k < 2 || l->src[k] != '%' || l->src[k + 1] != '}')
			continue;
		add_text(l, body, j, lstrip, 1);
		l->pos = k + 2;
		after_tag(l, rstrip, 1);
		return 1;
	}
	return lex_error(l, open, "{%% raw %%} without {%% endraw %%}");
}

struct jtok *
jinja_lex(struct jarena *a, const char *src, size_t *ntok, const char *where,
    char *err, size_t errsz)
{
	struct lexer l = { .a = a, .src = src, .n = strlen(src), .line = 1,
	    .col = 1, .where = where, .err = err, .errsz = errsz };

	/* keep_trailing_newline is off */
	if (l.n > 0 && src[l.n - 1] == '\n') {
		l.n--;
		if (l.n > 0 && src[l.n - 1] == '\r')
			l.n--;
	}
	while (l.pos < l.n) {
		/* the next tag */
		size_t i = l.pos, open;
		for (; i + 1 < l.n; i++)
			if (src[i] == '{' && (src[i + 1] == '{' ||
			    src[i + 1] == '%' || src[i + 1] == '#'))
				break;
		if (i + 1 >= l.n) {
			add_text(&l, l.pos, l.n, 0, 0);
			break;
		}
		open = i;
		char kind = src[i + 1];
		char mod = i + 2 < l.n ? src[i + 2] : 0;
		int lstrip = mod == '-', keep = mod == '+';
		add_text(&l, l.pos, open, lstrip, kind != '{' && !keep);
		l.pos = open + 2 + (lstrip || keep);
		if (kind == '#') {
			const char *e = NULL;
			for (size_t j = l.pos; j + 1 < l.n; j++)
				if (src[j] == '#' && src[j + 1] == '}') {
					e = src + j;
					break;
				}
			if (e == NULL) {
				free(l.t);
				lex_error(&l, open, "unclosed comment");
				return NULL;
			}
			int strip = e > src + l.pos && e[-1] == '-';
			l.pos = e - src + 2;
			after_tag(&l, strip, 1);
			continue;
		}
		if (kind == '%') {
			int r = lex_raw(&l, open, 0);
			if (r < 0) {
				free(l.t);
				return NULL;
			}
			if (r > 0)
				continue;
		}
		int strip;
		push(&l, kind == '%' ? JT_STMT_OPEN : JT_EXPR_OPEN, open,
		    src + open, 2);
		if (lex_tag(&l, kind == '%', open, &strip) < 0) {
			free(l.t);
			return NULL;
		}
		after_tag(&l, strip, kind == '%');
	}
	push(&l, JT_EOF, l.n, src + l.n, 0);
	*ntok = l.nt;
	return l.t;
}
