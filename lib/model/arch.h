/*
 * arch.h: the architecture table.  For each family of decoder the model
 * layer knows, the Hugging Face tensors of the network and of one layer:
 * each name's role in the block, its shape in terms of the config, and the
 * condition under which it exists; and the per-layer attributes the block
 * reads (norm style, attention scale and window, which optional tensors
 * are used).
 *
 * The block (lib/model/model_impl.h) never names a tensor: it reads the
 * weights of a layer by role.  Adding an architecture whose block is the
 * pre-norm Llama block with other tensors or attributes is a row here.
 */
#ifndef PREFPIPE_ARCH_H
#define PREFPIPE_ARCH_H

#include <stddef.h>

struct model_config;

/* What a tensor is to the block.  Per-layer roles first. */
enum arch_role {
	ROLE_ATTN_NORM,		/* (C) RMSNorm before attention */
	ROLE_WQ, ROLE_BQ,	/* (Q,C), (Q) */
	ROLE_WK, ROLE_BK,	/* (KV,C), (KV) */
	ROLE_WV, ROLE_BV,	/* (KV,C), (KV) */
	ROLE_WO, ROLE_BO,	/* (C,Q), (C) */
	ROLE_Q_NORM,		/* (hd) RMSNorm of each query head */
	ROLE_K_NORM,		/* (hd) RMSNorm of each key head */
	ROLE_POST_ATTN_NORM,	/* (C) RMSNorm of the attention output,
				 * before the residual add (Gemma 2) */
	ROLE_MLP_NORM,		/* (C) RMSNorm before the MLP */
	ROLE_WGATE, ROLE_WUP,	/* (F,C) */
	ROLE_WDOWN,		/* (C,F) */
	ROLE_POST_MLP_NORM,	/* (C) RMSNorm of the MLP output (Gemma 2) */
	ROLE_NLAYER,		/* the number of per-layer roles */
	/* the network's own */
	ROLE_EMBED = ROLE_NLAYER,	/* (V,C) */
	ROLE_FINAL_NORM,		/* (C) */
	ROLE_LM_HEAD,			/* (V,C) */
	ROLE_SCORE,			/* (num_labels,C) */
	ROLE_COUNT
};

/* A dimension of a tensor, in terms of the config. */
enum arch_dim { DIM_NONE, DIM_C, DIM_Q, DIM_KV, DIM_F, DIM_V, DIM_HD,
	DIM_LABELS };

/* When a tensor exists. */
enum arch_cond {
	COND_ALWAYS,
	COND_QKV_BIAS,		/* cfg->qkv_bias */
	COND_O_BIAS,		/* cfg->o_bias */
	COND_QK_NORM,		/* the family normalises q and k heads */
	COND_LM_UNTIED,		/* a causal LM head not tied to embed_tokens */
	COND_CLASSIFIER,	/* cfg->num_labels > 0 */
};

/* What kind of values a tensor holds: how it is initialised and decayed. */
enum arch_kind { KIND_MATRIX, KIND_NORM, KIND_BIAS };

struct arch_tensor {
	const char *name;	/* after "model.layers.L." for a layer's */
	enum arch_role role;
	enum arch_dim d0, d1;	/* PyTorch's (out, in); d1 DIM_NONE: 1-d */
	enum arch_kind kind;
	enum arch_cond cond;
};

/* How a layer's RMSNorm applies its weight: y = xhat * (offset + w). */
enum arch_norm { NORM_RMS, NORM_RMS_PLUS_ONE };

/* What the block reads of layer l, beyond its weights. */
struct layer_attrs {
	float norm_offset;	/* 0: w; 1: (1 + w) (Gemma) */
	double attn_scale;	/* scores are q.k * attn_scale */
	int window;		/* > 0: a query sees this many positions */
	double attn_softcap;	/* > 0: scores softcapped (Gemma 2) */
	int local_rope;		/* rotary from rope_local_theta (Gemma 3's
				 * sliding layers) */
};

/* The MLP's activation of gate: silu (SwiGLU), or gelu_pytorch_tanh. */
enum arch_act { ACT_SILU, ACT_GELU_TANH };

struct arch {
	const char *model_type;		/* config.json's, as HF names it */
	/* the tensors in the order they are laid out: pre, every layer's,
	 * post (HF's order) */
	const struct arch_tensor *pre, *layer, *post;
	int npre, nlayer, npost;
	enum arch_norm norm;
	/* q and k, each head, RMS-normalised over head_dim after their
	 * projections and before rotary (Qwen3) */
	int qk_norm;
	enum arch_act act;
	/* embeddings times sqrt(hidden_size), in the hidden dtype (Gemma) */
	int embed_scale;
	/* post-norms of the attention and MLP outputs (Gemma 2) */
	int post_norms;
};

/* The row of cfg->arch (enum model_arch). */
const struct arch *arch_of(const struct model_config *cfg);

/* The attributes of layer l of cfg. */
void arch_layer_attrs(const struct model_config *cfg, int l,
    struct layer_attrs *a);

/* Whether tensor t exists in cfg. */
int arch_has(const struct model_config *cfg, const struct arch_tensor *t);

/* The size of dimension d in cfg. */
long long arch_dim(const struct model_config *cfg, enum arch_dim d);

#endif
