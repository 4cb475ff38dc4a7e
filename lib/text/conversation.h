/*
 * conversation.h: how a checkpoint's records become token sequences, the
 * one path rollout, score and train-step share.
 *
 *   messages (an array of {role, content, ...} maps)
 *       -> the chat template: the checkpoint's own (chat_template.jinja,
 *          else tokenizer_config.json's chat_template, run by
 *          lib/text/jinja with the template arguments, --template-arg),
 *          or a built-in named by --chat-template, or plain when the
 *          checkpoint has none
 *       -> text, encoded without added special tokens: the template
 *          writes them, as apply_chat_template(tokenize=True) does
 *
 * and one end-of-sequence policy:
 *
 *   stop ids    where generation ends: eos_token_id of config.json and of
 *               generation_config.json, the tokenizer's eos_token, and the
 *               chat template's end-of-turn token
 *   turn end    the token a response encoded from text ends with, so that
 *               training teaches the stop that rollout obeys: for a chat
 *               response (the prompt is messages) the template's
 *               end-of-turn token (<|eot_id|> for Llama 3, <|im_end|> for
 *               ChatML), for plain text the tokenizer's eos_token (else
 *               the first eos_token_id of the configs)
 *
 * The template's end-of-turn token is found by rendering a probe
 * conversation and taking the first special token the template writes
 * after the assistant's content; a template that writes none (plain, or a
 * tokenizer without the template's special tokens) has no end-of-turn
 * token, and a chat response then ends like plain text.
 *
 * Errors come back as messages in err for the caller to place (a record,
 * a field, a side of a pair); nothing here ends the program.
 */
#ifndef PREFPIPE_CONVERSATION_H
#define PREFPIPE_CONVERSATION_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <msgpack.h>

#include "text/chat.h"

struct ckpt;
struct tokenizer;
struct conv;

#define CONV_MAX_STOP 32

/*
 * The conversation rules of checkpoint c for a model of vocab tokens:
 * its tokenizer (if it has one), its chat template (the built-in
 * template_name, else the checkpoint's own, else plain), and its
 * end-of-sequence ids.  NULL only when template_name names no template,
 * with a message in err (a usage error).  A missing tokenizer or a
 * template with a syntax error is kept, to be reported on use (the error
 * names the file, line and column).
 */
struct conv *conv_open(struct ckpt *c, int vocab, const char *template_name,
    char *err, size_t errsz);
/* The same, with targs: the template's keyword arguments (a JSON object,
 * copied; NULL for none), as --template-arg gives them. */
struct conv *conv_open_args(struct ckpt *c, int vocab,
    const char *template_name, const json_t *targs, char *err, size_t errsz);

/*
 * --template-arg KEY=VALUE into the object args: VALUE as JSON when it
 * parses (true, 3, ["a"], {"k": 1}, "s"), else as a string.  Returns 0, or
 * -1 with a message in err when there is no KEY=.
 */
int conv_template_arg(json_t *args, const char *kv, char *err, size_t errsz);
void conv_free(struct conv *cv);

/* The tokenizer, or NULL with conv_tokenizer_error saying why. */
struct tokenizer *conv_tokenizer(const struct conv *cv);
const char *conv_tokenizer_error(const struct conv *cv);
/* The chat template, or NULL with conv_template_error saying why. */
const struct chat_template *conv_template(const struct conv *cv);
const char *conv_template_error(const struct conv *cv);

/* ------------------------------------------------------------------------ */
/* Messages */

struct conv_msgs {
	struct chat_msg *m;	/* (n + 1): room for one more turn */
	size_t n;
};

/*
 * The messages of a record field: o must be an array of maps, each with a
 * string role and a content: a string, or nil or an array (a tool call, a
 * list of parts: then m.content is NULL, for Jinja templates only).  Each
 * m.json is the whole message.  Returns 0, or -1 with a message in err
 * ("element 2: \"content\": missing").
 */
int conv_messages(const msgpack_object *o, struct conv_msgs *ms, char *err,
    size_t errsz);
/* Append a turn (the strings are copied). */
void conv_messages_add(struct conv_msgs *ms, const char *role,
    const char *content, size_t len);
