/*
 * jinja_eval.c: running the nodes, and the public face of the interpreter
 * (jinja.h).  Errors unwind by longjmp to jinja_render, which frees the
 * rendering's arena whole.
 *
 * Scopes are jinja2's: the template's top level, a scope per loop
 * iteration (a set inside a loop does not outlive it), and a scope per
 * macro call whose parent is the scope the macro was defined in.
 */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/jinja_impl.h"
#include "text/tok_impl.h"

struct jinja {
	struct jarena arena;
	struct jnode *root;
	char *where;
	int has_gen;
};

#define MAX_CALL_DEPTH 200
#define MAX_OUTPUT (1u << 28)

enum { FLOW_NEXT, FLOW_BREAK, FLOW_CONTINUE };

void
jfail(struct jctx *c, const struct jnode *at, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (at == NULL)
		at = c->cur;
	if (at)
		snprintf(c->err, c->errsz, "%s: line %d, column %d: %s",
		    c->where, at->line, at->col, msg);
	else
		snprintf(c->err, c->errsz, "%s: %s", c->where, msg);
	longjmp(c->fail, 1);
}

void
jfail_raw(struct jctx *c, const char *msg)
{
	snprintf(c->err, c->errsz, "%s", msg);
	longjmp(c->fail, 1);
}


/* ------------------------------------------------------------------------ */
/* Scopes */

struct jscope *
jscope_new(struct jctx *c, struct jscope *parent)
{
	struct jscope *s = ja_alloc(&c->arena, sizeof(*s));
	s->parent = parent;
	return s;
}

struct jv *
jscope_get(struct jscope *s, const char *k, size_t kn)
{
	for (; s; s = s->parent)
		for (size_t i = 0; i < s->n; i++)
			if (strlen(s->k[i]) == kn && memcmp(s->k[i], k, kn) == 0)
				return s->v[i];
	return NULL;
}

void
jscope_set(struct jctx *c, struct jscope *s, const char *k, size_t kn,
    struct jv *v)
{
	for (size_t i = 0; i < s->n; i++)
		if (strlen(s->k[i]) == kn && memcmp(s->k[i], k, kn) == 0) {
			s->v[i] = v;
			return;
		}
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 8;
		const char **nk = ja_alloc(&c->arena, cap * sizeof(*nk));
		struct jv **nv = ja_alloc(&c->arena, cap * sizeof(*nv));
		if (s->n) {
			memcpy(nk, s->k, s->n * sizeof(*nk));
			memcpy(nv, s->v, s->n * sizeof(*nv));
		}
		s->k = nk;
		s->v = nv;
		s->cap = cap;
	}
	s->k[s->n] = ja_strndup(&c->arena, k, kn);
	s->v[s->n++] = v;
}

/* ------------------------------------------------------------------------ */
/* Expressions */

static struct jv *eval(struct jctx *c, struct jscope *s,
    const struct jnode *n);
static int exec_body(struct jctx *c, struct jscope *s,
    const struct jnode *n);


