/*
 * chat.c: chat templates; see chat.h.  A checkpoint's template runs
 * through lib/text/jinja with the variables apply_chat_template passes;
 * each built-in renderer follows its family's Jinja template statement by
 * statement, so the text is the one transformers gives.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/chat.h"
#include "text/tok_impl.h"
#include "util/util.h"

enum {
	CHAT_PLAIN, CHAT_CHATML, CHAT_QWEN2, CHAT_LLAMA3, CHAT_LLAMA2,
	CHAT_MISTRAL, CHAT_ZEPHYR, CHAT_JINJA
};

struct chat_template {
	const char *name;
	int family;
	struct jinja *j, *j_tools;	/* CHAT_JINJA */
};

static const struct chat_template templates[] = {
	{ .name = "chatml", .family = CHAT_CHATML },
	{ .name = "qwen2", .family = CHAT_QWEN2 },
	{ .name = "llama3", .family = CHAT_LLAMA3 },
	{ .name = "llama2", .family = CHAT_LLAMA2 },
	{ .name = "mistral", .family = CHAT_MISTRAL },
	{ .name = "zephyr", .family = CHAT_ZEPHYR },
	{ .name = "plain", .family = CHAT_PLAIN },
};
#define NTEMPLATES (sizeof(templates) / sizeof(templates[0]))

const char *
chat_template_names(void)
{
	return "chatml, qwen2, llama3, llama2, mistral, zephyr, plain";
}

const char *
chat_template_name(const struct chat_template *t)
{
	return t->name;
}

const struct chat_template *
chat_template_by_name(const char *name)
{
	size_t i;

	for (i = 0; i < NTEMPLATES; i++)
		if (strcmp(templates[i].name, name) == 0)
			return &templates[i];
	return NULL;
}

/*
 * Qwen2's default system message, as its template spells it:
 * '<|im_start|>system\nTEXT<|im_end|>\n' where TEXT is a literal (no
 * quotes, no Jinja).  NULL when the template has none.  For the qwen2
 * built-in named on a checkpoint whose template has one.
 */
static char *
default_system(const char *jinja)
{
	static const char *const opens[] = { "<|im_start|>system\\n",
	    "<|im_start|>system\n", NULL };
	const char *p, *s, *e;
	size_t i;

	for (i = 0; opens[i]; i++)
		for (p = jinja; (s = strstr(p, opens[i])) != NULL; p = s + 1) {
			s += strlen(opens[i]);
			if ((e = strstr(s, "<|im_end|>")) == NULL)
				break;
			if (e > s && strcspn(s, "'\"{}+") >= (size_t)(e - s)) {
				char *r = xmalloc(e - s + 1);
				memcpy(r, s, e - s);
				r[e - s] = 0;
				return r;
			}
		}
	return NULL;
}

struct chat_template *
chat_template_jinja(const char *src, const char *tools_src,
    const char *where, char *err, size_t errsz)
{
	struct chat_template *t = xcalloc(1, sizeof(*t));
	char w[1024];

	t->name = "jinja";
	t->family = CHAT_JINJA;
	if ((t->j = jinja_parse(src, where, err, errsz)) == NULL) {
		free(t);
		return NULL;
	}
	if (tools_src) {
		snprintf(w, sizeof(w), "%s (tool_use)", where);
		if ((t->j_tools = jinja_parse(tools_src, w, err, errsz)) ==
		    NULL) {
			jinja_free(t->j);
			free(t);
			return NULL;
		}
	}
	return t;
}

void
chat_template_free(const struct chat_template *t)
{
	struct chat_template *m = (struct chat_template *)t;

	if (t == NULL || t->family != CHAT_JINJA)
		return;
	jinja_free(m->j);
	jinja_free(m->j_tools);
	free(m);
}

int
chat_template_has_generation(const struct chat_template *t)
{
	return t->family == CHAT_JINJA && jinja_has_generation(t->j);
}

/*
 * A Jinja template's rendering: the variables transformers'
 * apply_chat_template passes (messages, tools, documents,
 * add_generation_prompt, the special tokens, then the keyword arguments).
 */
static char *
render_jinja(const struct chat_template *t, const struct chat_msg *m,
    size_t n, int gen, const char *bos, const char *eos, const json_t *vars,
    struct jinja_span **spans, size_t *nspans, char *err, size_t errsz)
{
	json_t *v = json_object(), *ms = json_array();
	const json_t *tools = vars ? json_object_get(vars, "tools") : NULL;
	const struct jinja *j = t->j;
	char *r;

