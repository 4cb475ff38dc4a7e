/*
 * unit_model_weights: frozen matrices held in bf16 and f16 (model_hold,
 * model_load).  The reference everywhere is the same model with those
 * matrices rounded to the 16-bit type and held in fp32: the operations
 * widen inside and sum in fp32, so the two must agree, to the bit where
 * the same kernels run on the same values (backend_cpu's sgemm slabs,
 * backend_cpu_decode's sums, with and without AVX2), within float
 * rounding otherwise.  Checked: training forward and the backward through
 * frozen 16-bit matrices (a trainable bias beside a frozen weight, q/k/v
 * held differently), prefill and decoding steps of a batch, saving
 * (widened exactly), a bf16 checkpoint used in place (its mapping kept
 * alive after ckpt_free), the layout and the fingerprint.
 */
#include "config.h"

#include <err.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "checkpoints/checkpoint.h"
#include "model/model.h"
#include "model/model_ckpt.h"
#include "tensors/tensor.h"
#include "util/util.h"
#include "check.h"


/* max |a - b| / (1 + max |b|) */
static double
err_rel(const float *a, const float *b, size_t n)
{
	double e = 0, s = 0;

	for (size_t i = 0; i < n; i++) {
		if (fabs((double)a[i] - b[i]) > e)
			e = fabs((double)a[i] - b[i]);
		if (fabs(b[i]) > s)
			s = fabs(b[i]);
	}
	return e / (1 + s);
}

static int
bits_equal(const float *a, const float *b, size_t n)
{
	return memcmp(a, b, n * sizeof(float)) == 0;
}

/*
 * Shapes big enough that backend_cpu cuts products into sgemm slabs
 * (more than 128 outputs, and more rows than outputs for some), and odd
 * widths so the decoding kernels' tails run.
 */
static struct model_config
config(const char *arch, int tie)
{
	struct model_config cfg;
	char e[256];
	json_t *j = json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, "
	    "s:f, s:f, s:b, s:s, s:b, s:i, s:i}",
	    "architectures", strcmp(arch, "qwen2") == 0 ? "Qwen2ForCausalLM" :
	    "LlamaForCausalLM", "model_type", arch, "vocab_size", 301,
	    "hidden_size", 72, "intermediate_size", 203, "num_hidden_layers",
	    2, "num_attention_heads", 6, "num_key_value_heads", 2,
	    "max_position_embeddings", 128, "rms_norm_eps", 1e-6,
	    "rope_theta", 10000.0, "tie_word_embeddings", tie, "hidden_act",
	    "silu", "use_sliding_window", 0, "bos_token_id", 1,
	    "eos_token_id", 2);

	if (j == NULL || model_config_from_json(&cfg, j, e, sizeof(e)) != 0)
		errx(1, "config %s: %s", arch, j == NULL ? "json_pack" : e);
	json_decref(j);
	return cfg;
}

static float
round16(float x, int dt)
{
	return dt == DT_BF16 ? bf16_to_f32(f32_to_bf16(x)) :
	    f16_to_f32(f32_to_f16(x));
}

/* Two copies of one random model; in b the matrices are rounded to dt
 * (what a model holding them in dt computes with), still fp32. */
static void
pair(const struct model_config *cfg, int dt, struct model **a,
    struct model **b)
{
	*a = model_new(cfg);
	*b = model_new(cfg);
	model_init_normal(*a, 7, 0.2, 0.1);
	memcpy((*b)->params, (*a)->params, (*a)->nparams * sizeof(float));
	for (int i = 0; i < (*b)->ntensors; i++) {
		const struct model_tensor *t = &(*b)->tensors[i];
		float *p = (*b)->params + t->offset;
		if (model_tensor_holdable(t))
			for (size_t k = 0; k < t->n; k++)
				p[k] = round16(p[k], dt);
	}
}

/* A packed batch of three sequences. */
#define NSEQ 3
static const int lens[NSEQ] = { 37, 5, 22 };