static long long
floordiv(long long a, long long b)
{
	long long q = a / b;
	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

static long long
floormod(long long a, long long b)
{
	long long r = a % b;
	if (r != 0 && ((r < 0) != (b < 0)))
		r += b;
	return r;
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

static long long
inum(const struct jv *v)
{
	return v->t == JV_INT ? v->u.i : v->u.b;
}

static const char *const op_names[] = { "+", "-", "*", "/", "//", "%", "**",
    "~", "==", "!=", "<", "<=", ">", ">=", "in", "not in" };

static int
contains(struct jctx *c, const struct jnode *n, struct jv *x, struct jv *in)
{
	switch (in->t) {
	case JV_STR:
		if (x->t != JV_STR)
			jfail(c, n, "'in <string>' requires a string, not %s",
			    jv_type_name(x));
		if (x->u.s.n == 0)
			return 1;
		for (size_t i = 0; i + x->u.s.n <= in->u.s.n; i++)
			if (memcmp(in->u.s.p + i, x->u.s.p, x->u.s.n) == 0)
				return 1;
		return 0;
	case JV_LIST:
		for (size_t i = 0; i < in->u.l.n; i++)
			if (jv_equal(x, in->u.l.v[i]))
				return 1;
		return 0;
	case JV_DICT: case JV_NS:
		return x->t == JV_STR && jv_dict_get(in, x->u.s.p, x->u.s.n);
	case JV_UNDEF:
		return 0;
	default:
		jfail(c, n, "argument of type %s is not iterable",
		    jv_type_name(in));
	}
}

static struct jv *
binop(struct jctx *c, const struct jnode *n, struct jv *a, struct jv *b)
{
	int op = n->op;

	switch (op) {
	case JO_EQ: return jv_bool(jv_equal(a, b));
	case JO_NE: return jv_bool(!jv_equal(a, b));
	case JO_LT: return jv_bool(jv_compare(c, a, b) < 0);
	case JO_LE: return jv_bool(jv_compare(c, a, b) <= 0);
	case JO_GT: return jv_bool(jv_compare(c, a, b) > 0);
	case JO_GE: return jv_bool(jv_compare(c, a, b) >= 0);
	case JO_IN: return jv_bool(contains(c, n, a, b));
	case JO_NOTIN: return jv_bool(!contains(c, n, a, b));
	case JO_CAT: {
		struct strbuf sb;
		sb_init(&sb);
		sb_adds(&sb, "");
		jv_str_to(&sb, a);
		jv_str_to(&sb, b);
		struct jv *r = jv_str(c, sb.data, sb.len);
		sb_free(&sb);
		return r;
	}
	}
	if (a->t == JV_UNDEF || b->t == JV_UNDEF) {
		struct jv *u = a->t == JV_UNDEF ? a : b;
		jfail(c, n, "%s", u->undef_name ? u->undef_name :
		    "an undefined value");
	}
	if (op == JO_ADD && a->t == JV_STR && b->t == JV_STR) {
		struct jv *r = jv_new(c, JV_STR);
		char *p = ja_alloc(&c->arena, a->u.s.n + b->u.s.n + 1);
		if (a->u.s.n + b->u.s.n > MAX_OUTPUT)
			jfail(c, n, "string too long");
		memcpy(p, a->u.s.p, a->u.s.n);
		memcpy(p + a->u.s.n, b->u.s.p, b->u.s.n);
		r->u.s.p = p;
		r->u.s.n = a->u.s.n + b->u.s.n;
		return r;
	}
	if (op == JO_ADD && a->t == JV_LIST && b->t == JV_LIST) {
		struct jv *r = jv_list(c);
		r->is_tuple = a->is_tuple && b->is_tuple;
		for (size_t i = 0; i < a->u.l.n; i++)
			jv_push(c, r, a->u.l.v[i]);
		for (size_t i = 0; i < b->u.l.n; i++)
			jv_push(c, r, b->u.l.v[i]);
		return r;
	}
	if (op == JO_MUL && ((a->t == JV_STR && b->t == JV_INT) ||
	    (a->t == JV_INT && b->t == JV_STR))) {
		struct jv *s = a->t == JV_STR ? a : b;
		long long k = a->t == JV_INT ? a->u.i : b->u.i;
		if (k < 0)
			k = 0;
		if (s->u.s.n && (unsigned long long)k > MAX_OUTPUT / s->u.s.n)
			jfail(c, n, "string too long");
		struct jv *r = jv_new(c, JV_STR);
		char *p = ja_alloc(&c->arena, s->u.s.n * k + 1);
		for (long long i = 0; i < k; i++)
			memcpy(p + i * s->u.s.n, s->u.s.p, s->u.s.n);
		r->u.s.p = p;
		r->u.s.n = s->u.s.n * k;
		return r;
	}
	if (!is_num(a) || !is_num(b))
		jfail(c, n, "unsupported operand types for %s: %s and %s",
		    op_names[op], jv_type_name(a), jv_type_name(b));
	int fl = a->t == JV_FLOAT || b->t == JV_FLOAT;
	if ((op == JO_DIV || op == JO_FLOORDIV || op == JO_MOD) &&
	    num(b) == 0)
		jfail(c, n, "division by zero");
	if (!fl) {
		/* Python's integers are unbounded; these overflow loudly */
		long long x = inum(a), y = inum(b), r = 1;
		int over = 0;
		switch (op) {
		case JO_ADD: over = __builtin_add_overflow(x, y, &r); break;
		case JO_SUB: over = __builtin_sub_overflow(x, y, &r); break;
		case JO_MUL: over = __builtin_mul_overflow(x, y, &r); break;
		case JO_DIV: return jv_float(c, (double)x / (double)y);
		case JO_FLOORDIV:
			over = x == LLONG_MIN && y == -1;
			r = over ? 0 : floordiv(x, y);
			break;
		case JO_MOD:
			r = y == -1 ? 0 : floormod(x, y);
			break;
		case JO_POW:
			if (y < 0)
				return jv_float(c, pow((double)x, (double)y));
			for (long long i = 0; i < y && !over; i++) {
				over = __builtin_mul_overflow(r, x, &r);
				if (r == 0 || r == 1)
					break;	/* 0 ** y, 1 ** y */
				if (r == -1)	/* (-1) ** y */
					return jv_int(c, (y - i - 1) % 2 ? 1 : -1);
			}
			break;
		}
		if (over)
			jfail(c, n, "integer overflow in %s", op_names[op]);
		return jv_int(c, r);
	}
	double x = num(a), y = num(b);
	switch (op) {
	case JO_ADD: return jv_float(c, x + y);
	case JO_SUB: return jv_float(c, x - y);
	case JO_MUL: return jv_float(c, x * y);
	case JO_DIV: return jv_float(c, x / y);
	case JO_FLOORDIV: return jv_float(c, floor(x / y));
	case JO_MOD: {
		double r = fmod(x, y);
		if (r != 0 && ((r < 0) != (y < 0)))
			r += y;
		return jv_float(c, r);
	}
	default: return jv_float(c, pow(x, y));
	}
}

/* The i-th code point's byte offset in s (i may equal the length). */
static size_t
cp_offset(const struct jv *s, size_t i)
{
	size_t off = 0;
	while (i > 0 && off < s->u.s.n) {
		off += tu8_len((const unsigned char *)s->u.s.p + off,
		    s->u.s.n - off);
		i--;
	}
	return off;
}

/* jinja2's words for a missing key or attribute */
static struct jv *
no_attr(struct jctx *c, struct jv *o, struct jv *k)
{
	size_t n = k->u.s.n + 64;
	char *why = ja_alloc(&c->arena, n);
	snprintf(why, n, "'%s object' has no attribute '%.*s'",
	    o->t == JV_DICT ? "dict" : jv_type_name(o), (int)k->u.s.n,
	    k->u.s.p);
	return jv_undefined_why(c, why);
}

static struct jv *
get_item(struct jctx *c, const struct jnode *n, struct jv *o, struct jv *k,
    int attr_first)
{
	if (o->t == JV_UNDEF)
		jfail(c, n, "%s", o->undef_name ? o->undef_name :
		    "an undefined value");
	if ((o->t == JV_DICT || o->t == JV_NS) && k->t == JV_STR) {
		struct jv *v;
		/* o.name: a dict's built-in method before its key, as
		 * jinja2's getattr; o[name]: the key first */
		if (attr_first && o->t == JV_DICT &&
		    (v = jinja_method(c, o, k->u.s.p, k->u.s.n)) != NULL)
			return v;
		if ((v = jv_dict_get(o, k->u.s.p, k->u.s.n)) != NULL)
			return v;
		if (o->t == JV_DICT && (v = jinja_method(c, o, k->u.s.p,
		    k->u.s.n)) != NULL)
			return v;
		return no_attr(c, o, k);
	}
	if ((o->t == JV_LIST || o->t == JV_STR) && (k->t == JV_INT ||
	    k->t == JV_BOOL)) {
		long long i = inum(k);
		size_t len = o->t == JV_LIST ? o->u.l.n : jv_strlen(o);
		if (i < 0)
			i += (long long)len;
		if (i < 0 || (size_t)i >= len) {
			char *why = ja_alloc(&c->arena, 64);
			snprintf(why, 64, "%s object has no element %lld",
			    o->t == JV_LIST ? "list" : "str", inum(k));
			return jv_undefined_why(c, why);
		}
		if (o->t == JV_LIST)
			return o->u.l.v[i];
		size_t off = cp_offset(o, (size_t)i);
		return jv_str(c, o->u.s.p + off, tu8_len((const unsigned char *)
		    o->u.s.p + off, o->u.s.n - off));
	}
	if (k->t == JV_STR) {
		struct jv *m = jinja_method(c, o, k->u.s.p, k->u.s.n);
		if (m)
			return m;
		return no_attr(c, o, k);
	}
	return jv_undefined_why(c, "an item of a value that has none");
}

/* Python's slice indices for a sequence of len items. */
static void
slice_indices(struct jctx *c, const struct jnode *n, struct jv *a,
    struct jv *b, struct jv *st, long long len, long long *start,
    long long *stop, long long *step)
{
	*step = st && st->t != JV_NONE ? inum(st) : 1;
	if (st && st->t != JV_NONE && st->t != JV_INT)
		jfail(c, n, "slice step must be an integer");
	if (*step == 0)
		jfail(c, n, "slice step cannot be zero");
	long long lo = *step < 0 ? -1 : 0, hi = *step < 0 ? len - 1 : len;
	struct jv *ends[2] = { a, b };
	long long *out[2] = { start, stop };
	for (int e = 0; e < 2; e++) {
		struct jv *x = ends[e];
		if (x == NULL || x->t == JV_NONE) {
			*out[e] = (*step < 0) == (e == 0) ? hi : lo;
			continue;
		}
		if (x->t != JV_INT && x->t != JV_BOOL)
			jfail(c, n, "slice indices must be integers");
		long long v = inum(x);
		if (v < 0) {
			v += len;
			if (v < lo)
				v = lo;
		} else if (v > hi)
			v = hi;
		*out[e] = v;
	}
}

static struct jv *
get_slice(struct jctx *c, const struct jnode *n, struct jv *o, struct jv *a,
    struct jv *b, struct jv *st)
{
	long long start, stop, step, len;

	if (o->t == JV_LIST)
		len = (long long)o->u.l.n;
	else if (o->t == JV_STR)
		len = (long long)jv_strlen(o);
	else
		jfail(c, n, "a %s cannot be sliced", jv_type_name(o));
	slice_indices(c, n, a, b, st, len, &start, &stop, &step);
	if (o->t == JV_LIST) {
		struct jv *r = jv_list(c);
		r->is_tuple = o->is_tuple;
		for (long long i = start; step > 0 ? i < stop : i > stop;
		    i += step)
			jv_push(c, r, o->u.l.v[i]);
		return r;
	}
	/* strings: by code point */
	size_t *off = xcalloc(len + 1, sizeof(*off));
	for (long long i = 1; i <= len; i++)
		off[i] = off[i - 1] + tu8_len((const unsigned char *)o->u.s.p +
		    off[i - 1], o->u.s.n - off[i - 1]);
	struct strbuf sb;
	sb_init(&sb);
	sb_adds(&sb, "");
	for (long long i = start; step > 0 ? i < stop : i > stop; i += step)
		sb_add(&sb, o->u.s.p + off[i], off[i + 1] - off[i]);
	free(off);
	struct jv *r = jv_str(c, sb.data, sb.len);
	sb_free(&sb);
	return r;
}

struct jv *
jarg(struct jargs *a, size_t pos, const char *name)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->name[i] && name && strcmp(a->name[i], name) == 0)
			return a->v[i];
	size_t k = 0;
	for (size_t i = 0; i < a->n; i++)
		if (a->name[i] == NULL && k++ == pos)
			return a->v[i];
	return NULL;
}

