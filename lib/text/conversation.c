/*
 * conversation.c: records into token sequences, and the end-of-sequence
 * policy; see conversation.h.
 */
#include "config.h"

#include <err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "checkpoints/checkpoint.h"
#include "records/record.h"
#include "text/conversation.h"
#include "text/tokenizer.h"
#include "util/util.h"

/* Stands for the assistant's content in the probe for the turn's end. */
#define TURN_MARK "@@prefpipe-turn@@"

struct conv {
	int vocab;
	struct tokenizer *tok;
	char tokerr[512];
	const struct chat_template *tmpl;
	char tmplerr[512];
	char *jinja;		/* the checkpoint's chat_template, or NULL */
	int32_t stop[CONV_MAX_STOP];
	int nstop;
	int32_t end_text;	/* a plain text response's end, or -1 */
	int32_t end_turn;	/* the template's end-of-turn token, or -1 */
};

static void
add_stop(struct conv *cv, json_int_t id)
{
	if (id < 0 || id >= cv->vocab)
		return;
	for (int i = 0; i < cv->nstop; i++)
		if (cv->stop[i] == id)
			return;
	if (cv->nstop < CONV_MAX_STOP)
		cv->stop[cv->nstop++] = (int32_t)id;
}

/* eos_token_id of a config: one integer or a list; the first id, or -1. */
static json_int_t
add_eos_field(struct conv *cv, const json_t *j)
{
	json_t *x = json_object_get(j, "eos_token_id"), *y;
	json_int_t first = -1;
	size_t i;

	if (json_is_integer(x)) {
		first = json_integer_value(x);
		add_stop(cv, first);
	} else if (json_is_array(x))
		json_array_foreach(x, i, y)
			if (json_is_integer(y)) {
				if (first < 0)
					first = json_integer_value(y);
				add_stop(cv, json_integer_value(y));
			}
	return first >= 0 && first < cv->vocab ? first : -1;
}

/*
 * The template's end-of-turn token: the first special token it writes
 * after an assistant's content.
 */
static int32_t
probe_end_of_turn(struct conv *cv)
{
	struct chat_msg m[2] = { { "user", "x" }, { "assistant", TURN_MARK } };
	char e[512];
	int32_t *ids, id = -1;

	char *text = conv_render(cv, m, 2, 0, e, sizeof(e));
	if (text == NULL)
		return -1;
	char *at = strstr(text, TURN_MARK);
	if (at != NULL) {
		at += strlen(TURN_MARK);
		/* A text the template wrote: a regex that fails on it
		 * leaves the template without an end of turn. */
		size_t n = tokenizer_try_encode(cv->tok, at, strlen(at), 0,
		    &ids, e, sizeof(e));
		if (n == (size_t)-1)
			n = 0;
		for (size_t i = 0; i < n && id < 0; i++)
			if (tokenizer_is_special(cv->tok, ids[i]) &&
			    ids[i] < cv->vocab)
				id = ids[i];
		free(ids);
	}
	free(text);
	return id;
}

struct conv *
conv_open(struct ckpt *c, int vocab, const char *template_name, char *err,
    size_t errsz)
{
	if (template_name != NULL && chat_template_by_name(template_name) ==
	    NULL) {
		snprintf(err, errsz, "unknown chat template \"%s\" (known: "
		    "%s)",
		    template_name, chat_template_names());
		return NULL;
	}
	struct conv *cv = xcalloc(1, sizeof(*cv));
	cv->vocab = vocab;
	cv->end_text = cv->end_turn = -1;

	cv->tok = tokenizer_from_ckpt(c, cv->tokerr, sizeof(cv->tokerr));
	if (cv->tok != NULL) {
		const char *j = tokenizer_chat_template(cv->tok);
		cv->jinja = j ? xstrdup(j) : NULL;
		cv->tmpl = chat_template_select(template_name, cv->jinja,
		    cv->tmplerr, sizeof(cv->tmplerr));
	} else
		snprintf(cv->tmplerr, sizeof(cv->tmplerr), "%s", cv->tokerr);

	/* Stop ids: what generate() reads (generation_config.json, then
	 * config.json), the tokenizer's EOS and the end of a turn. */
	json_t *gen = ckpt_json(c, "generation_config.json");
	json_int_t gen_first = gen ? add_eos_field(cv, gen) : -1;
	if (gen)
		json_decref(gen);
	json_int_t cfg_first = add_eos_field(cv, ckpt_config(c));
	int32_t tok_eos = cv->tok ? tokenizer_eos_id(cv->tok) : -1;
	if (tok_eos >= vocab)
		tok_eos = -1;
	add_stop(cv, tok_eos);
	/*
	 * Plain text ends with the tokenizer's EOS, as the tokenizer and
	 * trainers built on it append it; the configs' first id otherwise.
	 */
	cv->end_text = tok_eos >= 0 ? tok_eos :
	    cfg_first >= 0 ? (int32_t)cfg_first : (int32_t)gen_first;
	if (cv->tok != NULL && cv->tmpl != NULL)
		cv->end_turn = probe_end_of_turn(cv);
	add_stop(cv, cv->end_turn);
	return cv;
}

