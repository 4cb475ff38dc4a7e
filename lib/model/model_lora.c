/*
 * model_lora.c: PEFT's LoRA adapter directories, read onto their base and
 * written from a model with adapters; folding adapters into the base.
 * See model_lora.h.
 */
#include <err.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoints/checkpoint.h"
#include "model/model.h"
#include "model/model_ckpt.h"
#include "model/model_lora.h"
#include "util/util.h"

/* ------------------------------------------------------------------------ */
/* adapter_config.json */

int
lora_targets_parse(struct model_lora *lc, const char *list, char *err,
    size_t errsz)
{
	char name[64];

	lc->targets = 0;
	if (strcmp(list, "all-linear") == 0) {
		lc->targets = (1u << LORA_NTARGET) - 1;
		return 0;
	}
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ",");
		int j;

		if (n == 0 || n >= sizeof(name))
			return pp_errf(err, errsz, "an empty or overlong target in \"%s\"", list);
		memcpy(name, p, n);
		name[n] = '\0';
		if ((j = lora_target_parse(name)) < 0)
			return pp_errf(err, errsz, "unknown target \"%s\" (known: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, all-linear)", name);
		lc->targets |= 1u << j;
		p += n + (p[n] == ',');
	}
	if (lc->targets == 0)
		return pp_errf(err, errsz, "no target in \"%s\"", list);
	return 0;
}

/* A key that must be absent, null, false or empty: arithmetic not done. */
static int
refuse(const json_t *j, const char *key, char *err, size_t errsz)
{
	const json_t *v = json_object_get(j, key);

	if (v == NULL || json_is_null(v) || json_is_false(v) ||
	    (json_is_object(v) && json_object_size(v) == 0) ||
	    (json_is_array(v) && json_array_size(v) == 0))
		return 0;
	return pp_errf(err, errsz, "adapter_config.json: \"%s\" is not supported", key);
}

int
lora_config_from_json(struct model_lora *lc, const json_t *j, char *err,
    size_t errsz)
{
	static const char *const unsupported[] = { "use_dora", "use_rslora",
	    "fan_in_fan_out", "rank_pattern", "alpha_pattern",
	    "layers_to_transform", "layers_pattern", "use_qalora",
	    "target_parameters", "exclude_modules" };
	const json_t *v;
	char e[256];

	memset(lc, 0, sizeof(*lc));
	if (!json_is_object(j))
		return pp_errf(err, errsz, "adapter_config.json: not a JSON object");
	v = json_object_get(j, "peft_type");
	if (!json_is_string(v) || strcmp(json_string_value(v), "LORA") != 0)
		return pp_errf(err, errsz, "adapter_config.json: \"peft_type\": only \"LORA\" is supported");
	v = json_object_get(j, "task_type");
	if (v != NULL && !json_is_null(v) && (!json_is_string(v) ||
	    (strcmp(json_string_value(v), "CAUSAL_LM") != 0 &&
	    strcmp(json_string_value(v), "SEQ_CLS") != 0)))
		return pp_errf(err, errsz, "adapter_config.json: \"task_type\": only \"CAUSAL_LM\" and \"SEQ_CLS\" are supported");
	v = json_object_get(j, "bias");
	if (v != NULL && !json_is_null(v) && (!json_is_string(v) ||
	    strcmp(json_string_value(v), "none") != 0))
		return pp_errf(err, errsz, "adapter_config.json: \"bias\": only \"none\" is supported");
	for (size_t i = 0; i < sizeof(unsupported) / sizeof(*unsupported); i++)
		if (refuse(j, unsupported[i], err, errsz) != 0)
			return -1;
	v = json_object_get(j, "r");
	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > 1 << 16)
		return pp_errf(err, errsz, "adapter_config.json: \"r\": expected a positive integer");
	lc->rank = (int)json_integer_value(v);
	v = json_object_get(j, "lora_alpha");
	lc->alpha = v == NULL ? 8 : json_number_value(v);	/* PEFT's */
	if (v != NULL && (!json_is_number(v) || !isfinite(lc->alpha)))
		return pp_errf(err, errsz, "adapter_config.json: \"lora_alpha\": expected a number");
	v = json_object_get(j, "lora_dropout");
	lc->dropout = v == NULL || json_is_null(v) ? 0 : json_number_value(v);
	if (v != NULL && !json_is_null(v) && (!json_is_number(v) ||
	    !(lc->dropout >= 0 && lc->dropout < 1)))
		return pp_errf(err, errsz, "adapter_config.json: \"lora_dropout\": expected a number in [0, 1)");
	v = json_object_get(j, "target_modules");
	if (json_is_string(v)) {
		if (lora_targets_parse(lc, json_string_value(v), e,
		    sizeof(e)) != 0)
			return pp_errf(err, errsz, "adapter_config.json: \"target_modules\": %s (a regular expression is not supported)", e);
	} else if (json_is_array(v) && json_array_size(v) > 0) {
		size_t i;
		json_t *x;

		json_array_foreach(v, i, x) {
			int t = json_is_string(x) ?
			    lora_target_parse(json_string_value(x)) : -1;
			if (t < 0)
				return pp_errf(err, errsz, "adapter_config.json: \"target_modules\": %s%s%s is none of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj",
				    json_is_string(x) ? "\"" : "an entry",
				    json_is_string(x) ? json_string_value(x) : "",
				    json_is_string(x) ? "\"" : "");
			lc->targets |= 1u << t;
		}
	} else
		return pp_errf(err, errsz, "adapter_config.json: \"target_modules\": expected a list of module names");
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Opening: the adapter and its base */

