/*
 * tokenizer.c: loading a tokenizer.json and running its pipeline; see
 * tokenizer.h.  The stages themselves live in tok_text.c (normalizers,
 * pre-tokenizers, decoders) and tok_bpe.c (the model).
 */
#include "config.h"

#include <err.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tok_impl.h"
#include "text/tokenizer.h"

/* An entry of added_tokens. */
struct added {
	char *content;
	size_t len;
	/* What is matched: the content, normalized for a normalized token
	 * (as the library normalizes it, Prepend and all). */
	char *mtext;
	size_t mlen;
	int32_t id;
	uint8_t special, lstrip, rstrip, single_word, normalized;
};

/*
 * The added tokens matched at one stage (on the raw text, or on the
 * normalized text), sorted by first byte and then longest first, so that
 * the candidates at a position are one short run of the array.
 */
struct matcher {
	uint32_t *idx;		/* into tokenizer.added */
	uint32_t start[257];	/* first byte b: idx[start[b]..start[b+1]) */
	size_t n;
};

struct tokenizer {
	struct normalizer *norm;
	struct pretok *pretok;
	struct bpe model;
	struct decoder *dec;

	struct added *added;
	size_t nadded;
	int32_t *added_of_id;	/* id -> index into added, -1 */
	size_t nids;		/* one past the largest id */
	struct matcher raw, normd;

	/* post-processor: the ids around the sequence with add_special */
	int32_t *pre, *post;
	size_t npre, npost;

	int32_t bos, eos, pad;
	char *bos_tok, *eos_tok, *chat_template;
	char *chat_template_tools;	/* the named template "tool_use" */

	/* scratch, reused by every call */
	struct strbuf norm_buf, tmp;
	struct pieces in, out, ptmp;
	struct toklist dl1, dl2;
};

/* ------------------------------------------------------------------------ */
/* Added tokens */

static const char *
added_get_str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return v && json_is_string(v) ? json_string_value(v) : NULL;
}

static int
load_added(struct tokenizer *t, json_t *arr, struct tok_err *e)
{
	json_t *o, *v;
	size_t i;
	const char *c;
	char f[64];
	struct added *a;

	if (arr == NULL || json_is_null(arr))
		return 0;
	if (!json_is_array(arr)) {
		tok_fail(e, "added_tokens", "expected an array");
		return -1;
	}
	t->added = xcalloc(json_array_size(arr) + 1, sizeof(*t->added));
	json_array_foreach(arr, i, o) {
		snprintf(f, sizeof(f), "added_tokens[%zu]", i);
		v = json_object_get(o, "id");
		if ((c = added_get_str(o, "content")) == NULL || v == NULL ||
		    !json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > INT32_MAX - 1) {
			tok_fail(e, f, "expected {\"id\": N, \"content\": "
			    "\"...\"}");
			return -1;
		}
		a = &t->added[t->nadded++];
		a->content = xstrdup(c);
		a->len = json_string_length(json_object_get(o, "content"));
		a->id = json_integer_value(v);
		a->special = json_is_true(json_object_get(o, "special"));
		a->lstrip = json_is_true(json_object_get(o, "lstrip"));
		a->rstrip = json_is_true(json_object_get(o, "rstrip"));
		a->single_word = json_is_true(json_object_get(o,
		    "single_word"));
		v = json_object_get(o, "normalized");
		a->normalized = v ? json_is_true(v) : !a->special;
		if (a->len == 0) {
			tok_fail(e, f, "empty content");
			return -1;
		}
	}
	return 0;
}

static int
cmp_added(const void *x, const void *y, void *base)
{
	const struct added *a = (struct added *)base + *(const uint32_t *)x;
	const struct added *b = (struct added *)base + *(const uint32_t *)y;
	unsigned char fa = a->mtext[0], fb = b->mtext[0];

	if (fa != fb)
		return fa < fb ? -1 : 1;
	if (a->mlen != b->mlen)
		return a->mlen > b->mlen ? -1 : 1;	/* longest first */
	return *(const uint32_t *)x < *(const uint32_t *)y ? -1 : 1;
}

