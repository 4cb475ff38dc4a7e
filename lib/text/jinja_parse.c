/*
 * jinja_parse.c: tokens into nodes, by recursive descent with jinja2's
 * precedence (lowest first):
 *
 *   a if c else b;  or;  and;  not;  comparisons, in, not in;
 *   + -;  ~;  * / // %;  **;  unary - +;  postfix . [] () | is
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "text/jinja_impl.h"

/* Nesting of expressions and of blocks, against a runaway stack. */
#define MAX_DEPTH 200

struct parser {
	struct jarena *a;
	struct jtok *t;
	size_t n, i;
	const char *where;
	char *err;
	size_t errsz;
	jmp_buf fail;
	int has_gen;
	int depth;
};

static void perr(struct parser *p, const struct jtok *at, const char *fmt,
    ...) __attribute__((format(printf, 3, 4), noreturn));

static void
perr(struct parser *p, const struct jtok *at, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(p->err, p->errsz, "%s: line %d, column %d: %s", p->where,
	    at->line, at->col, msg);
	longjmp(p->fail, 1);
}

static struct jtok *
cur(struct parser *p)
{
	return &p->t[p->i];
}

static struct jtok *
advance(struct parser *p)
{
	struct jtok *t = &p->t[p->i];
	if (t->t != JT_EOF)
		p->i++;
	return t;
}

static int
tok_is(const struct jtok *t, enum jtok_type type, const char *s)
{
	return t->t == type && (s == NULL || (t->n == strlen(s) &&
	    memcmp(t->p, s, t->n) == 0));
}

static int
is_op(struct parser *p, const char *s)
{
	return tok_is(cur(p), JT_OP, s);
}

static int
is_name(struct parser *p, const char *s)
{
	return tok_is(cur(p), JT_NAME, s);
}

static const char *
tok_desc(const struct jtok *t, char *buf, size_t n)
{
	switch (t->t) {
	case JT_EOF: return "end of template";
	case JT_EXPR_CLOSE: return "'}}'";
	case JT_STMT_CLOSE: return "'%}'";
	case JT_STR: return "a string";
	default:
		snprintf(buf, n, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->p);
		return buf;
	}
}

static void
expect_op(struct parser *p, const char *s)
{
	char b[64];
	if (!is_op(p, s))
		perr(p, cur(p), "expected '%s', got %s", s,
		    tok_desc(cur(p), b, sizeof(b)));
	advance(p);
}

static struct jtok *
expect_name(struct parser *p)
{
	char b[64];
	if (cur(p)->t != JT_NAME)
		perr(p, cur(p), "expected a name, got %s",
		    tok_desc(cur(p), b, sizeof(b)));
	return advance(p);
}

static void
expect(struct parser *p, enum jtok_type t, const char *what)
{
	char b[64];
	if (cur(p)->t != t)
		perr(p, cur(p), "expected %s, got %s", what,
		    tok_desc(cur(p), b, sizeof(b)));
	advance(p);
}

static struct jnode *
node(struct parser *p, enum jnode_type t, const struct jtok *at)
{
	struct jnode *n = ja_alloc(p->a, sizeof(*n));
	n->t = t;
	n->line = at->line;
	n->col = at->col;
	return n;
}

/* A growing list of arguments. */
struct argv {
	struct jnode **v;
	const char **name;
	size_t n, cap;
};

static void
argv_add(struct parser *p, struct argv *av, struct jnode *x, const char *nm)
{
	if (av->n == av->cap) {
		size_t cap = av->cap ? 2 * av->cap : 4;
		struct jnode **v = ja_alloc(p->a, cap * sizeof(*v));
		const char **nn = ja_alloc(p->a, cap * sizeof(*nn));
		if (av->n) {
			memcpy(v, av->v, av->n * sizeof(*v));
			memcpy(nn, av->name, av->n * sizeof(*nn));
		}
		av->v = v;
		av->name = nn;
		av->cap = cap;
	}
	av->v[av->n] = x;
	av->name[av->n++] = nm;
}

