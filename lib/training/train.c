/*
 * train.c: the training loop; see train.h.
 *
 * In the order a run goes:
 *   1. the context: checkpoint, model, conversation rules
 *   2. examples read, advantages (pg)
 *   3. reference and rollout log-probs computed by forward passes
 *   4. the step: micro-batches through forward, loss, backward; the
 *      gradients summed; clipping; AdamW; the non-finite guard
 *   5. optimizer state in and out of the checkpoint
 *   6. the plan: epochs, batches, PPO epochs; metrics
 *
 * Data-parallel training under mpirun fits between backward and the
 * update (sum_gradients()); the reference and rollout log-probs are split
 * across the ranks the same way (forward_logprobs()).
 */
#include "config.h"

#include <err.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "checkpoints/checkpoint.h"
#include "model/model.h"
#include "model/model_lora.h"
#include "records/record.h"
#include "text/chat.h"
#include "text/conversation.h"
#include "text/tokenizer.h"
#include "training/train_impl.h"
#include "util/dist.h"
#include "util/rng.h"
#include "util/strmap.h"
#include "util/util.h"

static const char *const objective_names[OBJ_COUNT] = { "sft", "dpo", "rm",
    "pg", "simpo", "orpo", "kto", "ppo", "value" };

int
train_objective_parse(const char *s)
{
	for (int i = 0; i < OBJ_COUNT; i++)
		if (strcmp(s, objective_names[i]) == 0)
			return i;
	return -1;
}

const char *
train_objective_name(int objective)
{
	return objective >= 0 && objective < OBJ_COUNT ?
	    objective_names[objective] :
	    "?";
}

void
train_opts_init(struct train_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->objective = -1;
	o->lr = 1e-5;
	o->clip_grad = 1.0;
	o->beta1 = 0.9;
	o->beta2 = 0.999;
	o->eps = 1e-8;
	o->batch = 8;
	o->epochs = 1;
	o->max_steps = -1;
	o->sched_steps = -1;
	o->schedule = SCHED_CONSTANT;
	o->shuffle = 1;
	o->max_length = -1;
	o->beta = 0.1;
	o->simpo_gamma = 1.0;
	o->orpo_lambda = 0.1;
	o->kto_desirable = 1;
	o->kto_undesirable = 1;
	o->dpo_variant = DPO_SIGMOID;
	o->advantage = ADV_GRPO;
	o->scale = SCALE_GROUP;
	o->kl_est = KL_K3;
	o->agg = AGG_TOKEN;
	o->clip = 0.2;
	o->ppo_epochs = 1;
	o->gamma = 1;
	o->lambda = 0.95;
	o->value_clip = 0.2;
	o->whiten = 1;
}

/* ------------------------------------------------------------------------ */
/* 1. The context */

int
train_has_ref(const struct train_ctx *t)
{
	return t->o.ref != NULL || t->o.lora_rank > 0 ||
	    t->msrc.adapter != NULL;
}

static int trainable(const struct model_tensor *mt, void *arg);

/*
 * The adapters' config: new ones from the options, or the adapter's,
 * which options given again must match (--lora-dropout may change: it
 * only shapes training).
 */
static void
lora_options(struct train_ctx *t, struct model_lora *lc)
{
	const struct train_opts *o = &t->o;
	char e[512];

	if (t->msrc.adapter != NULL) {
		json_t *ac = ckpt_json(t->msrc.adapter, "adapter_config.json");
		struct model_lora given;

		if (lora_config_from_json(lc, ac, e, sizeof(e)) != 0)
			errx(EXIT_DATA, "%s: %s", o->model, e);
		json_decref(ac);
		given = *lc;
		if (o->lora_targets != NULL &&
		    lora_targets_parse(&given, o->lora_targets, e,
		    sizeof(e)) != 0)
			pp_usage("--lora-targets: %s", e);
		if ((o->lora_rank > 0 && o->lora_rank != lc->rank) ||
		    (o->lora_alpha_set && o->lora_alpha != lc->alpha) ||
		    given.targets != lc->targets)
			pp_usage("%s is an adapter of r %d, lora_alpha %g: "
			    "--lora-rank, --lora-alpha and --lora-targets "
			    "must match it", o->model, lc->rank, lc->alpha);
		if (o->lora_dropout_set)
			lc->dropout = o->lora_dropout;
		if (o->train_modules != NULL)
			pp_usage("--train-modules: %s keeps its own "
			    "modules_to_save", o->model);
		return;
	}
	memset(lc, 0, sizeof(*lc));
	lc->rank = o->lora_rank;
	lc->alpha = o->lora_alpha_set ? o->lora_alpha : 8;	/* PEFT's */
	lc->dropout = o->lora_dropout;
	lc->targets = (1u << LORA_NTARGET) - 1;
	if (o->lora_targets != NULL &&
	    lora_targets_parse(lc, o->lora_targets, e, sizeof(e)) != 0)
		pp_usage("--lora-targets: %s", e);
}

/* --weights, parsed (train-step checked it). */
static struct model_load_opts
load_opts(const struct train_ctx *t)
{
	struct model_load_opts lo = { MODEL_WEIGHTS_AUTO, MODEL_COMPUTE_F32 };

	if (t->o.weights != NULL &&
	    model_weights_parse(t->o.weights, &lo.weights) != 0)
		pp_usage("--weights: \"%s\" is none of auto, f32, bf16, f16",
		    t->o.weights);
	if (t->o.compute != NULL &&
	    model_compute_parse(t->o.compute, &lo.compute) != 0)
		pp_usage("--compute: \"%s\" is neither f32 nor bf16",
		    t->o.compute);
	return lo;
}

