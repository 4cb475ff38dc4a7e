/*
 * rollout: sample responses to prompts from a checkpoint.
 *
 * Reads prompt records, writes one record per sample: the input's fields,
 * plus sample, response, prompt_tokens, response_tokens, logprobs, finish
 * and policy (see prefpipe-records(5)).
 *
 * How the work is laid out, and why:
 *
 *   - Each prompt is run through the model once (prefill, model_extend);
 *     its samples fork its KV cache (kv_cache_fork): they read the
 *     prompt's keys and values in place, shared, and keep only their own.
 *   - A decoding step feeds one token to each of up to --batch sequences,
 *     from any number of prompts, in a single sample_step call, so the
 *     weights are read once per step for all of them and every product
 *     is matrix-matrix.
 *   - Each sample draws from its own random stream, named by (seed, id,
 *     sample), and uses one uniform per token; and sample_step computes a
 *     sequence's logits the same way whoever shares its batch.  What a
 *     sample becomes thus depends on nothing else: not on --batch, the
 *     threads, the order of the prompts or how they were split.
 *   - Records leave in input order (samples, then the greedy baseline),
 *     whatever order the sequences finish in.
 */
#include "config.h"

#include <err.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <jansson.h>

#include "text/chat.h"
#include "text/conversation.h"
#include "checkpoints/checkpoint.h"
#include "model/model.h"
#include "model/model_lora.h"
#include "records/rec_part.h"
#include "records/record.h"
#include "util/dist.h"
#include "util/rng.h"
#include "sampling/sample.h"
#include "util/strmap.h"
#include "text/tokenizer.h"
#include "util/progress.h"
#include "util/util.h"

#define SYNOPSIS \
	"rollout -m CKPT [-n N] [--temperature T] [--top-p P] [--top-k K]\n" \
	"               [--min-p P] [--max-tokens M] [--stop STR]... " \
	"[--seed S]\n" \
	"               [--greedy-baseline] [--chat-template NAME] " \
	"[--batch B]\n" \
	"               [--template-arg KEY=VALUE]...\n" \
	"               [--shard I/K] [--truncate left] [--base CKPT]\n" \
	"               [--weights TYPE] [--compute f32|bf16] [--stats] [-qJz]\n" \
	"               [FILE ...]"

/* Options, as parsed. */
static struct sample_opts sopts = SAMPLE_OPTS_DEFAULT;
static int nsamples = 1, max_tokens = 256, batch = 64, baseline, truncate_left;
static int quiet;
static struct model_load_opts lopts = { MODEL_WEIGHTS_AUTO,
    MODEL_COMPUTE_F32 };
static uint64_t seed;
static uint64_t shard_i, shard_k = 1;
static char **stops;
static int nstops;
static const char *template_name;
static json_t *template_args;	/* --template-arg, or NULL */
static const char *base_path;	/* --base: the adapter's base, or NULL */

/* The model and what comes with it. */
static struct model *model;
static struct sample_step *stepper;
static struct tokenizer *tok;
static struct conv *conv;	/* messages -> tokens, the stop ids */
static int V, ctx;
static char policy[17];
static const char *model_path;	/* -m, for messages */

/* One sample being generated. */
struct seq {
	struct job *job;
	int sample;		/* 0..n-1, or -1 for the greedy baseline */
	struct rng rng;
	struct kv_cache *kv;
	int32_t *toks;		/* (limit) the response so far */
	float *lps;		/* (limit) their log-probabilities */
	int n, limit;		/* tokens so far; most it may have */
	const char *finish;	/* NULL while running */
	char *text;		/* the response, once finished */
	size_t textlen;
};

/* One prompt and its samples. */
struct job {
	struct rec rec;		/* the input record, id filled in */
	uint64_t idhash;
	int32_t *prompt;
	int plen;
	struct kv_cache *kv;	/* the prefilled prompt, until all finished */
	float *logits;		/* (V) after the prompt */
	struct seq *seqs;
	int nseq, started, finished;
	uint64_t ordinal;	/* its place in the input, from 1 */
	struct job *next;	/* in input order */
};