static void
batch(int *tok, int *tgt, int N, int V)
{
	uint64_t st = 11;

	for (int n = 0; n < N; n++)
		tok[n] = (int)((fabs(model_rng_normal(&st)) * 97)) % V;
	for (int n = 0; n < N; n++)
		tgt[n] = n + 1 < N ? tok[n + 1] : -1;
}

static int
freeze_some(const struct model_tensor *t, void *arg)
{
	(void)arg;
	/* frozen: layer 0's q weight (its bias trains), k and up; the
	 * embedding; trainable: the rest */
	return !(fnmatch("model.layers.0.self_attn.q_proj.weight", t->name,
	    0) == 0 || fnmatch("model.layers.*.self_attn.k_proj.weight",
	    t->name, 0) == 0 || fnmatch("model.layers.*.mlp.up_proj.weight",
	    t->name, 0) == 0 || strcmp(t->name, "model.embed_tokens.weight") ==
	    0);
}

static int
freeze_all(const struct model_tensor *t, void *arg)
{
	(void)t;
	(void)arg;
	return 0;
}

/* Training forward and backward: held vs rounded-in-fp32. */
static void
test_train(const char *arch, int tie, int dt)
{
	struct model_config cfg = config(arch, tie);
	struct model *a, *b;
	int N = lens[0] + lens[1] + lens[2], V = cfg.vocab_size;
	int *tok = xcalloc(N, sizeof(int)), *tgt = xcalloc(N, sizeof(int));
	float *la = xcalloc(N, sizeof(float)), *lb = xcalloc(N, sizeof(float));
	float *d = xcalloc(N, sizeof(float));
	struct model_batch bt = { NSEQ, lens, tok, tgt };
	size_t full;

	pair(&cfg, dt, &a, &b);
	batch(tok, tgt, N, V);
	full = a->nparams;

	/* all frozen, matrices in 16 bits: forward only */
	model_set_trainable(a, freeze_all, NULL);
	model_hold(a, dt);
	CHECKF(a->ntrain == 0 && a->nparams < full / 10,
	    "%s: held: %zu of %zu floats in params", arch, a->nparams, full);
	for (int i = 0; i < a->ntensors; i++)
		CHECKF(a->tensors[i].dtype == (model_tensor_holdable(
		    &a->tensors[i]) ? dt : DT_F32) && (a->tensors[i].dtype ==
		    DT_F32) == (a->tensors[i].half == NULL),
		    "%s: %s held as %d", arch, a->tensors[i].name,
		    a->tensors[i].dtype);
	model_forward(a, &bt, la);
	model_forward(b, &bt, lb);
	CHECKF(bits_equal(la, lb, N), "%s %s: forward logprobs differ: %g",
	    arch, dtype_name(dt), err_rel(la, lb, N));

	/* some frozen, held in 16 bits; the rest trainable fp32 */
	model_set_trainable(a, freeze_some, NULL);
	model_hold(a, dt);
	model_set_trainable(b, freeze_some, NULL);
	CHECKF(a->ntrain == b->ntrain && a->nparams < b->nparams,
	    "%s: trainable %zu/%zu, params %zu/%zu", arch, a->ntrain,
	    b->ntrain, a->nparams, b->nparams);
	CHECKF(bits_equal(a->params, b->params, a->ntrain),
	    "%s: trainable tensors changed by model_hold", arch);
	model_zero_grad(a);
	model_zero_grad(b);
	model_forward(a, &bt, la);
	model_forward(b, &bt, lb);
	CHECKF(bits_equal(la, lb, N), "%s %s: forward (some frozen): %g", arch,
	    dtype_name(dt), err_rel(la, lb, N));
	for (int n = 0; n < N; n++)
		d[n] = tgt[n] >= 0 ? -1.0f / N : 0;
	model_backward(a, d, NULL);
	model_backward(b, d, NULL);
	/* dx through a 16-bit weight: backend_cpu widens B's columns into
	 * panels of their own stride, so sums may round otherwise */
	CHECKF(err_rel(a->grads, b->grads, a->ntrain) < 1e-5,
	    "%s %s: gradients differ: %g", arch, dtype_name(dt),
	    err_rel(a->grads, b->grads, a->ntrain));

	/* widened back: the rounded values, in fp32 */
	model_hold(a, DT_F32);
	for (int i = 0; i < a->ntensors; i++) {
		const struct model_tensor *ta = &a->tensors[i];
		const struct model_tensor *tb = model_tensor(b, ta->name);
		CHECKF(ta->dtype == DT_F32 && bits_equal(a->params + ta->offset,
		    b->params + tb->offset, ta->n), "%s: %s widened", arch,
		    ta->name);
	}
	free(tok);
	free(tgt);
	free(la);
	free(lb);
	free(d);
	model_free(a);
	model_free(b);
}

