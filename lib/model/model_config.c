/*
 * model_config.c: struct model_config from and to Hugging Face's
 * config.json, and the parameter tensors a config implies.
 *
 * The rule: every key that changes the network's arithmetic is either
 * implemented or refused by name.  Keys that only matter to other software
 * (use_cache, torch_dtype, transformers_version...) are ignored.
 */
#include <err.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/arch.h"
#include "model/model_config.h"
#include "util/util.h"

/* ------------------------------------------------------------------------ */
/* Reading config.json */

/* An integer field: def when absent or null; -2 on a wrong type. */
static int
get_int(const json_t *o, const char *key, long long def, long long *out)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL || json_is_null(v)) {
		*out = def;
		return 0;
	}
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 0;
	}
	/*
	 * Some writers emit 2048.0 for integers.  A real outside long long's
	 * range (1e30) is no integer here: converting it would be undefined.
	 */
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (d >= -0x1p63 && d < 0x1p63 && d == (long long)d) {
			*out = (long long)d;
			return 0;
		}
	}
	return -2;
}

static int
get_num(const json_t *o, const char *key, double def, double *out)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL || json_is_null(v)) {
		*out = def;
		return 0;
	}
	if (!json_is_number(v))
		return -2;
	*out = json_number_value(v);
	return 0;
}

static int
get_bool(const json_t *o, const char *key, int def, int *out)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL || json_is_null(v)) {
		*out = def;
		return 0;
	}
	if (!json_is_boolean(v))
		return -2;
	*out = json_is_true(v);
	return 0;
}

#define INT(o, key, def, dst, lo, hi) do {				\
	long long v_;							\
	if (get_int((o), (key), (def), &v_) != 0)			\
		return pp_errf(err, errsz, "\"%s\" is not an integer", (key)); \
	if (v_ < (lo) || v_ > (hi))					\
		return pp_errf(err, errsz, "\"%s\" = %lld is out of range [%lld, %lld]", \
		    (key), v_, (long long)(lo), (long long)(hi));	\
	(dst) = v_;							\
} while (0)

#define NUM(o, key, def, dst) do {					\
	double v_;							\
	if (get_num((o), (key), (def), &v_) != 0)			\
		return pp_errf(err, errsz, "\"%s\" is not a number", (key)); \
	(dst) = v_;							\
} while (0)

#define BOOL(o, key, def, dst) do {					\
	if (get_bool((o), (key), (def), &(dst)) != 0)			\
		return pp_errf(err, errsz, "\"%s\" is not a boolean", (key)); \
} while (0)

#define IS_GEMMA(a) ((a) == MODEL_GEMMA2 || (a) == MODEL_GEMMA3)

/*
 * The rope part: rope_theta and rope_scaling at the top level (transformers
 * up to 4.x), or both inside rope_parameters (newer versions).
 */
static int
read_rope(struct model_config *cfg, const json_t *config, char *err,
    size_t errsz)
{
	const json_t *rp = json_object_get(config, "rope_parameters");
	const json_t *rs = json_object_get(config, "rope_scaling");
	const json_t *src;
	const char *type;
	json_t *tv;

	/* Gemma3TextConfig's base is 1000000 */
	NUM(config, "rope_theta", cfg->arch == MODEL_GEMMA3 ? 1e6 : 10000.0,
	    cfg->rope_theta);
	cfg->rope_scaling = ROPE_NONE;
	if (rp != NULL && !json_is_null(rp)) {
		if (!json_is_object(rp))
			return pp_errf(err, errsz, "\"rope_parameters\" is not an object");
		if (json_object_get(rp, "full_attention") != NULL)
			return pp_errf(err, errsz, "per-layer-type \"rope_parameters\" is not supported");
		NUM(rp, "rope_theta", cfg->rope_theta, cfg->rope_theta);
		src = rp;
	} else if (rs != NULL && !json_is_null(rs)) {
		if (!json_is_object(rs))
			return pp_errf(err, errsz, "\"rope_scaling\" is not an object");
		src = rs;
	} else
		src = NULL;
	if (cfg->rope_theta <= 0)
		return pp_errf(err, errsz, "\"rope_theta\" must be positive");
	if (src == NULL)
		return 0;
	if ((tv = json_object_get(src, "rope_type")) == NULL)
		tv = json_object_get(src, "type");
	type = json_is_string(tv) ? json_string_value(tv) : "default";
	if (strcmp(type, "default") == 0)
		return 0;
	/* Gemma 3's global layers: every frequency divided by factor */
	if (strcmp(type, "linear") == 0 && cfg->arch == MODEL_GEMMA3) {
		cfg->rope_scaling = ROPE_LINEAR;
		NUM(src, "factor", -1, cfg->rope_factor);
		if (cfg->rope_factor <= 0)
			return pp_errf(err, errsz, "linear rope scaling needs a positive factor");
		return 0;
	}
	if (strcmp(type, "llama3") != 0)
		return pp_errf(err, errsz, "rope scaling type \"%s\" is not supported (supported: default, llama3)", type);
	cfg->rope_scaling = ROPE_LLAMA3;
	NUM(src, "factor", -1, cfg->rope_factor);
	NUM(src, "low_freq_factor", -1, cfg->rope_low_freq_factor);
	NUM(src, "high_freq_factor", -1, cfg->rope_high_freq_factor);
	INT(src, "original_max_position_embeddings", -1,
	    cfg->rope_orig_max_pos, -1, 1 << 30);
	if (cfg->rope_factor <= 0 || cfg->rope_low_freq_factor <= 0 ||
	    cfg->rope_high_freq_factor <= cfg->rope_low_freq_factor ||
	    cfg->rope_orig_max_pos <= 0)
		return pp_errf(err, errsz, "llama3 rope scaling needs factor, low_freq_factor < high_freq_factor and original_max_position_embeddings, all positive");
	return 0;
}

