/*
 * unit_loss: every objective of lib/loss against central finite
 * differences in double precision, and against values worked by hand.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "training/loss.h"

static int failures;

/* A fixed pseudo-random sequence in [0, 1) (an LCG is plenty here). */
static double
unit(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return (double)(*s >> 11) * 0x1p-53;
}

static void
near(const char *what, double got, double want, double tol)
{
	double err = fabs(got - want) / (fabs(want) > 1 ? fabs(want) : 1);
	if (!(err <= tol)) {
		printf("FAIL: %s: got %.12g, want %.12g\n", what, got, want);
		failures++;
	}
}

/* Central differences: error O(h^2) ~ 1e-10 at h = 1e-5. */
#define FD_H 1e-5
#define FD_TOL 1e-7

/* ------------------------------------------------------------------------ */
/* DPO: the loss as a function of every token's log-probability. */

enum { NW = 5, NL = 3 };

/* The pair objectives: DPO's variants, SimPO, ORPO. */
enum pair_method { M_DPO, M_SIMPO, M_ORPO };

struct dpo_case {
	enum pair_method method;
	enum dpo_variant v;
	double beta, eps, nll, gamma;	/* ORPO: beta is lambda */
	double lw[NW], ll[NL];		/* policy token log-probs */
	double ref_w, ref_l;		/* reference sums */
};

static double
dpo_eval(const struct dpo_case *c, struct dpo_out *out)
{
	struct dpo_in in = { 0, c->ref_w, 0, c->ref_l, NW, NL };
	for (int t = 0; t < NW; t++)
		in.pol_w += c->lw[t];
	for (int t = 0; t < NL; t++)
		in.pol_l += c->ll[t];
	if (c->method == M_SIMPO)
		loss_simpo(c->beta, c->gamma, 0.25, &in, out);
	else if (c->method == M_ORPO)
		loss_orpo(c->beta, 0.25, &in, out);
	else
		loss_dpo(c->v, c->beta, c->eps, c->nll, 0.25, &in, out);
	return out->loss;
}

static void
check_dpo(const char *name, struct dpo_case c)
{
	struct dpo_out o, tmp;
	dpo_eval(&c, &o);
	for (int t = 0; t < NW + NL; t++) {
		double *x = t < NW ? &c.lw[t] : &c.ll[t - NW];
		double x0 = *x;
		*x = x0 + FD_H;
		double up = dpo_eval(&c, &tmp);
		*x = x0 - FD_H;
		double dn = dpo_eval(&c, &tmp);
		*x = x0;
		char what[96];
		snprintf(what, sizeof(what), "%s d/dlp[%d]", name, t);
		near(what, t < NW ? o.d_w : o.d_l, (up - dn) / (2 * FD_H),
		    FD_TOL);
	}
}

/* SimPO and ORPO: finite differences over random cases, and by hand. */
static void
test_simpo_orpo(void)
{
	uint64_t seed = 7;
	char name[64];

	for (int k = 0; k < 6; k++) {
		struct dpo_case c = { .method = k % 2 ? M_ORPO : M_SIMPO,
		    .beta = 0.2 + 0.7 * k, .gamma = 0.3 * k };
		/* token log-probs in (-3, 0): ORPO's odds need P < 1 */
		for (int t = 0; t < NW; t++)
			c.lw[t] = -3 * unit(&seed) - 1e-3;
		for (int t = 0; t < NL; t++)
			c.ll[t] = -3 * unit(&seed) - 1e-3;
		snprintf(name, sizeof(name), "%s case %d",
		    k % 2 ? "orpo" : "simpo", k);
		check_dpo(name, c);
	}
	/* l_w = -1, l_l = -2 */
	struct dpo_in in = { -2, 0, -6, 0, 2, 3 };
	struct dpo_out o;
	loss_simpo(2, 1, 1, &in, &o);
	near("simpo by hand", o.loss, 0.31326168751822286, 1e-12);
	near("simpo reward", o.chosen_reward, -2, 1e-12);
	loss_orpo(0.5, 1, &in, &o);
	/* log odds(-1) - log odds(-2) = 1 + log(1 + e^-1) */
	near("orpo log odds ratio", o.h, 1.3132616875182228, 1e-12);
	near("orpo by hand", o.loss, 0.11909151320691412, 1e-12);
	/* probability 1: finite, as TRL's log1p(-exp(0)) is not */
	struct dpo_in one = { 0, 0, -4, 0, 2, 2 };
	loss_orpo(1, 1, &one, &o);
	near("orpo at P = 1 is finite", isfinite(o.loss) && isfinite(o.d_w),
	    1, 0);
}

