/*
 * jinja_impl.h: the parts of the Jinja interpreter (jinja.h) that its
 * files share: the arena everything is allocated from, values, the lexer's
 * tokens, the parser's nodes and the evaluator's state.
 *
 *   jinja_value.c    arena, values, str(), repr(), tojson, comparisons
 *   jinja_lex.c      template text -> tokens (whitespace control)
 *   jinja_parse.c    tokens -> nodes
 *   jinja_eval.c     nodes -> text
 *   jinja_builtin.c  filters, tests, methods, global functions
 */
#ifndef PREFPIPE_JINJA_IMPL_H
#define PREFPIPE_JINJA_IMPL_H

#include <setjmp.h>
#include <stddef.h>

#include <jansson.h>

#include "text/jinja.h"
#include "util/util.h"

/* ------------------------------------------------------------------------ */
/* Arena: one per template (nodes) and one per rendering (values); freed
 * whole, so values need no reference counts. */

struct jarena {
	struct jblock *blocks;
};
void *ja_alloc(struct jarena *a, size_t n);	/* zeroed */
char *ja_strndup(struct jarena *a, const char *s, size_t n);
void ja_free(struct jarena *a);

/* ------------------------------------------------------------------------ */
/* Values */

enum jv_type {
	JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST,
	JV_DICT, JV_NS, JV_MACRO, JV_FUNC
};

struct jv;
struct jctx;
struct jnode;
struct jscope;

/* The arguments of a call: positional, then keyword (name != NULL). */
struct jargs {
	struct jv **v;
	const char **name;
	size_t n;
};

typedef struct jv *(*jfunc)(struct jctx *c, struct jv *self,
    struct jargs *a);

struct jv {
	enum jv_type t;
	union {
		int b;
		long long i;
		double f;
		struct { const char *p; size_t n; } s;	/* UTF-8 */
		struct { struct jv **v; size_t n, cap; } l;
		/* dict and namespace: string keys, insertion order */
		struct { const char **k; struct jv **v; size_t n, cap; } d;
		struct { const struct jnode *m; struct jscope *scope; } mac;
		struct { jfunc fn; struct jv *self; const char *name; } fn;
	} u;
	const char *undef_name;	/* why a value is undefined, for errors */
	int is_tuple;
};

extern struct jv jv_undef_v, jv_none_v, jv_true_v, jv_false_v;

struct jv *jv_new(struct jctx *c, enum jv_type t);
/* An undefined value: for name ("'name' is undefined"), or why. */
struct jv *jv_undefined(struct jctx *c, const char *name);
struct jv *jv_undefined_why(struct jctx *c, const char *why);
struct jv *jv_bool(int b);
struct jv *jv_int(struct jctx *c, long long i);
struct jv *jv_float(struct jctx *c, double f);
struct jv *jv_str(struct jctx *c, const char *s, size_t n);
struct jv *jv_strz(struct jctx *c, const char *s);
struct jv *jv_list(struct jctx *c);
void jv_push(struct jctx *c, struct jv *l, struct jv *x);
struct jv *jv_dict(struct jctx *c, enum jv_type t);
void jv_dict_set(struct jctx *c, struct jv *d, const char *k, size_t kn,
    struct jv *v);
struct jv *jv_dict_get(const struct jv *d, const char *k, size_t kn);
/* Remove key k from d: its value, or NULL when d has none. */
struct jv *jv_dict_del(struct jv *d, const char *k, size_t kn);
struct jv *jv_func(struct jctx *c, jfunc fn, struct jv *self,
    const char *name);
struct jv *jv_from_json(struct jctx *c, const json_t *j);

int jv_truthy(const struct jv *v);
int jv_equal(const struct jv *a, const struct jv *b);
/* <0, 0, >0; an error for values that do not order. */
int jv_compare(struct jctx *c, const struct jv *a, const struct jv *b);
/* Python's str() and repr() of v, appended to b. */
void jv_str_to(struct strbuf *b, const struct jv *v);
void jv_repr_to(struct strbuf *b, const struct jv *v);
/* str(v) as a value (v itself when it is a string). */
struct jv *jv_to_str(struct jctx *c, struct jv *v);
/* json.dumps(v, ensure_ascii=, indent= (<0: None), separators=,
 * sort_keys=); NULL separators: Python's defaults for the indent. */
struct jjson_opts {
	int indent, ascii, sort;
	const char *item_sep, *key_sep;
};
void jv_json_to(struct jctx *c, struct strbuf *b, const struct jv *v,
    const struct jjson_opts *o, int depth);
const char *jv_type_name(const struct jv *v);
/* The number of code points of a string. */
size_t jv_strlen(const struct jv *s);
/* The items a value iterates over (a list; dict keys; characters). */
struct jv *jv_iterate(struct jctx *c, struct jv *v);

/* ------------------------------------------------------------------------ */
/* Tokens */

enum jtok_type {
	JT_TEXT, JT_EXPR_OPEN, JT_EXPR_CLOSE, JT_STMT_OPEN, JT_STMT_CLOSE,
	JT_NAME, JT_INT, JT_FLOAT, JT_STR, JT_OP, JT_RAW, JT_EOF
};

