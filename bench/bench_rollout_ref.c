/*
 * bench_rollout_ref: the yardstick for rollout's single-stream speed.  A
 * plain decoder of one sequence, in the manner of llama2.c's run.c: a
 * matrix-vector product per weight matrix, rows across the OpenMP
 * threads, the inner loop compiled for AVX2 with fast-math as llama2.c's
 * "runomp" build (-Ofast -march=native) compiles it, a KV cache, and
 * sampling from the softmax at temperature 1.
 *
 *   bench_rollout_ref CKPT STEPS
 *
 * Prints "ref: STEPS tokens in S s, R tokens/s (C ms CPU a token)" for
 * the decoding steps alone (the model load is not timed), then
 * "read: B GB/s (W MB of weights)": how fast the threads read memory, in
 * passes over 256 MiB (more than any cache holds), best of five.  A
 * single stream reads every weight once a token, from memory when the
 * weights are larger than the caches, so B / W tokens/s bounds any
 * decoder of the model on this machine.
 *
 * It is a second decoder on purpose, kept out of lib/ and sharing none of
 * the block (lib/model/model_impl.h) or its backends: a yardstick that
 * ran the library's own block would measure the library against itself.
 * Only the loading (model_from_ckpt) and the tensor names are shared.
 * It follows llama2.c, so it knows the Llama/Qwen2 block alone.
 */
#include "config.h"

#include <err.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoints/checkpoint.h"
#include "model/model.h"
#include "util/util.h"

static struct model *m;

static double
cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const float *
W(const char *fmt, int l)
{
	char name[96];
	snprintf(name, sizeof name, fmt, l);
	const struct model_tensor *t = model_tensor(m, name);
	return t ? model_param(m, t) : NULL;
}

/* xout (d) = w (d, n) x (n) */
__attribute__((target("avx2,fma"), optimize("O3", "fast-math")))
static void
matmul_fast(float *xout, const float *x, const float *w, int n, int d)
{
#pragma omp parallel for
	for (int i = 0; i < d; i++) {
		const float *wi = w + (size_t)i * n;
		float val = 0;
		for (int j = 0; j < n; j++)
			val += wi[j] * x[j];
		xout[i] = val;
	}
}

static void
matmul_plain(float *xout, const float *x, const float *w, int n, int d)
{
#pragma omp parallel for
	for (int i = 0; i < d; i++) {
		const float *wi = w + (size_t)i * n;
		float val = 0;
		for (int j = 0; j < n; j++)
			val += wi[j] * x[j];
		xout[i] = val;
	}
}

static int fast;

static void
matmul(float *xout, const float *x, const float *w, const float *b, int n,
    int d)
{
	if (fast)
		matmul_fast(xout, x, w, n, d);
	else
		matmul_plain(xout, x, w, n, d);
	if (b)
		for (int i = 0; i < d; i++)
			xout[i] += b[i];
}

static void
rmsnorm(float *o, const float *x, const float *w, int n, float eps)
{
	float ss = 0;
	for (int j = 0; j < n; j++)
		ss += x[j] * x[j];
	ss = 1.0f / sqrtf(ss / n + eps);
	for (int j = 0; j < n; j++)
		o[j] = w[j] * (ss * x[j]);
}

/* Bytes a second the threads read n floats at, best of five passes. */
__attribute__((target("avx2"), optimize("O3", "fast-math")))
static double
read_rate_avx2(const float *p, size_t n)
{
	double best = 0;
	for (int r = 0; r < 5; r++) {
		float sum = 0;
		double t0 = pp_now();
#pragma omp parallel for reduction(+:sum)
		for (size_t i = 0; i < n; i++)
			sum += p[i];
		double t = pp_now() - t0;
		if (sum == 12345.678f)		/* keep the loop */
			putchar(' ');
		if (n * sizeof(float) / t > best)
			best = n * sizeof(float) / t;
	}
	return best;
}

