/*
 * scorer_model.c: the scorers that run a checkpoint: --logprob, --rm and
 * --flr; see scorer.h and score(1).
 *
 * Records are collected until their sequences fill a batch of about
 * batch_tokens tokens, the batch runs through the model, and the records
 * are written in input order.  A record never waits for more than one
 * batch, so memory stays bounded however long the stream.
 *
 * A record is checked (and turned into tokens) before it joins the
 * batch, and a bad one, or one the reader cannot read, ends the program
 * only after the batch before it is scored and written (on_data_error).
 */
#include "config.h"

#include <err.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/chat.h"
#include "text/conversation.h"
#include "checkpoints/checkpoint.h"
#include "model/model.h"
#include "model/model_lora.h"
#include "scoring/scorer.h"
#include "text/tokenizer.h"
#include "util/util.h"

/*
 * Generic reactions of a user to an answer that helped, and to one that
 * did not; written for prefpipe after the FLR paper's description.
 */
const char *const flr_default_positive[] = {
	"Thanks, that's exactly what I needed.",
	"Great, that answers my question.",
	"Perfect, thank you!",
	"That makes sense now, thanks.",
	"Thank you, this is very helpful.",
	"Awesome, that worked.",
	"Great explanation, thanks!",
	"That's clear and helpful, thank you.",
	"Exactly right, thanks a lot.",
	"Thanks! That solved my problem.",
	NULL
};

const char *const flr_default_negative[] = {
	"That's not what I asked.",
	"That's wrong.",
	"This doesn't answer my question.",
	"I don't think that's correct.",
	"That didn't help at all.",
	"You misunderstood my question.",
	"That makes no sense.",
	"Can you actually answer the question?",
	"No, that's not right.",
	"This is not helpful.",
	NULL
};

/* The most memory the forked KV caches of --flr take at once. */
#define FLR_CACHE_BYTES ((size_t)512 << 20)

/* Stands for the follow-up while the judge's template is rendered. */
#define FLR_MARK "@@prefpipe-follow-up@@"

struct item {
	struct rec rec;
	struct side side[2];
	int nsides;
};

/* One side to score. */
struct job {
	struct side *side;
	int32_t *tok;		/* logprob, rm: the sequence; flr: context */
	int len;
	int np;			/* logprob: tokens of the prompt */
	float score;		/* rm */
	float *lp;		/* logprob: (len - np) values */
	double *ell;		/* flr: (nfollow) mean log-probs */
};

struct follow {
	int32_t *tok;
	int len;
};

struct mscorer {
	enum ms_kind kind;
	struct ms_opts o;
	const char *path;
	struct model *m;
	struct conv *conv;	/* messages -> tokens, the response's end */
	struct tokenizer *tok;	/* NULL when the checkpoint has none */
	const char *tokerr;
	const struct chat_template *chat;
	int plain;		/* a base model: no chat template */
	char field[256], field2[256];	/* logprob: <as>_logprobs, <as>_logprob */
	char field3[256], other[256];	/* --ratio-to: <as>_logratio, and
					 * <ratio_to>_logprob */

	struct follow *fol;	/* flr: positive ones, then negative */
	int npos, nneg, maxfol;

	struct item **items;
	size_t nitems, capitems;
	struct job *jobs;
	size_t njobs, capjobs;
	size_t pending;		/* tokens in the batch so far */

	struct ms_stats st;
	double t0;

	struct rec_writer *w;	/* where ms_add writes */
	int flushing;		/* in ms_flush: its errors end at once */
};

/*
 * The scorer whose batch a data error flushes first, and the handler it
 * replaced; one at a time.
 */
static struct mscorer *active;
static void (*data_error)(const char *msg);

/* ------------------------------------------------------------------------ */
/* Set-up */

/*
 * Everything read before a bad record is written (prefpipe(7)): errors
 * come while a record is read or checked, when the batch holds only
 * records before it, whole, so it can run now.  An error while flushing
 * (a later one of an earlier record) ends the program at once.
 */
static void
on_data_error(const char *msg)
{
	struct mscorer *s = active;

	rec_error_hook = data_error;
	active = NULL;
	if (s != NULL && !s->flushing && s->w != NULL)
		ms_flush(s, s->w);
	data_error(msg);
}