static void
eval_args(struct jctx *c, struct jscope *s, const struct jnode *n,
    struct jargs *a)
{
	a->n = n->nargs;
	a->v = ja_alloc(&c->arena, (a->n + 1) * sizeof(*a->v));
	a->name = ja_alloc(&c->arena, (a->n + 1) * sizeof(*a->name));
	for (size_t i = 0; i < n->nargs; i++) {
		a->v[i] = eval(c, s, n->args[i]);
		a->name[i] = n->argname[i];
	}
}

/* Render a body into a string value, in scope s. */
static struct jv *
capture(struct jctx *c, struct jscope *s, const struct jnode *body)
{
	struct strbuf *saved = c->out;
	struct jcap *cap = xcalloc(1, sizeof(*cap));
	struct jv *r;

	/* on the ctx's list, for jinja_render to free after an error */
	cap->next = c->caps;
	c->caps = cap;
	sb_init(&cap->b);
	sb_adds(&cap->b, "");
	c->out = &cap->b;
	exec_body(c, s, body);
	c->out = saved;
	r = jv_str(c, cap->b.data, cap->b.len);
	c->caps = cap->next;
	sb_free(&cap->b);
	free(cap);
	return r;
}

static struct jv *
call_macro(struct jctx *c, const struct jnode *at, struct jv *fn,
    struct jargs *a, struct jv *caller)
{
	const struct jnode *m = fn->u.mac.m;
	struct jscope *s = jscope_new(c, fn->u.mac.scope);
	size_t npos = 0;

