/*
 * model_ckpt.c: a model from a Hugging Face checkpoint and back, through
 * lib/checkpoints/checkpoint.h.  Kept apart from model.c so programs that
 * only compute need not link the checkpoint code.  See model_ckpt.h.
 */
#include <err.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "checkpoints/checkpoint.h"
#include "model/model.h"
#include "model/model_ckpt.h"
#include "util/util.h"

const struct tensor *
model_ckpt_tensor(struct ckpt *c, const struct model_config *cfg,
    const char *name)
{
	const struct tensor *t = ckpt_meta(c, name);

	/* Tied: the one matrix may be stored under the head's name only. */
	if (t == NULL && cfg->tie_embeddings &&
	    strcmp(name, "model.embed_tokens.weight") == 0)
		t = ckpt_meta(c, "lm_head.weight");
	return t;
}

const char *
model_ckpt_write_name(struct ckpt *c, const struct tensor *t)
{
	struct model_config cfg;
	char e[256];

	if (strcmp(t->name, "lm_head.weight") != 0 ||
	    model_config_from_json(&cfg, ckpt_config(c), e, sizeof(e)) != 0 ||
	    !cfg.tie_embeddings)
		return t->name;
	/* Stored under its own name too: then lm_head.weight is a copy. */
	for (size_t i = 0; i < ckpt_ntensors(c); i++)
		if (strcmp(ckpt_tensor(c, i)->name,
		    "model.embed_tokens.weight") == 0)
			return t->name;
	return "model.embed_tokens.weight";
}

/* The tensor for model tensor mt: there, and shaped as the config says. */
static const struct tensor *
need(struct ckpt *c, const struct model_config *cfg,
    const struct model_tensor *mt)
{
	const struct tensor *t = model_ckpt_tensor(c, cfg, mt->name);
	char a[128], b[128], w[4096];

	if (t == NULL)	/* ckpt_need says where it is missing */
		return ckpt_need(c, mt->name, mt->ndim, mt->shape);
	if (!tensor_same_shape(t->ndim, t->shape, mt->ndim, mt->shape))
		errx(EXIT_DATA, "%s: tensor \"%s\" has shape %s, config.json "
		    "says %s", ckpt_where(c, t->file, w, sizeof w), t->name,
		    tensor_shape_str(a, sizeof a, t->ndim, t->shape),
		    tensor_shape_str(b, sizeof b, mt->ndim, mt->shape));
	return t;
}

void
model_ckpt_check(struct ckpt *c, struct model_config *cfg)
{
	char e[512], w[4096];
	struct model_tensor *t;
	int n;

	if (model_config_from_json(cfg, ckpt_config(c), e, sizeof(e)) != 0)
		errx(EXIT_DATA, "%s: %s", ckpt_where(c, "config.json", w,
		    sizeof w), e);
	t = model_tensors(cfg, &n);
	for (int i = 0; i < n; i++)
		need(c, cfg, &t[i]);
	free(t);
}

/*
 * n elements from src (type from) to dst (type to, one of them F32), in
 * pieces across the threads: a model's worth of conversions takes
 * seconds in one.
 */
static void
convert(enum dtype from, const void *src, enum dtype to, void *dst, size_t n)
{
	size_t piece = 1 << 18, np = (n + piece - 1) / piece;

#pragma omp parallel for schedule(static) if (np > 1)
	for (size_t k = 0; k < np; k++) {
		size_t i = k * piece, len = n - i < piece ? n - i : piece;

		if (to == DT_F32)
			dtype_to_f32(from, (const char *)src + i *
			    dtype_size(from), (float *)dst + i, len);
		else
			dtype_from_f32(to, (const float *)src + i,
			    (char *)dst + i * dtype_size(to), len);
	}
}

/*
 * Checkpoint tensor ct into model tensor mt, in the type mt is held in:
 * copied, widened from the bytes, or narrowed, then dropped.
 */
static void
read_tensor(struct ckpt *c, const struct tensor *ct, const struct model *m,
    const struct model_tensor *mt)
{
	if (mt->dtype == DT_F32 && ct->dtype == DT_F32)
		memcpy(m->params + mt->offset, ckpt_data(c, ct),
		    mt->n * sizeof(float));
	else if (mt->dtype == DT_F32)	/* widened from the bytes */
		convert(ct->dtype, ct->raw, DT_F32, m->params + mt->offset,
		    mt->n);
	else if ((int)ct->dtype == mt->dtype)	/* as stored */
		memcpy((uint16_t *)mt->half, ct->raw,
		    mt->n * sizeof(uint16_t));
	else if (ct->dtype == DT_F32)
		convert(DT_F32, ckpt_data(c, ct), mt->dtype,
		    (uint16_t *)mt->half, mt->n);
	else		/* the other 16-bit type, through fp32 */
		dtype_from_f32(mt->dtype, ckpt_data(c, ct),
		    (uint16_t *)mt->half, mt->n);
	ckpt_drop(c, ct);
}

/*
 * Every tensor the config implies must be there with its exact shape.
 * Tensors are copied into the model's one parameter allocation one at a
 * time and released, so loading needs little more than the model's own
 * memory.
 */
struct model *
model_from_ckpt(struct ckpt *c)
{
	return model_from_ckpt_with(c, NULL, NULL, NULL, DT_F32);
}

