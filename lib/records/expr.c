/*
 * expr.c: a recursive-descent parser for the --where language into a tree,
 * and its evaluation against a record.  Expressions are short and parsed
 * once; evaluation is what runs per record, so it allocates nothing.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "records/expr.h"
#include "records/record.h"
#include "util/util.h"

enum node_type { N_OR, N_AND, N_NOT, N_CMP, N_TRUTH };
enum cmp_op { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };

struct operand {
	char *field;		/* a path, or NULL for a literal */
	msgpack_object lit;
};

struct expr {
	enum node_type type;
	enum cmp_op op;
	struct expr *a, *b;	/* children of OR, AND, NOT */
	struct operand l, r;	/* CMP: l op r; TRUTH: l */
	struct expr *made;	/* the node made before this one */
};

/* ------------------------------------------------------------------------ */
/* Parsing */

enum tok {
	T_END, T_LPAREN, T_RPAREN, T_NOT, T_AND, T_OR, T_CMP, T_FIELD,
	T_NUM, T_STR, T_TRUE, T_FALSE
};

struct parser {
	const char *src;
	size_t pos;		/* start of the current token */
	size_t next;		/* just past it */
	enum tok tok;
	enum cmp_op op;		/* T_CMP */
	int depth;
	struct expr *made;	/* every node made, latest first */
	char *err;
	size_t errsz;
	int col;
	jmp_buf fail;
};

static void __attribute__((noreturn, format(printf, 3, 4)))
perr(struct parser *p, size_t pos, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err, p->errsz, fmt, ap);
	va_end(ap);
	p->col = (int)pos + 1;
	longjmp(p->fail, 1);
}

static int
is_name_start(int c)
{
	return isalpha((unsigned char)c) || c == '_';
}

static int
is_name_char(int c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '.';
}

/* Scan the token that starts at or after p->next. */
static void
lex(struct parser *p)
{
	const char *s = p->src;
	size_t i = p->next;
	while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')
		i++;
	p->pos = i;
	char c = s[i], d = c ? s[i + 1] : 0;
	size_t n = 1;
	switch (c) {
	case 0:
		p->tok = T_END;
		n = 0;
		break;
	case '(':
		p->tok = T_LPAREN;
		break;
	case ')':
		p->tok = T_RPAREN;
		break;
	case '!':
		if (d == '=') {
			p->tok = T_CMP, p->op = OP_NE, n = 2;
		} else
			p->tok = T_NOT;
		break;
	case '=':
		if (d != '=')
			perr(p, i, "'=' is not an operator (did you mean "
			    "'=='?)");
		p->tok = T_CMP, p->op = OP_EQ, n = 2;
		break;
	case '<':
	case '>':
		p->tok = T_CMP;
		p->op = c == '<' ? OP_LT : OP_GT;
		if (d == '=')
			p->op = c == '<' ? OP_LE : OP_GE, n = 2;
		break;
	case '&':
	case '|':
		if (d != c)
			perr(p, i, "'%c' is not an operator (did you mean "
			    "'%c%c'?)", c, c, c);
		p->tok = c == '&' ? T_AND : T_OR;
		n = 2;
		break;
	case '"':
		for (n = 1; s[i + n] != '"'; n++) {
			if (s[i + n] == 0)
				perr(p, i, "unterminated string");
			if (s[i + n] == '\\') {
				if (s[i + n + 1] != '"' && s[i + n + 1] != '\\')
					perr(p, i + n, "unknown escape in "
					    "string (only \\\" and \\\\)");
				n++;
			}
		}
		n++;
		p->tok = T_STR;
		break;
	default:
		if (isdigit((unsigned char)c) || ((c == '-' || c == '+' ||
		    c == '.') && (isdigit((unsigned char)d) || (d == '.' &&
		    isdigit((unsigned char)s[i + 2]))))) {
			char *end;
			strtod(s + i, &end);
			n = (size_t)(end - (s + i));
			if (n == 0 || is_name_char(s[i + n]))
				perr(p, i, "malformed number");
			p->tok = T_NUM;
		} else if (is_name_start(c)) {
			while (is_name_char(s[i + n]))
				n++;
			if (s[i + n - 1] == '.' || memmem(s + i, n, "..", 2))
				perr(p, i, "malformed field name");
			p->tok = T_FIELD;
			if (n == 4 && memcmp(s + i, "true", 4) == 0)
				p->tok = T_TRUE;
			else if (n == 5 && memcmp(s + i, "false", 5) == 0)
				p->tok = T_FALSE;
		} else if (isprint((unsigned char)c))
			perr(p, i, "unexpected '%c'", c);
		else
			perr(p, i, "unexpected byte 0x%02x", (unsigned char)c);
	}
	p->next = i + n;
}