/* The token ids: eos_token_id may be one integer or a list. */
static int
read_special(struct model_config *cfg, const json_t *config, char *err,
    size_t errsz)
{
	json_t *e = json_object_get(config, "eos_token_id");
	size_t i;

	INT(config, "bos_token_id", -1, cfg->bos_id, -1, cfg->vocab_size - 1);
	INT(config, "pad_token_id", -1, cfg->pad_id, -1, 1LL << 31);
	cfg->n_eos = 0;
	if (e == NULL || json_is_null(e))
		return 0;
	if (json_is_integer(e)) {
		cfg->eos_ids[cfg->n_eos++] = json_integer_value(e);
		return 0;
	}
	if (!json_is_array(e) || json_array_size(e) > MODEL_MAX_EOS)
		return pp_errf(err, errsz, "\"eos_token_id\" must be an integer or a list of at most %d", MODEL_MAX_EOS);
	for (i = 0; i < json_array_size(e); i++) {
		json_t *x = json_array_get(e, i);
		if (!json_is_integer(x))
			return pp_errf(err, errsz, "\"eos_token_id\" holds a non-integer");
		cfg->eos_ids[cfg->n_eos++] = json_integer_value(x);
	}
	return 0;
}

/* Keys whose presence means arithmetic this code does not do. */
static int
refuse_options(const json_t *config, int arch, char *err, size_t errsz)
{
	const char *act;
	json_t *v;
	double d;
	int b;

	/* Gemma2MLP reads hidden_activation (hidden_act is ignored) */
	if (IS_GEMMA(arch)) {
		v = json_object_get(config, "hidden_activation");
		act = json_is_string(v) ? json_string_value(v) :
		    "gelu_pytorch_tanh";
		if (strcmp(act, "gelu_pytorch_tanh") != 0)
			return pp_errf(err, errsz, "hidden_activation \"%s\" is not supported for gemma (only gelu_pytorch_tanh)", act);
		BOOL(config, "use_bidirectional_attention", 0, b);
		if (b)
			return pp_errf(err, errsz, "use_bidirectional_attention is not supported");
	} else {
		v = json_object_get(config, "hidden_act");
		act = json_is_string(v) ? json_string_value(v) : "silu";
		if (strcmp(act, "silu") != 0 && strcmp(act, "swish") != 0)
			return pp_errf(err, errsz, "hidden_act \"%s\" is not supported (only silu)", act);
	}
	BOOL(config, "attention_bias", 0, b);
	if (b && (arch == MODEL_LLAMA || arch == MODEL_MISTRAL))
		return pp_errf(err, errsz, "attention_bias is not supported for %s", arch == MODEL_LLAMA ? "llama" : "mistral");
	BOOL(config, "mlp_bias", 0, b);
	if (b)
		return pp_errf(err, errsz, "mlp_bias is not supported");
	NUM(config, "attention_dropout", 0, d);
	if (d != 0)
		return pp_errf(err, errsz, "attention_dropout %g is not supported", d);
	if ((v = json_object_get(config, "quantization_config")) != NULL &&
	    !json_is_null(v))
		return pp_errf(err, errsz, "quantized models (quantization_config) are not supported");
	if (!IS_GEMMA(arch) &&
	    (v = json_object_get(config, "layer_types")) != NULL &&
	    json_is_array(v)) {
		size_t i;
		for (i = 0; i < json_array_size(v); i++) {
			json_t *x = json_array_get(v, i);
			if (!json_is_string(x) ||
			    strcmp(json_string_value(x), "full_attention") != 0)
				return pp_errf(err, errsz, "layer_types other than full_attention (sliding windows) are not supported");
		}
	}
	/* Sliding windows: Mistral's sliding_window is read in
	 * model_config_from_json; Qwen2 and Qwen3 slide when
	 * use_sliding_window is true (their sliding_window and
	 * max_window_layers are read only then); Llama has none. */
	if (arch == MODEL_QWEN2 || arch == MODEL_QWEN3) {
		BOOL(config, "use_sliding_window", 0, b);
		if (b)
			return pp_errf(err, errsz, "use_sliding_window is not supported");
	} else if (arch != MODEL_MISTRAL && !IS_GEMMA(arch)) {
		v = json_object_get(config, "sliding_window");
		if (v != NULL && !json_is_null(v))
			return pp_errf(err, errsz, "sliding_window is not supported for llama (MistralForCausalLM reads it)");
	}
	return 0;
}