static void
argv_to(struct jnode *n, struct argv *av)
{
	n->args = av->v;
	n->argname = av->name;
	n->nargs = av->n;
}

static struct jnode *parse_expr(struct parser *p, int with_cond);
static struct jnode *parse_unary(struct parser *p, int with_filter);
static struct jnode *parse_primary(struct parser *p);
static struct jnode *parse_postfix(struct parser *p, struct jnode *n);

/* (a, b=c, ...) after the '(' */
static void
parse_call_args(struct parser *p, struct argv *av)
{
	while (!is_op(p, ")")) {
		if (av->n > 0)
			expect_op(p, ",");
		if (is_op(p, ")"))
			break;
		const char *nm = NULL;
		if (cur(p)->t == JT_NAME && tok_is(&p->t[p->i + 1], JT_OP,
		    "=")) {
			struct jtok *k = advance(p);
			nm = ja_strndup(p->a, k->p, k->n);
			advance(p);
		} else if (av->n > 0 && av->name[av->n - 1] != NULL)
			perr(p, cur(p), "a positional argument after a "
			    "keyword argument");
		argv_add(p, av, parse_expr(p, 1), nm);
	}
	expect_op(p, ")");
}

static struct jnode *
lit(struct parser *p, const struct jtok *at, struct jv *v)
{
	struct jnode *n = node(p, JN_LIT, at);
	n->val = v;
	return n;
}

static struct jv *
lit_value(struct parser *p, enum jv_type t)
{
	struct jv *v = ja_alloc(p->a, sizeof(*v));
	v->t = t;
	return v;
}

static struct jnode *
parse_primary(struct parser *p)
{
	struct jtok *t = cur(p);
	struct jnode *n;
	struct jv *v;
	char b[64];

	if (++p->depth > MAX_DEPTH)
		perr(p, t, "expression nested too deep");
	switch (t->t) {
	case JT_NAME:
		advance(p);
		if (tok_is(t, JT_NAME, "true") || tok_is(t, JT_NAME, "True"))
			n = lit(p, t, &jv_true_v);
		else if (tok_is(t, JT_NAME, "false") ||
		    tok_is(t, JT_NAME, "False"))
			n = lit(p, t, &jv_false_v);
		else if (tok_is(t, JT_NAME, "none") ||
		    tok_is(t, JT_NAME, "None"))
			n = lit(p, t, &jv_none_v);
		else {
			n = node(p, JN_NAME, t);
			n->name = ja_strndup(p->a, t->p, t->n);
			n->namelen = t->n;
		}
		break;
	case JT_STR: {
		/* adjacent literals join, as in Python */
		struct strbuf s;
		sb_init(&s);
		sb_adds(&s, "");
		while (cur(p)->t == JT_STR) {
			sb_add(&s, cur(p)->p, cur(p)->n);
			advance(p);
		}
		v = lit_value(p, JV_STR);
		v->u.s.p = ja_strndup(p->a, s.data, s.len);
		v->u.s.n = s.len;
		sb_free(&s);
		n = lit(p, t, v);
		break;
	}
	case JT_INT:
		advance(p);
		v = lit_value(p, JV_INT);
		v->u.i = t->i;
		n = lit(p, t, v);
		break;
	case JT_FLOAT:
		advance(p);
		v = lit_value(p, JV_FLOAT);
		v->u.f = t->f;
		n = lit(p, t, v);
		break;
	case JT_OP:
		if (is_op(p, "(")) {
			advance(p);
			if (is_op(p, ")")) {
				advance(p);
				n = node(p, JN_TUPLE, t);
				break;
			}
			struct jnode *e = parse_expr(p, 1);
			if (is_op(p, ",")) {
				struct argv av = { 0 };
				argv_add(p, &av, e, NULL);
				while (is_op(p, ",")) {
					advance(p);
					if (is_op(p, ")"))
						break;
					argv_add(p, &av, parse_expr(p, 1), NULL);
				}
				n = node(p, JN_TUPLE, t);
				argv_to(n, &av);
			} else
				n = e;
			expect_op(p, ")");
			break;
		}
		if (is_op(p, "[")) {
			struct argv av = { 0 };
			advance(p);
			while (!is_op(p, "]")) {
				if (av.n)
					expect_op(p, ",");
				if (is_op(p, "]"))
					break;
				argv_add(p, &av, parse_expr(p, 1), NULL);
			}
			advance(p);
			n = node(p, JN_LIST, t);
			argv_to(n, &av);
			break;
		}
		if (is_op(p, "{")) {
			struct argv av = { 0 };
			advance(p);
			while (!is_op(p, "}")) {
				if (av.n)
					expect_op(p, ",");
				if (is_op(p, "}"))
					break;
				argv_add(p, &av, parse_expr(p, 1), NULL);
				expect_op(p, ":");
				argv_add(p, &av, parse_expr(p, 1), NULL);
			}
			advance(p);
			n = node(p, JN_DICT, t);
			argv_to(n, &av);
			break;
		}
		/* FALLTHROUGH */
	default:
		perr(p, t, "unexpected %s", tok_desc(t, b, sizeof(b)));
	}
	p->depth--;
	return n;
}

