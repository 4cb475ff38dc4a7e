/*
 * train-step: optimizer steps over a batch of records.
 *
 *     train-step -m CKPT -o OUT --loss sft|dpo|rm|pg [options] < records
 *
 * One invocation reads every record on stdin, runs optimizer steps over
 * them, writes one metrics record per step on stdout and the updated
 * checkpoint, with its optimizer state, to OUT.  An iterative loop is a
 * shell loop around it.
 *
 * The program in sections, in the order it runs:
 *   1. options
 *   2. examples: records turned into token sequences and what each
 *      objective needs (rewards, reference and rollout log-probs)
 *   3. reference and rollout log-probs computed by forward passes
 *   4. the step: micro-batches through forward, loss, backward; the
 *      gradients summed; clipping; AdamW
 *   5. optimizer state in and out of the checkpoint
 *   6. main: epochs, batches, metrics
 *
 * Data-parallel training (a later issue) fits between backward and the
 * update: see sum_gradients().
 */
#include "config.h"

#include <err.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "text/chat.h"
#include "checkpoints/checkpoint.h"
#include "training/loss.h"
#include "model/model.h"
#include "training/optim.h"
#include "records/record.h"
#include "util/rng.h"
#include "util/strmap.h"
#include "text/tokenizer.h"
#include "util/util.h"

#define SYNOPSIS \
	"train-step -m CKPT -o OUT --loss sft|dpo|rm|pg [--lr X] " \
	"[--batch-size N]\n" \
	"           [--micro-batch N] [--epochs N] [--max-steps N] " \
	"[--warmup N]\n" \
	"           [--schedule constant|linear|cosine] [--schedule-steps N] " \
	"[--min-lr X]\n" \
	"           [--weight-decay X] [--clip-grad X] [--adam-beta1 X] " \
	"[--adam-beta2 X]\n" \
	"           [--adam-eps X] [--seed N] [--no-shuffle] " \
	"[--max-length N] [--truncate]\n" \
	"           [--ref CKPT] [--reset-optimizer] [--dtype f32|bf16|f16] " \
	"[-Jz]\n" \
	"           [--beta X] [--dpo-variant sigmoid|hinge|ipo|robust] " \
	"[--label-smoothing X]\n" \
	"           [--nll-coef X] [--add-head] " \
	"[--advantage reinforce|remax|rloo|grpo]\n" \
	"           [--scale group|batch|none] [--clip X] [--ppo-epochs N] " \
	"[--kl-coef X]\n" \
	"           [--kl-estimator k1|k2|k3] [--loss-agg token|seq]"

/* ------------------------------------------------------------------------ */
/* 1. Options */

enum objective { OBJ_SFT, OBJ_DPO, OBJ_RM, OBJ_PG };
enum { AGG_TOKEN, AGG_SEQ };

static struct {
	const char *model, *out, *ref, *dtype, *chat_template;
	int objective;
	double lr, min_lr, weight_decay, clip_grad, beta1, beta2, eps;
	long long batch, micro, epochs, max_steps, warmup, sched_steps;
	int schedule;
	uint64_t seed;
	int shuffle, truncate, reset_optimizer, add_head, out_flags;
	long long max_length;
	/* dpo */
	double beta, label_smoothing, nll_coef;
	int dpo_variant;
	/* pg */
	int advantage, scale, kl_est, agg;
	double clip, kl_coef;
	long long ppo_epochs;
} opt = {
	.objective = -1, .lr = 1e-5, .clip_grad = 1.0, .beta1 = 0.9,
	.beta2 = 0.999, .eps = 1e-8, .batch = 8, .epochs = 1,
	.max_steps = -1, .sched_steps = -1, .schedule = SCHED_CONSTANT,
	.shuffle = 1, .out_flags = REC_AUTO, .max_length = -1,
	.beta = 0.1, .dpo_variant = DPO_SIGMOID, .advantage = ADV_GRPO,
	.scale = SCALE_GROUP, .kl_est = KL_K3, .agg = AGG_TOKEN,
	.clip = 0.2, .ppo_epochs = 1,
};

enum {
	O_LOSS = 256, O_LR, O_BATCH, O_MICRO, O_EPOCHS, O_MAX_STEPS, O_WARMUP,
	O_SCHEDULE, O_SCHED_STEPS, O_MIN_LR, O_WD, O_CLIP_GRAD, O_BETA1,
	O_BETA2, O_EPS, O_SEED, O_NO_SHUFFLE, O_MAX_LENGTH, O_TRUNCATE, O_REF,
	O_RESET, O_DTYPE, O_BETA, O_VARIANT, O_LS, O_NLL, O_ADD_HEAD, O_ADV,
	O_SCALE, O_CLIP, O_PPO_EPOCHS, O_KL, O_KL_EST, O_AGG, O_CHAT,
};

static const struct option longopts[] = {
	{ "model", required_argument, NULL, 'm' },
	{ "output", required_argument, NULL, 'o' },
	{ "json", no_argument, NULL, 'J' },
	{ "zstd", no_argument, NULL, 'z' },
	{ "help", no_argument, NULL, 'h' },
	{ "loss", required_argument, NULL, O_LOSS },
	{ "lr", required_argument, NULL, O_LR },
	{ "batch-size", required_argument, NULL, O_BATCH },
	{ "micro-batch", required_argument, NULL, O_MICRO },
	{ "epochs", required_argument, NULL, O_EPOCHS },
	{ "max-steps", required_argument, NULL, O_MAX_STEPS },
	{ "warmup", required_argument, NULL, O_WARMUP },
	{ "schedule", required_argument, NULL, O_SCHEDULE },
	{ "schedule-steps", required_argument, NULL, O_SCHED_STEPS },
	{ "min-lr", required_argument, NULL, O_MIN_LR },
	{ "weight-decay", required_argument, NULL, O_WD },
	{ "clip-grad", required_argument, NULL, O_CLIP_GRAD },
	{ "adam-beta1", required_argument, NULL, O_BETA1 },
	{ "adam-beta2", required_argument, NULL, O_BETA2 },
	{ "adam-eps", required_argument, NULL, O_EPS },
	{ "seed", required_argument, NULL, O_SEED },
	{ "no-shuffle", no_argument, NULL, O_NO_SHUFFLE },
	{ "max-length", required_argument, NULL, O_MAX_LENGTH },
	{ "truncate", no_argument, NULL, O_TRUNCATE },
	{ "ref", required_argument, NULL, O_REF },
	{ "reset-optimizer", no_argument, NULL, O_RESET },
	{ "dtype", required_argument, NULL, O_DTYPE },
	{ "beta", required_argument, NULL, O_BETA },
	{ "dpo-variant", required_argument, NULL, O_VARIANT },
	{ "label-smoothing", required_argument, NULL, O_LS },
	{ "nll-coef", required_argument, NULL, O_NLL },
	{ "add-head", no_argument, NULL, O_ADD_HEAD },
	{ "advantage", required_argument, NULL, O_ADV },
	{ "scale", required_argument, NULL, O_SCALE },
	{ "clip", required_argument, NULL, O_CLIP },
	{ "ppo-epochs", required_argument, NULL, O_PPO_EPOCHS },
	{ "kl-coef", required_argument, NULL, O_KL },
	{ "kl-estimator", required_argument, NULL, O_KL_EST },
	{ "loss-agg", required_argument, NULL, O_AGG },
	{ "chat-template", required_argument, NULL, O_CHAT },
	{ NULL, 0, NULL, 0 }
};

static int
choice(const char *optname, const char *arg, int v)
{
	if (v < 0)
		pp_usage("%s: unknown value \"%s\"", optname, arg);
	return v;
}