static void
add_follow(struct mscorer *s, const char *text, size_t len, const char *src,
    int line)
{
	int32_t *ids;
	size_t n;

	if (s->tok == NULL)
		errx(EXIT_DATA, "%s: %s (--flr needs the judge's tokenizer)",
		    s->path, s->tokerr);
	char e[256];
	n = tokenizer_try_encode(s->tok, text, len, 0, &ids, e, sizeof(e));
	if (n == (size_t)-1)
		errx(EXIT_DATA, "%s: line %d: %s", src, line, e);
	if (n == 0)
		errx(EXIT_DATA, "%s: line %d: the follow-up has no tokens",
		    src, line);
	for (size_t i = 0; i < n; i++)
		if (ids[i] >= s->m->cfg.vocab_size)
			errx(EXIT_DATA, "%s: line %d: token %zu of the "
			    "follow-up is %d, outside the vocabulary [0, %d) "
			    "of %s", src, line, i, (int)ids[i],
			    s->m->cfg.vocab_size, s->path);
	s->fol = xreallocarray(s->fol, s->npos + s->nneg + 1,
	    sizeof(*s->fol));
	s->fol[s->npos + s->nneg].tok = ids;
	s->fol[s->npos + s->nneg].len = (int)n;
	if ((int)n > s->maxfol)
		s->maxfol = (int)n;
}

/*
 * Follow-ups from FILE, one a line (blank lines skipped), or the built-in
 * ones; *count is the counter of their kind.
 */
static void
load_follow(struct mscorer *s, const char *file, const char *const *def,
    const char *opt, int *count)
{
	if (file == NULL) {
		for (int i = 0; def[i] != NULL; i++) {
			add_follow(s, def[i], strlen(def[i]), opt, i + 1);
			(*count)++;
		}
		return;
	}
	FILE *f = fopen(file, "r");
	if (f == NULL)
		err(EXIT_DATA, "%s", file);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0;
	while ((n = getline(&line, &cap, f)) != -1) {
		lineno++;
		size_t a = 0, b = (size_t)n;
		while (a < b && (line[a] == ' ' || line[a] == '\t'))
			a++;
		while (b > a && (line[b - 1] == '\n' || line[b - 1] == '\r' ||
		    line[b - 1] == ' ' || line[b - 1] == '\t'))
			b--;
		if (a == b)
			continue;
		add_follow(s, line + a, b - a, file, lineno);
		(*count)++;
	}
	if (ferror(f))
		err(EXIT_DATA, "%s", file);
	fclose(f);
	free(line);
	if (*count == 0)
		errx(EXIT_DATA, "%s %s: no follow-ups in the file", opt, file);
}

struct mscorer *
ms_new(enum ms_kind kind, const char *path, const struct ms_opts *o)
{
	struct mscorer *s = xcalloc(1, sizeof(*s));
	struct model_src src;
	struct model_load_opts lo = { MODEL_WEIGHTS_AUTO, MODEL_COMPUTE_F32 };
	struct ckpt *c;
	char e[512];

	s->kind = kind;
	s->o = *o;
	s->path = path;
	if (s->o.batch_tokens <= 0)
		s->o.batch_tokens = 4096;
	if (o->weights != NULL && model_weights_parse(o->weights, &lo.weights))
		pp_usage("--weights: \"%s\" is none of auto, f32, bf16, f16",
		    o->weights);
	if (o->compute != NULL && model_compute_parse(o->compute, &lo.compute))
		pp_usage("--compute: \"%s\" is neither f32 nor bf16",
		    o->compute);
	/* a checkpoint, or a LoRA adapter on its base (model_lora.h) */
	s->m = model_load_as(path, o->base, &src, &lo);
	c = src.ckpt;
	/* forward passes only: each layer's input is all a pass need keep
	 * (the same numbers, in a layer's memory instead of every layer's) */
	model_set_recompute(s->m, 1);
	if (kind != MS_RM && kind != MS_VALUE && !s->m->cfg.lm_head)
		errx(EXIT_DATA, "%s: a reward model has no language-model head "
		    "(use --rm)", path);
	if (kind == MS_RM && s->m->cfg.num_labels < 1)
		errx(EXIT_DATA, "%s: no classification head (score.weight); "
		    "--rm needs a sequence-classification model", path);
	if (kind == MS_VALUE && s->m->cfg.num_labels != 1)
		errx(EXIT_DATA, "%s: --value needs a critic, a model with a "
		    "score head of one label (train-step --loss value "
		    "--add-head makes one); this one has %d", path,
		    s->m->cfg.num_labels);
	/* Records with token ids need no tokenizer: complain only on use. */
	s->conv = conv_open_args(c, s->m->cfg.vocab_size, o->chat, o->targs, e,
	    sizeof(e));
	if (s->conv == NULL)
		pp_usage("--chat-template: %s", e);
	s->tok = conv_tokenizer(s->conv);
	s->tokerr = conv_tokenizer_error(s->conv);
	if (s->tok != NULL) {
		s->chat = conv_template(s->conv);
		if (s->chat == NULL)
			errx(EXIT_DATA, "%s: %s (name one with "
			    "--chat-template)", path,
			    conv_template_error(s->conv));
		s->plain = strcmp(chat_template_name(s->chat), "plain") == 0;
	} else if (o->chat != NULL)
		errx(EXIT_DATA, "%s: %s", path, s->tokerr);
	model_src_free(&src);

	snprintf(s->field, sizeof(s->field), "%s_logprobs", o->as);
	snprintf(s->field2, sizeof(s->field2), "%s_logprob", o->as);
	if (o->ratio_to != NULL) {
		snprintf(s->field3, sizeof(s->field3), "%s_logratio", o->as);
		snprintf(s->other, sizeof(s->other), "%s_logprob",
		    o->ratio_to);
	}
	if (kind == MS_FLR) {
		/* Positive first: add_follow appends in this order. */
		load_follow(s, o->positive, flr_default_positive,
		    "--positive", &s->npos);
		load_follow(s, o->negative, flr_default_negative,
		    "--negative", &s->nneg);
	}
	if (active == NULL) {
		active = s;
		data_error = rec_error_hook;
		rec_error_hook = on_data_error;
	}
	return s;
}

