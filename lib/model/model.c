/*
 * model.c: the fp32 model of model.h, around the network of model_impl.h
 * on backend_cpu: allocation of parameters and gradients, the trainable
 * set, initialisation, the public forward and backward passes, FLOP
 * counts, and KV caches.
 */
#include <err.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REAL float
#include "model/model_impl.h"
#include "util/strmap.h"

struct model_acts {
	struct net net;
};

/* ------------------------------------------------------------------------ */
/* build_model / model_free */

struct model *
model_new(const struct model_config *cfg)
{
	struct model *m;
	char err[256];

	if (model_config_check(cfg, err, sizeof(err)) != 0)
		errx(EXIT_DATA, "%s", err);
	m = xcalloc(1, sizeof(*m));
	m->cfg = *cfg;
	m->tensors = model_tensors(cfg, &m->ntensors);
	m->nparams = m->tensors[m->ntensors - 1].offset +
	    m->tensors[m->ntensors - 1].n;
	m->ntrain = m->nparams;
	m->params = xmalloc_huge(m->nparams * sizeof(float));
	m->acts = xcalloc(1, sizeof(*m->acts));
	net_init(&m->acts->net, cfg, &backend_cpu, m->tensors, m->ntensors,
	    m->params, NULL);
	return m;
}

struct model *
model_new_held(const struct model_config *cfg, const int *dt,
    const uint16_t *const *at)
{
	struct model *m;
	char err[256];
	size_t off = 0, nh = 0;

	if (model_config_check(cfg, err, sizeof(err)) != 0)
		errx(EXIT_DATA, "%s", err);
	m = xcalloc(1, sizeof(*m));
	m->cfg = *cfg;
	m->tensors = model_tensors(cfg, &m->ntensors);
	for (int i = 0; i < m->ntensors; i++) {
		struct model_tensor *t = &m->tensors[i];

		t->trainable = 0;
		t->dtype = dt[i];
		if (dt[i] == DT_F32) {
			t->offset = off;
			off += t->n;
		} else if (at == NULL || at[i] == NULL)
			nh += t->n;
	}
	m->nparams = off;
	m->params = xmalloc_huge((off > 0 ? off : 1) * sizeof(float));
	if (nh > 0)
		m->half = xmalloc_huge(nh * sizeof(uint16_t));
	m->nhalf = nh;
	nh = 0;
	for (int i = 0; i < m->ntensors; i++) {
		struct model_tensor *t = &m->tensors[i];

		if (dt[i] == DT_F32)
			continue;
		t->offset = 0;
		if (at != NULL && at[i] != NULL)
			t->half = at[i];
		else {
			t->half = m->half + nh;
			nh += t->n;
		}
	}
	m->acts = xcalloc(1, sizeof(*m->acts));
	net_init(&m->acts->net, cfg, &backend_cpu, m->tensors, m->ntensors,
	    m->params, NULL);
	return m;
}

void
model_free(struct model *m)
{
	if (m == NULL)
		return;
	net_free(&m->acts->net);
	free(m->acts);
	free(m->params);
	free(m->grads);
	free(m->half);
	if (m->release != NULL)
		m->release(m->hold);
	free(m->tensors);
	free(m);
}

