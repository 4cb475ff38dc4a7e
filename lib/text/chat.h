/*
 * chat.h: chat templates, the text a chat model expects around the turns
 * of a conversation.
 *
 * Hugging Face ships them as Jinja programs (tokenizer_config.json's
 * chat_template, or chat_template.jinja); chat_template_jinja runs such a
 * program with lib/text/jinja, as transformers' apply_chat_template does.
 * For checkpoints without one, built-in renderers give the text the
 * templates of these families give (--chat-template NAME):
 *
 *   chatml    <|im_start|>ROLE\nCONTENT<|im_end|>\n      (SmolLM, ...)
 *   qwen2     chatml, with a default system message when the first message
 *             is not a system one (the text is taken from the template)
 *   llama3    <|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT<|eot_id|>
 *             after BOS; contents trimmed
 *   llama2    BOS[INST] <<SYS>>\nSYSTEM\n<</SYS>>\n\nUSER [/INST] ANSWER EOS
 *   mistral   BOS[INST] USER [/INST]ANSWEREOS           (no system role)
 *   zephyr    <|ROLE|>\nCONTENT EOS\n
 *   plain     the contents, separated by blank lines (base models)
 *
 * add_generation_prompt appends the opening of an assistant turn where the
 * template has one (chatml, qwen2, llama3, zephyr), as transformers does.
 */
#ifndef PREFPIPE_CHAT_H
#define PREFPIPE_CHAT_H

#include <stddef.h>

#include <jansson.h>

#include "text/jinja.h"

struct chat_template;

struct chat_msg {
	const char *role;	/* "system", "user", "assistant", ... */
	const char *content;
	/* The whole message (tool_calls, reasoning_content, content as a
	 * list of parts...), for Jinja templates; NULL: {role, content}. */
	const json_t *json;
};

/* The built-in template called name, or NULL. */
const struct chat_template *chat_template_by_name(const char *name);
/* The names, comma-separated, for messages. */
const char *chat_template_names(void);
/* The built-in's name; "jinja" for a template from its source. */
const char *chat_template_name(const struct chat_template *t);

/*
 * A template from its Jinja source: src, and tools_src (NULL for none) for
 * conversations with tools, as transformers picks the named template
 * "tool_use" then.  where names the source in messages (a file, a field).
 * NULL on a syntax error, with "WHERE: line L, column C: ..." in err.
 */
struct chat_template *chat_template_jinja(const char *src,
    const char *tools_src, const char *where, char *err, size_t errsz);
/* Frees a template from chat_template_jinja; nothing for a built-in. */
void chat_template_free(const struct chat_template *t);
/* Whether t is a Jinja template with {% generation %} blocks. */
int chat_template_has_generation(const struct chat_template *t);

/*
 * Render n messages into a malloc'd string.  bos and eos are the
 * tokenizer's BOS and EOS text (tokenizer_bos_token); jinja, when not
 * NULL, is the template source the renderer was detected from (qwen2
 * reads its default system message from it).  NULL on error (a role the
 * template refuses, roles that do not alternate), with a message in err.
 */
char *chat_render(const struct chat_template *t, const struct chat_msg *m,
    size_t n, int add_generation_prompt, const char *bos, const char *eos,
    const char *jinja, char *err, size_t errsz);

/*
 * The same, with vars: the template's keyword arguments (a JSON object:
 * tools, enable_thinking, ...; NULL for none), which a Jinja template sees
 * as variables; the built-ins ignore them.  When gen is not NULL, *gen
 * (malloc'd, *ngen of them) are the spans a Jinja template's generation
 * blocks wrote.
 */
char *chat_render_vars(const struct chat_template *t,
    const struct chat_msg *m, size_t n, int add_generation_prompt,
    const char *bos, const char *eos, const char *jinja, const json_t *vars,
    struct jinja_span **gen, size_t *ngen, char *err, size_t errsz);

#endif