void
ms_free(struct mscorer *s)
{
	if (s == NULL)
		return;
	if (active == s) {
		active = NULL;
		rec_error_hook = data_error;
	}
	for (int i = 0; i < s->npos + s->nneg; i++)
		free(s->fol[i].tok);
	free(s->fol);
	free(s->items);
	free(s->jobs);
	conv_free(s->conv);
	model_free(s->m);
	free(s);
}

struct model *
ms_model(struct mscorer *s)
{
	return s->m;
}

const struct ms_stats *
ms_stats(const struct mscorer *s)
{
	return &s->st;
}

/* ------------------------------------------------------------------------ */
/* From records to token ids */

static struct tokenizer *
need_tok(struct mscorer *s, const struct side *sd, const char *field)
{
	if (s->tok == NULL)
		side_die(sd, field, 1, "%s: %s: cannot tokenize text", s->path,
		    s->tokerr);
	return s->tok;
}

/*
 * The conversation before the response: the record's messages (an array
 * of {role, content}) or its prompt as one user turn.  Strings are
 * malloc'd; returns the count.
 */
static size_t
get_conv(const struct side *sd, struct chat_msg **out, const char **field)
{
	const msgpack_object *v;
	struct chat_msg *m;
	struct conv_msgs ms;
	char e[512];
	size_t len;

	if (side_get(sd, "prompt", 1) != NULL ||
	    side_get(sd, "messages", 1) == NULL) {
		const char *p = side_need_str(sd, "prompt", 1, &len);
		m = xcalloc(2, sizeof(*m));
		m[0].role = xstrdup("user");
		m[0].content = xstrndup(p, len);
		*out = m;
		*field = "prompt";
		return 1;
	}
	*field = "messages";
	v = side_get(sd, "messages", 1);
	if (conv_messages(v, &ms, e, sizeof(e)) != 0)
		side_die(sd, "messages", 1, "%s", e);
	m = ms.m;
	if (v->via.array.size == 0)
		side_die(sd, "messages", 1, "empty conversation");
	*out = m;
	return v->via.array.size;
}

static void
free_conv(struct chat_msg *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((char *)m[i].role);
		free((char *)m[i].content);
		json_decref((json_t *)m[i].json);
	}
	free(m);
}

static char *
render(struct mscorer *s, const struct side *sd, const char *field,
    struct chat_msg *m, size_t n, int gen)
{
	char e[512];
	char *text = conv_render(s->conv, m, n, gen, e, sizeof(e));
	if (text == NULL)
		side_die(sd, field, 1, "chat template %s: %s",
		    chat_template_name(s->chat), e);
	return text;
}

/* Ids from a record, or from a tokenizer larger than the model. */
static void
check_ids(struct mscorer *s, const struct side *sd, const char *field,
    int inherit, const char *what, const int32_t *ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= s->m->cfg.vocab_size)
			side_die(sd, field, inherit, "%s %zu is %d, outside "
			    "the vocabulary [0, %d) of %s", what, i,
			    (int)ids[i], s->m->cfg.vocab_size, s->path);
}

static void
check_len(struct mscorer *s, const struct side *sd, const char *field,
    size_t n)
{
	char e[256];

	if (conv_check_length(s->m->cfg.max_seq_len, n, e, sizeof(e)) != 0)
		side_die(sd, field, 0, "%s of %s", e, s->path);
}

/*
 * --logprob and --rm: prompt and response ids, from token fields or from
 * text, as train-step builds them, so a reward model is read at the token
 * it was trained at.
 */