/* [a], [a:b:c] after the '[' */
static struct jnode *
parse_subscript(struct parser *p, struct jnode *obj, const struct jtok *at)
{
	struct jnode *part[3] = { NULL, NULL, NULL };
	int k = 0, slice = 0;

	for (;;) {
		if (is_op(p, ":")) {
			slice = 1;
			advance(p);
			if (++k > 2)
				perr(p, cur(p), "a slice has at most 3 parts");
			continue;
		}
		if (is_op(p, "]"))
			break;
		if (part[k])
			perr(p, cur(p), "expected ':' or ']'");
		part[k] = parse_expr(p, 1);
	}
	advance(p);
	struct jnode *n = node(p, slice ? JN_SLICE : JN_ITEM, at);
	n->a = obj;
	if (slice) {
		n->b = part[0];
		n->c = part[1];
		n->body = part[2];
	} else {
		if (part[0] == NULL)
			perr(p, at, "an empty subscript");
		n->b = part[0];
	}
	return n;
}

static struct jnode *
parse_postfix(struct parser *p, struct jnode *n)
{
	for (;;) {
		struct jtok *t = cur(p);
		if (is_op(p, ".")) {
			advance(p);
			struct jtok *k = cur(p);
			if (k->t == JT_INT) {	/* x.0 is x[0] */
				advance(p);
				struct jnode *it = node(p, JN_ITEM, t);
				struct jv *v = lit_value(p, JV_INT);
				v->u.i = k->i;
				it->a = n;
				it->b = lit(p, k, v);
				n = it;
				continue;
			}
			k = expect_name(p);
			struct jnode *at = node(p, JN_ATTR, t);
			at->a = n;
			at->name = ja_strndup(p->a, k->p, k->n);
			at->namelen = k->n;
			n = at;
		} else if (is_op(p, "[")) {
			advance(p);
			n = parse_subscript(p, n, t);
		} else if (is_op(p, "(")) {
			struct argv av = { 0 };
			advance(p);
			parse_call_args(p, &av);
			struct jnode *c = node(p, JN_CALL, t);
			c->a = n;
			argv_to(c, &av);
			n = c;
		} else
			return n;
	}
}

/* A test's one argument without parentheses: `is divisibleby 3`. */
static int
test_arg_follows(struct parser *p)
{
	struct jtok *t = cur(p);

	if (t->t == JT_NAME)
		return !tok_is(t, JT_NAME, "else") && !tok_is(t, JT_NAME, "or") &&
		    !tok_is(t, JT_NAME, "and") && !tok_is(t, JT_NAME, "is") &&
		    !tok_is(t, JT_NAME, "if") && !tok_is(t, JT_NAME, "in") &&
		    !tok_is(t, JT_NAME, "not");
	return t->t == JT_STR || t->t == JT_INT || t->t == JT_FLOAT ||
	    is_op(p, "[") || is_op(p, "{");
}

