/*
 * train_examples.c: records into the token sequences each objective
 * trains on, with what it needs besides (rewards, reference and rollout
 * log-probs); see train-step(1) for the fields.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "records/record.h"
#include "text/conversation.h"
#include "text/tokenizer.h"
#include "training/train_impl.h"
#include "util/strmap.h"
#include "util/util.h"

/* The tokenizer, for a record that carries only text. */
static struct tokenizer *
tokenizer(struct train_ctx *t, const struct rec *r, const char *field)
{
	struct tokenizer *tok = conv_tokenizer(train_conv(t));
	if (tok == NULL)
		rec_die(r, field, "text without tokens, and %s",
		    conv_tokenizer_error(train_conv(t)));
	return tok;
}

/*
 * Token ids from field tfield (an array) or else by encoding the string
 * field sfield; *n gets the count.  A prompt (prompt: 1) gets BOS and the
 * like; a response encoded from text ends with the end of its turn (chat:
 * the prompt is a conversation), so a model learns to stop where rollout
 * stops.
 */
static int32_t *
get_tokens(struct train_ctx *t, const struct rec *r, const char *tfield,
    const char *sfield, int prompt, int chat, size_t *n)
{
	int32_t *ids;
	if (rec_get(r, tfield) != NULL) {
		*n = rec_need_int_array(r, tfield, &ids);
		return ids;
	}
	if (sfield == NULL || rec_get(r, sfield) == NULL)
		rec_die(r, tfield, "missing (and no \"%s\" to tokenize)",
		    sfield ? sfield : tfield);
	size_t len;
	const char *s = rec_need_str(r, sfield, &len);
	struct tokenizer *tok = tokenizer(t, r, sfield);
	char e[256];
	if (prompt)
		*n = tokenizer_try_encode(tok, s, len, 1, &ids, e, sizeof(e));
	else
		*n = conv_try_response_tokens(train_conv(t), s, len, chat, &ids,
		    e, sizeof(e));
	if (*n == (size_t)-1)
		rec_die(r, sfield, "%s", e);
	return ids;
}

/* Check token ids against the vocabulary. */
static void
check_ids(struct train_ctx *t, const struct rec *r, const char *field,
    const int32_t *ids, size_t n)
{
	char e[256];
	if (conv_check_vocab(t->m->cfg.vocab_size, ids, n, e, sizeof(e)) != 0)
		rec_die(r, field, "%s", e);
}

/*
 * prompt + response as one sequence scoring the response tokens.  Returns
 * 0 when the record must be dropped (too long, without --truncate).
 */
static int
make_seq(struct train_ctx *t, struct seq *s, const int32_t *p,
    size_t np, const int32_t *resp, size_t nr, int scored)
{
	size_t max_len = (size_t)t->max_len;
	memset(s, 0, sizeof(*s));
	size_t len = np + nr;
	if (len > max_len) {
		/* Keep the prompt and at least one response token. */
		if (!t->o.truncate || np + 1 > max_len)
			return 0;
		nr = max_len - np;
		len = max_len;
		s->truncated = 1;
	}
	s->len = (int)len;
	s->tok = xmalloc(len * sizeof(int32_t));
	if (np)		/* a text-only record has no prompt array */
		memcpy(s->tok, p, np * sizeof(int32_t));
	if (nr)
		memcpy(s->tok + np, resp, nr * sizeof(int32_t));
	if (!scored)
		return 1;
	/* Position t predicts tok[t + 1]: the response is predicted from
	 * positions np - 1 .. len - 2.  A sequence without a prompt starts
	 * at the first token, which nothing predicts. */
	s->tgt = xmalloc(len * sizeof(int32_t));
	for (size_t i = 0; i < len; i++)
		s->tgt[i] = -1;
	size_t from = np > 0 ? np - 1 : 0;
	for (size_t i = from; i + 1 < len; i++) {
		s->tgt[i] = s->tok[i + 1];
		s->nscored++;
	}
	return 1;
}

void
train_seq_free(struct seq *s)
{
	free(s->tok);
	free(s->tgt);
	free(s->old);
	free(s->ref);
	free(s->val);
	free(s->adv);
	free(s->ret);
}

