/*
 * judge.c: LLM-as-a-judge scoring; see judge.h.
 *
 * Reading order: the template; the labels; a record into its sequences
 * (the rendered prompt, in each order for pairs, followed by each label);
 * the batch through the model; the reward from the labels' sums.
 */
#include "config.h"

#include <err.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/checkpoint.h"
#include "model/model.h"
#include "model/model_lora.h"
#include "records/record.h"
#include "scoring/judge.h"
#include "text/conversation.h"
#include "text/tokenizer.h"
#include "training/loss.h"
#include "util/util.h"

#define MAX_LABELS 16

struct label {
	char *text;
	double value;		/* pointwise: the rating */
};

/* One record and its sequences: (pairwise: 2 orders x) nlabels. */
struct item {
	struct rec rec;
	int nseq;
	int32_t *tok[2 * MAX_LABELS];	/* prompt + label */
	int len[2 * MAX_LABELS];
	int np[2];		/* prompt tokens of each order */
	double sum[2 * MAX_LABELS];	/* log-prob of the label */
};

struct judge {
	struct judge_opts o;
	const char *path;
	struct model *m;
	struct conv *conv;
	struct tokenizer *tok;
	char *tmpl;		/* the template's text */
	struct label lab[MAX_LABELS];
	int nlab;
	struct item *items;
	size_t nitems, capitems, pending_tokens;
	unsigned long long tokens;
};

/* ------------------------------------------------------------------------ */
/* The template */

/* Check the braces once, so a bad template fails before any record. */
static void
check_template(const char *t, const char *path)
{
	int line = 1;

	for (const char *p = t; *p; p++) {
		if (*p == '\n')
			line++;
		if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
			p++;
			continue;
		}
		if (*p == '}')
			errx(EXIT_DATA, "%s: line %d: a } without its {; write "
			    "}} for a brace", path, line);
		if (*p != '{')
			continue;
		const char *e = strchr(p, '}'), *nl = strchr(p, '\n');
		if (e == NULL || (nl != NULL && nl < e) || e == p + 1)
			errx(EXIT_DATA, "%s: line %d: a { without a field name "
			    "and its }; write {{ for a brace", path, line);
		p = e;
	}
}

const char *
judge_field(const struct rec *r, const char *name, size_t *len)
{
	const msgpack_object *v = rec_get_path(r, name);

	if (v == NULL)
		rec_die(r, name, "missing (the judge's template asks for it)");
	if (v->type != MSGPACK_OBJECT_STR)
		rec_die(r, name, "expected string, got %s", rec_type_name(v));
	*len = v->via.str.size;
	return v->via.str.ptr;
}

char *
judge_template_load(const char *path)
{
	size_t len;
	char *t = pp_read_file(path, &len);

	if (t == NULL)
		err(EXIT_DATA, "%s", path);
	if (strlen(t) != len)
		errx(EXIT_DATA, "%s: a NUL byte in the template", path);
	check_template(t, path);
	return t;
}

char *
judge_template_render(const char *tmpl, int pairwise, const struct rec *r,
    const char *a, size_t alen, const char *b, size_t blen)
{
	struct strbuf s;
	char name[256];

	sb_init(&s);
	for (const char *p = tmpl; *p; p++) {
		if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
			sb_addc(&s, *p++);
			continue;
		}
		if (*p != '{') {
			sb_addc(&s, *p);
			continue;
		}
		const char *e = strchr(p, '}');
		size_t n = (size_t)(e - p - 1);
		if (n >= sizeof(name))
			n = sizeof(name) - 1;
		memcpy(name, p + 1, n);
		name[n] = 0;
		p = e;
		size_t len;
		const char *v;
		if (pairwise && strcmp(name, "response_a") == 0)
			v = a, len = alen;
		else if (pairwise && strcmp(name, "response_b") == 0)
			v = b, len = blen;
		else if (!pairwise && strcmp(name, "response") == 0)
			v = a, len = alen;
		else
			v = judge_field(r, name, &len);
		sb_add(&s, v, len);
	}
	return s.data != NULL ? s.data : xstrdup("");
}

/* ------------------------------------------------------------------------ */
/* The labels */

static void
parse_labels(struct judge *j, const char *list)
{
	const char *p = list;

	while (j->nlab < MAX_LABELS) {
		const char *q = strchr(p, ',');
		size_t n = q ? (size_t)(q - p) : strlen(p);
		struct label *l = &j->lab[j->nlab++];

		if (n == 0)
			pp_usage("--labels: an empty label in \"%s\"", list);
		l->text = xstrndup(p, n);
		if (!j->o.pairwise) {
			char *end;
			l->value = strtod(l->text, &end);
			if (end == l->text || *end != 0 || !isfinite(l->value))
				pp_usage("--labels: a pointwise label is a "
				    "rating, a number: \"%s\"", l->text);
		}
		if (q == NULL)
			break;
		p = q + 1;
	}
	if (j->nlab == MAX_LABELS && strchr(p, ',') != NULL)
		pp_usage("--labels: at most %d", MAX_LABELS);
	if (j->o.pairwise && j->nlab != 2)
		pp_usage("--labels: a pairwise judge has two labels, the "
		    "first response's and the second's");
	if (!j->o.pairwise && j->nlab < 2)
		pp_usage("--labels: a pointwise judge needs two ratings or "
		    "more");
}