/* The policy (or reward model) to train. */
static struct model *
load_model(struct train_ctx *t)
{
	const struct train_opts *o = &t->o;
	if (o->lora_rank > 0 || t->msrc.adapter != NULL) {
		struct model_lora lc;
		lora_options(t, &lc);
		t->lora = lc;
		if (t->msrc.adapter == NULL)
			t->modules = o->train_modules;
		else
			t->modules = t->msrc.modules;
	}
	if (!o->add_head) {
		/* A LoRA base is frozen: its matrices as --weights says (a
		 * 16-bit checkpoint's in 16 bits) from the first read, the
		 * adapters and --train-modules fp32. */
		struct model_load_opts lo = load_opts(t);
		struct model *m = t->lora.rank > 0 ?
		    model_src_load(&t->msrc, &t->lora, trainable, t,
		    model_load_dtype(t->ckpt, &lo)) :
		    model_from_ckpt(t->ckpt);
		if (t->lora.rank > 0)
			model_set_compute(m, lo.compute);
		if (t->lora.rank > 0 && t->msrc.adapter == NULL)
			model_lora_init(m, o->seed);
		if (t->msrc.adapter != NULL)	/* --lora-dropout */
			m->cfg.lora.dropout = t->lora.dropout;
		const char *name = train_objective_name(o->objective);
		if (OBJ_IS_HEAD(o->objective) && m->cfg.num_labels < 1)
			errx(EXIT_DATA, "%s: --loss %s needs a %s (a score "
			    "head, score.weight); --add-head adds one",
			    o->model, name, o->objective == OBJ_RM ?
			    "reward model" : "critic");
		if (OBJ_IS_HEAD(o->objective) && m->cfg.num_labels != 1)
			errx(EXIT_DATA, "%s: --loss %s needs one label, the "
			    "head has %d", o->model, name, m->cfg.num_labels);
		if (!OBJ_IS_HEAD(o->objective) && !m->cfg.lm_head)
			errx(EXIT_DATA, "%s: --loss %s needs a causal language "
			    "model", o->model,
			    train_objective_name(o->objective));
		return m;
	}
	/* A causal LM's body under a fresh reward head: HF's
	 * ForSequenceClassification drops lm_head and adds score. */
	struct model_config cfg;
	char e[512], w[4096];
	if (model_config_from_json(&cfg, ckpt_config(t->ckpt), e,
	    sizeof(e)) != 0)
		errx(EXIT_DATA, "%s: %s", ckpt_where(t->ckpt, "config.json", w,
		    sizeof w), e);
	if (!cfg.lm_head)
		errx(EXIT_DATA, "%s: --add-head: the model already has a "
		    "classification head", o->model);
	if (t->lora.rank > 0)
		pp_usage("--add-head with LoRA: add the head first "
		    "(train-step --add-head), then train adapters on it");
	cfg.lm_head = 0;
	cfg.num_labels = 1;
	struct model *m = model_new(&cfg);
	for (int i = 0; i < m->ntensors; i++) {
		const struct model_tensor *mt = &m->tensors[i];
		if (strcmp(mt->name, "score.weight") == 0) {
			memset(m->params + mt->offset, 0, mt->n *
			    sizeof(float));
			continue;
		}
		const struct tensor *ct = ckpt_need(t->ckpt, mt->name,
		    mt->ndim, mt->shape);
		memcpy(m->params + mt->offset, ct->data, mt->n *
		    sizeof(float));
		ckpt_drop(t->ckpt, ct);
	}
	/* Optimizer state of the language model does not fit the head. */
	t->o.reset_optimizer = 1;
	return m;
}

/*
 * --freeze: the tensors whose HF names match one of the comma-separated
 * globs (fnmatch) get no gradient, no dW work and no optimizer state.
 * A glob that matches nothing is a usage error, as is freezing all.
 */
static int
glob_list_match(const char *list, const char *name)
{
	char pat[256];
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ",");
		if (n > 0 && n < sizeof(pat)) {
			memcpy(pat, p, n);
			pat[n] = '\0';
			if (fnmatch(pat, name, 0) == 0)
				return 1;
		}
		p += n + (p[n] == ',');
	}
	return 0;
}

static int
not_frozen(const struct model_tensor *mt, void *arg)
{
	return !glob_list_match(arg, mt->name);
}

/*
 * With LoRA: the adapters and the --train-modules (PEFT's
 * modules_to_save) train, the base is frozen; --freeze may freeze more.
 */
static int
trainable(const struct model_tensor *mt, void *arg)
{
	const struct train_ctx *t = arg;

	if (t->o.freeze != NULL && glob_list_match(t->o.freeze, mt->name))
		return 0;
	return mt->lora || lora_module_match(t->modules, mt);
}

static void
apply_freeze(struct train_ctx *t)
{
	const char *list = t->o.freeze;
	struct model *m = t->m;
	char pat[256];

	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ",");
		if (n == 0 || n >= sizeof(pat))
			pp_usage("--freeze: an empty or overlong pattern in "
			    "\"%s\"", list);
		memcpy(pat, p, n);
		pat[n] = '\0';
		int hit = 0;
		for (int i = 0; i < m->ntensors && !hit; i++)
			hit = fnmatch(pat, m->tensors[i].name, 0) == 0;
		if (!hit)
			pp_usage("--freeze: \"%s\" matches no tensor of %s",
			    pat, t->o.model);
		p += n + (p[n] == ',');
	}
	if (t->lora.rank > 0) {	/* laid out as it was loaded */
		if (m->ntrain == 0)
			pp_usage("--freeze: \"%s\" freezes every adapter",
			    list);
		return;
	}
	if (model_set_trainable(m, not_frozen, (void *)list) == 0)
		pp_usage("--freeze: \"%s\" freezes every tensor", list);
}

/* --train-modules: each must name a module of the model. */
static void
check_modules(struct train_ctx *t)
{
	const char *list = t->modules;
	struct model *m = t->m;

	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ",");
		char one[128];
		int hit = 0;

		if (n == 0 || n >= sizeof(one))
			pp_usage("--train-modules: an empty or overlong name "
			    "in \"%s\"", list);
		memcpy(one, p, n);
		one[n] = '\0';
		for (int i = 0; i < m->ntensors && !hit; i++)
			hit = lora_module_match(one, &m->tensors[i]);
		if (!hit)
			pp_usage("--train-modules: \"%s\" is no module of %s",
			    one, t->o.model);
		p += n + (p[n] == ',');
	}
}

struct train_ctx *
train_new(const struct train_opts *o)
{
	struct train_ctx *t = xcalloc(1, sizeof(*t));

	t->o = *o;
	if (t->o.micro <= 0 || t->o.micro > t->o.batch)
		t->o.micro = t->o.batch;
	if (o->lora_rank <= 0 && (o->lora_targets || o->train_modules ||
	    o->lora_alpha_set || o->lora_dropout_set) &&
	    !lora_path_is_adapter(o->model))
		pp_usage("--lora-targets, --lora-alpha, --lora-dropout and "
		    "--train-modules go with --lora-rank (or -m ADAPTER)");
	if (o->base != NULL && !lora_path_is_adapter(o->model))
		pp_usage("--base: %s is no adapter directory", o->model);
	model_src_open(&t->msrc, o->model, o->base);
	t->ckpt = t->msrc.ckpt;
	t->m = load_model(t);
	if (t->modules != NULL)
		check_modules(t);
	if (o->freeze) {
		struct model_load_opts lo = load_opts(t);

		apply_freeze(t);
		/* the frozen matrices as the reference's: in 16 bits from a
		 * 16-bit checkpoint (exactly its values), or as --weights */
		if (model_load_dtype(t->ckpt, &lo) != DT_F32 &&
		    t->m->cfg.lora.rank == 0)
			model_hold(t->m, model_load_dtype(t->ckpt, &lo));
		model_set_compute(t->m, lo.compute);
	}
	model_set_recompute(t->m, o->recompute);
	t->max_len = t->m->cfg.max_seq_len;
	if (o->max_length > 0 && o->max_length < t->max_len)
		t->max_len = (int)o->max_length;
	/* The conversation rules load with the first record that needs
	 * them (train_conv); a bad template name is a usage error now. */
	if (o->chat_template != NULL &&
	    chat_template_by_name(o->chat_template) == NULL)
		pp_usage("--chat-template: unknown chat template \"%s\" "
		    "(known: %s)", o->chat_template, chat_template_names());
	t->groups = strmap_new();
	t->src = "stdin";
	return t;
}

/*
 * The tokenizer, template and end-of-turn rules, opened the first time a
 * record carries text or messages (or --ref is compared): records of
 * token ids alone never pay for a tokenizer.
 */
