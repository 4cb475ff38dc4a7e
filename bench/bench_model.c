/*
 * bench_model.c: speed and memory of lib/model/model.c.  One measurement per
 * invocation, printed as key=value lines for bench/bench_model.sh:
 *
 *   bench_model peak           cblas_sgemm GFLOP/s on this machine
 *   bench_model train          forward+backward tokens/s and GFLOP/s on
 *                              dim 256, 4 layers, 4 heads, 2 kv heads,
 *                              ffn 688, vocab 4096, 8 x 128 tokens
 *   bench_model decode DIM     KV-cache decoding tokens/s, context 256,
 *                              one stream and 8 streams in one batch
 *   bench_model memory         peak RSS of a training step against its
 *                              parts (weights, grads, Adam m and v,
 *                              activations)
 */
#include <sys/resource.h>

#include <cblas.h>
#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "util/util.h"

static struct model_config
train_config(void)
{
	struct model_config c = {
		.arch = MODEL_LLAMA, .vocab_size = 4096, .dim = 256,
		.n_layers = 4, .n_heads = 4, .n_kv_heads = 2, .head_dim = 64,
		.hidden_dim = 688, .max_seq_len = 1024, .norm_eps = 1e-5,
		.rope_theta = 10000, .lm_head = 1, .bos_id = 1, .pad_id = -1,
	};
	return c;
}

enum { BATCH = 8, SEQ = 128 };

/* ------------------------------------------------------------------------ */
/* The machine's matmul peak: the best of a few shapes, the training
 * step's own among them. */

static double
sgemm_gflops(int M, int N, int K)
{
	float *a = xmalloc((size_t)M * K * 4), *b = xmalloc((size_t)K * N * 4);
	float *c = xmalloc((size_t)M * N * 4);
	double t0, t, best = 1e30;
	int reps;

	for (size_t i = 0; i < (size_t)M * K; i++)
		a[i] = (float)(i % 13) * 0.01f;
	for (size_t i = 0; i < (size_t)K * N; i++)
		b[i] = (float)(i % 7) * 0.01f;
	reps = 1 + (int)(2e9 / (2.0 * M * N * K));
	for (int trial = 0; trial < 3; trial++) {
		t0 = pp_now();
		for (int r = 0; r < reps; r++)
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M,
			    N, K, 1, a, K, b, K, 0, c, N);
		t = (pp_now() - t0) / reps;
		if (t < best)
			best = t;
	}
	free(a);
	free(b);
	free(c);
	return 2.0 * M * N * K / best / 1e9;
}

static void
bench_peak(void)
{
	int shapes[][3] = { { 1024, 1024, 1024 }, { 2048, 2048, 2048 },
	    { 1024, 688, 256 }, { 1024, 4096, 256 } };
	double best = 0, g;

	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		g = sgemm_gflops(shapes[i][0], shapes[i][1], shapes[i][2]);
		printf("sgemm_%dx%dx%d_gflops=%.1f\n", shapes[i][0],
		    shapes[i][1], shapes[i][2], g);
		if (g > best)
			best = g;
	}
	printf("sgemm_peak_gflops=%.1f\n", best);
}

/* ------------------------------------------------------------------------ */
/* A training step: forward, log-probabilities, backward. */

static void
make_batch(struct model_batch *b, int *len, int *tok, int *tgt, int V)
{
	uint64_t s = 5;

	for (int i = 0; i < BATCH; i++)
		len[i] = SEQ;
	for (int i = 0; i < BATCH * SEQ; i++)
		tok[i] = (int)((uint64_t)(model_rng_normal(&s) * 1e6 + 1e9) % V);
	for (int i = 0; i < BATCH * SEQ; i++)
		tgt[i] = (i + 1) % SEQ == 0 ? -1 : tok[i + 1];
	b->nseq = BATCH;
	b->len = len;
	b->tokens = tok;
	b->targets = tgt;
}

static void
train_step(struct model *m, const struct model_batch *b, float *lp,
    float *dlp, double *tf, double *tb)
{
	double t0 = pp_now(), t1;

	model_forward(m, b, lp);
	t1 = pp_now();
	model_zero_grad(m);
	model_backward(m, dlp, NULL);
	*tf += t1 - t0;
	*tb += pp_now() - t1;
}

