/*
 * jinja.h: a Jinja interpreter for chat templates.
 *
 * Hugging Face checkpoints carry their chat template as a Jinja program
 * (tokenizer_config.json's chat_template, or chat_template.jinja), run by
 * transformers in jinja2's ImmutableSandboxedEnvironment with
 * trim_blocks and lstrip_blocks on, the loopcontrols extension, a tojson
 * that is json.dumps(ensure_ascii=False), raise_exception and
 * strftime_now.  This is that language, as far as chat templates use it:
 *
 *   statements   for (loop.*, else, `if` filter, tuple targets, break,
 *                continue), if/elif/else, set (names, tuples,
 *                ns.attr, blocks), macro (defaults, keyword arguments),
 *                call blocks, filter blocks, generation (the assistant's
 *                output, item 2 of issue 18), raw, comments
 *   expressions  literals, lists, tuples, dicts, attributes, subscripts,
 *                slices, calls, filters, tests, arithmetic, comparisons,
 *                in / not in, is / is not, ~, and/or/not, a if c else b
 *   values       undefined, none, booleans, integers, floats, strings,
 *                lists, dicts (insertion order), namespaces, macros
 *
 * Undefined behaves as jinja2's default Undefined: it prints as "", is
 * false, iterates as empty and has length 0; an attribute or item of it,
 * or arithmetic on it, is an error.  Values print as Python's str():
 * True, None, ['a', 1].
 *
 * Errors name the template (the where given to jinja_parse), line and
 * column: "tokenizer_config.json: line 3, column 14: unexpected 'endif'".
 * raise_exception(msg) fails the rendering with msg itself.
 *
 * Generation spans are those of the rendering itself: a generation block
 * inside a macro or a block set (whose output is captured first) marks
 * nothing.  Not supported: recursive loops, loop.changed, the i18n and
 * with extensions, template inheritance and includes (chat templates are
 * one file); integers are 64-bit and overflow is an error.
 */
#ifndef PREFPIPE_JINJA_H
#define PREFPIPE_JINJA_H

#include <stddef.h>

#include <jansson.h>

struct jinja;

/* A stretch of the rendered text, [from, to) in bytes. */
struct jinja_span {
	size_t from, to;
};

/*
 * Parse src (NUL-terminated).  where names the template in messages.
 * NULL on a syntax error, with the message in err.
 */
struct jinja *jinja_parse(const char *src, const char *where, char *err,
    size_t errsz);
void jinja_free(struct jinja *j);

/* Whether the template has {% generation %} blocks. */
int jinja_has_generation(const struct jinja *j);

/*
 * Render with the variables of vars (a JSON object; NULL for none).
 * Returns a malloc'd string, or NULL with the message in err.  When gen is
 * not NULL, *gen (malloc'd, *ngen of them) are the spans the template's
 * generation blocks wrote, in order.
 */
char *jinja_render(const struct jinja *j, const json_t *vars,
    struct jinja_span **gen, size_t *ngen, char *err, size_t errsz);

#endif
