/*
 * merge: combine the weights of several models of one architecture into
 * one: linear soups, SLERP, task arithmetic, TIES and DARE.
 *
 * The work goes tensor by tensor.  The inputs are mmapped, each tensor is
 * converted (if stored as bf16 or f16), merged, streamed to the output and
 * dropped again, so memory stays near (inputs + 1) times the largest
 * tensor however large the models are (TIES adds one more for trimming).
 * One thread: the work is bound by memory bandwidth and page faults, and
 * a second thread gains little on a busy machine while its barriers cost
 * a lot.
 */
#include "config.h"

#include <err.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoints/checkpoint.h"
#include "model/model_lora.h"
#include "util/rng.h"
#include "util/progress.h"
#include "util/util.h"

#define SYNOPSIS \
	"merge -o OUT [--method METHOD] [--weights W1,W2,...] [--base CKPT]\n" \
	"             [--t X] [--density D] [--lambda L]\n" \
	"             [--normalize | --no-normalize] [--seed S]\n" \
	"             [--dtype f32|bf16|f16] [-q] CKPT ..."

enum method { LINEAR, SLERP, TASK_ARITH, TIES, DARE_LINEAR, DARE_TIES };

static const struct {
	const char *name;
	int base;		/* needs --base */
	int density;		/* needs --density */
	int normalize;		/* --normalize by default (as mergekit) */
	int ties;		/* TIES sign election */
	int dare;		/* DARE random drop and rescale */
} methods[] = {
	[LINEAR] = { "linear", 0, 0, 1, 0, 0 },
	[SLERP] = { "slerp", 0, 0, 0, 0, 0 },
	[TASK_ARITH] = { "task-arithmetic", 1, 0, 0, 0, 0 },
	[TIES] = { "ties", 1, 1, 1, 1, 0 },
	[DARE_LINEAR] = { "dare-linear", 1, 1, 0, 0, 1 },
	[DARE_TIES] = { "dare-ties", 1, 1, 0, 1, 1 },
};

/*
 * An input that is a LoRA adapter directory (model_lora.h): it is merged
 * as its base with the adapter folded in, W + (alpha/r) B A, tensor by
 * tensor (a tensor of its modules_to_save replacing the base's).
 */
struct adapter {
	struct model_src src;	/* in[i] is src.ckpt, the base */
	struct st_set *st;	/* adapter_model.safetensors */
	double s;		/* alpha / r */
	int r;
	float *buf;		/* the folded tensor */
};

struct merge {
	enum method method;
	int n;			/* inputs */
	struct ckpt **in;
	struct adapter **ad;	/* (n) or NULL where a checkpoint */
	const char **path;
	double *w;		/* their weights */
	struct ckpt *base;	/* or NULL */
	struct ckpt *ref;	/* whose config and tokenizer the output gets */
	double t, density, lambda;
	int normalize;
	uint64_t seed;
	int quiet;		/* -q: no progress line */
};

/* ------------------------------------------------------------------------ */
/* Compatibility of the inputs */

/* Keys of config.json that may differ between models of one family. */
static int
benign_key(const char *k)
{
	static const char *const keys[] = { "torch_dtype",
	    "transformers_version", "_name_or_path", "use_cache" };
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (strcmp(k, keys[i]) == 0)
			return 1;
	return 0;
}

static void
check_config(struct ckpt *ref, struct ckpt *c)
{
	json_t *a = ckpt_config(ref), *b = ckpt_config(c), *v;
	const char *k;
	char w[4096];

	json_object_foreach(a, k, v) {
		if (benign_key(k))
			continue;
		json_t *u = json_object_get(b, k);
		if (u == NULL || !json_equal(u, v)) {
			char *x = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
			char *y = u ? json_dumps(u, JSON_ENCODE_ANY |
			    JSON_COMPACT) : xstrdup("missing");
			errx(EXIT_DATA, "%s: field \"%s\" is %s, but %s in %s",
			    ckpt_where(c, "config.json", w, sizeof w), k, y,
			    x, ckpt_path(ref));
		}
	}
	json_object_foreach(b, k, v)
		if (!benign_key(k) && json_object_get(a, k) == NULL)
			errx(EXIT_DATA, "%s: field \"%s\" is not in %s",
			    ckpt_where(c, "config.json", w, sizeof w), k,
			    ckpt_path(ref));
}

