/*
 * fuzz_safetensors: libFuzzer target for the safetensors reader (st_parse).
 *
 * Each input is parsed as a whole safetensors file.  A file that parses
 * has every tensor converted to fp32, and its header written again by
 * st_header over the same data must parse to the same tensors: a crash, a
 * sanitizer report or a header that does not survive the round trip is a
 * finding.  Errors in the data are expected (st_parse returns them).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/safetensors.h"
#include "util/util.h"
#include "jump.h"

static void
convert_all(const struct st_file *f)
{
	char shp[128];
	for (size_t i = 0; i < f->nt; i++) {
		const struct tensor *t = &f->t[i];
		float *dst = xmalloc(t->n ? t->n * sizeof *dst : 1);
		dtype_to_f32(t->dtype, t->raw, dst, t->n);
		(void)dtype_nonfinite(t->dtype, t->raw, t->n);
		tensor_shape_str(shp, sizeof shp, t->ndim, t->shape);
		free(dst);
	}
}

/* Write f's header again over its data; it must read back the same. */
static void
round_trip(const struct st_file *f)
{
	struct st_entry *e = xcalloc(f->nt + 1, sizeof *e);
	for (size_t i = 0; i < f->nt; i++) {
		const struct tensor *t = &f->t[i];
		e[i].name = t->name;
		e[i].dtype = t->dtype;
		e[i].ndim = t->ndim;
		memcpy(e[i].shape, t->shape, sizeof e[i].shape);
		e[i].begin = (uint64_t)((const unsigned char *)t->raw -
		    f->data);
		e[i].end = e[i].begin + tensor_bytes(t);
	}
	size_t hl;
	unsigned char *h = st_header(e, f->nt, 0, &hl);
	unsigned char *buf = xmalloc(hl + f->datalen + 1);
	memcpy(buf, h, hl);
	if (f->datalen)
		memcpy(buf + hl, f->data, f->datalen);
	struct st_file g;
	char err[512];
	if (st_parse(&g, "again", buf, hl + f->datalen, err, sizeof err) !=
	    0) {
		fprintf(stderr, "rewritten header does not parse: %s\n", err);
		abort();
	}
	if (g.nt != f->nt)
		abort();
	for (size_t i = 0; i < f->nt; i++) {
		const struct tensor *a = &f->t[i], *b = &g.t[i];
		if (strcmp(a->name, b->name) != 0 || a->dtype != b->dtype ||
		    a->ndim != b->ndim || a->n != b->n ||
		    memcmp(a->shape, b->shape, a->ndim * sizeof *a->shape) !=
		    0 || (const unsigned char *)a->raw - f->data !=
		    (const unsigned char *)b->raw - g.data) {
			fprintf(stderr, "tensor \"%s\" changed in the round "
			    "trip\n", a->name);
			abort();
		}
	}
	st_free(&g);
	free(buf);
	free(h);
	free(e);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct st_file f;
	char err[512];

	fuzz_arm();
	if (setjmp(fuzz_on_error) == 0) {
		if (st_parse(&f, "fuzz.safetensors", data, size, err,
		    sizeof err) == 0) {
			convert_all(&f);
			round_trip(&f);
		}
		st_free(&f);
		fuzz_disarm();
	} else
		fuzz_reclaim();
	return 0;
}
