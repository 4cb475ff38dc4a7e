/*
 * unit_model.c: the fp32 model against an independent PyTorch
 * implementation (tests/gen_model_fixtures.py, whose outputs are committed
 * under tests/fixtures/model), plus config.json handling, the tensor
 * layout, initialisation, KV-cache decoding and thread-count independence.
 * Run by `make check`; the fixtures are found through $top_srcdir.
 */
#include <err.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/checkpoint.h"
#include "model/model.h"
#include "sampling/sample.h"
#include "util/util.h"

static int failures;

#define CHECK(cond, ...) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);	\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
		failures++;						\
	}								\
} while (0)

/* max |a - b| / max |b|: a tensor's error relative to its scale. */
static double
rel_err(const float *a, const float *b, size_t n)
{
	double d = 0, s = 1e-30;

	for (size_t i = 0; i < n; i++) {
		if (fabs(a[i] - b[i]) > d || isnan(a[i]))
			d = isnan(a[i]) ? INFINITY : fabs(a[i] - b[i]);
		if (fabs(b[i]) > s)
			s = fabs(b[i]);
	}
	return d / s;
}

/* ------------------------------------------------------------------------ */
/* A minimal safetensors reader for the fixtures (F32 and I32 only). */

struct stfile {
	char *buf;
	size_t len, hlen;
	json_t *hdr;
};

static void
st_open(struct stfile *st, const char *path)
{
	json_error_t je;
	uint64_t h;

	st->buf = pp_read_file(path, &st->len);
	memcpy(&h, st->buf, 8);
	st->hlen = h;
	st->hdr = json_loadb(st->buf + 8, h, 0, &je);
	if (st->hdr == NULL)
		errx(1, "%s: bad header: %s", path, je.text);
}

static const void *
st_get(struct stfile *st, const char *name, size_t *n)
{
	json_t *t = json_object_get(st->hdr, name);
	size_t a, b;

	if (t == NULL)
		errx(1, "fixture tensor %s missing", name);
	a = json_integer_value(json_array_get(json_object_get(t,
	    "data_offsets"), 0));
	b = json_integer_value(json_array_get(json_object_get(t,
	    "data_offsets"), 1));
	*n = (b - a) / 4;
	return st->buf + 8 + st->hlen + a;
}

static void
st_close(struct stfile *st)
{
	json_decref(st->hdr);
	free(st->buf);
}

static const char *
srcdir(void)
{
	const char *s = getenv("top_srcdir");
	return s != NULL ? s : ".";
}

static struct model_config
load_config(const char *name)
{
	struct model_config cfg;
	char path[4096], e[256];
	json_error_t je;
	json_t *j;

	snprintf(path, sizeof(path), "%s/tests/fixtures/model/%s.config.json",
	    srcdir(), name);
	if ((j = json_load_file(path, 0, &je)) == NULL)
		errx(1, "%s: %s", path, je.text);
	if (model_config_from_json(&cfg, j, e, sizeof(e)) != 0)
		errx(1, "%s: %s", path, e);
	json_decref(j);
	return cfg;
}

/* ------------------------------------------------------------------------ */
/* config.json */

static int
parse(const char *text, struct model_config *cfg, char *e, size_t esz)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	int r;

	if (j == NULL)
		errx(1, "test JSON: %s", je.text);
	r = model_config_from_json(cfg, j, e, esz);
	json_decref(j);
	return r;
}

#define BASE "\"vocab_size\":100,\"hidden_size\":64,\"intermediate_size\":96," \
    "\"num_hidden_layers\":2,\"num_attention_heads\":8"

static void
expect_error(const char *text, const char *want)
{
	struct model_config cfg;
	char e[256] = "";

	CHECK(parse(text, &cfg, e, sizeof(e)) != 0 && strstr(e, want) != NULL,
	    "config %s: error \"%s\", want one mentioning \"%s\"", text, e,
	    want);
}

