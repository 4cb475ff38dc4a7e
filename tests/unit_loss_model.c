/*
 * unit_loss_model: every train-step objective through a whole tiny model,
 * checked by central finite differences in double precision.
 *
 * lib/model/model_impl.h is compiled here with REAL double (as
 * tests/unit_model_grad.c does), the objective of lib/loss turns the
 * model's per-token log-probs (or reward scores) into a loss and its
 * gradient, the model's backward pass carries that to every parameter,
 * and the differences of the loss must agree.  Four sequences of a packed
 * batch, two tokens of prompt each, make two pairs.
 */
#include <stdio.h>

#include "model_f64.h"
#include "training/loss.h"

static int failures;

enum { NSEQ = 4, PROMPT = 2, NTOK = 18 };
static int lens[NSEQ] = { 5, 4, 6, 3 };

static struct {
	struct net net;
	struct model_batch b;
	int tok[NTOK], tgt[NTOK];
	double lp[NTOK], dlp[NTOK], dsc[NTOK];
	int objective;		/* 0 sft, 1..4 dpo variants, 5 rm, 6 pg */
	double old[NTOK], ref[NTOK];
} w;

/* Sum of the scored log-probs of sequence s; n gets their count. */
static double
seq_sum(int s, int *n)
{
	int off = 0;
	double sum = 0;
	for (int i = 0; i < s; i++)
		off += lens[i];
	*n = 0;
	for (int t = off; t < off + lens[s]; t++)
		if (w.tgt[t] >= 0) {
			sum += w.lp[t];
			(*n)++;
		}
	return sum;
}

/* Put a per-sequence gradient d on every scored token of sequence s. */
static void
seq_grad(int s, double d)
{
	int off = 0;
	for (int i = 0; i < s; i++)
		off += lens[i];
	for (int t = off; t < off + lens[s]; t++)
		if (w.tgt[t] >= 0)
			w.dlp[t] = d;
}

/* The objective's loss; fills dlp and dsc as a side effect. */
static double
loss(void *ctx)
{
	double l = 0;

	net_forward(&w.net, &w.b, w.lp);
	memset(w.dlp, 0, sizeof(w.dlp));
	memset(w.dsc, 0, sizeof(w.dsc));
	switch (w.objective) {
	case 0: {
		double tot = 0;
		for (int t = 0; t < NTOK; t++)
			tot += w.tgt[t] >= 0;
		for (int t = 0; t < NTOK; t++)
			if (w.tgt[t] >= 0)
				l += loss_sft(&w.lp[t], 1, 1 / tot,
				    &w.dlp[t]);
		break;
	}
	case 1: case 2: case 3: case 4:
		for (int p = 0; p < 2; p++) {
			struct dpo_in in;
			struct dpo_out o;
			in.pol_w = seq_sum(2 * p, &in.n_w);
			in.pol_l = seq_sum(2 * p + 1, &in.n_l);
			/* References fixed, not moving with the policy. */
			in.ref_w = -3 + 0.5 * p;
			in.ref_l = -4 + 0.25 * p;
			loss_dpo(w.objective - 1, 0.7, 0.15, 0.2, 0.5, &in,
			    &o);
			seq_grad(2 * p, o.d_w);
			seq_grad(2 * p + 1, o.d_l);
			l += o.loss;
		}
		break;
	case 5: {
		/* Scores at the last token of each sequence. */
		const double *sc = w.net.a.scores;
		for (int p = 0; p < 2; p++) {
			int a = 0, b;
			for (int i = 0; i < 2 * p; i++)
				a += lens[i];
			a += lens[2 * p] - 1;
			b = a + lens[2 * p + 1];
			double dw, dl;
			l += loss_rm(sc[a], sc[b], 0.5, &dw, &dl);
			w.dsc[a] = dw;
			w.dsc[b] = dl;
		}
		break;
	}
	case 6: {
		/* Each token its own advantage (GAE's, as PPO with a
		 * critic has them); some ratios clip. */
		double adv[NSEQ] = { 1.2, -0.7, 0.4, -1.5 };
		int off = 0;
		for (int s = 0; s < NSEQ; s++) {
			double lp[8], old[8], ref[8], d[8], at[8];
			int n = 0, pos[8];
			for (int t = off; t < off + lens[s]; t++)
				if (w.tgt[t] >= 0) {
					pos[n] = t;
					lp[n] = w.lp[t];
					old[n] = w.old[t];
					ref[n] = w.ref[t];
					at[n] = adv[s] + 0.2 * n;
					n++;
				}
			l += loss_ppo(n, lp, old, ref, at, 0.2, 0.3,
			    (enum kl_estimator)(s % 3), 1.0 / 12, d, NULL);
			for (int i = 0; i < n; i++)
				w.dlp[pos[i]] = d[i];
			off += lens[s];
		}
		break;
	}
	}
	return l;
}

