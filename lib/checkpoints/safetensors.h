/*
 * safetensors.h: the safetensors file format.  Element types and their
 * conversions are lib/tensors/tensor.h's; this file knows only the layout.
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of
 * JSON mapping each tensor name to {"dtype", "shape", "data_offsets":
 * [begin, end]} (plus an optional "__metadata__" map of strings), then the
 * data: tensor bytes at [begin, end) counted from the end of the header.
 */
#ifndef PREFPIPE_SAFETENSORS_H
#define PREFPIPE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "tensors/tensor.h"

/* One parsed safetensors file over bytes it does not own. */
struct st_file {
	char *name;			/* for messages */
	const unsigned char *base;	/* the whole file */
	size_t len;
	const unsigned char *data;	/* the data section */
	size_t datalen;
	struct tensor *t;		/* in order of data offset */
	size_t nt;
	json_t *meta;			/* "__metadata__", or NULL */
};

/*
 * Parse and check the file in buf[0..len): the header is JSON, every dtype
 * is one we read, every shape matches its byte count, every range lies in
 * the data and no two overlap.  Returns 0, or -1 with a message (naming the
 * tensor, not the file) in err.  Tensors' raw points into buf.
 */
int st_parse(struct st_file *f, const char *name, const void *buf, size_t len,
    char *err, size_t errsz);
void st_free(struct st_file *f);

/* A tensor's entry in a header being written. */
struct st_entry {
	char *name;
	enum dtype dtype;
	int ndim;
	int64_t shape[TENSOR_MAXDIM];
	uint64_t begin, end;
};

/*
 * The header for entries (whose offsets are set), with "__metadata__":
 * {"format": "pt"}: the 8-byte length and the JSON, padded with spaces so
 * that the data starts on an 8-byte boundary, and is at least minlen bytes
 * long in all (a multiple of 8, or 0).  Malloc'd; *len its size.
 */
unsigned char *st_header(const struct st_entry *e, size_t n, size_t minlen,
    size_t *len);

#endif