static void
test_config(void)
{
	struct model_config cfg, back;
	char e[256];
	json_t *j;

	CHECK(parse("{\"architectures\":[\"LlamaForCausalLM\"]," BASE
	    ",\"num_key_value_heads\":2,\"rope_theta\":500000,"
	    "\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":32.0,"
	    "\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,"
	    "\"original_max_position_embeddings\":8192},"
	    "\"eos_token_id\":[5,6,7],\"tie_word_embeddings\":true}",
	    &cfg, e, sizeof(e)) == 0, "llama3 config: %s", e);
	CHECK(cfg.arch == MODEL_LLAMA && cfg.head_dim == 8 &&
	    cfg.n_kv_heads == 2 && cfg.rope_scaling == ROPE_LLAMA3 &&
	    cfg.rope_factor == 32 && cfg.rope_orig_max_pos == 8192 &&
	    cfg.rope_theta == 500000 && cfg.n_eos == 3 && cfg.eos_ids[2] == 7 &&
	    cfg.tie_embeddings && !cfg.qkv_bias && cfg.norm_eps == 1e-6f &&
	    cfg.max_seq_len == 2048, "llama3 config fields");

	/* the newer rope_parameters form */
	CHECK(parse("{\"model_type\":\"qwen2\"," BASE ",\"rope_parameters\":"
	    "{\"rope_type\":\"default\",\"rope_theta\":1000000.0}}",
	    &cfg, e, sizeof(e)) == 0, "rope_parameters: %s", e);
	CHECK(cfg.arch == MODEL_QWEN2 && cfg.qkv_bias &&
	    cfg.rope_theta == 1e6 && cfg.rope_scaling == ROPE_NONE &&
	    cfg.n_kv_heads == 8, "rope_parameters fields");
	CHECK(parse("{\"model_type\":\"llama\"," BASE ",\"rope_parameters\":"
	    "{\"rope_type\":\"llama3\",\"rope_theta\":500000.0,\"factor\":8,"
	    "\"low_freq_factor\":1,\"high_freq_factor\":4,"
	    "\"original_max_position_embeddings\":8192}}",
	    &cfg, e, sizeof(e)) == 0 && cfg.rope_scaling == ROPE_LLAMA3 &&
	    cfg.rope_theta == 500000, "rope_parameters llama3: %s", e);

	/* Qwen3: attention_bias read, not implied; Qwen3Config's head_dim
	 * (128) when absent, not hidden_size / heads */
	CHECK(parse("{\"architectures\":[\"Qwen3ForCausalLM\"]," BASE
	    ",\"head_dim\":16,\"attention_bias\":true,"
	    "\"use_sliding_window\":false,\"sliding_window\":4096,"
	    "\"max_window_layers\":28}", &cfg, e, sizeof(e)) == 0,
	    "qwen3 config: %s", e);
	CHECK(cfg.arch == MODEL_QWEN3 && cfg.head_dim == 16 && cfg.qkv_bias &&
	    cfg.o_bias && cfg.max_seq_len == 32768, "qwen3 config fields");
	CHECK(parse("{\"model_type\":\"qwen3\"," BASE "}", &cfg, e,
	    sizeof(e)) == 0 && cfg.arch == MODEL_QWEN3 && cfg.head_dim == 128 &&
	    !cfg.qkv_bias && !cfg.o_bias, "qwen3 defaults: %s", e);
	/* Qwen3-0.6B's config.json as transformers 4.51 wrote it */
	CHECK(parse("{\"architectures\":[\"Qwen3ForCausalLM\"],"
	    "\"attention_bias\":false,\"attention_dropout\":0.0,"
	    "\"bos_token_id\":151643,\"eos_token_id\":151645,"
	    "\"head_dim\":128,\"hidden_act\":\"silu\",\"hidden_size\":1024,"
	    "\"initializer_range\":0.02,\"intermediate_size\":3072,"
	    "\"max_position_embeddings\":40960,\"max_window_layers\":28,"
	    "\"model_type\":\"qwen3\",\"num_attention_heads\":16,"
	    "\"num_hidden_layers\":28,\"num_key_value_heads\":8,"
	    "\"rms_norm_eps\":1e-06,\"rope_scaling\":null,"
	    "\"rope_theta\":1000000,\"sliding_window\":null,"
	    "\"tie_word_embeddings\":true,\"torch_dtype\":\"bfloat16\","
	    "\"transformers_version\":\"4.51.0\",\"use_cache\":true,"
	    "\"use_sliding_window\":false,\"vocab_size\":151936}", &cfg, e,
	    sizeof(e)) == 0, "Qwen3-0.6B config: %s", e);
	CHECK(cfg.arch == MODEL_QWEN3 && cfg.head_dim == 128 &&
	    model_q_dim(&cfg) == 2048 && model_kv_dim(&cfg) == 1024 &&
	    cfg.tie_embeddings && !cfg.qkv_bias && cfg.rope_theta == 1e6 &&
	    cfg.eos_ids[0] == 151645, "Qwen3-0.6B config fields");
	CHECK(parse("{\"architectures\":[\"Qwen3ForSequenceClassification\"],"
	    BASE ",\"head_dim\":8,\"num_labels\":1}", &cfg, e, sizeof(e)) == 0 &&
	    cfg.arch == MODEL_QWEN3 && !cfg.lm_head && cfg.num_labels == 1,
	    "qwen3 classifier: %s", e);

	/* Mistral: sliding_window read (null: none; absent: MistralConfig's
	 * 4096), head_dim null is hidden_size / heads */
	CHECK(parse("{\"architectures\":[\"MistralForCausalLM\"]," BASE
	    ",\"sliding_window\":3,\"head_dim\":null}", &cfg, e,
	    sizeof(e)) == 0, "mistral config: %s", e);
	CHECK(cfg.arch == MODEL_MISTRAL && cfg.sliding_window == 3 &&
	    cfg.head_dim == 8 && !cfg.qkv_bias && cfg.max_seq_len == 131072,
	    "mistral config fields");
	CHECK(parse("{\"model_type\":\"mistral\"," BASE
	    ",\"sliding_window\":null}", &cfg, e, sizeof(e)) == 0 &&
	    cfg.arch == MODEL_MISTRAL && cfg.sliding_window == 0,
	    "mistral without a window: %s", e);
	CHECK(parse("{\"model_type\":\"mistral\"," BASE "}", &cfg, e,
	    sizeof(e)) == 0 && cfg.sliding_window == 4096,
	    "mistral's default window: %s", e);
	CHECK(parse("{\"architectures\":[\"MistralForSequenceClassification\"],"
	    BASE ",\"sliding_window\":16,\"num_labels\":1}", &cfg, e,
	    sizeof(e)) == 0 && cfg.arch == MODEL_MISTRAL && !cfg.lm_head &&
	    cfg.sliding_window == 16, "mistral classifier: %s", e);

	/* a reward model */
	CHECK(parse("{\"architectures\":[\"LlamaForSequenceClassification\"],"
	    BASE ",\"id2label\":{\"0\":\"LABEL_0\"}}", &cfg, e, sizeof(e))
	    == 0 && !cfg.lm_head && cfg.num_labels == 1, "classifier: %s", e);

	/* what must be refused, by name */
	expect_error("{\"architectures\":[\"GPT2LMHeadModel\"]," BASE "}",
	    "GPT2LMHeadModel");
	expect_error("{\"model_type\":\"gemma\"," BASE "}", "gemma");
	expect_error("{\"model_type\":\"llama\"," BASE
	    ",\"sliding_window\":4096}", "sliding_window");
	expect_error("{\"model_type\":\"mistral\"," BASE
	    ",\"sliding_window\":0}", "sliding_window");
	expect_error("{\"model_type\":\"mistral\"," BASE
	    ",\"attention_bias\":true}", "attention_bias");
	expect_error("{\"model_type\":\"qwen2\"," BASE
	    ",\"use_sliding_window\":true}", "use_sliding_window");
	expect_error("{\"model_type\":\"qwen3\"," BASE
	    ",\"use_sliding_window\":true,\"sliding_window\":64}",
	    "use_sliding_window");
	expect_error("{\"model_type\":\"qwen3\"," BASE
	    ",\"layer_types\":[\"sliding_attention\",\"full_attention\"]}",
	    "layer_types");
	expect_error("{\"model_type\":\"qwen3\"," BASE
	    ",\"attention_bias\":1}", "attention_bias");
	expect_error("{\"model_type\":\"llama\"," BASE
	    ",\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4}}", "yarn");
	expect_error("{\"model_type\":\"llama\"," BASE
	    ",\"rope_scaling\":{\"type\":\"linear\",\"factor\":4}}", "linear");
	expect_error("{\"model_type\":\"llama\"," BASE
	    ",\"hidden_act\":\"gelu\"}", "gelu");
	expect_error("{\"model_type\":\"llama\"," BASE
	    ",\"num_key_value_heads\":3}", "num_key_value_heads");
	expect_error("{\"model_type\":\"llama\"," BASE
	    ",\"attention_bias\":true}", "attention_bias");
	expect_error("{\"model_type\":\"llama\"," BASE
	    ",\"mlp_bias\":true}", "mlp_bias");
	expect_error("{\"model_type\":\"llama\",\"hidden_size\":64}",
	    "vocab_size");
	expect_error("{\"model_type\":\"llama\"," BASE
	    ",\"quantization_config\":{\"bits\":4}}", "quantiz");
	/* Gemma 2: what it does not implement, by name */
	expect_error("{\"model_type\":\"gemma2\"," BASE
	    ",\"hidden_activation\":\"gelu\"}", "hidden_activation");
	expect_error("{\"model_type\":\"gemma2\"," BASE
	    ",\"layer_types\":[\"full_attention\",\"sliding_attention\"]}",
	    "layer_types");
	expect_error("{\"model_type\":\"gemma2\"," BASE
	    ",\"sliding_window\":null}", "sliding_window");
	expect_error("{\"architectures\":[\"Gemma2ForSequenceClassification\"],"
	    BASE "}", "Gemma2ForSequenceClassification");
	expect_error("{\"model_type\":\"gemma3_text\"," BASE
	    ",\"use_bidirectional_attention\":true}",
	    "use_bidirectional_attention");
	expect_error("{\"model_type\":\"gemma3_text\"," BASE
	    ",\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":8}}", "yarn");
	expect_error("{\"model_type\":\"gemma3\"," BASE "}", "gemma3");
	expect_error("{\"architectures\":[\"Gemma3ForConditionalGeneration\"],"
	    BASE "}", "Gemma3ForConditionalGeneration");
	expect_error("{\"model_type\":\"gemma2\"," BASE
	    ",\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":8}}",
	    "linear");
	/* Gemma3TextConfig's defaults */
	CHECK(parse("{\"model_type\":\"gemma3_text\"," BASE "}", &cfg, e,
	    sizeof(e)) == 0 && cfg.arch == MODEL_GEMMA3 &&
	    cfg.head_dim == 256 && cfg.query_pre_attn_scalar == 256 &&
	    cfg.attn_softcap == 0 && cfg.final_softcap == 0 &&
	    cfg.sliding_pattern == 6 && cfg.rope_local_theta == 10000 &&
	    cfg.rope_theta == 1e6 && cfg.tie_embeddings &&
	    cfg.max_seq_len == 131072, "gemma3 defaults: %s", e);
	/* Gemma2Config's defaults */
	CHECK(parse("{\"model_type\":\"gemma2\"," BASE "}", &cfg, e,
	    sizeof(e)) == 0 && cfg.arch == MODEL_GEMMA2 &&
	    cfg.head_dim == 256 && cfg.query_pre_attn_scalar == 256 &&
	    cfg.attn_softcap == 50 && cfg.final_softcap == 30 &&
	    cfg.sliding_window == 4096 && cfg.sliding_pattern == 2 &&
	    cfg.tie_embeddings && cfg.max_seq_len == 8192 && !cfg.qkv_bias,
	    "gemma2 defaults: %s", e);
	CHECK(parse("{\"model_type\":\"gemma2\"," BASE
	    ",\"attn_logit_softcapping\":null,\"final_logit_softcapping\":null}",
	    &cfg, e, sizeof(e)) == 0 && cfg.attn_softcap == 0 &&
	    cfg.final_softcap == 0, "gemma2 without softcaps: %s", e);

	/* to_json then from_json gives the same config */
	cfg = load_config("llama3_untied");
	j = model_config_to_json(&cfg);
	CHECK(model_config_from_json(&back, j, e, sizeof(e)) == 0 &&
	    memcmp(&cfg, &back, sizeof(cfg)) == 0, "config round trip: %s", e);
	CHECK(strcmp(json_string_value(json_object_get(j, "torch_dtype")),
	    "float32") == 0, "torch_dtype");
	json_decref(j);
	cfg = load_config("qwen3_bias");
	j = model_config_to_json(&cfg);
	CHECK(model_config_from_json(&back, j, e, sizeof(e)) == 0 &&
	    memcmp(&cfg, &back, sizeof(cfg)) == 0, "qwen3 round trip: %s", e);
	CHECK(json_is_true(json_object_get(j, "attention_bias")) &&
	    json_is_false(json_object_get(j, "use_sliding_window")) &&
	    strcmp(json_string_value(json_object_get(j, "model_type")),
	    "qwen3") == 0, "qwen3 config.json keys");
	json_decref(j);
	cfg = load_config("mistral_window");
	j = model_config_to_json(&cfg);
	CHECK(model_config_from_json(&back, j, e, sizeof(e)) == 0 &&
	    memcmp(&cfg, &back, sizeof(cfg)) == 0, "mistral round trip: %s", e);
	CHECK(json_integer_value(json_object_get(j, "sliding_window")) == 3 &&
	    strcmp(json_string_value(json_object_get(j, "model_type")),
	    "mistral") == 0 && strcmp(json_string_value(json_array_get(
	    json_object_get(j, "architectures"), 0)), "MistralForCausalLM")
	    == 0, "mistral config.json keys");
	json_decref(j);
	cfg.sliding_window = 0;
	j = model_config_to_json(&cfg);
	CHECK(json_is_null(json_object_get(j, "sliding_window")) &&
	    model_config_from_json(&back, j, e, sizeof(e)) == 0 &&
	    back.sliding_window == 0, "mistral without a window writes null");
	json_decref(j);
	for (int g = 0; g < 4; g++) {
		static const char *gn[] = { "gemma2_tied", "gemma2_window",
		    "gemma3_tied", "gemma3_window" };
		cfg = load_config(gn[g]);
		j = model_config_to_json(&cfg);
		CHECK(model_config_from_json(&back, j, e, sizeof(e)) == 0 &&
		    memcmp(&cfg, &back, sizeof(cfg)) == 0,
		    "gemma2 round trip: %s", e);
		CHECK(strcmp(json_string_value(json_object_get(j,
		    "hidden_activation")), "gelu_pytorch_tanh") == 0 &&
		    json_array_size(json_object_get(j, "layer_types")) ==
		    (size_t)cfg.n_layers, "gemma2 config.json keys");
		json_decref(j);
	}
	cfg = load_config("qwen3_tied");
	j = model_config_to_json(&cfg);
	CHECK(model_config_from_json(&back, j, e, sizeof(e)) == 0 &&
	    memcmp(&cfg, &back, sizeof(cfg)) == 0, "qwen3 tied round trip: %s",
	    e);
	json_decref(j);
	cfg = load_config("qwen2_bias");
	j = model_config_to_json(&cfg);
	CHECK(model_config_from_json(&back, j, e, sizeof(e)) == 0 &&
	    memcmp(&cfg, &back, sizeof(cfg)) == 0, "qwen2 round trip: %s", e);
	json_decref(j);
	cfg.lm_head = 0;
	cfg.num_labels = 3;
	j = model_config_to_json(&cfg);
	CHECK(model_config_from_json(&back, j, e, sizeof(e)) == 0 &&
	    memcmp(&cfg, &back, sizeof(cfg)) == 0,
	    "classifier round trip: %s", e);
	CHECK(strcmp(json_string_value(json_array_get(json_object_get(j,
	    "architectures"), 0)), "Qwen2ForSequenceClassification") == 0,
	    "classifier architecture");
	json_decref(j);
}