/* The vocabulary: the model's token table and the added tokens. */
static void
check_tokenizer(struct ckpt *ref, struct ckpt *c)
{
	json_t *a = ckpt_json(ref, "tokenizer.json");
	json_t *b = ckpt_json(c, "tokenizer.json");
	char w[4096];

	if ((a == NULL) != (b == NULL))
		errx(EXIT_DATA, "%s: %s", ckpt_where(c, "tokenizer.json", w,
		    sizeof w), b ? "not in the other models" : "missing");
	if (a != NULL) {
		if (!json_equal(json_object_get(json_object_get(a, "model"),
		    "vocab"), json_object_get(json_object_get(b, "model"),
		    "vocab")))
			errx(EXIT_DATA, "%s: vocabulary differs from %s's",
			    ckpt_where(c, "tokenizer.json", w, sizeof w),
			    ckpt_path(ref));
		if (!json_equal(json_object_get(a, "added_tokens"),
		    json_object_get(b, "added_tokens")))
			errx(EXIT_DATA, "%s: added tokens differ from %s's",
			    ckpt_where(c, "tokenizer.json", w, sizeof w),
			    ckpt_path(ref));
	}
	json_decref(a);
	json_decref(b);
}

static void
check_tensors(struct ckpt *ref, struct ckpt *c)
{
	char s1[128], s2[128];

	for (size_t i = 0; i < ckpt_ntensors(ref); i++) {
		const struct tensor *a = ckpt_tensor(ref, i);
		const struct tensor *b = ckpt_meta(c, a->name);
		if (b == NULL)
			errx(EXIT_DATA, "%s: tensor \"%s\": missing (%s has "
			    "it)", ckpt_path(c), a->name, ckpt_path(ref));
		int same = a->ndim == b->ndim;
		for (int d = 0; same && d < a->ndim; d++)
			same = a->shape[d] == b->shape[d];
		if (!same)
			errx(EXIT_DATA, "%s: tensor \"%s\": shape %s, but %s "
			    "in %s", ckpt_path(c), a->name, tensor_shape_str(s1,
			    sizeof s1, b->ndim, b->shape), tensor_shape_str(s2,
			    sizeof s2, a->ndim, a->shape), ckpt_path(ref));
	}
	for (size_t i = 0; i < ckpt_ntensors(c); i++)
		if (ckpt_meta(ref, ckpt_tensor(c, i)->name) == NULL)
			errx(EXIT_DATA, "%s: tensor \"%s\": not in %s",
			    ckpt_path(c), ckpt_tensor(c, i)->name,
			    ckpt_path(ref));
}

static void
check_inputs(const struct merge *m)
{
	for (int i = 0; i < m->n; i++) {
		if (m->in[i] == m->ref)
			continue;
		check_config(m->ref, m->in[i]);
		check_tokenizer(m->ref, m->in[i]);
		check_tensors(m->ref, m->in[i]);
	}
}

/* ------------------------------------------------------------------------ */
/* The methods, on one tensor of len elements */

/*
 * linear: out = sum w_i x_i, weights normalised beforehand if asked.  The
 * sum runs in double, element by element in input order, and is rounded
 * to float once: a model merged with itself (weights summing to 1) comes
 * back bit for bit, as the error of the sum stays far below half a float
 * ulp.
 */
static void
merge_linear(float *out, float *const *x, const double *w, int n, size_t len)
{
	for (size_t k = 0; k < len; k++) {
		double acc = 0;
		for (int i = 0; i < n; i++)
			acc += w[i] * x[i][k];
		out[k] = (float)acc;
	}
}

/*
 * SLERP: the angle between the two tensors' directions sets how their
 * unnormalised values mix; nearly parallel tensors (|cos| > 0.9995) or a
 * zero tensor fall back to straight-line interpolation, where the formula
 * divides by almost nothing.
 */
static void
merge_slerp(float *out, const float *a, const float *b, double t,
    size_t len)
{
	double aa = 0, bb = 0, ab = 0;
	for (size_t k = 0; k < len; k++) {
		aa += (double)a[k] * a[k];
		bb += (double)b[k] * b[k];
		ab += (double)a[k] * b[k];
	}
	double s0 = 1 - t, s1 = t;
	if (aa > 0 && bb > 0) {
		double c = ab / sqrt(aa * bb);
		if (fabs(c) <= 0.9995) {
			double th = acos(c), st = sin(th);
			s0 = sin((1 - t) * th) / st;
			s1 = sin(t * th) / st;
		}
	}
	float f0 = (float)s0, f1 = (float)s1;
	for (size_t k = 0; k < len; k++)
		out[k] = f0 * a[k] + f1 * b[k];
}

