/*
 * model_config.h: config.json to hyper-parameters and back, and the
 * tensors (names, shapes, layout) a configuration implies, built from the
 * architecture table (arch.h).
 */
#ifndef PREFPIPE_MODEL_CONFIG_H
#define PREFPIPE_MODEL_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "model/hparams.h"

/*
 * Fill cfg from a parsed config.json.  Reads rope_theta and rope_scaling at
 * the top level and in the newer rope_parameters object.  An architecture
 * or option the code does not implement (sliding windows, another rope
 * scaling, another activation...) is an error naming it, never an
 * approximation.  Returns 0, or -1 with a message in err.
 */
int model_config_from_json(struct model_config *cfg, const json_t *config,
    char *err, size_t errsz);

/* A new HF-compatible config.json object (torch_dtype float32). */
json_t *model_config_to_json(const struct model_config *cfg);

/* Check a config built by hand; same contract as model_config_from_json. */
int model_config_check(const struct model_config *cfg, char *err,
    size_t errsz);


/*
 * The parameters of a config, as HF names them, in the order they lie in
 * struct model's flat parameter array.  Shapes are PyTorch's (out, in) for
 * linear layers.
 */
struct model_tensor {
	char name[64];
	int ndim;
	int64_t shape[2];
	size_t offset;		/* in floats, into model.params */
	size_t n;		/* shape[0] * shape[1] */
	int layer;		/* its layer, or -1 */
	int role;		/* enum arch_role (lib/model/arch.h) */
	int is_norm;		/* an RMSNorm weight (initialised to 1) */
	int is_bias;		/* a bias (initialised to 0) */
	int trainable;		/* 1 unless frozen (model_set_trainable) */
	int lora;		/* 0; 1: lora_A (r,in), 2: lora_B (out,r) of
				 * the projection of role, target lora_target */
	int lora_target;	/* enum lora_target, when lora */
	/*
	 * How the model holds it: dtype DT_F32 (enum dtype,
	 * lib/tensors/tensor.h), in model.params at offset; or, a frozen
	 * matrix only (model_hold, model_from_ckpt_opts), DT_BF16 or DT_F16 at half,
	 * outside params (offset then means nothing).
	 */
	int dtype;
	const uint16_t *half;
};

/* PEFT's module name of a LoRA target ("q_proj") and the target of a
 * name, or -1; the role (enum arch_role) of its projection. */
const char *lora_target_name(int target);
int lora_target_parse(const char *name);
int lora_target_role(int target);

/* The tensors of cfg, in HF order, laid out in that order; *n gets their
 * count.  Free it.  With cfg->lora, each layer's adapters follow its own
 * tensors, A then B of each target in the layer table's order, named as
 * PEFT names them without its "base_model.model." prefix:
 * model.layers.L.self_attn.q_proj.lora_A.weight. */
struct model_tensor *model_tensors(const struct model_config *cfg, int *n);

/* Total number of parameters. */
size_t model_num_params(const struct model_config *cfg);

/*
 * config.json for cfg, starting from orig (the checkpoint's own, or NULL):
 * orig's keys as they are, except those whose meaning cfg changes, set from
 * model_config_to_json; keys cfg drops are removed.  model_type and
 * architectures keep their family ("MistralForCausalLM" stays, and becomes
 * "MistralForSequenceClassification" with a reward head).  torch_dtype is
 * left to the writer.  A new reference.
 */
json_t *model_config_update_json(const struct model_config *cfg,
    const json_t *orig);

#endif