/* A float array field of n scored tokens (truncated with the sequence). */
static float *
get_scored_floats(const struct rec *r, const char *field, const char *name,
    size_t nresp)
{
	float *v;
	size_t n = rec_need_float_array(r, field, &v);
	if (n != nresp)
		rec_die(r, name, "has %zu values for %zu response tokens", n,
		    nresp);
	return v;
}

/* The record's messages; errors name the field. */
static void
get_messages(struct train_ctx *t, const struct rec *r,
    struct conv_msgs *ms)
{
	char e[512];
	if (conv_messages(rec_get(r, "messages"), ms, e, sizeof(e)) != 0)
		rec_die(r, "messages", "%s", e);
	if (conv_template(train_conv(t)) == NULL)
		rec_die(r, "messages", "%s (choose one with --chat-template)",
		    conv_template_error(train_conv(t)));
}

/* A sequence scoring the tokens mask marks; 0 when it must be dropped. */
static int
make_masked_seq(struct train_ctx *t, struct seq *s, const int32_t *all,
    const char *mask, size_t n)
{
	memset(s, 0, sizeof(*s));
	if (n > (size_t)t->max_len) {
		if (!t->o.truncate)
			return 0;
		n = t->max_len;
		s->truncated = 1;
	}
	s->len = (int)n;
	s->tok = xmalloc(n * sizeof(int32_t) + 1);
	s->tgt = xmalloc(n * sizeof(int32_t) + 1);
	memcpy(s->tok, all, n * sizeof(int32_t));
	for (size_t i = 0; i < n; i++) {
		s->tgt[i] = i + 1 < n && mask[i + 1] ? all[i + 1] : -1;
		s->nscored += s->tgt[i] >= 0;
	}
	return s->nscored > 0;
}

/*
 * Whether the record's prompt is a conversation through a template, so
 * that its response ends a turn.
 */
static int
is_chat(const struct rec *r)
{
	return rec_get(r, "prompt") == NULL && rec_get(r, "messages") != NULL;
}

/* The common part of every objective: prompt tokens of a record. */
static int32_t *
prompt_tokens(struct train_ctx *t, const struct rec *r, size_t *n)
{
	int32_t *p;
	if (rec_get(r, "prompt_tokens") == NULL &&
	    rec_get(r, "prompt") == NULL && rec_get(r, "messages") != NULL) {
		/* The conversation so far, opening the assistant's turn. */
		struct conv_msgs ms;
		char e[512];
		get_messages(t, r, &ms);
		*n = conv_prompt_tokens(train_conv(t), ms.m, ms.n, &p, e, sizeof(e));
		if (*n == (size_t)-1)
			rec_die(r, "messages", "%s", e);
		conv_messages_free(&ms);
	} else
		p = get_tokens(t, r, "prompt_tokens", "prompt", 1, 0, n);
	check_ids(t, r, "prompt_tokens", p, *n);
	/* Nothing would predict the first response token. */
	if (*n == 0)
		rec_die(r, rec_get(r, "prompt_tokens") ? "prompt_tokens" :
		    "prompt", "empty prompt");
	return p;
}

/*
 * The fields of r's map side as a record of their own whose keys carry
 * the prefix "side.", so that every message about them, a wrong type
 * included, names the whole path ("chosen.response_tokens").
 */
static void
side_record(const struct rec *r, const char *side, struct rec *sub)
{
	const msgpack_object_map *m = rec_need_map(r, side);
	struct strbuf key;

	rec_init(sub, r->src, r->recno);
	sb_init(&key);
	for (uint32_t i = 0; i < m->size; i++) {
		const msgpack_object *k = &m->ptr[i].key;
		if (k->type != MSGPACK_OBJECT_STR)
			continue;
		sb_clear(&key);
		sb_printf(&key, "%s.%.*s", side, (int)k->via.str.size,
		    k->via.str.ptr);
		rec_set_obj(sub, key.data, &m->ptr[i].val);
	}
	sb_free(&key);
}

/* A field name of a side: "chosen" and "ref_logprob" give
 * "chosen.ref_logprob" (in buf). */
static const char *
side_field(char *buf, size_t n, const char *side, const char *key)
{
	snprintf(buf, n, "%s.%s", side, key);
	return buf;
}

/*
 * The reference's summed log-prob of s's response (nr tokens) from r's
 * field fsum, or from the per-token values of farr (which follow a
 * truncation exactly); without either, --ref must give it.
 */