/* KTO: the derivative in the policy's sum, by differences; by hand. */
static void
test_kto(void)
{
	uint64_t seed = 11;
	char name[64];
	double d, tmp, rw;

	for (int k = 0; k < 8; k++) {
		double beta = 0.1 + 0.6 * k, wd = 1 + 0.5 * (k % 3);
		double wu = 1.33 - 0.2 * (k % 2), z0 = 0.3 * (k % 4);
		double pol = -20 * unit(&seed), ref = -20 * unit(&seed);
		int des = k % 2 == 0;

		loss_kto(beta, wd, wu, des, pol, ref, z0, 0.25, &d, &rw);
		double up = loss_kto(beta, wd, wu, des, pol + FD_H, ref, z0,
		    0.25, &tmp, &rw);
		double dn = loss_kto(beta, wd, wu, des, pol - FD_H, ref, z0,
		    0.25, &tmp, &rw);
		snprintf(name, sizeof(name), "kto case %d d/dpol", k);
		near(name, d, (up - dn) / (2 * FD_H), FD_TOL);
	}
	/* r = 1, z0 = 0.5, beta 2: x = +-1 */
	double l = loss_kto(2, 1.5, 1, 1, -3, -4, 0.5, 1, &d, &rw);
	near("kto desirable by hand", l, 1.5 * (1 - 1 / (1 + exp(-1.0))),
	    1e-12);
	near("kto reward", rw, 2, 1e-12);
	l = loss_kto(2, 1.5, 0.5, 0, -3, -4, 0.5, 1, &d, &rw);
	near("kto undesirable by hand", l, 0.5 * (1 - 1 / (1 + exp(1.0))),
	    1e-12);
	/* an undesirable answer's loss falls as its log-ratio falls */
	near("kto undesirable gradient sign", d > 0, 1, 0);
}

static void
test_dpo(void)
{
	uint64_t g = 7;
	static const char *vn[] = { "sigmoid", "hinge", "ipo", "robust" };
	for (int v = 0; v < 4; v++) {
		for (int k = 0; k < 6; k++) {
			struct dpo_case c = { .v = v, .beta = 0.1 + 0.4 * k,
			    .eps = 0.1 * (k % 3),
			    .nll = k % 2 ? 0.3 : 0 };
			for (int t = 0; t < NW; t++)
				c.lw[t] = -3 * unit(&g);
			for (int t = 0; t < NL; t++)
				c.ll[t] = -3 * unit(&g);
			c.ref_w = -6 * unit(&g) - 3;
			c.ref_l = -6 * unit(&g) - 1;
			char name[64];
			snprintf(name, sizeof(name), "dpo %s case %d", vn[v], k);
			check_dpo(name, c);
		}
	}

	/* By hand: h = 0 gives log 2 for sigmoid, 1 for hinge. */
	struct dpo_in in = { -4, -4, -7, -7, 2, 2 };
	struct dpo_out o;
	loss_dpo(DPO_SIGMOID, 0.1, 0, 0, 1, &in, &o);
	near("sigmoid h=0", o.loss, log(2), 1e-12);
	near("sigmoid h=0 grad", o.d_w, -0.05, 1e-12);
	loss_dpo(DPO_HINGE, 0.1, 0, 0, 1, &in, &o);
	near("hinge h=0", o.loss, 1, 1e-12);
	/* IPO: hbar = (1/2) - (-1/4) = 0.75, 1/(2 beta) = 0.5: 0.0625. */
	struct dpo_in ipo = { -3, -4, -5, -4, 2, 4 };
	loss_dpo(DPO_IPO, 1, 0, 0, 1, &ipo, &o);
	near("ipo", o.loss, 0.0625, 1e-12);
	near("ipo d_w", o.d_w, 2 * 0.25 / 2, 1e-12);
	near("ipo d_l", o.d_l, -2 * 0.25 / 4, 1e-12);
	/* Rewards: beta times each side's log-ratio. */
	struct dpo_in r = { -2, -3, -6, -5, 3, 3 };
	loss_dpo(DPO_SIGMOID, 0.5, 0, 0, 1, &r, &o);
	near("chosen_reward", o.chosen_reward, 0.5, 1e-12);
	near("rejected_reward", o.rejected_reward, -0.5, 1e-12);
	near("h", o.h, 2, 1e-12);
	near("sigmoid value", o.loss, -log(1 / (1 + exp(-1.0))), 1e-12);
	/* Robust with eps = 0 is plain DPO; cDPO at eps = 0.5 pulls z to 0. */
	struct dpo_out o2;
	loss_dpo(DPO_ROBUST, 0.5, 0, 0, 1, &r, &o2);
	near("robust eps=0", o2.loss, o.loss, 1e-12);
	loss_dpo(DPO_SIGMOID, 0.5, 0.5, 0, 1, &r, &o2);
	near("cdpo eps=0.5 grad", o2.d_w,
	    0.5 * 0.5 * (sigmoid(1) - sigmoid(-1)), 1e-12);
	/* RPO: nll term -S_w/n_w = 2/3 times the coefficient. */
	loss_dpo(DPO_SIGMOID, 0.5, 0, 2, 1, &r, &o2);
	near("rpo", o2.loss, o.loss + 2 * 2.0 / 3, 1e-12);
	/* Stability far out: no inf or nan. */
	struct dpo_in far = { 0, 0, -2000, 0, 1, 1 };
	loss_dpo(DPO_SIGMOID, 1, 0, 0, 1, &far, &o);
	near("sigmoid far", o.loss, 0, 1e-12);
	far.pol_l = 2000;
	loss_dpo(DPO_SIGMOID, 1, 0, 0, 1, &far, &o);
	near("sigmoid far wrong", o.loss, 2000, 1e-12);
}