	if (++c->depth > MAX_CALL_DEPTH)
		jfail(c, at, "macro calls nested too deep");
	for (size_t i = 0; i < a->n; i++)
		if (a->name[i] == NULL)
			npos++;
	if (npos > m->nargs)
		jfail(c, at, "macro '%s' takes %zu arguments, %zu given",
		    m->name, m->nargs, npos);
	for (size_t i = 0; i < a->n; i++) {
		if (a->name[i] == NULL)
			continue;
		size_t k;
		for (k = 0; k < m->nargs; k++)
			if (strcmp(m->args[k]->name, a->name[i]) == 0)
				break;
		if (k == m->nargs)
			jfail(c, at, "macro '%s' has no parameter '%s'",
			    m->name, a->name[i]);
	}
	for (size_t k = 0; k < m->nargs; k++) {
		struct jv *v = jarg(a, k, m->args[k]->name);
		if (v == NULL && m->c->args[k])
			v = eval(c, s, m->c->args[k]);
		if (v == NULL)
			v = jv_undefined(c, m->args[k]->name);
		jscope_set(c, s, m->args[k]->name, m->args[k]->namelen, v);
	}
	if (caller)
		jscope_set(c, s, "caller", 6, caller);
	struct jv *r = capture(c, s, m->body);
	c->depth--;
	return r;
}