static void
build_matcher(struct tokenizer *t, struct matcher *m, int normalized)
{
	struct added *a;
	size_t i, b;

	m->idx = xcalloc(t->nadded + 1, sizeof(*m->idx));
	m->n = 0;
	/* Without a normalizer, normalized tokens match the raw text too. */
	for (i = 0; i < t->nadded; i++) {
		a = &t->added[i];
		if ((a->normalized && t->norm != NULL) != normalized)
			continue;
		sb_clear(&t->norm_buf);
		sb_add(&t->norm_buf, a->content, a->len);
		if (normalized)
			tok_normalize(t->norm, &t->norm_buf, &t->tmp);
		if (t->norm_buf.len == 0)
			continue;
		a->mtext = xstrdup(t->norm_buf.data);
		a->mlen = t->norm_buf.len;
		m->idx[m->n++] = i;
	}
	qsort_r(m->idx, m->n, sizeof(*m->idx), cmp_added, t->added);
	for (b = 0, i = 0; b < 256; b++) {
		m->start[b] = i;
		while (i < m->n &&
		    (unsigned char)t->added[m->idx[i]].mtext[0] == b)
			i++;
	}
	m->start[256] = m->n;
}

static int32_t
last_char(const char *s, size_t n)
{
	size_t i, cl;

	if (n == 0)
		return -1;
	for (i = n - 1; i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80 &&
	    n - i < 4; i--)
		;
	return tu8_get((const unsigned char *)s + i, n - i, &cl);
}

/*
 * The next added token in s[pos..n) for matcher m: the leftmost, and of
 * those the longest.  A single_word token must stand alone; when it does
 * not, the search goes on after it, as the library's matcher does.  On a
 * match *ms..*me is the span it takes (lstrip/rstrip widen it over
 * whitespace, not before floor) and the index of the token is returned;
 * else -1.
 */
static int
next_added(struct tokenizer *t, const struct matcher *m, const char *s,
    size_t n, size_t pos, size_t floor, size_t *ms, size_t *me)
{
	const struct added *a = NULL;
	size_t i, k, s0, e0, cl;
	unsigned char b;

	if (m->n == 0)
		return -1;
	for (i = pos; i < n; i++) {
		b = s[i];
		for (k = m->start[b]; k < m->start[b + 1]; k++) {
			a = &t->added[m->idx[k]];
			if (a->mlen <= n - i && memcmp(s + i, a->mtext,
			    a->mlen) == 0)
				break;	/* the longest one here */
		}
		if (k == m->start[b + 1])
			continue;
		s0 = i;
		e0 = i + a->mlen;
		if (a->single_word &&
		    ((s0 > 0 && tok_is_word_char(last_char(s, s0))) ||
		    (e0 < n && tok_is_word_char(tu8_get(
		    (const unsigned char *)s + e0, n - e0, &cl))))) {
			i = e0 - 1;
			continue;
		}
		if (a->lstrip)
			while (s0 > floor) {
				/* the character before s0 */
				size_t p = s0 - 1;
				while (p > floor &&
				    ((unsigned char)s[p] & 0xc0) == 0x80)
					p--;
				if (!tu_is_space(tu8_get((const unsigned char *)
				    s + p, s0 - p, &cl)))
					break;
				s0 = p;
			}
		if (a->rstrip)
			while (e0 < n && tu_is_space(tu8_get(
			    (const unsigned char *)s + e0, n - e0, &cl)))
				e0 += cl;
		*ms = s0;
		*me = e0;
		return m->idx[k];
	}
	return -1;
}

/* ------------------------------------------------------------------------ */
/* Post-processors: the ids before and after the sequence. */

static int32_t
special_id(struct tokenizer *t, const char *tok)
{
	return tokenizer_token_to_id(t, tok, strlen(tok));
}

static void
push_ids(int32_t **v, size_t *n, const int32_t *ids, size_t k, int front)
{
	if (k == 0)
		return;
	*v = xreallocarray(*v, *n + k + 1, sizeof(**v));
	if (front) {
		memmove(*v + k, *v, *n * sizeof(**v));
		memcpy(*v, ids, k * sizeof(**v));
	} else
		memcpy(*v + *n, ids, k * sizeof(**v));
	*n += k;
}

