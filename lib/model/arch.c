/*
 * arch.c: the architecture table of arch.h.  Llama, Qwen2 and Qwen3 share
 * the block and one list of layer tensors.  Qwen2 adds q/k/v biases
 * (config->qkv_bias, which model_config_from_json sets for it); Qwen3
 * normalises each query and key head (q_norm, k_norm) and has q/k/v/o
 * biases when its config.json says attention_bias.  Mistral is Llama's
 * block with sliding-window attention in every layer when its
 * config.json gives sliding_window.  Gemma 2 has its own layer list (four
 * norms, a post-norm after attention and after the MLP), (1 + w) norms,
 * gelu tanh and the embedding normalizer; its softcaps, attention scale
 * and windows are layer attributes from its config.  Gemma 3 adds (1 + w)
 * q/k norms and a rope base of its own for the sliding layers.
 */
#include <math.h>
#include <stddef.h>

#include "model/arch.h"
#include "model/hparams.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/*
 * The pre-norm decoder layer of LlamaForCausalLM, Qwen2ForCausalLM and
 * Qwen3ForCausalLM, in the order the modules are declared.
 */
static const struct arch_tensor llama_layer[] = {
	{ "input_layernorm.weight", ROLE_ATTN_NORM, DIM_C, DIM_NONE,
	    KIND_NORM, COND_ALWAYS },
	{ "self_attn.q_proj.weight", ROLE_WQ, DIM_Q, DIM_C, KIND_MATRIX,
	    COND_ALWAYS },
	{ "self_attn.q_proj.bias", ROLE_BQ, DIM_Q, DIM_NONE, KIND_BIAS,
	    COND_QKV_BIAS },
	{ "self_attn.k_proj.weight", ROLE_WK, DIM_KV, DIM_C, KIND_MATRIX,
	    COND_ALWAYS },
	{ "self_attn.k_proj.bias", ROLE_BK, DIM_KV, DIM_NONE, KIND_BIAS,
	    COND_QKV_BIAS },
	{ "self_attn.v_proj.weight", ROLE_WV, DIM_KV, DIM_C, KIND_MATRIX,
	    COND_ALWAYS },
	{ "self_attn.v_proj.bias", ROLE_BV, DIM_KV, DIM_NONE, KIND_BIAS,
	    COND_QKV_BIAS },
	{ "self_attn.o_proj.weight", ROLE_WO, DIM_C, DIM_Q, KIND_MATRIX,
	    COND_ALWAYS },
	{ "self_attn.o_proj.bias", ROLE_BO, DIM_C, DIM_NONE, KIND_BIAS,
	    COND_O_BIAS },
	{ "self_attn.q_norm.weight", ROLE_Q_NORM, DIM_HD, DIM_NONE, KIND_NORM,
	    COND_QK_NORM },
	{ "self_attn.k_norm.weight", ROLE_K_NORM, DIM_HD, DIM_NONE, KIND_NORM,
	    COND_QK_NORM },
	{ "post_attention_layernorm.weight", ROLE_MLP_NORM, DIM_C, DIM_NONE,
	    KIND_NORM, COND_ALWAYS },
	{ "mlp.gate_proj.weight", ROLE_WGATE, DIM_F, DIM_C, KIND_MATRIX,
	    COND_ALWAYS },
	{ "mlp.up_proj.weight", ROLE_WUP, DIM_F, DIM_C, KIND_MATRIX,
	    COND_ALWAYS },
	{ "mlp.down_proj.weight", ROLE_WDOWN, DIM_C, DIM_F, KIND_MATRIX,
	    COND_ALWAYS },
};

/*
 * Gemma2DecoderLayer and Gemma3DecoderLayer, in the order their modules
 * are declared: attention (Gemma 3 adds q_norm, k_norm), MLP, then the
 * four norms.  post_attention_layernorm here is the norm of
 * the attention output (a post-norm), pre_feedforward_layernorm the
 * MLP's pre-norm.
 */
static const struct arch_tensor gemma_layer[] = {
	{ "self_attn.q_proj.weight", ROLE_WQ, DIM_Q, DIM_C, KIND_MATRIX,
	    COND_ALWAYS },
	{ "self_attn.q_proj.bias", ROLE_BQ, DIM_Q, DIM_NONE, KIND_BIAS,
	    COND_QKV_BIAS },
	{ "self_attn.k_proj.weight", ROLE_WK, DIM_KV, DIM_C, KIND_MATRIX,
	    COND_ALWAYS },
	{ "self_attn.k_proj.bias", ROLE_BK, DIM_KV, DIM_NONE, KIND_BIAS,
	    COND_QKV_BIAS },
	{ "self_attn.v_proj.weight", ROLE_WV, DIM_KV, DIM_C, KIND_MATRIX,
	    COND_ALWAYS },
	{ "self_attn.v_proj.bias", ROLE_BV, DIM_KV, DIM_NONE, KIND_BIAS,
	    COND_QKV_BIAS },
	{ "self_attn.o_proj.weight", ROLE_WO, DIM_C, DIM_Q, KIND_MATRIX,
	    COND_ALWAYS },
	{ "self_attn.o_proj.bias", ROLE_BO, DIM_C, DIM_NONE, KIND_BIAS,
	    COND_O_BIAS },
	/* Gemma3DecoderLayer's q_norm and k_norm (its arch row's qk_norm) */
	{ "self_attn.q_norm.weight", ROLE_Q_NORM, DIM_HD, DIM_NONE, KIND_NORM,
	    COND_QK_NORM },
	{ "self_attn.k_norm.weight", ROLE_K_NORM, DIM_HD, DIM_NONE, KIND_NORM,
	    COND_QK_NORM },
	{ "mlp.gate_proj.weight", ROLE_WGATE, DIM_F, DIM_C, KIND_MATRIX,
	    COND_ALWAYS },
	{ "mlp.up_proj.weight", ROLE_WUP, DIM_F, DIM_C, KIND_MATRIX,
	    COND_ALWAYS },
	{ "mlp.down_proj.weight", ROLE_WDOWN, DIM_C, DIM_F, KIND_MATRIX,
	    COND_ALWAYS },
	{ "input_layernorm.weight", ROLE_ATTN_NORM, DIM_C, DIM_NONE,
	    KIND_NORM, COND_ALWAYS },
	{ "post_attention_layernorm.weight", ROLE_POST_ATTN_NORM, DIM_C,
	    DIM_NONE, KIND_NORM, COND_ALWAYS },
	{ "pre_feedforward_layernorm.weight", ROLE_MLP_NORM, DIM_C, DIM_NONE,
	    KIND_NORM, COND_ALWAYS },
	{ "post_feedforward_layernorm.weight", ROLE_POST_MLP_NORM, DIM_C,
	    DIM_NONE, KIND_NORM, COND_ALWAYS },
};