static void
bench_train(int iters)
{
	struct model_config cfg = train_config();
	struct model *m = model_new(&cfg);
	int len[BATCH], tok[BATCH * SEQ], tgt[BATCH * SEQ], N = BATCH * SEQ;
	struct model_batch b;
	float *lp = xmalloc(N * 4), *dlp = xmalloc(N * 4);
	double tf = 0, tb = 0, flops, loss = 0, best = 1e30;

	model_init_random(m, 1);
	make_batch(&b, len, tok, tgt, cfg.vocab_size);
	for (int i = 0; i < N; i++)
		dlp[i] = -1.0f / N;
	train_step(m, &b, lp, dlp, &tf, &tb);	/* warm up */
	tf = tb = 0;
	for (int it = 0; it < iters; it++) {
		double f0 = tf, b0 = tb;
		train_step(m, &b, lp, dlp, &tf, &tb);
		if (tf - f0 + tb - b0 < best)
			best = tf - f0 + tb - b0;
	}
	for (int i = 0; i < N; i++)
		loss -= lp[i] / N;
	flops = 3 * model_flops_forward(&cfg, BATCH, len);
	printf("params=%zu\n", m->nparams);
	printf("loss=%.4f\n", loss);
	printf("forward_ms=%.1f\nbackward_ms=%.1f\n", tf / iters * 1e3,
	    tb / iters * 1e3);
	printf("train_tokens_per_s_mean=%.0f\n", N * iters / (tf + tb));
	/* the fastest step: the figure least disturbed by other processes */
	printf("train_tokens_per_s=%.0f\n", N / best);
	printf("train_gflops=%.2f\n", flops / best / 1e9);
	printf("forward_gflops=%.2f\n", flops / 3 * iters / tf / 1e9);
	printf("backward_gflops=%.2f\n", flops * 2 / 3 * iters / tb / 1e9);
	free(lp);
	free(dlp);
	model_free(m);
}

/* ------------------------------------------------------------------------ */
/* Decoding with a KV cache: the llama2.c "stories" shapes. */

static struct model_config
decode_config(int dim)
{
	struct model_config c = {
		.arch = MODEL_LLAMA, .max_seq_len = 256, .norm_eps = 1e-5,
		.rope_theta = 10000, .lm_head = 1, .bos_id = 1, .pad_id = -1,
	};

	switch (dim) {
	case 64:	/* stories260K */
		c.dim = 64; c.n_layers = 5; c.n_heads = 8; c.n_kv_heads = 4;
		c.hidden_dim = 172; c.vocab_size = 512;
		break;
	case 288:	/* stories15M */
		c.dim = 288; c.n_layers = 6; c.n_heads = 6; c.n_kv_heads = 6;
		c.hidden_dim = 768; c.vocab_size = 32000;
		break;
	case 512:	/* stories42M */
		c.dim = 512; c.n_layers = 8; c.n_heads = 8; c.n_kv_heads = 8;
		c.hidden_dim = 1376; c.vocab_size = 32000;
		break;
	default:
		errx(2, "decode: dim must be 64, 288 or 512");
	}
	c.head_dim = c.dim / c.n_heads;
	c.tie_embeddings = 1;
	return c;
}