static int
load_template(struct tokenizer *t, json_t *j, struct tok_err *e,
    const char *field)
{
	json_t *single = json_object_get(j, "single");
	json_t *specials = json_object_get(j, "special_tokens"), *item, *st;
	json_t *ids, *v;
	int32_t *pre = NULL, *post = NULL, id;
	size_t npre = 0, npost = 0, i, k;
	int seen = 0;
	char f[256];

	if (!json_is_array(single)) {
		tok_fail(e, field, "TemplateProcessing without a \"single\" "
		    "array");
		return -1;
	}
	json_array_foreach(single, i, item) {
		snprintf(f, sizeof(f), "%s.single[%zu]", field, i);
		if (json_object_get(item, "Sequence")) {
			seen = 1;
			continue;
		}
		st = json_object_get(item, "SpecialToken");
		if (st == NULL || !json_is_string(json_object_get(st, "id"))) {
			tok_fail(e, f, "expected SpecialToken or Sequence");
			break;
		}
		/* The ids come from special_tokens; the token text is the key. */
		v = json_object_get(specials, json_string_value(
		    json_object_get(st, "id")));
		ids = v ? json_object_get(v, "ids") : NULL;
		if (!json_is_array(ids)) {
			tok_fail(e, f, "\"%s\" is not in special_tokens",
			    json_string_value(json_object_get(st, "id")));
			break;
		}
		for (k = 0; k < json_array_size(ids); k++) {
			id = json_integer_value(json_array_get(ids, k));
			if (seen)
				push_ids(&post, &npost, &id, 1, 0);
			else
				push_ids(&pre, &npre, &id, 1, 0);
		}
	}
	if (!e->failed) {
		/* An outer processor wraps what an inner one made. */
		push_ids(&t->pre, &t->npre, pre, npre, 1);
		push_ids(&t->post, &t->npost, post, npost, 0);
	}
	free(pre);
	free(post);
	return e->failed ? -1 : 0;
}

/* RobertaProcessing and BertProcessing: "cls" and "sep" as [token, id]. */
static int
load_cls_sep(struct tokenizer *t, json_t *j, struct tok_err *e,
    const char *field)
{
	json_t *cls = json_object_get(j, "cls"), *sep = json_object_get(j,
	    "sep");
	int32_t c, s;

	if (!json_is_array(cls) || !json_is_array(sep) ||
	    !json_is_integer(json_array_get(cls, 1)) ||
	    !json_is_integer(json_array_get(sep, 1))) {
		tok_fail(e, field, "expected \"cls\" and \"sep\" as [token, "
		    "id]");
		return -1;
	}
	c = json_integer_value(json_array_get(cls, 1));
	s = json_integer_value(json_array_get(sep, 1));
	push_ids(&t->pre, &t->npre, &c, 1, 1);
	push_ids(&t->post, &t->npost, &s, 1, 0);
	return 0;
}

static int
load_post(struct tokenizer *t, json_t *j, struct tok_err *e,
    const char *field)
{
	json_t *type = json_object_get(j, "type"), *arr, *p;
	const char *ty;
	size_t i;
	char f[256];

	if (!json_is_string(type)) {
		tok_fail(e, field, "expected an object with a \"type\"");
		return -1;
	}
	ty = json_string_value(type);
	if (strcmp(ty, "ByteLevel") == 0)
		return 0;	/* it only trims offsets; ids are unchanged */
	if (strcmp(ty, "TemplateProcessing") == 0)
		return load_template(t, j, e, field);
	if (strcmp(ty, "RobertaProcessing") == 0 ||
	    strcmp(ty, "BertProcessing") == 0)
		return load_cls_sep(t, j, e, field);
	if (strcmp(ty, "Sequence") == 0) {
		arr = json_object_get(j, "processors");
		if (!json_is_array(arr)) {
			tok_fail(e, field, "Sequence without \"processors\"");
			return -1;
		}
		json_array_foreach(arr, i, p) {
			snprintf(f, sizeof(f), "%s.processors[%zu]", field, i);
			if (load_post(t, p, e, f) < 0)
				return -1;
		}
		return 0;
	}
	tok_fail(e, field, "unsupported post-processor \"%s\" (supported: "
	    "TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, "
	    "Sequence)", ty);
	return -1;
}

/* ------------------------------------------------------------------------ */
/* Loading */

/* The first of names that is an added token, or -1. */
static int32_t
guess_special(struct tokenizer *t, const char *const *names, char **tok)
{
	size_t i;
	int32_t id;

	for (i = 0; names[i]; i++)
		if ((id = special_id(t, names[i])) >= 0) {
			*tok = xstrdup(names[i]);
			return id;
		}
	return -1;
}