static void
seq_job(struct mscorer *s, struct job *j)
{
	const struct side *sd = j->side;
	int32_t *p, *r;
	size_t np, nr, len;
	char e[512];

	int chat = side_get(sd, "prompt", 1) == NULL &&
	    side_get(sd, "messages", 1) != NULL;
	if (chat && (s->o.retokenize || (side_get(sd, "prompt_tokens", 1) ==
	    NULL && side_get(sd, "response_tokens", 0) == NULL)) &&
	    side_get(sd, "response", 0) != NULL) {
		/* A reply in text to a conversation: through the template,
		 * as train-step builds it. */
		struct chat_msg *m;
		const char *f, *t = side_need_str(sd, "response", 0, &len);
		size_t n = get_conv(sd, &m, &f), k, np0;
		need_tok(s, sd, "messages");
		k = conv_reply_tokens(s->conv, m, n, t, len, &j->tok, &np0, e,
		    sizeof(e));
		free_conv(m, n);
		if (k == (size_t)-1)
			side_die(sd, "response", 0, "chat template %s: %s",
			    chat_template_name(s->chat), e);
		if (np0 == 0)
			side_die(sd, "messages", 1, "the template renders the "
			    "conversation as nothing before the reply");
		check_ids(s, sd, "messages", 1, "token", j->tok, np0);
		check_ids(s, sd, "response", 0, "token", j->tok + np0,
		    k - np0);
		check_len(s, sd, "response_tokens", k);
		j->len = (int)k;
		j->np = (int)np0;
		return;
	}
	if (!s->o.retokenize && side_get(sd, "prompt_tokens", 1) != NULL) {
		np = side_need_tokens(sd, "prompt_tokens", 1, &p);
		check_ids(s, sd, "prompt_tokens", 1, "token", p, np);
	} else if (side_get(sd, "prompt", 1) == NULL &&
	    side_get(sd, "messages", 1) != NULL) {
		struct chat_msg *m;
		const char *f;
		size_t n = get_conv(sd, &m, &f);
		need_tok(s, sd, "messages");
		np = conv_prompt_tokens(s->conv, m, n, &p, e, sizeof(e));
		if (np == (size_t)-1)
			side_die(sd, "messages", 1, "chat template %s: %s",
			    chat_template_name(s->chat), e);
		free_conv(m, n);
		check_ids(s, sd, "messages", 1, "token", p, np);
	} else {
		if (side_get(sd, "prompt", 1) == NULL)
			side_die(sd, s->o.retokenize ? "prompt" :
			    "prompt_tokens", 1, "missing (a record needs "
			    "prompt_tokens, prompt or messages)");
		const char *t = side_need_str(sd, "prompt", 1, &len);
		np = tokenizer_try_encode(need_tok(s, sd, "prompt"), t, len, 1,
		    &p, e, sizeof(e));
		if (np == (size_t)-1)
			side_die(sd, "prompt", 1, "%s", e);
		check_ids(s, sd, "prompt", 1, "token", p, np);
	}
	if (np == 0)
		side_die(sd, "prompt_tokens", 1, "empty: the first response "
		    "token needs a token before it");

	if (!s->o.retokenize && side_get(sd, "response_tokens", 0) != NULL) {
		nr = side_need_tokens(sd, "response_tokens", 0, &r);
		check_ids(s, sd, "response_tokens", 0, "token", r, nr);
	} else {
		if (side_get(sd, "response", 0) == NULL)
			side_die(sd, s->o.retokenize ? "response" :
			    "response_tokens", 0, "missing (a record needs "
			    "response_tokens or response)");
		const char *t = side_need_str(sd, "response", 0, &len);
		need_tok(s, sd, "response");
		/* As train-step does: a response from text ends its turn. */
		nr = conv_try_response_tokens(s->conv, t, len,
		    side_get(sd, "prompt", 1) == NULL &&
		    side_get(sd, "messages", 1) != NULL, &r, e, sizeof(e));
		if (nr == (size_t)-1)
			side_die(sd, "response", 0, "%s", e);
		check_ids(s, sd, "response", 0, "token", r, nr);
	}
	check_len(s, sd, "response_tokens", np + nr);
	j->tok = xreallocarray(p, np + nr, sizeof(*p));
	memcpy(j->tok + np, r, nr * sizeof(*r));
	free(r);
	j->len = (int)(np + nr);
	j->np = (int)np;
}

/*
 * --flr: the conversation (prompt, response, and the opening of a user
 * turn) as the judge's template renders it.
 */
