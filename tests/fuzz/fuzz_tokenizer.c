/*
 * fuzz_tokenizer: libFuzzer target for loading tokenizer.json
 * (tokenizer_from_json).
 *
 * Each input is loaded as a tokenizer.json; one that loads encodes a short
 * fixed text (ASCII, accents, CJK, digits, special-token text, spaces),
 * with and without special tokens, and decodes the ids again.  A crash, a
 * hang or a sanitizer report is a finding; load errors are expected.
 */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer.h"
#include "util/util.h"
#include "jump.h"

static const char text[] = "Hello, world!  It's 2024: caf\xc3\xa9 "
    "\xe6\xbc\xa2\xe5\xad\x97 <s>x</s> <|eos|>\n\ttabs  and   spaces 12345";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];

	fuzz_arm();
	if (setjmp(fuzz_on_error) == 0) {
		struct tokenizer *t = tokenizer_from_json((const char *)data,
		    size, "tokenizer.json", err, sizeof err);
		if (t != NULL) {
			for (int special = 0; special < 2; special++) {
				int32_t *ids;
				size_t n = tokenizer_encode(t, text,
				    sizeof text - 1, special, &ids);
				free(tokenizer_decode(t, ids, n, special,
				    NULL));
				free(ids);
			}
			(void)tokenizer_token_to_id(t, "<s>", 3);
			(void)tokenizer_id_to_token(t, 0);
			tokenizer_free(t);
		}
		fuzz_disarm();
	} else
		fuzz_reclaim();
	return 0;
}