static int
is_dir_or_file(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0;
}

int
lora_path_is_adapter(const char *path)
{
	char p[PATH_MAX + 32];
	struct stat st;

	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		return 0;
	snprintf(p, sizeof p, "%s/config.json", path);
	if (stat(p, &st) == 0)
		return 0;
	snprintf(p, sizeof p, "%s/adapter_config.json", path);
	return stat(p, &st) == 0;
}

void
model_src_open(struct model_src *src, const char *path, const char *base)
{
	struct ckpt *c = ckpt_load(path);
	char e[512], w[4096], rel[PATH_MAX + 8];
	struct model_lora lc;
	json_t *ac;
	const json_t *b;

	memset(src, 0, sizeof(*src));
	if (!ckpt_is_adapter(c)) {
		src->ckpt = c;
		return;
	}
	src->adapter = c;
	ac = ckpt_json(c, "adapter_config.json");
	if (lora_config_from_json(&lc, ac, e, sizeof(e)) != 0)
		errx(EXIT_DATA, "%s: %s", path, e);
	b = json_object_get(ac, "base_model_name_or_path");
	if (base == NULL) {
		const char *bn;

		if (!json_is_string(b) || *json_string_value(b) == '\0')
			errx(EXIT_DATA, "%s: no \"base_model_name_or_path\" "
			    "(--base names the base)", ckpt_where(c,
			    "adapter_config.json", w, sizeof w));
		bn = json_string_value(b);
		snprintf(rel, sizeof rel, "%s/%s", path, bn);
		if (bn[0] != '/' && is_dir_or_file(rel))
			base = rel;
		else if (is_dir_or_file(bn))
			base = bn;
		else
			errx(EXIT_DATA, "%s: \"base_model_name_or_path\": "
			    "\"%s\" is no checkpoint here (neither relative to "
			    "the adapter nor to the current directory; --base "
			    "names the base)", ckpt_where(c,
			    "adapter_config.json", w, sizeof w), bn);
	}
	src->base = xstrdup(base);
	b = json_object_get(ac, "modules_to_save");
	if (json_is_array(b) && json_array_size(b) > 0) {
		size_t i, len = 0;
		json_t *x;

		json_array_foreach(b, i, x)
			if (json_is_string(x))
				len += strlen(json_string_value(x)) + 1;
		src->modules = xcalloc(len + 1, 1);
		json_array_foreach(b, i, x)
			if (json_is_string(x)) {
				if (*src->modules)
					strcat(src->modules, ",");
				strcat(src->modules, json_string_value(x));
			}
	}
	json_decref(ac);
	src->ckpt = ckpt_load(src->base);
	if (ckpt_is_adapter(src->ckpt))
		errx(EXIT_DATA, "%s: the base of %s is an adapter itself",
		    src->base, path);
}

void
model_src_free(struct model_src *src)
{
	ckpt_free(src->ckpt);
	ckpt_free(src->adapter);
	free(src->base);
	free(src->modules);
	memset(src, 0, sizeof(*src));
}

int
lora_module_match(const char *modules, const struct model_tensor *t)
{
	const char *dot = strrchr(t->name, '.');
	size_t ml = dot ? (size_t)(dot - t->name) : strlen(t->name);

	if (modules == NULL || t->lora)
		return 0;
	for (const char *p = modules; *p;) {
		size_t n = strcspn(p, ",");
		if (n > 0 && n <= ml && memcmp(t->name + ml - n, p, n) == 0 &&
		    (n == ml || t->name[ml - n - 1] == '.'))
			return 1;
		p += n + (p[n] == ',');
	}
	return 0;
}

/*
 * The adapter's tensors onto m: every adapter of m's config must be
 * there with its shape, and every tensor there must be one of m's.
 */