static void
flr_job(struct mscorer *s, struct job *j)
{
	const struct side *sd = j->side;
	struct chat_msg *m;
	const char *field;
	size_t rlen, n, len;
	const char *resp;
	struct strbuf b;
	int special;

	n = get_conv(sd, &m, &field);
	resp = side_need_str(sd, "response", 0, &rlen);
	need_tok(s, sd, "response");
	sb_init(&b);
	m[n].json = NULL;
	m[n].role = xstrdup("assistant");
	m[n].content = xstrndup(resp, rlen);
	n++;
	if (s->plain) {
		/*
		 * A base model reads plain text: prompt + response, and for
		 * FLR a newline before the follow-up.
		 */
		if (strcmp(field, "prompt") == 0) {
			sb_adds(&b, m[0].content);
			sb_adds(&b, m[1].content);
		} else {
			char *t = render(s, sd, field, m, n, 0);
			sb_adds(&b, t);
			free(t);
		}
		sb_addc(&b, '\n');
		special = 1;
	} else {
		/*
		 * The follow-up is a user turn after the response; what the
		 * template writes before its content is the shared context.
		 */
		m = xreallocarray(m, n + 1, sizeof(*m));
		m[n].json = NULL;
		m[n].role = xstrdup("user");
		m[n].content = xstrdup(FLR_MARK);
		n++;
		char *t = render(s, sd, field, m, n, 0);
		char *mark = strstr(t, FLR_MARK);
		if (mark == NULL)
			side_die(sd, field, 1, "chat template %s dropped the "
			    "follow-up turn", chat_template_name(s->chat));
		sb_add(&b, t, (size_t)(mark - t));
		free(t);
		special = 0;
	}
	free_conv(m, n);
	char e[256];
	len = tokenizer_try_encode(s->tok, b.data ? b.data : "", b.len,
	    special, &j->tok, e, sizeof(e));
	sb_free(&b);
	if (len == (size_t)-1)
		side_die(sd, "response", 0, "%s", e);
	if (len == 0)
		side_die(sd, "response", 0, "the conversation has no tokens");
	check_ids(s, sd, "response", 0, "the conversation's token", j->tok,
	    len);
	check_len(s, sd, "response", len + (size_t)s->maxfol);
	j->len = (int)len;
}

/* ------------------------------------------------------------------------ */
/* Running a batch */

static double
log_softmax_at(const float *logits, int V, int y)
{
	float mx = logits[0];
	double sum = 0;

	for (int v = 1; v < V; v++)
		if (logits[v] > mx)
			mx = logits[v];
	for (int v = 0; v < V; v++)
		sum += exp((double)logits[v] - mx);
	return (double)logits[y] - mx - log(sum);
}

static void
forward(struct mscorer *s, const struct model_batch *b, float *lp)
{
	double t = pp_now();
	model_forward(s->m, b, lp);
	s->st.model_s += pp_now() - t;
	s->st.tokens += (uint64_t)model_batch_tokens(b);
}

/* --logprob, --rm, --value: every job one sequence of one forward pass. */
static void
run_seqs(struct mscorer *s)
{
	size_t N = 0, off = 0;
	for (size_t i = 0; i < s->njobs; i++)
		N += (size_t)s->jobs[i].len;
	int *len = xmalloc(s->njobs * sizeof(*len));
	int *tok = xmalloc(N * sizeof(*tok));
	int *tgt = s->kind == MS_LOGPROB ? xmalloc(N * sizeof(*tgt)) : NULL;
	float *lp = tgt ? xmalloc(N * sizeof(*lp)) : NULL;

	for (size_t i = 0; i < s->njobs; i++) {
		struct job *j = &s->jobs[i];
		len[i] = j->len;
		for (int t = 0; t < j->len; t++) {
			tok[off + t] = j->tok[t];
			if (tgt)
				tgt[off + t] = t + 1 >= j->np && t + 1 < j->len ?
				    j->tok[t + 1] : -1;
		}
		off += (size_t)j->len;
	}
	struct model_batch b = { (int)s->njobs, len, tok, tgt };
	forward(s, &b, lp);
	const float *sc = s->kind == MS_RM || s->kind == MS_VALUE ?
	    model_scores(s->m) : NULL;
	off = 0;
	for (size_t i = 0; i < s->njobs; i++) {
		struct job *j = &s->jobs[i];
		if (s->kind == MS_RM)
			j->score = sc[(off + (size_t)j->len - 1) *
			    (size_t)s->m->cfg.num_labels];
		else if (s->kind == MS_VALUE) {
			/* the head at positions np - 1 .. len - 2 (one label) */
			int n = j->len - j->np;
			j->lp = xmalloc((size_t)n * sizeof(*j->lp));
			for (int t = 0; t < n; t++)
				j->lp[t] = sc[off + (size_t)j->np - 1 + t];
		} else {
			j->lp = xmalloc((size_t)(j->len - j->np) *
			    sizeof(*j->lp));
			memcpy(j->lp, lp + off + j->np - 1, (size_t)(j->len -
			    j->np) * sizeof(*j->lp));
		}
		off += (size_t)j->len;
	}
	free(len);
	free(tok);
	free(tgt);
	free(lp);
}

