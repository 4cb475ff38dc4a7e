/*
 * unit_checkpoint: write checkpoints in every form through the writer API,
 * load them back, and compare: fp32 exactly, bf16 as rounded; extra
 * safetensors files and raw files; shards listed by an index; replacing an
 * existing checkpoint.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoints/checkpoint.h"
#include "checkpoints/safetensors.h"
#include "util/util.h"

static int failures;

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: FAIL: %s\n", __FILE__, __LINE__, #cond); \
	failures++; } } while (0)

static float w[6] = { 1, -2, 3.25f, 1e-3f, 0, 1.0f + 0x1p-9f };
static int64_t wshape[2] = { 2, 3 };
static float b[3] = { 0.5f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f };
static int64_t bshape[1] = { 3 };

static void
write_ckpt(const char *path, const char *dtype)
{
	struct ckpt_writer *wr = ckpt_writer_open(path, dtype);
	json_t *cfg = json_pack("{s:s}", "model_type", "test");
	ckpt_writer_add_json(wr, "config.json", cfg);
	json_decref(cfg);
	ckpt_writer_add_tensor(wr, "w", 2, wshape, w);
	ckpt_writer_add_tensor(wr, "b", 1, bshape, b);
	ckpt_writer_add_tensor_to(wr, "optimizer.safetensors", "m.w", 2,
	    wshape, w, DT_F32);
	ckpt_writer_add_file(wr, "tokenizer.json", "{}", 2);
	ckpt_writer_commit(wr);
}

static void
check_ckpt(const char *path, enum dtype dt)
{
	struct ckpt *c = ckpt_load(path);
	CHECK(ckpt_ntensors(c) == 2);
	CHECK(strcmp(json_string_value(json_object_get(ckpt_config(c),
	    "model_type")), "test") == 0);
	const struct tensor *t = ckpt_find(c, "w");
	CHECK(t != NULL && t->ndim == 2 && t->shape[0] == 2 &&
	    t->shape[1] == 3 && t->dtype == dt);
	for (int i = 0; t && i < 6; i++) {
		float want = dt == DT_F32 ? w[i] : bf16_to_f32(f32_to_bf16(w[i]));
		CHECK(t->data[i] == want);
	}
	t = ckpt_need(c, "b", 1, bshape);
	if (dt == DT_BF16) {	/* ties go to even: 1+2^-8 -> 1, 1+3*2^-8 -> 1+2^-6 */
		CHECK(t->data[1] == 1.0f);
		CHECK(t->data[2] == 1.0f + 0x1p-6f);
	} else
		CHECK(memcmp(t->data, b, sizeof b) == 0);
	/* Dropped data comes back the same. */
	ckpt_drop(c, t);
	CHECK(t->data == NULL);
	CHECK(ckpt_data(c, t)[0] == 0.5f);
	CHECK(ckpt_find(c, "nothing") == NULL);

	struct st_set *opt = ckpt_extra(c, "optimizer.safetensors");
	CHECK(opt != NULL && st_set_ntensors(opt) == 1);
	t = st_set_find(opt, "m.w");
	CHECK(t && t->dtype == DT_F32 && memcmp(t->data, w, sizeof w) == 0);
	CHECK(ckpt_extra(c, "nothing.safetensors") == NULL);
	size_t len;
	const char *tok = ckpt_file(c, "tokenizer.json", &len);
	CHECK(tok && len == 2 && memcmp(tok, "{}", 2) == 0);
	CHECK(ckpt_file(c, "trainer_state.json", NULL) == NULL);
	ckpt_free(c);
}

/* Shards: two files and an index, as the Hub has them. */
static void
test_shards(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/sharded", dir);
	struct ckpt_writer *wr = ckpt_writer_open(path, NULL);
	json_t *cfg = json_pack("{s:s}", "model_type", "test");
	ckpt_writer_add_json(wr, "config.json", cfg);
	json_decref(cfg);
	ckpt_writer_add_tensor_to(wr, "model-00001-of-00002.safetensors", "w",
	    2, wshape, w, DT_F32);
	ckpt_writer_add_tensor_to(wr, "model-00002-of-00002.safetensors", "b",
	    1, bshape, b, DT_F16);
	json_t *ix = json_pack("{s:{s:i},s:{s:s,s:s}}", "metadata",
	    "total_size", 30, "weight_map",
	    "w", "model-00001-of-00002.safetensors",
	    "b", "model-00002-of-00002.safetensors");
	ckpt_writer_add_json(wr, "model.safetensors.index.json", ix);
	json_decref(ix);
	ckpt_writer_commit(wr);

	struct ckpt *c = ckpt_load(path);
	CHECK(ckpt_ntensors(c) == 2);
	const struct tensor *t = ckpt_find(c, "b");
	CHECK(t && t->dtype == DT_F16 && t->data[0] == 0.5f &&
	    strcmp(t->file, "model-00002-of-00002.safetensors") == 0);
	t = ckpt_find(c, "w");
	CHECK(t && memcmp(t->data, w, sizeof w) == 0);
	ckpt_free(c);
}

int
main(void)
{
	char dir[] = "/tmp/unit_checkpoint.XXXXXX", path[4096];
	if (mkdtemp(dir) == NULL)
		return 1;

	static const char *const forms[] = { "m", "m.tar", "m.tar.zst",
	    "m.tar.gz" };
	for (size_t i = 0; i < 4; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, forms[i]);
		write_ckpt(path, NULL);
		check_ckpt(path, DT_F32);
		/* Replacing a checkpoint in place. */
		write_ckpt(path, "bf16");
		check_ckpt(path, DT_BF16);
	}
	test_shards(dir);

	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		failures++;
	if (failures)
		fprintf(stderr, "%d failure(s)\n", failures);
	return failures != 0;
}