static struct jnode *
parse_filters(struct parser *p, struct jnode *n)
{
	for (;;) {
		struct jtok *t = cur(p);
		if (is_op(p, "|")) {
			advance(p);
			struct jtok *k = expect_name(p);
			struct jnode *f = node(p, JN_FILTER, k);
			struct argv av = { 0 };
			f->name = ja_strndup(p->a, k->p, k->n);
			f->namelen = k->n;
			f->a = n;
			if (is_op(p, "(")) {
				advance(p);
				parse_call_args(p, &av);
			}
			argv_to(f, &av);
			n = f;
		} else if (is_name(p, "is")) {
			advance(p);
			int neg = 0;
			if (is_name(p, "not")) {
				advance(p);
				neg = 1;
			}
			struct jtok *k = expect_name(p);
			struct jnode *f = node(p, JN_TEST, t);
			struct argv av = { 0 };
			f->name = ja_strndup(p->a, k->p, k->n);
			f->namelen = k->n;
			f->op = neg;
			f->a = n;
			if (is_op(p, "(")) {
				advance(p);
				parse_call_args(p, &av);
			} else if (test_arg_follows(p)) {
				struct jnode *x = parse_primary(p);
				argv_add(p, &av, parse_postfix(p, x), NULL);
			}
			argv_to(f, &av);
			n = f;
		} else
			return n;
	}
}

static struct jnode *
parse_unary(struct parser *p, int with_filter)
{
	struct jtok *t = cur(p);
	struct jnode *n;

	if (is_op(p, "-") || is_op(p, "+")) {
		advance(p);
		if (++p->depth > MAX_DEPTH)
			perr(p, t, "expression nested too deep");
		n = node(p, tok_is(t, JT_OP, "-") ? JN_NEG : JN_POS, t);
		n->a = parse_unary(p, 0);
		p->depth--;
	} else
		n = parse_postfix(p, parse_primary(p));
	if (with_filter)
		n = parse_filters(p, n);
	return n;
}

static struct jnode *
binop(struct parser *p, const struct jtok *at, int op, struct jnode *a,
    struct jnode *b)
{
	struct jnode *n = node(p, JN_BINOP, at);
	n->op = op;
	n->a = a;
	n->b = b;
	return n;
}

static struct jnode *
parse_pow(struct parser *p)
{
	struct jnode *n = parse_unary(p, 1);
	while (is_op(p, "**")) {
		struct jtok *t = advance(p);
		n = binop(p, t, JO_POW, n, parse_unary(p, 1));
	}
	return n;
}

static struct jnode *
parse_math2(struct parser *p)
{
	struct jnode *n = parse_pow(p);
	for (;;) {
		int op = is_op(p, "*") ? JO_MUL : is_op(p, "/") ? JO_DIV :
		    is_op(p, "//") ? JO_FLOORDIV : is_op(p, "%") ? JO_MOD : -1;
		if (op < 0)
			return n;
		struct jtok *t = advance(p);
		n = binop(p, t, op, n, parse_pow(p));
	}
}

static struct jnode *
parse_concat(struct parser *p)
{
	struct jnode *n = parse_math2(p);
	while (is_op(p, "~")) {
		struct jtok *t = advance(p);
		n = binop(p, t, JO_CAT, n, parse_math2(p));
	}
	return n;
}

static struct jnode *
parse_math1(struct parser *p)
{
	struct jnode *n = parse_concat(p);
	for (;;) {
		int op = is_op(p, "+") ? JO_ADD : is_op(p, "-") ? JO_SUB : -1;
		if (op < 0)
			return n;
		struct jtok *t = advance(p);
		n = binop(p, t, op, n, parse_concat(p));
	}
}