/*
 * --flr --no-cache: context + follow-up as sequences of forward passes,
 * the context computed again for every follow-up.
 */
static void
run_flr_nocache(struct mscorer *s)
{
	int nf = s->npos + s->nneg;
	size_t cap = 0, N = 0, nseq = 0;
	int *len = NULL, *tok = NULL, *tgt = NULL;
	float *lp = NULL;
	struct { int job, f; } *who = NULL;

	for (size_t i = 0; i <= s->njobs * (size_t)nf; i++) {
		size_t L = 0;
		if (i < s->njobs * (size_t)nf) {
			struct job *j = &s->jobs[i / nf];
			L = (size_t)j->len + (size_t)s->fol[i % nf].len;
		}
		/* Run what there is when the next would overfill the pass. */
		if (nseq > 0 && (i == s->njobs * (size_t)nf ||
		    N + L > (size_t)s->o.batch_tokens)) {
			int *lens = xmalloc(nseq * sizeof(*lens));
			for (size_t q = 0; q < nseq; q++)
				lens[q] = len[q];
			struct model_batch b = { (int)nseq, lens, tok, tgt };
			lp = xreallocarray(lp, N, sizeof(*lp));
			forward(s, &b, lp);
			size_t off = 0;
			for (size_t q = 0; q < nseq; q++) {
				struct job *j = &s->jobs[who[q].job];
				const struct follow *f = &s->fol[who[q].f];
				double sum = 0;
				for (int t = 0; t < f->len; t++)
					sum += lp[off + j->len - 1 + t];
				j->ell[who[q].f] = sum / f->len;
				off += (size_t)len[q];
			}
			free(lens);
			N = nseq = 0;
		}
		if (i == s->njobs * (size_t)nf)
			break;
		struct job *j = &s->jobs[i / nf];
		const struct follow *f = &s->fol[i % nf];
		if (N + L > cap) {
			cap = (N + L) * 2;
			tok = xreallocarray(tok, cap, sizeof(*tok));
			tgt = xreallocarray(tgt, cap, sizeof(*tgt));
		}
		len = xreallocarray(len, nseq + 1, sizeof(*len));
		who = xreallocarray(who, nseq + 1, sizeof(*who));
		len[nseq] = (int)L;
		who[nseq].job = (int)(i / nf);
		who[nseq].f = (int)(i % nf);
		nseq++;
		for (int t = 0; t < j->len; t++) {
			tok[N + t] = j->tok[t];
			tgt[N + t] = -1;
		}
		tgt[N + j->len - 1] = f->tok[0];
		for (int t = 0; t < f->len; t++) {
			tok[N + j->len + t] = f->tok[t];
			tgt[N + j->len + t] = t + 1 < f->len ? f->tok[t + 1] : -1;
		}
		N += L;
	}
	free(len);
	free(tok);
	free(tgt);
	free(lp);
	free(who);
}

/*
 * --flr: each context read once into a KV cache; its follow-ups then fork
 * the cache and are fed a token at a time, all follow-ups of all records
 * of the batch together, so every step is one matrix-matrix pass.
 */