struct jv *
jinja_call(struct jctx *c, const struct jnode *at, struct jv *fn,
    struct jargs *a)
{
	if (fn->t == JV_MACRO)
		return call_macro(c, at, fn, a, NULL);
	if (fn->t == JV_FUNC) {
		const struct jnode *saved = c->cur;
		c->cur = at;
		struct jv *r = fn->u.fn.fn(c, fn->u.fn.self, a);
		c->cur = saved;
		return r;
	}
	if (fn->t == JV_UNDEF)
		jfail(c, at, "%s", fn->undef_name ? fn->undef_name :
		    "an undefined value");
	jfail(c, at, "a %s is not callable", jv_type_name(fn));
}

static struct jv *
eval(struct jctx *c, struct jscope *s, const struct jnode *n)
{
	struct jv *a, *b, *r;
	struct jargs args;

	c->cur = n;
	switch (n->t) {
	case JN_LIT:
		return n->val ? n->val : c->block_self;
	case JN_NAME:
		r = jscope_get(s, n->name, n->namelen);
		return r ? r : jv_undefined(c, n->name);
	case JN_ATTR: {
		a = eval(c, s, n->a);
		struct jv k = { .t = JV_STR };
		k.u.s.p = n->name;
		k.u.s.n = n->namelen;
		if (a->t == JV_UNDEF)
			jfail(c, n, "%s", a->undef_name ? a->undef_name :
		    "an undefined value");
		return get_item(c, n, a, &k, 1);
	}
	case JN_ITEM:
		a = eval(c, s, n->a);
		b = eval(c, s, n->b);
		return get_item(c, n, a, b, 0);
	case JN_SLICE:
		a = eval(c, s, n->a);
		return get_slice(c, n, a, n->b ? eval(c, s, n->b) : NULL,
		    n->c ? eval(c, s, n->c) : NULL,
		    n->body ? eval(c, s, n->body) : NULL);
	case JN_CALL:
		a = eval(c, s, n->a);
		eval_args(c, s, n, &args);
		return jinja_call(c, n, a, &args);
	case JN_FILTER:
		a = eval(c, s, n->a);
		eval_args(c, s, n, &args);
		c->cur = n;
		return jinja_filter(c, n, n->name, a, &args);
	case JN_TEST: {
		a = eval(c, s, n->a);
		eval_args(c, s, n, &args);
		c->cur = n;
		int t = jinja_test(c, n, n->name, a, &args);
		return jv_bool(n->op ? !t : t);
	}
	case JN_BINOP:
		a = eval(c, s, n->a);
		b = eval(c, s, n->b);
		c->cur = n;
		return binop(c, n, a, b);
	case JN_NOT:
		return jv_bool(!jv_truthy(eval(c, s, n->a)));
	case JN_NEG: case JN_POS:
		a = eval(c, s, n->a);
		if (a->t == JV_FLOAT)
			return jv_float(c, n->t == JN_NEG ? -a->u.f : a->u.f);
		if (a->t == JV_INT || a->t == JV_BOOL) {
			if (n->t == JN_NEG && inum(a) == LLONG_MIN)
				jfail(c, n, "integer overflow in -");
			return jv_int(c, n->t == JN_NEG ? -inum(a) : inum(a));
		}
		jfail(c, n, "bad operand type for unary %s: %s",
		    n->t == JN_NEG ? "-" : "+", jv_type_name(a));
	case JN_AND:
		a = eval(c, s, n->a);
		return jv_truthy(a) ? eval(c, s, n->b) : a;
	case JN_OR:
		a = eval(c, s, n->a);
		return jv_truthy(a) ? a : eval(c, s, n->b);
	case JN_COND:
		if (jv_truthy(eval(c, s, n->b)))
			return eval(c, s, n->a);
		return n->c ? eval(c, s, n->c) : jv_undefined(c, "else");
	case JN_LIST: case JN_TUPLE:
		r = jv_list(c);
		r->is_tuple = n->t == JN_TUPLE;
		for (size_t i = 0; i < n->nargs; i++)
			jv_push(c, r, eval(c, s, n->args[i]));
		return r;
	case JN_DICT:
		r = jv_dict(c, JV_DICT);
		for (size_t i = 0; i + 1 < n->nargs; i += 2) {
			a = eval(c, s, n->args[i]);
			if (a->t != JV_STR)
				a = jv_to_str(c, a);
			jv_dict_set(c, r, a->u.s.p, a->u.s.n,
			    eval(c, s, n->args[i + 1]));
		}
		return r;
	default:
		jfail(c, n, "not an expression");
	}
}