/* ------------------------------------------------------------------------ */
/* Tensor layout and initialisation */

static void
test_layout(void)
{
	struct model_config cfg = load_config("qwen2_bias");
	struct model *m, *m2;
	const struct model_tensor *t;
	double s = 0, ss = 0;
	int n;

	struct model_tensor *ts = model_tensors(&cfg, &n);
	/* embed, 2 x (2 norms, 4 weights + 3 biases, 3 mlp), norm, lm_head */
	CHECK(n == 1 + 2 * 12 + 2, "qwen2 has %d tensors", n);
	free(ts);
	m = model_new(&cfg);
	t = model_tensor(m, "model.layers.1.self_attn.k_proj.bias");
	CHECK(t != NULL && t->ndim == 1 && t->shape[0] == 8 && t->is_bias,
	    "k_proj.bias");
	CHECK(model_tensor(m, "model.layers.0.self_attn.o_proj.bias") == NULL,
	    "no o_proj bias");
	t = model_tensor(m, "model.layers.0.self_attn.q_proj.weight");
	CHECK(t != NULL && t->shape[0] == 16 && t->shape[1] == 16, "q_proj");
	CHECK(model_tensor(m, "lm_head.weight") != NULL, "lm_head");
	model_init_random(m, 7);
	m2 = model_new(&cfg);
	model_init_random(m2, 7);
	CHECK(memcmp(m->params, m2->params, m->nparams * 4) == 0,
	    "same seed, same weights");
	t = model_tensor(m, "model.embed_tokens.weight");
	for (size_t i = 0; i < t->n; i++) {
		s += m->params[t->offset + i];
		ss += m->params[t->offset + i] * m->params[t->offset + i];
	}
	s /= t->n;
	CHECK(fabs(s) < 0.005 && fabs(sqrt(ss / t->n) - 0.02) < 0.003,
	    "embedding mean %g std %g", s, sqrt(ss / t->n));
	t = model_tensor(m, "model.norm.weight");
	CHECK(m->params[t->offset] == 1, "norm weights 1");
	t = model_tensor(m, "model.layers.0.self_attn.q_proj.bias");
	CHECK(m->params[t->offset] == 0, "biases 0");
	model_free(m);
	model_free(m2);

	/* Qwen3: per layer q_norm and k_norm (hd) after o_proj, norms 1 */
	cfg = load_config("qwen3_bias");
	ts = model_tensors(&cfg, &n);
	/* embed, 2 x (2 norms, 4 weights + 4 biases, 2 qk norms, 3 mlp),
	 * norm, lm_head */
	CHECK(n == 1 + 2 * 15 + 2, "qwen3 has %d tensors", n);
	CHECK(strcmp(ts[10].name, "model.layers.0.self_attn.q_norm.weight")
	    == 0 && ts[10].ndim == 1 && ts[10].shape[0] == 6 &&
	    ts[10].is_norm, "q_norm is %s", ts[10].name);
	free(ts);
	m = model_new(&cfg);
	t = model_tensor(m, "model.layers.1.self_attn.q_proj.weight");
	CHECK(t != NULL && t->shape[0] == 24 && t->shape[1] == 16,
	    "qwen3 q_proj (heads * head_dim, hidden)");
	t = model_tensor(m, "model.layers.1.self_attn.o_proj.bias");
	CHECK(t != NULL && t->shape[0] == 16 && t->is_bias, "o_proj.bias");
	model_init_random(m, 7);
	t = model_tensor(m, "model.layers.1.self_attn.k_norm.weight");
	CHECK(t != NULL && m->params[t->offset] == 1 &&
	    m->params[t->offset + 5] == 1, "k_norm weights 1");
	model_free(m);
	cfg = load_config("qwen3_tied");
	CHECK(model_num_params(&cfg) == 32 * 16 + 2 * (2 * 16 + 32 * 16 +
	    2 * 16 * 16 + 16 * 32 + 2 * 8 + 3 * 24 * 16) + 16,
	    "qwen3 tied parameter count");

	cfg = load_config("llama_gqa_tied");
	CHECK(model_num_params(&cfg) == 32 * 16 + 2 * (2 * 16 + 16 * 16 +
	    2 * 8 * 16 + 16 * 16 + 3 * 24 * 16) + 16, "tied parameter count");
}