static void
run_flr_cache(struct mscorer *s)
{
	const struct model_config *c = &s->m->cfg;
	int nf = s->npos + s->nneg, V = c->vocab_size, B = (int)s->njobs;
	struct kv_cache **kv = xmalloc(B * sizeof(*kv));
	int *ntok = xmalloc(B * sizeof(*ntok)), *tok;
	size_t N = 0;
	float *logits = xmalloc((size_t)B * V * sizeof(*logits));
	double t0;

	for (int i = 0; i < B; i++) {
		kv[i] = kv_cache_new(c, s->jobs[i].len);
		ntok[i] = s->jobs[i].len;
		N += (size_t)ntok[i];
	}
	tok = xmalloc(N * sizeof(*tok));
	N = 0;
	for (int i = 0; i < B; i++) {
		memcpy(tok + N, s->jobs[i].tok, ntok[i] * sizeof(*tok));
		N += (size_t)ntok[i];
	}
	t0 = pp_now();
	model_extend(s->m, kv, B, ntok, tok, logits);
	s->st.model_s += pp_now() - t0;
	s->st.tokens += N;
	free(tok);

	/*
	 * Forks in groups of at most FLR_CACHE_BYTES of caches: as few groups
	 * as memory allows, since every group is a run of decoding steps and
	 * small steps waste the machine.
	 */
	size_t per = (size_t)c->n_layers * model_kv_dim(c) * 2 * sizeof(float);
	size_t budget = FLR_CACHE_BYTES;
	int total = B * nf;
	int *who = xmalloc(total * sizeof(*who));
	struct kv_cache **fk = xmalloc(total * sizeof(*fk));
	int *act = xmalloc(total * sizeof(*act));
	int *one = xmalloc(total * sizeof(*one));
	int *ft = xmalloc(total * sizeof(*ft));
	double *sum = xmalloc(total * sizeof(*sum));
	float *lg = NULL;
	for (int q = 0; q < total; q++)
		one[q] = 1;

	for (int g0 = 0; g0 < total; ) {
		size_t used = 0;
		int g1 = g0;
		while (g1 < total) {
			const struct job *j = &s->jobs[g1 / nf];
			size_t need = (size_t)(j->len + s->fol[g1 % nf].len) *
			    per;
			if (g1 > g0 && used + need > budget)
				break;
			used += need;
			g1++;
		}
		int n = g1 - g0;
		for (int q = 0; q < n; q++) {
			int i = (g0 + q) / nf, f = (g0 + q) % nf;
			who[q] = g0 + q;
			fk[q] = kv_cache_new(c, s->jobs[i].len + s->fol[f].len);
		}
#pragma omp parallel for schedule(static)
		for (int q = 0; q < n; q++) {
			int i = (g0 + q) / nf, f = (g0 + q) % nf;
			kv_cache_copy(fk[q], kv[i]);
			/* The context's last logits give the first token. */
			sum[q] = log_softmax_at(logits + (size_t)i * V, V,
			    s->fol[f].tok[0]);
		}
		lg = xreallocarray(lg, (size_t)n * V, sizeof(*lg));
		for (int t = 0; ; t++) {
			int na = 0;
			struct kv_cache **ak = xmalloc(n * sizeof(*ak));
			for (int q = 0; q < n; q++) {
				const struct follow *f = &s->fol[who[q] % nf];
				if (t + 1 < f->len) {
					act[na] = q;
					ak[na] = fk[q];
					ft[na] = f->tok[t];
					na++;
				}
			}
			if (na == 0) {
				free(ak);
				break;
			}
			t0 = pp_now();
			model_extend(s->m, ak, na, one, ft, lg);
			s->st.model_s += pp_now() - t0;
			s->st.tokens += (uint64_t)na;
			/* Rows apart: no two iterations touch one sum. */
#pragma omp parallel for schedule(static)
			for (int a = 0; a < na; a++) {
				int q = act[a];
				const struct follow *f = &s->fol[who[q] % nf];
				sum[q] += log_softmax_at(lg + (size_t)a * V, V,
				    f->tok[t + 1]);
			}
			free(ak);
		}
		for (int q = 0; q < n; q++) {
			int i = who[q] / nf, f = who[q] % nf;
			s->jobs[i].ell[f] = sum[q] / s->fol[f].len;
			kv_cache_free(fk[q]);
		}
		g0 = g1;
	}
	for (int i = 0; i < B; i++)
		kv_cache_free(kv[i]);
	free(kv);
	free(ntok);
	free(logits);
	free(who);
	free(fk);
	free(act);
	free(one);
	free(ft);
	free(sum);
	free(lg);
}

/* Weights that overflow give NaN or Inf: never write them as scores. */
#define NOT_FINITE "the model's output is not finite"

static void
finish_job(struct mscorer *s, struct job *j)
{
	struct side *sd = j->side;

	switch (s->kind) {
	case MS_LOGPROB: {
		int n = j->len - j->np;
		double sum = 0;
		for (int t = 0; t < n; t++) {
			if (!isfinite(j->lp[t]))
				side_die(sd, s->field, 0, "token %d: "
				    "log-probability %g: " NOT_FINITE, t,
				    j->lp[t]);
			sum += j->lp[t];
		}
		side_set_float_array(sd, s->field, j->lp, (size_t)n);
		side_set_num(sd, s->field2, sum);
		if (s->o.ratio_to != NULL) {
			/* the implicit reward's log-ratio, as DPO reads it */
			const msgpack_object *v = side_get(sd, s->other, 0);
			double o;
			if (v == NULL)
				side_die(sd, s->other, 0, "missing (the sum "
				    "--ratio-to subtracts: score --logprob "
				    "CKPT --as %s first)", s->o.ratio_to);
			if (!rec_obj_num(v, &o))
				side_die(sd, s->other, 0, "expected number, "
				    "got %s", rec_type_name(v));
			side_set_num(sd, s->field3, sum - o);
		}
		break;
	}
	case MS_VALUE: {
		int n = j->len - j->np;
		for (int t = 0; t < n; t++)
			if (!isfinite(j->lp[t]))
				side_die(sd, s->o.as, 0, "token %d: value %g: "
				    NOT_FINITE, t, j->lp[t]);
		side_set_float_array(sd, s->o.as, j->lp, (size_t)n);
		break;
	}
	case MS_RM:
		if (!isfinite(j->score))
			side_die(sd, s->o.as, 0, "score %g: " NOT_FINITE,
			    j->score);
		side_set_num(sd, s->o.as, j->score);
		break;
	case MS_FLR: {
		double p = 0, q = 0;
		for (int f = 0; f < s->npos + s->nneg; f++)
			if (!isfinite(j->ell[f]))
				side_die(sd, s->o.as, 0, "follow-up %d: mean "
				    "log-probability %g: " NOT_FINITE, f,
				    j->ell[f]);
		for (int f = 0; f < s->npos; f++)
			p += j->ell[f];
		for (int f = 0; f < s->nneg; f++)
			q += j->ell[s->npos + f];
		side_set_num(sd, s->o.as, p / s->npos - q / s->nneg);
		if (s->o.details) {
			float *v = xmalloc((s->npos + s->nneg) * sizeof(*v));
			for (int f = 0; f < s->npos + s->nneg; f++)
				v[f] = (float)j->ell[f];
			side_set_float_array(sd, "flr_positive", v,
			    (size_t)s->npos);
			side_set_float_array(sd, "flr_negative", v + s->npos,
			    (size_t)s->nneg);
			free(v);
		}
		break;
	}
	}
	free(j->tok);
	free(j->lp);
	free(j->ell);
}