/* a < b < c is a < b and b < c, as in Python */
static struct jnode *
parse_compare(struct parser *p)
{
	struct jnode *n = parse_math1(p), *last = NULL, *all = NULL;
	for (;;) {
		struct jtok *t = cur(p);
		int op = is_op(p, "==") ? JO_EQ : is_op(p, "!=") ? JO_NE :
		    is_op(p, "<") ? JO_LT : is_op(p, "<=") ? JO_LE :
		    is_op(p, ">") ? JO_GT : is_op(p, ">=") ? JO_GE :
		    is_name(p, "in") ? JO_IN : -1;
		if (op < 0 && is_name(p, "not") &&
		    tok_is(&p->t[p->i + 1], JT_NAME, "in")) {
			advance(p);
			op = JO_NOTIN;
		}
		if (op < 0)
			return all ? all : n;
		advance(p);
		struct jnode *cmp = binop(p, t, op, last ? last->b : n,
		    parse_math1(p));
		if (all == NULL)
			all = cmp;
		else {
			struct jnode *both = node(p, JN_AND, t);
			both->a = all;
			both->b = cmp;
			all = both;
		}
		last = cmp;
	}
}

static struct jnode *
parse_not(struct parser *p)
{
	if (is_name(p, "not")) {
		struct jtok *t = advance(p);
		struct jnode *n = node(p, JN_NOT, t);
		if (++p->depth > MAX_DEPTH)
			perr(p, t, "expression nested too deep");
		n->a = parse_not(p);
		p->depth--;
		return n;
	}
	return parse_compare(p);
}

static struct jnode *
parse_and(struct parser *p)
{
	struct jnode *n = parse_not(p);
	while (is_name(p, "and")) {
		struct jtok *t = advance(p);
		struct jnode *x = node(p, JN_AND, t);
		x->a = n;
		x->b = parse_not(p);
		n = x;
	}
	return n;
}

static struct jnode *
parse_or(struct parser *p)
{
	struct jnode *n = parse_and(p);
	while (is_name(p, "or")) {
		struct jtok *t = advance(p);
		struct jnode *x = node(p, JN_OR, t);
		x->a = n;
		x->b = parse_and(p);
		n = x;
	}
	return n;
}

static struct jnode *
parse_expr(struct parser *p, int with_cond)
{
	struct jnode *n = parse_or(p);
	if (++p->depth > MAX_DEPTH)
		perr(p, cur(p), "expression nested too deep");
	while (with_cond && is_name(p, "if")) {
		struct jtok *t = advance(p);
		struct jnode *c = node(p, JN_COND, t);
		c->a = n;
		c->b = parse_or(p);
		if (is_name(p, "else")) {
			advance(p);
			c->c = parse_expr(p, 1);
		}
		n = c;
	}
	p->depth--;
	return n;
}

/* An expression, or a tuple of them without parentheses: a, b */
static struct jnode *
parse_tuple(struct parser *p, int with_cond)
{
	struct jtok *t = cur(p);
	struct jnode *e = parse_expr(p, with_cond);
	if (!is_op(p, ","))
		return e;
	struct argv av = { 0 };
	argv_add(p, &av, e, NULL);
	while (is_op(p, ",")) {
		advance(p);
		if (cur(p)->t == JT_STMT_CLOSE || cur(p)->t == JT_EXPR_CLOSE ||
		    is_op(p, "="))
			break;
		argv_add(p, &av, parse_expr(p, with_cond), NULL);
	}
	struct jnode *n = node(p, JN_TUPLE, t);
	argv_to(n, &av);
	return n;
}