/* Prefill (backend_cpu) then decoding steps (backend_cpu_decode) of B
 * sequences, AVX2 or not: the logits of every step, bit for bit. */
static void
test_decode(const char *arch, int tie, int dt, int avx2)
{
	struct model_config cfg = config(arch, tie);
	struct model *a, *b;
	enum { B = 5, STEPS = 4 };
	int V = cfg.vocab_size, plen[B] = { 9, 1, 17, 3, 30 }, N = 0;
	struct kv_cache *ka[B], *kb[B];
	float *ga = xcalloc((size_t)B * V, sizeof(float));
	float *gb = xcalloc((size_t)B * V, sizeof(float));
	int tok[64], one[B];
	void *ca, *cb;

	if (!avx2)
		setenv("PREFPIPE_NO_AVX2", "1", 1);
	pair(&cfg, dt, &a, &b);
	model_set_trainable(a, freeze_all, NULL);
	model_hold(a, dt);
	ca = backend_cpu_decode.ctx_new();
	cb = backend_cpu_decode.ctx_new();
	for (int i = 0; i < B; i++) {
		ka[i] = kv_cache_new(&cfg, 64);
		kb[i] = kv_cache_new(&cfg, 64);
		N += plen[i];
	}
	for (int n = 0; n < N; n++)
		tok[n] = (n * 37 + 5) % V;
	/* the prompts in one prefill pass */
	model_extend(a, ka, B, plen, tok, ga);
	model_extend(b, kb, B, plen, tok, gb);
	CHECKF(bits_equal(ga, gb, (size_t)B * V), "%s %s: prefill: %g", arch,
	    dtype_name(dt), err_rel(ga, gb, (size_t)B * V));
	for (int s = 0; s < STEPS; s++) {
		for (int i = 0; i < B; i++) {
			one[i] = 1;
			tok[i] = (s * 13 + i * 7 + 3) % V;
		}
		model_extend_backend(a, &backend_cpu_decode, ca, ka, B, one,
		    tok, ga);
		model_extend_backend(b, &backend_cpu_decode, cb, kb, B, one,
		    tok, gb);
		CHECKF(bits_equal(ga, gb, (size_t)B * V), "%s %s avx2=%d: "
		    "decoding step %d: %g", arch, dtype_name(dt), avx2, s,
		    err_rel(ga, gb, (size_t)B * V));
	}
	for (int i = 0; i < B; i++) {
		kv_cache_free(ka[i]);
		kv_cache_free(kb[i]);
	}
	backend_cpu_decode.ctx_free(ca);
	backend_cpu_decode.ctx_free(cb);
	unsetenv("PREFPIPE_NO_AVX2");
	free(ga);
	free(gb);
	model_free(a);
	model_free(b);
}

static void
save(const struct model *m, const char *path, const char *dtype)
{
	struct ckpt_writer *w = ckpt_writer_open(path, dtype);

	model_save(m, w);
	ckpt_writer_commit(w);
}

/*
 * Checkpoints: a bf16 one loaded with auto is used in place and outlives
 * ckpt_free; --weights bf16 on an fp32 one rounds as convert does; a
 * held model saves its values exactly; f32 loads all of it in fp32.
 */