/* ------------------------------------------------------------------------ */
/* The checkpoint */

/*
 * The policy's fingerprint: model_params_hash, FNV-1a over the fp32
 * parameters the model runs with, so a checkpoint converted between
 * directory and archive keeps it.
 */
static void
fingerprint(const struct model *m)
{
	snprintf(policy, sizeof policy, "%016" PRIx64, model_params_hash(m));
}

static void
load(const char *path)
{
	struct model_src src;
	struct ckpt *c;
	char e[512];

	model_path = path;
	/* a checkpoint, or a LoRA adapter on its base (model_lora.h) */
	if (base_path != NULL && !lora_path_is_adapter(path))
		pp_usage("--base: %s is no adapter directory", path);
	model = model_load_as(path, base_path, &src, &lopts);
	c = src.ckpt;
	if (!model->cfg.lm_head)
		errx(EXIT_DATA, "%s: a reward model has no language-model "
		    "head to sample from", path);
	V = model->cfg.vocab_size;
	ctx = model->cfg.max_seq_len;
	/* The template is chosen now, so a bad --chat-template fails
	 * before any work; a template of the checkpoint's that is none of
	 * the known ones only matters once a record has messages. */
	conv = conv_open_args(c, V, template_name, template_args, e, sizeof e);
	if (conv == NULL)
		pp_usage("--chat-template: %s", e);
	if ((tok = conv_tokenizer(conv)) == NULL)
		errx(EXIT_DATA, "%s: %s", path, conv_tokenizer_error(conv));
	fingerprint(model);
	model_src_free(&src);
}

/* ------------------------------------------------------------------------ */
/* Prompts */

/*
 * The bytes that name a record for hashing: a string id as it is, an
 * integer one as its decimal text, so "7" and 7 are the same prompt.
 */
static uint64_t
id_hash(const struct rec *r, const msgpack_object *id)
{
	char num[32];
	switch (id->type) {
	case MSGPACK_OBJECT_STR:
		return hash_bytes(id->via.str.ptr, id->via.str.size);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		snprintf(num, sizeof num, "%" PRIu64, id->via.u64);
		return hash_bytes(num, strlen(num));
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		snprintf(num, sizeof num, "%" PRId64, id->via.i64);
		return hash_bytes(num, strlen(num));
	default:
		rec_die(r, "id", "expected string or integer, got %s",
		    rec_type_name(id));
	}
}

/* The prompt's tokens: prompt as is with the tokenizer's specials, or
 * messages through the chat template with the generation prompt. */
static int32_t *
prompt_tokens(const struct rec *r, int *plen)
{
	const msgpack_object *p = rec_get(r, "prompt");
	int32_t *ids = NULL;
	size_t n;

	if (p != NULL) {
		size_t len;
		const char *s = rec_need_str(r, "prompt", &len);
		char e[256];
		n = tokenizer_try_encode(tok, s, len, 1, &ids, e, sizeof e);
		if (n == (size_t)-1)
			rec_die(r, "prompt", "%s", e);
	} else if (rec_get(r, "messages") != NULL) {
		struct conv_msgs ms;
		char e[512];
		if (conv_messages(rec_get(r, "messages"), &ms, e, sizeof e) != 0)
			rec_die(r, "messages", "%s", e);
		if (conv_template(conv) == NULL)
			rec_die(r, "messages", "%s (choose one with "
			    "--chat-template)", conv_template_error(conv));
		n = conv_prompt_tokens(conv, ms.m, ms.n, &ids, e, sizeof e);
		if (n == (size_t)-1)
			rec_die(r, "messages", "%s", e);
		conv_messages_free(&ms);
	} else
		rec_die(r, "prompt", "missing (a prompt record needs "
		    "\"prompt\" or \"messages\")");
	if (n == 0)
		rec_die(r, p ? "prompt" : "messages", "no tokens to start "
		    "from");
	/* One position must stay free for the response. */
	if (n >= (size_t)ctx) {
		if (!truncate_left)
			rec_die(r, p ? "prompt" : "messages", "%zu tokens, "
			    "the context holds %d with at least one for the "
			    "response (--truncate left keeps the end)", n,
			    ctx);
		memmove(ids, ids + (n - (ctx - 1)), (ctx - 1) * sizeof(*ids));
		n = ctx - 1;
	}
	*plen = (int)n;
	return ids;
}

