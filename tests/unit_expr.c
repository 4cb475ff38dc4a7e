/*
 * unit_expr: the --where language: what holds on a record, and where a
 * malformed expression is reported.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "records/expr.h"
#include "records/record.h"
#include "util/util.h"

static int failures;

/* src must parse and give want on r. */
static void
holds(const struct rec *r, const char *src, int want)
{
	char err[128];
	int col;
	struct expr *e = expr_parse(src, err, sizeof(err), &col);
	if (e == NULL) {
		fprintf(stderr, "%s: column %d: %s\n", src, col, err);
		failures++;
		return;
	}
	int got = expr_eval(e, r);
	if (got != want) {
		fprintf(stderr, "%s: got %d, want %d\n", src, got, want);
		failures++;
	}
	expr_free(e);
}

/* src must fail to parse at column want_col with a message holding msg. */
static void
bad(const char *src, int want_col, const char *msg)
{
	char err[128];
	int col = 0;
	struct expr *e = expr_parse(src, err, sizeof(err), &col);
	if (e != NULL) {
		fprintf(stderr, "%s: parsed, want an error\n", src);
		failures++;
		expr_free(e);
		return;
	}
	if (col != want_col || strstr(err, msg) == NULL) {
		fprintf(stderr, "%s: column %d \"%s\", want column %d \"%s\"\n",
		    src, col, err, want_col, msg);
		failures++;
	}
}

int
main(void)
{
	struct rec r, sub;
	rec_init(&r, "test", 1);
	rec_set_str(&r, "id", "p1");
	rec_set_num(&r, "reward", 0.75);
	rec_set_int(&r, "n", -3);
	rec_set_uint(&r, "big", 9007199254740993ULL);	/* 2^53 + 1 */
	rec_set_bool(&r, "greedy", 0);
	rec_set_bool(&r, "correct", 1);
	rec_set_str(&r, "finish", "stop");
	rec_set_str(&r, "quote", "say \"hi\"\\");
	rec_set_nil(&r, "none");
	rec_init(&sub, "test", 1);
	rec_set_num(&sub, "reward", 2);
	rec_set_sub(&r, "chosen", &sub);
	rec_free(&sub);

	/* Numbers, int and float mixed. */
	holds(&r, "reward > 0.5", 1);
	holds(&r, "reward >= 0.75", 1);
	holds(&r, "reward < 0.75", 0);
	holds(&r, "reward <= .75", 1);
	holds(&r, "reward == 0.75", 1);
	holds(&r, "reward != 0.75", 0);
	holds(&r, "n == -3", 1);
	holds(&r, "n < -2.5", 1);
	holds(&r, "-4 < n", 1);
	holds(&r, "1e0 > reward", 1);
	/* Integers compare exactly, past what a double holds. */
	holds(&r, "big == 9007199254740993", 1);
	holds(&r, "big != 9007199254740992", 1);
	holds(&r, "big > 9007199254740992", 1);
	holds(&r, "n < big", 1);
	/* Strings: equality and bytewise order; escapes. */
	holds(&r, "finish == \"stop\"", 1);
	holds(&r, "finish != \"length\"", 1);
	holds(&r, "finish > \"length\"", 1);
	holds(&r, "finish < \"stopx\"", 1);
	holds(&r, "quote == \"say \\\"hi\\\"\\\\\"", 1);
	holds(&r, "id==\"p1\"&&finish==\"stop\"", 1);
	/* Booleans. */
	holds(&r, "correct == true", 1);
	holds(&r, "greedy == false", 1);
	holds(&r, "greedy != true", 1);
	holds(&r, "correct", 1);
	holds(&r, "!greedy", 1);
	holds(&r, "correct > false", 0);
	/* Different types are never equal, never ordered. */
	holds(&r, "finish == 1", 0);
	holds(&r, "finish != 1", 1);
	holds(&r, "finish < 1", 0);
	holds(&r, "correct == 1", 0);
	/* Missing or null fields make any comparison false. */
	holds(&r, "nosuch == 1", 0);
	holds(&r, "nosuch != 1", 0);
	holds(&r, "nosuch < 1", 0);
	holds(&r, "none == none", 0);
	holds(&r, "none != 0", 0);
	holds(&r, "!(nosuch == 1)", 1);
	holds(&r, "nosuch", 0);
	holds(&r, "!nosuch", 1);
	/* Dotted paths. */
	holds(&r, "chosen.reward == 2", 1);
	holds(&r, "chosen.reward > reward", 1);
	holds(&r, "chosen.nosuch == 2", 0);
	holds(&r, "finish.x == 2", 0);
	/* Precedence: ! over && over ||; parentheses. */
	holds(&r, "reward > 1 || n < 0 && correct", 1);
	holds(&r, "(reward > 1 || n < 0) && greedy", 0);
	holds(&r, "reward > 1 || n < 0 && greedy", 0);
	holds(&r, "!(reward > 1) && !!correct", 1);
	holds(&r, "((((reward > 0))))", 1);
	holds(&r, "0", 0);
	holds(&r, "\"\"", 1);

	bad("", 1, "empty");
	bad("   ", 4, "empty");
	bad("reward >", 9, "after the operator");
	bad("reward = 1", 8, "'=='");
	bad("reward > 1 & n", 12, "'&&'");
	bad("reward > 1 | n", 12, "'||'");
	bad("(reward > 1", 1, "unbalanced '('");
	bad("reward > 1)", 11, "unbalanced ')'");
	bad("reward > 1 n", 12, "expected '&&'");
	bad("reward < 1 < 2", 12, "expected '&&'");
	bad("finish == \"stop", 11, "unterminated");
	bad("finish == \"a\\n\"", 13, "escape");
	bad("12abc > 1", 1, "malformed number");
	bad("chosen. == 1", 1, "malformed field");
	bad("a..b == 1", 1, "malformed field");
	bad("reward > $", 10, "unexpected '$'");
	bad("&& x", 1, "expected a field");
	bad("!", 2, "expected a field");
	bad("()", 2, "expected a field");
	bad("(a ==1) ==", 9, "expected '&&'");

	/* Deep nesting is refused, not a stack overflow. */
	struct strbuf b;
	sb_init(&b);
	for (int i = 0; i < 5000; i++)
		sb_addc(&b, '(');
	char err[128];
	int col;
	struct expr *e = expr_parse(b.data, err, sizeof(err), &col);
	if (e != NULL || strstr(err, "deeply") == NULL) {
		fprintf(stderr, "deep nesting: not refused\n");
		failures++;
	}
	sb_free(&b);
	rec_free(&r);
	if (failures)
		fprintf(stderr, "%d failure(s)\n", failures);
	return failures != 0;
}