/*
 * Gemma2Config's and Gemma3TextConfig's own keys, their defaults where
 * absent: the attention scale, the softcaps (Gemma 3: none), and which
 * layers slide: layer_types, else as the configs make it, sliding when
 * (l + 1) % pattern != 0 (Gemma 2: 2; Gemma 3: sliding_window_pattern,
 * 6); Gemma 3's sliding layers' rope base, rope_local_base_freq.
 */
static int
read_gemma(struct model_config *cfg, const json_t *config, char *err,
    size_t errsz)
{
	int g3 = cfg->arch == MODEL_GEMMA3;
	json_t *v;

	NUM(config, "query_pre_attn_scalar", 256, cfg->query_pre_attn_scalar);
	if (cfg->query_pre_attn_scalar <= 0)
		return pp_errf(err, errsz, "query_pre_attn_scalar must be positive");
	v = json_object_get(config, "attn_logit_softcapping");
	if (v == NULL)
		cfg->attn_softcap = g3 ? 0 : 50;
	else
		NUM(config, "attn_logit_softcapping", 0, cfg->attn_softcap);
	v = json_object_get(config, "final_logit_softcapping");
	if (v == NULL)
		cfg->final_softcap = g3 ? 0 : 30;
	else
		NUM(config, "final_logit_softcapping", 0, cfg->final_softcap);
	if (cfg->attn_softcap < 0 || cfg->final_softcap < 0)
		return pp_errf(err, errsz, "a negative logit softcapping");
	v = json_object_get(config, "sliding_window");
	if (v == NULL)
		cfg->sliding_window = 4096;
	else if (json_is_null(v))
		return pp_errf(err, errsz, "gemma without sliding_window is not supported");
	else
		INT(config, "sliding_window", 4096, cfg->sliding_window, 1,
		    1 << 30);
	cfg->sliding_pattern = 2;
	if (g3) {
		INT(config, "sliding_window_pattern", 6, cfg->sliding_pattern, 1,
		    1 << 20);
		NUM(config, "rope_local_base_freq", 10000,
		    cfg->rope_local_theta);
		if (cfg->rope_local_theta <= 0)
			return pp_errf(err, errsz, "rope_local_base_freq must be positive");
	}
	if ((v = json_object_get(config, "layer_types")) != NULL &&
	    !json_is_null(v)) {
		if (!json_is_array(v) ||
		    (int)json_array_size(v) != cfg->n_layers)
			return pp_errf(err, errsz, "layer_types must list num_hidden_layers layer types");
		for (int l = 0; l < cfg->n_layers; l++) {
			json_t *x = json_array_get(v, l);
			const char *want = (l + 1) % cfg->sliding_pattern != 0 ?
			    "sliding_attention" : "full_attention";
			if (!json_is_string(x) ||
			    strcmp(json_string_value(x), want) != 0)
				return pp_errf(err, errsz, "gemma layer_types other than sliding_attention but on every layer l with (l + 1) %% %d == 0 are not supported", cfg->sliding_pattern);
		}
	}
	return 0;
}

static const struct {
	const char *name;
	enum model_arch arch;
	int lm_head;
} archs[] = {
	{ "LlamaForCausalLM", MODEL_LLAMA, 1 },
	{ "MistralForCausalLM", MODEL_MISTRAL, 1 },
	{ "Qwen2ForCausalLM", MODEL_QWEN2, 1 },
	{ "Qwen3ForCausalLM", MODEL_QWEN3, 1 },
	{ "Gemma2ForCausalLM", MODEL_GEMMA2, 1 },
	{ "Gemma3ForCausalLM", MODEL_GEMMA3, 1 },
	{ "LlamaForSequenceClassification", MODEL_LLAMA, 0 },
	{ "MistralForSequenceClassification", MODEL_MISTRAL, 0 },
	{ "Qwen2ForSequenceClassification", MODEL_QWEN2, 0 },
	{ "Qwen3ForSequenceClassification", MODEL_QWEN3, 0 },
};

