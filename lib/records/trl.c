/*
 * trl.c: TRL's dataset formats to prefpipe's records and back; see trl.h.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "records/record.h"
#include "records/trl.h"
#include "util/util.h"

static const char *const type_names[] = { "language-modeling",
	"prompt-only", "prompt-completion", "preference",
	"unpaired-preference" };

const char *
trl_type_name(enum trl_type t)
{
	return type_names[t];
}

/* ------------------------------------------------------------------------ */
/* msgpack values */

static int
str_is(const msgpack_object *o, const char *s)
{
	size_t n = strlen(s);
	return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
	    (n == 0 || memcmp(o->via.str.ptr, s, n) == 0);
}

/* The value of key in map o, or NULL. */
static const msgpack_object *
map_get(const msgpack_object *o, const char *key)
{
	if (o->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < o->via.map.size; i++)
		if (str_is(&o->via.map.ptr[i].key, key))
			return &o->via.map.ptr[i].val;
	return NULL;
}

/* Deep equality, as Python's == on the decoded values. */
static int
obj_equal(const msgpack_object *a, const msgpack_object *b)
{
	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case MSGPACK_OBJECT_STR:
		return a->via.str.size == b->via.str.size &&
		    (a->via.str.size == 0 || memcmp(a->via.str.ptr,
		    b->via.str.ptr, a->via.str.size) == 0);
	case MSGPACK_OBJECT_ARRAY:
		if (a->via.array.size != b->via.array.size)
			return 0;
		for (uint32_t i = 0; i < a->via.array.size; i++)
			if (!obj_equal(&a->via.array.ptr[i],
			    &b->via.array.ptr[i]))
				return 0;
		return 1;
	case MSGPACK_OBJECT_MAP:
		if (a->via.map.size != b->via.map.size)
			return 0;
		for (uint32_t i = 0; i < a->via.map.size; i++) {
			const msgpack_object_kv *kv = &a->via.map.ptr[i];
			const msgpack_object *v = NULL;
			for (uint32_t j = 0; j < b->via.map.size && !v; j++)
				if (obj_equal(&kv->key, &b->via.map.ptr[j].key))
					v = &b->via.map.ptr[j].val;
			if (v == NULL || !obj_equal(&kv->val, v))
				return 0;
		}
		return 1;
	default:
		return msgpack_object_equal(*a, *b);
	}
}

/* Field k: v of another record, copied into out as it is. */
static void
copy_field(struct rec *out, const msgpack_object *k, const msgpack_object *v)
{
	char *key = xmalloc(k->via.str.size + 1);
	memcpy(key, k->via.str.ptr, k->via.str.size);
	key[k->via.str.size] = '\0';
	rec_set_obj(out, key, v);
	free(key);
}

/* ------------------------------------------------------------------------ */
/* Messages */

/* o is a conversation: an array of maps with string role and content. */
static void
need_messages(const struct rec *r, const char *field, const msgpack_object *o)
{
	if (o->via.array.size == 0)
		rec_die(r, field, "an empty list of messages");
	for (uint32_t i = 0; i < o->via.array.size; i++) {
		const msgpack_object *m = &o->via.array.ptr[i];
		const msgpack_object *role = map_get(m, "role");
		const msgpack_object *content = map_get(m, "content");
		if (m->type != MSGPACK_OBJECT_MAP || role == NULL ||
		    role->type != MSGPACK_OBJECT_STR || content == NULL ||
		    content->type != MSGPACK_OBJECT_STR)
			rec_die(r, field, "message %u: expected a map with "
			    "string role and content", i);
	}
}

/*
 * The text of a completion: a string, or a list of exactly one assistant
 * message (starting at message first), whose content it is.
 */
static msgpack_object
completion_text(const struct rec *r, const char *field,
    const msgpack_object *o, uint32_t first)
{
	if (o->type == MSGPACK_OBJECT_STR)
		return *o;
	if (o->type != MSGPACK_OBJECT_ARRAY)
		rec_die(r, field, "expected string or list of messages, got %s",
		    rec_type_name(o));
	need_messages(r, field, o);
	uint32_t n = o->via.array.size - first;
	const msgpack_object *m = &o->via.array.ptr[first];
	if (n != 1 || !str_is(map_get(m, "role"), "assistant"))
		rec_die(r, field, "expected one assistant message%s, got %u "
		    "message%s", first ? " after the shared prompt" : "", n,
		    n == 1 ? " of another role" : "s");
	return *map_get(m, "content");
}