int
main(int argc, char **argv)
{
	if (argc != 3)
		errx(2, "usage: bench_rollout_ref CKPT STEPS");
	struct ckpt *ck = ckpt_load(argv[1]);
	m = model_from_ckpt(ck);
	const struct model_config *c = &m->cfg;
	int steps = atoi(argv[2]);
	int C = c->dim, Q = model_q_dim(c), KV = model_kv_dim(c);
	int F = c->hidden_dim, hd = c->head_dim, H = c->n_heads;
	int grp = H / c->n_kv_heads, V = c->vocab_size, NL = c->n_layers;
	int T = steps + 1 < c->max_seq_len ? steps + 1 : c->max_seq_len;
	float *x = malloc(C * sizeof(float)), *xb = malloc(Q * sizeof(float));
	float *xb2 = malloc(C * sizeof(float)), *q = malloc(Q * sizeof(float));
	float *hb = malloc(F * sizeof(float)), *hb2 = malloc(F * sizeof(float));
	float *att = malloc((size_t)H * T * sizeof(float));
	float *logits = malloc((size_t)V * sizeof(float));
	float *kc = malloc((size_t)NL * T * KV * sizeof(float));
	float *vc = malloc((size_t)NL * T * KV * sizeof(float));
	const float *emb = W("model.embed_tokens.weight", 0);
	const float *out = c->tie_embeddings ? emb : W("lm_head.weight", 0);
	uint64_t rs = 42;

	fast = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
	if (steps > T)
		steps = T;
	int token = c->bos_id >= 0 ? c->bos_id : 0;
	double t0 = pp_now(), c0 = cpu_now();
	for (int pos = 0; pos < steps; pos++) {
		memcpy(x, emb + (size_t)token * C, C * sizeof(float));
		for (int l = 0; l < NL; l++) {
			float *kr = kc + ((size_t)l * T + pos) * KV;
			float *vr = vc + ((size_t)l * T + pos) * KV;
			rmsnorm(xb, x, W("model.layers.%d.input_layernorm.weight",
			    l), C, c->norm_eps);
			matmul(q, xb, W("model.layers.%d.self_attn.q_proj.weight",
			    l), W("model.layers.%d.self_attn.q_proj.bias", l),
			    C, Q);
			matmul(kr, xb, W("model.layers.%d.self_attn.k_proj.weight",
			    l), W("model.layers.%d.self_attn.k_proj.bias", l),
			    C, KV);
			matmul(vr, xb, W("model.layers.%d.self_attn.v_proj.weight",
			    l), W("model.layers.%d.self_attn.v_proj.bias", l),
			    C, KV);
			/* RoPE, rotate-half pairs (j, j + hd/2). */
			for (int j = 0; j < hd / 2; j++) {
				float f = 1.0f / powf(c->rope_theta,
				    2.0f * j / hd), a = pos * f;
				float co = cosf(a), si = sinf(a);
				for (int h = 0; h < H; h++) {
					float *v = q + h * hd, p = v[j];
					v[j] = p * co - v[j + hd / 2] * si;
					v[j + hd / 2] = v[j + hd / 2] * co + p * si;
				}
				for (int h = 0; h < c->n_kv_heads; h++) {
					float *v = kr + h * hd, p = v[j];
					v[j] = p * co - v[j + hd / 2] * si;
					v[j + hd / 2] = v[j + hd / 2] * co + p * si;
				}
			}
#pragma omp parallel for
			for (int h = 0; h < H; h++) {
				float *a = att + (size_t)h * T, mx = -INFINITY;
				float sum = 0, *o = xb + h * hd;
				const float *qh = q + h * hd;
				for (int t = 0; t <= pos; t++) {
					const float *k = kc + ((size_t)l * T + t) *
					    KV + (h / grp) * hd;
					float s = 0;
					for (int i = 0; i < hd; i++)
						s += qh[i] * k[i];
					a[t] = s / sqrtf(hd);
					if (a[t] > mx)
						mx = a[t];
				}
				for (int t = 0; t <= pos; t++) {
					a[t] = expf(a[t] - mx);
					sum += a[t];
				}
				memset(o, 0, hd * sizeof(float));
				for (int t = 0; t <= pos; t++) {
					const float *v = vc + ((size_t)l * T + t) *
					    KV + (h / grp) * hd;
					for (int i = 0; i < hd; i++)
						o[i] += a[t] / sum * v[i];
				}
			}
			matmul(xb2, xb, W("model.layers.%d.self_attn.o_proj.weight",
			    l), NULL, Q, C);
			for (int i = 0; i < C; i++)
				x[i] += xb2[i];
			rmsnorm(xb, x, W("model.layers.%d.post_attention_layernorm."
			    "weight", l), C, c->norm_eps);
			matmul(hb, xb, W("model.layers.%d.mlp.gate_proj.weight", l),
			    NULL, C, F);
			matmul(hb2, xb, W("model.layers.%d.mlp.up_proj.weight", l),
			    NULL, C, F);
			for (int i = 0; i < F; i++)
				hb[i] = hb[i] / (1 + expf(-hb[i])) * hb2[i];
			matmul(xb2, hb, W("model.layers.%d.mlp.down_proj.weight",
			    l), NULL, F, C);
			for (int i = 0; i < C; i++)
				x[i] += xb2[i];
		}
		rmsnorm(x, x, W("model.norm.weight", 0), C, c->norm_eps);
		matmul(logits, x, out, NULL, C, V);
		/* Sample at temperature 1, as llama2.c does by default. */
		float mx = logits[0], sum = 0, cdf = 0, u;
		for (int i = 1; i < V; i++)
			if (logits[i] > mx)
				mx = logits[i];
		for (int i = 0; i < V; i++) {
			logits[i] = expf(logits[i] - mx);
			sum += logits[i];
		}
		rs ^= rs << 13;
		rs ^= rs >> 7;
		rs ^= rs << 17;
		u = (float)((rs >> 40) / 16777216.0) * sum;
		token = V - 1;
		for (int i = 0; i < V; i++) {
			cdf += logits[i];
			if (u < cdf) {
				token = i;
				break;
			}
		}
	}
	double t = pp_now() - t0, ct = cpu_now() - c0;
	printf("ref: %d tokens in %.3f s, %.1f tokens/s (%.2f ms CPU a "
	    "token)\n", steps, t, steps / t, 1e3 * ct / steps);
	if (fast) {
		size_t n = (size_t)64 << 20;
		float *buf = xmalloc(n * sizeof(float));
		for (size_t i = 0; i < n; i++)
			buf[i] = (float)(i & 7);
		printf("read: %.1f GB/s (%.1f MB of weights)\n",
		    read_rate_avx2(buf, n) / 1e9,
		    m->nparams * sizeof(float) / 1e6);
		free(buf);
	}
	model_free(m);
	ckpt_free(ck);
	return 0;
}