/* ------------------------------------------------------------------------ */
/* Against PyTorch */

#define SEED 1234

struct fixture {
	struct stfile st;
	struct model_batch b;
	int N;
	const float *dlp, *logits, *logprobs;
};

static void
fixture_open(struct fixture *f, const char *name)
{
	char path[4096];
	size_t n;

	snprintf(path, sizeof(path),
	    "%s/tests/fixtures/model/%s.expect.safetensors", srcdir(), name);
	st_open(&f->st, path);
	f->b.len = st_get(&f->st, "lens", &n);
	f->b.nseq = n;
	f->b.tokens = st_get(&f->st, "tokens", &n);
	f->N = n;
	f->b.targets = st_get(&f->st, "targets", &n);
	f->dlp = st_get(&f->st, "dlogprobs", &n);
	f->logits = st_get(&f->st, "logits", &n);
	f->logprobs = st_get(&f->st, "logprobs", &n);
}

static void
test_fixture(const char *name)
{
	struct model_config cfg = load_config(name);
	struct model *m = model_new(&cfg);
	struct fixture f;
	float *lp, *lg;
	double e, worst = 0;

	fixture_open(&f, name);
	model_init_normal(m, SEED, 0.3, 0.2);
	lp = xmalloc(f.N * sizeof(float));
	lg = xmalloc((size_t)f.N * cfg.vocab_size * sizeof(float));
	model_forward(m, &f.b, lp);
	model_logits(m, lg);
	e = rel_err(lg, f.logits, (size_t)f.N * cfg.vocab_size);
	free(lg);
	CHECK(e <= 1e-4, "%s: logits relative error %g", name, e);
	e = rel_err(lp, f.logprobs, f.N);
	CHECK(e <= 1e-4, "%s: logprobs relative error %g", name, e);
	model_zero_grad(m);
	model_backward(m, f.dlp, NULL);
	for (int i = 0; i < m->ntensors; i++) {
		const struct model_tensor *t = &m->tensors[i];
		char gname[80];
		size_t n;
		const float *want;

		snprintf(gname, sizeof(gname), "grad.%s", t->name);
		want = st_get(&f.st, gname, &n);
		CHECK(n == t->n, "%s: %s has %zu elements, want %zu", name,
		    gname, t->n, n);
		e = rel_err(m->grads + t->offset, want, t->n);
		CHECK(e <= 1e-4, "%s: %s relative error %g", name, gname, e);
		if (e > worst)
			worst = e;
	}
	printf("%s: logits and %d gradients match PyTorch (worst %.2g)\n",
	    name, m->ntensors, worst);
	free(lp);
	st_close(&f.st);
	model_free(m);
}

/*
 * The same block in its other two uses, against the same PyTorch numbers:
 * prefill (model_extend on backend_cpu), half of each sequence in one call
 * and then a token at a time; and decoding (sample_step on
 * backend_cpu_decode), both sequences in one batch on forks of their
 * first two tokens, each step's logits against PyTorch's at that position.
 */