/* ------------------------------------------------------------------------ */

static void
test_rm(void)
{
	double dw, dl, tw, tl;
	double rw = 0.7, rl = -0.4;
	loss_rm(rw, rl, 0.5, &dw, &dl);
	double fw = (loss_rm(rw + FD_H, rl, 0.5, &tw, &tl) -
	    loss_rm(rw - FD_H, rl, 0.5, &tw, &tl)) / (2 * FD_H);
	double fl = (loss_rm(rw, rl + FD_H, 0.5, &tw, &tl) -
	    loss_rm(rw, rl - FD_H, 0.5, &tw, &tl)) / (2 * FD_H);
	near("rm d_w", dw, fw, FD_TOL);
	near("rm d_l", dl, fl, FD_TOL);
	near("rm equal", loss_rm(1, 1, 1, &dw, &dl), log(2), 1e-12);
}

static void
test_sft(void)
{
	double lp[3] = { -1, -2, -0.5 }, d[3];
	near("sft", loss_sft(lp, 3, 0.5, d), 1.75, 1e-12);
	near("sft grad", d[1], -0.5, 0);
}

/* ------------------------------------------------------------------------ */
/* PPO per-token objective. */

enum { NP = 6 };

/* n copies of a: a sample's one advantage, per token */
static const double *
fill(double *buf, int n, double a)
{
	for (int t = 0; t < n; t++)
		buf[t] = a;
	return buf;
}

static void
check_ppo(const char *name, double *lp, const double *old, const double *ref,
    double a, double kl, enum kl_estimator est)
{
	double d[NP], advb[NP];
	const double *adv = fill(advb, NP, a);
	loss_ppo(NP, lp, old, ref, adv, 0.2, kl, est, 0.3, d, NULL);
	for (int t = 0; t < NP; t++) {
		double x0 = lp[t];
		lp[t] = x0 + FD_H;
		double up = loss_ppo(NP, lp, old, ref, adv, 0.2, kl, est, 0.3,
		    NULL, NULL);
		lp[t] = x0 - FD_H;
		double dn = loss_ppo(NP, lp, old, ref, adv, 0.2, kl, est, 0.3,
		    NULL, NULL);
		lp[t] = x0;
		char what[96];
		snprintf(what, sizeof(what), "%s d/dlp[%d]", name, t);
		near(what, d[t], (up - dn) / (2 * FD_H), FD_TOL);
	}
}