/* --stats: where the time went.  Prefill is each prompt's pass through
 * the model (next_job); decoding, the steps after it, each a token for
 * every running sample, chosen. */
static int stats;
static double t_start, t_run, t_prefill, t_decode;
static uint64_t n_prompt_toks, n_decoded;

/* The next prompt of this shard, prefilled, or NULL at the end. */
static struct job *
next_job(struct rec_reader *rd, uint64_t *ordinal)
{
	struct rec r;

	while (rec_read(rd, &r)) {
		const msgpack_object *id;
		char num[32];
		uint64_t h;

		++*ordinal;
		if ((id = rec_get(&r, "id")) == NULL) {
			snprintf(num, sizeof num, "%" PRIu64, *ordinal);
			rec_set_str(&r, "id", num);
			id = rec_get(&r, "id");
		}
		h = id_hash(&r, id);
		if (h % shard_k != shard_i) {
			rec_free(&r);
			continue;
		}
		struct job *j = xcalloc(1, sizeof(*j));
		j->rec = r;
		j->idhash = h;
		j->ordinal = *ordinal;
		j->prompt = prompt_tokens(&j->rec, &j->plen);
		/* A tokenizer larger than the model's vocabulary. */
		for (int i = 0; i < j->plen; i++)
			if (j->prompt[i] < 0 || j->prompt[i] >= V)
				rec_die(&j->rec, rec_get(&j->rec, "prompt") ?
				    "prompt" : "messages", "token %d is %d, "
				    "outside the vocabulary [0, %d) of %s", i,
				    (int)j->prompt[i], V, model_path);
		j->nseq = nsamples + baseline;
		j->seqs = xcalloc(j->nseq, sizeof(*j->seqs));

		/* Prefill: one pass over the prompt, kept for the forks. */
		j->kv = kv_cache_new(&model->cfg, j->plen);
		j->logits = xmalloc((size_t)V * sizeof(float));
		double t0 = pp_now();
		model_extend(model, &j->kv, 1, &j->plen, j->prompt,
		    j->logits);
		t_prefill += pp_now() - t0;
		n_prompt_toks += (uint64_t)j->plen;
		return j;
	}
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Generation */

static struct sample_ws *ws;	/* one per thread */
static int nws;

/* The earliest stop string in text, or -1. */
static long
find_stop(const char *text, size_t len)
{
	long best = -1;
	for (int i = 0; i < nstops; i++) {
		const char *p = memmem(text, len, stops[i], strlen(stops[i]));
		if (p != NULL && (best < 0 || p - text < best))
			best = p - text;
	}
	return best;
}

/*
 * Choose the next token of s from logits and append it with its
 * log-probability at temperature 1.  Thread-safe: it touches only s.
 */
static void
choose(struct seq *s, const float *logits, struct sample_ws *w)
{
	int t;
	if (s->sample < 0 || sopts.temperature <= 0) {
		t = sample_argmax(logits, V);
		s->lps[s->n] = sample_logprob(logits, V, t);
	} else
		t = sample_next(&sopts, logits, V, w, rng_uniform(&s->rng),
		    &s->lps[s->n]);
	s->toks[s->n++] = t;
}

/*
 * Whether s ends with the token just appended, and how.  Not
 * thread-safe: decoding uses the tokenizer's scratch space.
 */
static int
check_end(struct seq *s)
{
	if (conv_is_stop(conv, s->toks[s->n - 1]))
		s->finish = "stop";
	else if (nstops > 0) {
		size_t len;
		char *text = tokenizer_decode(tok, s->toks, s->n, 1, &len);
		long at = find_stop(text, len);
		if (at >= 0) {
			s->finish = "stop";
			s->text = text;
			s->textlen = (size_t)at;
			text[at] = 0;
			return 1;
		}
		free(text);
	}
	if (s->finish == NULL && s->n >= s->limit)
		s->finish = "length";
	if (s->finish == NULL)
		return 0;
	s->text = tokenizer_decode(tok, s->toks, s->n, 1, &s->textlen);
	return 1;
}

/* Start the next sample of j: fork the prompt's cache, first token. */
static struct seq *
start_seq(struct job *j)
{
	int i = j->started++;
	struct seq *s = &j->seqs[i];
	int room = ctx - j->plen;	/* >= 1, see prompt_tokens */

	s->job = j;
	s->sample = i < nsamples ? i : -1;
	if (s->sample >= 0) {
		/* The stream of (seed, id, sample): see the top. */
		uint64_t key[2] = { j->idhash, (uint64_t)s->sample };
		rng_stream(&s->rng, seed, key, 2);
	}
	s->limit = max_tokens < room ? max_tokens : room;
	s->toks = xmalloc((size_t)(s->limit > 0 ? s->limit : 1) *
	    sizeof(*s->toks));
	s->lps = xmalloc((size_t)(s->limit > 0 ? s->limit : 1) *
	    sizeof(*s->lps));
	if (s->limit == 0) {
		s->finish = "length";
		s->text = xstrdup("");
	} else {
		choose(s, j->logits, &ws[0]);
		if (!check_end(s)) {
			/* Room for the prompt and every token but the
			 * last, which is never fed back. */
			s->kv = kv_cache_fork(j->kv, j->plen + s->limit - 1);
		}
	}
	if (j->started == j->nseq) {
		free(j->logits);
		j->logits = NULL;
	}
	return s;
}

/* The output: stdout, or under mpirun this rank's part of it. */
static struct rec_part *part;

static void
write_job(struct rec_writer *w, struct job *j)
{
	/* Weights that overflow give NaN or Inf logits: stop at the first
	 * prompt they reach rather than write its numbers. */
	for (int i = 0; i < j->nseq; i++) {
		struct seq *s = &j->seqs[i];
		for (int t = 0; t < s->n; t++)
			if (!isfinite(s->lps[t]))
				rec_die(&j->rec, "logprobs", "sample %d, token "
				    "%d: log-probability %g: the model's "
				    "output is not finite", s->sample, t,
				    s->lps[t]);
	}
	for (int i = 0; i < j->nseq; i++) {
		struct seq *s = &j->seqs[i];
		struct rec o;
		rec_copy(&o, &j->rec);
		rec_set_int(&o, "sample", s->sample);
		rec_set_strn(&o, "response", s->text, s->textlen);
		rec_set_int_array(&o, "prompt_tokens", j->prompt, j->plen);
		rec_set_int_array(&o, "response_tokens", s->toks, s->n);
		rec_set_float_array(&o, "logprobs", s->lps, s->n);
		rec_set_str(&o, "finish", s->finish);
		rec_set_str(&o, "policy", policy);
		if (s->sample < 0)
			rec_set_bool(&o, "greedy", 1);
		rec_write(w, &o);
		rec_part_note(part, j->ordinal);
		rec_free(&o);
		free(s->toks);
		free(s->lps);
		free(s->text);
	}
	rec_free(&j->rec);
	kv_cache_free(j->kv);	/* every fork of it is gone */
	free(j->prompt);
	free(j->seqs);
	free(j);
}

/* Progress on a terminal (lib/util/progress.h): prompts done, samples,
 * tokens per second. */
static struct progress *progress;
static uint64_t ndone, nsamp, ntoks;

static void
show_progress(int last)
{
	char extra[48];
	snprintf(extra, sizeof(extra), "%" PRIu64 " samples", nsamp);
	progress_update(progress, ndone, ntoks, extra);
	if (last) {
		progress_end(progress);
		progress = NULL;
	}
}

/*
 * The run, in file scope: a data error met while reading (on_data_error)
 * finishes it before the program ends.
 */
static struct rec_reader *rd;
static struct rec_writer *out;
static struct job *head, *tail, *fill;	/* in input order; fill: see pump */
static struct seq **act;		/* (batch) the running sequences */
static struct kv_cache **kvs;		/* (batch) their caches, for a step */
static int *feed;			/* (batch) their last tokens */
static float *logits;			/* (batch, V) */
static uint64_t ordinal;
static int nact, eof, reading;

/*
 * Sample until every prompt read is written: the batch is filled with
 * the oldest prompt's samples not yet started, then with new prompts
 * until eof is set.
 */
static void
pump(void)
{
	for (;;) {
		while (nact < batch) {
			while (fill != NULL && fill->started == fill->nseq)
				fill = fill->next;
			if (fill == NULL) {
				struct job *j = NULL;
				if (!eof) {
					reading = 1;
					j = next_job(rd, &ordinal);
					reading = 0;
				}
				if (j == NULL) {
					eof = 1;
					break;
				}
				if (tail)
					tail->next = j;
				else
					head = j;
				tail = fill = j;
			}
			struct seq *s = start_seq(fill);
			ntoks += s->n;
			if (s->finish == NULL)
				act[nact++] = s;
			else
				s->job->finished++;
		}

		/* Write what is complete, in input order. */
		while (head != NULL && head->finished == head->nseq) {
			struct job *j = head;
			head = j->next;
			if (head == NULL)
				tail = NULL;
			if (fill == j)
				fill = head;
			ndone++;
			nsamp += j->nseq;
			write_job(out, j);
		}
		show_progress(0);
		if (nact == 0)
			break;

		/* One step for every active sequence at once. */
		double t0 = pp_now();
		for (int i = 0; i < nact; i++) {
			kvs[i] = act[i]->kv;
			feed[i] = act[i]->toks[act[i]->n - 1];
		}
		sample_step(stepper, kvs, nact, feed, logits);
		/* Threads for the vocabulary passes only when there are
		 * several large enough to pay for waking them. */
#pragma omp parallel for schedule(dynamic, 1) if (nact > 1 && \
    (size_t)nact * V >= 16384)
		for (int i = 0; i < nact; i++) {
			int t = 0;
#ifdef _OPENMP
			t = omp_get_thread_num();
#endif
			choose(act[i], logits + (size_t)i * V, &ws[t % nws]);
		}
		ntoks += nact;
		n_decoded += nact;
		t_decode += pp_now() - t0;

		/* Retire the finished ones, keeping the others in order. */
		int k = 0;
		for (int i = 0; i < nact; i++) {
			struct seq *s = act[i];
			if (check_end(s)) {
				kv_cache_free(s->kv);
				s->kv = NULL;
				s->job->finished++;
			} else
				act[k++] = s;
		}
		nact = k;
	}
}