static void
test_fixture_cached(const char *name)
{
	struct model_config cfg = load_config(name);
	struct model *m = model_new(&cfg);
	struct fixture f;
	int V = cfg.vocab_size, off[2], one = 1, pre = 2;
	struct kv_cache *kv[2], *base[2];
	struct sample_step *st;
	float lg[2 * 64];
	double e, wp = 0, wd = 0;

	fixture_open(&f, name);
	CHECK(f.b.nseq == 2 && V <= 64, "%s: fixture shape", name);
	model_init_normal(m, SEED, 0.3, 0.2);
	off[0] = 0;
	off[1] = f.b.len[0];
	for (int s = 0; s < 2; s++) {
		const int *tok = f.b.tokens + off[s];
		int n = f.b.len[s], h = (n + 1) / 2;

		kv[s] = kv_cache_new(&cfg, n);
		model_extend(m, &kv[s], 1, &h, tok, lg);
		e = rel_err(lg, f.logits + (size_t)(off[s] + h - 1) * V, V);
		wp = e > wp ? e : wp;
		for (int i = h; i < n; i++) {
			model_extend(m, &kv[s], 1, &one, tok + i, lg);
			e = rel_err(lg, f.logits + (size_t)(off[s] + i) * V, V);
			wp = e > wp ? e : wp;
		}
		kv_cache_free(kv[s]);
	}
	CHECK(wp <= 1e-4, "%s: prefill logits relative error %g", name, wp);

	st = sample_step_new(m, 2);
	for (int s = 0; s < 2; s++) {
		base[s] = kv_cache_new(&cfg, pre);
		model_extend(m, &base[s], 1, &pre, f.b.tokens + off[s], lg);
		kv[s] = kv_cache_fork(base[s], f.b.len[s]);
	}
	for (int i = pre; i < f.b.len[0] || i < f.b.len[1]; i++) {
		struct kv_cache *act[2];
		int tok[2], row[2], B = 0;

		for (int s = 0; s < 2; s++)
			if (i < f.b.len[s]) {
				act[B] = kv[s];
				tok[B] = f.b.tokens[off[s] + i];
				row[B++] = off[s] + i;
			}
		sample_step(st, act, B, tok, lg);
		for (int b = 0; b < B; b++) {
			e = rel_err(lg + (size_t)b * V, f.logits +
			    (size_t)row[b] * V, V);
			wd = e > wd ? e : wd;
		}
	}
	CHECK(wd <= 1e-4, "%s: decode logits relative error %g", name, wd);
	printf("%s: prefill and batched forked decoding match PyTorch "
	    "(worst %.2g, %.2g)\n", name, wp, wd);
	for (int s = 0; s < 2; s++) {
		kv_cache_free(kv[s]);
		kv_cache_free(base[s]);
	}
	sample_step_free(st);
	st_close(&f.st);
	model_free(m);
}

/* ------------------------------------------------------------------------ */
/*
 * Frozen tensors: model_set_trainable moves the trainable tensors to the
 * front, the gradients cover them alone, and they are the same numbers as
 * the fully trainable model's; the network computes the same bits.
 */
static int
freeze_embed_layer0(const struct model_tensor *t, void *arg)
{
	(void)arg;
	return !(t->layer == 0 || strcmp(t->name, "model.embed_tokens.weight")
	    == 0);
}

static int
all_trainable(const struct model_tensor *t, void *arg)
{
	(void)t;
	(void)arg;
	return 1;
}

static void
test_trainable(void)
{
	struct model_config cfg = load_config("llama3_untied");
	struct model *a = model_new(&cfg), *b = model_new(&cfg);
	struct fixture f;
	size_t want = 0, n;
	float *lpa, *lpb;
	int ok = 1;

	fixture_open(&f, "llama3_untied");
	model_init_normal(a, SEED, 0.3, 0.2);
	model_init_normal(b, SEED, 0.3, 0.2);
	n = model_set_trainable(b, freeze_embed_layer0, NULL);
	for (int i = 0; i < b->ntensors; i++) {
		const struct model_tensor *t = &b->tensors[i];
		if (t->trainable) {
			want += t->n;
			ok &= t->offset + t->n <= n;
		} else
			ok &= t->offset >= n;
		ok &= t->trainable == freeze_embed_layer0(t, NULL);
	}
	CHECK(n == want && b->ntrain == n && n < b->nparams && ok,
	    "trainable: %zu floats in front, want %zu", n, want);
	lpa = xmalloc(f.N * sizeof(float));
	lpb = xmalloc(f.N * sizeof(float));
	model_forward(a, &f.b, lpa);
	model_forward(b, &f.b, lpb);
	CHECK(memcmp(lpa, lpb, f.N * sizeof(float)) == 0,
	    "trainable: the moved layout computes other numbers");
	model_zero_grad(a);
	model_zero_grad(b);
	model_backward(a, f.dlp, NULL);
	model_backward(b, f.dlp, NULL);
	for (int i = 0; i < b->ntensors; i++) {
		const struct model_tensor *tb = &b->tensors[i];
		const struct model_tensor *ta = model_tensor(a, tb->name);
		CHECK(memcmp(a->params + ta->offset, b->params + tb->offset,
		    tb->n * sizeof(float)) == 0, "trainable: %s moved wrong",
		    tb->name);
		if (tb->trainable)
			CHECK(memcmp(a->grads + ta->offset, b->grads +
			    tb->offset, tb->n * sizeof(float)) == 0,
			    "trainable: %s gradient differs", tb->name);
	}
	/* all trainable again: the HF layout, the same bits */
	CHECK(model_set_trainable(b, all_trainable, NULL) == b->nparams &&
	    memcmp(a->params, b->params, a->nparams * sizeof(float)) == 0,
	    "trainable: layout not restored");
	printf("trainable: %zu of %zu parameters, same gradients\n", n,
	    b->nparams);
	free(lpa);
	free(lpb);
	st_close(&f.st);
	model_free(a);
	model_free(b);
}

/* ------------------------------------------------------------------------ */
/*
 * Thread-count independence: the same bits with 1 and 2 threads, on a
 * model large enough that the matmuls are cut between threads and
 * attention works in several query blocks.  Then a long prompt through the
 * KV cache (blocked attention without stored probabilities) against the
 * full forward.
 */