int
model_config_from_json(struct model_config *cfg, const json_t *config,
    char *err, size_t errsz)
{
	json_t *a, *mt, *labels;
	const char *name = NULL, *type = NULL;
	size_t i;
	int found = 0;

	memset(cfg, 0, sizeof(*cfg));
	if (!json_is_object(config))
		return pp_errf(err, errsz, "not a JSON object");
	a = json_object_get(config, "architectures");
	if (json_is_array(a) && json_array_size(a) > 0) {
		if (json_array_size(a) > 1)
			return pp_errf(err, errsz, "several architectures are listed; expected one");
		if (!json_is_string(json_array_get(a, 0)))
			return pp_errf(err, errsz, "\"architectures\" holds a non-string");
		name = json_string_value(json_array_get(a, 0));
	}
	mt = json_object_get(config, "model_type");
	if (json_is_string(mt))
		type = json_string_value(mt);
	if (name != NULL) {
		for (i = 0; i < sizeof(archs) / sizeof(archs[0]); i++)
			if (strcmp(name, archs[i].name) == 0) {
				cfg->arch = archs[i].arch;
				cfg->lm_head = archs[i].lm_head;
				found = 1;
			}
		if (!found)
			return pp_errf(err, errsz, "architecture %s is not supported (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM and their ForSequenceClassification, Gemma2ForCausalLM, Gemma3ForCausalLM)", name);
	} else if (type != NULL) {
		if (strcmp(type, "llama") == 0)
			cfg->arch = MODEL_LLAMA;
		else if (strcmp(type, "mistral") == 0)
			cfg->arch = MODEL_MISTRAL;
		else if (strcmp(type, "qwen2") == 0)
			cfg->arch = MODEL_QWEN2;
		else if (strcmp(type, "qwen3") == 0)
			cfg->arch = MODEL_QWEN3;
		else if (strcmp(type, "gemma2") == 0)
			cfg->arch = MODEL_GEMMA2;
		else if (strcmp(type, "gemma3_text") == 0)
			cfg->arch = MODEL_GEMMA3;
		else
			return pp_errf(err, errsz, "model_type %s is not supported (supported: llama, mistral, qwen2, qwen3, gemma2, gemma3_text)", type);
		cfg->lm_head = 1;
	} else
		return pp_errf(err, errsz, "neither \"architectures\" nor \"model_type\" says what the model is");
	if (refuse_options(config, cfg->arch, err, errsz) != 0)
		return -1;

	INT(config, "vocab_size", -1, cfg->vocab_size, 1, 1 << 24);
	INT(config, "hidden_size", -1, cfg->dim, 1, 1 << 16);
	INT(config, "num_hidden_layers", -1, cfg->n_layers, 1, 4096);
	INT(config, "num_attention_heads", -1, cfg->n_heads, 1, 4096);
	INT(config, "num_key_value_heads", cfg->n_heads, cfg->n_kv_heads, 1,
	    4096);
	/* Qwen3Config's head_dim is 128 unless given, whatever the width. */
	INT(config, "head_dim", cfg->arch == MODEL_QWEN3 ? 128 :
	    IS_GEMMA(cfg->arch) ? 256 : cfg->dim / cfg->n_heads,
	    cfg->head_dim, 1, 4096);
	INT(config, "intermediate_size", -1, cfg->hidden_dim, 1, 1 << 20);
	/* MistralConfig's default is 4096 * 32. */
	INT(config, "max_position_embeddings",
	    cfg->arch == MODEL_LLAMA ? 2048 : cfg->arch == MODEL_MISTRAL ?
	    131072 : cfg->arch == MODEL_GEMMA2 ? 8192 :
	    cfg->arch == MODEL_GEMMA3 ? 131072 : 32768, cfg->max_seq_len, 1,
	    1 << 30);
	/* Mistral's window: null for none; MistralConfig's 4096 when the
	 * key is absent (transformers writes it, so that is rare).  A query
	 * at position i sees keys j with i - j < sliding_window. */
	if (cfg->arch == MODEL_MISTRAL) {
		json_t *w = json_object_get(config, "sliding_window");
		if (w != NULL && json_is_null(w))
			cfg->sliding_window = 0;
		else
			INT(config, "sliding_window", 4096,
			    cfg->sliding_window, 1, 1 << 30);
	}
	{
		double eps;
		NUM(config, "rms_norm_eps", 1e-6, eps);
		/* Kept as a float: 1e306 would become inf and zero every norm. */
		if (!(eps > 0 && eps <= FLT_MAX))
			return pp_errf(err, errsz, "\"rms_norm_eps\" = %g is out of range (0, %g]", eps, (double)FLT_MAX);
		cfg->norm_eps = eps;
	}
	BOOL(config, "tie_word_embeddings", IS_GEMMA(cfg->arch),
	    cfg->tie_embeddings);
	/* Qwen2's q/k/v always have biases and its o_proj none; Qwen3's
	 * four projections have them as attention_bias says (llama's is
	 * refused above). */
	if (cfg->arch == MODEL_QWEN3 || IS_GEMMA(cfg->arch)) {
		BOOL(config, "attention_bias", 0, cfg->qkv_bias);
		cfg->o_bias = cfg->qkv_bias;
	} else
		cfg->qkv_bias = cfg->arch == MODEL_QWEN2;
	if (read_rope(cfg, config, err, errsz) != 0)
		return -1;
	if (IS_GEMMA(cfg->arch) &&
	    read_gemma(cfg, config, err, errsz) != 0)
		return -1;
	if (read_special(cfg, config, err, errsz) != 0)
		return -1;
	if (!cfg->lm_head) {
		/* HF stores num_labels only through id2label. */
		labels = json_object_get(config, "id2label");
		if (json_is_object(labels))
			cfg->num_labels = json_object_size(labels);
		else
			INT(config, "num_labels", 2, cfg->num_labels, 1, 1 << 20);
		cfg->tie_embeddings = 0;
	}
	return model_config_check(cfg, err, errsz);
}