static void
read_adapter(struct model *m, struct model_src *src)
{
	struct st_set *s = ckpt_extra(src->adapter, "adapter_model.safetensors");
	const char *path = ckpt_path(src->adapter);
	char name[200], a[128], b[128];

	if (s == NULL)
		errx(EXIT_DATA, "%s/adapter_model.safetensors: missing", path);
	for (size_t i = 0; i < st_set_ntensors(s); i++) {
		const struct tensor *x = st_set_tensor(s, i);
		const char *n = x->name;
		const struct model_tensor *mt;

		if (strncmp(n, LORA_PREFIX, strlen(LORA_PREFIX)) != 0 ||
		    (mt = model_tensor(m, n + strlen(LORA_PREFIX))) == NULL)
			errx(EXIT_DATA, "%s/adapter_model.safetensors: tensor "
			    "\"%s\" is not one of the model's (%s, with the "
			    "adapter_config.json's targets)", path, n,
			    src->base);
		if (!mt->lora && !lora_module_match(src->modules, mt))
			errx(EXIT_DATA, "%s/adapter_model.safetensors: tensor "
			    "\"%s\" is neither an adapter nor in "
			    "modules_to_save", path, n);
	}
	for (int i = 0; i < m->ntensors; i++) {
		const struct model_tensor *mt = &m->tensors[i];
		const struct tensor *x;

		if (!mt->lora && !lora_module_match(src->modules, mt))
			continue;
		snprintf(name, sizeof name, "%s%s", LORA_PREFIX, mt->name);
		x = st_set_find(s, name);
		if (x == NULL && !mt->lora)
			continue;	/* a module kept as the base has it */
		if (x == NULL)
			errx(EXIT_DATA, "%s/adapter_model.safetensors: tensor "
			    "\"%s\": missing", path, name);
		if (!tensor_same_shape(x->ndim, x->shape, mt->ndim, mt->shape))
			errx(EXIT_DATA, "%s/adapter_model.safetensors: tensor "
			    "\"%s\" has shape %s, the base %s and r say %s",
			    path, name, tensor_shape_str(a, sizeof a, x->ndim,
			    x->shape), src->base, tensor_shape_str(b, sizeof b,
			    mt->ndim, mt->shape));
		if (mt->dtype == DT_F32)
			memcpy(m->params + mt->offset, x->data,
			    mt->n * sizeof(float));
		else	/* a frozen modules_to_save matrix, held narrow */
			dtype_from_f32(mt->dtype, x->data,
			    (uint16_t *)mt->half, mt->n);
	}
}

struct model *
model_src_load(struct model_src *src, const struct model_lora *lc,
    int (*trainable)(const struct model_tensor *t, void *arg), void *arg,
    int hold)
{
	struct model_lora al;
	struct model *m;
	char e[512];

	if (src->adapter == NULL)
		return model_from_ckpt_with(src->ckpt, lc, trainable, arg,
		    hold);
	json_t *ac = ckpt_json(src->adapter, "adapter_config.json");
	if (lora_config_from_json(&al, ac, e, sizeof(e)) != 0)
		errx(EXIT_DATA, "%s: %s", ckpt_path(src->adapter), e);
	json_decref(ac);
	m = model_from_ckpt_with(src->ckpt, &al, trainable, arg, hold);
	read_adapter(m, src);
	return m;
}

struct model *
model_load(const char *path, const char *base, struct model_src *src)
{
	model_src_open(src, path, base);
	return model_src_load(src, NULL, NULL, NULL, DT_F32);
}

static int
lora_frozen(const struct model_tensor *t, void *arg)
{
	(void)t;
	(void)arg;
	return 0;
}

struct model *
model_load_as(const char *path, const char *base, struct model_src *src,
    const struct model_load_opts *o)
{
	struct model *m;

	model_src_open(src, path, base);
	if (src->adapter == NULL)
		return model_from_ckpt_opts(src->ckpt, o);
	/* The base's matrices as --weights says (the adapters stay fp32),
	 * narrowed as they are read. */
	m = model_src_load(src, NULL, lora_frozen, NULL,
	    model_load_dtype(src->ckpt, o));
	if (o->compute != MODEL_COMPUTE_F32)
		model_set_compute(m, o->compute);
	return m;
}

/* ------------------------------------------------------------------------ */
/* Writing */

const char *
lora_base_name(const char *base)
{
	static char buf[PATH_MAX];

	if (realpath(base, buf) == NULL)
		err(EXIT_DATA, "%s", base);
	return buf;
}

