/*
 * sample_step.c: one decoding step over B sequences, each one new token,
 * on the KV caches of lib/model/model.h: the model's cached pass (the one
 * decoder block) on backend_cpu_decode, whose products and attention sum
 * every sequence's numbers the same way whatever the batch
 * (lib/backend/cpu_decode.c says how).
 */
#include <err.h>
#include <stdlib.h>

#include "backend/backend.h"
#include "model/model.h"
#include "sampling/sample.h"
#include "util/util.h"

struct sample_step {
	struct model *m;
	void *ctx;		/* backend_cpu_decode's */
	int maxB;
	int *ones;		/* (maxB) a new token each */
};

struct sample_step *
sample_step_new(struct model *m, int maxB)
{
	struct sample_step *s = xcalloc(1, sizeof(*s));

	s->m = m;
	s->maxB = maxB;
	s->ctx = backend_cpu_decode.ctx_new();
	s->ones = xcalloc(maxB > 0 ? maxB : 1, sizeof(int));
	for (int i = 0; i < maxB; i++)
		s->ones[i] = 1;
	return s;
}

void
sample_step_free(struct sample_step *s)
{
	if (s == NULL)
		return;
	backend_cpu_decode.ctx_free(s->ctx);
	free(s->ones);
	free(s);
}

void
sample_step(struct sample_step *s, struct kv_cache **kv, int B,
    const int *tokens, float *logits)
{
	if (B > s->maxB)
		errx(1, "sample_step: %d sequences, room for %d", B, s->maxB);
	model_extend_backend(s->m, &backend_cpu_decode, s->ctx, kv, B, s->ones,
	    tokens, logits);
}