static void
test_threads(void)
{
	struct model_config cfg = load_config("qwen2_bias");
	struct model *m;
	int len[2] = { 150, 45 }, N = 195, tok[195], tgt[195], nt;
	struct model_batch b = { 2, len, tok, tgt };
	float *g1, *lp1, *lp2, *dlp, *lg;
	struct kv_cache *kv;
	double e;

	cfg.dim = 64;
	cfg.n_heads = 4;
	cfg.n_kv_heads = 2;
	cfg.head_dim = 16;
	cfg.hidden_dim = 160;
	cfg.vocab_size = 300;
	m = model_new(&cfg);
	model_init_normal(m, SEED, 0.15, 0.1);
	for (int i = 0; i < N; i++) {
		tok[i] = (i * 37 + 11) % cfg.vocab_size;
		tgt[i] = (i * 53 + 7) % cfg.vocab_size;
	}
	g1 = xmalloc(m->nparams * sizeof(float));
	lp1 = xmalloc(N * sizeof(float));
	lp2 = xmalloc(N * sizeof(float));
	dlp = xmalloc(N * sizeof(float));
	for (int i = 0; i < N; i++)
		dlp[i] = -1.0f / (1 + i % 5);
	nt = omp_get_max_threads();
	omp_set_num_threads(1);
	model_forward(m, &b, lp1);
	model_zero_grad(m);
	model_backward(m, dlp, NULL);
	memcpy(g1, m->grads, m->nparams * sizeof(float));
	omp_set_num_threads(nt > 1 ? nt : 2);
	model_forward(m, &b, lp2);
	model_zero_grad(m);
	model_backward(m, dlp, NULL);
	CHECK(memcmp(lp1, lp2, N * sizeof(float)) == 0,
	    "logprobs differ between 1 and %d threads", nt > 1 ? nt : 2);
	CHECK(memcmp(g1, m->grads, m->nparams * sizeof(float)) == 0,
	    "gradients differ between 1 and %d threads", nt > 1 ? nt : 2);
	omp_set_num_threads(nt);

	/* the first sequence's 150 tokens as one prompt, then one more */
	model_forward(m, &b, NULL);
	lg = xmalloc((size_t)N * cfg.vocab_size * sizeof(float));
	model_logits(m, lg);
	kv = kv_cache_new(&cfg, 160);
	{
		int n = 149, one = 1;
		float *out = xmalloc(cfg.vocab_size * sizeof(float));
		model_extend(m, &kv, 1, &n, tok, out);
		e = rel_err(out, lg + (size_t)148 * cfg.vocab_size,
		    cfg.vocab_size);
		CHECK(e < 1e-4, "long prefill error %g", e);
		model_extend(m, &kv, 1, &one, tok + 149, out);
		e = rel_err(out, lg + (size_t)149 * cfg.vocab_size,
		    cfg.vocab_size);
		CHECK(e < 1e-4, "decode after long prefill error %g", e);
		free(out);
	}
	kv_cache_free(kv);
	free(lg);
	free(g1);
	free(lp1);
	free(lp2);
	free(dlp);
	model_free(m);
}

/* ------------------------------------------------------------------------ */
/*
 * The classifier in pieces, and recomputation.  A pass of 195 tokens with
 * the default pieces (one, for these vocabularies) is the reference; in
 * pieces of 64 rows (64, 64 and 67: the remainder of 3 joins the last)
 * the log-probabilities and logits must be the same numbers within
 * float rounding and the gradients too (lm_head's and the embedding's
 * summed piece by piece), with the same bits for 1 and 2 threads.
 * Recomputing each layer's activations in the backward pass must give
 * the very bits of keeping them, in one piece or several.
 */
struct pass {
	float *lp, *lg, *g;
};

static void
run_pass(struct model *m, const struct model_batch *b, const float *dlp,
    struct pass *p)
{
	int N = model_batch_tokens(b);

	p->lp = xmalloc(N * sizeof(float));
	p->lg = xmalloc((size_t)N * m->cfg.vocab_size * sizeof(float));
	p->g = xmalloc(m->ntrain * sizeof(float));
	model_forward(m, b, p->lp);
	model_zero_grad(m);
	model_backward(m, dlp, NULL);
	model_logits(m, p->lg);		/* after the backward too */
	memcpy(p->g, m->grads, m->ntrain * sizeof(float));
}

/* The same with the head's backward in the forward (model_set_head_grad),
 * as SFT runs. */
static void
run_pass_fused(struct model *m, const struct model_batch *b,
    const float *dlp, struct pass *p)
{
	int N = model_batch_tokens(b);

	p->lp = xmalloc(N * sizeof(float));
	p->lg = xmalloc((size_t)N * m->cfg.vocab_size * sizeof(float));
	p->g = xmalloc(m->ntrain * sizeof(float));
	model_zero_grad(m);
	model_set_head_grad(m, dlp);
	model_forward(m, b, p->lp);
	model_backward(m, dlp, NULL);
	model_logits(m, p->lg);
	memcpy(p->g, m->grads, m->ntrain * sizeof(float));
}

static void
free_pass(struct pass *p)
{
	free(p->lp);
	free(p->lg);
	free(p->g);
}

static int
same_pass(const struct pass *a, const struct pass *b, int N, int V,
    size_t ng)
{
	return memcmp(a->lp, b->lp, N * sizeof(float)) == 0 &&
	    memcmp(a->lg, b->lg, (size_t)N * V * sizeof(float)) == 0 &&
	    memcmp(a->g, b->g, ng * sizeof(float)) == 0;
}

static void
test_pieces(const char *name)
{
	struct model_config cfg = load_config(name);
	struct model *m;
	int len[2] = { 150, 45 }, N = 195, tok[195], tgt[195], nt, V;
	struct model_batch b = { 2, len, tok, tgt };
	struct pass ref, pc, pc1, rc, rcpc, fu, fupc;
	float *dlp = xmalloc(N * sizeof(float));
	double e, elp, eg = 0;

	cfg.vocab_size = V = 300;
	cfg.max_seq_len = 256;
	m = model_new(&cfg);
	model_init_normal(m, SEED, 0.3, 0.2);
	for (int i = 0; i < N; i++) {
		tok[i] = (i * 37 + 11) % V;
		tgt[i] = i % 7 == 3 ? -1 : (i * 53 + 7) % V;
		dlp[i] = -1.0f / (1 + i % 5);
	}
	run_pass(m, &b, dlp, &ref);
	model_set_head_rows(m, 64);
	run_pass(m, &b, dlp, &pc);
	e = elp = rel_err(pc.lp, ref.lp, N);
	CHECK(e <= 1e-6, "%s: logprobs in pieces: error %g", name, e);
	e = rel_err(pc.lg, ref.lg, (size_t)N * V);
	CHECK(e <= 1e-6, "%s: logits in pieces: error %g", name, e);
	for (int i = 0; i < m->ntensors; i++) {
		const struct model_tensor *t = &m->tensors[i];
		e = rel_err(pc.g + t->offset, ref.g + t->offset, t->n);
		CHECK(e <= 1e-5, "%s: %s gradient in pieces: error %g", name,
		    t->name, e);
		eg = e > eg ? e : eg;
	}
	nt = omp_get_max_threads();
	omp_set_num_threads(nt > 1 ? 1 : 2);
	run_pass(m, &b, dlp, &pc1);
	omp_set_num_threads(nt);
	CHECK(same_pass(&pc, &pc1, N, V, m->ntrain),
	    "%s: pieces: 1 and %d threads differ", name, nt > 1 ? nt : 2);

	run_pass_fused(m, &b, dlp, &fupc);
	CHECK(same_pass(&fupc, &pc, N, V, m->ntrain),
	    "%s: pieces: the head's backward in the forward differs", name);

	model_set_recompute(m, 1);
	run_pass(m, &b, dlp, &rcpc);
	model_set_head_rows(m, 0);
	run_pass(m, &b, dlp, &rc);
	CHECK(same_pass(&rc, &ref, N, V, m->ntrain),
	    "%s: recomputed pass differs from the kept one", name);
	run_pass_fused(m, &b, dlp, &fu);
	CHECK(same_pass(&fu, &ref, N, V, m->ntrain),
	    "%s: the head's backward in the forward (one piece) differs",
	    name);
	CHECK(same_pass(&rcpc, &pc, N, V, m->ntrain),
	    "%s: recomputed pass in pieces differs from the kept one", name);
	printf("%s: in pieces of 64 rows, logprobs %.2g and gradients %.2g "
	    "from one piece; recomputed: the same bits\n", name, elp, eg);
	free_pass(&ref);
	free_pass(&pc);
	free_pass(&pc1);
	free_pass(&rc);
	free_pass(&rcpc);
	free_pass(&fu);
	free_pass(&fupc);
	free(dlp);
	model_free(m);
}

