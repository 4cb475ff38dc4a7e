/*
 * fuzz_jinja: libFuzzer target for the Jinja interpreter (jinja_parse,
 * jinja_render).
 *
 * Each input is a template; one that parses renders with a small
 * conversation, as chat templates are called.  A crash, a hang or a
 * sanitizer report is a finding; syntax and rendering errors are expected.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "text/jinja.h"
#include "util/util.h"
#include "jump.h"

static const char vars[] = "{\"messages\": [{\"role\": \"system\", "
    "\"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": "
    "\"caf\\u00e9 \\u6f22 <s>\"}, {\"role\": \"assistant\", \"content\": "
    "\"ok\", \"tool_calls\": [{\"function\": {\"name\": \"f\", "
    "\"arguments\": {\"a\": [1, 2.5, null, true]}}}]}], "
    "\"add_generation_prompt\": true, \"bos_token\": \"<s>\", "
    "\"eos_token\": \"</s>\", \"tools\": null}";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static json_t *v;
	char err[512];

	if (v == NULL)
		v = json_loads(vars, 0, NULL);
	fuzz_arm();
	if (setjmp(fuzz_on_error) == 0) {
		char *src = xstrndup((const char *)data, size);
		struct jinja *j = jinja_parse(src, "t", err, sizeof err);
		if (j != NULL) {
			struct jinja_span *sp;
			size_t n;
			free(jinja_render(j, v, &sp, &n, err, sizeof err));
			free(sp);
			jinja_free(j);
		}
		free(src);
		fuzz_disarm();
	} else
		fuzz_reclaim();
	return 0;
}