static void
parse_options(int argc, char **argv)
{
	const long long BIG = (long long)1 << 40;
	int c;

	while ((c = getopt_long(argc, argv, "m:o:Jzh", longopts, NULL)) != -1) {
		switch (c) {
		case 'm': opt.model = optarg; break;
		case 'o': opt.out = optarg; break;
		case 'J':
		case 'z': rec_output_option(c, &opt.out_flags); break;
		case 'h': pp_help();
		case O_LOSS: {
			static const char *n[] = { "sft", "dpo", "rm", "pg" };
			for (int i = 0; i < 4; i++)
				if (strcmp(optarg, n[i]) == 0)
					opt.objective = i;
			choice("--loss", optarg, opt.objective);
			break;
		}
		case O_LR: opt.lr = pp_parse_num("--lr", optarg, 0, 1e3); break;
		case O_BATCH:
			opt.batch = pp_parse_int("--batch-size", optarg, 1, BIG);
			break;
		case O_MICRO:
			opt.micro = pp_parse_int("--micro-batch", optarg, 1, BIG);
			break;
		case O_EPOCHS:
			opt.epochs = pp_parse_int("--epochs", optarg, 1, BIG);
			break;
		case O_MAX_STEPS:
			opt.max_steps = pp_parse_int("--max-steps", optarg, 0,
			    BIG);
			break;
		case O_WARMUP:
			opt.warmup = pp_parse_int("--warmup", optarg, 0, BIG);
			break;
		case O_SCHEDULE:
			opt.schedule = choice("--schedule", optarg,
			    lr_schedule_parse(optarg));
			break;
		case O_SCHED_STEPS:
			opt.sched_steps = pp_parse_int("--schedule-steps",
			    optarg, 1, BIG);
			break;
		case O_MIN_LR:
			opt.min_lr = pp_parse_num("--min-lr", optarg, 0, 1e3);
			break;
		case O_WD:
			opt.weight_decay = pp_parse_num("--weight-decay", optarg,
			    0, 1e3);
			break;
		case O_CLIP_GRAD:
			opt.clip_grad = pp_parse_num("--clip-grad", optarg, 0,
			    1e30);
			break;
		case O_BETA1:
			opt.beta1 = pp_parse_num("--adam-beta1", optarg, 0,
			    0.999999999);
			break;
		case O_BETA2:
			opt.beta2 = pp_parse_num("--adam-beta2", optarg, 0,
			    0.999999999);
			break;
		case O_EPS:
			opt.eps = pp_parse_num("--adam-eps", optarg, 0, 1);
			break;
		case O_SEED:
			opt.seed = (uint64_t)pp_parse_int("--seed", optarg, 0,
			    INT64_MAX);
			break;
		case O_NO_SHUFFLE: opt.shuffle = 0; break;
		case O_MAX_LENGTH:
			opt.max_length = pp_parse_int("--max-length", optarg, 2,
			    BIG);
			break;
		case O_TRUNCATE: opt.truncate = 1; break;
		case O_REF: opt.ref = optarg; break;
		case O_RESET: opt.reset_optimizer = 1; break;
		case O_DTYPE:
			if (dtype_parse(optarg) < 0)
				pp_usage("--dtype: unknown value \"%s\"", optarg);
			opt.dtype = optarg;
			break;
		case O_BETA:
			opt.beta = pp_parse_num("--beta", optarg, 1e-12, 1e12);
			break;
		case O_VARIANT:
			opt.dpo_variant = choice("--dpo-variant", optarg,
			    dpo_variant_parse(optarg));
			break;
		case O_LS:
			opt.label_smoothing = pp_parse_num("--label-smoothing",
			    optarg, 0, 0.5);
			break;
		case O_NLL:
			opt.nll_coef = pp_parse_num("--nll-coef", optarg, 0,
			    1e12);
			break;
		case O_ADD_HEAD: opt.add_head = 1; break;
		case O_ADV:
			opt.advantage = choice("--advantage", optarg,
			    pg_advantage_parse(optarg));
			break;
		case O_SCALE:
			opt.scale = choice("--scale", optarg,
			    pg_scale_parse(optarg));
			break;
		case O_CLIP:
			opt.clip = pp_parse_num("--clip", optarg, 0, 1e6);
			break;
		case O_PPO_EPOCHS:
			opt.ppo_epochs = pp_parse_int("--ppo-epochs", optarg, 1,
			    BIG);
			break;
		case O_KL:
			opt.kl_coef = pp_parse_num("--kl-coef", optarg, 0, 1e12);
			break;
		case O_KL_EST:
			opt.kl_est = choice("--kl-estimator", optarg,
			    kl_estimator_parse(optarg));
			break;
		case O_AGG:
			if (strcmp(optarg, "token") == 0)
				opt.agg = AGG_TOKEN;
			else if (strcmp(optarg, "seq") == 0)
				opt.agg = AGG_SEQ;
			else
				pp_usage("--loss-agg: unknown value \"%s\"",
				    optarg);
			break;
		case O_CHAT:
			if (chat_template_by_name(optarg) == NULL)
				pp_usage("--chat-template: unknown template "
				    "\"%s\" (known: %s)", optarg,
				    chat_template_names());
			opt.chat_template = optarg;
			break;
		default:
			pp_usage(NULL);
		}
	}
	if (optind != argc)
		pp_usage("unexpected operand: %s", argv[optind]);
	if (opt.model == NULL || opt.out == NULL)
		pp_usage("-m CKPT and -o OUT are required");
	if (opt.objective < 0)
		pp_usage("--loss sft|dpo|rm|pg is required");
	if (opt.dpo_variant == DPO_ROBUST && opt.label_smoothing >= 0.5)
		pp_usage("--dpo-variant robust needs --label-smoothing < 0.5");
	if (opt.micro <= 0 || opt.micro > opt.batch)
		opt.micro = opt.batch;
}

/* ------------------------------------------------------------------------ */
/* 2. Examples */

/*
 * A token sequence and the positions whose next token the loss reads.
 * tgt[t] is tok[t + 1] at a scored position and -1 elsewhere; the scored
 * positions, in order, are the response tokens (nscored of them), and
 * old[] and ref[] (pg) run parallel to them.
 */
struct seq {
	int32_t *tok;		/* (len) */
	int32_t *tgt;		/* (len), or NULL for a reward model */
	int len, nscored;
	float *old;		/* (nscored) rollout log-probs, or NULL */
	float *ref;		/* (nscored) reference log-probs, or NULL */
	double ref_sum;		/* sum of the reference log-probs */
	int has_ref;
	int truncated;
};

/* One record: a sequence (sft, pg) or a pair of them (dpo, rm). */
struct example {
	struct seq s[2];	/* dpo, rm: chosen, rejected */
	int nseq;
	uint64_t recno;
	double label_smoothing;	/* dpo: the record's, else the option */
	double reward, weight, adv;	/* pg */
	int greedy, group;		/* pg */
};

static struct example *ex;
static size_t nex;
static uint64_t ndropped;
static int max_len;		/* sequences never run longer than this */

static struct ckpt *ckpt;
static struct tokenizer *tok;
static int eos_id = -1;

/* The tokenizer, loaded the first time a record carries only text. */
static struct tokenizer *
tokenizer(const struct rec *r, const char *field)
{
	char e[512];
	if (tok != NULL)
		return tok;
	size_t len, clen;
	const char *json = ckpt_file(ckpt, "tokenizer.json", &len);
	if (json == NULL)
		rec_die(r, field, "text without tokens, and %s has no "
		    "tokenizer.json", opt.model);
	tok = tokenizer_from_json(json, len, "tokenizer.json", e, sizeof(e));
	if (tok == NULL)
		errx(EXIT_DATA, "%s: %s", opt.model, e);
	const char *cj = ckpt_file(ckpt, "tokenizer_config.json", &clen);
	if (cj != NULL && tokenizer_load_config(tok, cj, clen,
	    "tokenizer_config.json", e, sizeof(e)) != 0)
		errx(EXIT_DATA, "%s: %s", opt.model, e);
	return tok;
}