/* ------------------------------------------------------------------------ */
/* build_judge / free_judge */

struct judge *
judge_new(const char *path, const struct judge_opts *o)
{
	struct judge *j = xcalloc(1, sizeof(*j));
	struct model_src src;
	struct model_load_opts lo = { MODEL_WEIGHTS_AUTO, MODEL_COMPUTE_F32 };
	struct ckpt *c;
	char e[512];

	j->o = *o;
	j->path = path;
	if (j->o.batch_tokens <= 0)
		j->o.batch_tokens = 4096;
	j->tmpl = judge_template_load(o->template_path);
	if (o->weights != NULL && model_weights_parse(o->weights, &lo.weights))
		pp_usage("--weights: \"%s\" is none of auto, f32, bf16, f16",
		    o->weights);
	if (o->compute != NULL && model_compute_parse(o->compute, &lo.compute))
		pp_usage("--compute: \"%s\" is neither f32 nor bf16",
		    o->compute);
	/* a checkpoint, or a LoRA adapter on its base (model_lora.h) */
	j->m = model_load_as(path, NULL, &src, &lo);
	c = src.ckpt;
	if (!j->m->cfg.lm_head)
		errx(EXIT_DATA, "%s: a judge needs a language-model head",
		    path);
	j->conv = conv_open_args(c, j->m->cfg.vocab_size, o->chat, o->targs, e,
	    sizeof(e));
	if (j->conv == NULL)
		pp_usage("--chat-template: %s", e);
	model_src_free(&src);
	j->tok = conv_tokenizer(j->conv);
	if (j->tok == NULL)
		errx(EXIT_DATA, "%s: %s (a judge reads text)", path,
		    conv_tokenizer_error(j->conv));
	if (conv_template(j->conv) == NULL)
		errx(EXIT_DATA, "%s: %s (name one with --chat-template)", path,
		    conv_template_error(j->conv));
	parse_labels(j, o->labels != NULL ? o->labels :
	    o->pairwise ? "A,B" : "1,2,3,4,5");
	return j;
}

static void
item_free(struct item *it)
{
	for (int s = 0; s < it->nseq; s++)
		free(it->tok[s]);
	rec_free(&it->rec);
}

void
judge_free(struct judge *j)
{
	if (j == NULL)
		return;
	for (size_t i = 0; i < j->nitems; i++)
		item_free(&j->items[i]);
	free(j->items);
	for (int l = 0; l < j->nlab; l++)
		free(j->lab[l].text);
	free(j->tmpl);
	conv_free(j->conv);
	model_free(j->m);
	free(j);
}

unsigned long long
judge_tokens(const struct judge *j)
{
	return j->tokens;
}

/* ------------------------------------------------------------------------ */
/* A record into its sequences */

/*
 * The rendered prompt of one order as the user's turn, then each label as
 * the assistant's answer, tokenized as train-step tokenizes that
 * conversation (the turn's own text as the template writes it, so a
 * judge trained on recs judge-data is read where it learned), up to the
 * turn's end: the label is the start of an answer, not all of it.
 */
static void
add_order(struct judge *j, struct item *it, int order, const char *a,
    size_t alen, const char *b, size_t blen)
{
	char *text = judge_template_render(j->tmpl, j->o.pairwise, &it->rec,
	    a, alen, b, blen), e[512];
	struct chat_msg m[2] = { { .role = "user", .content = text },
	    { .role = "assistant", .content = NULL } };
	int32_t eot = conv_end_of_turn(j->conv);

	for (int l = 0; l < j->nlab; l++) {
		const struct label *lb = &j->lab[l];
		int32_t *t;
		char *mask;
		m[1].content = lb->text;
		size_t n = conv_turn_tokens(j->conv, m, 2, &t, &mask, e,
		    sizeof(e));
		if (n == (size_t)-1)
			rec_die(&it->rec, "prompt", "the judge's prompt: %s",
			    e);
		size_t np = 0, end;
		while (np < n && !mask[np])
			np++;
		for (end = np; end < n && mask[end] && t[end] != eot; end++)
			;
		free(mask);
		if (np == 0 || end == np)
			rec_die(&it->rec, "prompt", "the judge's template "
			    "leaves no %s for label \"%s\"", np == 0 ?
			    "prompt" : "tokens", lb->text);
		if (conv_check_vocab(j->m->cfg.vocab_size, t, end, e,
		    sizeof(e)) != 0 || conv_check_length(j->m->cfg.max_seq_len,
		    end, e, sizeof(e)) != 0)
			rec_die(&it->rec, "prompt", "the judge's prompt and "
			    "label \"%s\": %s of %s", lb->text, e, j->path);
		it->np[order] = (int)np;	/* the same for every label */
		it->tok[it->nseq] = t;
		it->len[it->nseq++] = (int)end;
		j->pending_tokens += end;
	}
	free(text);
}