static void
operand_free(struct operand *o)
{
	free(o->field);
	if (o->field == NULL && o->lit.type == MSGPACK_OBJECT_STR)
		free((char *)o->lit.via.str.ptr);
}

static struct expr *
node(struct parser *p, enum node_type type)
{
	struct expr *e = xcalloc(1, sizeof(*e));
	e->type = type;
	e->made = p->made;
	p->made = e;
	return e;
}

/* The current token as an operand; 0 if it is not one. */
static int
operand(struct parser *p, struct operand *o)
{
	const char *s = p->src + p->pos;
	size_t n = p->next - p->pos;
	memset(o, 0, sizeof(*o));
	switch (p->tok) {
	case T_FIELD:
		o->field = xmalloc(n + 1);
		memcpy(o->field, s, n);
		o->field[n] = 0;
		break;
	case T_NUM: {
		/* Integers stay integers, so they compare exactly. */
		char *end;
		errno = 0;
		long long v = strtoll(s, &end, 10);
		if ((size_t)(end - s) == n && errno == 0) {
			o->lit.type = v < 0 ? MSGPACK_OBJECT_NEGATIVE_INTEGER :
			    MSGPACK_OBJECT_POSITIVE_INTEGER;
			o->lit.via.i64 = v;
		} else {
			o->lit.type = MSGPACK_OBJECT_FLOAT64;
			o->lit.via.f64 = strtod(s, NULL);
		}
		break;
	}
	case T_STR: {
		char *t = xmalloc(n);
		size_t len = 0;
		for (size_t i = 1; i + 1 < n; i++) {
			if (s[i] == '\\')
				i++;
			t[len++] = s[i];
		}
		o->lit.type = MSGPACK_OBJECT_STR;
		o->lit.via.str.ptr = t;
		o->lit.via.str.size = (uint32_t)len;
		break;
	}
	case T_TRUE:
	case T_FALSE:
		o->lit.type = MSGPACK_OBJECT_BOOLEAN;
		o->lit.via.boolean = p->tok == T_TRUE;
		break;
	default:
		return 0;
	}
	return 1;
}

static struct expr *parse_or(struct parser *);

static struct expr *
parse_unary(struct parser *p)
{
	struct expr *e;
	if (++p->depth > 200)
		perr(p, p->pos, "expression nested too deeply");
	if (p->tok == T_NOT) {
		lex(p);
		e = node(p, N_NOT);
		e->a = parse_unary(p);
	} else if (p->tok == T_LPAREN) {
		size_t open = p->pos;
		lex(p);
		e = parse_or(p);
		if (p->tok == T_END)
			perr(p, open, "unbalanced '('");
		if (p->tok != T_RPAREN)
			perr(p, p->pos, "expected ')'");
		lex(p);
	} else {
		e = node(p, N_TRUTH);
		if (!operand(p, &e->l))
			perr(p, p->pos, "expected a field, number, string or "
			    "'('");
		lex(p);
		if (p->tok == T_CMP) {
			e->type = N_CMP;
			e->op = p->op;
			lex(p);
			if (!operand(p, &e->r))
				perr(p, p->pos, "expected a field, number or "
				    "string after the operator");
			lex(p);
		}
	}
	p->depth--;
	return e;
}

static struct expr *
parse_and(struct parser *p)
{
	struct expr *e = parse_unary(p);
	while (p->tok == T_AND) {
		lex(p);
		struct expr *n = node(p, N_AND);
		n->a = e;
		n->b = parse_unary(p);
		e = n;
	}
	return e;
}

static struct expr *
parse_or(struct parser *p)
{
	struct expr *e = parse_and(p);
	while (p->tok == T_OR) {
		lex(p);
		struct expr *n = node(p, N_OR);
		n->a = e;
		n->b = parse_and(p);
		e = n;
	}
	return e;
}

struct expr *
expr_parse(const char *src, char *err, size_t errsz, int *col)
{
	/*
	 * The parser lives on the heap: automatic variables changed after
	 * setjmp would be indeterminate after the longjmp.
	 */
	struct parser *p = xcalloc(1, sizeof(*p));
	struct expr *e = NULL;
	p->src = src;
	p->err = err;
	p->errsz = errsz;
	if (setjmp(p->fail)) {
		/* The partial tree is not a tree yet: free by the made list. */
		while (p->made != NULL) {
			struct expr *n = p->made;
			p->made = n->made;
			operand_free(&n->l);
			operand_free(&n->r);
			free(n);
		}
		*col = p->col;
		free(p);
		return NULL;
	}
	lex(p);
	if (p->tok == T_END)
		perr(p, p->pos, "empty expression");
	e = parse_or(p);
	if (p->tok == T_RPAREN)
		perr(p, p->pos, "unbalanced ')'");
	if (p->tok != T_END)
		perr(p, p->pos, "expected '&&', '||' or the end");
	free(p);
	return e;
}

