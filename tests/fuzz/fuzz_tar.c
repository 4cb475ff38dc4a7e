/*
 * fuzz_tar: libFuzzer target for loading a checkpoint archive (ckpt_load
 * on a .tar, .tar.zst or .tar.gz: libarchive, then config.json and the
 * safetensors files in it).
 *
 * Each input is the bytes of an archive, given to ckpt_load as a file
 * named x.tar.  A checkpoint that loads has every model tensor converted
 * to fp32 and dropped again, and its optional files looked up.  A crash,
 * a hang or a sanitizer report is a finding; the loader's exits on bad
 * data (errx) are expected and jump back here.
 */
#include <stdlib.h>

#include "checkpoints/checkpoint.h"
#include "util/util.h"
#include "jump.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	size_t len;

	fuzz_file("x.tar", data, size, path, sizeof path);
	fuzz_arm();
	if (setjmp(fuzz_on_error) == 0) {
		struct ckpt *c = ckpt_load(path);
		for (size_t i = 0; i < ckpt_ntensors(c); i++) {
			const struct tensor *t = ckpt_tensor(c, i);
			(void)ckpt_data(c, t);
			ckpt_drop(c, t);
		}
		struct st_set *s = ckpt_extra(c, "optimizer.safetensors");
		for (size_t i = 0; s != NULL && i < st_set_ntensors(s); i++)
			(void)st_set_find(s, st_set_tensor(s, i)->name);
		(void)ckpt_file(c, "tokenizer.json", &len);
		json_decref(ckpt_json(c, "generation_config.json"));
		ckpt_free(c);
		fuzz_disarm();
	} else
		fuzz_reclaim();
	return 0;
}