void
conv_free(struct conv *cv)
{
	if (cv == NULL)
		return;
	if (cv->tok)
		tokenizer_free(cv->tok);
	free(cv->jinja);
	free(cv);
}

struct tokenizer *
conv_tokenizer(const struct conv *cv)
{
	return cv->tok;
}

const char *
conv_tokenizer_error(const struct conv *cv)
{
	return cv->tokerr;
}

const struct chat_template *
conv_template(const struct conv *cv)
{
	return cv->tmpl;
}

const char *
conv_template_error(const struct conv *cv)
{
	return cv->tmplerr;
}

/* ------------------------------------------------------------------------ */
/* Messages */

static int
key_is(const msgpack_object *k, const char *s)
{
	return k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(s) &&
	    memcmp(k->via.str.ptr, s, k->via.str.size) == 0;
}

int
conv_messages(const msgpack_object *o, struct conv_msgs *ms, char *err,
    size_t errsz)
{
	static const char *const want[2] = { "role", "content" };

	ms->m = NULL;
	ms->n = 0;
	if (o->type != MSGPACK_OBJECT_ARRAY)
		return pp_errf(err, errsz, "expected array, got %s",
		    rec_type_name(o));
	ms->m = xcalloc(o->via.array.size + 2, sizeof(*ms->m));
	for (uint32_t i = 0; i < o->via.array.size; i++) {
		const msgpack_object *x = &o->via.array.ptr[i];
		char *got[2] = { NULL, NULL };
		if (x->type != MSGPACK_OBJECT_MAP) {
			conv_messages_free(ms);
			return pp_errf(err, errsz, "element %u: expected map, got "
			    "%s", i, rec_type_name(x));
		}
		for (uint32_t k = 0; k < x->via.map.size; k++) {
			const msgpack_object *key = &x->via.map.ptr[k].key;
			const msgpack_object *val = &x->via.map.ptr[k].val;
			for (int f = 0; f < 2; f++) {
				if (!key_is(key, want[f]))
					continue;
				if (val->type != MSGPACK_OBJECT_STR) {
					free(got[0]);
					free(got[1]);
					conv_messages_free(ms);
					return pp_errf(err, errsz, "element %u: "
					    "\"%s\": expected string, got %s",
					    i, want[f], rec_type_name(val));
				}
				free(got[f]);
				got[f] = xstrndup(val->via.str.ptr,
				    val->via.str.size);
			}
		}
		ms->m[i].role = got[0];
		ms->m[i].content = got[1];
		ms->n = i + 1;
		for (int f = 0; f < 2; f++)
			if (got[f] == NULL) {
				conv_messages_free(ms);
				return pp_errf(err, errsz, "element %u: \"%s\": "
				    "missing", i, want[f]);
			}
	}
	return 0;
}

void
conv_messages_add(struct conv_msgs *ms, const char *role, const char *content,
    size_t len)
{
	ms->m = xreallocarray(ms->m, ms->n + 2, sizeof(*ms->m));
	ms->m[ms->n].role = xstrdup(role);
	ms->m[ms->n].content = xstrndup(content, len);
	ms->n++;
	memset(&ms->m[ms->n], 0, sizeof(ms->m[ms->n]));
}

void
conv_messages_free(struct conv_msgs *ms)
{
	for (size_t i = 0; i < ms->n; i++) {
		free((char *)ms->m[i].role);
		free((char *)ms->m[i].content);
	}
	free(ms->m);
	ms->m = NULL;
	ms->n = 0;
}

char *
conv_render(const struct conv *cv, const struct chat_msg *m, size_t n, int gen,
    char *err, size_t errsz)
{
	if (cv->tmpl == NULL) {
		pp_errf(err, errsz, "%s", cv->tmplerr);
		return NULL;
	}
	return chat_render(cv->tmpl, m, n, gen, tokenizer_bos_token(cv->tok),
	    tokenizer_eos_token(cv->tok), cv->jinja, err, errsz);
}

size_t
conv_prompt_tokens(const struct conv *cv, const struct chat_msg *m, size_t n,
    int32_t **ids, char *err, size_t errsz)
{
	char *text = conv_render(cv, m, n, 1, err, errsz);
	if (text == NULL)
		return (size_t)-1;
	/* The template writes the special tokens itself. */
	size_t k = tokenizer_try_encode(cv->tok, text, strlen(text), 0, ids,
	    err, errsz);
	free(text);
	return k;
}