static void
test_ppo(void)
{
	/* Ratios 0.5, 0.9, 1, 1.1, 1.5, 3: inside and outside the region. */
	double old[NP] = { -1, -2, -0.3, -1.5, -0.7, -2.5 };
	double lp[NP], ref[NP];
	double ratio[NP] = { 0.5, 0.9, 1, 1.1, 1.5, 3 };
	for (int t = 0; t < NP; t++) {
		lp[t] = old[t] + log(ratio[t]);
		ref[t] = old[t] + 0.3 * (t - 2.5);
	}
	static const char *en[] = { "k1", "k2", "k3" };
	for (int e = 0; e < 3; e++) {
		for (int s = -1; s <= 1; s += 2) {
			char name[64];
			snprintf(name, sizeof(name), "ppo %s adv %+d", en[e], s);
			check_ppo(name, lp, old, ref, 0.8 * s, 0.05, e);
		}
	}
	check_ppo("ppo no kl", lp, old, NULL, 1.3, 0, KL_K1);

	/* Clipping by hand: adv 1 clips ratio 1.5 and 3 (2 of 6 tokens). */
	struct pg_stats st = { 0 };
	double d[NP], a[NP];
	double l = loss_ppo(NP, lp, old, NULL, fill(a, NP, 1), 0.2, 0, KL_K1,
	    1, d, &st);
	near("ppo value", l, -(0.5 + 0.9 + 1 + 1.1 + 1.2 + 1.2), 1e-12);
	near("ppo clipped", st.clipped, 2, 0);
	near("ppo ratio sum", st.ratio_sum, 8, 1e-12);
	near("ppo clipped grad", d[5], 0, 0);
	/* adv -1 clips ratio 0.5 only. */
	memset(&st, 0, sizeof(st));
	loss_ppo(NP, lp, old, NULL, fill(a, NP, -1), 0.2, 0, KL_K1, 1, d,
	    &st);
	near("ppo clipped neg", st.clipped, 1, 0);
	/* k3 at x = 0 is 0, k2 at x = 1 is 1/2. */
	double z = 0, one = 1;
	memset(&st, 0, sizeof(st));
	loss_ppo(1, &z, &z, &z, &z, 0.2, 1, KL_K3, 1, d, &st);
	near("k3 zero", st.kl_sum, 0, 0);
	memset(&st, 0, sizeof(st));
	loss_ppo(1, &z, &z, &one, &z, 0.2, 1, KL_K2, 1, d, &st);
	near("k2 one", st.kl_sum, 0.5, 1e-12);
}

/*
 * GAE against its definition as a sum: A_t = sum_k (gamma lambda)^k
 * delta_{t+k}; with lambda = 1 the return is the discounted reward sum.
 */
static void
test_gae(void)
{
	double r[4] = { -0.1, 0.05, -0.2, 1.5 }, v[4] = { 0.3, -0.4, 0.8, 0.1 };
	double adv[4], ret[4];
	double g = 0.9, l = 0.7;

	ppo_gae(4, r, v, g, l, adv, ret);
	for (int t = 0; t < 4; t++) {
		double a = 0, w = 1;
		for (int k = t; k < 4; k++) {
			double vn = k + 1 < 4 ? v[k + 1] : 0;
			a += w * (r[k] + g * vn - v[k]);
			w *= g * l;
		}
		char what[64];
		snprintf(what, sizeof(what), "gae A[%d]", t);
		near(what, adv[t], a, 1e-12);
		snprintf(what, sizeof(what), "gae ret[%d]", t);
		near(what, ret[t], a + v[t], 1e-12);
	}
	ppo_gae(4, r, v, g, 1, adv, ret);
	near("gae lambda 1 return", ret[1], 0.05 + 0.9 * -0.2 + 0.81 * 1.5,
	    1e-12);
}