/*
 * model_act_bytes at Qwen2.5-0.5B's shape, 4 sequences of 512: the
 * vocabulary adds one piece of logits (at most 64M + 15 rows' floats),
 * not (N, V); recomputing keeps L (N, C) inputs and one layer.
 */
static void
test_act_bytes(void)
{
	struct model_config cfg = load_config("qwen2_bias");
	int len[4] = { 512, 512, 512, 512 };
	size_t small, big, rc;

	cfg.dim = 896;
	cfg.n_layers = 24;
	cfg.n_heads = 14;
	cfg.n_kv_heads = 2;
	cfg.head_dim = 64;
	cfg.hidden_dim = 4864;
	cfg.max_seq_len = 512;
	cfg.vocab_size = 1000;
	small = model_act_bytes(&cfg, 4, len, 0);
	cfg.vocab_size = 151936;
	big = model_act_bytes(&cfg, 4, len, 0);
	rc = model_act_bytes(&cfg, 4, len, 1);
	CHECK(big - small <= ((64 << 20) + 15 * 151936) * sizeof(float),
	    "act bytes grow by %zu with the vocabulary", big - small);
	CHECK(rc < big / 5, "recompute: %zu act bytes, %zu without", rc, big);
	CHECK(rc > (size_t)24 * 2048 * 896 * sizeof(float),
	    "recompute: %zu act bytes, less than the layers' inputs", rc);
	printf("act bytes, Qwen2.5-0.5B shape, 4 x 512: %.0f MiB (V 1000: "
	    "%.0f), recomputing %.0f MiB\n", big / 1048576.0,
	    small / 1048576.0, rc / 1048576.0);
}

/* ------------------------------------------------------------------------ */
/* KV cache: prompt, token-by-token decoding, forks, batched steps. */

static void
test_decode(const char *name, int window)
{
	struct model_config cfg = load_config(name);
	struct model *m;
	int V = cfg.vocab_size, len[3] = { 9, 12, 12 }, tok[33], one = 1;
	int prompt = 6;
	struct kv_cache *kv[3], *p;
	float *full, *lg;
	double e, worst = 0;
	struct model_batch b = { 3, len, tok, NULL };

	if (window > 0)
		cfg.sliding_window = window;
	m = model_new(&cfg);
	model_init_normal(m, SEED, 0.3, 0.2);
	/* three sequences: A (9), then B and C (12) which share A's first
	 * six tokens as a prompt */
	for (int i = 0; i < 33; i++)
		tok[i] = (i * 11 + 5) % V;
	for (int i = 0; i < prompt; i++)
		tok[9 + i] = tok[21 + i] = tok[i];
	model_forward(m, &b, NULL);
	full = xmalloc((size_t)33 * V * sizeof(float));
	model_logits(m, full);
	lg = xmalloc((size_t)3 * V * sizeof(float));

	/* A alone: the prompt in one call, then one token at a time */
	kv[0] = kv_cache_new(&cfg, 16);
	model_extend(m, kv, 1, &prompt, tok, lg);
	e = rel_err(lg, full + (size_t)(prompt - 1) * V, V);
	CHECK(e < 1e-4, "prefill logits error %g", e);
	for (int i = prompt; i < 9; i++) {
		model_extend(m, kv, 1, &one, tok + i, lg);
		e = rel_err(lg, full + (size_t)i * V, V);
		worst = e > worst ? e : worst;
	}
	CHECK(worst < 1e-4, "single-stream decode error %g", worst);
	CHECK(kv[0]->len == 9, "cache length %d", kv[0]->len);

	/* B and C: fork the shared prompt, then decode B, C and a fresh
	 * continuation of A in one batch at different positions */
	p = kv_cache_new(&cfg, 16);
	model_extend(m, &p, 1, &prompt, tok + 9, lg);
	kv[1] = kv_cache_new(&cfg, 16);
	kv[2] = kv_cache_new(&cfg, 16);
	kv_cache_copy(kv[1], p);
	kv_cache_copy(kv[2], p);
	kv_cache_reset(kv[0]);
	{
		int n5 = 5, ones[3] = { 1, 1, 1 }, t3[3];
		model_extend(m, kv, 1, &n5, tok, lg);	/* A at position 5 */
		worst = 0;
		for (int step = 0; step < 4; step++) {
			t3[0] = tok[5 + step];
			t3[1] = tok[9 + prompt + step];
			t3[2] = tok[21 + prompt + step];
			model_extend(m, kv, 3, ones, t3, lg);
			e = rel_err(lg, full + (size_t)(5 + step) * V, V);
			worst = e > worst ? e : worst;
			e = rel_err(lg + V, full + (size_t)(9 + prompt + step) *
			    V, V);
			worst = e > worst ? e : worst;
			e = rel_err(lg + 2 * V, full +
			    (size_t)(21 + prompt + step) * V, V);
			worst = e > worst ? e : worst;
		}
		CHECK(worst < 1e-4, "batched forked decode error %g", worst);
		/* mixed: two new tokens for B, one for C */
		int n21[2] = { 2, 1 }, t21[3];
		t21[0] = tok[9 + prompt + 4];
		t21[1] = tok[9 + prompt + 5];
		t21[2] = tok[21 + prompt + 4];
		model_extend(m, kv + 1, 2, n21, t21, lg);
		e = rel_err(lg, full + (size_t)(9 + prompt + 5) * V, V);
		CHECK(e < 1e-4, "mixed extend (2 tokens) error %g", e);
		e = rel_err(lg + V, full + (size_t)(21 + prompt + 4) * V, V);
		CHECK(e < 1e-4, "mixed extend (1 token) error %g", e);
	}
	CHECK(window == 0 || (kv[0]->slots == window && p->slots == window),
	    "%s: caches of 16 positions keep %d, %d", name, kv[0]->slots,
	    p->slots);
	printf("decode %s (window %d): prefill, single, forked and batched "
	    "steps match the full forward\n", name, window);
	for (int i = 0; i < 3; i++)
		kv_cache_free(kv[i]);
	kv_cache_free(p);
	free(full);
	free(lg);
	model_free(m);
}