/*
 * A record that is bad, or cannot be read, ends the program, but the
 * prompts read before it are sampled and written first (prefpipe(7)):
 * the state is whole whenever next_job runs, so pump can go on from
 * here with no more reading.  An error from then on (a later one of an
 * earlier record) ends the program at once.
 */
static void (*data_error)(const char *msg);

static void
on_data_error(const char *msg)
{
	rec_error_hook = data_error;
	if (reading) {
		reading = 0;
		eof = 1;
		pump();
		show_progress(1);
	}
	data_error(msg);
}

/* The --stats line, on standard error. */
static void
print_stats(void)
{
	double load = t_run - t_start;

	fprintf(stderr, "rollout: %" PRIu64 " prompts, %" PRIu64 " samples; "
	    "load %.3f s; prefill %.3f s, %" PRIu64 " tokens; decode %.3f s, "
	    "%" PRIu64 " tokens, %.2f tok/s\n", ndone, nsamp,
	    load, t_prefill, n_prompt_toks, t_decode, n_decoded,
	    t_decode > 0 ? n_decoded / t_decode : 0.0);
}

static void
run(char **inputs, int ninputs, struct rec_writer *w)
{
	rd = rec_reader_open(inputs, ninputs);
	out = w;
	act = xcalloc(batch, sizeof(*act));
	kvs = xcalloc(batch, sizeof(*kvs));
	feed = xcalloc(batch, sizeof(int));
	logits = xmalloc((size_t)batch * V * sizeof(float));
	data_error = rec_error_hook;
	rec_error_hook = on_data_error;

	pump();
	show_progress(1);
	rec_error_hook = data_error;
	rec_reader_close(rd);
	free(act);
	free(kvs);
	free(feed);
	free(logits);
}