const struct model_tensor *
model_tensor(const struct model *m, const char *name)
{
	for (int i = 0; i < m->ntensors; i++)
		if (strcmp(m->tensors[i].name, name) == 0)
			return &m->tensors[i];
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Initialisation: splitmix64 feeding Box-Muller, one normal per parameter. */

static uint64_t
splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

double
model_rng_normal(uint64_t *state)
{
	/* u1 in (0, 1] so the log is finite; u2 in [0, 1). */
	double u1 = ((splitmix64(state) >> 11) + 1) * 0x1.0p-53;
	double u2 = (splitmix64(state) >> 11) * 0x1.0p-53;

	return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

void
model_init_normal(struct model *m, uint64_t seed, double mat_std,
    double aux_std)
{
	uint64_t st = seed;

	for (int i = 0; i < m->ntensors; i++) {
		const struct model_tensor *t = &m->tensors[i];
		float *p = m->params + t->offset;
		/* a norm starts as the identity: w = 1, or 0 in (1 + w) */
		double base = t->is_norm &&
		    arch_of(&m->cfg)->norm != NORM_RMS_PLUS_ONE ? 1 : 0;
		double sd = t->is_norm || t->is_bias ? aux_std : mat_std;

		for (size_t j = 0; j < t->n; j++)
			p[j] = base + sd * model_rng_normal(&st);
	}
}

void
model_init_random(struct model *m, uint64_t seed)
{
	model_init_normal(m, seed, 0.02, 0);
}

/*
 * PEFT's LoRA initialisation (LoraLayer.reset_lora_parameters, the
 * default init_lora_weights=True): A as nn.Linear's weight,
 * kaiming_uniform_ with a = sqrt(5), which is U(-1/sqrt(in), 1/sqrt(in));
 * B zeros, so the adapted model starts as the base.
 */
void
model_lora_init(struct model *m, uint64_t seed)
{
	uint64_t st = seed ^ 0x4C6F5241ULL;	/* "LoRA": not the base's draw */

	for (int i = 0; i < m->ntensors; i++) {
		const struct model_tensor *t = &m->tensors[i];
		float *p = m->params + t->offset;
		double bound = 1 / sqrt((double)t->shape[1]);

		if (t->lora == 2)
			memset(p, 0, t->n * sizeof(float));
		if (t->lora != 1)
			continue;
		for (size_t j = 0; j < t->n; j++) {
			double u = (splitmix64(&st) >> 11) * 0x1.0p-53;
			p[j] = (float)((2 * u - 1) * bound);
		}
	}
}

void
model_lora_enable(struct model *m, int on)
{
	m->acts->net.lora_off = !on;
}

void
model_lora_dropout(struct model *m, const uint64_t *keys)
{
	m->acts->net.drop_keys = keys;
}

/* ------------------------------------------------------------------------ */
/* Training passes */

/*
 * Lay the parameters out again for the tensors' trainable flags and the
 * types dt[i] they are to be held in: in params the trainable first, then
 * the frozen fp32 ones, each in HF order; the 16-bit ones in a new half,
 * except those kept as they were where they lie outside the model (a
 * checkpoint's mapping).  Values are moved, converted where the type
 * changes.  Nothing is copied when nothing moves.
 */
static void
relayout(struct model *m, const int *dt)
{
	struct model_tensor *old = xcalloc(m->ntensors, sizeof(*old));
	size_t off = 0, need = 0, hoff = 0;
	int moved = 0, outside = 0;
	uint16_t *half = NULL;
	float *p = m->params;

	memcpy(old, m->tensors, m->ntensors * sizeof(*old));
	for (int pass = 1; pass >= 0; pass--) {
		for (int i = 0; i < m->ntensors; i++) {
			struct model_tensor *t = &m->tensors[i];
			if (t->trainable != pass || dt[i] != DT_F32)
				continue;
			moved |= t->offset != off || t->dtype != DT_F32;
			t->offset = off;
			off += t->n;
		}
		if (pass == 1)
			m->ntrain = off;
	}
	for (int i = 0; i < m->ntensors; i++) {
		const struct model_tensor *o = &old[i];
		int mine = m->half != NULL && o->half >= m->half &&
		    o->half < m->half + m->nhalf;

		moved |= o->dtype != dt[i];
		if (dt[i] != DT_F32 && (o->dtype != dt[i] || mine))
			need += o->n;
	}
	moved |= off != m->nparams;
	if (!moved) {
		free(old);
		return;
	}
	p = xmalloc_huge((off > 0 ? off : 1) * sizeof(float));
	if (need > 0)
		half = xmalloc_huge(need * sizeof(uint16_t));
	for (int i = 0; i < m->ntensors; i++) {
		struct model_tensor *t = &m->tensors[i];
		const struct model_tensor *o = &old[i];
		int mine = m->half != NULL && o->half >= m->half &&
		    o->half < m->half + m->nhalf;

		if (dt[i] == DT_F32) {
			if (o->dtype == DT_F32)
				memcpy(p + t->offset, m->params + o->offset,
				    t->n * sizeof(float));
			else
				dtype_to_f32(o->dtype, o->half, p + t->offset,
				    t->n);
			t->dtype = DT_F32;
			t->half = NULL;
			continue;
		}
		t->offset = 0;
		t->dtype = dt[i];
		if (o->dtype == dt[i] && !mine) {	/* where it lies */
			outside = 1;
			continue;
		}
		t->half = half + hoff;
		hoff += t->n;
		if (o->dtype == dt[i])
			memcpy(half + hoff - t->n, o->half, t->n * 2);
		else if (o->dtype == DT_F32)
			dtype_from_f32(dt[i], m->params + o->offset,
			    half + hoff - t->n, t->n);
		else {
			float *w = xmalloc(t->n * sizeof(float));
			dtype_to_f32(o->dtype, o->half, w, t->n);
			dtype_from_f32(dt[i], w, half + hoff - t->n, t->n);
			free(w);
		}
	}
	free(m->params);
	free(m->half);
	m->params = p;
	m->nparams = off;
	m->half = half;
	m->nhalf = need;
	if (!outside && m->release != NULL) {
		m->release(m->hold);
		m->release = NULL;
		m->hold = NULL;
	}
	free(old);
}

int
model_tensor_holdable(const struct model_tensor *t)
{
	/* An adapter's A and B carry their target's role but are read as
	 * fp32 by the block: never held in 16 bits. */
	if (t->lora)
		return 0;
	switch (t->role) {
	case ROLE_WQ: case ROLE_WK: case ROLE_WV: case ROLE_WO:
	case ROLE_WGATE: case ROLE_WUP: case ROLE_WDOWN:
		return t->layer >= 0;
	case ROLE_EMBED: case ROLE_LM_HEAD:
		return t->layer < 0;
	default:
		return 0;
	}
}

void
model_hold(struct model *m, int dt)
{
	int *d = xcalloc(m->ntensors, sizeof(*d));

	if (dt != DT_F32 && dt != DT_BF16 && dt != DT_F16)
		errx(1, "model_hold: no such type %d", dt);
	for (int i = 0; i < m->ntensors; i++) {
		const struct model_tensor *t = &m->tensors[i];
		d[i] = !t->trainable && model_tensor_holdable(t) ? dt :
		    DT_F32;
	}
	relayout(m, d);
	free(d);
	net_rewire(&m->acts->net, m->tensors, m->ntensors, m->params,
	    m->grads);
}

void
model_set_compute(struct model *m, int compute)
{
	if (compute != MODEL_COMPUTE_F32 && compute != MODEL_COMPUTE_BF16)
		errx(1, "model_set_compute: no such arithmetic %d", compute);
	m->acts->net.xbf16 = compute == MODEL_COMPUTE_BF16;
	net_rewire(&m->acts->net, m->tensors, m->ntensors, m->params,
	    m->grads);
}

int
model_compute_parse(const char *s, int *compute)
{
	if (strcasecmp(s, "f32") == 0)
		*compute = MODEL_COMPUTE_F32;
	else if (strcasecmp(s, "bf16") == 0)
		*compute = MODEL_COMPUTE_BF16;
	else
		return -1;
	return 0;
}

size_t
model_set_trainable(struct model *m,
    int (*trainable)(const struct model_tensor *t, void *arg), void *arg)
{
	int *d = xcalloc(m->ntensors, sizeof(*d));

	for (int i = 0; i < m->ntensors; i++) {
		struct model_tensor *t = &m->tensors[i];
		t->trainable = trainable(t, arg) != 0;
		d[i] = t->trainable ? DT_F32 : t->dtype;
	}
	relayout(m, d);
	free(d);
	free(m->grads);
	m->grads = NULL;
	net_rewire(&m->acts->net, m->tensors, m->ntensors, m->params, NULL);
	return m->ntrain;
}

void
model_zero_grad(struct model *m)
{
	if (m->grads == NULL) {
		m->grads = xmalloc((m->ntrain > 0 ? m->ntrain : 1) *
		    sizeof(float));
		net_rewire(&m->acts->net, m->tensors, m->ntensors, m->params,
		    m->grads);
	}
	memset(m->grads, 0, m->ntrain * sizeof(float));
}

void
model_forward(struct model *m, const struct model_batch *b, float *logprobs)
{
	net_forward(&m->acts->net, b, logprobs);
}

void
model_logits(struct model *m, float *logits)
{
	struct net *net = &m->acts->net;
	struct acts *a = &net->a;
	int R = a->caprows, np = head_npieces(a->N, R);

	if (a->N == 0 || !m->cfg.lm_head)
		errx(1, "model_logits: no forward pass of a language model");
	for (int i = 0; i < np; i++) {
		int n0, n = head_piece(a->N, R, np, i, &n0);

		head_logits(net, logits + (size_t)n0 * m->cfg.vocab_size, n0,
		    n);
	}
}

void
model_set_head_grad(struct model *m, const float *dlogprobs)
{
	if (dlogprobs != NULL && m->grads == NULL)
		errx(1, "model_set_head_grad: call model_zero_grad first");
	m->acts->net.head_dlp = dlogprobs;
}

void
model_set_recompute(struct model *m, int on)
{
	m->acts->net.recompute = on != 0;
}

void
model_set_head_rows(struct model *m, int rows)
{
	m->acts->net.head_rows = rows > 0 ? rows : 0;
}

const float *
model_scores(const struct model *m)
{
	return m->acts->net.a.scores;
}

void
model_backward(struct model *m, const float *dlogprobs, const float *dscores)
{
	if (m->grads == NULL)
		errx(1, "model_backward: call model_zero_grad first");
	if (m->acts->net.a.N == 0)
		errx(1, "model_backward: no forward pass to differentiate");
	net_backward(&m->acts->net, dlogprobs, dscores);
}

/* ------------------------------------------------------------------------ */
/* Costs */

double
model_flops_forward(const struct model_config *c, int nseq, const int *len)
{
	double C = c->dim, Q = model_q_dim(c), KV = model_kv_dim(c);
	double F = c->hidden_dim, V = c->vocab_size, N = 0, att = 0;
	double per_tok;

	for (int s = 0; s < nseq; s++) {
		N += len[s];
		/* QK^T and PV over the causal triangle, every head */
		att += 2.0 * 2.0 * c->n_heads * c->head_dim *
		    ((double)len[s] * (len[s] + 1) / 2);
	}
	per_tok = 2 * (C * Q + 2 * C * KV + Q * C + 3 * C * F);
	return N * per_tok * c->n_layers + att * c->n_layers +
	    N * 2 * C * ((c->lm_head ? V : 0) + c->num_labels);
}

double
model_bytes_decode(const struct model_config *c, int B, const int *pos)
{
	double kv = 0;

	for (int i = 0; i < B; i++)
		kv += 2.0 * c->n_layers * (pos[i] + 1) * model_kv_dim(c);
	return 4.0 * (model_num_params(c) + kv);
}

size_t
model_act_bytes(const struct model_config *c, int nseq, const int *len,
    int recompute)
{
	size_t N = 0, natt = 0;
	int maxL = 0;

	for (int s = 0; s < nseq; s++) {
		N += len[s];
		natt += attn_probs_size(c->n_heads, len[s], 0);
		if (len[s] > maxL)
			maxL = len[s];
	}
	return (acts_floats(c, N, natt, head_rows_of(c, 0), recompute) +
	    attn_scratch_floats(maxL)) * sizeof(float);
}

/* ------------------------------------------------------------------------ */
/* Generation */

/*
 * The positions a cache of cap must keep of its own: all of them, unless
 * every layer has a sliding window; then the widest window, which holds
 * the window - 1 keys the next query reaches back to and its own.
 */
static int
kv_window(const struct model_config *c)
{
	int w = 0;

	for (int l = 0; l < c->n_layers; l++) {
		struct layer_attrs a;

		arch_layer_attrs(c, l, &a);
		if (a.window <= 0)
			return 0;
		if (a.window > w)
			w = a.window;
	}
	return w;
}

static int
kv_slots(int window, int positions)
{
	int n = window > 0 && window < positions ? window : positions;

	return n > 0 ? n : 1;
}

struct kv_cache *
kv_cache_new(const struct model_config *c, int cap)
{
	struct kv_cache *kv = xcalloc(1, sizeof(*kv));
	size_t n;

	kv->cap = cap;
	kv->window = kv_window(c);
	kv->slots = kv_slots(kv->window, cap);
	kv->nlayers = c->n_layers;
	kv->kvdim = model_kv_dim(c);
	n = (size_t)kv->nlayers * kv->slots * kv->kvdim;
	kv->k = xmalloc_huge(n * sizeof(float));
	kv->v = xmalloc_huge(n * sizeof(float));
	return kv;
}

struct kv_cache *
kv_cache_fork(const struct kv_cache *base, int cap)
{
	struct kv_cache *kv = xcalloc(1, sizeof(*kv));
	size_t n;

	if (base->base != NULL)
		errx(1, "kv_cache_fork: the base is a fork itself");
	if (cap < base->len)
		errx(1, "kv_cache_fork: %d positions, the base has %d", cap,
		    base->len);
	kv->cap = cap;
	kv->window = base->window;
	kv->nlayers = base->nlayers;
	kv->kvdim = base->kvdim;
	kv->base = base;
	kv->off = kv->len = base->len;
	kv->slots = kv_slots(kv->window, cap - kv->off);
	n = (size_t)kv->nlayers * kv->slots * kv->kvdim;
	kv->k = xmalloc_huge(n * sizeof(float));
	kv->v = xmalloc_huge(n * sizeof(float));
	return kv;
}

void
kv_cache_free(struct kv_cache *kv)
{
	if (kv == NULL)
		return;
	free(kv->k);
	free(kv->v);
	free(kv);
}

/* Position by position: the two rings may be of different sizes. */
void
kv_cache_copy(struct kv_cache *dst, const struct kv_cache *src)
{
	size_t row = (size_t)src->kvdim * sizeof(float);
	int from = src->len - (src->slots < dst->slots ? src->slots :
	    dst->slots);

	if (dst->base != NULL || src->base != NULL)
		errx(1, "kv_cache_copy: forks are not copied");
	if (dst->cap < src->len || dst->kvdim != src->kvdim ||
	    dst->nlayers != src->nlayers || dst->window != src->window)
		errx(1, "kv_cache_copy: caches of different shapes");
	if (from < 0)
		from = 0;
	for (int l = 0; l < src->nlayers; l++)
		for (int p = from; p < src->len; p++) {
			memcpy(dst->k + kv_row(dst, l, p),
			    src->k + kv_row(src, l, p), row);
			memcpy(dst->v + kv_row(dst, l, p),
			    src->v + kv_row(src, l, p), row);
		}
	dst->len = src->len;
}

void
model_extend(struct model *m, struct kv_cache **kv, int B, const int *ntok,
    const int *tokens, float *logits)
{
	for (int i = 0; i < B; i++)
		if (kv[i]->base != NULL)
			errx(1, "model_extend: forked caches are decoded by "
			    "sample_step");
	net_infer(&m->acts->net, &backend_cpu, m->acts->net.bx, kv, B, ntok,
	    tokens, logits);
}

void
model_extend_backend(struct model *m, const struct backend *be, void *ctx,
    struct kv_cache **kv, int B, const int *ntok, const int *tokens,
    float *logits)
{
	net_infer(&m->acts->net, be, ctx, kv, B, ntok, tokens, logits);
}

/* FNV-1a of bytes in 1 MiB pieces, hashed in parallel, then together. */
static uint64_t
hash_pieces(const void *base, size_t bytes)
{
	size_t piece = 1 << 20, np = (bytes + piece - 1) / piece;
	uint64_t *h = xcalloc(np ? np : 1, sizeof(*h)), r;
	const char *p = base;

#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < np; i++) {
		size_t len = i + 1 < np ? piece : bytes - i * piece;
		h[i] = hash_bytes(p + i * piece, len);
	}
	r = hash_bytes(h, np * sizeof(*h));
	free(h);
	return r;
}

uint64_t
model_params_hash(const struct model *m)
{
	uint64_t r = hash_pieces(m->params, m->nparams * sizeof(float));
	uint64_t *all = NULL;
	int n = 0;

	for (int i = 0; i < m->ntensors; i++) {
		const struct model_tensor *t = &m->tensors[i];
		if (t->dtype == DT_F32)
			continue;
		if (n == 0) {
			all = xcalloc(m->ntensors + 1, sizeof(*all));
			all[n++] = r;
		}
		all[n++] = hash_pieces(t->half, t->n * sizeof(uint16_t));
	}
	if (n > 0) {
		r = hash_bytes(all, n * sizeof(*all));
		free(all);
	}
	return r;
}