static void
check(const char *what, struct model_config c, int objective)
{
	int nt;
	struct model_tensor *t = model_tensors(&c, &nt);
	size_t np = t[nt - 1].offset + t[nt - 1].n;
	double *p = xmalloc(np * sizeof(double));
	double *g = xcalloc(np, sizeof(double));
	uint64_t st = 99;

	for (int i = 0; i < nt; i++)
		for (size_t j = 0; j < t[i].n; j++)
			p[t[i].offset + j] = (t[i].is_norm ? 1 : 0) +
			    (t[i].is_norm || t[i].is_bias ? 0.1 : 0.3) *
			    model_rng_normal(&st);
	net_init(&w.net, &c, &cpu_ops, t, nt, p, g);
	w.objective = objective;
	int off = 0;
	for (int s = 0; s < NSEQ; s++) {
		for (int i = 0; i < lens[s]; i++) {
			w.tok[off + i] = (s * 7 + i * 5 + 1) % c.vocab_size;
			/* response tokens are predicted from PROMPT-1 on */
			w.tgt[off + i] = -1;
		}
		for (int i = PROMPT - 1; i + 1 < lens[s]; i++)
			w.tgt[off + i] = w.tok[off + i + 1];
		off += lens[s];
	}
	w.b = (struct model_batch){ NSEQ, lens, w.tok,
	    c.lm_head ? w.tgt : NULL };
	/* rollout and reference log-probs near the policy's */
	net_forward(&w.net, &w.b, w.lp);
	for (int t = 0; t < NTOK; t++) {
		w.old[t] = w.lp[t] + 0.4 * sin(3.0 * t);
		w.ref[t] = w.lp[t] + 0.3 * cos(2.0 * t);
	}

	loss(NULL);
	net_backward(&w.net, c.lm_head ? w.dlp : NULL,
	    c.num_labels ? w.dsc : NULL);
	double scale = 1e-12, worst = 0;
	for (size_t i = 0; i < np; i++)
		if (fabs(g[i]) > scale)
			scale = fabs(g[i]);
	for (size_t i = 0; i < np; i++) {
		double x0 = p[i], h = 1e-5;
		p[i] = x0 + h;
		double up = loss(NULL);
		p[i] = x0 - h;
		double dn = loss(NULL);
		p[i] = x0;
		double e = fabs((up - dn) / (2 * h) - g[i]) / scale;
		if (e > worst)
			worst = e;
	}
	if (worst > 1e-6) {
		fprintf(stderr, "FAIL %s: gradient error %.3g of max |g| "
		    "%.3g\n", what, worst, scale);
		failures++;
	}
	net_free(&w.net);
	free(p);
	free(g);
	free(t);
}

int
main(void)
{
	struct model_config c = {
		.arch = MODEL_QWEN2, .vocab_size = 13, .dim = 8,
		.n_layers = 1, .n_heads = 2, .n_kv_heads = 1, .head_dim = 4,
		.hidden_dim = 12, .max_seq_len = 32, .norm_eps = 1e-5,
		.rope_theta = 10000, .qkv_bias = 1, .lm_head = 1,
		.bos_id = -1, .pad_id = -1,
	};
	static const char *names[] = { "sft", "dpo sigmoid", "dpo hinge",
	    "dpo ipo", "dpo robust" };

	/* Thousands of tiny passes: threads would only add overhead. */
	omp_set_num_threads(1);

	for (int o = 0; o < 5; o++)
		check(names[o], c, o);
	check("pg", c, 6);
	c.lm_head = 0;
	c.num_labels = 1;
	check("rm", c, 5);
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	return 0;
}