void
ms_flush(struct mscorer *s, struct rec_writer *w)
{
	s->flushing = 1;
	if (s->njobs > 0) {
		if (s->kind != MS_FLR)
			run_seqs(s);
		else if (s->o.nocache)
			run_flr_nocache(s);
		else
			run_flr_cache(s);
	}
	/* Record by record, so that one in error leaves the ones before it
	 * written. */
	for (size_t i = 0, k = 0; i < s->nitems; i++) {
		struct item *it = s->items[i];
		for (int d = 0; d < it->nsides; d++)
			finish_job(s, &s->jobs[k++]);
		sides_close(it->side, it->nsides);
		rec_write(w, &it->rec);
		rec_free(&it->rec);
		free(it);
	}
	s->nitems = s->njobs = 0;
	s->pending = 0;
	s->st.total_s = pp_now() - s->t0;
	s->flushing = 0;
}

void
ms_add(struct mscorer *s, struct rec *r, struct rec_writer *w)
{
	struct item *it = xmalloc(sizeof(*it));
	size_t add = 0;
	int nf = s->npos + s->nneg;

	if (s->st.records == 0)
		s->t0 = pp_now();
	s->st.records++;
	s->w = w;
	it->rec = *r;
	it->nsides = sides_open(&it->rec, it->side, s->kind == MS_LOGPROB);
	/* The side's copies point at it->rec now, not at *r. */
	for (int i = 0; i < it->nsides; i++)
		it->side[i].top = &it->rec;
	if (s->njobs + 2 > s->capjobs) {
		s->capjobs = s->capjobs ? 2 * s->capjobs : 64;
		s->jobs = xreallocarray(s->jobs, s->capjobs, sizeof(*s->jobs));
	}
	for (int i = 0; i < it->nsides; i++) {
		struct job *j = &s->jobs[s->njobs + i];
		memset(j, 0, sizeof(*j));
		j->side = &it->side[i];
		if (s->kind == MS_FLR)
			flr_job(s, j);
		else
			seq_job(s, j);
		add += (size_t)j->len;
		s->st.seq_tokens += (size_t)j->len;
		if (s->kind == MS_FLR) {
			/* As sequences: the context once per follow-up. */
			j->ell = xcalloc(nf, sizeof(*j->ell));
			s->st.seq_tokens += (size_t)j->len * (nf - 1);
			for (int f = 0; f < nf; f++) {
				add += (size_t)s->fol[f].len;
				s->st.seq_tokens += (size_t)s->fol[f].len;
			}
		}
	}
	/* A record that would overfill the batch starts the next one. */
	if (s->nitems > 0 && s->pending + add > (size_t)s->o.batch_tokens) {
		struct job keep[2];
		memcpy(keep, &s->jobs[s->njobs], it->nsides * sizeof(*keep));
		ms_flush(s, w);
		memcpy(&s->jobs[0], keep, it->nsides * sizeof(*keep));
	}
	s->njobs += (size_t)it->nsides;
	if (s->nitems == s->capitems) {
		s->capitems = s->capitems ? 2 * s->capitems : 64;
		s->items = xreallocarray(s->items, s->capitems,
		    sizeof(*s->items));
	}
	s->items[s->nitems++] = it;
	s->pending += add;
	if (s->pending >= (size_t)s->o.batch_tokens)
		ms_flush(s, w);
}
