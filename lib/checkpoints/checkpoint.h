/*
 * checkpoint.h: model checkpoints in the Hugging Face layout.
 *
 * A checkpoint is a directory, or a .tar, .tar.zst or .tar.gz archive of
 * one, holding config.json and the weights in model.safetensors (or shards
 * model-0000k-of-0000N.safetensors listed in model.safetensors.index.json),
 * plus whatever else came with it: tokenizer.json, tokenizer_config.json,
 * generation_config.json, and prefpipe's own training state in
 * optimizer.safetensors and trainer_state.json.  See prefpipe-checkpoint(5).
 *
 * Reading: directories are mmapped; archives are read into memory.  Tensors
 * stored as F32, BF16 or F16 are handed out as fp32, converted on first use.
 * Every problem with the data (a corrupt safetensors header, a tensor out of
 * range, a missing file) ends the program with status 1 and a message that
 * names the file and the tensor.
 *
 * Writing: files are written under a temporary name next to the final path
 * and renamed into place by ckpt_writer_commit, so a killed write never
 * leaves a partial checkpoint under the final name.  The suffix of the path
 * picks the form: .tar, .tar.zst, .tar.gz, else a directory.
 */
#ifndef PREFPIPE_CHECKPOINT_H
#define PREFPIPE_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "tensors/tensor.h"

struct ckpt;

/* Load a directory or archive checkpoint.  Dies with a message on error. */
struct ckpt *ckpt_load(const char *path);
/*
 * One more holder of c (a model using its mapped tensors in place,
 * model_from_ckpt_opts): each ckpt_free lets one go, the last frees.  Returns c.
 */
struct ckpt *ckpt_ref(struct ckpt *c);
void ckpt_free(struct ckpt *c);
/*
 * Whether c is a PEFT adapter directory or archive: adapter_config.json
 * and no config.json.  It then has an empty config and no model tensors;
 * adapter_model.safetensors is one of its ckpt_extra files
 * (lib/model/model_lora.h puts it on its base).
 */
int ckpt_is_adapter(const struct ckpt *c);
/* The path it was loaded from. */
const char *ckpt_path(const struct ckpt *c);
/*
 * A file of the checkpoint as messages name it: "DIR/FILE" for a directory,
 * "ARCHIVE: FILE" for an archive.  Returns buf.
 */
char *ckpt_where(const struct ckpt *c, const char *file, char *buf,
    size_t n);

/* The parsed config.json (borrowed; valid until ckpt_free). */
json_t *ckpt_config(struct ckpt *c);

/*
 * Model tensors (those of model.safetensors or its shards), in file order.
 * ckpt_tensor returns metadata only: t->data stays NULL until ckpt_data.
 */
size_t ckpt_ntensors(const struct ckpt *c);
const struct tensor *ckpt_tensor(const struct ckpt *c, size_t i);
/*
 * The tensor named name, metadata only (data may be NULL), or NULL.  This
 * and ckpt_find and ckpt_need also find a tensor by an alias that a
 * safetensors file's __metadata__ gives for it, as safetensors' save_model
 * writes shared tensors: {"model.embed_tokens.weight": "lm_head.weight"}
 * finds lm_head.weight under both names.
 */
const struct tensor *ckpt_meta(const struct ckpt *c, const char *name);
/* The tensor named name with its fp32 data, or NULL when absent. */
const struct tensor *ckpt_find(struct ckpt *c, const char *name);
/*
 * The tensor named name, which must exist with exactly this shape: else the
 * program ends with "DIR/model.safetensors: tensor \"NAME\": missing" or
 * "... tensor \"NAME\" has shape [a, b], config.json says [c, d]".
 * Returns it with fp32 data.
 */
const struct tensor *ckpt_need(struct ckpt *c, const char *name, int ndim,
    const int64_t *shape);

/*
 * Streaming access (merge, convert): ckpt_data converts one tensor to fp32
 * (an F32 tensor in an mmapped file is used in place, without a copy);
 * ckpt_drop releases it again, and the pages of its mapping, so memory
 * stays near one tensor per checkpoint however large the model is.
 * ckpt_read converts into the caller's buffer of t->n floats instead.
 */
float *ckpt_data(struct ckpt *c, const struct tensor *t);
void ckpt_drop(struct ckpt *c, const struct tensor *t);
void ckpt_read(struct ckpt *c, const struct tensor *t, float *dst);

