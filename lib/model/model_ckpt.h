/*
 * model_ckpt.h: a model's tensors in a checkpoint, as transformers reads
 * and writes them (lib/model/model_ckpt.c).  model_from_ckpt and
 * model_save are declared in model.h.
 *
 * Reading, tied embeddings (tie_word_embeddings) come from either name:
 * model.embed_tokens.weight, or lm_head.weight alone (what safetensors'
 * save_model keeps, with __metadata__ naming the other as an alias, or
 * without it).  Writing is transformers' save_pretrained form: the tied
 * matrix once, as model.embed_tokens.weight, no lm_head.weight.
 */
#ifndef PREFPIPE_MODEL_CKPT_H
#define PREFPIPE_MODEL_CKPT_H

#include "model/model.h"

struct ckpt;
struct tensor;

/* The checkpoint's tensor that holds the model's parameter name (metadata
 * only), or NULL. */
const struct tensor *model_ckpt_tensor(struct ckpt *c,
    const struct model_config *cfg, const char *name);

/*
 * The name under which tensor t of c is written in transformers' form:
 * its own, except a tied matrix stored as lm_head.weight alone (the
 * save_model form), which transformers writes as
 * model.embed_tokens.weight.  For copying a checkpoint tensor by tensor
 * (ckpt convert); a config that is not a model's keeps every name.
 */
const char *model_ckpt_write_name(struct ckpt *c, const struct tensor *t);

/*
 * Check c as a model, as loading it would: config.json into *cfg (a config
 * the model cannot run is an error) and every tensor it implies there with
 * its shape.  Reads no weights.  Errors end the program with status 1,
 * naming the file and the tensor.
 */
void model_ckpt_check(struct ckpt *c, struct model_config *cfg);

/*
 * model_from_ckpt with adapters lc (NULL: none; their tensors zero, for
 * the caller to fill) and, when trainable is not NULL, the layout of
 * model_set_trainable(trainable, arg) made before any weight is read.
 * hold (DT_BF16, DT_F16; DT_F32: none), with trainable, holds the
 * matrices trainable leaves frozen in that type (as model_hold would) from
 * the start, so a frozen base is never held in fp32 on its way to 16 bits.
 */
struct model *model_from_ckpt_with(struct ckpt *c,
    const struct model_lora *lc,
    int (*trainable)(const struct model_tensor *t, void *arg), void *arg,
    int hold);

#endif