struct conv *
train_conv(struct train_ctx *t)
{
	char e[512];

	if (t->conv == NULL) {
		t->conv = conv_open_args(t->ckpt, t->m->cfg.vocab_size,
		    t->o.chat_template, t->o.template_args, e, sizeof(e));
		if (t->conv == NULL)	/* the name was checked: cannot be */
			errx(EXIT_DATA, "%s: %s", t->o.model, e);
	}
	return t->conv;
}

void
train_free(struct train_ctx *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nex; i++)
		for (int k = 0; k < t->ex[i].nseq; k++)
			train_seq_free(&t->ex[i].s[k]);
	free(t->ex);
	free(t->order);
	adamw_free(&t->adam);
	model_free(t->m);
	conv_free(t->conv);
	strmap_free(t->groups);
	model_src_free(&t->msrc);
	free(t);
}

/* ------------------------------------------------------------------------ */
/* 2. Examples */

void
train_read(struct train_ctx *t, struct rec_reader *rd)
{
	struct rec r;

	while (rec_read(rd, &r)) {
		t->src = r.src;
		if (t->nex == t->capex) {
			t->capex = t->capex ? 2 * t->capex : 64;
			t->ex = xreallocarray(t->ex, t->capex, sizeof(*t->ex));
		}
		if (train_read_example(t, &r, &t->ex[t->nex]))
			t->nex++;
		else
			t->ndropped++;
		rec_free(&r);
	}
}

size_t
train_nexamples(const struct train_ctx *t)
{
	return t->nex;
}

uint64_t
train_ndropped(const struct train_ctx *t)
{
	return t->ndropped;
}

/* Advantages of the pg samples; greedy baselines are then set aside. */
static void
pg_prepare(struct train_ctx *t)
{
	size_t nex = t->nex;
	struct example *ex = t->ex;
	double *r = xmalloc((nex + 1) * sizeof(double));
	double *a = xmalloc((nex + 1) * sizeof(double));
	int *g = xmalloc((nex + 1) * sizeof(int));
	int *gr = xmalloc((nex + 1) * sizeof(int));
	for (size_t i = 0; i < nex; i++) {
		r[i] = ex[i].reward;
		g[i] = ex[i].group;
		gr[i] = ex[i].greedy;
	}
	int bad = pg_advantages(t->o.advantage, t->o.scale, (int)nex, r, g,
	    gr, t->ngroups, a);
	if (bad) {
		for (size_t i = 0; i < nex; i++)
			if (ex[i].group == bad - 1)
				errx(EXIT_DATA, "%s: record %llu: field "
				    "\"id\": its group %s", t->src,
				    (unsigned long long)ex[i].recno,
				    t->o.advantage == ADV_REMAX ?
				    "has no greedy sample (rollout "
				    "--greedy-baseline) for remax" :
				    "has a single sample: rloo needs two");
	}
	size_t k = 0;
	for (size_t i = 0; i < nex; i++) {
		ex[i].adv = a[i];
		if (ex[i].greedy)
			train_seq_free(&ex[i].s[0]);
		else
			ex[k++] = ex[i];
	}
	t->nex = k;
	free(r);
	free(a);
	free(g);
	free(gr);
}

/*
 * ppo and value: each sample's per-token rewards, the KL penalty of its
 * rollout policy from the reference at every token and the reward at the
 * last one,
 *   r_t = -kl_coef (old_t - ref_t) + [t = n - 1] reward,
 * then GAE over the values the samples were scored with: advantages and
 * returns (the critic's targets).  ppo whitens the advantages over every
 * token of every sample read: zero mean, unit variance (unbiased; 1e-8
 * under the root).  Every rank computes the same, from all the samples.
 */