/* ------------------------------------------------------------------------ */
/* The implicit prompt */

struct split {
	msgpack_object prompt;		/* string or array */
	int conversational;
	uint32_t first;			/* message where responses start */
	msgpack_object chosen, rejected;	/* the responses' text */
};

static const char HH_TURN[] = "\n\nAssistant:";

/* Bytes of the prompt two strings share: see trl.h. */
static size_t
shared_prompt(const char *a, size_t na, const char *b, size_t nb)
{
	size_t n = na < nb ? na : nb, p = 0;
	while (p < n && a[p] == b[p])
		p++;
	size_t m = sizeof(HH_TURN) - 1, cut = 0;
	for (size_t i = 0; i + m <= p; i++)
		if (memcmp(a + i, HH_TURN, m) == 0)
			cut = i + m;
	if (cut > 0)
		return cut;
	if (p < n && p > 0 && a[p - 1] == ' ')
		p--;
	return p;
}

static void
implicit_prompt(const struct rec *r, const msgpack_object *c,
    const msgpack_object *j, struct split *s)
{
	memset(s, 0, sizeof(*s));
	if (c->type == MSGPACK_OBJECT_STR && j->type == MSGPACK_OBJECT_STR) {
		size_t p = shared_prompt(c->via.str.ptr, c->via.str.size,
		    j->via.str.ptr, j->via.str.size);
		s->prompt = *c;
		s->prompt.via.str.size = (uint32_t)p;
		s->chosen = *c;
		s->chosen.via.str.ptr += p;
		s->chosen.via.str.size -= (uint32_t)p;
		s->rejected = *j;
		s->rejected.via.str.ptr += p;
		s->rejected.via.str.size -= (uint32_t)p;
		if (s->chosen.via.str.size == 0 ||
		    s->rejected.via.str.size == 0)
			rec_die(r, s->chosen.via.str.size ? "rejected" :
			    "chosen", "nothing left after the prompt it "
			    "shares with the other side");
		return;
	}
	if (c->type != MSGPACK_OBJECT_ARRAY || j->type != MSGPACK_OBJECT_ARRAY)
		rec_die(r, "rejected", "expected the type of chosen (%s), got "
		    "%s", rec_type_name(c), rec_type_name(j));
	need_messages(r, "chosen", c);
	need_messages(r, "rejected", j);
	uint32_t n = c->via.array.size < j->via.array.size ?
	    c->via.array.size : j->via.array.size, k = 0;
	while (k < n && obj_equal(&c->via.array.ptr[k], &j->via.array.ptr[k]))
		k++;
	if (k == 0)
		rec_die(r, "chosen", "no prompt: the first messages of chosen "
		    "and rejected differ");
	s->conversational = 1;
	s->first = k;
	s->prompt = *c;
	s->prompt.via.array.size = k;
	s->chosen = completion_text(r, "chosen", c, k);
	s->rejected = completion_text(r, "rejected", j, k);
}

/* ------------------------------------------------------------------------ */
/* TRL -> prefpipe */

/* {"response": text} under key in out. */
static void
set_response(struct rec *out, const char *key, const msgpack_object *text)
{
	struct rec sub;
	rec_init(&sub, out->src, out->recno);
	rec_set_obj(&sub, "response", text);
	rec_set_sub(out, key, &sub);
	rec_free(&sub);
}

/* The prompt: a string as "prompt", a conversation as "messages". */
static void
set_prompt(const struct rec *in, struct rec *out, const msgpack_object *p)
{
	if (p->type == MSGPACK_OBJECT_STR) {
		rec_set_obj(out, "prompt", p);
		return;
	}
	if (p->type != MSGPACK_OBJECT_ARRAY)
		rec_die(in, "prompt", "expected string or list of messages, "
		    "got %s", rec_type_name(p));
	need_messages(in, "prompt", p);
	rec_set_obj(out, "messages", p);
}