/* ------------------------------------------------------------------------ */
/* Statements */

static void
assign(struct jctx *c, struct jscope *s, const struct jnode *target,
    struct jv *v)
{
	if (target->t == JN_NAME) {
		jscope_set(c, s, target->name, target->namelen, v);
		return;
	}
	if (target->t == JN_ATTR) {
		struct jv *ns = eval(c, s, target->a);
		if (ns->t != JV_NS)
			jfail(c, target, "cannot assign attribute on a %s "
			    "(only on a namespace)", jv_type_name(ns));
		jv_dict_set(c, ns, target->name, target->namelen, v);
		return;
	}
	/* a tuple of names */
	struct jv *l = v->t == JV_LIST ? v : jv_iterate(c, v);
	if (l->u.l.n != target->nargs)
		jfail(c, target, "cannot unpack %zu values into %zu names",
		    l->u.l.n, target->nargs);
	for (size_t i = 0; i < target->nargs; i++)
		assign(c, s, target->args[i], l->u.l.v[i]);
}

static void
out_value(struct jctx *c, const struct jnode *n, struct jv *v)
{
	jv_str_to(c->out, v);
	if (c->out->len > MAX_OUTPUT)
		jfail(c, n, "the output is too long");
}

/* loop.cycle(a, b, ...): the argument at the iteration's index */
static struct jv *
loop_cycle(struct jctx *c, struct jv *self, struct jargs *a)
{
	if (a->n == 0)
		jfail(c, NULL, "loop.cycle needs an argument");
	return a->v[self->u.i % (long long)a->n];
}

