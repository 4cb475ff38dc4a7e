/*
 * tokenizer.h: Hugging Face tokenizer.json, encoded and decoded exactly as
 * the tokenizers library does it.
 *
 * A tokenizer is the pipeline tokenizer.json describes:
 *
 *   text -> added tokens split off (longest match first)
 *        -> normalizer (NFC, NFKC, Prepend, Replace, Lowercase, Strip, ...)
 *        -> pre-tokenizer (ByteLevel, Split, Metaspace, Digits, ...)
 *        -> model (BPE: merges by rank, byte fallback, unk)
 *        -> post-processor (TemplateProcessing: BOS/EOS)  -> ids
 *
 *   ids -> tokens -> decoder (ByteLevel, Replace, ByteFallback, Fuse,
 *                     Strip, Metaspace, Sequence) -> text
 *
 * Only the BPE model is supported; WordPiece, Unigram and WordLevel
 * tokenizers are refused when loading, with a message naming the type.
 *
 * A tokenizer keeps scratch buffers and a cache of pre-token results, so
 * one tokenizer must not be used by two threads at once; load one per
 * thread (loading is cheap next to a model).
 *
 * The semantics are those of the Rust tokenizers library.  The tests
 * compare with tokenizers.js (npm @huggingface/tokenizers), which agrees
 * on real tokenizers but differs in corners, where prefpipe follows Rust:
 * Digits splits on every Unicode number (Rust's char::is_numeric), not
 * ASCII only; Prepend leaves an empty string empty; Metaspace honours
 * split; ByteFallback turns an invalid byte run into one U+FFFD per byte;
 * the Metaspace decoder drops every replacement character of the first
 * token; Lowercase maps character by character (no final sigma);
 * single_word and the Split behaviours MergedWithPrevious, MergedWithNext
 * and Contiguous are honoured.  Regexes run in PCRE2 (UTF, UCP), whose \s
 * is Unicode White_Space as Oniguruma's (U+0085 yes, U+FEFF no; the
 * other way round in JavaScript).
 *
 * Decoding is the tokenizer's decode: transformers' optional clean-up of
 * spaces before punctuation (clean_up_tokenization_spaces) is not done.
 */
#ifndef PREFPIPE_TOKENIZER_H
#define PREFPIPE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

struct tokenizer;

/*
 * Load a tokenizer from the text of a tokenizer.json.  name is used in
 * error messages (a file name).  Returns NULL on error, with a message in
 * err naming the JSON field, e.g.
 *     tokenizer.json: model.type: unsupported model "Unigram" (only BPE)
 */
struct tokenizer *tokenizer_from_json(const char *json, size_t len,
    const char *name, char *err, size_t errsz);
/* The same, reading the file at path. */
struct tokenizer *tokenizer_from_file(const char *path, char *err,
    size_t errsz);
void tokenizer_free(struct tokenizer *t);

/*
 * Read tokenizer_config.json (optional): bos_token, eos_token, pad_token
 * (strings or {"content": ...}) and chat_template.  Returns 0, or -1 with
 * a message in err.  Without it the special ids are guessed from the
 * added tokens (<s>, <|bos|>, <|begin_of_text|>, ...).
 */
int tokenizer_load_config(struct tokenizer *t, const char *json, size_t len,
    const char *name, char *err, size_t errsz);

/*
 * Encode len bytes of text.  With add_special, the post-processor adds its
 * special tokens (BOS and so on), as encode(text, add_special_tokens=True)
 * does.  Special-token text in the input ("<|eos|>") always becomes the
 * special token's id, as in Hugging Face.  *ids is malloc'd (the caller
 * frees it); returns the number of ids.
 */
size_t tokenizer_encode(struct tokenizer *t, const char *text, size_t len,
    int add_special, int32_t **ids);
/*
 * The same, where a caller knows what the text is (a record's field) and
 * names it: a regular expression of the tokenizer that fails to run on
 * the text (a PCRE2 match or depth limit) returns (size_t)-1 with a
 * message in err, "tokenizer: regular expression failed (...)", and
 * *ids NULL.  tokenizer_encode ends the program with that message.
 */
size_t tokenizer_try_encode(struct tokenizer *t, const char *text,
    size_t len, int add_special, int32_t **ids, char *err, size_t errsz);

/*
 * Decode n ids into a malloc'd NUL-terminated string.  With skip_special,
 * special added tokens are left out.  Unknown ids are skipped, as the
 * library does.  *outlen (may be NULL) gets the length.
 */
char *tokenizer_decode(struct tokenizer *t, const int32_t *ids, size_t n,
    int skip_special, size_t *outlen);

/* The id of token text tok (added tokens first), or -1. */
int32_t tokenizer_token_to_id(const struct tokenizer *t, const char *tok,
    size_t len);
/* The text of token id, or NULL. */
const char *tokenizer_id_to_token(const struct tokenizer *t, int32_t id);
/* One past the largest id, added tokens included. */
size_t tokenizer_vocab_size(const struct tokenizer *t);
/* Whether id is a special added token. */
int tokenizer_is_special(const struct tokenizer *t, int32_t id);

/* Special ids, -1 when the tokenizer has none. */
int32_t tokenizer_bos_id(const struct tokenizer *t);
int32_t tokenizer_eos_id(const struct tokenizer *t);
int32_t tokenizer_pad_id(const struct tokenizer *t);
/* Their text ("" when absent), as chat templates need it. */
const char *tokenizer_bos_token(const struct tokenizer *t);
const char *tokenizer_eos_token(const struct tokenizer *t);
/* tokenizer_config.json's chat_template, or NULL. */
const char *tokenizer_chat_template(const struct tokenizer *t);
/* The named template "tool_use" of the list form, or NULL. */
const char *tokenizer_chat_template_tools(const struct tokenizer *t);

/*
 * From a checkpoint: its tokenizer.json and, if present,
 * tokenizer_config.json.  Declared here, defined where lib/checkpoints/checkpoint.h
 * exists (see tokenizer_ckpt.c).
 */
struct ckpt;
struct tokenizer *tokenizer_from_ckpt(struct ckpt *c, char *err,
    size_t errsz);

#endif
