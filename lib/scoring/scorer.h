/*
 * scorer.h: the parts of score(1) that are not the tool itself: the sides
 * of a record a scorer reads and writes, the --exact verifier, the --cmd
 * child, and the model scorers (--logprob, --rm, --flr).
 */
#ifndef PREFPIPE_SCORER_H
#define PREFPIPE_SCORER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "records/record.h"

/* ------------------------------------------------------------------------ */
/* Sides */

/*
 * A side is what one score is about: a plain record (prompt and response
 * at the top), or the chosen or rejected map of a pair record.  Fields of
 * the prompt (prompt, prompt_tokens, the answer) may sit at the top of a
 * pair and are inherited by both sides; fields of the response must be in
 * the side.  Messages name fields by their path ("chosen.response").
 */
struct side {
	struct rec *top;
	const char *name;	/* NULL, "chosen", "rejected" or "kl" */
	struct rec sub;		/* the side's map, when name is set */
	int dirty;		/* sub was changed: write it back */
};

/*
 * The sides of r: one for a plain record, two for a pair (a record with a
 * chosen map; then rejected must be a map too).  With kl set, a plain
 * record with a kl map (KTO's mismatched response, pair --kto) has that
 * as its second side, which inherits the record's prompt.  Returns their
 * number.
 */
int sides_open(struct rec *r, struct side s[2], int kl);
/* Write changed sides back into their record and free them. */
void sides_close(struct side *s, int n);

/* The value of key in the side (and, with inherit, at the top), or NULL. */
const msgpack_object *side_get(const struct side *s, const char *key,
    int inherit);
/* key as a string; missing or another type ends the program. */
const char *side_need_str(const struct side *s, const char *key,
    int inherit, size_t *len);
/* key as an array of token ids (malloc'd); returns the count. */
size_t side_need_tokens(const struct side *s, const char *key, int inherit,
    int32_t **out);
void side_die(const struct side *s, const char *key, int inherit,
    const char *fmt, ...) __attribute__((noreturn, format(printf, 4, 5)));
void side_set_num(struct side *s, const char *key, double v);
void side_set_float_array(struct side *s, const char *key, const float *v,
    size_t n);

/* ------------------------------------------------------------------------ */
/* --exact */

struct exact;
/* A verifier; pattern (PCRE2, may be NULL) is --extract. */
struct exact *exact_new(const char *pattern);
void exact_free(struct exact *e);
/*
 * 1 when the response (or its last match of the pattern, group 1 if the
 * pattern has groups) equals the answer, both trimmed of surrounding
 * whitespace; else 0.  A response without a match scores 0.  -1 when
 * the pattern could not be matched (a PCRE2 match or depth limit):
 * exact_error says why, and the caller names the record.
 */
int exact_match(struct exact *e, const char *resp, size_t rlen,
    const char *answer, size_t alen);
/*
 * What the pattern extracts from text: *out points into text; returns 0
 * when there is no match, -1 as exact_match does.
 */
int exact_extract(struct exact *e, const char *text, size_t len,
    const char **out, size_t *outlen);
const char *exact_error(const struct exact *e);

/* ------------------------------------------------------------------------ */
/* --cmd */

struct cmd_child;
/* What an answered record goes to: r with the command's number v. */
typedef void cmd_done_fn(struct rec *r, double v, void *arg);
/*
 * Start sh -c command with pipes on its stdin and stdout.  Up to window
 * records are out without an answer (1: lockstep); timeout > 0 makes a
 * command that says nothing for that many seconds, while an answer is
 * due, an error.  Answered records go to done, in order.
 */
struct cmd_child *cmd_start(const char *command, int window, double timeout,
    cmd_done_fn *done, void *arg);
/* Send r as a JSON line; r is the child's now (freed after done). */
void cmd_send(struct cmd_child *c, struct rec *r);
/* End the command's input and take the answers still due. */
void cmd_drain(struct cmd_child *c);
/*
 * cmd_drain, then wait for the command: output after the last answer, or
 * an exit status other than 0, ends the program.
 */
void cmd_finish(struct cmd_child *c);

/* ------------------------------------------------------------------------ */
/* Model scorers: --logprob, --rm, --flr, --value */

/*
 * --value: a critic (a model with a one-label score head, as --rm reads)
 * gives each response token the value at the position that predicts it,
 * as logprobs are indexed: an array in the field --as names.
 */
enum ms_kind { MS_LOGPROB, MS_RM, MS_FLR, MS_VALUE };

struct ms_opts {
	const char *as;		/* field (rm, flr) or prefix (logprob) */
	const char *chat;	/* --chat-template NAME, or NULL */
	const json_t *targs;	/* --template-arg, or NULL */
	const char *positive;	/* --positive FILE, or NULL: built in */
	const char *negative;
	long batch_tokens;	/* tokens per forward pass */
	int retokenize;		/* logprob: ignore token fields */
	const char *ratio_to;	/* logprob: also <as>_logratio, the sum
				 * less the side's <ratio_to>_logprob */
	int details;		/* flr: flr_positive, flr_negative */
	int nocache;		/* flr: forward passes, no shared prefix */
	const char *base;	/* --base: a LoRA adapter's base, or NULL */
	const char *weights;	/* --weights TYPE (model_from_ckpt_opts), NULL: auto */
	const char *compute;	/* --compute TYPE (model_set_compute), NULL: f32 */
};

/* What a scorer did, for benchmarks. */
struct ms_stats {
	uint64_t records;
	uint64_t tokens;	/* positions run through the model */
	uint64_t seq_tokens;	/* tokens of the sequences scored */
	double model_s;		/* seconds inside the model */
	double total_s;		/* seconds from first add to last flush */
};

struct mscorer;
struct mscorer *ms_new(enum ms_kind kind, const char *ckpt,
    const struct ms_opts *o);
/*
 * Score r (the scorer takes it over) and write it to w in input order,
 * once its batch is full or at ms_flush.
 */
void ms_add(struct mscorer *s, struct rec *r, struct rec_writer *w);
void ms_flush(struct mscorer *s, struct rec_writer *w);
const struct ms_stats *ms_stats(const struct mscorer *s);
struct model *ms_model(struct mscorer *s);
void ms_free(struct mscorer *s);

/* The built-in follow-ups of --flr. */
extern const char *const flr_default_positive[];
extern const char *const flr_default_negative[];

/*
 * Parse a whole line as a finite number (surrounding blanks allowed).
 * Returns 0 on success.
 */
int parse_number_line(const char *s, size_t len, double *v);

#endif
