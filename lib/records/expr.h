/*
 * expr.h: the small predicate language of `filter --where` (and of any tool
 * that wants to select records the same way).
 *
 *	expr    := and ( "||" and )*
 *	and     := unary ( "&&" unary )*
 *	unary   := "!" unary | "(" expr ")" | operand [ cmpop operand ]
 *	cmpop   := "==" | "!=" | "<" | "<=" | ">" | ">="
 *	operand := FIELD | NUMBER | STRING | "true" | "false"
 *
 * FIELD is a name, dotted for nested maps (chosen.reward).  STRING is
 * double-quoted with \" and \\ escapes.  A comparison whose field is
 * missing (or null) is false, whatever the operator; values of different
 * types are never equal and never ordered; strings order bytewise.  An
 * operand alone holds when it is present and not null, false or zero.
 */
#ifndef PREFPIPE_EXPR_H
#define PREFPIPE_EXPR_H

#include <stddef.h>

struct rec;
struct expr;

/*
 * Compile src.  On error returns NULL, with a message in err and the
 * 1-based column (byte offset) of the problem in *col.
 */
struct expr *expr_parse(const char *src, char *err, size_t errsz, int *col);
/* Whether the expression holds for r. */
int expr_eval(const struct expr *e, const struct rec *r);
void expr_free(struct expr *e);

#endif