/*
 * Token ids from field tfield (an array) or else by encoding the string
 * field sfield; *n gets the count.  with_special adds BOS and the like (a
 * prompt); a response encoded from text gets EOS appended, so a model
 * learns to stop.
 */
static int32_t *
get_tokens(const struct rec *r, const char *tfield, const char *sfield,
    int with_special, size_t *n)
{
	int32_t *ids;
	if (rec_get(r, tfield) != NULL) {
		*n = rec_need_int_array(r, tfield, &ids);
		return ids;
	}
	if (sfield == NULL || rec_get(r, sfield) == NULL)
		rec_die(r, tfield, "missing (and no \"%s\" to tokenize)",
		    sfield ? sfield : tfield);
	size_t len;
	const char *s = rec_need_str(r, sfield, &len);
	*n = tokenizer_encode(tokenizer(r, sfield), s, len, with_special,
	    &ids);
	if (!with_special && eos_id >= 0 &&
	    (*n == 0 || ids[*n - 1] != eos_id)) {
		ids = xreallocarray(ids, *n + 1, sizeof(*ids));
		ids[(*n)++] = eos_id;
	}
	return ids;
}

/* Check token ids against the vocabulary. */
static void
check_ids(const struct rec *r, const char *field, const int32_t *ids,
    size_t n, int vocab)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= vocab)
			rec_die(r, field, "token %ld is %d, outside the "
			    "vocabulary [0, %d)", (long)i, (int)ids[i], vocab);
}

/*
 * prompt + response as one sequence scoring the response tokens.  Returns
 * 0 when the record must be dropped (too long, without --truncate).
 */
static int
make_seq(struct seq *s, const int32_t *p, size_t np, const int32_t *resp,
    size_t nr, int scored)
{
	memset(s, 0, sizeof(*s));
	size_t len = np + nr;
	if (len > (size_t)max_len) {
		/* Keep the prompt and at least one response token. */
		if (!opt.truncate || np + 1 > (size_t)max_len)
			return 0;
		nr = max_len - np;
		len = max_len;
		s->truncated = 1;
	}
	s->len = (int)len;
	s->tok = xmalloc(len * sizeof(int32_t));
	if (np)		/* a text-only record has no prompt array */
		memcpy(s->tok, p, np * sizeof(int32_t));
	if (nr)
		memcpy(s->tok + np, resp, nr * sizeof(int32_t));
	if (!scored)
		return 1;
	/* Position t predicts tok[t + 1]: the response is predicted from
	 * positions np - 1 .. len - 2.  A sequence without a prompt starts
	 * at the first token, which nothing predicts. */
	s->tgt = xmalloc(len * sizeof(int32_t));
	for (size_t t = 0; t < len; t++)
		s->tgt[t] = -1;
	size_t from = np > 0 ? np - 1 : 0;
	for (size_t t = from; t + 1 < len; t++) {
		s->tgt[t] = s->tok[t + 1];
		s->nscored++;
	}
	return 1;
}

static void
seq_free(struct seq *s)
{
	free(s->tok);
	free(s->tgt);
	free(s->old);
	free(s->ref);
}

/* A float array field of n scored tokens (truncated with the sequence). */
static float *
get_scored_floats(const struct rec *r, const char *field, const char *name,
    const struct seq *s, size_t nresp)
{
	float *v;
	size_t n = rec_need_float_array(r, field, &v);
	if (n != nresp)
		rec_die(r, name, "has %zu values for %zu response tokens", n,
		    nresp);
	return v;
}

/*
 * Chat records.  messages (an array of {role, content} maps) go through
 * the chat template of the checkpoint's tokenizer_config.json (or
 * --chat-template), and the text is encoded without added special tokens:
 * the template writes them, as apply_chat_template(tokenize=True) does.
 */
static const struct chat_template *tmpl;

struct msgs {
	struct chat_msg *m;
	size_t n;
};

static void
msgs_free(struct msgs *ms)
{
	for (size_t i = 0; i < ms->n; i++) {
		free((char *)ms->m[i].role);
		free((char *)ms->m[i].content);
	}
	free(ms->m);
}

/* A msgpack string as a C string, or NULL when o is not a string. */
static char *
cstr(const msgpack_object *o)
{
	if (o->type != MSGPACK_OBJECT_STR)
		return NULL;
	return xstrndup(o->via.str.ptr, o->via.str.size);
}

static void
get_messages(const struct rec *r, struct msgs *ms)
{
	const msgpack_object *o = rec_get(r, "messages");
	char e[512];

	if (o->type != MSGPACK_OBJECT_ARRAY)
		rec_die(r, "messages", "expected array, got %s",
		    rec_type_name(o));
	if (tmpl == NULL) {
		tmpl = chat_template_select(opt.chat_template,
		    tokenizer_chat_template(tokenizer(r, "messages")), e,
		    sizeof(e));
		if (tmpl == NULL)
			rec_die(r, "messages", "%s (choose one with "
			    "--chat-template)", e);
	}
	ms->n = o->via.array.size;
	ms->m = xcalloc(ms->n + 1, sizeof(*ms->m));
	for (size_t i = 0; i < ms->n; i++) {
		const msgpack_object *x = &o->via.array.ptr[i];
		if (x->type != MSGPACK_OBJECT_MAP)
			rec_die(r, "messages", "element %zu: expected map, got "
			    "%s", i, rec_type_name(x));
		for (uint32_t k = 0; k < x->via.map.size; k++) {
			const msgpack_object_kv *kv = &x->via.map.ptr[k];
			char *key = cstr(&kv->key);
			const char **slot = NULL;
			if (key && strcmp(key, "role") == 0)
				slot = &ms->m[i].role;
			else if (key && strcmp(key, "content") == 0)
				slot = &ms->m[i].content;
			if (slot) {
				if ((*slot = cstr(&kv->val)) == NULL)
					rec_die(r, "messages", "element %zu: "
					    "\"%s\": expected string, got %s",
					    i, key, rec_type_name(&kv->val));
			}
			free(key);
		}
		if (ms->m[i].role == NULL || ms->m[i].content == NULL)
			rec_die(r, "messages", "element %zu: \"%s\": missing",
			    i, ms->m[i].role ? "content" : "role");
	}
}

/* The first n messages through the template (a malloc'd string). */
static char *
render(const struct rec *r, const struct msgs *ms, size_t n, int gen)
{
	char e[512];
	char *text = chat_render(tmpl, ms->m, n, gen,
	    tokenizer_bos_token(tok), tokenizer_eos_token(tok),
	    tokenizer_chat_template(tok), e, sizeof(e));
	if (text == NULL)
		rec_die(r, "messages", "%s", e);
	return text;
}

/*
 * SFT on a conversation: every assistant turn is scored, the rest is
 * context.  The text of turn i runs from the end of the rendering of
 * messages 0..i-1 with the generation prompt to the end of the rendering
 * of 0..i; the pieces are encoded one by one, so the boundaries between
 * scored and unscored tokens fall exactly at those points.  Fills *all
 * and *mask (1: an assistant token); returns the count.
 */