size_t
conv_turn_tokens(const struct conv *cv, const struct chat_msg *m, size_t n,
    int32_t **all, char **mask, char *err, size_t errsz)
{
	size_t len = 0, done = 0;	/* tokens; characters encoded */
	char *full = conv_render(cv, m, n, 0, err, errsz);

	*all = NULL;
	*mask = NULL;
	if (full == NULL)
		return (size_t)-1;
	size_t flen = strlen(full);
	for (size_t i = 0; i <= n; i++) {
		size_t from = flen, to = flen;
		if (i < n) {
			if (strcmp(m[i].role, "assistant") != 0)
				continue;
			char *a = conv_render(cv, m, i, 1, err, errsz);
			char *b = a ? conv_render(cv, m, i + 1, 0, err, errsz) :
			    NULL;
			int bad = b == NULL;
			if (!bad) {
				from = strlen(a);
				to = strlen(b);
				bad = from < done || to < from || to > flen ||
				    strncmp(a, full, from) != 0 ||
				    strncmp(b, full, to) != 0;
				if (bad)
					pp_errf(err, errsz, "the template does "
					    "not render turn %zu as a prefix "
					    "of the whole conversation", i);
			}
			free(a);
			free(b);
			if (bad) {
				free(full);
				free(*all);
				free(*mask);
				*all = NULL;
				*mask = NULL;
				return (size_t)-1;
			}
		}
		/* [done, from) context, [from, to) the assistant's */
		for (int part = 0; part < 2; part++) {
			size_t lo = part ? from : done, hi = part ? to : from;
			int32_t *ids;
			if (hi <= lo)
				continue;
			size_t k = tokenizer_try_encode(cv->tok, full + lo,
			    hi - lo, 0, &ids, err, errsz);
			if (k == (size_t)-1) {
				free(full);
				free(*all);
				free(*mask);
				*all = NULL;
				*mask = NULL;
				return (size_t)-1;
			}
			*all = xreallocarray(*all, len + k + 1,
			    sizeof(int32_t));
			*mask = xreallocarray(*mask, len + k + 1, 1);
			memcpy(*all + len, ids, k * sizeof(int32_t));
			memset(*mask + len, part, k);
			len += k;
			free(ids);
		}
		done = to;
	}
	free(full);
	return len;
}

/* ------------------------------------------------------------------------ */
/* The end of a sequence */

int
conv_is_stop(const struct conv *cv, int32_t id)
{
	for (int i = 0; i < cv->nstop; i++)
		if (cv->stop[i] == id)
			return 1;
	return 0;
}

const int32_t *
conv_stop_ids(const struct conv *cv, int *n)
{
	*n = cv->nstop;
	return cv->stop;
}

int32_t
conv_end_of_turn(const struct conv *cv)
{
	return cv->end_turn;
}

int32_t
conv_response_end(const struct conv *cv, int chat)
{
	if (chat && cv->end_turn >= 0)
		return cv->end_turn;
	return cv->end_text;
}

size_t
conv_response_tokens(const struct conv *cv, const char *text, size_t len,
    int chat, int32_t **ids)
{
	char e[256];
	size_t n = conv_try_response_tokens(cv, text, len, chat, ids, e,
	    sizeof(e));

	if (n == (size_t)-1)
		errx(EXIT_DATA, "%s", e);
	return n;
}

size_t
conv_try_response_tokens(const struct conv *cv, const char *text, size_t len,
    int chat, int32_t **ids, char *err, size_t errsz)
{
	size_t n = tokenizer_try_encode(cv->tok, text, len, 0, ids, err,
	    errsz);
	int32_t end = conv_response_end(cv, chat);

	if (n == (size_t)-1)
		return n;

	/* A model learns to stop only from a response that does. */
	if (end >= 0 && (n == 0 || (*ids)[n - 1] != end)) {
		*ids = xreallocarray(*ids, n + 1, sizeof(**ids));
		(*ids)[n++] = end;
	}
	return n;
}

/* ------------------------------------------------------------------------ */
/* Does a sequence fit a model? */

int
conv_check_vocab(int vocab, const int32_t *ids, size_t n, char *err,
    size_t errsz)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= vocab)
			return pp_errf(err, errsz, "token %zu is %d, outside the "
			    "vocabulary [0, %d)", i, (int)ids[i], vocab);
	return 0;
}

int
conv_check_length(int ctx, size_t n, char *err, size_t errsz)
{
	if (n > (size_t)ctx)
		return pp_errf(err, errsz, "%zu tokens, more than the %d "
		    "positions", n, ctx);
	return 0;
}

int
conv_same_tokenizer(const struct tokenizer *a, const struct tokenizer *b,
    char *err, size_t errsz)
{
	size_t na = tokenizer_vocab_size(a), nb = tokenizer_vocab_size(b);
	if (na != nb)
		return pp_errf(err, errsz, "%zu tokens against %zu", na, nb);
	for (size_t i = 0; i < na; i++) {
		const char *x = tokenizer_id_to_token(a, (int32_t)i);
		const char *y = tokenizer_id_to_token(b, (int32_t)i);
		if ((x == NULL) != (y == NULL) ||
		    (x != NULL && strcmp(x, y) != 0))
			return pp_errf(err, errsz, "token %zu is \"%s\" against "
			    "\"%s\"", i, x ? x : "", y ? y : "");
	}
	return 0;
}