/* Swap-free three-way quickselect: the k-th smallest of v (0-based). */
static float
select_kth(float *v, size_t n, size_t k)
{
	size_t lo = 0, hi = n;		/* the answer is in v[lo, hi) */
	uint64_t s = 0x9e3779b97f4a7c15ull;
	while (hi - lo > 1) {
		float p = v[lo + splitmix64(&s) % (hi - lo)];
		/* [lo, lt) < p, [lt, i) == p, (gt, hi) > p */
		size_t lt = lo, i = lo, gt = hi;
		while (i < gt) {
			float x = v[i];
			if (x < p) {
				v[i++] = v[lt];
				v[lt++] = x;
			} else if (x > p) {
				v[i] = v[--gt];
				v[gt] = x;
			} else
				i++;
		}
		if (k < lt)
			hi = lt;
		else if (k >= gt)
			lo = gt;
		else
			return p;
	}
	return v[lo];
}

/*
 * TIES trimming: keep the k = floor(density * len) entries of the task
 * vector largest in magnitude.  *thr is the k-th largest magnitude and
 * *eq how many entries equal to it to keep (the first ones, in index
 * order, so the choice among ties is deterministic).
 */
static void
trim_threshold(const float *x, const float *base, size_t len, double density,
    float *scratch, float *thr, size_t *eq)
{
	size_t k = (size_t)floor(density * (double)len);
	if (k >= len) {
		*thr = -1;	/* every |d| > -1: keep all */
		*eq = 0;
		return;
	}
	if (k == 0) {
		*thr = INFINITY;
		*eq = 0;
		return;
	}
	for (size_t j = 0; j < len; j++)
		scratch[j] = fabsf(x[j] - base[j]);
	float t = select_kth(scratch, len, len - k);
	size_t gt = 0;
	for (size_t j = 0; j < len; j++)
		gt += fabsf(x[j] - base[j]) > t;
	*thr = t;
	*eq = k - gt;
}

/*
 * Task vectors: task-arithmetic, TIES, DARE.  Each input's task vector
 * d_i = x_i - base is first kept whole, trimmed (TIES) or randomly dropped
 * and rescaled (DARE); then combined, after a sign election per element
 * for the TIES variants, and added to the base times lambda.
 */
static void
merge_tasks(const struct merge *m, const char *name, float *out,
    float *const *x, const float *base, const float *w, size_t len,
    float *scratch)
{
	int n = m->n, ties = methods[m->method].ties;
	int dare = methods[m->method].dare;
	int trim = ties && !dare;
	float thr[n], d[n];
	size_t eq[n];
	struct rng g[n];
	float lambda = (float)m->lambda, keep = (float)m->density;
	float rescale = (float)(1 / m->density);

	for (int i = 0; i < n; i++) {
		if (trim)
			trim_threshold(x[i], base, len, m->density, scratch,
			    &thr[i], &eq[i]);
		if (dare) {
			/* One stream per model and tensor: the mask does not
			 * depend on the order of the tensors or the others. */
			uint64_t h = 14695981039346656037ull;
			for (const char *p = name; *p; p++)
				h = (h ^ (unsigned char)*p) * 1099511628211ull;
			uint64_t keys[2] = { (uint64_t)i, h };
			rng_stream(&g[i], m->seed, keys, 2);
		}
	}
	float wsum = 0;
	for (int i = 0; i < n; i++)
		wsum += w[i];

	for (size_t k = 0; k < len; k++) {
		float sum = 0;
		for (int i = 0; i < n; i++) {
			float v = x[i][k] - base[k];
			if (trim) {
				float a = fabsf(v);
				if (!(a > thr[i] || (a == thr[i] && eq[i] > 0 &&
				    eq[i]--)))
					v = 0;
			}
			if (dare)
				v = rng_uniform(&g[i]) < keep ? v * rescale : 0;
			d[i] = w[i] * v;
			sum += d[i];
		}
		float mixed = 0, div = 0;
		if (ties) {
			/* The sign of the weighted sum wins; a tie goes to +.
			 * Entries of the other sign, and zeros, drop out. */
			float sign = sum >= 0 ? 1 : -1;
			for (int i = 0; i < n; i++)
				if (d[i] != 0 && (d[i] > 0) == (sign > 0)) {
					mixed += d[i];
					div += w[i];
				}
		} else {
			mixed = sum;
			div = wsum;
		}
		if (m->normalize && div != 0)
			mixed /= div;
		out[k] = base[k] + lambda * mixed;
	}
}

