/*
 * tokenizer_ckpt.c: a checkpoint's tokenizer (tokenizer.json, and
 * tokenizer_config.json when there is one).  Apart from tokenizer.c so that
 * the tokenizer itself does not depend on the checkpoint code.
 */
#include "config.h"

#include <stdio.h>

#include "checkpoints/checkpoint.h"
#include "text/tokenizer.h"

struct tokenizer *
tokenizer_from_ckpt(struct ckpt *c, char *err, size_t errsz)
{
	struct tokenizer *t;
	const void *data;
	size_t len;
	char where[1024];

	ckpt_where(c, "tokenizer.json", where, sizeof(where));
	if ((data = ckpt_file(c, "tokenizer.json", &len)) == NULL) {
		snprintf(err, errsz, "%s: missing (the checkpoint has no "
		    "tokenizer)", where);
		return NULL;
	}
	if ((t = tokenizer_from_json(data, len, where, err, errsz)) == NULL)
		return NULL;
	if ((data = ckpt_file(c, "tokenizer_config.json", &len)) != NULL) {
		ckpt_where(c, "tokenizer_config.json", where, sizeof(where));
		if (tokenizer_load_config(t, data, len, where, err, errsz) < 0) {
			tokenizer_free(t);
			return NULL;
		}
	}
	return t;
}