static size_t
messages_tokens(const struct rec *r, int32_t **all, char **mask)
{
	struct msgs ms;
	size_t n = 0, done = 0;		/* tokens; characters encoded */

	get_messages(r, &ms);
	char *full = render(r, &ms, ms.n, 0);
	size_t flen = strlen(full);
	*all = NULL;
	*mask = NULL;
	for (size_t i = 0; i <= ms.n; i++) {
		size_t from = flen, to = flen;
		if (i < ms.n) {
			if (strcmp(ms.m[i].role, "assistant") != 0)
				continue;
			char *a = render(r, &ms, i, 1);
			char *b = render(r, &ms, i + 1, 0);
			from = strlen(a);
			to = strlen(b);
			if (from < done || to < from || to > flen ||
			    strncmp(a, full, from) != 0 ||
			    strncmp(b, full, to) != 0)
				rec_die(r, "messages", "the template does not "
				    "render turn %zu as a prefix of the whole "
				    "conversation", i);
			free(a);
			free(b);
		}
		/* [done, from) context, [from, to) the assistant's */
		for (int part = 0; part < 2; part++) {
			size_t lo = part ? from : done, hi = part ? to : from;
			int32_t *ids;
			if (hi <= lo)
				continue;
			size_t k = tokenizer_encode(tok, full + lo, hi - lo, 0,
			    &ids);
			*all = xreallocarray(*all, n + k + 1, sizeof(int32_t));
			*mask = xreallocarray(*mask, n + k + 1, 1);
			memcpy(*all + n, ids, k * sizeof(int32_t));
			memset(*mask + n, part, k);
			n += k;
			free(ids);
		}
		done = to;
	}
	free(full);
	msgs_free(&ms);
	return n;
}

/* A sequence scoring the tokens mask marks; 0 when it must be dropped. */
static int
make_masked_seq(struct seq *s, const int32_t *all, const char *mask,
    size_t n)
{
	memset(s, 0, sizeof(*s));
	if (n > (size_t)max_len) {
		if (!opt.truncate)
			return 0;
		n = max_len;
		s->truncated = 1;
	}
	s->len = (int)n;
	s->tok = xmalloc(n * sizeof(int32_t) + 1);
	s->tgt = xmalloc(n * sizeof(int32_t) + 1);
	memcpy(s->tok, all, n * sizeof(int32_t));
	for (size_t t = 0; t < n; t++) {
		s->tgt[t] = t + 1 < n && mask[t + 1] ? all[t + 1] : -1;
		s->nscored += s->tgt[t] >= 0;
	}
	return s->nscored > 0;
}

/* The common part of every objective: prompt tokens of a record. */
static int32_t *
prompt_tokens(const struct rec *r, size_t *n, int vocab)
{
	int32_t *p;
	if (rec_get(r, "prompt_tokens") == NULL &&
	    rec_get(r, "prompt") == NULL && rec_get(r, "messages") != NULL) {
		/* The conversation so far, opening the assistant's turn. */
		struct msgs ms;
		get_messages(r, &ms);
		char *text = render(r, &ms, ms.n, 1);
		*n = tokenizer_encode(tok, text, strlen(text), 0, &p);
		free(text);
		msgs_free(&ms);
	} else
		p = get_tokens(r, "prompt_tokens", "prompt", 1, n);
	check_ids(r, "prompt_tokens", p, *n, vocab);
	/* Nothing would predict the first response token. */
	if (*n == 0)
		rec_die(r, rec_get(r, "prompt_tokens") ? "prompt_tokens" :
		    "prompt", "empty prompt");
	return p;
}

/* One side of a pair: the sub-map's response, and its reference sum. */
static int
pair_side(const struct rec *r, const char *side, const int32_t *p, size_t np,
    struct seq *s, int scored, int vocab)
{
	struct rec sub;
	size_t nr;
	char field[64];

	rec_need_sub(r, side, &sub);
	int32_t *resp = get_tokens(&sub, "response_tokens", "response", 0,
	    &nr);
	snprintf(field, sizeof(field), "%s.response_tokens", side);
	check_ids(r, field, resp, nr, vocab);
	if (nr == 0)
		rec_die(r, field, "empty response");
	int ok = make_seq(s, p, np, resp, nr, scored);
	if (ok && scored && opt.objective == OBJ_DPO) {
		const msgpack_object *sum = rec_get(&sub, "ref_logprob");
		const msgpack_object *arr = rec_get(&sub, "ref_logprobs");
		snprintf(field, sizeof(field), "%s.ref_logprobs", side);
		if (arr != NULL && (s->truncated || sum == NULL)) {
			/* Per-token values follow a truncation exactly. */
			float *v = get_scored_floats(&sub, "ref_logprobs",
			    field, s, nr);
			s->ref_sum = 0;
			for (int t = 0; t < s->nscored; t++)
				s->ref_sum += v[t];
			free(v);
			s->has_ref = 1;
		} else if (sum != NULL && !s->truncated) {
			s->ref_sum = rec_need_num(&sub, "ref_logprob");
			s->has_ref = 1;
		} else if (sum != NULL && opt.ref == NULL) {
			snprintf(field, sizeof(field), "%s.ref_logprob", side);
			rec_die(r, field, "a sum cannot follow --truncate; "
			    "give ref_logprobs or --ref");
		}
		if (!s->has_ref && opt.ref == NULL) {
			snprintf(field, sizeof(field), "%s.ref_logprob", side);
			rec_die(r, field, "missing: give reference log-probs "
			    "(score --logprob) or --ref CKPT");
		}
	}
	free(resp);
	rec_free(&sub);
	return ok;
}

/* Group numbers of pg samples, by the msgpack bytes of their id. */
static struct strmap *groups;
static int ngroups;

static int
group_of(const struct rec *r)
{
	const msgpack_object *id = rec_get(r, "id");
	msgpack_sbuffer b;
	msgpack_packer pk;
	msgpack_sbuffer_init(&b);
	msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
	if (id != NULL)
		msgpack_pack_object(&pk, *id);
	else	/* no id: a group of its own, as rollout would name it */
		msgpack_pack_uint64(&pk, r->recno);
	long g = strmap_get(groups, b.data, b.size);
	if (g < 0) {
		g = ngroups++;
		strmap_put(groups, b.data, b.size, g);
	}
	msgpack_sbuffer_destroy(&b);
	return (int)g;
}