int
model_config_check(const struct model_config *cfg, char *err, size_t errsz)
{
	if (cfg->vocab_size < 1 || cfg->dim < 1 || cfg->n_layers < 1 ||
	    cfg->n_heads < 1 || cfg->n_kv_heads < 1 || cfg->head_dim < 1 ||
	    cfg->hidden_dim < 1 || cfg->max_seq_len < 1)
		return pp_errf(err, errsz, "model config: a size is missing or not positive");
	if (cfg->o_bias && cfg->arch != MODEL_QWEN3 &&
	    !IS_GEMMA(cfg->arch))
		return pp_errf(err, errsz, "model config: an o_proj bias is only read for qwen3 (attention_bias)");
	if (cfg->qkv_bias && (cfg->arch == MODEL_LLAMA ||
	    cfg->arch == MODEL_MISTRAL))
		return pp_errf(err, errsz, "model config: q/k/v biases are not supported for llama or mistral");
	if (cfg->sliding_window < 0 || (cfg->sliding_window > 0 &&
	    cfg->arch != MODEL_MISTRAL && !IS_GEMMA(cfg->arch)))
		return pp_errf(err, errsz, "model config: a sliding window is only implemented for mistral, gemma2 and gemma3");
	if (IS_GEMMA(cfg->arch) && (cfg->sliding_window < 1 ||
	    cfg->sliding_pattern < 1))
		return pp_errf(err, errsz, "model config: gemma needs a sliding window and its layer pattern");
	if ((cfg->arch == MODEL_QWEN3 || IS_GEMMA(cfg->arch)) &&
	    cfg->qkv_bias != cfg->o_bias)
		return pp_errf(err, errsz, "model config: qwen3's attention_bias gives q, k, v and o_proj biases together");
	if (cfg->n_heads % cfg->n_kv_heads != 0)
		return pp_errf(err, errsz, "model config: num_attention_heads %d is not a multiple of num_key_value_heads %d", cfg->n_heads, cfg->n_kv_heads);
	if (cfg->head_dim % 2 != 0)
		return pp_errf(err, errsz, "model config: head_dim %d is odd; rotary embeddings need it even", cfg->head_dim);
	if (!cfg->lm_head && cfg->num_labels < 1)
		return pp_errf(err, errsz, "model config: a classification model needs num_labels");
	if (cfg->norm_eps <= 0)
		return pp_errf(err, errsz, "model config: rms_norm_eps must be positive");
	if (cfg->lora.rank < 0 || (cfg->lora.rank > 0 &&
	    (cfg->lora.targets == 0 || cfg->lora.targets >=
	    1u << LORA_NTARGET || !(cfg->lora.dropout >= 0 &&
	    cfg->lora.dropout < 1) || !isfinite(cfg->lora.alpha))))
		return pp_errf(err, errsz, "model config: LoRA needs a positive rank, a target, a finite alpha and a dropout in [0, 1)");
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Writing config.json */

json_t *
model_config_to_json(const struct model_config *c)
{
	json_t *j = json_object(), *a = json_array(), *eos;
	const char *arch;
	int i;

	if (c->arch == MODEL_GEMMA2)
		arch = "Gemma2ForCausalLM";
	else if (c->arch == MODEL_GEMMA3)
		arch = "Gemma3ForCausalLM";
	else if (c->arch == MODEL_QWEN3)
		arch = c->lm_head ? "Qwen3ForCausalLM" :
		    "Qwen3ForSequenceClassification";
	else if (c->arch == MODEL_QWEN2)
		arch = c->lm_head ? "Qwen2ForCausalLM" :
		    "Qwen2ForSequenceClassification";
	else if (c->arch == MODEL_MISTRAL)
		arch = c->lm_head ? "MistralForCausalLM" :
		    "MistralForSequenceClassification";
	else
		arch = c->lm_head ? "LlamaForCausalLM" :
		    "LlamaForSequenceClassification";
	json_array_append_new(a, json_string(arch));
	json_object_set_new(j, "architectures", a);
	json_object_set_new(j, "model_type", json_string(arch_of(c)->model_type));
	json_object_set_new(j, "vocab_size", json_integer(c->vocab_size));
	json_object_set_new(j, "hidden_size", json_integer(c->dim));
	json_object_set_new(j, "intermediate_size", json_integer(c->hidden_dim));
	json_object_set_new(j, "num_hidden_layers", json_integer(c->n_layers));
	json_object_set_new(j, "num_attention_heads", json_integer(c->n_heads));
	json_object_set_new(j, "num_key_value_heads",
	    json_integer(c->n_kv_heads));
	json_object_set_new(j, "head_dim", json_integer(c->head_dim));
	if (IS_GEMMA(c->arch)) {
		json_object_set_new(j, "hidden_act",
		    json_string("gelu_pytorch_tanh"));
		json_object_set_new(j, "hidden_activation",
		    json_string("gelu_pytorch_tanh"));
	} else
		json_object_set_new(j, "hidden_act", json_string("silu"));
	json_object_set_new(j, "max_position_embeddings",
	    json_integer(c->max_seq_len));
	/* Through double so 1e-5f prints as 1e-05, not 9.99999974738e-06. */
	{
		char buf[32];
		snprintf(buf, sizeof(buf), "%g", c->norm_eps);
		json_object_set_new(j, "rms_norm_eps", json_real(strtod(buf, NULL)));
	}
	json_object_set_new(j, "rope_theta", json_real(c->rope_theta));
	if (c->rope_scaling == ROPE_LINEAR) {
		json_t *rs = json_object();
		json_object_set_new(rs, "rope_type", json_string("linear"));
		json_object_set_new(rs, "factor", json_real(c->rope_factor));
		json_object_set_new(j, "rope_scaling", rs);
	} else if (c->rope_scaling == ROPE_LLAMA3) {
		json_t *rs = json_object();
		json_object_set_new(rs, "rope_type", json_string("llama3"));
		json_object_set_new(rs, "factor", json_real(c->rope_factor));
		json_object_set_new(rs, "low_freq_factor",
		    json_real(c->rope_low_freq_factor));
		json_object_set_new(rs, "high_freq_factor",
		    json_real(c->rope_high_freq_factor));
		json_object_set_new(rs, "original_max_position_embeddings",
		    json_integer(c->rope_orig_max_pos));
		json_object_set_new(j, "rope_scaling", rs);
	} else
		json_object_set_new(j, "rope_scaling", json_null());
	json_object_set_new(j, "tie_word_embeddings",
	    json_boolean(c->tie_embeddings));
	if (c->arch == MODEL_LLAMA) {
		json_object_set_new(j, "attention_bias", json_false());
		json_object_set_new(j, "mlp_bias", json_false());
	} else if (c->arch == MODEL_MISTRAL) {
		json_object_set_new(j, "sliding_window", c->sliding_window > 0 ?
		    json_integer(c->sliding_window) : json_null());
	} else if (IS_GEMMA(c->arch)) {
		json_t *lt = json_array();
		for (i = 0; i < c->n_layers; i++)
			json_array_append_new(lt, json_string((i + 1) %
			    c->sliding_pattern != 0 ? "sliding_attention" :
			    "full_attention"));
		json_object_set_new(j, "attention_bias",
		    json_boolean(c->qkv_bias));
		json_object_set_new(j, "query_pre_attn_scalar",
		    json_real(c->query_pre_attn_scalar));
		json_object_set_new(j, "attn_logit_softcapping",
		    c->attn_softcap > 0 ? json_real(c->attn_softcap) :
		    json_null());
		json_object_set_new(j, "final_logit_softcapping",
		    c->final_softcap > 0 ? json_real(c->final_softcap) :
		    json_null());
		json_object_set_new(j, "sliding_window",
		    json_integer(c->sliding_window));
		json_object_set_new(j, "layer_types", lt);
		if (c->arch == MODEL_GEMMA3) {
			json_object_set_new(j, "sliding_window_pattern",
			    json_integer(c->sliding_pattern));
			json_object_set_new(j, "rope_local_base_freq",
			    json_real(c->rope_local_theta));
		}
	} else {
		json_object_set_new(j, "use_sliding_window", json_false());
		json_object_set_new(j, "sliding_window", json_null());
	}
	/* Qwen3Config's own keys, as transformers writes them: no layer
	 * slides (use_sliding_window false), every layer full attention. */
	if (c->arch == MODEL_QWEN3) {
		json_t *lt = json_array();
		for (i = 0; i < c->n_layers; i++)
			json_array_append_new(lt, json_string("full_attention"));
		json_object_set_new(j, "attention_bias",
		    json_boolean(c->qkv_bias));
		json_object_set_new(j, "max_window_layers",
		    json_integer(c->n_layers));
		json_object_set_new(j, "layer_types", lt);
	}
	json_object_set_new(j, "attention_dropout", json_real(0));
	json_object_set_new(j, "initializer_range", json_real(0.02));
	json_object_set_new(j, "bos_token_id",
	    c->bos_id >= 0 ? json_integer(c->bos_id) : json_null());
	if (c->n_eos == 1)
		eos = json_integer(c->eos_ids[0]);
	else if (c->n_eos == 0)
		eos = json_null();
	else {
		eos = json_array();
		for (i = 0; i < c->n_eos; i++)
			json_array_append_new(eos, json_integer(c->eos_ids[i]));
	}
	json_object_set_new(j, "eos_token_id", eos);
	if (c->pad_id >= 0)
		json_object_set_new(j, "pad_token_id", json_integer(c->pad_id));
	if (!c->lm_head) {
		json_t *id2 = json_object(), *l2i = json_object();
		char k[32], v[32];
		for (i = 0; i < c->num_labels; i++) {
			snprintf(k, sizeof(k), "%d", i);
			snprintf(v, sizeof(v), "LABEL_%d", i);
			json_object_set_new(id2, k, json_string(v));
			json_object_set_new(l2i, v, json_integer(i));
		}
		json_object_set_new(j, "id2label", id2);
		json_object_set_new(j, "label2id", l2i);
	}
	json_object_set_new(j, "torch_dtype", json_string("float32"));
	json_object_set_new(j, "use_cache", json_true());
	return j;
}

/*
 * The architecture name for cfg when orig named the original's: the same
 * family ("Mistral...") with the head cfg has.
 */
static json_t *
arch_names(const struct model_config *cfg, const struct model_config *c0,
    const json_t *orig, const json_t *gen)
{
	static const char *const heads[] = { "ForCausalLM",
	    "ForSequenceClassification" };
	const char *name = json_string_value(json_array_get(orig, 0));
	const char *from = heads[!c0->lm_head], *to = heads[!cfg->lm_head];
	size_t n, fl = strlen(from);
	char buf[256];

	if (name == NULL || json_array_size(orig) != 1 || cfg->arch != c0->arch)
		return json_deep_copy(gen);
	n = strlen(name);
	if (n <= fl || n - fl + strlen(to) >= sizeof(buf) ||
	    strcmp(name + n - fl, from) != 0)
		return json_deep_copy(gen);
	snprintf(buf, sizeof(buf), "%.*s%s", (int)(n - fl), name, to);
	return json_pack("[s]", buf);
}

json_t *
model_config_update_json(const struct model_config *cfg, const json_t *orig)
{
	struct model_config c0;
	json_t *gen, *gen0, *out, *v;
	const char *key;
	char e[256];

	if (orig == NULL || model_config_from_json(&c0, orig, e,
	    sizeof(e)) != 0)
		return model_config_to_json(cfg);
	gen = model_config_to_json(cfg);
	gen0 = model_config_to_json(&c0);
	out = json_deep_copy(orig);
	/* What cfg changed: the keys whose generated values differ. */
	json_object_foreach(gen, key, v) {
		json_t *v0 = json_object_get(gen0, key);
		if (strcmp(key, "torch_dtype") == 0 ||
		    (v0 != NULL && json_equal(v, v0)))
			continue;
		if (strcmp(key, "architectures") == 0)
			json_object_set_new(out, key, arch_names(cfg, &c0,
			    json_object_get(orig, key), v));
		else
			json_object_set_new(out, key, json_deep_copy(v));
	}
	/* And what it dropped (a head's labels, say). */
	json_object_foreach(gen0, key, v)
		if (json_object_get(gen, key) == NULL)
			json_object_del(out, key);
	json_decref(gen);
	json_decref(gen0);
	return out;
}

/* ------------------------------------------------------------------------ */
/* The tensors of a config: the architecture table's rows that exist. */

static void
add(struct model_tensor *x, size_t *off, const struct model_config *c,
    const struct arch_tensor *a, int layer)
{
	memset(x, 0, sizeof(*x));
	if (layer >= 0)
		snprintf(x->name, sizeof(x->name), "model.layers.%d.%s", layer,
		    a->name);
	else
		snprintf(x->name, sizeof(x->name), "%s", a->name);
	x->ndim = a->d1 == DIM_NONE ? 1 : 2;
	x->shape[0] = arch_dim(c, a->d0);
	x->shape[1] = arch_dim(c, a->d1);
	x->n = (size_t)x->shape[0] * (size_t)x->shape[1];
	x->offset = *off;
	x->layer = layer;
	x->role = a->role;
	x->is_norm = a->kind == KIND_NORM;
	x->is_bias = a->kind == KIND_BIAS;
	x->trainable = 1;
	*off += x->n;
}

static const struct {
	const char *name;
	int role;
} lora_targets[LORA_NTARGET] = {
	{ "q_proj", ROLE_WQ }, { "k_proj", ROLE_WK }, { "v_proj", ROLE_WV },
	{ "o_proj", ROLE_WO }, { "gate_proj", ROLE_WGATE },
	{ "up_proj", ROLE_WUP }, { "down_proj", ROLE_WDOWN },
};

const char *
lora_target_name(int target)
{
	return target >= 0 && target < LORA_NTARGET ?
	    lora_targets[target].name : "?";
}

int
lora_target_parse(const char *name)
{
	for (int i = 0; i < LORA_NTARGET; i++)
		if (strcmp(name, lora_targets[i].name) == 0)
			return i;
	return -1;
}

int
lora_target_role(int target)
{
	return lora_targets[target].role;
}

/* The target whose projection a is, or -1. */
static int
lora_target_of(const struct model_config *c, const struct arch_tensor *a)
{
	if (c->lora.rank <= 0 || a->kind != KIND_MATRIX)
		return -1;
	for (int i = 0; i < LORA_NTARGET; i++)
		if (lora_targets[i].role == (int)a->role &&
		    (c->lora.targets & (1u << i)))
			return i;
	return -1;
}

/* Target j's A (which 1) or B (2) after base tensor x of a layer. */
static void
add_lora(struct model_tensor *x, size_t *off, const struct model_tensor *base,
    int j, int which, int r)
{
	char stem[sizeof(x->name)];
	size_t n = strlen(base->name) - strlen(".weight");

	memcpy(stem, base->name, n);
	stem[n] = '\0';
	memset(x, 0, sizeof(*x));
	if (snprintf(x->name, sizeof(x->name), "%s.lora_%c.weight", stem,
	    which == 1 ? 'A' : 'B') >= (int)sizeof(x->name))
		errx(EXIT_DATA, "model config: tensor name %s.lora_A.weight "
		    "is too long", stem);
	x->ndim = 2;
	x->shape[0] = which == 1 ? r : base->shape[0];
	x->shape[1] = which == 1 ? base->shape[1] : r;
	x->n = (size_t)x->shape[0] * (size_t)x->shape[1];
	x->offset = *off;
	x->layer = base->layer;
	x->role = base->role;
	x->lora = which;
	x->lora_target = j;
	x->trainable = 1;
	*off += x->n;
}

struct model_tensor *
model_tensors(const struct model_config *c, int *np)
{
	const struct arch *ar = arch_of(c);
	struct model_tensor *t;
	size_t off = 0, cap;
	int n = 0, per = 0, top = 0;

	/* Count first: the table says how many a layer has. */
	for (int i = 0; i < ar->nlayer; i++)
		per += arch_has(c, &ar->layer[i]) * (lora_target_of(c,
		    &ar->layer[i]) >= 0 ? 3 : 1);
	for (int i = 0; i < ar->npre; i++)
		top += arch_has(c, &ar->pre[i]);
	for (int i = 0; i < ar->npost; i++)
		top += arch_has(c, &ar->post[i]);
	cap = (size_t)top + (size_t)per * c->n_layers;
	if (cap > INT_MAX)
		errx(EXIT_DATA, "model config: %zu tensors", cap);
	t = xcalloc(cap, sizeof(*t));
	for (int i = 0; i < ar->npre; i++)
		if (arch_has(c, &ar->pre[i]))
			add(&t[n++], &off, c, &ar->pre[i], -1);
	for (int l = 0; l < c->n_layers; l++) {
		int first = n;
		for (int i = 0; i < ar->nlayer; i++)
			if (arch_has(c, &ar->layer[i]))
				add(&t[n++], &off, c, &ar->layer[i], l);
		for (int i = 0, k = first; i < ar->nlayer; i++) {
			int j;
			if (!arch_has(c, &ar->layer[i]))
				continue;
			if ((j = lora_target_of(c, &ar->layer[i])) >= 0) {
				add_lora(&t[n++], &off, &t[k], j, 1,
				    c->lora.rank);
				add_lora(&t[n++], &off, &t[k], j, 2,
				    c->lora.rank);
			}
			k++;
		}
	}
	for (int i = 0; i < ar->npost; i++)
		if (arch_has(c, &ar->post[i]))
			add(&t[n++], &off, c, &ar->post[i], -1);
	*np = n;
	return t;
}

size_t
model_num_params(const struct model_config *c)
{
	struct model_tensor *t;
	size_t total;
	int n;

	t = model_tensors(c, &n);
	total = t[n - 1].offset + t[n - 1].n;
	free(t);
	return total;
}
