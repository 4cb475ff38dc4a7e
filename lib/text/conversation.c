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
	const struct chat_template *tmpl;	/* owned when Jinja */
	char tmplerr[1024];
	char *jinja;		/* the checkpoint's chat_template, or NULL */
	json_t *targs;		/* the template's keyword arguments */
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
	struct chat_msg m[2] = { { .role = "user", .content = "x" },
	    { .role = "assistant", .content = TURN_MARK } };
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

/*
 * The checkpoint's own template: chat_template.jinja, which transformers
 * prefers, else tokenizer_config.json's chat_template (with its tool_use
 * variant).  NULL with a message in cv->tmplerr on a syntax error; the
 * plain built-in when the checkpoint has no template.
 */
static const struct chat_template *
ckpt_template(struct conv *cv, struct ckpt *c)
{
	const char *src = tokenizer_chat_template(cv->tok);
	const char *tools = tokenizer_chat_template_tools(cv->tok);
	const struct chat_template *t;
	char where[1024];
	const void *file;
	size_t len;

	if ((file = ckpt_file(c, "chat_template.jinja", &len)) != NULL) {
		free(cv->jinja);
		cv->jinja = xstrndup(file, len);
		ckpt_where(c, "chat_template.jinja", where, sizeof(where));
		tools = NULL;
	} else if (src != NULL) {
		cv->jinja = xstrdup(src);
		ckpt_where(c, "tokenizer_config.json", where, sizeof(where));
		strncat(where, ": chat_template", sizeof(where) -
		    strlen(where) - 1);
	} else
		return chat_template_by_name("plain");
	t = chat_template_jinja(cv->jinja, tools, where, cv->tmplerr,
	    sizeof(cv->tmplerr));
	return t;
}

struct conv *
conv_open(struct ckpt *c, int vocab, const char *template_name, char *err,
    size_t errsz)
{
	return conv_open_args(c, vocab, template_name, NULL, err, errsz);
}