static void
guess_specials(struct tokenizer *t)
{
	static const char *const bos[] = { "<|bos|>", "<s>",
	    "<|begin_of_text|>", "<|startoftext|>", "<bos>", NULL };
	static const char *const eos[] = { "<|eos|>", "</s>",
	    "<|end_of_text|>", "<|endoftext|>", "<eos>", "<|im_end|>", NULL };
	static const char *const pad[] = { "<|pad|>", "<pad>", "[PAD]",
	    NULL };
	char *pad_tok = NULL;

	if (t->npre > 0) {
		/* The post-processor's first special token is the BOS. */
		t->bos = t->pre[0];
		/* Its id may name no token: then it has no text. */
		const char *tok = tokenizer_id_to_token(t, t->bos);
		t->bos_tok = xstrdup(tok ? tok : "");
	} else
		t->bos = guess_special(t, bos, &t->bos_tok);
	t->eos = guess_special(t, eos, &t->eos_tok);
	t->pad = guess_special(t, pad, &pad_tok);
	free(pad_tok);
}

static int
build_tokenizer(struct tokenizer *t, json_t *root, struct tok_err *e)
{
	json_t *v, *model;
	const char *type;
	size_t i;
	int32_t maxid;

	if (!json_is_object(root)) {
		tok_fail(e, "(top level)", "expected an object");
		return -1;
	}
	model = json_object_get(root, "model");
	if (!json_is_object(model)) {
		tok_fail(e, "model", "expected an object");
		return -1;
	}
	v = json_object_get(model, "type");
	type = v && json_is_string(v) ? json_string_value(v) :
	    json_object_get(model, "merges") ? "BPE" : "(none)";
	if (strcmp(type, "BPE") != 0) {
		tok_fail(e, "model.type", "unsupported model \"%s\": only BPE "
		    "tokenizers are supported", type);
		return -1;
	}
	if (build_bpe(&t->model, model, e) < 0)
		return -1;
	if ((v = json_object_get(root, "normalizer")) && !json_is_null(v) &&
	    (t->norm = build_normalizer(v, e, "normalizer")) == NULL)
		return -1;
	if ((v = json_object_get(root, "pre_tokenizer")) && !json_is_null(v) &&
	    (t->pretok = build_pretok(v, e, "pre_tokenizer")) == NULL)
		return -1;
	if ((v = json_object_get(root, "decoder")) && !json_is_null(v) &&
	    (t->dec = build_decoder(v, e, "decoder")) == NULL)
		return -1;
	if (load_added(t, json_object_get(root, "added_tokens"), e) < 0)
		return -1;

	maxid = (int32_t)t->model.nid - 1;
	for (i = 0; i < t->nadded; i++)
		if (t->added[i].id > maxid)
			maxid = t->added[i].id;
	t->nids = maxid + 1;
	t->added_of_id = xmalloc((t->nids + 1) * sizeof(int32_t));
	memset(t->added_of_id, 0xff, (t->nids + 1) * sizeof(int32_t));
	for (i = 0; i < t->nadded; i++)
		t->added_of_id[t->added[i].id] = i;
	build_matcher(t, &t->raw, 0);
	build_matcher(t, &t->normd, 1);

	if ((v = json_object_get(root, "post_processor")) && !json_is_null(v) &&
	    load_post(t, v, e, "post_processor") < 0)
		return -1;
	guess_specials(t);
	return 0;
}

struct tokenizer *
tokenizer_from_json(const char *json, size_t len, const char *name,
    char *err, size_t errsz)
{
	struct tokenizer *t;
	struct tok_err e = { name ? name : "tokenizer.json", err, errsz, 0 };
	json_error_t jerr;
	json_t *root;

	root = json_loadb(json, len, 0, &jerr);
	if (root == NULL) {
		snprintf(err, errsz, "%s: line %d, column %d: %s", e.file,
		    jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	t = xcalloc(1, sizeof(*t));
	t->bos = t->eos = t->pad = -1;
	t->model.unk = -1;
	if (build_tokenizer(t, root, &e) < 0) {
		json_decref(root);
		tokenizer_free(t);
		return NULL;
	}
	json_decref(root);
	return t;
}

static char *
read_file(const char *path, size_t *len, char *err, size_t errsz)
{
	FILE *f;
	struct strbuf b;
	char buf[65536];
	size_t n;

	if ((f = fopen(path, "rb")) == NULL) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return NULL;
	}
	sb_init(&b);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		sb_add(&b, buf, n);
	if (ferror(f)) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		fclose(f);
		sb_free(&b);
		return NULL;
	}
	fclose(f);
	*len = b.len;
	return b.data ? b.data : xstrdup("");
}

