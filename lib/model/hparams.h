/*
 * hparams.h: a decoder's hyper-parameters, as its config.json gives them.
 * Kept apart from model.h so the architecture table (arch.c) and the
 * config reader (model_config.c) share the struct without depending on
 * the model itself.
 */
#ifndef PREFPIPE_HPARAMS_H
#define PREFPIPE_HPARAMS_H

enum model_arch { MODEL_LLAMA, MODEL_QWEN2, MODEL_QWEN3, MODEL_MISTRAL,
    MODEL_GEMMA2, MODEL_GEMMA3 };

enum model_rope_scaling { ROPE_NONE, ROPE_LLAMA3, ROPE_LINEAR };

#define MODEL_MAX_EOS 8

/*
 * LoRA adapters (PEFT's LoraConfig) on a layer's linear projections: each
 * target W (out,in) gets lora_A (rank,in) and lora_B (out,rank), and the
 * block computes x W^T + (alpha/rank) drop(x) A^T B^T.  Not part of
 * config.json: an adapter directory's adapter_config.json says it
 * (lib/model/model_lora.h).  rank 0: none.
 */
enum lora_target { LORA_Q, LORA_K, LORA_V, LORA_O, LORA_GATE, LORA_UP,
	LORA_DOWN, LORA_NTARGET };

struct model_lora {
	int rank;		/* r */
	double alpha;		/* lora_alpha; the scale is alpha / r */
	double dropout;		/* lora_dropout, on the adapter's input */
	unsigned targets;	/* bits 1 << enum lora_target */
};

struct model_config {
	enum model_arch arch;
	int vocab_size;
	int dim;		/* hidden_size */
	int n_layers;		/* num_hidden_layers */
	int n_heads;		/* num_attention_heads */
	int n_kv_heads;		/* num_key_value_heads; divides n_heads */
	int head_dim;		/* head_dim, else dim / n_heads */
	int hidden_dim;		/* intermediate_size (the MLP's width) */
	int max_seq_len;	/* max_position_embeddings */
	float norm_eps;		/* rms_norm_eps */
	double rope_theta;
	enum model_rope_scaling rope_scaling;
	double rope_factor;		/* llama3 and linear scaling */
	double rope_low_freq_factor;
	double rope_high_freq_factor;
	int rope_orig_max_pos;		/* original_max_position_embeddings */
	int tie_embeddings;	/* lm_head shares model.embed_tokens.weight */
	int qkv_bias;		/* q/k/v projections have biases (Qwen2;
				 * Qwen3's attention_bias) */
	int o_bias;		/* o_proj has a bias (Qwen3's attention_bias) */
	int sliding_window;	/* > 0: each query sees its last this many
				 * positions, itself included (Mistral:
				 * every layer; Gemma: the sliding ones) */
	/* Gemma 2 and 3 (0 where a family has none) */
	double query_pre_attn_scalar;	/* > 0: scores scaled by its ^-0.5 */
	double attn_softcap;	/* attn_logit_softcapping */
	double final_softcap;	/* final_logit_softcapping */
	int sliding_pattern;	/* > 0: layer l slides unless (l + 1) %
				 * sliding_pattern == 0 (Gemma 2: 2, Gemma
				 * 3: sliding_window_pattern, 6) */
	double rope_local_theta;	/* > 0: the sliding layers' rope base,
					 * unscaled (Gemma 3) */
	int lm_head;		/* 1: causal LM head; 0: classification only */
	int num_labels;		/* > 0: score.weight (num_labels, dim) */
	int bos_id;		/* -1 if none */
	int n_eos;
	int eos_ids[MODEL_MAX_EOS];
	int pad_id;		/* -1 if none */
	struct model_lora lora;	/* adapters, or rank 0 */
};

/* Number of query/kv channels: n_heads * head_dim, n_kv_heads * head_dim. */
static inline int model_q_dim(const struct model_config *c)
{ return c->n_heads * c->head_dim; }
static inline int model_kv_dim(const struct model_config *c)
{ return c->n_kv_heads * c->head_dim; }

#endif