static void
test_ckpt(void)
{
	struct model_config cfg = config("qwen2", 1);
	struct model *a, *b, *bb, *h, *h2, *f;
	char dir[] = "/tmp/prefpipe-weights.XXXXXX", p32[4096], p16[4096];
	char cmd[4200];
	int N = lens[0] + lens[1] + lens[2];
	int *tok = xcalloc(N, sizeof(int)), *tgt = xcalloc(N, sizeof(int));
	float *lh = xcalloc(N, sizeof(float)), *lb = xcalloc(N, sizeof(float));
	float *lbb = xcalloc(N, sizeof(float));
	struct model_batch bt = { NSEQ, lens, tok, tgt };
	struct model_load_opts lo;
	struct ckpt *c;
	int inplace = 0, holdable = 0;

	if (mkdtemp(dir) == NULL)
		err(1, "mkdtemp");
	snprintf(p32, sizeof(p32), "%s/f32", dir);
	snprintf(p16, sizeof(p16), "%s/bf16", dir);
	pair(&cfg, DT_BF16, &a, &b);
	batch(tok, tgt, N, cfg.vocab_size);
	save(a, p32, "f32");
	save(a, p16, "bf16");
	model_forward(b, &bt, lb);
	/* a bf16 checkpoint rounds every tensor, norms and biases too */
	bb = model_new(&cfg);
	for (size_t k = 0; k < a->nparams; k++)
		bb->params[k] = round16(a->params[k], DT_BF16);
	model_forward(bb, &bt, lbb);

	/* a bf16 checkpoint, auto: its matrices where they lie */
	c = ckpt_load(p16);
	lo = (struct model_load_opts){ MODEL_WEIGHTS_AUTO, MODEL_COMPUTE_F32 };
	h = model_from_ckpt_opts(c, &lo);
	for (int i = 0; i < h->ntensors; i++) {
		const struct model_tensor *t = &h->tensors[i];
		const struct tensor *ct = model_ckpt_tensor(c, &cfg, t->name);
		if (!model_tensor_holdable(t))
			continue;
		holdable++;
		inplace += t->dtype == DT_BF16 && (const void *)t->half ==
		    ct->raw;
	}
	CHECKF(holdable > 0 && inplace == holdable, "bf16 checkpoint: %d of "
	    "%d matrices in place", inplace, holdable);
	CHECKF(model_load_dtype(c, &lo) == DT_BF16, "auto of a bf16 "
	    "checkpoint is bf16");
	ckpt_free(c);		/* the model still holds the mapping */
	model_forward(h, &bt, lh);
	CHECKF(bits_equal(lh, lbb, N), "bf16 checkpoint in place: %g",
	    err_rel(lh, lbb, N));

	/* --weights bf16 on the fp32 checkpoint: rounded the same way */
	c = ckpt_load(p32);
	lo.weights = DT_BF16;
	h2 = model_from_ckpt_opts(c, &lo);
	lo.weights = MODEL_WEIGHTS_AUTO;
	CHECKF(model_load_dtype(c, &lo) == DT_F32, "auto of an fp32 "
	    "checkpoint is f32");
	lo.weights = DT_F32;
	f = model_from_ckpt_opts(c, &lo);
	ckpt_free(c);
	CHECKF(f->nparams == a->nparams && bits_equal(f->params, a->params,
	    a->nparams) && model_params_hash(f) == model_params_hash(a),
	    "--weights f32: the fp32 checkpoint as it is");
	model_hold(f, DT_BF16);		/* model_load froze every tensor */
	CHECKF(model_params_hash(h2) == model_params_hash(f) &&
	    f->nparams == h2->nparams, "--weights bf16 = model_hold");
	CHECKF(model_params_hash(h) != model_params_hash(b),
	    "the fingerprint covers the stored bytes");
	model_forward(h2, &bt, lh);
	CHECKF(bits_equal(lh, lb, N), "--weights bf16: %g", err_rel(lh, lb,
	    N));

	/* saved in fp32: the held values widened, exactly */
	snprintf(p32, sizeof(p32), "%s/again", dir);
	save(h, p32, "f32");
	c = ckpt_load(p32);
	model_free(f);
	f = model_from_ckpt(c);
	ckpt_free(c);
	CHECKF(f->nparams == bb->nparams && bits_equal(f->params, bb->params,
	    bb->nparams), "a held model saved in fp32");

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		warnx("could not remove %s", dir);
	free(tok);
	free(tgt);
	free(lh);
	free(lb);
	free(lbb);
	model_free(a);
	model_free(b);
	model_free(bb);
	model_free(h);
	model_free(h2);
	model_free(f);
}