/* A record into an example; 0 when it is dropped for its length. */
static int
read_example(const struct rec *r, struct example *e, int vocab)
{
	size_t np = 0, nr;
	int32_t *p = NULL, *resp;
	int ok = 1;

	memset(e, 0, sizeof(*e));
	e->recno = r->recno;
	e->weight = 1;
	switch (opt.objective) {
	case OBJ_SFT:
		e->nseq = 1;
		if (rec_get(r, "response_tokens") != NULL ||
		    rec_get(r, "response") != NULL) {
			p = prompt_tokens(r, &np, vocab);
			resp = get_tokens(r, "response_tokens", "response", 0,
			    &nr);
			check_ids(r, "response_tokens", resp, nr, vocab);
		} else if (rec_get(r, "messages") != NULL) {
			/* Loss on the assistant turns only. */
			char *mask;
			int32_t *all;
			size_t n = messages_tokens(r, &all, &mask);
			check_ids(r, "messages", all, n, vocab);
			ok = make_masked_seq(&e->s[0], all, mask, n);
			if (!ok && n <= (size_t)max_len)
				rec_die(r, "messages", "no assistant turn to "
				    "learn from");
			free(all);
			free(mask);
			break;
		} else {
			/* Plain text: the loss reads every token. */
			if (rec_get(r, "tokens") == NULL &&
			    rec_get(r, "text") == NULL)
				rec_die(r, "text", "missing (an sft record "
				    "has prompt and response, messages, or "
				    "text)");
			resp = get_tokens(r, "tokens", "text", 1, &nr);
			check_ids(r, "tokens", resp, nr, vocab);
		}
		if (np + nr < 2)
			rec_die(r, np ? "response_tokens" : "tokens",
			    "nothing to predict");
		ok = make_seq(&e->s[0], p, np, resp, nr, 1);
		free(resp);
		break;
	case OBJ_DPO:
	case OBJ_RM:
		e->nseq = 2;
		p = prompt_tokens(r, &np, vocab);
		ok = pair_side(r, "chosen", p, np, &e->s[0],
		    opt.objective == OBJ_DPO, vocab) &&
		    pair_side(r, "rejected", p, np, &e->s[1],
		    opt.objective == OBJ_DPO, vocab);
		e->label_smoothing = rec_opt_num(r, "label_smoothing",
		    opt.label_smoothing);
		if (e->label_smoothing < 0 || e->label_smoothing > 0.5 ||
		    (opt.dpo_variant == DPO_ROBUST &&
		    e->label_smoothing >= 0.5))
			rec_die(r, "label_smoothing", "%g is outside [0, 0.5%s",
			    e->label_smoothing,
			    opt.dpo_variant == DPO_ROBUST ? ")" : "]");
		break;
	case OBJ_PG:
		e->nseq = 1;
		p = prompt_tokens(r, &np, vocab);
		resp = get_tokens(r, "response_tokens", "response", 0, &nr);
		check_ids(r, "response_tokens", resp, nr, vocab);
		if (nr == 0)
			rec_die(r, "response_tokens", "empty response");
		ok = make_seq(&e->s[0], p, np, resp, nr, 1);
		free(resp);
		e->reward = rec_need_num(r, "reward");
		e->weight = rec_opt_num(r, "weight", 1);
		e->greedy = rec_opt_bool(r, "greedy", 0);
		e->group = group_of(r);
		if (!ok)
			break;
		struct seq *s = &e->s[0];
		if (rec_get(r, "logprobs") != NULL)
			s->old = get_scored_floats(r, "logprobs", "logprobs",
			    s, nr);
		if (rec_get(r, "ref_logprobs") != NULL)
			s->ref = get_scored_floats(r, "ref_logprobs",
			    "ref_logprobs", s, nr);
		else if (opt.kl_coef > 0 && opt.ref == NULL)
			rec_die(r, "ref_logprobs", "missing: --kl-coef needs "
			    "reference log-probs (score --logprob --as ref) or "
			    "--ref CKPT");
		break;
	}
	free(p);
	if (!ok) {
		for (int i = 0; i < 2; i++)
			seq_free(&e->s[i]);
	}
	return ok;
}

static void
read_examples(int vocab)
{
	struct rec_reader *rd = rec_reader_open(NULL, 0);
	struct rec r;
	size_t cap = 0;

	groups = strmap_new();
	while (rec_read(rd, &r)) {
		if (nex == cap) {
			cap = cap ? 2 * cap : 64;
			ex = xreallocarray(ex, cap, sizeof(*ex));
		}
		if (read_example(&r, &ex[nex], vocab))
			nex++;
		else
			ndropped++;
		rec_free(&r);
	}
	rec_reader_close(rd);
}

/* ------------------------------------------------------------------------ */
/* 3. Log-probs by forward passes only */

/*
 * A packed batch of sequences: the micro-batch unit every pass uses.
 * off[i] is where sequence i starts in the packed arrays.
 */
struct packed {
	int nseq, N;
	int *len, *off, *tokens, *targets;
	struct seq **seqs;
	int cap_seq, cap_tok;
};

static void
pack_clear(struct packed *pk)
{
	pk->nseq = pk->N = 0;
}

static void
pack_add(struct packed *pk, struct seq *s)
{
	if (pk->nseq == pk->cap_seq) {
		pk->cap_seq = pk->cap_seq ? 2 * pk->cap_seq : 16;
		pk->len = xreallocarray(pk->len, pk->cap_seq, sizeof(int));
		pk->off = xreallocarray(pk->off, pk->cap_seq, sizeof(int));
		pk->seqs = xreallocarray(pk->seqs, pk->cap_seq,
		    sizeof(*pk->seqs));
	}
	if (pk->N + s->len > pk->cap_tok) {
		while (pk->N + s->len > pk->cap_tok)
			pk->cap_tok = pk->cap_tok ? 2 * pk->cap_tok : 1024;
		pk->tokens = xreallocarray(pk->tokens, pk->cap_tok,
		    sizeof(int));
		pk->targets = xreallocarray(pk->targets, pk->cap_tok,
		    sizeof(int));
	}
	pk->len[pk->nseq] = s->len;
	pk->off[pk->nseq] = pk->N;
	pk->seqs[pk->nseq] = s;
	for (int t = 0; t < s->len; t++) {
		pk->tokens[pk->N + t] = s->tok[t];
		pk->targets[pk->N + t] = s->tgt ? s->tgt[t] : -1;
	}
	pk->nseq++;
	pk->N += s->len;
}

static void
pack_free(struct packed *pk)
{
	free(pk->len);
	free(pk->off);
	free(pk->tokens);
	free(pk->targets);
	free(pk->seqs);
}

static struct model_batch
pack_batch(const struct packed *pk, int with_targets)
{
	struct model_batch b = { pk->nseq, pk->len, pk->tokens,
	    with_targets ? pk->targets : NULL };
	return b;
}

/*
 * Run model m forward over every sequence for which want() holds, micro
 * batch by micro batch, and hand each its scored log-probs (nscored) in
 * order through got().
 */
static void
forward_logprobs(struct model *m, int (*want)(struct seq *),
    void (*got)(struct seq *, const float *))
{
	struct packed pk = { 0 };
	float *lp = NULL;
	size_t lpcap = 0;
	size_t per = (size_t)opt.micro * 2;	/* sequences per pass */
	float *buf = xmalloc((size_t)max_len * sizeof(float));

	for (size_t i = 0; i < nex;) {
		pack_clear(&pk);
		for (; i < nex && (size_t)pk.nseq < per; i++)
			for (int k = 0; k < ex[i].nseq; k++)
				if (want(&ex[i].s[k]))
					pack_add(&pk, &ex[i].s[k]);
		if (pk.nseq == 0)
			continue;
		if ((size_t)pk.N > lpcap) {
			lpcap = pk.N;
			lp = xreallocarray(lp, lpcap, sizeof(float));
		}
		struct model_batch b = pack_batch(&pk, 1);
		model_forward(m, &b, lp);
		for (int k = 0; k < pk.nseq; k++) {
			struct seq *s = pk.seqs[k];
			int n = 0;
			for (int t = 0; t < s->len; t++)
				if (s->tgt[t] >= 0)
					buf[n++] = lp[pk.off[k] + t];
			got(s, buf);
		}
	}
	free(buf);
	free(lp);
	pack_free(&pk);
}

static int
want_ref(struct seq *s)
{
	if (opt.objective == OBJ_DPO)
		return !s->has_ref;
	return opt.kl_coef > 0 && s->ref == NULL;
}

static void
got_ref(struct seq *s, const float *lp)
{
	if (opt.objective == OBJ_DPO) {
		s->ref_sum = 0;
		for (int t = 0; t < s->nscored; t++)
			s->ref_sum += lp[t];
		s->has_ref = 1;
	} else {
		s->ref = xmalloc(s->nscored * sizeof(float));
		memcpy(s->ref, lp, s->nscored * sizeof(float));
	}
}

static int
want_old(struct seq *s)
{
	return s->old == NULL;
}

static void
got_old(struct seq *s, const float *lp)
{
	s->old = xmalloc(s->nscored * sizeof(float));
	memcpy(s->old, lp, s->nscored * sizeof(float));
}

/*
 * Reference log-probs the records lack, from --ref.  The reference model
 * is loaded, run forward, and freed before the policy's training begins:
 * it never holds gradients, moments or activations of its own during a
 * step.
 */