static void
ppo_prepare(struct train_ctx *t)
{
	const struct train_opts *o = &t->o;
	double *r = xmalloc(((size_t)t->max_len + 1) * 3 * sizeof(double));
	double *v = r + t->max_len + 1, *a = v + t->max_len + 1;
	double sum = 0, ntok = 0;

	for (size_t i = 0; i < t->nex; i++) {
		struct seq *s = &t->ex[i].s[0];
		int n = s->nscored;
		double *ret = xmalloc((n + 1) * sizeof(double));
		for (int k = 0; k < n; k++) {
			r[k] = s->ref != NULL ?
			    -o->kl_coef * ((double)s->old[k] - s->ref[k]) : 0;
			v[k] = s->val[k];
		}
		r[n - 1] += t->ex[i].reward;
		ppo_gae(n, r, v, o->gamma, o->lambda, a, ret);
		s->adv = xmalloc(n * sizeof(float));
		s->ret = xmalloc(n * sizeof(float));
		for (int k = 0; k < n; k++) {
			s->adv[k] = (float)a[k];
			s->ret[k] = (float)ret[k];
			sum += s->adv[k];
		}
		ntok += n;
		free(ret);
	}
	free(r);
	if (o->objective != OBJ_PPO || !o->whiten || ntok < 2)
		return;
	double mean = sum / ntok, sq = 0;
	for (size_t i = 0; i < t->nex; i++) {
		const struct seq *s = &t->ex[i].s[0];
		for (int k = 0; k < s->nscored; k++)
			sq += (s->adv[k] - mean) * (s->adv[k] - mean);
	}
	double is = 1 / sqrt(sq / (ntok - 1) + 1e-8);
	for (size_t i = 0; i < t->nex; i++) {
		struct seq *s = &t->ex[i].s[0];
		for (int k = 0; k < s->nscored; k++)
			s->adv[k] = (float)((s->adv[k] - mean) * is);
	}
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
	for (int i = 0; i < s->len; i++) {
		pk->tokens[pk->N + i] = s->tok[i];
		pk->targets[pk->N + i] = s->tgt ? s->tgt[i] : -1;
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
forward_logprobs(struct train_ctx *t, struct model *m,
    int (*want)(const struct train_ctx *, struct seq *),
    void (*got)(const struct train_ctx *, struct seq *, const float *))
{
	struct packed pk = { 0 };
	float *lp = NULL;
	size_t lpcap = 0;
	size_t per = (size_t)t->o.micro * 2;	/* sequences per pass */
	int K = pp_dist_size(), rank = pp_dist_rank();

	/*
	 * The sequences wanted, in order, and where each one's log-probs go
	 * in one flat array (asked before any got(), which changes the
	 * answer).  Under mpirun each rank runs a contiguous share of them
	 * and the shares are gathered: every rank ends with all, as if it
	 * had run them all.
	 */
	size_t nw = 0, tot = 0;
	for (size_t i = 0; i < t->nex; i++)
		for (int k = 0; k < t->ex[i].nseq; k++)
			nw += want(t, &t->ex[i].s[k]) != 0;
	struct seq **ws = xreallocarray(NULL, nw + 1, sizeof(*ws));
	size_t *woff = xreallocarray(NULL, nw + 1, sizeof(*woff));
	nw = 0;
	for (size_t i = 0; i < t->nex; i++)
		for (int k = 0; k < t->ex[i].nseq; k++)
			if (want(t, &t->ex[i].s[k])) {
				ws[nw] = &t->ex[i].s[k];
				woff[nw++] = tot;
				tot += t->ex[i].s[k].nscored;
			}
	woff[nw] = tot;
	float *all = xreallocarray(NULL, tot + 1, sizeof(float));
	size_t *count = xreallocarray(NULL, K, sizeof(*count));
	size_t lo = 0, hi = 0;
	for (int r = 0; r < K; r++) {
		pp_dist_slice(nw, r, K, &lo, &hi);
		count[r] = woff[hi] - woff[lo];
	}
	pp_dist_slice(nw, rank, K, &lo, &hi);

	for (size_t i = lo; i < hi;) {
		size_t i0 = i;
		pack_clear(&pk);
		for (; i < hi && (size_t)pk.nseq < per; i++)
			pack_add(&pk, ws[i]);
		if ((size_t)pk.N > lpcap) {
			lpcap = pk.N;
			lp = xreallocarray(lp, lpcap, sizeof(float));
		}
		struct model_batch b = pack_batch(&pk, 1);
		model_forward(m, &b, lp);
		for (int k = 0; k < pk.nseq; k++) {
			struct seq *s = pk.seqs[k];
			float *dst = all + woff[i0 + k];
			for (int j = 0; j < s->len; j++)
				if (s->tgt[j] >= 0)
					*dst++ = lp[pk.off[k] + j];
		}
	}
	pp_dist_allgather_float(all, count);
	for (size_t i = 0; i < nw; i++)
		got(t, ws[i], all + woff[i]);
	free(count);
	free(all);
	free(woff);
	free(ws);
	free(lp);
	pack_free(&pk);
}

static int
want_ref(const struct train_ctx *t, struct seq *s)
{
	if (t->o.objective == OBJ_DPO || t->o.objective == OBJ_KTO)
		return !s->has_ref;
	if (!OBJ_IS_SAMPLE(t->o.objective))	/* sft, rm, simpo, orpo */
		return 0;
	return t->o.kl_coef > 0 && s->ref == NULL;
}

static void
got_ref(const struct train_ctx *t, struct seq *s, const float *lp)
{
	if (t->o.objective == OBJ_DPO || t->o.objective == OBJ_KTO) {
		s->ref_sum = 0;
		for (int i = 0; i < s->nscored; i++)
			s->ref_sum += lp[i];
		s->has_ref = 1;
	} else {
		s->ref = xmalloc(s->nscored * sizeof(float));
		memcpy(s->ref, lp, s->nscored * sizeof(float));
	}
}

static int
want_old(const struct train_ctx *t, struct seq *s)
{
	return s->old == NULL;
}

static void
got_old(const struct train_ctx *t, struct seq *s, const float *lp)
{
	s->old = xmalloc(s->nscored * sizeof(float));
	memcpy(s->old, lp, s->nscored * sizeof(float));
}

/*
 * The reference must read the policy's sequences as the policy does: the
 * same tokenizer, and room for every sequence it is asked about, the
 * checks score makes of its model.
 */
static void
check_ref(struct train_ctx *t, struct ckpt *rc, const struct model *ref)
{
	const char *path = t->o.ref;
	struct tokenizer *pt = conv_tokenizer(train_conv(t)), *rt;
	char e[512];

	rt = tokenizer_from_ckpt(rc, e, sizeof(e));
	if (pt != NULL && rt != NULL &&
	    conv_same_tokenizer(rt, pt, e, sizeof(e)) != 0)
		errx(EXIT_DATA, "%s: --ref has another tokenizer than %s: %s",
		    path, t->o.model, e);
	if ((pt == NULL || rt == NULL) &&
	    ref->cfg.vocab_size != t->m->cfg.vocab_size)
		errx(EXIT_DATA, "%s: --ref has a vocabulary of %d, %s of %d",
		    path, ref->cfg.vocab_size, t->o.model,
		    t->m->cfg.vocab_size);
	if (rt != NULL)
		tokenizer_free(rt);
	for (size_t i = 0; i < t->nex; i++)
		for (int k = 0; k < t->ex[i].nseq; k++) {
			const struct seq *s = &t->ex[i].s[k];
			if (!want_ref(t, (struct seq *)s))
				continue;
			if (conv_check_vocab(ref->cfg.vocab_size, s->tok,
			    s->len, e, sizeof(e)) != 0 ||
			    conv_check_length(ref->cfg.max_seq_len, s->len, e,
			    sizeof(e)) != 0)
				errx(EXIT_DATA, "%s: record %llu: field "
				    "\"%s\": %s of --ref %s", t->src,
				    (unsigned long long)t->ex[i].recno,
				    s->field ? s->field : "response_tokens",
				    e, path);
		}
}

/*
 * Reference log-probs the records lack, from --ref.  The reference model
 * is loaded, run forward, and freed before the policy's training begins:
 * it never holds gradients, moments or activations of its own during a
 * step.
 */
static void
reference_logprobs(struct train_ctx *t)
{
	size_t need = 0;
	for (size_t i = 0; i < t->nex; i++)
		for (int k = 0; k < t->ex[i].nseq; k++)
			need += want_ref(t, &t->ex[i].s[k]);
	if (need == 0 || !train_has_ref(t))
		return;
	if (t->o.ref == NULL) {
		/* LoRA: the base is the reference, as TRL's with a PEFT
		 * model (its adapters disabled): no second copy. */
		model_lora_enable(t->m, 0);
		forward_logprobs(t, t->m, want_ref, got_ref);
		model_lora_enable(t->m, 1);
		return;
	}
	struct model_src rs;	/* a checkpoint or an adapter */
	struct model_load_opts lo = load_opts(t);
	struct model *ref = model_load_as(t->o.ref, NULL, &rs, &lo);
	if (!ref->cfg.lm_head)
		errx(EXIT_DATA, "%s: --ref needs a causal language model",
		    t->o.ref);
	check_ref(t, rs.ckpt, ref);
	model_src_free(&rs);
	/* forward passes only: each layer's input is all it need keep,
	 * and the log-probabilities are the same bits */
	model_set_recompute(ref, 1);
	forward_logprobs(t, ref, want_ref, got_ref);
	model_free(ref);
}

/* ------------------------------------------------------------------------ */
/* 4. The step */

/*
 * The normaliser of a batch: every example's loss is divided by it, so
 * summing over micro-batches (and, later, processes) gives the batch loss.
 *   sft: scored tokens;  dpo, rm: pairs;  pg: tokens or sequences.
 */
static double
batch_norm(const struct train_ctx *t, const size_t *idx, size_t n)
{
	double d = 0;
	for (size_t i = 0; i < n; i++) {
		const struct example *e = &t->ex[idx[i]];
		if (t->o.objective == OBJ_SFT ||
		    (OBJ_IS_SAMPLE(t->o.objective) && t->o.agg == AGG_TOKEN))
			d += e->s[0].nscored;
		else
			d += 1;
	}
	return d > 0 ? d : 1;
}

/* ORPO's second normaliser: the chosen responses' scored tokens. */
static double
batch_chosen_tokens(const struct train_ctx *t, const size_t *idx, size_t n)
{
	double d = 0;
	for (size_t i = 0; i < n; i++)
		d += t->ex[idx[i]].s[0].nscored;
	return d > 0 ? d : 1;
}

/*
 * The sequences of an example the step trains on, packed first: all of
 * them, but KTO's answer alone (its mismatched pair, s[1], only sets the
 * reference point, without gradient).
 */
static int
trained_seqs(const struct train_ctx *t, const struct example *e)
{
	return t->o.objective == OBJ_KTO ? 1 : e->nseq;
}

/*
 * KTO's reference point for the batch idx[0..n): z0 = max(0, mean over
 * its examples of the mismatched pair's log-ratio, policy's sum less the
 * reference's), with the policy as it is before the step.  Each rank runs
 * its share [i0, i1) and the sums are added in rank order.
 */
static double
kto_reference_point(struct train_ctx *t, const size_t *idx, size_t n,
    size_t i0, size_t i1)
{
	struct packed pk = { 0 };
	float *lp = NULL;
	int cap = 0, micro = (int)t->o.micro;
	double sum = 0;

	for (size_t i = i0; i < i1;) {
		pack_clear(&pk);
		for (int k = 0; i < i1 && k < micro; i++, k++)
			pack_add(&pk, &t->ex[idx[i]].s[1]);
		if (pk.N > cap) {
			cap = pk.N;
			lp = xreallocarray(lp, cap, sizeof(float));
		}
		struct model_batch b = pack_batch(&pk, 1);
		model_forward(t->m, &b, lp);
		for (int k = 0; k < pk.nseq; k++) {
			const struct seq *s = pk.seqs[k];
			double pol = 0;
			for (int j = 0; j < s->len; j++)
				if (s->tgt[j] >= 0)
					pol += lp[pk.off[k] + j];
			sum += pol - s->ref_sum;
		}
	}
	free(lp);
	pack_free(&pk);
	pp_dist_sum_double(&sum, 1);
	return n > 0 && sum > 0 ? sum / n : 0;
}

/* SFT's dlp (N): -1 / norm at every scored token, as micro_loss sets it. */
static void
sft_dlp(const struct train_ctx *t, const struct packed *pk,
    struct example **exs, int nexs, double norm, float *dlp)
{
	int k = 0;

	for (int i = 0; i < nexs; i++) {
		struct seq *s0 = &exs[i]->s[0];
		for (int j = 0; j < s0->len; j++)
			if (s0->tgt[j] >= 0)
				dlp[pk->off[k] + j] = (float)(-1 / norm);
		k += trained_seqs(t, exs[i]);
	}
}

/*
 * The loss of the examples of one micro-batch, given the model's output:
 * fills dlp (N) and dscores (N) and adds to *st.
 */
static void
micro_loss(const struct train_ctx *t, const struct packed *pk,
    struct example **exs, int nexs, const float *lp, const float *scores,
    float *dlp, float *dscores, double norm, double norm_tok, double z0,
    struct train_metrics *st)
{
	const struct train_opts *o = &t->o;
	int max_len = t->max_len;
	/* (max_len) each: policy log-probs (or values), d loss, rollout and
	 * reference log-probs (or values and returns), advantages */
	double *buf = xmalloc((size_t)max_len * 5 * sizeof(double));
	double *dbuf = buf + max_len, *old = dbuf + max_len,
	    *ref = old + max_len, *adv = ref + max_len;
	int k = 0;		/* sequence index in pk */

	for (int i = 0; i < nexs; i++) {
		struct example *e = exs[i];
		int ns = trained_seqs(t, e);
		int o0 = pk->off[k], o1 = ns > 1 ? pk->off[k + 1] : 0;
		struct seq *s0 = &e->s[0], *s1 = &e->s[1];

		switch (o->objective) {
		case OBJ_SFT: {
			double l = 0;
			for (int j = 0; j < s0->len; j++)
				if (s0->tgt[j] >= 0) {
					l -= lp[o0 + j];
					dlp[o0 + j] = (float)(-1 / norm);
				}
			st->loss += l / norm;
			st->scored += s0->nscored;
			break;
		}
		case OBJ_DPO:
		case OBJ_SIMPO:
		case OBJ_ORPO: {
			struct dpo_in in = { 0, s0->ref_sum, 0, s1->ref_sum,
			    s0->nscored, s1->nscored };
			struct dpo_out out;
			for (int j = 0; j < s0->len; j++)
				if (s0->tgt[j] >= 0)
					in.pol_w += lp[o0 + j];
			for (int j = 0; j < s1->len; j++)
				if (s1->tgt[j] >= 0)
					in.pol_l += lp[o1 + j];
			/* ORPO's NLL: the token mean over the batch's chosen
			 * tokens (TRL's), beside the per-pair odds term. */
			double nll_d = 0;
			if (o->objective == OBJ_SIMPO)
				loss_simpo(o->beta, o->simpo_gamma, 1 / norm, &in,
				    &out);
			else if (o->objective == OBJ_ORPO) {
				loss_orpo(o->orpo_lambda, 1 / norm, &in, &out);
				nll_d = -1 / norm_tok;
				out.loss -= in.pol_w / norm_tok;
				st->nll -= in.pol_w / norm_tok;
			} else
				loss_dpo(o->dpo_variant, o->beta,
				    e->label_smoothing, o->nll_coef, 1 / norm,
				    &in, &out);
			for (int j = 0; j < s0->len; j++)
				if (s0->tgt[j] >= 0)
					dlp[o0 + j] = (float)(out.d_w + nll_d);
			for (int j = 0; j < s1->len; j++)
				if (s1->tgt[j] >= 0)
					dlp[o1 + j] = (float)out.d_l;
			st->loss += out.loss;
			st->correct += out.chosen_reward > out.rejected_reward;
			st->chosen += out.chosen_reward;
			st->rejected += out.rejected_reward;
			st->margin += out.chosen_reward - out.rejected_reward;
			st->pairs++;
			break;
		}
		case OBJ_KTO: {
			/* The answer alone; its mismatched pair gave z0. */
			double pol = 0, d, rw;
			for (int j = 0; j < s0->len; j++)
				if (s0->tgt[j] >= 0)
					pol += lp[o0 + j];
			st->loss += loss_kto(o->beta, o->kto_desirable,
			    o->kto_undesirable, e->label, pol, s0->ref_sum, z0,
			    1 / norm, &d, &rw);
			for (int j = 0; j < s0->len; j++)
				if (s0->tgt[j] >= 0)
					dlp[o0 + j] = (float)d;
			if (e->label) {
				st->chosen += rw;
				st->desirable++;
			} else {
				st->rejected += rw;
				st->undesirable++;
			}
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
		case OBJ_PG:
		case OBJ_PPO: {
			/* pg: the sample's advantage at every token, the KL
			 * in the loss; ppo: GAE's per token, the KL in the
			 * reward (the loss's estimate is only reported) */
			int ppo = o->objective == OBJ_PPO, n = 0;
			for (int j = 0; j < s0->len; j++)
				if (s0->tgt[j] >= 0)
					buf[n++] = lp[o0 + j];
			for (int j = 0; j < n; j++) {
				old[j] = s0->old[j];
				if (s0->ref)
					ref[j] = s0->ref[j];
				adv[j] = ppo ? s0->adv[j] : e->adv;
			}
			double scale = e->weight / (o->agg == AGG_TOKEN ?
			    norm : norm * n);
			st->loss += loss_ppo(n, buf, old, s0->ref ? ref : NULL,
			    adv, o->clip, ppo ? 0 : o->kl_coef, o->kl_est,
			    scale, dbuf, &st->pg);
			n = 0;
			for (int j = 0; j < s0->len; j++)
				if (s0->tgt[j] >= 0)
					dlp[o0 + j] = (float)dbuf[n++];
			st->reward_sum += e->reward;
			st->adv_sum += e->adv;
			st->adv_sq += e->adv * e->adv;
			st->samples++;
			break;
		}
		case OBJ_VALUE: {
			/* The head's value at each position that predicts a
			 * response token, against GAE's return. */
			int n = 0, L = t->m->cfg.num_labels;
			for (int j = 0; j < s0->len; j++)
				if (s0->tgt[j] >= 0)
					buf[n++] = scores[(size_t)(o0 + j) * L];
			for (int j = 0; j < n; j++) {
				old[j] = s0->val[j];
				ref[j] = s0->ret[j];
				st->value_sum += buf[j];
				st->return_sum += ref[j];
			}
			double scale = e->weight / (o->agg == AGG_TOKEN ?
			    norm : norm * n);
			st->loss += loss_value(n, buf, old, ref, o->value_clip,
			    scale, dbuf, &st->vclipped);
			n = 0;
			for (int j = 0; j < s0->len; j++)
				if (s0->tgt[j] >= 0)
					dscores[(size_t)(o0 + j) * L] =
					    (float)dbuf[n++];
			st->pg.tokens += n;
			st->reward_sum += e->reward;
			st->samples++;
			break;
		}
		}
		for (int j = 0; j < e->nseq; j++)
			st->truncated += e->s[j].truncated;
		k += ns;
	}
	free(buf);
}

/*
 * Data-parallel training: under mpirun every rank holds every example and
 * the same batch (the seeded order), runs forward and backward over its
 * contiguous share of the batch with losses divided by the normaliser of
 * the whole batch, and here the gradients are summed across ranks in rank
 * order (pp_dist_sum_float), before the norm, clipping and the update,
 * which every rank then takes alike.  One process has nothing to do.
 */
static void
sum_gradients(float *grads, size_t n)
{
	pp_dist_sum_float(grads, n);
}

/*
 * What the ranks' shares of a step add up to, summed across ranks (in
 * rank order) into every rank's metrics.  A field micro_loss adds to
 * must be listed here, or a multi-process run reports rank 0's share.
 */
static void
sum_metrics(struct train_metrics *st)
{
	double *f[] = { &st->loss, &st->scored, &st->correct, &st->chosen,
	    &st->rejected, &st->margin, &st->pairs, &st->reward_sum,
	    &st->adv_sum, &st->adv_sq, &st->samples, &st->pg.tokens,
	    &st->pg.kl_sum, &st->pg.clipped, &st->pg.ratio_sum, &st->nll,
	    &st->desirable, &st->undesirable, &st->value_sum,
	    &st->return_sum, &st->vclipped };
	enum { NF = sizeof(f) / sizeof(f[0]) };
	double v[NF + 2];

	if (pp_dist_size() == 1)
		return;
	for (int i = 0; i < NF; i++)
		v[i] = *f[i];
	v[NF] = (double)st->tokens;
	v[NF + 1] = (double)st->truncated;
	pp_dist_sum_double(v, NF + 2);
	for (int i = 0; i < NF; i++)
		*f[i] = v[i];
	st->tokens = (long long)v[NF];
	st->truncated = (long long)v[NF + 1];
}

/* Whether x (n) holds a value that is not finite. */
static int
any_nonfinite(const float *x, size_t n)
{
	int bad = 0;
#pragma omp parallel for schedule(static) reduction(|:bad)
	for (size_t i = 0; i < n; i++)
		bad |= !isfinite(x[i]);
	return bad;
}

/*
 * After the update: weights and moments must stay finite, or the
 * checkpoint would carry Inf or NaN (a huge gradient without clipping
 * overflows exp_avg_sq while the weights still look fine).  The run
 * stops naming the first tensor that went bad, before anything is
 * written.
 */
static void
check_finite(const struct train_ctx *t, int64_t stepno)
{
	const struct model *m = t->m;
	static const char *const what[3] = { "weight", "optimizer state",
	    "optimizer state" };
	static const char *const prefix[3] = { "", "exp_avg.",
	    "exp_avg_sq." };
	const float *arr[3] = { m->params, t->adam.m, t->adam.v };

	/* Only trainable tensors have moments; frozen weights do not move. */
	for (int a = 0; a < 3; a++) {
		if (!any_nonfinite(arr[a], m->ntrain))
			continue;
		for (int i = 0; i < m->ntensors; i++) {
			const struct model_tensor *mt = &m->tensors[i];
			if (mt->trainable &&
			    any_nonfinite(arr[a] + mt->offset, mt->n))
				errx(EXIT_DATA, "step %lld: non-finite %s "
				    "(%s%s); no checkpoint written",
				    (long long)stepno, what[a], prefix[a],
				    mt->name);
		}
	}
}

/*
 * One optimizer step over the examples idx[0..n): micro-batches through
 * forward, loss and backward, the gradients accumulated in m->grads, then
 * clipping and AdamW.  Returns the gradient norm before clipping.
 */
static double
one_step(struct train_ctx *t, const size_t *idx, size_t n, double lr,
    int64_t stepno, struct train_metrics *st)
{
	struct model *m = t->m;
	int micro = (int)t->o.micro;
	struct packed pk = { 0 };
	struct example **exs = xreallocarray(NULL, micro, sizeof(*exs));
	double norm = batch_norm(t, idx, n);
	double norm_tok = t->o.objective == OBJ_ORPO ?
	    batch_chosen_tokens(t, idx, n) : 1;
	float *lp = NULL, *dlp = NULL, *dscores = NULL;
	uint64_t *keys = NULL;	/* (N) LoRA dropout, by token */
	int cap = 0;
	size_t i0, n1;		/* this rank's share of the batch */
	int drop = m->cfg.lora.rank > 0 && m->cfg.lora.dropout > 0;

	pp_dist_slice(n, pp_dist_rank(), pp_dist_size(), &i0, &n1);
	double z0 = 0;
	if (t->o.objective == OBJ_KTO)
		st->kl = z0 = kto_reference_point(t, idx, n, i0, n1);
	model_zero_grad(m);
	for (size_t i = i0; i < n1;) {
		int nexs = 0;
		pack_clear(&pk);
		for (; i < n1 && nexs < micro; i++) {
			struct example *e = &t->ex[idx[i]];
			exs[nexs++] = e;
			for (int k = 0; k < trained_seqs(t, e); k++)
				pack_add(&pk, &e->s[k]);
		}
		if (pk.N > cap) {
			cap = pk.N;
			lp = xreallocarray(lp, cap, sizeof(float));
			dlp = xreallocarray(dlp, cap, sizeof(float));
			dscores = xreallocarray(dscores, cap, sizeof(float));
			keys = xreallocarray(keys, cap, sizeof(uint64_t));
		}
		/* A token's masks from (seed, step, record, sequence,
		 * position): not from where it lies in the pass, so the
		 * micro-batch size and the ranks do not change them. */
		for (int q = 0, k = 0; drop && q < nexs; q++)
			for (int s = 0; s < exs[q]->nseq; s++, k++)
				for (int j = 0; j < pk.len[k]; j++) {
					uint64_t v[5] = { t->o.seed,
					    (uint64_t)stepno, exs[q]->recno,
					    (uint64_t)s, (uint64_t)j };
					keys[pk.off[k] + j] = hash_bytes(v,
					    sizeof v);
				}
		if (drop)
			model_lora_dropout(m, keys);
		/* (N) d loss / d logprob, zero where nothing is scored */
		memset(dlp, 0, pk.N * sizeof(float));
		memset(dscores, 0, pk.N * sizeof(float));
		int rm = OBJ_IS_HEAD(t->o.objective);
		struct model_batch b = pack_batch(&pk, !rm);
		/* SFT's d loss / d logprob needs no forward (micro_loss sets
		 * the same): the head's backward can run in the forward */
		if (t->o.objective == OBJ_SFT) {
			sft_dlp(t, &pk, exs, nexs, norm, dlp);
			model_set_head_grad(m, dlp);
		}
		model_forward(m, &b, rm ? NULL : lp);
		micro_loss(t, &pk, exs, nexs, lp, rm ? model_scores(m) : NULL,
		    dlp, dscores, norm, norm_tok, z0, st);
		model_backward(m, rm ? NULL : dlp, rm ? dscores : NULL);
		st->tokens += pk.N;
	}
	free(lp);
	free(dlp);
	free(dscores);
	free(keys);
	free(exs);
	pack_free(&pk);

	sum_gradients(m->grads, m->ntrain);
	sum_metrics(st);
	double gn = grad_norm(m->grads, m->ntrain);
	/* A non-finite step would poison the checkpoint: stop before it. */
	if (!isfinite(st->loss))
		errx(EXIT_DATA, "step %lld: non-finite loss (%g); no "
		    "checkpoint written", (long long)stepno, st->loss);
	if (!isfinite(gn))
		errx(EXIT_DATA, "step %lld: non-finite gradient norm (%g); no "
		    "checkpoint written", (long long)stepno, gn);
	grad_clip(m->grads, m->ntrain, gn, t->o.clip_grad);
	adamw_step(&t->adam, m->params, m->grads, lr);
	check_finite(t, stepno);
	return gn;
}

/* ------------------------------------------------------------------------ */
/* 5. Optimizer state in the checkpoint */

/* Moments from optimizer.safetensors and the step from
 * trainer_state.json; returns whether there was state to continue. */
static int
load_state(struct train_ctx *t)
{
	const struct model *m = t->m;
	/* New adapters start afresh; an adapter's state is its own. */
	struct ckpt *sc = t->msrc.adapter ? t->msrc.adapter : t->ckpt;
	char name[160];

	if (t->lora.rank > 0 && t->msrc.adapter == NULL)
		return 0;
	struct st_set *os = ckpt_extra(sc, "optimizer.safetensors");
	json_t *ts = ckpt_json(sc, "trainer_state.json");

	if (os == NULL || ts == NULL || t->o.reset_optimizer) {
		if (ts)
			json_decref(ts);
		return 0;
	}
	json_t *step = json_object_get(ts, "step");
	if (!json_is_integer(step) || json_integer_value(step) < 0) {
		json_decref(ts);
		errx(EXIT_DATA, "%s: trainer_state.json: step: expected a "
		    "non-negative integer", t->o.model);
	}
	t->adam.t = json_integer_value(step);
	json_t *ss = json_object_get(ts, "schedule_steps");
	if (t->o.sched_steps < 0 && json_is_integer(ss) &&
	    json_is_true(json_object_get(ts, "schedule_steps_fixed"))) {
		t->sched.total = json_integer_value(ss);
		t->sched_fixed = 1;
	}
	json_decref(ts);
	for (int i = 0; i < m->ntensors; i++) {
		const struct model_tensor *mt = &m->tensors[i];
		if (!mt->trainable)
			continue;
		for (int k = 0; k < 2; k++) {
			snprintf(name, sizeof(name), "%s.%s",
			    k ? "exp_avg_sq" : "exp_avg", mt->name);
			const struct tensor *x = st_set_find(os, name);
			if (x == NULL || x->n != mt->n)
				errx(EXIT_DATA, "%s: optimizer.safetensors: "
				    "tensor %s: %s (--reset-optimizer starts "
				    "afresh)", t->o.model, name,
				    x ? "wrong size" : "missing");
			memcpy((k ? t->adam.v : t->adam.m) + mt->offset,
			    x->data, mt->n * sizeof(float));
		}
	}
	return 1;
}

void
train_save(struct train_ctx *t)
{
	const struct train_opts *o = &t->o;
	const struct model *m = t->m;
	struct ckpt_writer *w = ckpt_writer_open(o->out, o->dtype);
	char name[160];

	ckpt_writer_carry(w, t->ckpt);
	if (t->lora.rank > 0)	/* PEFT's adapter directory */
		lora_save(m, w, lora_base_name(t->msrc.adapter ?
		    t->msrc.base : o->model), t->modules);
	else
		model_save(m, w);
	/* Moments stay fp32 whatever the weights' dtype: resuming exactly.
	 * Frozen tensors have none (torch's state holds only the params the
	 * optimizer was given). */
	for (int i = 0; i < m->ntensors; i++) {
		const struct model_tensor *mt = &m->tensors[i];
		if (!mt->trainable)
			continue;
		for (int k = 0; k < 2; k++) {
			snprintf(name, sizeof(name), "%s.%s",
			    k ? "exp_avg_sq" : "exp_avg", mt->name);
			ckpt_writer_add_tensor_to(w, "optimizer.safetensors",
			    name, mt->ndim, mt->shape,
			    (k ? t->adam.v : t->adam.m) + mt->offset, DT_F32);
		}
	}
	json_t *ts = json_pack("{s:I, s:s, s:s, s:f, s:f, s:I, s:I, s:b, "
	    "s:f, s:f, s:f, s:f, s:f, s:I}",
	    "step", (json_int_t)t->adam.t,
	    "objective", train_objective_name(o->objective),
	    "schedule", lr_schedule_name(t->sched.kind),
	    "lr", t->sched.lr, "min_lr", t->sched.min_lr,
	    "warmup", (json_int_t)t->sched.warmup,
	    "schedule_steps", (json_int_t)t->sched.total,
	    "schedule_steps_fixed", t->sched_fixed,
	    "weight_decay", o->weight_decay,
	    "adam_beta1", o->beta1, "adam_beta2", o->beta2,
	    "adam_eps", o->eps, "clip_grad", o->clip_grad,
	    "seed", (json_int_t)o->seed);
	ckpt_writer_add_json(w, "trainer_state.json", ts);
	json_decref(ts);
	ckpt_writer_commit(w);
}

/* ------------------------------------------------------------------------ */
/* 6. The plan */

void
train_prepare(struct train_ctx *t)
{
	const struct train_opts *o = &t->o;
	struct model *m = t->m;

	if (t->nex == 0)
		errx(EXIT_DATA, "%s: no records to train on%s", t->src,
		    t->ndropped ? " (every one longer than --max-length)" :
		    "");
	if (o->objective == OBJ_PG) {
		pg_prepare(t);
		if (t->nex == 0)
			errx(EXIT_DATA, "%s: only greedy baselines", t->src);
	}
	reference_logprobs(t);
	/* No rollout log-probs: the policy as it is now sampled them. */
	if (o->objective == OBJ_PG || o->objective == OBJ_PPO)
		forward_logprobs(t, m, want_old, got_old);
	if (o->objective == OBJ_PPO || o->objective == OBJ_VALUE)
		ppo_prepare(t);

	/* The optimizer sees the trainable set alone, params[0 .. ntrain). */
	adamw_init(&t->adam, m->ntrain, o->beta1, o->beta2, o->eps,
	    o->weight_decay);
	/* Decoupled weight decay spares norm weights and biases. */
	struct optim_range *rg = xreallocarray(NULL, m->ntensors,
	    sizeof(*rg));
	int nrg = 0;
	for (int i = 0; i < m->ntensors; i++) {
		const struct model_tensor *mt = &m->tensors[i];
		if (!mt->trainable)
			continue;
		rg[nrg].offset = mt->offset;
		rg[nrg].n = mt->n;
		rg[nrg++].decay = !mt->is_norm && !mt->is_bias;
	}
	adamw_set_ranges(&t->adam, rg, nrg);
	free(rg);

	t->nbatches = (t->nex + o->batch - 1) / o->batch;
	t->planned = (int64_t)o->epochs * t->nbatches * o->ppo_epochs;
	if (o->max_steps >= 0 && t->planned > o->max_steps)
		t->planned = o->max_steps;
	t->sched.kind = o->schedule;
	t->sched.lr = o->lr;
	t->sched.min_lr = o->min_lr;
	t->sched.warmup = o->warmup;
	if (o->sched_steps > 0) {
		t->sched.total = o->sched_steps;
		t->sched_fixed = 1;
	}
	load_state(t);
	if (!t->sched_fixed)
		t->sched.total = t->adam.t + t->planned;
	t->order = xmalloc((t->nex ? t->nex : 1) * sizeof(size_t));
}

int64_t
train_planned(const struct train_ctx *t)
{
	return t->planned;
}

/* The order of epoch ep. */
static void
draw_order(struct train_ctx *t)
{
	size_t nex = t->nex, *order = t->order;
	for (size_t i = 0; i < nex; i++)
		order[i] = i;
	if (!t->o.shuffle)
		return;
	/* Fisher-Yates from a stream of (seed, step, epoch): a resumed
	 * run does not replay the same order. */
	struct rng g;
	uint64_t key[2] = { (uint64_t)t->adam.t, (uint64_t)t->ep };
	rng_stream(&g, t->o.seed, key, 2);
	for (size_t i = nex; i > 1; i--) {
		size_t j = rng_below(&g, i);
		size_t x = order[i - 1];
		order[i - 1] = order[j];
		order[j] = x;
	}
}

int
train_step(struct train_ctx *t, struct train_metrics *mt)
{
	const struct train_opts *o = &t->o;

	/* Epochs of batches of PPO epochs, until the plan is done. */
	for (; t->ep < o->epochs && t->done < t->planned; t->ep++) {
		if (!t->started) {
			draw_order(t);
			t->started = 1;
		}
		for (; t->b < t->nbatches && t->done < t->planned; t->b++) {
			size_t lo = t->b * o->batch, hi = lo + o->batch;
			if (hi > t->nex)
				hi = t->nex;
			if (t->pe < o->ppo_epochs) {
				memset(mt, 0, sizeof(*mt));
				double t0 = pp_now();
				mt->lr = lr_at(&t->sched, t->adam.t);
				mt->grad_norm = one_step(t, t->order + lo,
				    hi - lo, mt->lr, t->adam.t + 1, mt);
				mt->step = t->adam.t;
				mt->seconds = pp_now() - t0;
				mt->records = hi - lo;
				t->done++;
				if (++t->pe == o->ppo_epochs ||
				    t->done == t->planned) {
					t->pe = 0;
					t->b++;
				}
				return 1;
			}
			t->pe = 0;
		}
		t->b = 0;
		t->started = 0;
	}
	return 0;
}

void
train_metrics_rec(const struct train_ctx *t, const struct train_metrics *st,
    struct rec *o)
{
	rec_init(o, "metrics", (uint64_t)st->step);
	rec_set_int(o, "step", st->step);
	rec_set_num(o, "loss", st->loss);
	rec_set_num(o, "lr", st->lr);
	rec_set_num(o, "grad_norm", st->grad_norm);
	rec_set_int(o, "tokens", st->tokens);
	rec_set_num(o, "seconds", st->seconds);
	rec_set_int(o, "records", (int64_t)st->records);
	switch (t->o.objective) {
	case OBJ_SFT:
		rec_set_num(o, "ppl", exp(st->loss));
		break;
	case OBJ_DPO:
	case OBJ_SIMPO:
	case OBJ_ORPO:
		if (t->o.objective == OBJ_ORPO)
			rec_set_num(o, "nll", st->nll);
		rec_set_num(o, "reward_accuracy", st->correct / st->pairs);
		rec_set_num(o, "chosen_reward", st->chosen / st->pairs);
		rec_set_num(o, "rejected_reward", st->rejected / st->pairs);
		rec_set_num(o, "margin", st->margin / st->pairs);
		break;
	case OBJ_KTO:
		rec_set_num(o, "kl", st->kl);
		rec_set_num(o, "desirable", st->desirable);
		rec_set_num(o, "undesirable", st->undesirable);
		if (st->desirable > 0)
			rec_set_num(o, "desirable_reward",
			    st->chosen / st->desirable);
		if (st->undesirable > 0)
			rec_set_num(o, "undesirable_reward",
			    st->rejected / st->undesirable);
		break;
	case OBJ_RM:
		rec_set_num(o, "accuracy", st->correct / st->pairs);
		rec_set_num(o, "margin", st->margin / st->pairs);
		break;
	case OBJ_VALUE: {
		double nt = st->pg.tokens > 0 ? st->pg.tokens : 1;
		rec_set_num(o, "value_mean", st->value_sum / nt);
		rec_set_num(o, "return_mean", st->return_sum / nt);
		rec_set_num(o, "clip_fraction", st->vclipped / nt);
		break;
	}
	case OBJ_PG:
	case OBJ_PPO: {
		double ns = st->samples > 0 ? st->samples : 1;
		double nt = st->pg.tokens > 0 ? st->pg.tokens : 1;
		double mean = st->adv_sum / ns;
		double var = st->adv_sq / ns - mean * mean;
		rec_set_num(o, "reward_mean", st->reward_sum / ns);
		if (t->o.objective == OBJ_PG)
			rec_set_num(o, "adv_std", sqrt(var > 0 ? var : 0));
		rec_set_num(o, "kl", st->pg.kl_sum / nt);
		rec_set_num(o, "clip_fraction", st->pg.clipped / nt);
		rec_set_num(o, "ratio_mean", st->pg.ratio_sum / nt);
		break;
	}
	}
	rec_set_int(o, "truncated", st->truncated);
	if (t->ndropped)
		rec_set_uint(o, "dropped", t->ndropped);
}