/*
 * --compute bf16 (DT_XBF16): a product with a bf16 weight is the same
 * product, to the bit, of the weight and x rounded to bf16 first, in
 * both backends (the few-rows and the gemm paths, and the products that
 * share x), and the backward product ignores it.  Then a model: its
 * logits under model_set_compute(BF16) are those of bf16 arithmetic, near
 * fp32's, and model_set_compute(F32) gives fp32's bits back.
 */
static void
test_compute_bf16(void)
{
	enum { I = 72, O = 40, NMAX = 40 };
	static const int Ns[] = { 1, 5, 40 };
	float x[NMAX * I], xr[NMAX * I], o1[NMAX * O], o2[NMAX * O];
	float bias[O], *out1[2], *out2[2];
	uint16_t w[O * I];
	const uint16_t *ws[2] = { w, w + (O / 2) * I };
	const float *bs[2] = { bias, bias + O / 2 };
	const int Os[2] = { O / 2, O / 2 };
	const struct backend *be[2] = { &backend_cpu, &backend_cpu_decode };

	for (int i = 0; i < NMAX * I; i++) {
		x[i] = sinf(0.37f * (float)i) * 1.7f;
		xr[i] = bf16_to_f32(f32_to_bf16(x[i]));
	}
	for (int i = 0; i < O * I; i++)
		w[i] = f32_to_bf16(cosf(0.11f * (float)i) * 0.3f);
	for (int i = 0; i < O; i++)
		bias[i] = 0.01f * (float)i;
	/* the portable kernels (a CPU's AVX512_BF16 sums in another order:
	 * below) */
	setenv("PREFPIPE_NO_AVX512BF16", "1", 1);
	for (int b = 0; b < 2; b++)
		for (size_t k = 0; k < sizeof Ns / sizeof *Ns; k++) {
			int N = Ns[k];
			void *ctx = be[b]->ctx_new();
			be[b]->matmul_h(ctx, o1, x, w, DT_BF16 | DT_XBF16, bias,
			    NULL, N, I, O);
			be[b]->matmul_h(ctx, o2, xr, w, DT_BF16, bias, NULL, N,
			    I, O);
			CHECKF(bits_equal(o1, o2, (size_t)N * O), "backend %d "
			    "N=%d: --compute bf16 is not x rounded: %g", b, N,
			    err_rel(o1, o2, (size_t)N * O));
			for (int j = 0; j < 2; j++) {
				out1[j] = o1 + j * (size_t)N * (O / 2);
				out2[j] = o2 + j * (size_t)N * (O / 2);
			}
			be[b]->matmul_shared_h(ctx, 2, out1, x, ws,
			    DT_BF16 | DT_XBF16, bs, Os, N, I);
			be[b]->matmul_shared_h(ctx, 2, out2, xr, ws, DT_BF16,
			    bs, Os, N, I);
			CHECKF(bits_equal(o1, o2, (size_t)N * O), "backend %d "
			    "N=%d: shared products under --compute bf16", b,
			    N);
			be[b]->ctx_free(ctx);
		}
	unsetenv("PREFPIPE_NO_AVX512BF16");

	/* vdpbf16ps, where the CPU has it: the same products (exact), summed
	 * in another order, so equal within fp32 rounding of the sums. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
	if (__builtin_cpu_supports("avx512bf16") &&
	    __builtin_cpu_supports("avx512bw")) {
		for (size_t k = 0; k < sizeof Ns / sizeof *Ns; k++) {
			int N = Ns[k];
			void *ctx = backend_cpu_decode.ctx_new();
			backend_cpu_decode.matmul_h(ctx, o1, x, w,
			    DT_BF16 | DT_XBF16, bias, NULL, N, I, O);
			backend_cpu_decode.matmul_h(ctx, o2, xr, w, DT_BF16,
			    bias, NULL, N, I, O);
			CHECKF(err_rel(o1, o2, (size_t)N * O) < 1e-5,
			    "AVX512_BF16, N=%d: %g from the portable path", N,
			    err_rel(o1, o2, (size_t)N * O));
			/* each row alone gives its bits in the batch: the
			 * kernel's blocks of rows change no sum */
			for (int b = 0; b < N; b++) {
				float one[O];
				backend_cpu_decode.matmul_h(ctx, one,
				    x + (size_t)b * I, w, DT_BF16 | DT_XBF16,
				    bias, NULL, 1, I, O);
				CHECKF(bits_equal(one, o1 + (size_t)b * O, O),
				    "AVX512_BF16, N=%d: row %d alone differs",
				    N, b);
			}
			/* and 37 outputs (blocks of four, then one at a
			 * time) the first 37 of the 40 */
			backend_cpu_decode.matmul_h(ctx, o2, x, w,
			    DT_BF16 | DT_XBF16, bias, NULL, N, I, O - 3);
			for (int b = 0; b < N; b++)
				CHECKF(bits_equal(o2 + (size_t)b * (O - 3),
				    o1 + (size_t)b * O, O - 3), "AVX512_BF16, "
				    "N=%d: row %d of 37 outputs", N, b);
			backend_cpu_decode.ctx_free(ctx);
		}
	} else