/* An assignment target: a name, ns.attr, or names a, b */
static struct jnode *
parse_target(struct parser *p, int allow_attr)
{
	struct jtok *t = cur(p);
	struct argv av = { 0 };

	for (;;) {
		struct jtok *k = expect_name(p);
		struct jnode *n = node(p, JN_NAME, k);
		n->name = ja_strndup(p->a, k->p, k->n);
		n->namelen = k->n;
		if (allow_attr && is_op(p, ".")) {
			advance(p);
			struct jtok *an = expect_name(p);
			struct jnode *at = node(p, JN_ATTR, an);
			at->a = n;
			at->name = ja_strndup(p->a, an->p, an->n);
			at->namelen = an->n;
			n = at;
		}
		argv_add(p, &av, n, NULL);
		if (!is_op(p, ","))
			break;
		advance(p);
	}
	if (av.n == 1)
		return av.v[0];
	struct jnode *n = node(p, JN_TUPLE, t);
	argv_to(n, &av);
	return n;
}

/* ------------------------------------------------------------------------ */
/* Statements */

static struct jnode *parse_body(struct parser *p, const char *const *stop,
    struct jtok **stopped);

static void
end_stmt(struct parser *p)
{
	expect(p, JT_STMT_CLOSE, "'%}'");
}

/* A body up to one of stop; *which is the name that ended it. */
static struct jnode *
body_until(struct parser *p, const struct jtok *open, const char *tag,
    const char *const *stop, struct jtok **which)
{
	struct jnode *b = parse_body(p, stop, which);
	if (*which == NULL)
		perr(p, open, "'%s' without '%s'", tag, stop[0]);
	return b;
}

static struct jnode *
parse_if(struct parser *p, struct jtok *kw)
{
	static const char *const stop[] = { "endif", "elif", "else", NULL };
	struct jnode *n = node(p, JN_IF, kw);
	struct jtok *w;

	n->a = parse_tuple(p, 1);
	end_stmt(p);
	n->body = body_until(p, kw, "if", stop, &w);
	if (tok_is(w, JT_NAME, "elif")) {
		n->orelse = parse_if(p, w);
		return n;
	}
	if (tok_is(w, JT_NAME, "else")) {
		static const char *const stop2[] = { "endif", NULL };
		end_stmt(p);
		n->orelse = body_until(p, kw, "if", stop2, &w);
	}
	end_stmt(p);
	return n;
}

static struct jnode *
parse_for(struct parser *p, struct jtok *kw)
{
	static const char *const stop[] = { "endfor", "else", NULL };
	struct jnode *n = node(p, JN_FOR, kw);
	struct jtok *w;

	n->a = parse_target(p, 0);
	if (!is_name(p, "in"))
		perr(p, cur(p), "expected 'in'");
	advance(p);
	n->b = parse_tuple(p, 0);
	if (is_name(p, "if")) {
		advance(p);
		n->c = parse_expr(p, 1);
	}
	if (is_name(p, "recursive"))
		perr(p, cur(p), "recursive loops are not supported");
	end_stmt(p);
	n->body = body_until(p, kw, "for", stop, &w);
	if (tok_is(w, JT_NAME, "else")) {
		static const char *const stop2[] = { "endfor", NULL };
		end_stmt(p);
		n->orelse = body_until(p, kw, "for", stop2, &w);
	}
	end_stmt(p);
	return n;
}

static struct jnode *
parse_set(struct parser *p, struct jtok *kw)
{
	struct jnode *target = parse_target(p, 1);
	struct jnode *n;

	if (is_op(p, "=")) {
		advance(p);
		n = node(p, JN_SET, kw);
		n->a = target;
		n->b = parse_tuple(p, 1);
		end_stmt(p);
		return n;
	}
	static const char *const stop[] = { "endset", NULL };
	struct jtok *w;
	if (target->t != JN_NAME)
		perr(p, kw, "a block set assigns one name");
	n = node(p, JN_SET_BLOCK, kw);
	n->a = target;
	if (is_op(p, "|")) {	/* {% set x | filter %} */
		struct jnode *self = node(p, JN_LIT, kw);
		self->val = NULL;
		n->b = parse_filters(p, self);
	}
	end_stmt(p);
	n->body = body_until(p, kw, "set", stop, &w);
	end_stmt(p);
	return n;
}