/* ------------------------------------------------------------------------ */
/* The driver */

/* Tensor rt of adapter a's model: the base's W, folded. */
static float *
fold(struct adapter *a, const char *path, const struct tensor *rt,
    const float *W)
{
	char name[300], stem[256];
	size_t sl = strlen(rt->name);
	const struct tensor *A, *B, *full;

	snprintf(name, sizeof name, "%s%s", LORA_PREFIX, rt->name);
	full = st_set_find(a->st, name);
	memcpy(a->buf, full != NULL && full->n == rt->n ? full->data : W,
	    rt->n * sizeof(float));
	if (sl < 7 || strcmp(rt->name + sl - 7, ".weight") != 0 ||
	    rt->ndim != 2)
		return a->buf;
	snprintf(stem, sizeof stem, "%.*s", (int)(sl - 7), rt->name);
	snprintf(name, sizeof name, "%s%s.lora_A.weight", LORA_PREFIX, stem);
	A = st_set_find(a->st, name);
	snprintf(name, sizeof name, "%s%s.lora_B.weight", LORA_PREFIX, stem);
	B = st_set_find(a->st, name);
	if (A == NULL && B == NULL)
		return a->buf;
	if (A == NULL || B == NULL || A->ndim != 2 || B->ndim != 2 ||
	    A->shape[0] != a->r || B->shape[1] != a->r ||
	    A->shape[1] != rt->shape[1] || B->shape[0] != rt->shape[0])
		errx(EXIT_DATA, "%s/adapter_model.safetensors: the adapter "
		    "of %s does not fit its base's [%lld, %lld] with r %d",
		    path, rt->name, (long long)rt->shape[0],
		    (long long)rt->shape[1], a->r);
	lora_fold_add(a->buf, (int)rt->shape[0], (int)rt->shape[1], B->data,
	    A->data, a->r, a->s);
	return a->buf;
}

/* Every tensor of adapter a must be one of its base's, or fold would
 * drop it unseen. */
static void
check_adapter(const struct adapter *a, const char *path)
{
	size_t pl = strlen(LORA_PREFIX);

	for (size_t i = 0; i < st_set_ntensors(a->st); i++) {
		const char *n = st_set_tensor(a->st, i)->name;
		char base[300];
		const char *l = strstr(n, ".lora_");

		if (strncmp(n, LORA_PREFIX, pl) != 0)
			errx(EXIT_DATA, "%s/adapter_model.safetensors: tensor "
			    "\"%s\" lacks PEFT's prefix %s", path, n,
			    LORA_PREFIX);
		if (l != NULL)
			snprintf(base, sizeof base, "%.*s.weight",
			    (int)(l - n - pl), n + pl);
		else
			snprintf(base, sizeof base, "%s", n + pl);
		if (ckpt_meta(a->src.ckpt, base) == NULL)
			errx(EXIT_DATA, "%s/adapter_model.safetensors: tensor "
			    "\"%s\": its base %s has no %s", path, n,
			    a->src.base, base);
	}
}

static void
merge_all(struct merge *m, struct ckpt_writer *wr)
{
	struct ckpt *ref = m->ref;
	size_t big = 0;
	struct progress *pr = progress_new("tensors", ckpt_ntensors(ref),
	    m->quiet);
	float wf[m->n];
	double wd[m->n];
	float *x[m->n];

	for (size_t i = 0; i < ckpt_ntensors(ref); i++)
		if (ckpt_tensor(ref, i)->n > big)
			big = ckpt_tensor(ref, i)->n;
	float *out = xreallocarray(NULL, big, sizeof *out);
	float *scratch = methods[m->method].ties && !methods[m->method].dare ?
	    xreallocarray(NULL, big, sizeof *scratch) : NULL;

	/* A linear soup divides its weights by their sum up front. */
	double wsum = 0;
	for (int i = 0; i < m->n; i++)
		wsum += m->w[i];
	for (int i = 0; i < m->n; i++) {
		wd[i] = m->method == LINEAR && m->normalize ? m->w[i] / wsum :
		    m->w[i];
		wf[i] = (float)wd[i];
	}

	size_t nt = ckpt_ntensors(ref);
	for (int i = 0; i < m->n; i++)
		if (m->ad[i] != NULL)
			m->ad[i]->buf = xreallocarray(NULL, big, sizeof(float));
	for (size_t ti = 0; ti < nt; ti++) {
		const struct tensor *rt = ckpt_tensor(ref, ti);
		const struct tensor *ts[m->n], *bt = NULL;
		for (int i = 0; i < m->n; i++) {
			ts[i] = ckpt_meta(m->in[i], rt->name);
			x[i] = ckpt_data(m->in[i], ts[i]);
			if (m->ad[i] != NULL)
				x[i] = fold(m->ad[i], m->path[i], rt, x[i]);
		}
		const float *base = NULL;
		if (m->base != NULL) {
			bt = ckpt_meta(m->base, rt->name);
			base = ckpt_data(m->base, bt);
		}
		switch (m->method) {
		case LINEAR:
			merge_linear(out, x, wd, m->n, rt->n);
			break;
		case SLERP:
			merge_slerp(out, x[0], x[1], m->t, rt->n);
			break;
		default:
			merge_tasks(m, rt->name, out, x, base, wf, rt->n,
			    scratch);
			break;
		}
		ckpt_writer_add_tensor(wr, rt->name, rt->ndim, rt->shape, out);
		for (int i = 0; i < m->n; i++)
			ckpt_drop(m->in[i], ts[i]);
		if (bt != NULL)
			ckpt_drop(m->base, bt);
		progress_update(pr, ti + 1, 0, NULL);
	}
	progress_end(pr);
	free(out);
	free(scratch);
	for (int i = 0; i < m->n; i++)
		if (m->ad[i] != NULL)
			free(m->ad[i]->buf);
}