static void
reference_logprobs(void)
{
	size_t need = 0;
	for (size_t i = 0; i < nex; i++)
		for (int k = 0; k < ex[i].nseq; k++)
			need += want_ref(&ex[i].s[k]);
	if (need == 0 || opt.ref == NULL)
		return;
	struct ckpt *rc = ckpt_load(opt.ref);
	struct model *ref = model_from_ckpt(rc);
	ckpt_free(rc);
	if (!ref->cfg.lm_head)
		errx(EXIT_DATA, "%s: --ref needs a causal language model",
		    opt.ref);
	forward_logprobs(ref, want_ref, got_ref);
	model_free(ref);
}

/* ------------------------------------------------------------------------ */
/* 4. The step */

/* What one optimizer step adds up for its metrics record. */
struct step_stats {
	double loss;
	long long tokens, truncated;
	double scored;			/* sft: loss tokens */
	double correct, chosen, rejected, margin, pairs;	/* dpo, rm */
	double reward_sum, adv_sum, adv_sq, samples;		/* pg */
	struct pg_stats pg;
};

/*
 * The normaliser of a batch: every example's loss is divided by it, so
 * summing over micro-batches (and, later, processes) gives the batch loss.
 *   sft: scored tokens;  dpo, rm: pairs;  pg: tokens or sequences.
 */
static double
batch_norm(const size_t *idx, size_t n)
{
	double d = 0;
	for (size_t i = 0; i < n; i++) {
		const struct example *e = &ex[idx[i]];
		if (opt.objective == OBJ_SFT ||
		    (opt.objective == OBJ_PG && opt.agg == AGG_TOKEN))
			d += e->s[0].nscored;
		else
			d += 1;
	}
	return d > 0 ? d : 1;
}

/*
 * The loss of the examples of one micro-batch, given the model's output:
 * fills dlp (N) and dscores (N) and adds to *st.
 */
static void
micro_loss(const struct packed *pk, struct example **exs, int nexs,
    const float *lp, const float *scores, float *dlp, float *dscores,
    double norm, struct step_stats *st)
{
	/* (max_len) each: policy, d loss, rollout and reference log-probs */
	double *buf = xmalloc((size_t)max_len * 4 * sizeof(double));
	double *dbuf = buf + max_len, *old = dbuf + max_len,
	    *ref = old + max_len;
	int k = 0;		/* sequence index in pk */

	for (int i = 0; i < nexs; i++) {
		struct example *e = exs[i];
		int o0 = pk->off[k], o1 = e->nseq > 1 ? pk->off[k + 1] : 0;
		struct seq *s0 = &e->s[0], *s1 = &e->s[1];

		switch (opt.objective) {
		case OBJ_SFT: {
			double l = 0;
			for (int t = 0; t < s0->len; t++)
				if (s0->tgt[t] >= 0) {
					l -= lp[o0 + t];
					dlp[o0 + t] = (float)(-1 / norm);
				}
			st->loss += l / norm;
			st->scored += s0->nscored;
			break;
		}
		case OBJ_DPO: {
			struct dpo_in in = { 0, s0->ref_sum, 0, s1->ref_sum,
			    s0->nscored, s1->nscored };
			struct dpo_out out;
			for (int t = 0; t < s0->len; t++)
				if (s0->tgt[t] >= 0)
					in.pol_w += lp[o0 + t];
			for (int t = 0; t < s1->len; t++)
				if (s1->tgt[t] >= 0)
					in.pol_l += lp[o1 + t];
			loss_dpo(opt.dpo_variant, opt.beta, e->label_smoothing,
			    opt.nll_coef, 1 / norm, &in, &out);
			for (int t = 0; t < s0->len; t++)
				if (s0->tgt[t] >= 0)
					dlp[o0 + t] = (float)out.d_w;
			for (int t = 0; t < s1->len; t++)
				if (s1->tgt[t] >= 0)
					dlp[o1 + t] = (float)out.d_l;
			st->loss += out.loss;
			st->correct += out.chosen_reward > out.rejected_reward;
			st->chosen += out.chosen_reward;
			st->rejected += out.rejected_reward;
			st->margin += out.chosen_reward - out.rejected_reward;
			st->pairs++;
			break;
		}
		case OBJ_RM: {
			/* The head's score at each sequence's last token. */
			int lw = o0 + s0->len - 1, ll = o1 + s1->len - 1;
			double dw, dl;
			st->loss += loss_rm(scores[lw], scores[ll], 1 / norm,
			    &dw, &dl);
			dscores[lw] = (float)dw;
			dscores[ll] = (float)dl;
			st->correct += scores[lw] > scores[ll];
			st->margin += (double)scores[lw] - scores[ll];
			st->pairs++;
			break;
		}
		case OBJ_PG: {
			int n = 0;
			for (int t = 0; t < s0->len; t++)
				if (s0->tgt[t] >= 0)
					buf[n++] = lp[o0 + t];
			for (int t = 0; t < n; t++) {
				old[t] = s0->old[t];
				if (s0->ref)
					ref[t] = s0->ref[t];
			}
			double scale = e->weight / (opt.agg == AGG_TOKEN ?
			    norm : norm * n);
			st->loss += loss_ppo(n, buf, old, s0->ref ? ref : NULL,
			    e->adv, opt.clip, opt.kl_coef, opt.kl_est, scale,
			    dbuf, &st->pg);
			n = 0;
			for (int t = 0; t < s0->len; t++)
				if (s0->tgt[t] >= 0)
					dlp[o0 + t] = (float)dbuf[n++];
			st->reward_sum += e->reward;
			st->adv_sum += e->adv;
			st->adv_sq += e->adv * e->adv;
			st->samples++;
			break;
		}
		}
		for (int j = 0; j < e->nseq; j++)
			st->truncated += e->s[j].truncated;
		k += e->nseq;
	}
	free(buf);
}

/*
 * Data-parallel hook: with several processes, each would sum its
 * gradients with the others' here, after every backward of the step and
 * before clipping and the update; each process's losses must then be
 * divided by the normaliser of the whole batch (batch_norm over every
 * process's records, a count that can be summed before the step).  One
 * process has nothing to do.
 */
static void
sum_gradients(float *grads, size_t n)
{
	(void)grads;
	(void)n;
}

static struct adamw adam;

/*
 * One optimizer step over the examples idx[0..n): micro-batches through
 * forward, loss and backward, the gradients accumulated in m->grads, then
 * clipping and AdamW.  Returns the gradient norm before clipping.
 */
static double
train_step(struct model *m, const size_t *idx, size_t n, double lr,
    int64_t stepno, struct step_stats *st)
{
	struct packed pk = { 0 };
	struct example **exs = xreallocarray(NULL, opt.micro,
	    sizeof(*exs));
	double norm = batch_norm(idx, n);
	float *lp = NULL, *dlp = NULL, *dscores = NULL;
	int cap = 0;

	model_zero_grad(m);
	for (size_t i = 0; i < n;) {
		int nexs = 0;
		pack_clear(&pk);
		for (; i < n && nexs < opt.micro; i++) {
			struct example *e = &ex[idx[i]];
			exs[nexs++] = e;
			for (int k = 0; k < e->nseq; k++)
				pack_add(&pk, &e->s[k]);
		}
		if (pk.N > cap) {
			cap = pk.N;
			lp = xreallocarray(lp, cap, sizeof(float));
			dlp = xreallocarray(dlp, cap, sizeof(float));
			dscores = xreallocarray(dscores, cap, sizeof(float));
		}
		/* (N) d loss / d logprob, zero where nothing is scored */
		memset(dlp, 0, pk.N * sizeof(float));
		memset(dscores, 0, pk.N * sizeof(float));
		int rm = opt.objective == OBJ_RM;
		struct model_batch b = pack_batch(&pk, !rm);
		model_forward(m, &b, rm ? NULL : lp);
		micro_loss(&pk, exs, nexs, lp, rm ? model_scores(m) : NULL,
		    dlp, dscores, norm, st);
		model_backward(m, rm ? NULL : dlp, rm ? dscores : NULL);
		st->tokens += pk.N;
	}
	free(lp);
	free(dlp);
	free(dscores);
	free(exs);
	pack_free(&pk);

	sum_gradients(m->grads, m->nparams);
	double gn = grad_norm(m->grads, m->nparams);
	/* A non-finite step would poison the checkpoint: stop before it. */
	if (!isfinite(st->loss))
		errx(EXIT_DATA, "step %lld: non-finite loss (%g); no "
		    "checkpoint written", (long long)stepno, st->loss);
	if (!isfinite(gn))
		errx(EXIT_DATA, "step %lld: non-finite gradient norm (%g); no "
		    "checkpoint written", (long long)stepno, gn);
	grad_clip(m->grads, m->nparams, gn, opt.clip_grad);
	adamw_step(&adam, m->params, m->grads, lr);
	return gn;
}