/* (a, b=default) after a macro's name: names in args, defaults by name */
static void
parse_params(struct parser *p, struct jnode *n)
{
	struct argv names = { 0 }, defs = { 0 };

	expect_op(p, "(");
	while (!is_op(p, ")")) {
		if (names.n)
			expect_op(p, ",");
		if (is_op(p, ")"))
			break;
		struct jtok *k = expect_name(p);
		struct jnode *nm = node(p, JN_NAME, k);
		nm->name = ja_strndup(p->a, k->p, k->n);
		nm->namelen = k->n;
		struct jnode *d = NULL;
		if (is_op(p, "=")) {
			advance(p);
			d = parse_expr(p, 1);
		} else if (defs.n && defs.v[defs.n - 1])
			perr(p, k, "a parameter without a default after one "
			    "with");
		argv_add(p, &names, nm, NULL);
		argv_add(p, &defs, d, NULL);
	}
	advance(p);
	argv_to(n, &names);
	n->orelse = NULL;
	/* the defaults, one per parameter (NULL: none), in c->args */
	n->c = node(p, JN_LIST, cur(p));
	argv_to(n->c, &defs);
}

static struct jnode *
parse_macro(struct parser *p, struct jtok *kw)
{
	static const char *const stop[] = { "endmacro", NULL };
	struct jnode *n = node(p, JN_MACRO, kw);
	struct jtok *k = expect_name(p), *w;

	n->name = ja_strndup(p->a, k->p, k->n);
	n->namelen = k->n;
	parse_params(p, n);
	end_stmt(p);
	n->body = body_until(p, kw, "macro", stop, &w);
	if (cur(p)->t == JT_NAME)	/* {% endmacro name %} */
		advance(p);
	end_stmt(p);
	return n;
}

static struct jnode *
parse_call_block(struct parser *p, struct jtok *kw)
{
	static const char *const stop[] = { "endcall", NULL };
	struct jnode *n = node(p, JN_CALL_BLOCK, kw);
	struct jtok *w;

	/* the caller's parameters: {% call(x) m() %} */
	struct jnode *caller = node(p, JN_MACRO, kw);
	caller->name = "caller";
	caller->namelen = 6;
	if (is_op(p, "("))
		parse_params(p, caller);
	else {
		caller->c = node(p, JN_LIST, kw);
	}
	n->a = parse_expr(p, 1);
	if (n->a->t != JN_CALL)
		perr(p, kw, "{%% call %%} needs a call");
	end_stmt(p);
	caller->body = body_until(p, kw, "call", stop, &w);
	n->b = caller;
	end_stmt(p);
	return n;
}

static struct jnode *
parse_filter_block(struct parser *p, struct jtok *kw)
{
	static const char *const stop[] = { "endfilter", NULL };
	struct jnode *n = node(p, JN_FILTER_BLOCK, kw);
	struct jnode *self = node(p, JN_LIT, kw);
	struct jtok *w;

	self->val = NULL;	/* stands for the block's output */
	/* {% filter f(args)|g %}: the first filter has no '|' */
	struct jtok *k = expect_name(p);
	struct jnode *f = node(p, JN_FILTER, k);
	struct argv av = { 0 };
	f->name = ja_strndup(p->a, k->p, k->n);
	f->namelen = k->n;
	f->a = self;
	if (is_op(p, "(")) {
		advance(p);
		parse_call_args(p, &av);
	}
	argv_to(f, &av);
	n->a = parse_filters(p, f);
	end_stmt(p);
	n->body = body_until(p, kw, "filter", stop, &w);
	end_stmt(p);
	return n;
}

static struct jnode *parse_stmt1(struct parser *p);

static struct jnode *
parse_stmt(struct parser *p)
{
	if (++p->depth > MAX_DEPTH)
		perr(p, cur(p), "blocks nested too deep");
	struct jnode *n = parse_stmt1(p);
	p->depth--;
	return n;
}