/* ------------------------------------------------------------------------ */

int
main(int argc, char **argv)
{
	enum { O_TEMP = 256, O_TOPP, O_TOPK, O_MINP, O_MAXTOK, O_STOP, O_SEED,
	    O_BASE, O_TMPL, O_TARG, O_BATCH, O_SHARD, O_TRUNC, O_LORA_BASE,
	    O_WEIGHTS, O_STATS, O_COMPUTE };
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "samples", required_argument, NULL, 'n' },
		{ "temperature", required_argument, NULL, O_TEMP },
		{ "top-p", required_argument, NULL, O_TOPP },
		{ "top-k", required_argument, NULL, O_TOPK },
		{ "min-p", required_argument, NULL, O_MINP },
		{ "max-tokens", required_argument, NULL, O_MAXTOK },
		{ "stop", required_argument, NULL, O_STOP },
		{ "seed", required_argument, NULL, O_SEED },
		{ "greedy-baseline", no_argument, NULL, O_BASE },
		{ "chat-template", required_argument, NULL, O_TMPL },
		{ "template-arg", required_argument, NULL, O_TARG },
		{ "batch", required_argument, NULL, O_BATCH },
		{ "shard", required_argument, NULL, O_SHARD },
		{ "truncate", required_argument, NULL, O_TRUNC },
		{ "base", required_argument, NULL, O_LORA_BASE },
		{ "weights", required_argument, NULL, O_WEIGHTS },
		{ "stats", no_argument, NULL, O_STATS },
		{ "compute", required_argument, NULL, O_COMPUTE },
		{ "quiet", no_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'J' },
		{ "zstd", no_argument, NULL, 'z' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *ckpt = NULL;
	int out_flags = REC_AUTO, c;

	t_start = pp_now();
	pp_dist_init(&argc, &argv);
	pp_init(argc, argv);
	pp_synopsis = SYNOPSIS;
	while ((c = getopt_long(argc, argv, "m:n:qJzh", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			ckpt = optarg;
			break;
		case 'n':
			nsamples = (int)pp_parse_int("-n", optarg, 0, 1 << 20);
			break;
		case O_TEMP:
			sopts.temperature = pp_parse_num("--temperature",
			    optarg, 0, 1e6);
			break;
		case O_TOPP:
			sopts.top_p = pp_parse_num("--top-p", optarg, 0, 1);
			if (sopts.top_p == 0)
				pp_usage("--top-p: must be above 0");
			break;
		case O_TOPK:
			sopts.top_k = (int)pp_parse_int("--top-k", optarg, 0,
			    1 << 30);
			break;
		case O_MINP:
			sopts.min_p = pp_parse_num("--min-p", optarg, 0, 1);
			break;
		case O_MAXTOK:
			max_tokens = (int)pp_parse_int("--max-tokens", optarg,
			    0, 1 << 30);
			break;
		case O_STOP:
			if (*optarg == 0)
				pp_usage("--stop: empty string");
			stops = xreallocarray(stops, nstops + 1,
			    sizeof(*stops));
			stops[nstops++] = optarg;
			break;
		case O_SEED:
			seed = (uint64_t)pp_parse_int("--seed", optarg, 0,
			    INT64_MAX);
			break;
		case O_BASE:
			baseline = 1;
			break;
		case O_TMPL:
			template_name = optarg;
			break;
		case O_TARG: {
			char e[256];
			if (template_args == NULL)
				template_args = json_object();
			if (conv_template_arg(template_args, optarg, e,
			    sizeof e) != 0)
				pp_usage("--template-arg: %s", e);
			break;
		}
		case O_LORA_BASE:
			base_path = optarg;
			break;
		case O_BATCH:
			batch = (int)pp_parse_int("--batch", optarg, 1,
			    1 << 16);
			break;
		case O_SHARD: {
			char *slash = strchr(optarg, '/');
			if (slash == NULL)
				pp_usage("--shard: I/K, not \"%s\"", optarg);
			*slash = 0;
			shard_k = (uint64_t)pp_parse_int("--shard K",
			    slash + 1, 1, INT64_MAX);
			shard_i = (uint64_t)pp_parse_int("--shard I", optarg,
			    0, (long long)shard_k - 1);
			*slash = '/';
			break;
		}
		case O_TRUNC:
			if (strcmp(optarg, "left") != 0)
				pp_usage("--truncate: only \"left\", not "
				    "\"%s\"", optarg);
			truncate_left = 1;
			break;
		case O_WEIGHTS:
			if (model_weights_parse(optarg, &lopts.weights) != 0)
				pp_usage("--weights: \"%s\" is none of auto, "
				    "f32, bf16, f16", optarg);
			break;
		case O_COMPUTE:
			if (model_compute_parse(optarg, &lopts.compute) != 0)
				pp_usage("--compute: \"%s\" is neither f32 "
				    "nor bf16", optarg);
			break;
		case O_STATS:
			stats = 1;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'J':
		case 'z':
			rec_output_option(c, &out_flags);
			break;
		case 'h':
			pp_help();
		default:
			pp_usage(NULL);
		}
	}
	if (ckpt == NULL)
		pp_usage("-m CKPT is required");
	if (nsamples + baseline == 0)
		pp_usage("-n 0 without --greedy-baseline writes nothing");

	/* Under mpirun, stdout is mpirun's: msgpack unless -J, and no
	 * progress line. */
	if (pp_dist_active()) {
		out_flags &= ~REC_AUTO;
		quiet = 1;
	}
	if (pp_dist_size() > 1) {
		if (shard_k != 1)
			pp_usage("--shard: under mpirun each rank takes its "
			    "own shard, rank/K");
		shard_i = (uint64_t)pp_dist_rank();
		shard_k = (uint64_t)pp_dist_size();
		if (argc - optind == 0)
			pp_dist_share_stdin();
		else
			for (int i = optind; i < argc; i++)
				if (strcmp(argv[i], "-") == 0)
					pp_usage("under mpirun, stdin is "
					    "read as the only input");
	}
	load(ckpt);
	nws = 1;
#ifdef _OPENMP
	nws = omp_get_max_threads();
#endif
	ws = xcalloc(nws, sizeof(*ws));
	for (int i = 0; i < nws; i++)
		sample_ws_init(&ws[i], V);
	progress = progress_new("prompts", 0, quiet);
	stepper = sample_step_new(model, batch);

	/* Under mpirun rank r samples shard r/K; rank 0 writes the union
	 * in input order. */
	part = rec_part_open(out_flags);
	t_run = pp_now();
	run(argv + optind, argc - optind, rec_part_writer(part));
	rec_part_close(part);
	pp_close_stdout();
	if (stats)
		print_stats();

	for (int i = 0; i < nws; i++)
		sample_ws_free(&ws[i]);
	free(ws);
	sample_step_free(stepper);
	conv_free(conv);
	model_free(model);
	free(stops);
	return 0;
}