static struct jv *
make_loop(struct jctx *c, struct jv *items, size_t i)
{
	struct jv *l = jv_dict(c, JV_DICT);
	size_t n = items->u.l.n;

	jv_dict_set(c, l, "index", 5, jv_int(c, (long long)i + 1));
	jv_dict_set(c, l, "index0", 6, jv_int(c, (long long)i));
	jv_dict_set(c, l, "revindex", 8, jv_int(c, (long long)(n - i)));
	jv_dict_set(c, l, "revindex0", 9, jv_int(c, (long long)(n - i - 1)));
	jv_dict_set(c, l, "first", 5, jv_bool(i == 0));
	jv_dict_set(c, l, "last", 4, jv_bool(i + 1 == n));
	jv_dict_set(c, l, "length", 6, jv_int(c, (long long)n));
	jv_dict_set(c, l, "previtem", 8, i > 0 ? items->u.l.v[i - 1] :
	    jv_undefined(c, "previtem"));
	jv_dict_set(c, l, "nextitem", 8, i + 1 < n ? items->u.l.v[i + 1] :
	    jv_undefined(c, "nextitem"));
	jv_dict_set(c, l, "cycle", 5, jv_func(c, loop_cycle, jv_int(c,
	    (long long)i), "cycle"));
	jv_dict_set(c, l, "depth", 5, jv_int(c, 1));
	jv_dict_set(c, l, "depth0", 6, jv_int(c, 0));
	return l;
}

static void
exec_for(struct jctx *c, struct jscope *s, const struct jnode *n)
{
	struct jv *it = eval(c, s, n->b), *items;

	if (it->t == JV_UNDEF)
		items = jv_list(c);
	else
		items = jv_iterate(c, it);
	if (n->c) {	/* for x in xs if cond: the loop sees only those */
		struct jv *kept = jv_list(c);
		for (size_t i = 0; i < items->u.l.n; i++) {
			struct jscope *f = jscope_new(c, s);
			assign(c, f, n->a, items->u.l.v[i]);
			if (jv_truthy(eval(c, f, n->c)))
				jv_push(c, kept, items->u.l.v[i]);
		}
		items = kept;
	}
	for (size_t i = 0; i < items->u.l.n; i++) {
		struct jscope *f = jscope_new(c, s);
		if (c->loop_guard-- == 0)
			jfail(c, n, "too many loop iterations");
		assign(c, f, n->a, items->u.l.v[i]);
		jscope_set(c, f, "loop", 4, make_loop(c, items, i));
		int flow = exec_body(c, f, n->body);
		if (flow == FLOW_BREAK)
			break;
	}
	if (items->u.l.n == 0 && n->orelse)
		exec_body(c, jscope_new(c, s), n->orelse);
}

