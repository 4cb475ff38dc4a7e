/*
 * chat.h: chat templates, the text a chat model expects around the turns
 * of a conversation.
 *
 * Hugging Face ships them as Jinja programs in tokenizer_config.json.
 * prefpipe does not run Jinja: it has built-in renderers for the families
 * in use, which give the same text as transformers' apply_chat_template:
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

struct chat_template;

struct chat_msg {
	const char *role;	/* "system", "user", "assistant", ... */
	const char *content;
};

/* The built-in template called name, or NULL. */
const struct chat_template *chat_template_by_name(const char *name);
/* The template a tokenizer_config.json chat_template is, or NULL when it
 * is none of the known families. */
const struct chat_template *chat_template_detect(const char *jinja);
/* The names, comma-separated, for messages. */
const char *chat_template_names(void);
const char *chat_template_name(const struct chat_template *t);

/*
 * The template to use: by name when name is not NULL, else detected from
 * jinja (tokenizer_config.json's chat_template), else plain when there is
 * no chat_template at all.  NULL on error, with a message in err that
 * lists the names.  The result may be detected from jinja and point into
 * a static table; it needs no freeing.
 */
const struct chat_template *chat_template_select(const char *name,
    const char *jinja, char *err, size_t errsz);

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

#endif
