/*
 * tok_impl.h: the insides of struct tokenizer, shared by tokenizer.c (the
 * pipeline), tok_text.c (normalizers, pre-tokenizers, decoders) and
 * tok_bpe.c (the BPE model).  Not for use outside lib/text/tok*.c.
 */
#ifndef PREFPIPE_TOK_IMPL_H
#define PREFPIPE_TOK_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "util/util.h"

/* ------------------------------------------------------------------------ */
/* Errors while loading: a message naming the file and the JSON field. */

struct tok_err {
	const char *file;	/* "tokenizer.json" or a path */
	char *buf;
	size_t size;
	int failed;
};
void tok_fail(struct tok_err *e, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------------------ */
/* UTF-8 */

/* Length of the UTF-8 character starting at s (1 for an invalid byte). */
size_t tu8_len(const unsigned char *s, size_t n);
/* Decode one character; invalid bytes decode to themselves (< 256). */
int32_t tu8_get(const unsigned char *s, size_t n, size_t *len);
/* Append code point c. */
void tu8_put(struct strbuf *b, int32_t c);
/* Append s[0..n) with invalid sequences replaced by U+FFFD, one for each
 * maximal invalid subpart (as String::from_utf8_lossy and TextDecoder). */
void tu8_lossy(struct strbuf *b, const unsigned char *s, size_t n);
int tu8_valid(const unsigned char *s, size_t n);
/* Unicode White_Space, as Rust's char::is_whitespace. */
int tu_is_space(int32_t c);
/* A word character next to a single_word added token: alnum or '_'. */
int tok_is_word_char(int32_t c);

/* ------------------------------------------------------------------------ */
/* Pieces: the pre-tokenized string, as slices of one byte arena. */

struct piece {
	uint32_t off, len;
	uint8_t first;		/* starts at offset 0 of the original text */
};

/* A stretch of a piece being split: a match of a pattern, or not. */
struct seg {
	size_t s, e;
	int match;
};

struct pieces {
	struct strbuf buf;
	struct piece *v;
	size_t n, cap;
	struct seg *seg;	/* scratch of the splitting code */
	size_t nseg, segcap;
};
void pieces_clear(struct pieces *p);
void pieces_free(struct pieces *p);
/* Append a piece with the bytes s[0..n) (empty pieces are dropped). */
void pieces_add(struct pieces *p, const char *s, size_t n, int first);
/* Make the bytes appended to p->buf since offset start a piece. */
void pieces_commit(struct pieces *p, size_t start, int first);

/* ------------------------------------------------------------------------ */
/* A compiled regular expression or literal, as "pattern" fields hold. */

struct tok_pattern {
	char *lit;		/* {"String": ...}: a literal */
	size_t litlen;
	pcre2_code *re;		/* {"Regex": ...} */
	pcre2_match_data *md;
};
int tpat_build(struct tok_pattern *p, json_t *j, struct tok_err *e,
    const char *field);
/* Compile a regex with UTF and UCP (and JIT when available). */
pcre2_code *tok_regex(const char *src, struct tok_err *e,
    const char *field);
void tpat_free(struct tok_pattern *p);
/*
 * Find the next match at or after *pos in s; 1 with [*ms, *me), or 0.
 * A regex that fails to run (a PCRE2 match or depth limit) gives 0 too,
 * and says why in tpat_fault unless it holds a message already; encode
 * and decode clear it first and fail when it is set after.  Per thread,
 * not per tokenizer, because a pattern does not know its tokenizer and
 * a thread runs one tokenizer at a time.
 */
int tpat_next(struct tok_pattern *p, const char *s, size_t n, size_t pos,
    size_t *ms, size_t *me);
extern _Thread_local char tpat_fault[192];

/* ------------------------------------------------------------------------ */
/* Normalizers */

enum {
	NORM_SEQ, NORM_NFC, NORM_NFD, NORM_NFKC, NORM_NFKD, NORM_PREPEND,
	NORM_REPLACE, NORM_LOWER, NORM_STRIP
};

struct normalizer {
	int type;
	struct normalizer **sub;	/* NORM_SEQ */
	size_t nsub;
	char *str;			/* Prepend: prepend; Replace: content */
	struct tok_pattern pat;		/* Replace */
	int left, right;		/* Strip */
};
struct normalizer *build_normalizer(json_t *j, struct tok_err *e,
    const char *field);
void free_normalizer(struct normalizer *n);
/* Normalize b in place; tmp is scratch. */
void tok_normalize(const struct normalizer *n, struct strbuf *b,
    struct strbuf *tmp);

/* ------------------------------------------------------------------------ */
/* Pre-tokenizers */

enum {
	PT_SEQ, PT_BYTELEVEL, PT_SPLIT, PT_METASPACE, PT_DIGITS,
	PT_WHITESPACE, PT_WSSPLIT, PT_PUNCT
};
/* Split behaviours, as in SplitDelimiterBehavior. */
enum {
	SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT,
	SPLIT_CONTIGUOUS
};
enum { PREPEND_ALWAYS, PREPEND_NEVER, PREPEND_FIRST };

struct pretok {
	int type;
	struct pretok **sub;		/* PT_SEQ */
	size_t nsub;
	int add_prefix_space, use_regex;	/* ByteLevel */
	struct tok_pattern pat;		/* Split; ByteLevel and Whitespace regex */
	int behavior, invert;		/* Split */
	char repl[8];			/* Metaspace replacement, UTF-8 */
	size_t repllen;
	int prepend, split;		/* Metaspace */
	int individual;			/* Digits */
};
struct pretok *build_pretok(json_t *j, struct tok_err *e, const char *field);
void free_pretok(struct pretok *p);
/* Pre-tokenize in into out (cleared first); tmp is scratch.  in may be
 * changed too (a Sequence swaps buffers); the result is always in out. */
void tok_pretokenize(const struct pretok *p, struct pieces *in,
    struct pieces *out, struct pieces *tmp);

/* The byte-level alphabet: byte -> UTF-8 of its printable stand-in. */
extern char bytelevel_enc[256][3];
extern uint8_t bytelevel_enclen[256];
/* The byte a stand-in code point maps back to, or -1. */
int bytelevel_dec(int32_t c);

/* ------------------------------------------------------------------------ */
/* Decoders: a list of token strings in, a list out. */

enum {
	DEC_SEQ, DEC_BYTELEVEL, DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE,
	DEC_STRIP, DEC_METASPACE, DEC_BPE
};

struct decoder {
	int type;
	struct decoder **sub;
	size_t nsub;
	struct tok_pattern pat;		/* Replace */
	char *str;			/* Replace content; Strip content;
					   BPEDecoder suffix */
	size_t strlen;
	int start, stop;		/* Strip */
	char repl[8];			/* Metaspace */
	size_t repllen;
	int prepend;
};
struct decoder *build_decoder(json_t *j, struct tok_err *e,
    const char *field);
void free_decoder(struct decoder *d);

/* Token strings as slices of an arena, like pieces. */
struct toklist {
	struct strbuf buf;
	size_t *off, *len;
	uint8_t *added;		/* an added token: ByteLevel passes it as is */
	size_t n, cap;
};
void toklist_clear(struct toklist *l);
void toklist_free(struct toklist *l);
void toklist_add(struct toklist *l, const char *s, size_t n, int added);
/* Make the bytes appended to l->buf since offset start a token. */
void toklist_commit(struct toklist *l, size_t start, int added);
void tok_decode_tokens(const struct decoder *d, struct toklist *in,
    struct toklist *out);

/* ------------------------------------------------------------------------ */
/* The BPE model */

/* A string -> id hash table. */
struct tmap {
	uint32_t *slot;		/* entry index + 1, 0 empty */
	uint32_t *tag;		/* high bits of the key's hash, per slot */
	size_t nslot;
	char **key;
	uint32_t *klen;
	int32_t *val;
	size_t n, cap;
};
void tmap_init(struct tmap *m);
void tmap_free(struct tmap *m);
int32_t tmap_get(const struct tmap *m, const char *k, size_t n);
/* Insert or replace. */
void tmap_put(struct tmap *m, const char *k, size_t n, int32_t v);

struct bpe_sym {
	int32_t id;
	int32_t prev, next;	/* -1 at the ends */
	uint32_t len;		/* bytes of the word it covers; 0 when merged away */
};
struct bpe_merge {
	uint32_t rank;
	int32_t pos;
	int32_t newid;
};

struct bpe {
	struct tmap vocab;
	char **id2tok;		/* indexed by id, NULL for holes */
	uint32_t *id2len;	/* their lengths */
	size_t nid;
	/* merges: (left id, right id) -> (rank, merged id), open addressing */
	uint64_t *mkey;
	uint32_t *mrank;
	int32_t *mnew;
	size_t nmslot;
	int32_t unk;		/* -1: none */
	int fuse_unk, byte_fallback, ignore_merges;
	char *prefix, *suffix;	/* continuing_subword_prefix, end_of_word_suffix */
	int32_t byteid[256];	/* <0xNN> ids for byte fallback, -1 missing */
	/* scratch, reused for every word */
	struct bpe_sym *sym;
	size_t nsymcap;
	struct bpe_merge *heap;
	size_t nheap, heapcap;
	struct strbuf tmp;
	/* cache: pre-token -> ids */
	struct tmap cache;	/* value: offset into cacheids */
	int32_t *cacheids;
	size_t ncacheids, cacheidscap;
};
int build_bpe(struct bpe *m, json_t *j, struct tok_err *e);
void free_bpe(struct bpe *m);
/* Append the ids of one pre-token. */
void bpe_encode(struct bpe *m, const char *s, size_t n, int32_t **ids,
    size_t *nids, size_t *cap);

#endif
