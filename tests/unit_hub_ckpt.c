/*
 * unit_hub_ckpt: checkpoints in the shapes the Hugging Face Hub holds them
 * (tests/gen_hub_fixtures.py, committed under tests/fixtures/hub) load as
 * models with the weights they store: tied embeddings under either name,
 * and under the __metadata__ alias safetensors' save_model writes;
 * untied, sharded with an index, and bf16.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/checkpoint.h"
#include "model/model.h"
#include "model/model_ckpt.h"
#include "util/util.h"

static int failures;

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: FAIL: %s\n", __FILE__, __LINE__, #cond); \
	failures++; } } while (0)

static struct model *
load(const char *kind)
{
	const char *top = getenv("top_srcdir");
	char path[4096];

	snprintf(path, sizeof path, "%s/tests/fixtures/hub/%s",
	    top ? top : ".", kind);
	struct ckpt *c = ckpt_load(path);
	struct model_config cfg;
	model_ckpt_check(c, &cfg);
	struct model *m = model_from_ckpt(c);
	ckpt_free(c);
	return m;
}

/* Each parameter holds what gen_hub_fixtures.py's values() wrote. */
static void
check_values(const char *kind, struct model *m)
{
	for (int i = 0; i < m->ntensors; i++) {
		const struct model_tensor *t = &m->tensors[i];
		const float *p = m->params + t->offset;
		size_t bad = 0;
		for (size_t k = 0; k < t->n; k++) {
			long v = (long)((k * 37 + strlen(t->name) * 11) % 255) -
			    127;
			bad += p[k] != (float)v / 1024;
		}
		if (bad) {
			fprintf(stderr, "FAIL: %s: %s: %zu values differ\n",
			    kind, t->name, bad);
			failures++;
		}
	}
}

int
main(void)
{
	static const char *const tied[] = { "tied_embed", "tied_alias",
	    "tied_head" };
	static const char *const untied[] = { "untied", "sharded", "bf16" };

	for (size_t i = 0; i < 3; i++) {
		struct model *m = load(tied[i]);
		CHECK(m->cfg.tie_embeddings);
		CHECK(model_tensor(m, "lm_head.weight") == NULL);
		CHECK(m->ntensors == 11);
		check_values(tied[i], m);
		model_free(m);
	}
	for (size_t i = 0; i < 3; i++) {
		struct model *m = load(untied[i]);
		CHECK(!m->cfg.tie_embeddings);
		CHECK(model_tensor(m, "lm_head.weight") != NULL);
		CHECK(m->ntensors == 12);
		check_values(untied[i], m);
		model_free(m);
	}
	if (failures)
		fprintf(stderr, "%d failure(s)\n", failures);
	return failures != 0;
}