/* ------------------------------------------------------------------------ */
/* The batch through the model */

/* Sequences from..to of the pending items (flattened), one pass. */
struct seqref {
	struct item *it;
	int s;
};

static void
run_pass(struct judge *j, const struct seqref *sq, size_t n)
{
	int *len = xmalloc(n * sizeof(*len)), N = 0;

	for (size_t i = 0; i < n; i++)
		N += len[i] = sq[i].it->len[sq[i].s];
	int *tok = xmalloc((size_t)N * sizeof(*tok));
	int *tgt = xmalloc((size_t)N * sizeof(*tgt));
	float *lp = xmalloc((size_t)N * sizeof(*lp));
	int off = 0;
	for (size_t i = 0; i < n; i++) {
		const struct item *it = sq[i].it;
		int s = sq[i].s, L = it->len[s];
		int np = it->np[s / j->nlab];
		for (int t = 0; t < L; t++) {
			tok[off + t] = it->tok[s][t];
			/* only the label's tokens are read */
			tgt[off + t] = t + 1 >= np && t + 1 < L ?
			    it->tok[s][t + 1] : -1;
		}
		off += L;
	}
	struct model_batch b = { (int)n, len, tok, tgt };
	model_forward(j->m, &b, lp);
	j->tokens += (unsigned long long)N;
	off = 0;
	for (size_t i = 0; i < n; i++) {
		struct item *it = sq[i].it;
		int s = sq[i].s, L = it->len[s];
		int np = it->np[s / j->nlab];
		double sum = 0;
		for (int t = np - 1; t < L - 1; t++)
			sum += lp[off + t];
		it->sum[s] = sum;
		off += L;
	}
	free(len);
	free(tok);
	free(tgt);
	free(lp);
}

/* ------------------------------------------------------------------------ */
/* The reward from the labels' sums */

static double
reward(const struct judge *j, const struct item *it)
{
	const double *S = it->sum;

	if (j->o.pairwise) {
		/* chosen is A in the first order, B in the second */
		double p1 = sigmoid(S[0] - S[1]), p2 = sigmoid(S[3] - S[2]);
		return (p1 + p2) / 2;
	}
	double mx = -INFINITY, z = 0, ev = 0;
	for (int l = 0; l < j->nlab; l++)
		if (S[l] > mx)
			mx = S[l];
	for (int l = 0; l < j->nlab; l++) {
		double p = exp(S[l] - mx);
		z += p;
		ev += p * j->lab[l].value;
	}
	return ev / z;
}

void
judge_flush(struct judge *j, struct rec_writer *w)
{
	size_t nsq = 0, cap = 0, N = 0;
	struct seqref *sq = NULL;

	/* Every pending sequence, in passes of up to batch_tokens. */
	for (size_t i = 0; i <= j->nitems; i++) {
		struct item *it = i < j->nitems ? &j->items[i] : NULL;
		for (int s = 0; it == NULL ? s < 1 : s < it->nseq; s++) {
			size_t L = it ? (size_t)it->len[s] : 0;
			if (nsq > 0 && (it == NULL ||
			    N + L > (size_t)j->o.batch_tokens)) {
				run_pass(j, sq, nsq);
				nsq = N = 0;
			}
			if (it == NULL)
				break;
			if (nsq == cap) {
				cap = cap ? 2 * cap : 64;
				sq = xreallocarray(sq, cap, sizeof(*sq));
			}
			sq[nsq++] = (struct seqref){ it, s };
			N += L;
		}
	}
	free(sq);
	for (size_t i = 0; i < j->nitems; i++) {
		struct item *it = &j->items[i];
		double v = reward(j, it);
		if (!isfinite(v))
			rec_die(&it->rec, j->o.as, "the judge's output is not "
			    "finite");
		rec_set_num(&it->rec, j->o.as, v);
		rec_write(w, &it->rec);
		item_free(it);
	}
	j->nitems = 0;
	j->pending_tokens = 0;
}

void
judge_add(struct judge *j, struct rec *r, struct rec_writer *w)
{
	struct item *it;
	size_t alen, blen;

	if (j->nitems == j->capitems) {
		j->capitems = j->capitems ? 2 * j->capitems : 64;
		j->items = xreallocarray(j->items, j->capitems,
		    sizeof(*j->items));
	}
	it = &j->items[j->nitems++];
	memset(it, 0, sizeof(*it));
	it->rec = *r;
	if (j->o.pairwise) {
		const char *a = judge_field(&it->rec, "chosen.response", &alen);
		const char *b = judge_field(&it->rec, "rejected.response",
		    &blen);
		add_order(j, it, 0, a, alen, b, blen);
		add_order(j, it, 1, b, blen, a, alen);
	} else {
		const char *a = judge_field(&it->rec, "response", &alen);
		add_order(j, it, 0, a, alen, NULL, 0);
	}
	if (j->pending_tokens >= (size_t)j->o.batch_tokens)
		judge_flush(j, w);
}