struct tokenizer *
tokenizer_from_file(const char *path, char *err, size_t errsz)
{
	struct tokenizer *t;
	size_t len;
	char *text;

	if ((text = read_file(path, &len, err, errsz)) == NULL)
		return NULL;
	t = tokenizer_from_json(text, len, path, err, errsz);
	free(text);
	return t;
}

void
tokenizer_free(struct tokenizer *t)
{
	size_t i;

	if (t == NULL)
		return;
	free_normalizer(t->norm);
	free_pretok(t->pretok);
	free_decoder(t->dec);
	free_bpe(&t->model);
	for (i = 0; i < t->nadded; i++) {
		free(t->added[i].content);
		free(t->added[i].mtext);
	}
	free(t->added);
	free(t->added_of_id);
	free(t->raw.idx);
	free(t->normd.idx);
	free(t->pre);
	free(t->post);
	free(t->bos_tok);
	free(t->eos_tok);
	free(t->chat_template);
	free(t->chat_template_tools);
	sb_free(&t->norm_buf);
	sb_free(&t->tmp);
	pieces_free(&t->in);
	pieces_free(&t->out);
	pieces_free(&t->ptmp);
	toklist_free(&t->dl1);
	toklist_free(&t->dl2);
	free(t);
}

/* ------------------------------------------------------------------------ */
/* tokenizer_config.json */

/* A special token in the config: "text" or {"content": "text", ...}. */
static const char *
config_token(json_t *root, const char *key)
{
	json_t *v = json_object_get(root, key);

	if (v && json_is_object(v))
		v = json_object_get(v, "content");
	return v && json_is_string(v) ? json_string_value(v) : NULL;
}

/*
 * tokenizer_config.json often says "model_max_length": 1e30 written out as
 * an integer, which jansson refuses (it holds int64 only).  Nothing here
 * reads that field, so a copy of the text with every integer of 19 digits
 * or more (outside strings) blanked to 0 is parsed instead.
 */
static char *
scrub_bigints(const char *json, size_t len)
{
	char *c = xmalloc(len + 1);
	size_t i, k;
	int instr = 0;

	memcpy(c, json, len);
	c[len] = 0;
	for (i = 0; i < len; i++) {
		if (instr) {
			if (c[i] == '\\')
				i++;
			else if (c[i] == '"')
				instr = 0;
			continue;
		}
		if (c[i] == '"') {
			instr = 1;
			continue;
		}
		if (c[i] < '0' || c[i] > '9')
			continue;
		for (k = i; k < len && c[k] >= '0' && c[k] <= '9'; k++)
			;
		if (k - i >= 19 && (k == len || (c[k] != '.' && c[k] != 'e' &&
		    c[k] != 'E'))) {
			c[i] = '0';
			memset(c + i + 1, ' ', k - i - 1);
		}
		i = k - 1;
	}
	return c;
}