static void
ref_sum(struct train_ctx *t, const struct rec *r, const char *fsum,
    const char *farr, size_t nr, struct seq *s)
{
	const msgpack_object *sum = rec_get(r, fsum);
	const msgpack_object *arr = rec_get(r, farr);

	if (arr != NULL && (s->truncated || sum == NULL)) {
		float *v = get_scored_floats(r, farr, farr, nr);
		s->ref_sum = 0;
		for (int i = 0; i < s->nscored; i++)
			s->ref_sum += v[i];
		free(v);
		s->has_ref = 1;
	} else if (sum != NULL && !s->truncated) {
		s->ref_sum = rec_need_num(r, fsum);
		s->has_ref = 1;
	} else if (sum != NULL && !train_has_ref(t))
		rec_die(r, fsum, "a sum cannot follow --truncate; give "
		    "ref_logprobs or --ref");
	if (!s->has_ref && !train_has_ref(t))
		rec_die(r, fsum, "missing: give reference log-probs "
		    "(score --logprob) or --ref CKPT");
}

/*
 * Whether a sample (r, or a pair's side sub) is a reply in text to a
 * conversation: then the reply goes through the template after it, as TRL
 * renders prompt + chosen, and score --logprob reads it the same way.
 */
static int
is_chat_reply(const struct rec *r, const struct rec *sub, const char *ftok,
    const char *ftext)
{
	return is_chat(r) && rec_get(sub, ftok) == NULL &&
	    rec_get(sub, ftext) != NULL;
}

/* Its tokens (malloc'd): the first *np the prompt's, then *nr the reply's. */
static int32_t *
chat_reply(struct train_ctx *t, const struct rec *r, const struct rec *sub,
    const char *ftext, size_t *np, size_t *nr)
{
	struct conv_msgs ms;
	char e[512];
	size_t len, k;
	int32_t *all;
	const char *text = rec_need_str(sub, ftext, &len);

	get_messages(t, r, &ms);
	k = conv_reply_tokens(train_conv(t), ms.m, ms.n, text, len, &all, np,
	    e, sizeof(e));
	conv_messages_free(&ms);
	if (k == (size_t)-1)
		rec_die(r, ftext, "%s", e);
	if (*np == 0)
		rec_die(r, "messages", "the template renders the conversation "
		    "as nothing before the reply");
	check_ids(t, r, "messages", all, *np);
	check_ids(t, r, ftext, all + *np, k - *np);
	*nr = k - *np;
	return all;
}

/* One side of a pair: the sub-map's response, and its reference sum. */
static int
pair_side(struct train_ctx *t, const struct rec *r, const char *side,
    const int32_t *p, size_t np, struct seq *s, int scored)
{
	struct rec sub;
	size_t nr;
	char ftok[64], ftext[64], fsum[64], farr[64];

	side_field(ftok, sizeof(ftok), side, "response_tokens");
	side_field(ftext, sizeof(ftext), side, "response");
	side_field(fsum, sizeof(fsum), side, "ref_logprob");
	side_field(farr, sizeof(farr), side, "ref_logprobs");
	side_record(r, side, &sub);
	int32_t *resp, *all = NULL;
	if (is_chat_reply(r, &sub, ftok, ftext)) {
		all = chat_reply(t, r, &sub, ftext, &np, &nr);
		p = all;
		resp = all + np;
	} else {
		resp = get_tokens(t, &sub, ftok, ftext, 0, is_chat(r), &nr);
		check_ids(t, r, ftok, resp, nr);
	}
	if (nr == 0)
		rec_die(r, ftok, "empty response");
	int ok = make_seq(t, s, p, np, resp, nr, scored);
	if (all)
		free(all);
	else
		free(resp);	/* copied; rec_die below would leak it */
	s->field = side[0] == 'c' ? "chosen.response_tokens" :
	    side[0] == 'r' ? "rejected.response_tokens" : "kl.response_tokens";
	if (ok && scored && (t->o.objective == OBJ_DPO ||
	    t->o.objective == OBJ_KTO))
		ref_sum(t, &sub, fsum, farr, nr, s);
	rec_free(&sub);
	return ok;
}

