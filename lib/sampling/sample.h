/*
 * sample.h: choosing the next token from a row of logits.
 *
 * The filters follow Hugging Face transformers' logits warpers, applied in
 * its order: temperature, then top-k, top-p and min-p, each on what the
 * previous one left, renormalised.  Every filter keeps a prefix of the
 * tokens sorted by decreasing probability, with ties ordered by token id,
 * so the candidate set is exact and the same on every machine:
 *
 *   top-k  the k most probable tokens (exactly k; ties by lower id);
 *   top-p  the shortest prefix whose probability sums to at least p;
 *   min-p  the tokens whose probability is at least min_p times the
 *          largest one.
 *
 * Temperature 0 means greedy: the most probable token, the lowest id among
 * equals.  The log-probability a sampled token is reported with is always
 * the model's own, at temperature 1 and with nothing filtered out, because
 * importance ratios and KL terms need exactly that.
 */
#ifndef PREFPIPE_SAMPLE_H
#define PREFPIPE_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

struct sample_opts {
	double temperature;	/* 0: greedy */
	double top_p;		/* 1: off */
	int top_k;		/* 0: off */
	double min_p;		/* 0: off */
};

/* The defaults: temperature 1, nothing filtered. */
#define SAMPLE_OPTS_DEFAULT { 1.0, 1.0, 0, 0.0 }

/* Scratch space for one vocabulary; one per thread. */
struct sample_ws {
	int V;
	float *p;		/* (V) probabilities of the candidates */
	int *idx;		/* (V) their token ids */
	float *wt;		/* (V) the candidates' weights */
	uint64_t *keys;		/* (V) the candidates' order keys */
	unsigned char *mark;	/* (V) */
};

void sample_ws_init(struct sample_ws *w, int V);
void sample_ws_free(struct sample_ws *w);

/* The index of the largest logit; the lowest one among equals. */
int sample_argmax(const float *logits, int V);

/* log sum exp of the row, computed stably in double. */
double sample_logsumexp(const float *logits, int V);

/* log p(tok) at temperature 1 with no filtering. */
float sample_logprob(const float *logits, int V, int tok);

/*
 * The candidate set under o: w->idx[0..n) in increasing id order and
 * their renormalised probabilities w->p[0..n), n returned.  Greedy gives
 * the single argmax with probability 1.
 */
int sample_candidates(const struct sample_opts *o, const float *logits,
    int V, struct sample_ws *w);

/*
 * Draw a token under o with u uniform in [0, 1): the first candidate, in
 * sample_candidates' order, at which the cumulative probability exceeds u.
 * One uniform per token, so a stream's draws do not depend on the options.
 */
int sample_token(const struct sample_opts *o, const float *logits, int V,
    struct sample_ws *w, double u);

/*
 * sample_token and sample_logprob of the token drawn; with no filter, in
 * one pass over the vocabulary (two at a temperature other than 1), the
 * same token for the same u up to rounding in the sum.
 */
int sample_next(const struct sample_opts *o, const float *logits, int V,
    struct sample_ws *w, double u, float *logprob);

/*
 * Decoding: one new token for each of B sequences at once on their KV
 * caches (lib/model/model.h), logits (B, vocab) out.  The same as model_extend
 * with every ntok[i] = 1, but reading the weights in place instead of
 * through sgemm, and computing every sequence's row in the same order
 * whatever B, its place in the batch and the number of threads, so a
 * sample does not depend on which others share its batch (sample_step.c).
 */
struct model;
struct kv_cache;
struct sample_step;
struct sample_step *sample_step_new(struct model *m, int maxB);
void sample_step_free(struct sample_step *s);
void sample_step(struct sample_step *s, struct kv_cache **kv, int B,
    const int *tokens, float *logits);

#endif