#endif
		printf("--compute bf16: no AVX512_BF16 here, its kernel not "
		    "run\n");

	/* dx = dout w: the flag changes nothing */
	backend_cpu.matmul_backward_h(NULL, o1, x, w, DT_BF16 | DT_XBF16, 5,
	    O, I, 0);
	backend_cpu.matmul_backward_h(NULL, o2, x, w, DT_BF16, 5, O, I, 0);
	CHECKF(bits_equal(o1, o2, 5 * O), "backward under --compute bf16");

	/* A model: bf16 arithmetic near fp32's (this model's weights are
	 * large, its logits spread: 0.05 seen), then fp32's again. */
	struct model_config cfg = config("qwen2", 1);
	struct model *a, *b;
	int V = cfg.vocab_size, N = lens[0] + lens[1] + lens[2];
	int *tok = xcalloc(N, sizeof(int)), *tgt = xcalloc(N, sizeof(int));
	float *la = xcalloc(N, sizeof(float)), *lb = xcalloc(N, sizeof(float));
	float *lc = xcalloc(N, sizeof(float));
	struct model_batch bt = { NSEQ, lens, tok, tgt };
	double e = 0;

	pair(&cfg, DT_BF16, &a, &b);
	model_set_trainable(a, freeze_all, NULL);
	model_hold(a, DT_BF16);
	batch(tok, tgt, N, V);
	model_set_compute(a, MODEL_COMPUTE_BF16);
	model_forward(a, &bt, la);
	model_forward(b, &bt, lb);
	for (int i = 0; i < N; i++)
		e = fmax(e, fabs((double)la[i] - lb[i]));
	printf("--compute bf16: token log-probs within %.3g of fp32's\n", e);
	CHECKF(!bits_equal(la, lb, N) && e < 0.2,
	    "--compute bf16: log-probs %g from fp32's", e);
	model_set_compute(a, MODEL_COMPUTE_F32);
	model_forward(a, &bt, lc);
	CHECKF(bits_equal(lc, lb, N), "--compute f32 after bf16");
	free(tok);
	free(tgt);
	free(la);
	free(lb);
	free(lc);
	model_free(a);
	model_free(b);
}

/*
 * The AVX-512 products (eight and four rows by four outputs a kernel) give
 * the AVX2 kernels' bits, for every weight type, batch size, and tail of
 * rows, outputs and inputs: a sample does not depend on the CPU's vector
 * width.  Only where the CPU has AVX-512.
 */
