/*
 * model_ckpt.c: a model from a Hugging Face checkpoint and back, through
 * lib/checkpoints/checkpoint.h.  Kept apart from model.c so programs that only compute
 * need not link the checkpoint code.
 */
#include <err.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/checkpoint.h"
#include "model/model.h"
#include "util/util.h"

/*
 * Every tensor the config implies must be there with its exact shape
 * (ckpt_need says which is not).  Tensors are copied into the model's one
 * parameter allocation one at a time and released, so loading needs little
 * more than the model's own memory.
 */
struct model *
model_from_ckpt(struct ckpt *c)
{
	struct model_config cfg;
	struct model *m;
	char e[512];

	if (model_config_from_json(&cfg, ckpt_config(c), e, sizeof(e)) != 0)
		errx(EXIT_DATA, "%s: %s", ckpt_path(c), e);
	m = model_new(&cfg);
	for (int i = 0; i < m->ntensors; i++) {
		const struct model_tensor *t = &m->tensors[i];
		const struct tensor *ct;

		ct = ckpt_need(c, t->name, t->ndim, t->shape);
		memcpy(m->params + t->offset, ct->data, t->n * sizeof(float));
		ckpt_drop(c, ct);
	}
	return m;
}

/* config.json and every parameter, in the writer's dtype. */
void
model_save(const struct model *m, struct ckpt_writer *w)
{
	json_t *j = model_config_to_json(&m->cfg);

	ckpt_writer_add_json(w, "config.json", j);
	json_decref(j);
	for (int i = 0; i < m->ntensors; i++) {
		const struct model_tensor *t = &m->tensors[i];
		ckpt_writer_add_tensor(w, t->name, t->ndim, t->shape,
		    m->params + t->offset);
	}
}