void conv_messages_free(struct conv_msgs *ms);

/*
 * The first n messages through the template into a malloc'd string, with
 * the opening of an assistant turn when gen.  NULL on error (no template,
 * a role the template refuses), with a message in err.
 */
char *conv_render(const struct conv *cv, const struct chat_msg *m, size_t n,
    int gen, char *err, size_t errsz);

/*
 * A prompt: the n messages rendered with the generation prompt, encoded
 * without added special tokens.  *ids is malloc'd; returns the count, or
 * (size_t)-1 with a message in err.
 */
size_t conv_prompt_tokens(const struct conv *cv, const struct chat_msg *m,
    size_t n, int32_t **ids, char *err, size_t errsz);

/*
 * A whole conversation with its assistant turns marked: *ids (count
 * returned) and *mask (1: a token of an assistant turn, as the template
 * renders it, its end-of-turn included), as transformers'
 * return_assistant_tokens_mask gives it:
 *
 *   a template with {% generation %} blocks: what those blocks write
 *   any other: the text of turn i runs from the end of the rendering of
 *       messages 0..i-1 with the generation prompt to the end of the
 *       rendering of 0..i (the template must render each prefix as a
 *       prefix of the whole)
 *
 * The pieces are encoded one by one, so the boundaries fall exactly
 * there.  (size_t)-1 on error.
 */
size_t conv_turn_tokens(const struct conv *cv, const struct chat_msg *m,
    size_t n, int32_t **ids, char **mask, char *err, size_t errsz);

/*
 * A reply to a conversation, as TRL's DPO and reward trainers build it:
 * the n messages and an assistant turn of text (len bytes) through the
 * template, the reply's tokens marked as conv_turn_tokens marks them (its
 * last assistant turn).  *ids (count returned) are all the tokens; the
 * first *np are the prompt's, the rest the reply and what the template
 * writes after it (its end of turn).  (size_t)-1 on error.
 */
size_t conv_reply_tokens(const struct conv *cv, const struct chat_msg *m,
    size_t n, const char *text, size_t len, int32_t **ids, size_t *np,
    char *err, size_t errsz);

/* ------------------------------------------------------------------------ */
/* The end of a sequence */

/* Whether generation stops at id; the stop ids themselves. */
int conv_is_stop(const struct conv *cv, int32_t id);
const int32_t *conv_stop_ids(const struct conv *cv, int *n);

/*
 * The token a response encoded from text ends with: chat (the prompt is a
 * conversation through a template) gives the template's end-of-turn
 * token, else the end of text; -1 when the checkpoint names none.
 */
int32_t conv_response_end(const struct conv *cv, int chat);
/* The template's end-of-turn token, -1 when it has none. */
int32_t conv_end_of_turn(const struct conv *cv);

/*
 * Encode a response text (no added special tokens) and end it with
 * conv_response_end(cv, chat) unless it ends so already.  *ids is
 * malloc'd; returns the count.  The tokenizer must exist.
 */
size_t conv_response_tokens(const struct conv *cv, const char *text,
    size_t len, int chat, int32_t **ids);
/* The same, with a tokenizer failure (tokenizer_try_encode) returned as
 * (size_t)-1 and a message in err, for the caller to name the record. */
size_t conv_try_response_tokens(const struct conv *cv, const char *text,
    size_t len, int chat, int32_t **ids, char *err, size_t errsz);

/* ------------------------------------------------------------------------ */
/* Does a sequence fit a model? */

/*
 * 0 when every id lies in [0, vocab); else -1 with
 * "token I is ID, outside the vocabulary [0, VOCAB)" in err.
 */
int conv_check_vocab(int vocab, const int32_t *ids, size_t n, char *err,
    size_t errsz);
/* 0 when n <= ctx; else -1 with "N tokens, more than the CTX positions". */
int conv_check_length(int ctx, size_t n, char *err, size_t errsz);

/*
 * 0 when tokenizers a and b give every id the same token text (so
 * log-probabilities of one's ids mean the same in the other); else -1
 * with the first difference in err.
 */
int conv_same_tokenizer(const struct tokenizer *a, const struct tokenizer *b,
    char *err, size_t errsz);

#endif