int
tokenizer_load_config(struct tokenizer *t, const char *json, size_t len,
    const char *name, char *err, size_t errsz)
{
	json_error_t jerr;
	json_t *root, *ct, *item;
	const char *s;
	char *copy;
	size_t i;

	if (name == NULL)
		name = "tokenizer_config.json";
	copy = scrub_bigints(json, len);
	root = json_loadb(copy, len, 0, &jerr);
	free(copy);
	if (root == NULL) {
		snprintf(err, errsz, "%s: line %d, column %d: %s", name,
		    jerr.line, jerr.column, jerr.text);
		return -1;
	}
	if (!json_is_object(root)) {
		snprintf(err, errsz, "%s: expected an object", name);
		json_decref(root);
		return -1;
	}
	if ((s = config_token(root, "bos_token")) != NULL) {
		free(t->bos_tok);
		t->bos_tok = xstrdup(s);
		t->bos = special_id(t, s);
	}
	if ((s = config_token(root, "eos_token")) != NULL) {
		free(t->eos_tok);
		t->eos_tok = xstrdup(s);
		t->eos = special_id(t, s);
	}
	if ((s = config_token(root, "pad_token")) != NULL)
		t->pad = special_id(t, s);
	ct = json_object_get(root, "chat_template");
	if (ct && json_is_array(ct)) {
		/* Named templates: the one called "default", else the first;
		 * and "tool_use", which transformers takes when tools are
		 * given. */
		json_array_foreach(ct, i, item) {
			s = added_get_str(item, "name");
			if (s && strcmp(s, "tool_use") == 0 &&
			    json_is_string(json_object_get(item, "template"))) {
				free(t->chat_template_tools);
				t->chat_template_tools = xstrdup(json_string_value(
				    json_object_get(item, "template")));
			}
		}
		/* (not assigning ct while the loop walks it) */
		json_t *pick = NULL;
		json_array_foreach(ct, i, item) {
			s = added_get_str(item, "name");
			if (i == 0 || (s && strcmp(s, "default") == 0))
				pick = json_object_get(item, "template");
			if (s && strcmp(s, "default") == 0)
				break;
		}
		ct = pick;
	}
	if (ct && json_is_string(ct)) {
		free(t->chat_template);
		t->chat_template = xstrdup(json_string_value(ct));
	}
	json_decref(root);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Encoding */

struct idvec {
	int32_t *v;
	size_t n, cap;
};

static void
idvec_push(struct idvec *iv, int32_t id)
{
	if (iv->n == iv->cap) {
		iv->cap = iv->cap ? iv->cap * 2 : 64;
		iv->v = xreallocarray(iv->v, iv->cap, sizeof(*iv->v));
	}
	iv->v[iv->n++] = id;
}

/* Pre-tokenize and run the model on one stretch of normalized text. */
static void
encode_plain(struct tokenizer *t, const char *s, size_t n, int first,
    struct idvec *iv)
{
	struct pieces *p;
	size_t i;

	if (n == 0)
		return;
	pieces_clear(&t->in);
	pieces_add(&t->in, s, n, first);
	if (t->pretok) {
		tok_pretokenize(t->pretok, &t->in, &t->out, &t->ptmp);
		p = &t->out;
	} else
		p = &t->in;
	for (i = 0; i < p->n; i++)
		bpe_encode(&t->model, p->buf.data + p->v[i].off, p->v[i].len,
		    &iv->v, &iv->n, &iv->cap);
}

/* One stretch of raw text between added tokens: normalize, then split on
 * the added tokens that match normalized text. */
static void
encode_section(struct tokenizer *t, const char *s, size_t n, int first,
    struct idvec *iv)
{
	struct strbuf *b = &t->norm_buf;
	size_t pos = 0, ms, me;
	int k;

	sb_clear(b);
	sb_add(b, s, n);
	if (t->norm)
		tok_normalize(t->norm, b, &t->tmp);
	while ((k = next_added(t, &t->normd, b->data, b->len, pos, pos, &ms,
	    &me)) >= 0) {
		encode_plain(t, b->data + pos, ms - pos, first && pos == 0, iv);
		idvec_push(iv, t->added[k].id);
		pos = me;
	}
	encode_plain(t, b->data + pos, b->len - pos, first && pos == 0, iv);
}

size_t
tokenizer_encode(struct tokenizer *t, const char *text, size_t len,
    int add_special, int32_t **ids)
{
	char e[256];
	size_t n = tokenizer_try_encode(t, text, len, add_special, ids, e,
	    sizeof(e));

	if (n == (size_t)-1)
		errx(EXIT_DATA, "%s", e);
	return n;
}

size_t
tokenizer_try_encode(struct tokenizer *t, const char *text, size_t len,
    int add_special, int32_t **ids, char *err, size_t errsz)
{
	struct idvec iv = { NULL, 0, 0 };
	size_t pos = 0, ms, me, i;
	int k;

	tpat_fault[0] = 0;

	if (add_special)
		for (i = 0; i < t->npre; i++)
			idvec_push(&iv, t->pre[i]);
	while ((k = next_added(t, &t->raw, text, len, pos, pos, &ms,
	    &me)) >= 0) {
		if (ms > pos)
			encode_section(t, text + pos, ms - pos, pos == 0, &iv);
		idvec_push(&iv, t->added[k].id);
		pos = me;
	}
	if (pos < len)
		encode_section(t, text + pos, len - pos, pos == 0, &iv);
	if (add_special)
		for (i = 0; i < t->npost; i++)
			idvec_push(&iv, t->post[i]);
	if (tpat_fault[0] != 0) {
		free(iv.v);
		*ids = NULL;
		pp_errf(err, errsz, "tokenizer: %s", tpat_fault);
		return (size_t)-1;
	}
	if (iv.v == NULL)
		iv.v = xmalloc(sizeof(int32_t));
	*ids = iv.v;
	return iv.n;
}

/* ------------------------------------------------------------------------ */
/* Decoding */

char *
tokenizer_decode(struct tokenizer *t, const int32_t *ids, size_t n,
    int skip_special, size_t *outlen)
{
	struct toklist *in = &t->dl1, *out = &t->dl2;
	struct strbuf b;
	const char *tok;
	size_t i;
	int32_t a;

	tpat_fault[0] = 0;
	toklist_clear(in);
	for (i = 0; i < n; i++) {
		if (ids[i] < 0 || (size_t)ids[i] >= t->nids)
			continue;	/* unknown ids are skipped */
		if ((a = t->added_of_id[ids[i]]) >= 0) {
			if (!skip_special || !t->added[a].special)
				toklist_add(in, t->added[a].content,
				    t->added[a].len, 1);
		} else if ((size_t)ids[i] < t->model.nid &&
		    (tok = t->model.id2tok[ids[i]]) != NULL)
			toklist_add(in, tok, t->model.id2len[ids[i]], 0);
	}
	sb_init(&b);
	if (t->dec) {
		tok_decode_tokens(t->dec, in, out);
		for (i = 0; i < out->n; i++)
			sb_add(&b, out->buf.data + out->off[i], out->len[i]);
	} else
		for (i = 0; i < in->n; i++) {
			if (i)
				sb_addc(&b, ' ');
			sb_add(&b, in->buf.data + in->off[i], in->len[i]);
		}
	/* Decoding is of the tool's own ids: no record to blame. */
	if (tpat_fault[0] != 0)
		errx(EXIT_DATA, "tokenizer: decoding: %s", tpat_fault);
	if (b.data == NULL)
		b.data = xstrdup("");
	if (outlen)
		*outlen = b.len;
	return b.data;
}

/* ------------------------------------------------------------------------ */
/* Lookups */

int32_t
tokenizer_token_to_id(const struct tokenizer *t, const char *tok, size_t len)
{
	size_t i;

	for (i = 0; i < t->nadded; i++)
		if (t->added[i].len == len &&
		    memcmp(t->added[i].content, tok, len) == 0)
			return t->added[i].id;
	return tmap_get(&t->model.vocab, tok, len);
}

const char *
tokenizer_id_to_token(const struct tokenizer *t, int32_t id)
{
	if (id < 0 || (size_t)id >= t->nids)
		return NULL;
	if (t->added_of_id[id] >= 0)
		return t->added[t->added_of_id[id]].content;
	return (size_t)id < t->model.nid ? t->model.id2tok[id] : NULL;
}

size_t
tokenizer_vocab_size(const struct tokenizer *t)
{
	return t->nids;
}

int
tokenizer_is_special(const struct tokenizer *t, int32_t id)
{
	return id >= 0 && (size_t)id < t->nids && t->added_of_id[id] >= 0 &&
	    t->added[t->added_of_id[id]].special;
}

int32_t tokenizer_bos_id(const struct tokenizer *t) { return t->bos; }
int32_t tokenizer_eos_id(const struct tokenizer *t) { return t->eos; }
int32_t tokenizer_pad_id(const struct tokenizer *t) { return t->pad; }

const char *
tokenizer_bos_token(const struct tokenizer *t)
{
	return t->bos_tok ? t->bos_tok : "";
}

const char *
tokenizer_eos_token(const struct tokenizer *t)
{
	return t->eos_tok ? t->eos_tok : "";
}

const char *
tokenizer_chat_template(const struct tokenizer *t)
{
	return t->chat_template;
}

const char *
tokenizer_chat_template_tools(const struct tokenizer *t)
{
	return t->chat_template_tools;
}
