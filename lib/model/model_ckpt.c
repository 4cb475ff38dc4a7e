/*
 * model_ckpt.c: a model from a Hugging Face checkpoint and back, through
 * lib/checkpoints/checkpoint.h.  Kept apart from model.c so programs that
 * only compute need not link the checkpoint code.  See model_ckpt.h.
 */
#include <err.h>
#include <stdlib.h>
#include <string.h>

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
 * Every tensor the config implies must be there with its exact shape.
 * Tensors are copied into the model's one parameter allocation one at a
 * time and released, so loading needs little more than the model's own
 * memory.
 */
struct model *
model_from_ckpt(struct ckpt *c)
{
	return model_from_ckpt_with(c, NULL, NULL, NULL);
}

struct model *
model_from_ckpt_with(struct ckpt *c, const struct model_lora *lc,
    int (*trainable)(const struct model_tensor *t, void *arg), void *arg)
{
	struct model_config cfg;
	struct model *m;

	model_ckpt_check(c, &cfg);
	if (lc != NULL)
		cfg.lora = *lc;
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

		memcpy(m->params + t->offset, ckpt_data(c, ct),
		    t->n * sizeof(float));
		ckpt_drop(c, ct);
	}
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
		ckpt_writer_add_tensor(w, t->name, t->ndim, t->shape,
		    m->params + t->offset);
	}
}