struct jtok {
	enum jtok_type t;
	const char *p;		/* the text (JT_TEXT, JT_STR: decoded) */
	size_t n;
	long long i;
	double f;
	int line, col;
};

/* The tokens of src, ending with JT_EOF; NULL on error (message in err). */
struct jtok *jinja_lex(struct jarena *a, const char *src, size_t *ntok,
    const char *where, char *err, size_t errsz);

/* ------------------------------------------------------------------------ */
/* Nodes */

enum jnode_type {
	/* statements */
	JN_TEXT, JN_OUTPUT, JN_IF, JN_FOR, JN_SET, JN_SET_BLOCK, JN_MACRO,
	JN_CALL_BLOCK, JN_FILTER_BLOCK, JN_GENERATION, JN_BREAK,
	JN_CONTINUE,
	/* expressions */
	JN_LIT, JN_NAME, JN_ATTR, JN_ITEM, JN_SLICE, JN_CALL, JN_FILTER,
	JN_TEST, JN_BINOP, JN_NOT, JN_NEG, JN_POS, JN_AND, JN_OR, JN_COND,
	JN_LIST, JN_TUPLE, JN_DICT
};

enum jop {
	JO_ADD, JO_SUB, JO_MUL, JO_DIV, JO_FLOORDIV, JO_MOD, JO_POW, JO_CAT,
	JO_EQ, JO_NE, JO_LT, JO_LE, JO_GT, JO_GE, JO_IN, JO_NOTIN
};

struct jnode {
	enum jnode_type t;
	int op;			/* enum jop; JN_TEST: negated */
	int line, col;
	const char *name;	/* JN_NAME, JN_ATTR, JN_FILTER, JN_TEST,
				   JN_MACRO; JN_TEXT: the text */
	size_t namelen;
	struct jv *val;		/* JN_LIT */
	struct jnode *a, *b, *c;	/* operands; JN_FOR: target, iter,
					   filter; JN_SET: target, value */
	/* JN_CALL, JN_FILTER, JN_TEST, JN_LIST, JN_TUPLE, JN_DICT (keys in
	 * the even places), JN_MACRO (parameters: JN_NAME, defaults in
	 * argname[i] != NULL...): args, with names for keyword arguments */
	struct jnode **args;
	const char **argname;
	size_t nargs;
	struct jnode *body, *orelse;	/* statement lists */
	struct jnode *next;		/* the next statement */
};

struct jnode *jinja_parse_tokens(struct jarena *a, struct jtok *t,
    size_t ntok, const char *where, int *has_gen, char *err, size_t errsz);

/* ------------------------------------------------------------------------ */
/* Evaluation */

struct jscope {
	struct jscope *parent;
	const char **k;
	struct jv **v;
	size_t n, cap;
};

/* A capture's buffer (a macro's output, a block set), until it ends. */
struct jcap {
	struct strbuf b;
	struct jcap *next;
};

struct jctx {
	struct jarena arena;
	const struct jnode *cur;	/* the node being run, for errors */
	struct jv *block_self;	/* a block's output in {% set x | f %} */
	struct jcap *caps;
	struct jscope *globals;
	const char *where;
	jmp_buf fail;
	char *err;
	size_t errsz;
	int depth;		/* of macro calls, against runaway recursion */
	struct strbuf *out;	/* where output goes now */
	struct strbuf *top;	/* the rendering itself */
	struct jinja_span *gen;
	size_t ngen;
	int in_gen;
	size_t loop_guard;	/* iterations left, against endless loops */
};

/* Fail the rendering: "WHERE: line L, column C: MSG" (node may be NULL). */
void jfail(struct jctx *c, const struct jnode *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
/* Fail with msg as it is (raise_exception). */
void jfail_raw(struct jctx *c, const char *msg) __attribute__((noreturn));

struct jv *jscope_get(struct jscope *s, const char *k, size_t kn);
void jscope_set(struct jctx *c, struct jscope *s, const char *k, size_t kn,
    struct jv *v);
struct jscope *jscope_new(struct jctx *c, struct jscope *parent);

/* Calls a callable value (a macro or a built-in). */
struct jv *jinja_call(struct jctx *c, const struct jnode *at, struct jv *fn,
    struct jargs *a);
/* Set up the global functions (range, namespace, raise_exception...). */
void jinja_globals(struct jctx *c, struct jscope *g);
/* value | name(args); value is name(args) */
struct jv *jinja_filter(struct jctx *c, const struct jnode *at,
    const char *name, struct jv *v, struct jargs *a);
int jinja_test(struct jctx *c, const struct jnode *at, const char *name,
    struct jv *v, struct jargs *a);
/* obj.name: a method of a string, list or dict, or NULL. */
struct jv *jinja_method(struct jctx *c, struct jv *obj, const char *name,
    size_t n);
/* The argument called name or at position pos, or NULL. */
struct jv *jarg(struct jargs *a, size_t pos, const char *name);

#endif