static const struct arch_tensor llama_pre[] = {
	{ "model.embed_tokens.weight", ROLE_EMBED, DIM_V, DIM_C, KIND_MATRIX,
	    COND_ALWAYS },
};

static const struct arch_tensor llama_post[] = {
	{ "model.norm.weight", ROLE_FINAL_NORM, DIM_C, DIM_NONE, KIND_NORM,
	    COND_ALWAYS },
	{ "lm_head.weight", ROLE_LM_HEAD, DIM_V, DIM_C, KIND_MATRIX,
	    COND_LM_UNTIED },
	{ "score.weight", ROLE_SCORE, DIM_LABELS, DIM_C, KIND_MATRIX,
	    COND_CLASSIFIER },
};

/* Indexed by enum model_arch. */
static const struct arch archs[] = {
	[MODEL_LLAMA] = { "llama", llama_pre, llama_layer, llama_post,
	    N(llama_pre), N(llama_layer), N(llama_post), NORM_RMS, 0 },
	[MODEL_QWEN2] = { "qwen2", llama_pre, llama_layer, llama_post,
	    N(llama_pre), N(llama_layer), N(llama_post), NORM_RMS, 0 },
	[MODEL_QWEN3] = { "qwen3", llama_pre, llama_layer, llama_post,
	    N(llama_pre), N(llama_layer), N(llama_post), NORM_RMS, 1 },
	[MODEL_MISTRAL] = { "mistral", llama_pre, llama_layer, llama_post,
	    N(llama_pre), N(llama_layer), N(llama_post), NORM_RMS, 0 },
	[MODEL_GEMMA2] = { "gemma2", llama_pre, gemma_layer, llama_post,
	    N(llama_pre), N(gemma_layer), N(llama_post), NORM_RMS_PLUS_ONE, 0,
	    ACT_GELU_TANH, 1, 1 },
	[MODEL_GEMMA3] = { "gemma3_text", llama_pre, gemma_layer, llama_post,
	    N(llama_pre), N(gemma_layer), N(llama_post), NORM_RMS_PLUS_ONE, 1,
	    ACT_GELU_TANH, 1, 1 },
};

const struct arch *
arch_of(const struct model_config *c)
{
	return &archs[c->arch];
}

void
arch_layer_attrs(const struct model_config *c, int l, struct layer_attrs *a)
{
	a->norm_offset = arch_of(c)->norm == NORM_RMS_PLUS_ONE ? 1 : 0;
	a->attn_scale = 1 / sqrt(c->query_pre_attn_scalar > 0 ?
	    c->query_pre_attn_scalar : (double)c->head_dim);
	/* MistralModel gives every layer the same window; Gemma's
	 * layer_types, layer l when (l + 1) % pattern != 0. */
	int sliding = c->sliding_pattern > 0 ? (l + 1) % c->sliding_pattern !=
	    0 : 1;

	a->window = sliding ? c->sliding_window : 0;
	a->attn_softcap = c->attn_softcap;
	a->local_rope = sliding && c->rope_local_theta > 0;
}

int
arch_has(const struct model_config *c, const struct arch_tensor *t)
{
	switch (t->cond) {
	case COND_ALWAYS:
		return 1;
	case COND_QKV_BIAS:
		return c->qkv_bias;
	case COND_O_BIAS:
		return c->o_bias;
	case COND_QK_NORM:
		return arch_of(c)->qk_norm;
	case COND_LM_UNTIED:
		return c->lm_head && !c->tie_embeddings;
	case COND_CLASSIFIER:
		return c->num_labels > 0;
	}
	return 0;
}

long long
arch_dim(const struct model_config *c, enum arch_dim d)
{
	switch (d) {
	case DIM_NONE:
		return 1;
	case DIM_C:
		return c->dim;
	case DIM_Q:
		return model_q_dim(c);
	case DIM_KV:
		return model_kv_dim(c);
	case DIM_F:
		return c->hidden_dim;
	case DIM_V:
		return c->vocab_size;
	case DIM_HD:
		return c->head_dim;
	case DIM_LABELS:
		return c->num_labels;
	}
	return 0;
}