struct conv *
conv_open_args(struct ckpt *c, int vocab, const char *template_name,
    const json_t *targs, char *err, size_t errsz)
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
	cv->targs = targs ? json_deep_copy(targs) : NULL;

	cv->tok = tokenizer_from_ckpt(c, cv->tokerr, sizeof(cv->tokerr));
	if (cv->tok != NULL) {
		if (template_name != NULL) {
			/* a built-in by name; qwen2 reads its default
			 * system message from the checkpoint's template */
			const char *j = tokenizer_chat_template(cv->tok);
			cv->jinja = j ? xstrdup(j) : NULL;
			cv->tmpl = chat_template_by_name(template_name);
		} else
			cv->tmpl = ckpt_template(cv, c);
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
	chat_template_free(cv->tmpl);
	json_decref(cv->targs);
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

/* A record's message as JSON (all its fields, for Jinja templates). */
static json_t *
message_json(const msgpack_object *x, char *err, size_t errsz)
{
	struct strbuf b;
	json_error_t je;
	json_t *j = NULL;

	sb_init(&b);
	int rc = json_emit(&b, x);
	if (rc != 0)
		pp_errf(err, errsz, "%s", json_emit_error(rc));
	else if ((j = json_loadb(b.data, b.len, JSON_ALLOW_NUL, &je)) == NULL)
		pp_errf(err, errsz, "%s", je.text);
	sb_free(&b);
	return j;
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
		int seen[2] = { 0, 0 };
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
				seen[f] = 1;
				/* content may also be nil (a tool call) or a
				 * list of parts, for templates that take
				 * them */
				if (f == 1 && (val->type == MSGPACK_OBJECT_NIL ||
				    val->type == MSGPACK_OBJECT_ARRAY))
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
			if (!seen[f]) {
				conv_messages_free(ms);
				return pp_errf(err, errsz, "element %u: \"%s\": "
				    "missing", i, want[f]);
			}
		char e[256];
		if ((ms->m[i].json = message_json(x, e, sizeof(e))) == NULL) {
			conv_messages_free(ms);
			return pp_errf(err, errsz, "element %u: %s", i, e);
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
	ms->m[ms->n].json = NULL;
	ms->n++;
	memset(&ms->m[ms->n], 0, sizeof(ms->m[ms->n]));
}

void
conv_messages_free(struct conv_msgs *ms)
{
	for (size_t i = 0; i < ms->n; i++) {
		free((char *)ms->m[i].role);
		free((char *)ms->m[i].content);
		json_decref((json_t *)ms->m[i].json);
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
	return chat_render_vars(cv->tmpl, m, n, gen,
	    tokenizer_bos_token(cv->tok), tokenizer_eos_token(cv->tok),
	    cv->jinja, cv->targs, NULL, NULL, err, errsz);
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

/* Encode full[lo, hi) and append it with mask bit m; -1 on error. */
static int
add_piece(const struct conv *cv, const char *full, size_t lo, size_t hi,
    int m, int32_t **all, char **mask, size_t *len, char *err, size_t errsz)
{
	int32_t *ids;

	if (hi <= lo)
		return 0;
	size_t k = tokenizer_try_encode(cv->tok, full + lo, hi - lo, 0, &ids,
	    err, errsz);
	if (k == (size_t)-1)
		return -1;
	*all = xreallocarray(*all, *len + k + 1, sizeof(int32_t));
	*mask = xreallocarray(*mask, *len + k + 1, 1);
	memcpy(*all + *len, ids, k * sizeof(int32_t));
	memset(*mask + *len, m, k);
	*len += k;
	free(ids);
	return 0;
}

/*
 * The spans of the assistant turns in full (the rendering of all n):
 * [from, to) pairs, in order and disjoint.  NULL on error.
 */
static struct jinja_span *
turn_spans(const struct conv *cv, const struct chat_msg *m, size_t n,
    const char *full, size_t *nsp, char *err, size_t errsz)
{
	size_t flen = strlen(full), done = 0;
	struct jinja_span *sp = NULL;

	*nsp = 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(m[i].role, "assistant") != 0)
			continue;
		char *a = conv_render(cv, m, i, 1, err, errsz);
		char *b = a ? conv_render(cv, m, i + 1, 0, err, errsz) : NULL;
		int bad = b == NULL;
		size_t from = 0, to = 0;
		if (!bad) {
			from = strlen(a);
			to = strlen(b);
			bad = from < done || to < from || to > flen ||
			    strncmp(a, full, from) != 0 ||
			    strncmp(b, full, to) != 0;
			if (bad)
				pp_errf(err, errsz, "the template does not "
				    "render turn %zu as a prefix of the whole "
				    "conversation (and has no {%% generation "
				    "%%} blocks)", i);
		}
		free(a);
		free(b);
		if (bad) {
			free(sp);
			return NULL;
		}
		sp = xreallocarray(sp, *nsp + 1, sizeof(*sp));
		sp[*nsp].from = from;
		sp[(*nsp)++].to = to;
		done = to;
	}
	return sp ? sp : xcalloc(1, sizeof(*sp));
}

size_t
conv_turn_tokens(const struct conv *cv, const struct chat_msg *m, size_t n,
    int32_t **all, char **mask, char *err, size_t errsz)
{
	struct jinja_span *sp = NULL;
	size_t len = 0, done = 0, nsp = 0;
	char *full;

	*all = NULL;
	*mask = NULL;
	if (cv->tmpl == NULL) {
		pp_errf(err, errsz, "%s", cv->tmplerr);
		return (size_t)-1;
	}
	if (chat_template_has_generation(cv->tmpl))
		full = chat_render_vars(cv->tmpl, m, n, 0,
		    tokenizer_bos_token(cv->tok), tokenizer_eos_token(cv->tok),
		    cv->jinja, cv->targs, &sp, &nsp, err, errsz);
	else {
		full = conv_render(cv, m, n, 0, err, errsz);
		if (full && (sp = turn_spans(cv, m, n, full, &nsp, err,
		    errsz)) == NULL) {
			free(full);
			full = NULL;
		}
	}
	if (full == NULL)
		return (size_t)-1;
	/* [done, from) context, [from, to) the assistant's */
	for (size_t i = 0; i <= nsp; i++) {
		size_t from = i < nsp ? sp[i].from : strlen(full);
		size_t to = i < nsp ? sp[i].to : from;
		if (add_piece(cv, full, done, from, 0, all, mask, &len, err,
		    errsz) < 0 || add_piece(cv, full, from, to, 1, all, mask,
		    &len, err, errsz) < 0) {
			free(full);
			free(sp);
			free(*all);
			free(*mask);
			*all = NULL;
			*mask = NULL;
			return (size_t)-1;
		}
		done = to;
	}
	free(full);
	free(sp);
	return len;
}

size_t
conv_reply_tokens(const struct conv *cv, const struct chat_msg *m, size_t n,
    const char *text, size_t len, int32_t **ids, size_t *np, char *err,
    size_t errsz)
{
	struct chat_msg *all = xcalloc(n + 1, sizeof(*all));
	char *reply = xstrndup(text, len), *mask;

	memcpy(all, m, n * sizeof(*m));
	all[n].role = "assistant";
	all[n].content = reply;
	size_t k = conv_turn_tokens(cv, all, n + 1, ids, &mask, err, errsz);
	free(all);
	free(reply);
	if (k == (size_t)-1)
		return k;
	/* the start of the last run of assistant tokens */
	size_t e = k;
	while (e > 0 && !mask[e - 1])
		e--;
	size_t b = e;
	while (b > 0 && mask[b - 1])
		b--;
	free(mask);
	if (e == 0) {
		free(*ids);
		*ids = NULL;
		pp_errf(err, errsz, "the template wrote nothing of the "
		    "assistant's reply");
		return (size_t)-1;
	}
	*np = b;
	return k;
}

int
conv_template_arg(json_t *args, const char *kv, char *err, size_t errsz)
{
	const char *eq = strchr(kv, '=');
	json_t *v;

	if (eq == NULL || eq == kv)
		return pp_errf(err, errsz, "\"%s\": expected KEY=VALUE", kv);
	v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
	if (v == NULL)
		v = json_string(eq + 1);
	if (v == NULL)
		return pp_errf(err, errsz, "\"%s\": the value is not UTF-8",
		    kv);
	char *k = xstrndup(kv, eq - kv);
	json_object_set_new(args, k, v);
	free(k);
	return 0;
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