static enum trl_type
detect(const struct rec *in)
{
	int chosen = rec_get(in, "chosen") != NULL;
	int rejected = rec_get(in, "rejected") != NULL;
	if (chosen || rejected) {
		if (!chosen || !rejected)
			rec_die(in, chosen ? "rejected" : "chosen", "missing "
			    "(a preference record has both)");
		return TRL_PREFERENCE;
	}
	if (rec_get(in, "completion") != NULL)
		return rec_get(in, "label") != NULL ? TRL_UNPAIRED :
		    TRL_COMPLETION;
	if (rec_get(in, "prompt") != NULL)
		return TRL_PROMPT;
	if (rec_get(in, "text") != NULL || rec_get(in, "messages") != NULL)
		return TRL_LM;
	rec_die(in, "prompt", "missing: not a TRL record (text, messages, "
	    "prompt, completion, or chosen and rejected)");
}

enum trl_type
trl_to_rec(const struct rec *in, uint64_t ordinal, struct rec *out)
{
	enum trl_type t = detect(in);
	const msgpack_object *prompt = rec_get(in, "prompt");
	struct split s;
	const msgpack_object *chosen = rec_get(in, "chosen");
	/*
	 * The prompt is implicit when there is none, or, as TRL's
	 * maybe_extract_prompt has it, when it is a string and the
	 * responses are conversations (UltraFeedback's binarized form):
	 * then it is taken from them and the string dropped.
	 */
	int implicit = t == TRL_PREFERENCE && (prompt == NULL ||
	    (prompt->type == MSGPACK_OBJECT_ARRAY) !=
	    (chosen->type == MSGPACK_OBJECT_ARRAY));
	int conv_prompt;
	char id[32];

	if (t == TRL_UNPAIRED)
		(void)rec_need_bool(in, "label");
	if ((t == TRL_COMPLETION || t == TRL_UNPAIRED) &&
	    rec_get(in, "response") != NULL)
		rec_die(in, "response", "a completion and a response both");
	if (implicit)
		implicit_prompt(in, chosen, rec_get(in, "rejected"), &s);
	conv_prompt = implicit ? s.conversational : prompt != NULL &&
	    prompt->type == MSGPACK_OBJECT_ARRAY;

	rec_init(out, in->src, in->recno);
	if (rec_get(in, "id") == NULL) {
		snprintf(id, sizeof(id), "%llu", (unsigned long long)ordinal);
		rec_set_str(out, "id", id);
	}
	for (uint32_t i = 0; i < in->n; i++) {
		const msgpack_object *k = &in->kv[i].key, *v = &in->kv[i].val;
		if (t != TRL_LM && str_is(k, "prompt")) {
			if (!implicit)
				set_prompt(in, out, v);
		} else if (t != TRL_LM && conv_prompt &&
		    str_is(k, "messages")) {
			/* The conversation again (UltraFeedback's copy of
			 * chosen) says nothing new; anything else would be
			 * lost under the prompt's messages. */
			if (t != TRL_PREFERENCE || !obj_equal(v, chosen))
				rec_die(in, "messages", "a conversation besides "
				    "the conversational prompt");
		}
		else if (str_is(k, "completion")) {
			msgpack_object text = completion_text(in,
			    "completion", v, 0);
			rec_set_obj(out, "response", &text);
		} else if (t == TRL_PREFERENCE && (str_is(k, "chosen") ||
		    str_is(k, "rejected"))) {
			int c = str_is(k, "chosen");
			/* The implicit prompt goes where the pair starts. */
			if (implicit && rec_get(out, "prompt") == NULL &&
			    rec_get(out, "messages") == NULL)
				rec_set_obj(out, s.conversational ? "messages" :
				    "prompt", &s.prompt);
			msgpack_object text = implicit ? (c ? s.chosen :
			    s.rejected) : completion_text(in, c ? "chosen" :
			    "rejected", v, 0);
			set_response(out, c ? "chosen" : "rejected", &text);
		} else
			copy_field(out, k, v);
	}
	return t;
}

/* ------------------------------------------------------------------------ */
/* prefpipe -> TRL */