/*
 * A sliding window bounds the cache: a model whose layers see 4 positions
 * keeps 4 a layer however long the sequence, and a prompt of 10 read once
 * (its ring wrapped) then forked and decoded to 60 in batched steps gives
 * the logits of the full forward pass.
 */
static void
test_window_cache(void)
{
	struct model_config cfg = load_config("mistral_window");
	struct model *m;
	enum { W = 4, P = 10, N = 60 };
	int V = cfg.vocab_size, tok[2 * N], len[2] = { N, N }, pl = P;
	struct kv_cache *base, *kv[2], *big;
	struct model_batch b = { 2, len, tok, NULL };
	struct sample_step *st;
	float *full, lg[2 * 64];
	double e, worst = 0;

	cfg.sliding_window = W;
	m = model_new(&cfg);
	model_init_normal(m, SEED, 0.3, 0.2);
	for (int i = 0; i < 2 * N; i++)
		tok[i] = (i * 13 + 7) % V;
	for (int i = 0; i < P; i++)
		tok[N + i] = tok[i];
	model_forward(m, &b, NULL);
	full = xmalloc((size_t)2 * N * V * sizeof(float));
	model_logits(m, full);

	big = kv_cache_new(&cfg, 1 << 20);
	CHECK(big->slots == W, "a cache of 2^20 positions keeps %d",
	    big->slots);
	kv_cache_free(big);
	cfg.sliding_window = 0;
	big = kv_cache_new(&cfg, 100);
	CHECK(big->slots == 100, "without a window a cache keeps all %d",
	    big->slots);
	kv_cache_free(big);

	base = kv_cache_new(&m->cfg, P);
	model_extend(m, &base, 1, &pl, tok, lg);
	e = rel_err(lg, full + (size_t)(P - 1) * V, V);
	CHECK(e < 1e-4, "windowed prefill error %g", e);
	st = sample_step_new(m, 2);
	for (int s = 0; s < 2; s++) {
		kv[s] = kv_cache_fork(base, N);
		CHECK(kv[s]->slots == W, "a fork of %d keeps %d", N,
		    kv[s]->slots);
	}
	for (int i = P; i < N; i++) {
		int t2[2] = { tok[i], tok[N + i] };

		sample_step(st, kv, 2, t2, lg);
		for (int s = 0; s < 2; s++) {
			e = rel_err(lg + (size_t)s * V, full +
			    ((size_t)s * N + i) * V, V);
			worst = e > worst ? e : worst;
		}
	}
	CHECK(worst < 1e-4, "windowed forked decode to %d error %g", N, worst);
	printf("window %d: caches keep %d positions; forks of a wrapped "
	    "prompt decode to %d as the full forward (worst %.2g)\n", W, W,
	    N, worst);
	for (int s = 0; s < 2; s++)
		kv_cache_free(kv[s]);
	kv_cache_free(base);
	sample_step_free(st);
	free(full);
	model_free(m);
}

/* ------------------------------------------------------------------------ */
/* Checkpoints: save, load, same bits; a missing tensor is an error. */

static void
test_ckpt(void)
{
	struct model_config cfg = load_config("qwen2_bias");
	struct model *m = model_new(&cfg), *m2;
	struct ckpt_writer *w;
	struct ckpt *c;
	char dir[] = "/tmp/prefpipe-model.XXXXXX", path[4096];

	if (mkdtemp(dir) == NULL)
		err(1, "mkdtemp");
	snprintf(path, sizeof(path), "%s/ck", dir);
	model_init_normal(m, 99, 0.3, 0.2);
	w = ckpt_writer_open(path, "f32");
	model_save(m, w);
	ckpt_writer_commit(w);
	c = ckpt_load(path);
	m2 = model_from_ckpt(c);
	CHECK(m2->nparams == m->nparams && memcmp(&m->cfg, &m2->cfg,
	    sizeof(m->cfg)) == 0 && memcmp(m->params, m2->params,
	    m->nparams * sizeof(float)) == 0, "checkpoint round trip");
	ckpt_free(c);
	model_free(m2);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	if (system(path) != 0)
		warnx("could not remove %s", dir);
	model_free(m);
}

/* ------------------------------------------------------------------------ */

static void
test_flops(void)
{
	struct model_config cfg = load_config("llama_gqa_tied");
	int len[2] = { 3, 1 };
	/* per token per layer: q 16x16, k,v 8x16, o 16x16, mlp 3x24x16 */
	double per = 2.0 * (256 + 2 * 128 + 256 + 3 * 384);
	double att = 4.0 * 4 * 4 * (6 + 1);	/* 4 H hd T(T+1)/2 */
	double want = 2 * (4 * per + att) + 4 * 2.0 * 16 * 32;

	CHECK(model_flops_forward(&cfg, 2, len) == want, "flops %g, want %g",
	    model_flops_forward(&cfg, 2, len), want);
	CHECK(model_act_bytes(&cfg, 2, len, 0) > 0, "act bytes");
}

int
main(void)
{
	test_config();
	test_layout();
	test_fixture("llama_gqa_tied");
	test_fixture("llama3_untied");
	test_fixture("qwen2_bias");
	test_fixture("qwen3_tied");
	test_fixture("qwen3_bias");
	test_fixture("mistral_window");
	test_fixture("gemma2_tied");
	test_fixture("gemma2_window");
	test_fixture("gemma3_tied");
	test_fixture("gemma3_window");
	test_fixture_cached("llama_gqa_tied");
	test_fixture_cached("llama3_untied");
	test_fixture_cached("qwen2_bias");
	test_fixture_cached("qwen3_tied");
	test_fixture_cached("qwen3_bias");
	test_fixture_cached("mistral_window");
	/* decoding past the sliding layers' window of 3 (gemma*_window),
	 * and within it */
	test_fixture_cached("gemma2_tied");
	test_fixture_cached("gemma2_window");
	test_fixture_cached("gemma3_tied");
	test_fixture_cached("gemma3_window");
	test_trainable();
	test_threads();
	test_pieces("qwen2_bias");
	test_pieces("qwen3_tied");	/* q/k norms */
	test_pieces("gemma2_tied");	/* post-norms, final softcap */
	test_act_bytes();
	test_decode("llama3_untied", 0);
	test_decode("mistral_window", 3);
	test_window_cache();
	test_ckpt();
	test_flops();
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	return 0;
}
