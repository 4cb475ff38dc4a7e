/* safetensors.c: see safetensors.h. */
#include "config.h"

#include <err.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/safetensors.h"
#include "util/util.h"

/* ------------------------------------------------------------------------ */
/* Reading */

/* By where the data starts, then ends (empty tensors first), then name. */
static int
by_offset(const void *a, const void *b)
{
	const struct tensor *x = a, *y = b;
	const unsigned char *p = x->raw, *q = y->raw;
	if (p != q)
		return p < q ? -1 : 1;
	if (x->n != y->n)
		return x->n < y->n ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* The shape and byte range of one header entry, checked against the data. */
static int
parse_entry(struct st_file *f, const char *key, json_t *v, struct tensor *t,
    char *err, size_t errsz)
{
	json_t *jd = json_object_get(v, "dtype");
	json_t *js = json_object_get(v, "shape");
	json_t *jo = json_object_get(v, "data_offsets");
	char shp[128];

	if (!json_is_object(v))
		return pp_errf(err, errsz, "tensor \"%s\": header entry is not "
		    "an object", key);
	if (!json_is_string(jd) || !json_is_array(js) || !json_is_array(jo))
		return pp_errf(err, errsz, "tensor \"%s\": header entry lacks "
		    "dtype, shape or data_offsets", key);
	int dt = dtype_parse(json_string_value(jd));
	if (dt < 0)
		return pp_errf(err, errsz, "tensor \"%s\": unsupported dtype %s "
		    "(prefpipe reads F32, BF16 and F16)", key,
		    json_string_value(jd));
	t->name = xstrdup(key);
	t->dtype = (enum dtype)dt;
	t->file = f->name;
	t->ndim = (int)json_array_size(js);
	if (t->ndim > TENSOR_MAXDIM)
		return pp_errf(err, errsz, "tensor \"%s\": %d dimensions; at most "
		    "%d are supported", key, t->ndim, TENSOR_MAXDIM);
	uint64_t n = 1;
	for (int d = 0; d < t->ndim; d++) {
		json_t *x = json_array_get(js, d);
		if (!json_is_integer(x) || json_integer_value(x) < 0)
			return pp_errf(err, errsz, "tensor \"%s\": shape is not a "
			    "list of sizes", key);
		t->shape[d] = json_integer_value(x);
		if (t->shape[d] && n > (UINT64_MAX >> 4) / (uint64_t)t->shape[d])
			return pp_errf(err, errsz, "tensor \"%s\": shape too "
			    "large", key);
		n *= (uint64_t)t->shape[d];
	}
	t->n = n;

	json_t *b = json_array_get(jo, 0), *e = json_array_get(jo, 1);
	if (json_array_size(jo) != 2 || !json_is_integer(b) ||
	    !json_is_integer(e))
		return pp_errf(err, errsz, "tensor \"%s\": data_offsets is not "
		    "[begin, end]", key);
	json_int_t begin = json_integer_value(b), end = json_integer_value(e);
	if (begin < 0 || end < begin || (uint64_t)end > f->datalen)
		return pp_errf(err, errsz, "tensor \"%s\": data_offsets [%lld, "
		    "%lld] out of range: the data section has %zu bytes "
		    "(truncated file?)", key, (long long)begin,
		    (long long)end, f->datalen);
	uint64_t want = n * dtype_size(t->dtype);
	if ((uint64_t)(end - begin) != want)
		return pp_errf(err, errsz, "tensor \"%s\": %lld bytes, but shape "
		    "%s of %s needs %" PRIu64, key, (long long)(end - begin),
		    tensor_shape_str(shp, sizeof shp, t->ndim, t->shape),
		    dtype_name(t->dtype), want);
	t->raw = f->data + begin;
	return 0;
}

int
st_parse(struct st_file *f, const char *name, const void *buf, size_t len,
    char *err, size_t errsz)
{
	memset(f, 0, sizeof *f);
	f->name = xstrdup(name);
	f->base = buf;
	f->len = len;

	if (len < 8)
		return pp_errf(err, errsz, "truncated: %zu bytes, less than the "
		    "8-byte header length", len);
	uint64_t hl = 0;
	for (int i = 7; i >= 0; i--)
		hl = hl << 8 | f->base[i];
	if (hl > len - 8)
		return pp_errf(err, errsz, "header length %" PRIu64 " exceeds "
		    "the file's %zu bytes (truncated file?)", hl, len);
	f->data = f->base + 8 + hl;
	f->datalen = len - 8 - hl;

	json_error_t je;
	json_t *h = json_loadb((const char *)f->base + 8, hl,
	    JSON_REJECT_DUPLICATES, &je);
	if (h == NULL)
		return pp_errf(err, errsz, "header is not JSON: %s at byte %d",
		    je.text, je.position);
	if (!json_is_object(h)) {
		json_decref(h);
		return pp_errf(err, errsz, "header is not a JSON object");
	}
	/* The format: the object starts at the header's first byte. */
	if (f->base[8] != '{') {
		json_decref(h);
		return pp_errf(err, errsz, "header does not begin with '{' (a "
		    "wrong header length?)");
	}

	f->t = xcalloc(json_object_size(h), sizeof *f->t);
	const char *key;
	json_t *v;
	int rc = 0;
	json_object_foreach(h, key, v) {
		if (strcmp(key, "__metadata__") == 0) {
			f->meta = json_incref(v);
			continue;
		}
		rc = parse_entry(f, key, v, &f->t[f->nt], err, errsz);
		f->nt++;
		if (rc != 0)
			break;
	}
	json_decref(h);
	if (rc != 0)
		return rc;

	/*
	 * The safetensors format: the tensors' byte ranges tile the data
	 * section exactly, with no gap, no overlap and nothing after the
	 * last.  A header length off by one or a spliced file then cannot
	 * pass with its weights read a byte off.
	 */
	if (f->nt > 0)
		qsort(f->t, f->nt, sizeof *f->t, by_offset);
	uint64_t at = 0;
	for (size_t i = 0; i < f->nt; i++) {
		const struct tensor *q = &f->t[i];
		uint64_t b = (uint64_t)((const unsigned char *)q->raw -
		    f->data);
		if (b < at)
			return pp_errf(err, errsz, "tensor \"%s\": its data "
			    "overlaps tensor \"%s\"", q->name,
			    f->t[i - 1].name);
		if (b > at)
			return pp_errf(err, errsz, "tensor \"%s\": data_offsets "
			    "begin at %" PRIu64 ", but the data before it ends "
			    "at %" PRIu64 " (a gap: the header's offsets must "
			    "tile the data)", q->name, b, at);
		at = b + tensor_bytes(q);
	}
	if (at != f->datalen)
		return pp_errf(err, errsz, "trailing data: the tensors end at "
		    "byte %" PRIu64 " of the data section's %zu (the header's "
		    "offsets must tile it; a wrong header length?)", at,
		    f->datalen);
	return 0;
}

void
st_free(struct st_file *f)
{
	for (size_t i = 0; i < f->nt; i++) {
		if (f->t[i].owned)
			free(f->t[i].data);
		free(f->t[i].name);
	}
	free(f->t);
	free(f->name);
	json_decref(f->meta);
	memset(f, 0, sizeof *f);
}

/* ------------------------------------------------------------------------ */
/* Writing */

unsigned char *
st_header(const struct st_entry *e, size_t n, size_t minlen, size_t *len)
{
	json_t *h = json_object();
	json_object_set_new(h, "__metadata__",
	    json_pack("{s:s}", "format", "pt"));
	for (size_t i = 0; i < n; i++) {
		json_t *shape = json_array();
		for (int d = 0; d < e[i].ndim; d++)
			json_array_append_new(shape,
			    json_integer(e[i].shape[d]));
		json_object_set_new(h, e[i].name, json_pack("{s:s,s:o,s:[I,I]}",
		    "dtype", dtype_name(e[i].dtype), "shape", shape,
		    "data_offsets", (json_int_t)e[i].begin,
		    (json_int_t)e[i].end));
	}
	char *text = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (text == NULL)
		errx(EXIT_DATA, "out of memory writing a safetensors header");
	json_decref(h);

	/* Pad with spaces so the data section starts 8-byte aligned. */
	size_t tl = strlen(text), hl = (tl + 7) & ~(size_t)7;
	if (minlen > 8 && hl < minlen - 8)
		hl = (minlen - 8 + 7) & ~(size_t)7;
	unsigned char *out = xmalloc(8 + hl);
	for (int i = 0; i < 8; i++)
		out[i] = (unsigned char)((uint64_t)hl >> (8 * i));
	memcpy(out + 8, text, tl);
	memset(out + 8 + tl, ' ', hl - tl);
	free(text);
	*len = 8 + hl;
	return out;
}