void
expr_free(struct expr *e)
{
	if (e == NULL)
		return;
	expr_free(e->a);
	expr_free(e->b);
	operand_free(&e->l);
	operand_free(&e->r);
	free(e);
}

/* ------------------------------------------------------------------------ */
/* Evaluation */

static const msgpack_object *
value(const struct operand *o, const struct rec *r)
{
	const msgpack_object *v = o->field ? rec_get_path(r, o->field) :
	    &o->lit;
	if (v != NULL && v->type == MSGPACK_OBJECT_NIL)
		return NULL;
	return v;
}

static int
is_int(const msgpack_object *v)
{
	return v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
}

static int
is_num(const msgpack_object *v)
{
	return is_int(v) || v->type == MSGPACK_OBJECT_FLOAT32 ||
	    v->type == MSGPACK_OBJECT_FLOAT64;
}

static double
num(const msgpack_object *v)
{
	if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		return (double)v->via.u64;
	if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		return (double)v->via.i64;
	return v->via.f64;
}

/*
 * Three-way comparison of a and b into *c; returns 0 when they are not
 * ordered (different types, booleans, NaN), 1 otherwise.  Integers compare
 * exactly: a double cannot hold every int64.
 */
static int
compare(const msgpack_object *a, const msgpack_object *b, int *c)
{
	if (is_int(a) && is_int(b)) {
		int na = a->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
		int nb = b->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
		if (na != nb)
			*c = na ? -1 : 1;
		else if (na)
			*c = (a->via.i64 > b->via.i64) - (a->via.i64 <
			    b->via.i64);
		else
			*c = (a->via.u64 > b->via.u64) - (a->via.u64 <
			    b->via.u64);
		return 1;
	}
	if (is_num(a) && is_num(b)) {
		double x = num(a), y = num(b);
		if (x != x || y != y)
			return 0;
		*c = (x > y) - (x < y);
		return 1;
	}
	if (a->type == MSGPACK_OBJECT_STR && b->type == MSGPACK_OBJECT_STR) {
		uint32_t la = a->via.str.size, lb = b->via.str.size;
		int m = memcmp(a->via.str.ptr, b->via.str.ptr, la < lb ? la :
		    lb);
		*c = m != 0 ? (m > 0) - (m < 0) : (la > lb) - (la < lb);
		return 1;
	}
	return 0;
}

static int
eval_cmp(const struct expr *e, const struct rec *r)
{
	const msgpack_object *a = value(&e->l, r), *b = value(&e->r, r);
	int c;
	if (a == NULL || b == NULL)
		return 0;
	if (!compare(a, b, &c)) {
		/* Unordered: only (in)equality means anything. */
		int eq = a->type == MSGPACK_OBJECT_BOOLEAN &&
		    b->type == MSGPACK_OBJECT_BOOLEAN ? a->via.boolean ==
		    b->via.boolean : msgpack_object_equal(*a, *b);
		if (e->op == OP_EQ)
			return eq;
		if (e->op == OP_NE)
			return !eq;
		return 0;
	}
	switch (e->op) {
	case OP_EQ: return c == 0;
	case OP_NE: return c != 0;
	case OP_LT: return c < 0;
	case OP_LE: return c <= 0;
	case OP_GT: return c > 0;
	case OP_GE: return c >= 0;
	}
	return 0;
}

static int
truth(const msgpack_object *v)
{
	if (v == NULL)
		return 0;
	if (v->type == MSGPACK_OBJECT_BOOLEAN)
		return v->via.boolean;
	if (is_num(v))
		return num(v) != 0;
	return 1;
}

int
expr_eval(const struct expr *e, const struct rec *r)
{
	switch (e->type) {
	case N_OR:
		return expr_eval(e->a, r) || expr_eval(e->b, r);
	case N_AND:
		return expr_eval(e->a, r) && expr_eval(e->b, r);
	case N_NOT:
		return !expr_eval(e->a, r);
	case N_CMP:
		return eval_cmp(e, r);
	case N_TRUTH:
		return truth(value(&e->l, r));
	}
	return 0;
}