	for (size_t i = 0; i < n; i++) {
		if (m[i].json) {
			json_array_append(ms, (json_t *)m[i].json);
			continue;
		}
		json_t *x = json_object();
		json_object_set_new(x, "role", json_string(m[i].role));
		json_object_set_new(x, "content", json_string(m[i].content));
		json_array_append_new(ms, x);
	}
	json_object_set_new(v, "messages", ms);
	json_object_set_new(v, "tools", json_null());
	json_object_set_new(v, "documents", json_null());
	json_object_set_new(v, "add_generation_prompt", json_boolean(gen));
	json_object_set_new(v, "bos_token", json_string(bos));
	json_object_set_new(v, "eos_token", json_string(eos));
	if (vars)
		json_object_update(v, (json_t *)vars);
	if (tools && !json_is_null(tools) && t->j_tools)
		j = t->j_tools;
	r = jinja_render(j, v, spans, nspans, err, errsz);
	json_decref(v);
	return r;
}

/* ------------------------------------------------------------------------ */
/* Rendering */

/* Python's str.strip(), as Jinja's trim filter and .strip() do it. */
static void
add_stripped(struct strbuf *b, const char *s)
{
	size_t n = strlen(s), st = 0, cl, i;
	int32_t c;

	while (st < n) {
		c = tu8_get((const unsigned char *)s + st, n - st, &cl);
		if (!tu_is_space(c) && !(c >= 0x1c && c <= 0x1f))
			break;
		st += cl;
	}
	while (n > st) {
		for (i = n - 1; i > st && ((unsigned char)s[i] & 0xc0) == 0x80;
		    i--)
			;
		c = tu8_get((const unsigned char *)s + i, n - i, &cl);
		if (!tu_is_space(c) && !(c >= 0x1c && c <= 0x1f))
			break;
		n = i;
	}
	sb_add(b, s + st, n - st);
}

static int
is_role(const struct chat_msg *m, const char *role)
{
	return strcmp(m->role, role) == 0;
}

/* The alternation check of the Llama-2 and Mistral templates. */
static int
alternates(const struct chat_msg *m, size_t n, char *err, size_t errsz)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (is_role(&m[i], "user") != (i % 2 == 0)) {
			snprintf(err, errsz, "message %zu: Conversation roles "
			    "must alternate user/assistant/user/assistant/...",
			    i + 1);
			return 0;
		}
	return 1;
}

/*
 * sys: the default system message, or NULL.  Qwen2 writes it inside the
 * message loop (so not for an empty conversation), Qwen2.5 before it.
 */
static void
render_chatml(struct strbuf *b, const struct chat_msg *m, size_t n,
    int gen, const char *sys, int sys_in_loop)
{
	size_t i;

	if (sys && n == 0 && !sys_in_loop)
		sb_printf(b, "<|im_start|>system\n%s<|im_end|>\n", sys);
	for (i = 0; i < n; i++) {
		if (i == 0 && sys && !is_role(&m[0], "system"))
			sb_printf(b, "<|im_start|>system\n%s<|im_end|>\n", sys);
		sb_printf(b, "<|im_start|>%s\n%s<|im_end|>\n", m[i].role,
		    m[i].content);
	}
	if (gen)
		sb_adds(b, "<|im_start|>assistant\n");
}