void
lora_save(const struct model *m, struct ckpt_writer *w, const char *base,
    const char *modules)
{
	const struct model_lora *lc = &m->cfg.lora;
	json_t *j = json_object(), *tm = json_array(), *ms = json_null();
	char name[200];

	for (int t = 0; t < LORA_NTARGET; t++)
		if (lc->targets & (1u << t))
			json_array_append_new(tm,
			    json_string(lora_target_name(t)));
	if (modules != NULL) {
		ms = json_array();
		for (const char *p = modules; *p;) {
			size_t n = strcspn(p, ",");
			if (n > 0)
				json_array_append_new(ms,
				    json_stringn(p, n));
			p += n + (p[n] == ',');
		}
	}
	/* PEFT's LoraConfig keys, as save_pretrained writes them */
	json_object_set_new(j, "alpha_pattern", json_object());
	json_object_set_new(j, "auto_mapping", json_null());
	json_object_set_new(j, "base_model_name_or_path", json_string(base));
	json_object_set_new(j, "bias", json_string("none"));
	json_object_set_new(j, "fan_in_fan_out", json_false());
	json_object_set_new(j, "inference_mode", json_true());
	json_object_set_new(j, "init_lora_weights", json_true());
	json_object_set_new(j, "layers_pattern", json_null());
	json_object_set_new(j, "layers_to_transform", json_null());
	json_object_set_new(j, "lora_alpha", json_real(lc->alpha));
	json_object_set_new(j, "lora_dropout", json_real(lc->dropout));
	json_object_set_new(j, "modules_to_save", ms);
	json_object_set_new(j, "peft_type", json_string("LORA"));
	json_object_set_new(j, "r", json_integer(lc->rank));
	json_object_set_new(j, "rank_pattern", json_object());
	json_object_set_new(j, "revision", json_null());
	json_object_set_new(j, "target_modules", tm);
	json_object_set_new(j, "task_type", json_string(m->cfg.lm_head ?
	    "CAUSAL_LM" : "SEQ_CLS"));
	json_object_set_new(j, "use_dora", json_false());
	json_object_set_new(j, "use_rslora", json_false());
	ckpt_writer_add_json(w, "adapter_config.json", j);
	json_decref(j);
	for (int i = 0; i < m->ntensors; i++) {
		const struct model_tensor *t = &m->tensors[i];
		if (!t->lora && !lora_module_match(modules, t))
			continue;
		snprintf(name, sizeof name, "%s%s", LORA_PREFIX, t->name);
		ckpt_writer_add_tensor_to(w, "adapter_model.safetensors", name,
		    t->ndim, t->shape, m->params + t->offset,
		    ckpt_writer_dtype(w));
	}
}

/* ------------------------------------------------------------------------ */
/* Folding */

void
lora_fold_add(float *W, int O, int K, const float *B, const float *A, int r,
    double s)
{
#pragma omp parallel for schedule(static)
	for (int o = 0; o < O; o++)
		for (int k = 0; k < K; k++) {
			double acc = 0;
			for (int j = 0; j < r; j++)
				acc += (double)B[(size_t)o * r + j] *
				    A[(size_t)j * K + k];
			W[(size_t)o * K + k] += (float)(s * acc);
		}
}

struct model *
model_lora_fold(struct model *m)
{
	struct model_config cb = m->cfg;
	struct model *b;
	double s = m->cfg.lora.alpha / m->cfg.lora.rank;
	int r = m->cfg.lora.rank;

	if (r <= 0)
		return m;
	cb.lora = (struct model_lora){ 0 };
	b = model_new(&cb);
	for (int i = 0; i < b->ntensors; i++) {
		const struct model_tensor *bt = &b->tensors[i];
		const struct model_tensor *mt = model_tensor(m, bt->name);
		memcpy(b->params + bt->offset, m->params + mt->offset,
		    bt->n * sizeof(float));
	}
	for (int i = 0; i < m->ntensors; i++) {
		const struct model_tensor *tb = &m->tensors[i], *ta;
		char base[sizeof(tb->name)];
		const float *A, *B;
		float *W;
		int O, K;

		if (tb->lora != 2)
			continue;
		/* A lies just before B (model_tensors) in name order; find
		 * it and the base by name whatever the layout */
		snprintf(base, sizeof base, "%.*s.lora_A.weight",
		    (int)(strlen(tb->name) - strlen(".lora_B.weight")),
		    tb->name);
		ta = model_tensor(m, base);
		snprintf(base, sizeof base, "%.*s.weight",
		    (int)(strlen(tb->name) - strlen(".lora_B.weight")),
		    tb->name);
		W = b->params + model_tensor(b, base)->offset;
		A = m->params + ta->offset;
		B = m->params + tb->offset;
		O = (int)tb->shape[0];
		K = (int)ta->shape[1];
		lora_fold_add(W, O, K, B, A, r, s);
	}
	model_free(m);
	return b;
}