/* The clipped value loss: differences, and the clipping by hand. */
static void
test_value(void)
{
	/* v - old: inside, and outside on both sides, winning or not */
	double old[NP] = { 0, 0, 0, 0, 1, -1 };
	double v[NP] = { 0.1, 0.5, -0.5, 0.5, 0.2, -0.3 };
	double ret[NP] = { 0.3, 1.0, -1.0, -0.2, 2.0, 0.5 };
	double d[NP], tmp[NP], nc = 0;

	loss_value(NP, v, old, ret, 0.2, 0.4, d, &nc);
	for (int t = 0; t < NP; t++) {
		double x0 = v[t];
		v[t] = x0 + FD_H;
		double up = loss_value(NP, v, old, ret, 0.2, 0.4, tmp, NULL);
		v[t] = x0 - FD_H;
		double dn = loss_value(NP, v, old, ret, 0.2, 0.4, tmp, NULL);
		v[t] = x0;
		char what[64];
		snprintf(what, sizeof(what), "value d/dv[%d]", t);
		near(what, d[t], (up - dn) / (2 * FD_H), FD_TOL);
	}
	/* token 1: v 0.5 clipped to 0.2, (0.2 - 1)^2 > (0.5 - 1)^2: clipped;
	 * token 3: clipped to 0.2, (0.4)^2 < (0.7)^2: not; token 4: v 0.2
	 * clipped to 0.8, 1.2^2 < 1.8^2: not; token 5: -0.3 to -0.8,
	 * 1.3^2 > 0.8^2: clipped.  Token 2 is like 1, mirrored. */
	near("value clipped tokens", nc, 3, 0);
	near("value clipped grad", d[1], 0, 0);
	double one = loss_value(1, &v[1], &old[1], &ret[1], 0.2, 1, NULL,
	    NULL);
	near("value clipped by hand", one, 0.5 * 0.8 * 0.8, 1e-12);
	one = loss_value(1, &v[1], &old[1], &ret[1], 0, 1, NULL, NULL);
	near("value unclipped", one, 0.5 * 0.5 * 0.5, 1e-12);
}

static void
test_advantages(void)
{
	/* Two groups of three samples plus a greedy sample each. */
	double r[8] = { 1, 0, 0, 0.5, 1, 1, 0, 0 };
	int g[8] = { 0, 0, 0, 0, 1, 1, 1, 1 };
	int gr[8] = { 0, 0, 0, 1, 0, 0, 0, 1 };
	double a[8];
	/* reinforce: mean of the six samples is 0.5 */
	pg_advantages(ADV_REINFORCE, SCALE_NONE, 8, r, g, gr, 2, a);
	near("reinforce", a[0], 0.5, 1e-12);
	near("reinforce greedy", a[3], 0, 0);
	pg_advantages(ADV_REMAX, SCALE_NONE, 8, r, g, gr, 2, a);
	near("remax", a[0], 0.5, 1e-12);
	near("remax 2", a[4], 1, 1e-12);
	pg_advantages(ADV_RLOO, SCALE_NONE, 8, r, g, gr, 2, a);
	near("rloo", a[0], 1, 1e-12);
	near("rloo b", a[1], -0.5, 1e-12);
	/* grpo: group 0 is {1,0,0}: mean 1/3, sample sd sqrt(1/3) */
	pg_advantages(ADV_GRPO, SCALE_GROUP, 8, r, g, gr, 2, a);
	near("grpo", a[0], (2.0 / 3) / (sqrt(1.0 / 3) + 1e-4), 1e-12);
	pg_advantages(ADV_GRPO, SCALE_NONE, 8, r, g, gr, 2, a);
	near("dr grpo", a[1], -1.0 / 3, 1e-12);
	/* batch sd of {1,0,0,1,1,0}: sqrt(1.5/5) */
	pg_advantages(ADV_GRPO, SCALE_BATCH, 8, r, g, gr, 2, a);
	near("grpo batch", a[1], (-1.0 / 3) / (sqrt(0.3) + 1e-4), 1e-12);
	/* A group without a greedy sample cannot do ReMax. */
	int nogr[8] = { 0, 0, 0, 1, 0, 0, 0, 0 };
	if (pg_advantages(ADV_REMAX, SCALE_NONE, 8, r, g, nogr, 2, a) != 2) {
		printf("FAIL: remax without greedy\n");
		failures++;
	}
	int single[2] = { 0, 1 }, nog[2] = { 0, 0 };
	if (pg_advantages(ADV_RLOO, SCALE_NONE, 2, r, single, nog, 2, a) != 1) {
		printf("FAIL: rloo single\n");
		failures++;
	}
}

int
main(void)
{
	test_sft();
	test_dpo();
	test_simpo_orpo();
	test_kto();
	test_rm();
	test_ppo();
	test_gae();
	test_value();
	test_advantages();
	near("log_sigmoid", log_sigmoid(-800), -800, 1e-12);
	near("sigmoid", sigmoid(-800), 0, 0);
	if (failures)
		printf("%d failure(s)\n", failures);
	return failures ? 1 : 0;
}