/* Parse "w1,w2,...": exactly n numbers. */
static double *
parse_weights(const char *s, int n)
{
	double *w = xcalloc((size_t)n, sizeof *w);
	char *copy = xstrdup(s), *p = copy, *tok;
	int k = 0;
	while ((tok = strsep(&p, ",")) != NULL) {
		if (k == n)
			pp_usage("--weights: more weights than models (%d)", n);
		w[k++] = pp_parse_num("--weights", tok, -1e30, 1e30);
	}
	if (k != n)
		pp_usage("--weights: %d weights for %d models", k, n);
	free(copy);
	return w;
}

int
main(int argc, char **argv)
{
	enum { O_METHOD = 256, O_WEIGHTS, O_BASE, O_T, O_DENSITY, O_LAMBDA,
	    O_NORM, O_NONORM, O_SEED, O_DTYPE };
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "method", required_argument, NULL, O_METHOD },
		{ "weights", required_argument, NULL, O_WEIGHTS },
		{ "base", required_argument, NULL, O_BASE },
		{ "t", required_argument, NULL, O_T },
		{ "density", required_argument, NULL, O_DENSITY },
		{ "lambda", required_argument, NULL, O_LAMBDA },
		{ "normalize", no_argument, NULL, O_NORM },
		{ "no-normalize", no_argument, NULL, O_NONORM },
		{ "seed", required_argument, NULL, O_SEED },
		{ "dtype", required_argument, NULL, O_DTYPE },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct merge m = { .method = LINEAR, .t = 0.5, .density = -1,
	    .lambda = 1, .normalize = -1 };
	const char *out = NULL, *weights = NULL, *base = NULL;
	const char *dtype = "f32";
	int c, have_t = 0, have_lambda = 0;

	pp_init(argc, argv);
	pp_synopsis = SYNOPSIS;
	while ((c = getopt_long(argc, argv, "o:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'q': m.quiet = 1; break;
		case O_METHOD: {
			size_t i;
			for (i = 0; i < sizeof methods / sizeof methods[0]; i++)
				if (strcmp(optarg, methods[i].name) == 0)
					break;
			if (i == sizeof methods / sizeof methods[0])
				pp_usage("--method: linear, slerp, "
				    "task-arithmetic, ties, dare-linear or "
				    "dare-ties, not \"%s\"", optarg);
			m.method = (enum method)i;
			break;
		}
		case O_WEIGHTS: weights = optarg; break;
		case O_BASE: base = optarg; break;
		case O_T:
			m.t = pp_parse_num("--t", optarg, 0, 1);
			have_t = 1;
			break;
		case O_DENSITY:
			m.density = pp_parse_num("--density", optarg, 0, 1);
			break;
		case O_LAMBDA:
			m.lambda = pp_parse_num("--lambda", optarg, -1e6, 1e6);
			have_lambda = 1;
			break;
		case O_NORM: m.normalize = 1; break;
		case O_NONORM: m.normalize = 0; break;
		case O_SEED:
			m.seed = (uint64_t)pp_parse_int("--seed", optarg, 0,
			    INT64_MAX);
			break;
		case O_DTYPE: dtype = optarg; break;
		case 'h': pp_help();
		default: pp_usage(NULL);
		}
	}
	argc -= optind;
	argv += optind;

	/* What each method needs, and nothing it would ignore. */
	const char *mname = methods[m.method].name;
	if (out == NULL)
		pp_usage("-o OUT is required");
	if (argc < 1)
		pp_usage("no checkpoints to merge");
	if (dtype_parse(dtype) < 0)
		pp_usage("--dtype: f32, bf16 or f16, not \"%s\"", dtype);
	if (m.method == SLERP && (argc != 2 || weights || base))
		pp_usage("slerp: exactly two checkpoints, no --weights or "
		    "--base");
	if (have_t && m.method != SLERP)
		pp_usage("--t: only for slerp");
	if (have_lambda && !methods[m.method].base)
		pp_usage("--lambda: only for methods with --base");
	if (methods[m.method].base && base == NULL)
		pp_usage("%s: --base is required", mname);
	if (!methods[m.method].base && base != NULL)
		pp_usage("%s: --base is not used", mname);
	if (methods[m.method].density && m.density < 0)
		pp_usage("%s: --density is required", mname);
	if (!methods[m.method].density && m.density >= 0)
		pp_usage("%s: --density is not used", mname);
	if (methods[m.method].dare && m.density == 0)
		pp_usage("%s: --density must be above 0", mname);
	if (m.normalize < 0)
		m.normalize = methods[m.method].normalize;

	m.n = argc;
	m.path = (const char **)argv;
	if (weights != NULL)
		m.w = parse_weights(weights, m.n);
	else {
		/* The uniform soup; one each for task vectors. */
		m.w = xcalloc((size_t)m.n, sizeof *m.w);
		for (int i = 0; i < m.n; i++)
			m.w[i] = m.method == LINEAR ? 1.0 / m.n : 1.0;
	}

	double wsum = 0;
	for (int i = 0; i < m.n; i++)
		wsum += m.w[i];
	if (m.method == LINEAR && m.normalize && wsum == 0)
		pp_usage("--weights: they sum to 0 and cannot be normalised");

	m.in = xcalloc((size_t)m.n, sizeof *m.in);
	m.ad = xcalloc((size_t)m.n, sizeof *m.ad);
	for (int i = 0; i < m.n; i++) {
		if (!lora_path_is_adapter(argv[i])) {
			m.in[i] = ckpt_load(argv[i]);
			continue;
		}
		struct adapter *a = m.ad[i] = xcalloc(1, sizeof *a);
		struct model_lora lc;
		char e[512];
		model_src_open(&a->src, argv[i], NULL);
		json_t *ac = ckpt_json(a->src.adapter, "adapter_config.json");
		if (lora_config_from_json(&lc, ac, e, sizeof e) != 0)
			errx(EXIT_DATA, "%s: %s", argv[i], e);
		json_decref(ac);
		a->r = lc.rank;
		a->s = lc.alpha / lc.rank;
		a->st = ckpt_extra(a->src.adapter, "adapter_model.safetensors");
		if (a->st == NULL)
			errx(EXIT_DATA, "%s/adapter_model.safetensors: missing",
			    argv[i]);
		check_adapter(a, argv[i]);
		m.in[i] = a->src.ckpt;
	}
	if (base != NULL) {
		m.base = ckpt_load(base);
		m.ref = m.base;
	} else
		m.ref = m.in[0];
	check_inputs(&m);

	/* The reference's config and tokenizer; no training state. */
	struct ckpt_writer *wr = ckpt_writer_open(out, dtype);
	ckpt_writer_carry(wr, m.ref);
	/* Its config as it is (bytes and all, when the dtype is the one it
	 * says), with torch_dtype saying what is written. */
	json_t *conf = json_deep_copy(ckpt_config(m.ref));
	ckpt_config_set_dtype(conf, (enum dtype)dtype_parse(dtype));
	ckpt_writer_add_json(wr, "config.json", conf);
	json_decref(conf);
	ckpt_writer_plan(wr, m.ref);
	merge_all(&m, wr);
	ckpt_writer_commit(wr);

	for (int i = 0; i < m.n; i++) {
		if (m.ad[i] != NULL) {
			model_src_free(&m.ad[i]->src);
			free(m.ad[i]);
		} else
			ckpt_free(m.in[i]);
	}
	ckpt_free(m.base);
	free(m.ad);
	free(m.in);
	free(m.w);
	return 0;
}