/* The text of side.response, which a TRL record needs. */
static msgpack_object
side_text(const struct rec *in, const char *side)
{
	char field[32];
	const msgpack_object *m = rec_get(in, side);
	snprintf(field, sizeof(field), "%s.response", side);
	if (m->type != MSGPACK_OBJECT_MAP)
		rec_die(in, side, "expected map, got %s", rec_type_name(m));
	const msgpack_object *t = map_get(m, "response");
	if (t == NULL)
		rec_die(in, field, "missing (TRL records hold text, not "
		    "token ids)");
	if (t->type != MSGPACK_OBJECT_STR)
		rec_die(in, field, "expected string, got %s",
		    rec_type_name(t));
	return *t;
}

/* TRL's conversational completion: [{"role": "assistant", "content"}]. */
static void
set_assistant(struct rec *out, const char *key, const msgpack_object *text)
{
	msgpack_object_kv kv[2];
	msgpack_object msg, list;

	kv[0].key.type = kv[0].val.type = MSGPACK_OBJECT_STR;
	kv[0].key.via.str.ptr = "role";
	kv[0].key.via.str.size = 4;
	kv[0].val.via.str.ptr = "assistant";
	kv[0].val.via.str.size = 9;
	kv[1].key.type = MSGPACK_OBJECT_STR;
	kv[1].key.via.str.ptr = "content";
	kv[1].key.via.str.size = 7;
	kv[1].val = *text;
	msg.type = MSGPACK_OBJECT_MAP;
	msg.via.map.ptr = kv;
	msg.via.map.size = 2;
	list.type = MSGPACK_OBJECT_ARRAY;
	list.via.array.ptr = &msg;
	list.via.array.size = 1;
	rec_set_obj(out, key, &list);
}

/* Whether conversation o's last message is the assistant's. */
static int
ends_with_assistant(const msgpack_object *o)
{
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size == 0)
		return 0;
	const msgpack_object *role = map_get(&o->via.array.ptr[
	    o->via.array.size - 1], "role");
	return role != NULL && str_is(role, "assistant");
}

enum trl_type
trl_from_rec(const struct rec *in, struct rec *out)
{
	const msgpack_object *msgs = rec_get(in, "messages");
	int pair = rec_get(in, "chosen") != NULL &&
	    rec_get(in, "rejected") != NULL;
	int resp = rec_get(in, "response") != NULL;
	enum trl_type t = pair ? TRL_PREFERENCE : resp ?
	    (rec_get(in, "label") ? TRL_UNPAIRED : TRL_COMPLETION) :
	    TRL_PROMPT;

	/*
	 * Language modeling passes as it is: text, or a conversation that
	 * ends with the assistant's turn (one that ends with another role
	 * is a prompt to complete).
	 */
	if (t == TRL_PROMPT && rec_get(in, "prompt") == NULL &&
	    (msgs == NULL ? rec_get(in, "text") != NULL :
	    ends_with_assistant(msgs))) {
		if (msgs)
			need_messages(in, "messages", msgs);
		rec_copy(out, in);
		return TRL_LM;
	}
	if (msgs == NULL && rec_get(in, "prompt") == NULL)
		rec_die(in, "prompt", "missing (TRL records hold text: a "
		    "prompt or messages)");
	if (msgs != NULL && rec_get(in, "prompt") != NULL)
		rec_die(in, "messages", "a prompt and messages both");
	if (msgs != NULL) {
		if (msgs->type != MSGPACK_OBJECT_ARRAY)
			rec_die(in, "messages", "expected array, got %s",
			    rec_type_name(msgs));
		need_messages(in, "messages", msgs);
	} else
		(void)rec_need_str(in, "prompt", NULL);
	if (resp)
		(void)rec_need_str(in, "response", NULL);

	rec_init(out, in->src, in->recno);
	for (uint32_t i = 0; i < in->n; i++) {
		const msgpack_object *k = &in->kv[i].key, *v = &in->kv[i].val;
		if (str_is(k, "messages"))
			rec_set_obj(out, "prompt", v);
		else if (str_is(k, "response") && !pair) {
			if (msgs)
				set_assistant(out, "completion", v);
			else
				rec_set_obj(out, "completion", v);
		} else if (pair && (str_is(k, "chosen") ||
		    str_is(k, "rejected"))) {
			const char *side = str_is(k, "chosen") ? "chosen" :
			    "rejected";
			msgpack_object text = side_text(in, side);
			if (msgs)
				set_assistant(out, side, &text);
			else
				rec_set_obj(out, side, &text);
		} else
			copy_field(out, k, v);
	}
	return t;
}
