/*
 * fuzz_config: libFuzzer target for config.json (model_config_from_json).
 *
 * Each input is read as config.json is (ckpt_json_parse), then turned into
 * hyper-parameters.  A config that is accepted is written back with
 * model_config_to_json, which must be accepted again and give the same
 * JSON; the tensor layout it implies is built, and the update of the
 * original JSON made: a crash, a sanitizer report or a config that does
 * not survive the round trip is a finding.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/checkpoint.h"
#include "model/model_config.h"
#include "util/util.h"
#include "jump.h"

static void
check(const json_t *config)
{
	struct model_config cfg, back;
	char err[512];

	if (model_config_from_json(&cfg, config, err, sizeof err) != 0)
		return;
	json_t *gen = model_config_to_json(&cfg);
	if (model_config_from_json(&back, gen, err, sizeof err) != 0) {
		fprintf(stderr, "written config is refused: %s\n", err);
		abort();
	}
	json_t *again = model_config_to_json(&back);
	if (!json_equal(gen, again)) {
		char *a = json_dumps(gen, JSON_SORT_KEYS);
		char *b = json_dumps(again, JSON_SORT_KEYS);
		fprintf(stderr, "config round trip differs:\n%s\n%s\n", a, b);
		abort();
	}
	json_decref(again);
	json_decref(gen);

	int n;
	struct model_tensor *t = model_tensors(&cfg, &n);
	free(t);
	(void)model_num_params(&cfg);
	json_decref(model_config_update_json(&cfg, config));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t je;

	fuzz_arm();
	if (setjmp(fuzz_on_error) == 0) {
		json_t *config = ckpt_json_parse(data, size, &je);
		if (config != NULL)
			check(config);
		json_decref(config);
		fuzz_disarm();
	} else
		fuzz_reclaim();
	return 0;
}