/* ------------------------------------------------------------------------ */
/* 5. Optimizer state in the checkpoint */

static struct lr_sched sched;
static int sched_fixed;		/* the horizon was given, not inferred */

/* Moments from optimizer.safetensors and the step from
 * trainer_state.json; returns whether there was state to continue. */
static int
load_state(struct model *m)
{
	struct st_set *os = ckpt_extra(ckpt, "optimizer.safetensors");
	json_t *ts = ckpt_json(ckpt, "trainer_state.json");
	char name[160];

	if (os == NULL || ts == NULL || opt.reset_optimizer) {
		if (ts)
			json_decref(ts);
		return 0;
	}
	json_t *step = json_object_get(ts, "step");
	if (!json_is_integer(step) || json_integer_value(step) < 0)
		errx(EXIT_DATA, "%s: trainer_state.json: step: expected a "
		    "non-negative integer", opt.model);
	adam.t = json_integer_value(step);
	json_t *ss = json_object_get(ts, "schedule_steps");
	if (opt.sched_steps < 0 && json_is_integer(ss) &&
	    json_is_true(json_object_get(ts, "schedule_steps_fixed"))) {
		sched.total = json_integer_value(ss);
		sched_fixed = 1;
	}
	json_decref(ts);
	for (int i = 0; i < m->ntensors; i++) {
		const struct model_tensor *t = &m->tensors[i];
		for (int k = 0; k < 2; k++) {
			snprintf(name, sizeof(name), "%s.%s",
			    k ? "exp_avg_sq" : "exp_avg", t->name);
			const struct tensor *x = st_set_find(os, name);
			if (x == NULL || x->n != t->n)
				errx(EXIT_DATA, "%s: optimizer.safetensors: "
				    "tensor %s: %s (--reset-optimizer starts "
				    "afresh)", opt.model, name,
				    x ? "wrong size" : "missing");
			memcpy((k ? adam.v : adam.m) + t->offset, x->data,
			    t->n * sizeof(float));
		}
	}
	return 1;
}

static void
save_checkpoint(struct model *m)
{
	struct ckpt_writer *w = ckpt_writer_open(opt.out, opt.dtype);
	static const char *obj[] = { "sft", "dpo", "rm", "pg" };
	char name[160];

	ckpt_writer_carry(w, ckpt);
	model_save(m, w);
	/* Moments stay fp32 whatever the weights' dtype: resuming exactly. */
	for (int i = 0; i < m->ntensors; i++) {
		const struct model_tensor *t = &m->tensors[i];
		for (int k = 0; k < 2; k++) {
			snprintf(name, sizeof(name), "%s.%s",
			    k ? "exp_avg_sq" : "exp_avg", t->name);
			ckpt_writer_add_tensor_to(w, "optimizer.safetensors",
			    name, t->ndim, t->shape,
			    (k ? adam.v : adam.m) + t->offset, DT_F32);
		}
	}
	json_t *ts = json_pack("{s:I, s:s, s:s, s:f, s:f, s:I, s:I, s:b, "
	    "s:f, s:f, s:f, s:f, s:f, s:I}",
	    "step", (json_int_t)adam.t,
	    "objective", obj[opt.objective],
	    "schedule", lr_schedule_name(sched.kind),
	    "lr", sched.lr, "min_lr", sched.min_lr,
	    "warmup", (json_int_t)sched.warmup,
	    "schedule_steps", (json_int_t)sched.total,
	    "schedule_steps_fixed", sched_fixed,
	    "weight_decay", opt.weight_decay,
	    "adam_beta1", opt.beta1, "adam_beta2", opt.beta2,
	    "adam_eps", opt.eps, "clip_grad", opt.clip_grad,
	    "seed", (json_int_t)opt.seed);
	ckpt_writer_add_json(w, "trainer_state.json", ts);
	json_decref(ts);
	ckpt_writer_commit(w);
}

/* The policy (or reward model) to train. */
static struct model *
load_model(void)
{
	if (!opt.add_head) {
		struct model *m = model_from_ckpt(ckpt);
		if (opt.objective == OBJ_RM && m->cfg.num_labels < 1)
			errx(EXIT_DATA, "%s: --loss rm needs a reward model "
			    "(score.weight); --add-head adds one", opt.model);
		if (opt.objective == OBJ_RM && m->cfg.num_labels != 1)
			errx(EXIT_DATA, "%s: --loss rm needs one label, the "
			    "head has %d", opt.model, m->cfg.num_labels);
		if (opt.objective != OBJ_RM && !m->cfg.lm_head)
			errx(EXIT_DATA, "%s: --loss %s needs a causal language "
			    "model", opt.model, opt.objective == OBJ_SFT ?
			    "sft" : opt.objective == OBJ_DPO ? "dpo" : "pg");
		return m;
	}
	if (opt.objective != OBJ_RM)
		pp_usage("--add-head goes with --loss rm");
	/* A causal LM's body under a fresh reward head: HF's
	 * ForSequenceClassification drops lm_head and adds score. */
	struct model_config cfg;
	char e[512];
	if (model_config_from_json(&cfg, ckpt_config(ckpt), e, sizeof(e)) != 0)
		errx(EXIT_DATA, "%s: %s", opt.model, e);
	if (!cfg.lm_head)
		errx(EXIT_DATA, "%s: --add-head: the model already has a "
		    "classification head", opt.model);
	cfg.lm_head = 0;
	cfg.num_labels = 1;
	struct model *m = model_new(&cfg);
	for (int i = 0; i < m->ntensors; i++) {
		const struct model_tensor *t = &m->tensors[i];
		if (strcmp(t->name, "score.weight") == 0) {
			memset(m->params + t->offset, 0, t->n * sizeof(float));
			continue;
		}
		const struct tensor *ct = ckpt_need(ckpt, t->name, t->ndim,
		    t->shape);
		memcpy(m->params + t->offset, ct->data, t->n * sizeof(float));
		ckpt_drop(ckpt, ct);
	}
	/* Optimizer state of the language model does not fit the head. */
	opt.reset_optimizer = 1;
	return m;
}

/* ------------------------------------------------------------------------ */
/* 6. main */