static struct jnode *
parse_stmt1(struct parser *p)
{
	struct jtok *kw = expect_name(p), *w;
	struct jnode *n;

	if (tok_is(kw, JT_NAME, "if"))
		return parse_if(p, kw);
	if (tok_is(kw, JT_NAME, "for"))
		return parse_for(p, kw);
	if (tok_is(kw, JT_NAME, "set"))
		return parse_set(p, kw);
	if (tok_is(kw, JT_NAME, "macro"))
		return parse_macro(p, kw);
	if (tok_is(kw, JT_NAME, "call"))
		return parse_call_block(p, kw);
	if (tok_is(kw, JT_NAME, "filter"))
		return parse_filter_block(p, kw);
	if (tok_is(kw, JT_NAME, "generation")) {
		static const char *const stop[] = { "endgeneration", NULL };
		n = node(p, JN_GENERATION, kw);
		end_stmt(p);
		n->body = body_until(p, kw, "generation", stop, &w);
		end_stmt(p);
		p->has_gen = 1;
		return n;
	}
	if (tok_is(kw, JT_NAME, "break") || tok_is(kw, JT_NAME, "continue")) {
		n = node(p, tok_is(kw, JT_NAME, "break") ? JN_BREAK :
		    JN_CONTINUE, kw);
		end_stmt(p);
		return n;
	}
	if (tok_is(kw, JT_NAME, "do")) {	/* {% do expr %}: evaluate */
		n = node(p, JN_SET, kw);
		n->a = NULL;
		n->b = parse_tuple(p, 1);
		end_stmt(p);
		return n;
	}
	perr(p, kw, "unknown tag '%.*s'", (int)kw->n, kw->p);
}

/*
 * Statements up to a {% STOP %} of stop (then *stopped is the STOP name,
 * consumed, and p is after it) or the end of the template (*stopped NULL).
 */
static struct jnode *
parse_body(struct parser *p, const char *const *stop, struct jtok **stopped)
{
	struct jnode *first = NULL, **tail = &first, *n;
	char b[64];

	*stopped = NULL;
	for (;;) {
		struct jtok *t = cur(p);
		if (t->t == JT_EOF)
			return first;
		if (t->t == JT_TEXT) {
			advance(p);
			n = node(p, JN_TEXT, t);
			n->name = t->p;
			n->namelen = t->n;
		} else if (t->t == JT_EXPR_OPEN) {
			advance(p);
			n = node(p, JN_OUTPUT, t);
			n->a = parse_tuple(p, 1);
			expect(p, JT_EXPR_CLOSE, "'}}'");
		} else if (t->t == JT_STMT_OPEN) {
			advance(p);
			struct jtok *k = cur(p);
			for (size_t i = 0; stop && stop[i]; i++)
				if (tok_is(k, JT_NAME, stop[i])) {
					advance(p);
					*stopped = k;
					return first;
				}
			if (k->t == JT_NAME && ((k->n > 3 && memcmp(k->p, "end",
			    3) == 0) || tok_is(k, JT_NAME, "else") ||
			    tok_is(k, JT_NAME, "elif")))
				perr(p, k, "unexpected '%.*s'", (int)k->n, k->p);
			n = parse_stmt(p);
		} else
			perr(p, t, "unexpected %s", tok_desc(t, b, sizeof(b)));
		*tail = n;
		tail = &n->next;
	}
}

struct jnode *
jinja_parse_tokens(struct jarena *a, struct jtok *t, size_t ntok,
    const char *where, int *has_gen, char *err, size_t errsz)
{
	struct parser p = { .a = a, .t = t, .n = ntok, .where = where,
	    .err = err, .errsz = errsz };
	struct jtok *w;
	struct jnode *volatile root = NULL;

	if (setjmp(p.fail))
		return NULL;
	root = parse_body(&p, NULL, &w);
	*has_gen = p.has_gen;
	if (root == NULL)	/* an empty template */
		root = node(&p, JN_TEXT, &t[0]);
	return root;
}