static void
test_avx512_same(void)
{
	enum { IMAX = 77, OMAX = 43, NMAX = 13 };
	static const int Ns[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13 };
	static const int Is[] = { 72, 77 };
	static const int Os[] = { 40, 43 }, dts[] = { DT_F32, DT_BF16,
	    DT_F16 };
	float x[NMAX * IMAX], wf[OMAX * IMAX], bias[OMAX];
	uint16_t wh[OMAX * IMAX];
	int cases = 0;

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
	if (!__builtin_cpu_supports("avx512f") ||
	    !__builtin_cpu_supports("avx512bw") ||
	    !__builtin_cpu_supports("f16c"))
#endif
	{
		printf("AVX-512 products: no AVX-512 here, not run\n");
		return;
	}
	for (int i = 0; i < NMAX * IMAX; i++)
		x[i] = sinf(0.37f * (float)i) * 1.7f;
	for (int i = 0; i < OMAX; i++)
		bias[i] = 0.01f * (float)i;
	for (size_t d = 0; d < sizeof dts / sizeof *dts; d++)
		for (size_t a = 0; a < sizeof Is / sizeof *Is; a++)
			for (size_t c = 0; c < sizeof Os / sizeof *Os; c++)
				for (size_t k = 0; k < sizeof Ns / sizeof *Ns;
				    k++) {
		int dt = dts[d], I = Is[a], O = Os[c], N = Ns[k];
		/* exactly N rows: the sanitizers' build sees a kernel that
		 * reads or writes a row past the batch */
		float *xn = xcalloc((size_t)N * I, sizeof(float));
		float *o1 = xcalloc((size_t)N * O, sizeof(float));
		float *o2 = xcalloc((size_t)N * O, sizeof(float));
		float *out[2] = { o2, o1 };
		memcpy(xn, x, (size_t)N * I * sizeof(float));
		for (int i = 0; i < O * I; i++) {
			wf[i] = cosf(0.11f * (float)i) * 0.3f;
			wh[i] = dt == DT_BF16 ? f32_to_bf16(wf[i]) :
			    f32_to_f16(wf[i]);
		}
		/* o2 on the AVX2 kernels, then o1 on AVX-512's */
		for (int v = 0; v < 2; v++) {
			if (v == 0)
				setenv("PREFPIPE_NO_AVX512", "1", 1);
			else
				unsetenv("PREFPIPE_NO_AVX512");
			void *ctx = backend_cpu_decode.ctx_new();
			if (dt == DT_F32)
				backend_cpu_decode.matmul(ctx, out[v], xn, wf,
				    bias, NULL, N, I, O);
			else
				backend_cpu_decode.matmul_h(ctx, out[v], xn,
				    wh, dt, bias, NULL, N, I, O);
			backend_cpu_decode.ctx_free(ctx);
		}
		CHECKF(bits_equal(o1, o2, (size_t)N * O), "AVX-512 %s N=%d "
		    "I=%d O=%d: %g from AVX2's", dtype_name(dt), N, I, O,
		    err_rel(o1, o2, (size_t)N * O));
		free(xn);
		free(o1);
		free(o2);
		cases++;
				}
	printf("AVX-512 products: %d cases, the AVX2 kernels' bits\n",
	    cases);
}

int
main(void)
{
	int w;

	CHECKF(model_weights_parse("BF16", &w) == 0 && w == DT_BF16 &&
	    model_weights_parse("auto", &w) == 0 && w == MODEL_WEIGHTS_AUTO &&
	    model_weights_parse("f32", &w) == 0 && w == DT_F32 &&
	    model_weights_parse("fp8", &w) != 0, "model_weights_parse");
	test_train("qwen2", 0, DT_BF16);
	test_train("llama", 1, DT_BF16);
	test_train("qwen2", 1, DT_F16);
	for (int avx2 = 1; avx2 >= 0; avx2--) {
		test_decode("qwen2", 0, DT_BF16, avx2);
		test_decode("llama", 1, DT_BF16, avx2);
		test_decode("qwen2", 1, DT_F16, avx2);
	}
	test_ckpt();
	test_compute_bf16();
	test_avx512_same();
	return check_status();
}