static int
exec_stmt(struct jctx *c, struct jscope *s, const struct jnode *n)
{
	struct jv *v;

	c->cur = n;
	switch (n->t) {
	case JN_TEXT:
		sb_add(c->out, n->name, n->namelen);
		if (c->out->len > MAX_OUTPUT)
			jfail(c, n, "the output is too long");
		return FLOW_NEXT;
	case JN_OUTPUT:
		out_value(c, n, eval(c, s, n->a));
		return FLOW_NEXT;
	case JN_IF:
		if (jv_truthy(eval(c, s, n->a)))
			return exec_body(c, s, n->body);
		return n->orelse ? exec_body(c, s, n->orelse) : FLOW_NEXT;
	case JN_FOR:
		exec_for(c, s, n);
		return FLOW_NEXT;
	case JN_SET:
		v = eval(c, s, n->b);
		if (n->a)
			assign(c, s, n->a, v);
		return FLOW_NEXT;
	case JN_SET_BLOCK:
		v = capture(c, s, n->body);
		if (n->b) {
			struct jv *saved = c->block_self;
			c->block_self = v;
			v = eval(c, s, n->b);
			c->block_self = saved;
		}
		assign(c, s, n->a, v);
		return FLOW_NEXT;
	case JN_FILTER_BLOCK: {
		struct jv *saved = c->block_self;
		c->block_self = capture(c, s, n->body);
		v = eval(c, s, n->a);
		c->block_self = saved;
		out_value(c, n, v);
		return FLOW_NEXT;
	}
	case JN_MACRO:
		v = jv_new(c, JV_MACRO);
		v->u.mac.m = n;
		v->u.mac.scope = s;
		jscope_set(c, s, n->name, n->namelen, v);
		return FLOW_NEXT;
	case JN_CALL_BLOCK: {
		struct jv *fn = eval(c, s, n->a->a);
		struct jv *caller = jv_new(c, JV_MACRO);
		struct jargs args;
		caller->u.mac.m = n->b;
		caller->u.mac.scope = s;
		eval_args(c, s, n->a, &args);
		if (fn->t != JV_MACRO)
			jfail(c, n, "{%% call %%} needs a macro");
		out_value(c, n, call_macro(c, n, fn, &args, caller));
		return FLOW_NEXT;
	}
	case JN_GENERATION: {
		int top = c->out == c->top && !c->in_gen;
		size_t from = c->out->len;
		int flow;
		c->in_gen += top;
		flow = exec_body(c, s, n->body);
		c->in_gen -= top;
		if (top && c->out->len > from) {
			c->gen = xreallocarray(c->gen, c->ngen + 1,
			    sizeof(*c->gen));
			c->gen[c->ngen].from = from;
			c->gen[c->ngen++].to = c->out->len;
		}
		return flow;
	}
	case JN_BREAK:
		return FLOW_BREAK;
	case JN_CONTINUE:
		return FLOW_CONTINUE;
	default:
		jfail(c, n, "not a statement");
	}
}

static int
exec_body(struct jctx *c, struct jscope *s, const struct jnode *n)
{
	for (; n; n = n->next) {
		int flow = exec_stmt(c, s, n);
		if (flow != FLOW_NEXT)
			return flow;
	}
	return FLOW_NEXT;
}

/* ------------------------------------------------------------------------ */
/* The interface */

struct jinja *
jinja_parse(const char *src, const char *where, char *err, size_t errsz)
{
	struct jinja *j = xcalloc(1, sizeof(*j));
	struct jtok *t;
	size_t nt;

	j->where = xstrdup(where ? where : "template");
	t = jinja_lex(&j->arena, src, &nt, j->where, err, errsz);
	if (t == NULL) {
		jinja_free(j);
		return NULL;
	}
	j->root = jinja_parse_tokens(&j->arena, t, nt, j->where, &j->has_gen,
	    err, errsz);
	free(t);
	if (j->root == NULL) {
		jinja_free(j);
		return NULL;
	}
	return j;
}

void
jinja_free(struct jinja *j)
{
	if (j == NULL)
		return;
	ja_free(&j->arena);
	free(j->where);
	free(j);
}

int
jinja_has_generation(const struct jinja *j)
{
	return j->has_gen;
}

char *
jinja_render(const struct jinja *j, const json_t *vars,
    struct jinja_span **gen, size_t *ngen, char *err, size_t errsz)
{
	struct jctx *c = xcalloc(1, sizeof(*c));
	struct strbuf out;
	const char *k;
	json_t *x;
	char *volatile r = NULL;

	sb_init(&out);
	sb_adds(&out, "");
	c->where = j->where;
	c->err = err;
	c->errsz = errsz;
	c->out = c->top = &out;
	c->loop_guard = 10000000;
	if (gen) {
		*gen = NULL;
		*ngen = 0;
	}
	if (setjmp(c->fail) == 0) {
		c->globals = jscope_new(c, NULL);
		jinja_globals(c, c->globals);
		struct jscope *s = jscope_new(c, c->globals);
		if (vars)
			json_object_foreach((json_t *)vars, k, x)
				jscope_set(c, s, k, strlen(k),
				    jv_from_json(c, x));
		exec_body(c, s, j->root);
		r = out.data;
		out.data = NULL;
		if (gen) {
			*gen = c->gen;
			*ngen = c->ngen;
			c->gen = NULL;
		}
	}
	sb_free(&out);
	while (c->caps) {
		struct jcap *cap = c->caps;
		c->caps = cap->next;
		sb_free(&cap->b);
		free(cap);
	}
	free(c->gen);
	ja_free(&c->arena);
	free(c);
	return r;
}