static void
render_llama3(struct strbuf *b, const struct chat_msg *m, size_t n, int gen,
    const char *bos)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (i == 0)
			sb_adds(b, bos);
		sb_printf(b, "<|start_header_id|>%s<|end_header_id|>\n\n",
		    m[i].role);
		add_stripped(b, m[i].content);
		sb_adds(b, "<|eot_id|>");
	}
	if (gen)
		sb_adds(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static int
render_llama2(struct strbuf *b, const struct chat_msg *m, size_t n,
    const char *bos, const char *eos, char *err, size_t errsz)
{
	const char *sys = NULL;
	struct strbuf c;
	size_t i;

	if (n > 0 && is_role(&m[0], "system")) {
		sys = m[0].content;
		m++, n--;
	}
	if (!alternates(m, n, err, errsz))
		return -1;
	sb_init(&c);
	for (i = 0; i < n; i++) {
		sb_clear(&c);
		if (i == 0 && sys)
			sb_printf(&c, "<<SYS>>\n%s\n<</SYS>>\n\n", sys);
		sb_adds(&c, m[i].content);
		if (is_role(&m[i], "user")) {
			sb_printf(b, "%s[INST] ", bos);
			add_stripped(b, c.data);
			sb_adds(b, " [/INST]");
		} else if (is_role(&m[i], "assistant")) {
			sb_addc(b, ' ');
			add_stripped(b, c.data);
			sb_printf(b, " %s", eos);
		}
	}
	sb_free(&c);
	return 0;
}

static int
render_mistral(struct strbuf *b, const struct chat_msg *m, size_t n,
    const char *bos, const char *eos, char *err, size_t errsz)
{
	size_t i;

	sb_adds(b, bos);
	for (i = 0; i < n; i++) {
		if (!alternates(m, i + 1, err, errsz))
			return -1;
		if (is_role(&m[i], "user"))
			sb_printf(b, "[INST] %s [/INST]", m[i].content);
		else if (is_role(&m[i], "assistant"))
			sb_printf(b, "%s%s", m[i].content, eos);
		else {
			snprintf(err, errsz, "message %zu: Only user and "
			    "assistant roles are supported!", i + 1);
			return -1;
		}
	}
	return 0;
}

static void
render_zephyr(struct strbuf *b, const struct chat_msg *m, size_t n, int gen,
    const char *eos)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (is_role(&m[i], "user") || is_role(&m[i], "system") ||
		    is_role(&m[i], "assistant"))
			sb_printf(b, "<|%s|>\n%s%s\n", m[i].role, m[i].content,
			    eos);
		if (i + 1 == n && gen)
			sb_adds(b, "<|assistant|>\n");
	}
}

static void
render_plain(struct strbuf *b, const struct chat_msg *m, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (i)
			sb_adds(b, "\n\n");
		sb_adds(b, m[i].content);
	}
}

char *
chat_render(const struct chat_template *t, const struct chat_msg *m,
    size_t n, int gen, const char *bos, const char *eos, const char *jinja,
    char *err, size_t errsz)
{
	return chat_render_vars(t, m, n, gen, bos, eos, jinja, NULL, NULL,
	    NULL, err, errsz);
}

char *
chat_render_vars(const struct chat_template *t, const struct chat_msg *m,
    size_t n, int gen, const char *bos, const char *eos, const char *jinja,
    const json_t *vars, struct jinja_span **spans, size_t *nspans, char *err,
    size_t errsz)
{
	struct strbuf b;
	char *sys = NULL;
	int rc = 0;

	bos = bos ? bos : "";
	eos = eos ? eos : "";
	if (spans) {
		*spans = NULL;
		*nspans = 0;
	}
	if (t->family == CHAT_JINJA)
		return render_jinja(t, m, n, gen, bos, eos, vars, spans, nspans,
		    err, errsz);
	for (size_t i = 0; i < n; i++)
		if (m[i].content == NULL) {
			snprintf(err, errsz, "message %zu: the content is not a "
			    "string, which the built-in template %s needs",
			    i + 1, t->name);
			return NULL;
		}
	sb_init(&b);
	sb_adds(&b, "");	/* an empty rendering is "", not NULL */
	switch (t->family) {
	case CHAT_CHATML:
		render_chatml(&b, m, n, gen, NULL, 1);
		break;
	case CHAT_QWEN2:
		if (jinja == NULL || (sys = default_system(jinja)) == NULL)
			sys = xstrdup("You are a helpful assistant.");
		render_chatml(&b, m, n, gen, sys, jinja == NULL ||
		    strstr(jinja, "loop.first and messages[0]") != NULL);
		free(sys);
		break;
	case CHAT_LLAMA3:
		/* Early Llama-3 templates open the answer unconditionally. */
		if (jinja && strstr(jinja, "add_generation_prompt") == NULL)
			gen = 1;
		render_llama3(&b, m, n, gen, bos);
		break;
	case CHAT_LLAMA2:
		rc = render_llama2(&b, m, n, bos, eos, err, errsz);
		break;
	case CHAT_MISTRAL:
		rc = render_mistral(&b, m, n, bos, eos, err, errsz);
		break;
	case CHAT_ZEPHYR:
		render_zephyr(&b, m, n, gen, eos);
		break;
	case CHAT_PLAIN:
		render_plain(&b, m, n);
		break;
	}
	if (rc < 0) {
		sb_free(&b);
		return NULL;
	}
	return b.data;
}