struct model *
model_from_ckpt_with(struct ckpt *c, const struct model_lora *lc,
    int (*trainable)(const struct model_tensor *t, void *arg), void *arg,
    int hold)
{
	struct model_config cfg;
	struct model *m;

	model_ckpt_check(c, &cfg);
	if (lc != NULL)
		cfg.lora = *lc;
	if (hold != DT_F32 && trainable != NULL) {
		/* The frozen matrices narrow from the start: a base is never
		 * held in fp32 on its way to 16 bits. */
		int n, *dt;
		struct model_tensor *t = model_tensors(&cfg, &n);

		dt = xcalloc(n, sizeof(*dt));
		for (int i = 0; i < n; i++)
			dt[i] = !trainable(&t[i], arg) &&
			    model_tensor_holdable(&t[i]) ? hold : DT_F32;
		m = model_new_held(&cfg, dt, NULL);
		free(dt);
		free(t);
	} else
		m = model_new(&cfg);
	/* Laid out before anything is read: the move copies untouched
	 * pages, so the weights are never held twice. */
	if (trainable != NULL)
		model_set_trainable(m, trainable, arg);
	for (int i = 0; i < m->ntensors; i++) {
		const struct model_tensor *t = &m->tensors[i];
		const struct tensor *ct;

		if (t->lora) {	/* the adapter's, not the base's */
			memset(m->params + t->offset, 0, t->n * sizeof(float));
			continue;
		}
		ct = need(c, &cfg, t);
		read_tensor(c, ct, m, t);
	}
	return m;
}

int
model_weights_parse(const char *s, int *weights)
{
	int dt;

	if (strcasecmp(s, "auto") == 0) {
		*weights = MODEL_WEIGHTS_AUTO;
		return 0;
	}
	if ((dt = dtype_parse(s)) < 0)
		return -1;
	*weights = dt;
	return 0;
}

int
model_load_dtype(struct ckpt *c, const struct model_load_opts *o)
{
	struct model_config cfg;
	const struct tensor *t;
	char e[512];

	if (o->weights != MODEL_WEIGHTS_AUTO)
		return o->weights;
	if (model_config_from_json(&cfg, ckpt_config(c), e, sizeof(e)) != 0)
		return DT_F32;
	t = model_ckpt_tensor(c, &cfg, "model.embed_tokens.weight");
	return t != NULL ? (int)t->dtype : DT_F32;
}

/*
 * Each matrix in the type asked for (auto: its own), the rest fp32.  A
 * 16-bit matrix stored in the type it is held in is pointed at where it
 * lies (2-byte aligned: safetensors keeps data offsets a multiple of the
 * element size in practice, but a header may be any length); any other is
 * converted one tensor at a time into the model's own memory, as
 * model_from_ckpt copies.
 */
struct model *
model_from_ckpt_opts(struct ckpt *c, const struct model_load_opts *o)
{
	struct model_config cfg;
	struct model_tensor *t;
	struct model *m;
	const struct tensor **ct;
	const uint16_t **at;
	int n, *dt, inplace = 0;

	model_ckpt_check(c, &cfg);
	t = model_tensors(&cfg, &n);
	ct = xcalloc(n, sizeof(*ct));
	at = xcalloc(n, sizeof(*at));
	dt = xcalloc(n, sizeof(*dt));
	for (int i = 0; i < n; i++) {
		ct[i] = need(c, &cfg, &t[i]);
		dt[i] = !model_tensor_holdable(&t[i]) ? DT_F32 :
		    o->weights == MODEL_WEIGHTS_AUTO ? (int)ct[i]->dtype :
		    o->weights;
		if (dt[i] != DT_F32 && (int)ct[i]->dtype == dt[i] &&
		    ((uintptr_t)ct[i]->raw & 1) == 0) {
			at[i] = ct[i]->raw;
			inplace = 1;
		}
	}
	free(t);
	m = model_new_held(&cfg, dt, at);
	if (inplace) {
		m->hold = ckpt_ref(c);
		m->release = (void (*)(void *))ckpt_free;
	}
	for (int i = 0; i < n; i++) {
		const struct model_tensor *mt = &m->tensors[i];

		if (at[i] != NULL)
			continue;
		read_tensor(c, ct[i], m, mt);
	}
	free(ct);
	free(at);
	free(dt);
	if (o->compute != MODEL_COMPUTE_F32)
		model_set_compute(m, o->compute);
	return m;
}

/*
 * config.json and every parameter, in the writer's dtype.  The config
 * starts from the one the writer carried (ckpt_writer_carry), so keys
 * prefpipe does not use pass through, and says the dtype written.  The
 * parameters are the model's own tensors: a tied matrix once, as
 * model.embed_tokens.weight, as transformers' save_pretrained writes it.
 */
void
model_save(const struct model *m, struct ckpt_writer *w)
{
	json_t *j = model_config_update_json(&m->cfg,
	    ckpt_writer_base_config(w));

	ckpt_config_set_dtype(j, ckpt_writer_dtype(w));
	ckpt_writer_add_json(w, "config.json", j);
	json_decref(j);
	for (int i = 0; i < m->ntensors; i++) {
		const struct model_tensor *t = &m->tensors[i];
		float *wide = NULL;

		/* 16 bits widen exactly; the writer converts to its type */
		if (t->dtype != DT_F32) {
			wide = xmalloc_huge(t->n * sizeof(float));
			dtype_to_f32(t->dtype, t->half, wide, t->n);
		}
		ckpt_writer_add_tensor(w, t->name, t->ndim, t->shape,
		    wide != NULL ? wide : m->params + t->offset);
		free(wide);
	}
}