/* Group numbers of pg samples, by the msgpack bytes of their id. */
static int
group_of(struct train_ctx *t, const struct rec *r)
{
	const msgpack_object *id = rec_get(r, "id");
	msgpack_sbuffer b;
	msgpack_packer pk;
	msgpack_sbuffer_init(&b);
	msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
	if (id != NULL)
		msgpack_pack_object(&pk, *id);
	else	/* no id: a group of its own, as rollout would name it */
		msgpack_pack_uint64(&pk, r->recno);
	long g = strmap_get(t->groups, b.data, b.size);
	if (g < 0) {
		g = t->ngroups++;
		strmap_put(t->groups, b.data, b.size, g);
	}
	msgpack_sbuffer_destroy(&b);
	return (int)g;
}

/* sft: a response, a conversation, or plain text. */
static int
sft_example(struct train_ctx *t, const struct rec *r, struct example *e)
{
	size_t np = 0, nr;
	int32_t *p = NULL, *resp;
	int ok;

	if (rec_get(r, "response_tokens") != NULL ||
	    rec_get(r, "response") != NULL) {
		p = prompt_tokens(t, r, &np);
		resp = get_tokens(t, r, "response_tokens", "response", 0,
		    is_chat(r), &nr);
		check_ids(t, r, "response_tokens", resp, nr);
	} else if (rec_get(r, "messages") != NULL) {
		/* Loss on the assistant turns only. */
		struct conv_msgs ms;
		char *mask, err[512];
		int32_t *all;
		get_messages(t, r, &ms);
		size_t n = conv_turn_tokens(train_conv(t), ms.m, ms.n, &all, &mask,
		    err, sizeof(err));
		if (n == (size_t)-1)
			rec_die(r, "messages", "%s", err);
		conv_messages_free(&ms);
		check_ids(t, r, "messages", all, n);
		ok = make_masked_seq(t, &e->s[0], all, mask, n);
		e->s[0].field = "messages";
		if (!ok && n <= (size_t)t->max_len)
			rec_die(r, "messages", "no assistant turn to learn "
			    "from");
		free(all);
		free(mask);
		return ok;
	} else {
		/* Plain text: the loss reads every token. */
		if (rec_get(r, "tokens") == NULL && rec_get(r, "text") == NULL)
			rec_die(r, "text", "missing (an sft record has prompt "
			    "and response, messages, or text)");
		resp = get_tokens(t, r, "tokens", "text", 1, 0, &nr);
		check_ids(t, r, "tokens", resp, nr);
	}
	if (np + nr < 2)
		rec_die(r, np ? "response_tokens" : "tokens",
		    "nothing to predict");
	ok = make_seq(t, &e->s[0], p, np, resp, nr, 1);
	e->s[0].field = np ? "response_tokens" : "tokens";
	free(resp);
	free(p);
	return ok;
}

/* The response of a sample record (pg, ppo, value, kto): not empty. */
/*
 * A sample's prompt and response: *p (malloc'd) holds the np prompt
 * tokens and then the nr response tokens, at the returned pointer.
 */
static int32_t *
sample_tokens(struct train_ctx *t, const struct rec *r, int32_t **p,
    size_t *np, size_t *nr)
{
	if (is_chat_reply(r, r, "response_tokens", "response"))
		*p = chat_reply(t, r, r, "response", np, nr);
	else {
		*p = prompt_tokens(t, r, np);
		int32_t *resp = get_tokens(t, r, "response_tokens", "response",
		    0, is_chat(r), nr);
		check_ids(t, r, "response_tokens", resp, *nr);
		*p = xreallocarray(*p, *np + *nr + 1, sizeof(**p));
		memcpy(*p + *np, resp, *nr * sizeof(*resp));
		free(resp);
	}
	if (*nr == 0)
		rec_die(r, "response_tokens", "empty response");
	return *p + *np;
}