/* Advantages of the pg samples; greedy baselines are then set aside. */
static void
pg_prepare(void)
{
	double *r = xmalloc((nex + 1) * sizeof(double));
	double *a = xmalloc((nex + 1) * sizeof(double));
	int *g = xmalloc((nex + 1) * sizeof(int));
	int *gr = xmalloc((nex + 1) * sizeof(int));
	for (size_t i = 0; i < nex; i++) {
		r[i] = ex[i].reward;
		g[i] = ex[i].group;
		gr[i] = ex[i].greedy;
	}
	int bad = pg_advantages(opt.advantage, opt.scale, (int)nex, r, g, gr,
	    ngroups, a);
	if (bad) {
		for (size_t i = 0; i < nex; i++)
			if (ex[i].group == bad - 1)
				errx(EXIT_DATA, "stdin: record %llu: field "
				    "\"id\": its group %s",
				    (unsigned long long)ex[i].recno,
				    opt.advantage == ADV_REMAX ?
				    "has no greedy sample (rollout "
				    "--greedy-baseline) for remax" :
				    "has a single sample: rloo needs two");
	}
	size_t k = 0;
	for (size_t i = 0; i < nex; i++) {
		ex[i].adv = a[i];
		if (ex[i].greedy)
			seq_free(&ex[i].s[0]);
		else
			ex[k++] = ex[i];
	}
	nex = k;
	free(r);
	free(a);
	free(g);
	free(gr);
}

static void
emit_metrics(struct rec_writer *w, int64_t step, double lr, double gn,
    double secs, size_t nrecs, const struct step_stats *st)
{
	struct rec o;
	rec_init(&o, "metrics", (uint64_t)step);
	rec_set_int(&o, "step", step);
	rec_set_num(&o, "loss", st->loss);
	rec_set_num(&o, "lr", lr);
	rec_set_num(&o, "grad_norm", gn);
	rec_set_int(&o, "tokens", st->tokens);
	rec_set_num(&o, "seconds", secs);
	rec_set_int(&o, "records", (int64_t)nrecs);
	switch (opt.objective) {
	case OBJ_SFT:
		rec_set_num(&o, "ppl", exp(st->loss));
		break;
	case OBJ_DPO:
		rec_set_num(&o, "reward_accuracy", st->correct / st->pairs);
		rec_set_num(&o, "chosen_reward", st->chosen / st->pairs);
		rec_set_num(&o, "rejected_reward", st->rejected / st->pairs);
		rec_set_num(&o, "margin", st->margin / st->pairs);
		break;
	case OBJ_RM:
		rec_set_num(&o, "accuracy", st->correct / st->pairs);
		rec_set_num(&o, "margin", st->margin / st->pairs);
		break;
	case OBJ_PG: {
		double ns = st->samples > 0 ? st->samples : 1;
		double nt = st->pg.tokens > 0 ? st->pg.tokens : 1;
		double mean = st->adv_sum / ns;
		double var = st->adv_sq / ns - mean * mean;
		rec_set_num(&o, "reward_mean", st->reward_sum / ns);
		rec_set_num(&o, "adv_std", sqrt(var > 0 ? var : 0));
		rec_set_num(&o, "kl", st->pg.kl_sum / nt);
		rec_set_num(&o, "clip_fraction", st->pg.clipped / nt);
		rec_set_num(&o, "ratio_mean", st->pg.ratio_sum / nt);
		break;
	}
	}
	rec_set_int(&o, "truncated", st->truncated);
	if (ndropped)
		rec_set_uint(&o, "dropped", ndropped);
	rec_write(w, &o);
	rec_writer_flush(w);
	rec_free(&o);
}

int
main(int argc, char **argv)
{
	pp_init(argc, argv);
	pp_synopsis = SYNOPSIS;
	parse_options(argc, argv);

	ckpt = ckpt_load(opt.model);
	struct model *m = load_model();
	max_len = m->cfg.max_seq_len;
	if (opt.max_length > 0 && opt.max_length < max_len)
		max_len = (int)opt.max_length;
	if (m->cfg.n_eos > 0)
		eos_id = m->cfg.eos_ids[0];

	read_examples(m->cfg.vocab_size);
	if (nex == 0)
		errx(EXIT_DATA, "stdin: no records to train on%s",
		    ndropped ? " (every one longer than --max-length)" : "");
	if (opt.objective == OBJ_PG) {
		pg_prepare();
		if (nex == 0)
			errx(EXIT_DATA, "stdin: only greedy baselines");
	}
	reference_logprobs();
	/* No rollout log-probs: the policy as it is now sampled them. */
	if (opt.objective == OBJ_PG)
		forward_logprobs(m, want_old, got_old);

	adamw_init(&adam, m->nparams, opt.beta1, opt.beta2, opt.eps,
	    opt.weight_decay);
	/* Decoupled weight decay spares norm weights and biases. */
	struct optim_range *rg = xreallocarray(NULL, m->ntensors,
	    sizeof(*rg));
	for (int i = 0; i < m->ntensors; i++) {
		rg[i].offset = m->tensors[i].offset;
		rg[i].n = m->tensors[i].n;
		rg[i].decay = !m->tensors[i].is_norm && !m->tensors[i].is_bias;
	}
	adamw_set_ranges(&adam, rg, m->ntensors);
	free(rg);

	size_t nbatches = (nex + opt.batch - 1) / opt.batch;
	int64_t planned = (int64_t)opt.epochs * nbatches * opt.ppo_epochs;
	if (opt.max_steps >= 0 && planned > opt.max_steps)
		planned = opt.max_steps;
	sched.kind = opt.schedule;
	sched.lr = opt.lr;
	sched.min_lr = opt.min_lr;
	sched.warmup = opt.warmup;
	if (opt.sched_steps > 0) {
		sched.total = opt.sched_steps;
		sched_fixed = 1;
	}
	load_state(m);
	if (!sched_fixed)
		sched.total = adam.t + planned;

	struct rec_writer *w = rec_writer_open(1, "stdout", opt.out_flags);
	size_t *order = xmalloc(nex * sizeof(size_t));
	int progress = isatty(2);
	int64_t done = 0;
	for (long long ep = 0; ep < opt.epochs && done < planned; ep++) {
		for (size_t i = 0; i < nex; i++)
			order[i] = i;
		if (opt.shuffle) {
			/* Fisher-Yates from a stream of (seed, step, epoch):
			 * a resumed run does not replay the same order. */
			struct rng g;
			uint64_t key[2] = { (uint64_t)adam.t, (uint64_t)ep };
			rng_stream(&g, opt.seed, key, 2);
			for (size_t i = nex; i > 1; i--) {
				size_t j = rng_below(&g, i);
				size_t t = order[i - 1];
				order[i - 1] = order[j];
				order[j] = t;
			}
		}
		for (size_t b = 0; b < nbatches && done < planned; b++) {
			size_t lo = b * opt.batch, hi = lo + opt.batch;
			if (hi > nex)
				hi = nex;
			for (long long pe = 0; pe < opt.ppo_epochs &&
			    done < planned; pe++) {
				struct step_stats st = { 0 };
				double t0 = pp_now();
				double lr = lr_at(&sched, adam.t);
				double gn = train_step(m, order + lo, hi - lo,
				    lr, adam.t + 1, &st);
				done++;
				emit_metrics(w, adam.t, lr, gn, pp_now() - t0,
				    hi - lo, &st);
				if (progress)
					fprintf(stderr, "\rtrain-step: step "
					    "%lld/%lld loss %.4f ",
					    (long long)done,
					    (long long)planned, st.loss);
			}
		}
	}
	if (progress)
		fputc('\n', stderr);
	rec_writer_close(w);

	save_checkpoint(m);

	for (size_t i = 0; i < nex; i++)
		for (int k = 0; k < ex[i].nseq; k++)
			seq_free(&ex[i].s[k]);
	free(ex);
	free(order);
	adamw_free(&adam);
	model_free(m);
	if (tok)
		tokenizer_free(tok);
	strmap_free(groups);
	ckpt_free(ckpt);
	pp_close_stdout();
	return 0;
}