static void
bench_decode(int dim)
{
	struct model_config cfg = decode_config(dim);
	struct model *m = model_new(&cfg);
	enum { CTX = 256, B = 8 };
	struct kv_cache *kv[B], *prompt;
	int one[B], tok[B], first = 1;
	float *logits = xmalloc((size_t)B * cfg.vocab_size * 4);
	double t0, t1, t8;

	model_init_random(m, 2);
	for (int i = 0; i < B; i++) {
		kv[i] = kv_cache_new(&cfg, CTX);
		one[i] = 1;
	}
	prompt = kv_cache_new(&cfg, CTX);
	/* warm up */
	model_extend(m, kv, 1, one, &first, logits);
	kv_cache_reset(kv[0]);

	/* The best of three runs of each: the figure least disturbed by
	 * other processes. */
	t1 = t8 = 1e30;
	for (int rep = 0; rep < 3; rep++) {
		double t;

		/* one stream: positions 0 .. 255 */
		kv_cache_reset(kv[0]);
		t0 = pp_now();
		for (int p = 0; p < CTX; p++) {
			tok[0] = (p * 7 + 1) % cfg.vocab_size;
			model_extend(m, kv, 1, one, tok, logits);
		}
		t = pp_now() - t0;
		t1 = t < t1 ? t : t1;

		/* eight streams: a one-token prompt forked eight ways, then
		 * 255 steps of B = 8 */
		kv_cache_reset(prompt);
		t0 = pp_now();
		model_extend(m, &prompt, 1, one, &first, logits);
		for (int i = 0; i < B; i++)
			kv_cache_copy(kv[i], prompt);
		for (int p = 1; p < CTX; p++) {
			for (int i = 0; i < B; i++)
				tok[i] = (p * 7 + i * 3 + 1) % cfg.vocab_size;
			model_extend(m, kv, B, one, tok, logits);
		}
		t = pp_now() - t0;
		t8 = t < t8 ? t : t8;
	}
	/* memory traffic: weights per step plus the cache up to each
	 * position, averaged over the context */
	{
		double bytes1 = 0, bytes8 = 0;
		int pos[B];
		for (int p = 0; p < CTX; p++) {
			for (int i = 0; i < B; i++)
				pos[i] = p;
			bytes1 += model_bytes_decode(&cfg, 1, pos);
			bytes8 += model_bytes_decode(&cfg, B, pos);
		}
		printf("decode%d_1stream_gbytes_per_s=%.2f\n", dim,
		    bytes1 / t1 / 1e9);
		printf("decode%d_8stream_gbytes_per_s=%.2f\n", dim,
		    bytes8 / t8 / 1e9);
	}
	printf("decode%d_params=%zu\n", dim, m->nparams);
	printf("decode%d_1stream_tokens_per_s=%.0f\n", dim, CTX / t1);
	printf("decode%d_8stream_tokens_per_s=%.0f\n", dim, B * CTX / t8);
	for (int i = 0; i < B; i++)
		kv_cache_free(kv[i]);
	kv_cache_free(prompt);
	free(logits);
	model_free(m);
}

/* ------------------------------------------------------------------------ */
/* Memory: peak RSS against weights, grads, Adam moments, activations. */

static double
rss_mib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss / 1024.0;	/* Linux: KiB */
}

static void
bench_memory(void)
{
	struct model_config cfg = train_config();
	int len[BATCH], tok[BATCH * SEQ], tgt[BATCH * SEQ], N = BATCH * SEQ;
	struct model_batch b;
	struct model *m;
	float *lp = xmalloc(N * 4), *dlp = xmalloc(N * 4), *adam;
	double base, tf = 0, tb = 0, P, acts, mib = 1024.0 * 1024;

	/* the process before the model: libraries, OpenBLAS buffers */
	{
		double g = sgemm_gflops(1024, 688, 256);
		(void)g;
	}
	base = rss_mib();
	m = model_new(&cfg);
	model_init_random(m, 1);
	P = m->nparams;
	adam = xcalloc(2 * m->nparams, sizeof(float));	/* m and v */
	for (size_t i = 0; i < 2 * m->nparams; i++)
		adam[i] = 0.5f;
	make_batch(&b, len, tok, tgt, cfg.vocab_size);
	for (int i = 0; i < N; i++)
		dlp[i] = -1.0f / N;
	train_step(m, &b, lp, dlp, &tf, &tb);
	acts = model_act_bytes(&cfg, BATCH, len, 0);
	printf("rss_base_mib=%.1f\n", base);
	printf("rss_peak_mib=%.1f\n", rss_mib());
	printf("weights_mib=%.1f\ngrads_mib=%.1f\nadam_mib=%.1f\n"
	    "activations_mib=%.1f\n", P * 4 / mib, P * 4 / mib, P * 8 / mib,
	    acts / mib);
	printf("parts_mib=%.1f\n", (P * 16 + acts) / mib);
	printf("rss_over_parts=%.3f\n", (rss_mib() - base) /
	    ((P * 16 + acts) / mib));
	free(adam);
	free(lp);
	free(dlp);
	model_free(m);
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		errx(2, "usage: bench_model peak | train [iters] | decode dim | "
		    "memory");
	if (strcmp(argv[1], "peak") == 0)
		bench_peak();
	else if (strcmp(argv[1], "train") == 0)
		bench_train(argc > 2 ? atoi(argv[2]) : 5);
	else if (strcmp(argv[1], "decode") == 0 && argc > 2)
		bench_decode(atoi(argv[2]));
	else if (strcmp(argv[1], "memory") == 0)
		bench_memory();
	else
		errx(2, "unknown mode %s", argv[1]);
	return 0;
}
