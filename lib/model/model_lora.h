/*
 * model_lora.h: LoRA adapters in PEFT's format (lib/model/model_lora.c).
 *
 * An adapter directory is what PEFT's save_pretrained writes for a LoRA
 * of a causal LM: adapter_config.json (peft_type "LORA", r, lora_alpha,
 * lora_dropout, target_modules, bias "none", task_type "CAUSAL_LM",
 * base_model_name_or_path, ...) and adapter_model.safetensors, whose
 * tensors are named base_model.model.<the base's module>.lora_A.weight
 * (r, in) and .lora_B.weight (out, r), plus the full tensors of
 * modules_to_save (base_model.model.lm_head.weight).  prefpipe adds its
 * optimizer state (optimizer.safetensors, trainer_state.json) and the
 * base's tokenizer files, which PEFT ignores.
 *
 * The model of an adapter is its base with cfg.lora set: the adapters are
 * model tensors (model_config.h), the base's are read from the base
 * checkpoint as model_from_ckpt reads them, then the adapter's tensors
 * over them.
 */
#ifndef PREFPIPE_MODEL_LORA_H
#define PREFPIPE_MODEL_LORA_H

#include <jansson.h>

#include "model/model.h"

struct ckpt;
struct ckpt_writer;

/* PEFT's prefix of every tensor name in adapter_model.safetensors. */
#define LORA_PREFIX "base_model.model."

/*
 * What a model was loaded from: ckpt is the checkpoint of its config and
 * tokenizer (the base's, for an adapter); adapter the adapter directory
 * (its optimizer state), or NULL; base the base's path as resolved.
 */
struct model_src {
	struct ckpt *ckpt;
	struct ckpt *adapter;
	char *base;
	char *modules;		/* modules_to_save, comma-separated, or NULL */
};

/*
 * Open path: a checkpoint, or an adapter directory whose base is base
 * (--base; NULL: its base_model_name_or_path, a path tried relative to
 * the adapter directory, then as given).  Errors end the program with
 * status 1, naming the file and field.
 */
void model_src_open(struct model_src *src, const char *path,
    const char *base);
/* Whether path is an adapter directory (adapter_config.json, no
 * config.json), without loading it. */
int lora_path_is_adapter(const char *path);
void model_src_free(struct model_src *src);

/*
 * The model of src: its base's tensors and, for an adapter, the adapter
 * on them.  lc, when not NULL and src is no adapter, adds new adapters
 * (uninitialised: model_lora_init).  trainable, when not NULL, lays the
 * tensors out as model_set_trainable would, before any weight is read
 * (so loading never holds the weights twice); hold, unless DT_F32, holds
 * the frozen matrices in that type as they are read (model_from_ckpt_with).
 */
struct model *model_src_load(struct model_src *src,
    const struct model_lora *lc,
    int (*trainable)(const struct model_tensor *t, void *arg), void *arg,
    int hold);

/* Open and load in one: what rollout and score do. */
struct model *model_load(const char *path, const char *base,
    struct model_src *src);
/*
 * The same for use, not training (rollout, score, train-step's --ref):
 * every tensor frozen; a checkpoint's matrices held as o says
 * (model_from_ckpt_opts, in place where it can be).  Under an adapter
 * the base's matrices are held as o says too, converted as they are read,
 * and the adapters stay fp32.
 */
struct model_load_opts;
struct model *model_load_as(const char *path, const char *base,
    struct model_src *src, const struct model_load_opts *o);

/*
 * Parse adapter_config.json: LORA only, and the options whose arithmetic
 * is implemented (bias "none", no DoRA, no rsLoRA, no fan_in_fan_out, no
 * per-layer rank or alpha patterns); target_modules a list of the seven
 * projections' names or "all-linear".  Returns 0, or -1 with a message.
 */
int lora_config_from_json(struct model_lora *lc, const json_t *j, char *err,
    size_t errsz);

/* Parse a comma-separated list of target names into lc->targets; 0 or
 * -1 with a message. */
int lora_targets_parse(struct model_lora *lc, const char *list, char *err,
    size_t errsz);

/*
 * The adapter of m into w (opened on the output directory):
 * adapter_config.json naming base (its base_model_name_or_path) and
 * modules (the --train-modules, or NULL), and adapter_model.safetensors
 * with the adapters and the tensors of modules, fp32 or the writer's
 * dtype.
 */
void lora_save(const struct model *m, struct ckpt_writer *w,
    const char *base, const char *modules);
/* The base_model_name_or_path written for base: its absolute path, so the
 * adapter finds it from anywhere (a static buffer). */
const char *lora_base_name(const char *base);

/*
 * Fold m's adapters into its base: W += (alpha/r) B A for every target,
 * and a model without adapters returned (m is freed).
 */
struct model *model_lora_fold(struct model *m);
/* W (O,K) += s B (O,r) A (r,K), each element summed in double and
 * rounded once. */
void lora_fold_add(float *W, int O, int K, const float *B, const float *A,
    int r, double s);

/* Whether tensor t belongs to one of the comma-separated modules (PEFT's
 * modules_to_save: "lm_head", "model.norm", matched at the end of the
 * tensor's module path). */
int lora_module_match(const char *modules, const struct model_tensor *t);

#endif