/*
 * Extra safetensors files such as optimizer.safetensors: NULL when the
 * checkpoint has no such file.  The returned handle gives tensors the same
 * way; it belongs to c.
 */
struct st_set;
struct st_set *ckpt_extra(struct ckpt *c, const char *file);
size_t st_set_ntensors(const struct st_set *s);
const struct tensor *st_set_tensor(const struct st_set *s, size_t i);
const struct tensor *st_set_find(struct st_set *s, const char *name);

/*
 * The bytes of any other file in the checkpoint ("tokenizer.json",
 * "trainer_state.json", ...), or NULL when absent.  Borrowed; the data is
 * not NUL-terminated.
 */
const void *ckpt_file(struct ckpt *c, const char *name, size_t *len);
/* A JSON file of the checkpoint, parsed (new reference), or NULL when
 * absent; bad JSON ends the program naming the file.  Integers too large
 * for int64, as transformers writes them ("model_max_length":
 * 1000000000000000019884624838656), are read as reals. */
json_t *ckpt_json(struct ckpt *c, const char *name);
/* The same reader over bytes: NULL and *je on error. */
json_t *ckpt_json_parse(const void *p, size_t len, json_error_t *je);
/* Every file name of the checkpoint, in a stable (sorted) order. */
size_t ckpt_nfiles(const struct ckpt *c);
const char *ckpt_file_name(const struct ckpt *c, size_t i);

/* ------------------------------------------------------------------------ */
/* Writing */

struct ckpt_writer;

/*
 * A writer for path; dtype ("f32", "bf16", "f16"; NULL means f32) is the
 * element type of model tensors.  Nothing appears under path until commit.
 */
struct ckpt_writer *ckpt_writer_open(const char *path, const char *dtype);
/* A model tensor into model.safetensors, converted to the writer's dtype.
 * Tensors are streamed to a spool file: the caller may free data at once. */
void ckpt_writer_add_tensor(struct ckpt_writer *w, const char *name, int ndim,
    const int64_t *shape, const float *data);
/*
 * A tensor into any safetensors file of the checkpoint ("model.safetensors",
 * "optimizer.safetensors"), in an explicit dtype.
 */
void ckpt_writer_add_tensor_to(struct ckpt_writer *w, const char *file,
    const char *name, int ndim, const int64_t *shape, const float *data,
    enum dtype dt);
/* A tensor stored as raw bytes already in dt (bit-exact copy). */
void ckpt_writer_add_raw_to(struct ckpt_writer *w, const char *file,
    const char *name, int ndim, const int64_t *shape, const void *raw,
    enum dtype dt);
/*
 * A hint, before the first tensor: model.safetensors will hold the tensors
 * of like, in its order, in the writer's dtype.  The header's room is then
 * kept ahead of the data, which is written in place instead of copied at
 * commit.  Any other tensors still work, just slower.
 */
void ckpt_writer_plan(struct ckpt_writer *w, const struct ckpt *like);
/* Any other file, by name (no '/'); a later add replaces an earlier one. */
void ckpt_writer_add_file(struct ckpt_writer *w, const char *name,
    const void *data, size_t len);
/* A JSON file (config.json, trainer_state.json), indented like HF's. */
void ckpt_writer_add_json(struct ckpt_writer *w, const char *name,
    const json_t *j);
/*
 * Copy c's tokenizer and generation files (tokenizer.json,
 * tokenizer_config.json, special_tokens_map.json, generation_config.json,
 * and any other file that is neither weights, config.json nor training
 * state), and keep c's config.json as the base of the new one: a writer
 * of config.json (model_save) starts from it, so the keys prefpipe does not
 * use pass through; a config.json added equal to it is written as its
 * original bytes.
 */
void ckpt_writer_carry(struct ckpt_writer *w, struct ckpt *c);
/* The carried config.json (borrowed), or NULL when nothing was carried. */
const json_t *ckpt_writer_base_config(const struct ckpt_writer *w);
/* The element type of model tensors. */
enum dtype ckpt_writer_dtype(const struct ckpt_writer *w);
/* Set config.json's torch_dtype (or the newer dtype) to dt's name. */
void ckpt_config_set_dtype(json_t *config, enum dtype dt);
/* Write everything and rename it into place; frees w. */
void ckpt_writer_commit(struct ckpt_writer *w);
/* Give up: remove the temporary files; frees w. */
void ckpt_writer_abort(struct ckpt_writer *w);

#endif