/* pg, ppo, value: a sample with its reward and log-probs. */
static int
pg_example(struct train_ctx *t, const struct rec *r, struct example *e)
{
	size_t np, nr;
	int32_t *p, *resp = sample_tokens(t, r, &p, &np, &nr);

	int ok = make_seq(t, &e->s[0], p, np, resp, nr, 1);
	e->s[0].field = "response_tokens";
	free(p);
	e->reward = rec_need_num(r, "reward");
	e->weight = rec_opt_num(r, "weight", 1);
	e->greedy = rec_opt_bool(r, "greedy", 0);
	e->group = group_of(t, r);
	if (!ok)
		return 0;
	struct seq *s = &e->s[0];
	if (rec_get(r, "logprobs") != NULL)
		s->old = get_scored_floats(r, "logprobs", "logprobs", nr);
	if (rec_get(r, "ref_logprobs") != NULL)
		s->ref = get_scored_floats(r, "ref_logprobs", "ref_logprobs",
		    nr);
	else if (t->o.kl_coef > 0 && !train_has_ref(t))
		rec_die(r, "ref_logprobs", "missing: --kl-coef needs "
		    "reference log-probs (score --logprob --as ref) or "
		    "--ref CKPT");
	if (t->o.objective != OBJ_PPO && t->o.objective != OBJ_VALUE)
		return 1;
	/* ppo, value: the critic's values; the critic (value) cannot
	 * compute the policy's rollout log-probs itself. */
	if (rec_get(r, "values") == NULL)
		rec_die(r, "values", "missing: give the critic's values "
		    "(score --value CRITIC)");
	s->val = get_scored_floats(r, "values", "values", nr);
	if (t->o.objective == OBJ_VALUE && s->old == NULL && t->o.kl_coef > 0)
		rec_die(r, "logprobs", "missing: the critic's returns need "
		    "the policy's rollout log-probs (rollout writes them)");
	return 1;
}

/*
 * kto: an answer with its label and reference sum, and the mismatched
 * pair pair --kto wrote: the record's prompt with the kl map's response.
 */
static int
kto_example(struct train_ctx *t, const struct rec *r, struct example *e)
{
	size_t np, nr;
	int32_t *p, *resp = sample_tokens(t, r, &p, &np, &nr);

	e->label = rec_need_bool(r, "label");
	if (rec_get(r, "kl") == NULL)
		rec_die(r, "kl", "missing: KTO needs a mismatched response "
		    "for each record (pair --kto writes it)");
	int ok = make_seq(t, &e->s[0], p, np, resp, nr, 1);
	e->s[0].field = "response_tokens";
	if (ok)
		ok = pair_side(t, r, "kl", p, np, &e->s[1], 1);
	free(p);
	if (ok)
		ref_sum(t, r, "ref_logprob", "ref_logprobs", nr, &e->s[0]);
	return ok;
}

/* A record into an example; 0 when it is dropped for its length. */
int
train_read_example(struct train_ctx *t, const struct rec *r,
    struct example *e)
{
	int ok = 1;

	memset(e, 0, sizeof(*e));
	e->recno = r->recno;
	e->weight = 1;
	switch (t->o.objective) {
	case OBJ_SFT:
		e->nseq = 1;
		ok = sft_example(t, r, e);
		break;
	case OBJ_DPO:
	case OBJ_SIMPO:
	case OBJ_ORPO:
	case OBJ_RM: {
		size_t np;
		int dpo = OBJ_IS_PAIR_LM(t->o.objective);	/* scored */
		int32_t *p = prompt_tokens(t, r, &np);
		e->nseq = 2;
		ok = pair_side(t, r, "chosen", p, np, &e->s[0], dpo) &&
		    pair_side(t, r, "rejected", p, np, &e->s[1], dpo);
		free(p);
		e->label_smoothing = rec_opt_num(r, "label_smoothing",
		    t->o.label_smoothing);
		/* The sigmoid loss takes any soft label: CREAM's is 1 - C,
		 * above 0.5 where two rankings disagree more than agree. */
		double ls_max = t->o.dpo_variant == DPO_SIGMOID ? 1 : 0.5;
		if (e->label_smoothing < 0 || e->label_smoothing > ls_max ||
		    (t->o.dpo_variant == DPO_ROBUST &&
		    e->label_smoothing >= 0.5))
			rec_die(r, "label_smoothing", "%g is outside [0, %g%s",
			    e->label_smoothing, ls_max,
			    t->o.dpo_variant == DPO_ROBUST ? ")" : "]");
		break;
	}
	case OBJ_PG:
		e->nseq = 1;
		ok = pg_example(t, r, e);
		break;
	case OBJ_PPO:
	case OBJ_VALUE:
		e->nseq = 1;
		ok = pg_example(t, r, e);
		break;
	case OBJ_KTO:
		e->nseq = 2;
		ok = kto_example(t, r, e);
		break;
	}
	if (!ok) {
		for (int i = 0; i < 2; i++)
			train_seq_free(&e->s[i]);
	}
	return ok;
}
