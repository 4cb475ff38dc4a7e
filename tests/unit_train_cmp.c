/*
 * unit_train_cmp: compare the tensors of two checkpoints, for the
 * train-step shell tests (not a test of its own).
 *
 *     unit_train_cmp GOT WANT TOL
 *
 * WANT is a checkpoint or a bare .safetensors file; GOT may be a LoRA
 * adapter directory, whose adapter_model.safetensors is then compared.  Every tensor of WANT
 * (and, when both are checkpoints, of WANT's optimizer.safetensors) must be
 * in GOT with the same size and max |got - want| <= TOL * max |want|: the
 * error relative to the tensor's scale, so elements near zero do not make
 * a float-rounding difference look large.  Exit 0 when all match, 1 with
 * the worst tensors listed when not.
 */
#include "config.h"

#include <err.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/checkpoint.h"
#include "checkpoints/safetensors.h"
#include "util/util.h"

static int failures;
static double worst;

static void
compare(const char *what, const char *name, const float *a, const float *b,
    size_t n, size_t nb, double tol)
{
	if (a == NULL || n != nb) {
		printf("FAIL: %s %s: %s\n", what, name, a ? "size differs" :
		    "missing");
		failures++;
		return;
	}
	double dmax = 0, bmax = 0;
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)a[i] - b[i]);
		if (!(d <= dmax))
			dmax = d;	/* also catches NaN */
		if (fabs(b[i]) > bmax)
			bmax = fabs(b[i]);
	}
	double rel = dmax / (bmax > 1e-30 ? bmax : 1e-30);
	if (rel > worst || isnan(rel))
		worst = rel;
	if (!(rel <= tol)) {
		printf("FAIL: %s %s: max |diff| %.3g, relative %.3g > %g\n",
		    what, name, dmax, rel, tol);
		failures++;
	}
}

/* Tensor name of got: a model tensor, or an adapter directory's. */
static const struct tensor *
got_find(struct ckpt *got, const char *name)
{
	if (ckpt_is_adapter(got)) {
		struct st_set *s = ckpt_extra(got, "adapter_model.safetensors");
		return s ? st_set_find(s, name) : NULL;
	}
	return ckpt_find(got, name);
}

/* Tensors of a bare safetensors file, converted to fp32. */
static void
cmp_file(struct ckpt *got, const char *path, double tol)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		err(1, "%s", path);
	struct strbuf b;
	sb_init(&b);
	char chunk[65536];
	size_t k;
	while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0)
		sb_add(&b, chunk, k);
	fclose(f);
	struct st_file st;
	char e[512];
	if (st_parse(&st, path, b.data, b.len, e, sizeof(e)) != 0)
		errx(1, "%s: %s", path, e);
	for (size_t i = 0; i < st.nt; i++) {
		const struct tensor *t = &st.t[i];
		float *want = xmalloc(t->n * sizeof(float) + 1);
		dtype_to_f32(t->dtype, t->raw, want, t->n);
		const struct tensor *g = got_find(got, t->name);
		compare("tensor", t->name, g ? g->data : NULL, want,
		    g ? g->n : 0, t->n, tol);
		free(want);
	}
	st_free(&st);
	sb_free(&b);
}

static void
cmp_ckpt(struct ckpt *got, struct ckpt *want, double tol)
{
	struct st_set *wa = ckpt_is_adapter(want) ?
	    ckpt_extra(want, "adapter_model.safetensors") : NULL;

	for (size_t i = 0; wa != NULL && i < st_set_ntensors(wa); i++) {
		const char *name = st_set_tensor(wa, i)->name;
		const struct tensor *w = st_set_find(wa, name);
		const struct tensor *g = got_find(got, name);
		compare("adapter", name, g ? g->data : NULL, w->data,
		    g ? g->n : 0, w->n, tol);
	}
	for (size_t i = 0; i < ckpt_ntensors(want); i++) {
		const char *name = ckpt_tensor(want, i)->name;
		const struct tensor *w = ckpt_find(want, name);
		const struct tensor *g = ckpt_find(got, name);
		compare("tensor", name, g ? g->data : NULL, w->data,
		    g ? g->n : 0, w->n, tol);
	}
	struct st_set *wo = ckpt_extra(want, "optimizer.safetensors");
	struct st_set *go = ckpt_extra(got, "optimizer.safetensors");
	if (wo == NULL)
		return;
	if (go == NULL) {
		printf("FAIL: %s has no optimizer.safetensors\n",
		    ckpt_path(got));
		failures++;
		return;
	}
	for (size_t i = 0; i < st_set_ntensors(wo); i++) {
		const char *name = st_set_tensor(wo, i)->name;
		const struct tensor *w = st_set_find(wo, name);
		const struct tensor *g = st_set_find(go, name);
		compare("optimizer", name, g ? g->data : NULL, w->data,
		    g ? g->n : 0, w->n, tol);
	}
}

int
main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: unit_train_cmp GOT WANT TOL\n");
		return 2;
	}
	double tol = atof(argv[3]);
	struct ckpt *got = ckpt_load(argv[1]);
	size_t n = strlen(argv[2]);
	if (n > 12 && strcmp(argv[2] + n - 12, ".safetensors") == 0)
		cmp_file(got, argv[2], tol);
	else {
		struct ckpt *want = ckpt_load(argv[2]);
		cmp_ckpt(got, want, tol);
		ckpt_free(want);
	}
	ckpt_free(got);
	if (getenv("CMP_VERBOSE"))
		printf("worst relative difference %.3g\n", worst);
	return failures ? 1 : 0;
}
