/*
 * loss.c: the objectives of train-step and their gradients.  See loss.h.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "training/loss.h"
#include "util/util.h"

double
log_sigmoid(double x)
{
	/* -log(1 + e^-x) loses nothing for x >= 0; mirror it below 0. */
	return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x));
}

double
sigmoid(double x)
{
	if (x >= 0)
		return 1 / (1 + exp(-x));
	double e = exp(x);
	return e / (1 + e);
}

double
loss_sft(const double *lp, int n, double scale, double *dlp)
{
	double s = 0;
	for (int t = 0; t < n; t++) {
		s -= lp[t];
		if (dlp)
			dlp[t] = -scale;
	}
	return scale * s;
}

/* The index of s in names (n of them), or -1: the enums follow the lists. */
static int
lookup(const char *s, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

int
dpo_variant_parse(const char *s)
{
	static const char *const names[] = { "sigmoid", "hinge", "ipo",
	    "robust" };
	return lookup(s, names, 4);
}

void
loss_dpo(enum dpo_variant v, double beta, double eps, double nll_coef,
    double scale, const struct dpo_in *in, struct dpo_out *out)
{
	double rw = in->pol_w - in->ref_w, rl = in->pol_l - in->ref_l;
	double h = rw - rl, z = beta * h;
	double loss, dh;	/* the objective and its derivative in h */
	double dw_extra = 0, dl_extra = 0;

	memset(out, 0, sizeof(*out));
	out->h = h;
	out->chosen_reward = beta * rw;
	out->rejected_reward = beta * rl;
	switch (v) {
	case DPO_SIGMOID:
		/* d/dz -log sigma(z) = -sigma(-z); d/dz -log sigma(-z) = sigma(z) */
		loss = -(1 - eps) * log_sigmoid(z) - eps * log_sigmoid(-z);
		dh = beta * (-(1 - eps) * sigmoid(-z) + eps * sigmoid(z));
		break;
	case DPO_HINGE:
		loss = 1 - z > 0 ? 1 - z : 0;
		dh = 1 - z > 0 ? -beta : 0;
		break;
	case DPO_ROBUST:
		loss = (-(1 - eps) * log_sigmoid(z) + eps * log_sigmoid(-z)) /
		    (1 - 2 * eps);
		dh = beta * (-(1 - eps) * sigmoid(-z) - eps * sigmoid(z)) /
		    (1 - 2 * eps);
		break;
	case DPO_IPO:
	default: {
		/* Per-token averages: the gradient splits unevenly by length. */
		double nw = in->n_w > 0 ? in->n_w : 1;
		double nl = in->n_l > 0 ? in->n_l : 1;
		double hbar = rw / nw - rl / nl;
		double d = hbar - 1 / (2 * beta);
		loss = d * d;
		dh = 0;
		dw_extra = 2 * d / nw;
		dl_extra = -2 * d / nl;
		break;
	}
	}
	/* RPO: the chosen response's mean token NLL keeps its likelihood up. */
	if (nll_coef != 0) {
		double nw = in->n_w > 0 ? in->n_w : 1;
		loss += nll_coef * (-in->pol_w / nw);
		dw_extra -= nll_coef / nw;
	}
	out->loss = scale * loss;
	out->d_w = scale * (dh + dw_extra);
	out->d_l = scale * (-dh + dl_extra);
}

void
loss_simpo(double beta, double gamma, double scale, const struct dpo_in *in,
    struct dpo_out *out)
{
	double nw = in->n_w > 0 ? in->n_w : 1, nl = in->n_l > 0 ? in->n_l : 1;
	double lw = in->pol_w / nw, ll = in->pol_l / nl;
	double z = beta * (lw - ll) - gamma;
	double dz = -sigmoid(-z);	/* d/dz -log sigma(z) */

	memset(out, 0, sizeof(*out));
	out->h = lw - ll;
	out->chosen_reward = beta * lw;
	out->rejected_reward = beta * ll;
	out->loss = -scale * log_sigmoid(z);
	out->d_w = scale * dz * beta / nw;
	out->d_l = -scale * dz * beta / nl;
}

double
loss_kto(double beta, double w_d, double w_u, int desirable, double pol,
    double ref, double z0, double scale, double *dpol, double *reward)
{
	double r = pol - ref;
	/* x: the sigmoid's argument, rising with r for a desirable answer */
	double x = desirable ? beta * (r - z0) : beta * (z0 - r);
	double w = desirable ? w_d : w_u;
	double s = sigmoid(x);

	*reward = beta * r;
	/* d/dx (1 - sigma(x)) = -sigma(x) sigma(-x); dx/dpol = +-beta */
	*dpol = scale * w * -s * sigmoid(-x) * (desirable ? beta : -beta);
	return scale * w * sigmoid(-x);
}

/* log odds of a mean log-probability l < 0, and its derivative in l:
 * d/dl [l - log(1 - e^l)] = 1 / (1 - e^l). */
static double
log_odds(double l, double *dl)
{
	if (l > -1e-12)
		l = -1e-12;
	double q = -expm1(l);		/* 1 - e^l, exactly for l near 0 */
	*dl = 1 / q;
	return l - log(q);
}

void
loss_orpo(double lambda, double scale, const struct dpo_in *in,
    struct dpo_out *out)
{
	double nw = in->n_w > 0 ? in->n_w : 1, nl = in->n_l > 0 ? in->n_l : 1;
	double lw = in->pol_w / nw, ll = in->pol_l / nl, dw, dl;
	double u = log_odds(lw, &dw) - log_odds(ll, &dl);
	double du = -lambda * sigmoid(-u);	/* d/du -lambda log sigma(u) */

	memset(out, 0, sizeof(*out));
	out->h = u;
	out->chosen_reward = lambda * lw;
	out->rejected_reward = lambda * ll;
	out->loss = -scale * lambda * log_sigmoid(u);
	out->d_w = scale * du * dw / nw;
	out->d_l = -scale * du * dl / nl;
}

double
loss_rm(double r_w, double r_l, double scale, double *d_w, double *d_l)
{
	double x = r_w - r_l;
	double g = -sigmoid(-x);	/* d/dx -log sigma(x) */
	*d_w = scale * g;
	*d_l = -scale * g;
	return -scale * log_sigmoid(x);
}

int
pg_advantage_parse(const char *s)
{
	static const char *const names[] = { "reinforce", "remax", "rloo",
	    "grpo" };
	return lookup(s, names, 4);
}

int
pg_scale_parse(const char *s)
{
	static const char *const names[] = { "group", "batch", "none" };
	return lookup(s, names, 3);
}

int
kl_estimator_parse(const char *s)
{
	static const char *const names[] = { "k1", "k2", "k3" };
	return lookup(s, names, 3);
}

int
pg_advantages(enum pg_advantage kind, enum pg_scale scale, int n,
    const double *reward, const int *group, const int *greedy, int ngroups,
    double *adv)
{
	/* Per group: count, sum, sum of squares of the sampled rewards. */
	double *cnt = xcalloc(ngroups + 1, sizeof(double));
	double *sum = xcalloc(ngroups + 1, sizeof(double));
	double *base = xcalloc(ngroups + 1, sizeof(double));
	int *has_greedy = xcalloc(ngroups + 1, sizeof(int));
	double all_n = 0, all_sum = 0;
	int bad = 0;

	for (int i = 0; i < n; i++) {
		if (greedy[i]) {
			has_greedy[group[i]] = 1;
			base[group[i]] = reward[i];
			continue;
		}
		cnt[group[i]]++;
		sum[group[i]] += reward[i];
		all_n++;
		all_sum += reward[i];
	}
	double all_mean = all_n > 0 ? all_sum / all_n : 0;
	/*
	 * Standard deviations from a second pass: no cancellation.  The
	 * deviations are squared in units of a power of two near the
	 * largest reward (pow2[], all_pow2), so rewards around 1e154 do not
	 * overflow the sum of squares; dividing by a power of two is exact,
	 * so ordinary rewards give the same bits as without it.
	 */
	double *ss = xcalloc(ngroups + 1, sizeof(double));
	double *pow2 = xcalloc(ngroups + 1, sizeof(double));
	double all_ss = 0, all_max = 0;
	for (int i = 0; i < n; i++)
		if (!greedy[i]) {
			double a = fabs(reward[i]);
			if (a > pow2[group[i]])
				pow2[group[i]] = a;
			if (a > all_max)
				all_max = a;
		}
	for (int g = 0; g <= ngroups; g++)
		pow2[g] = pow2[g] > 0 && isfinite(pow2[g]) ?
		    ldexp(1, ilogb(pow2[g])) : 1;
	double all_pow2 = all_max > 0 && isfinite(all_max) ?
	    ldexp(1, ilogb(all_max)) : 1;
	for (int i = 0; i < n; i++) {
		if (greedy[i])
			continue;
		double d = (reward[i] - sum[group[i]] / cnt[group[i]]) /
		    pow2[group[i]];
		double da = (reward[i] - all_mean) / all_pow2;
		ss[group[i]] += d * d;
		all_ss += da * da;
	}
	double all_std = all_n > 1 ? sqrt(all_ss / (all_n - 1)) * all_pow2 : 0;

	for (int i = 0; i < n && !bad; i++) {
		int g = group[i];
		if (greedy[i]) {
			adv[i] = 0;
			continue;
		}
		double mean = sum[g] / cnt[g];
		switch (kind) {
		case ADV_REINFORCE:
			adv[i] = reward[i] - all_mean;
			break;
		case ADV_REMAX:
			if (!has_greedy[g])
				bad = g + 1;
			else
				adv[i] = reward[i] - base[g];
			break;
		case ADV_RLOO:
			if (cnt[g] < 2)
				bad = g + 1;
			else
				adv[i] = reward[i] - (sum[g] - reward[i]) /
				    (cnt[g] - 1);
			break;
		case ADV_GRPO:
		default: {
			double sd = cnt[g] > 1 ? sqrt(ss[g] / (cnt[g] - 1)) *
			    pow2[g] : 0;
			adv[i] = reward[i] - mean;
			if (scale == SCALE_GROUP)
				adv[i] /= sd + 1e-4;
			else if (scale == SCALE_BATCH)
				adv[i] /= all_std + 1e-4;
			break;
		}
		}
	}
	free(cnt);
	free(sum);
	free(base);
	free(has_greedy);
	free(ss);
	free(pow2);
	return bad;
}

double
loss_ppo(int n, const double *lp, const double *old, const double *ref,
    const double *advs, double clip, double kl_coef, enum kl_estimator est,
    double scale, double *dlp, struct pg_stats *st)
{
	double loss = 0;
	for (int t = 0; t < n; t++) {
		double ratio = exp(lp[t] - old[t]), adv = advs[t];
		/*
		 * -min(ratio A, clip(ratio) A): the clipped term wins, and the
		 * gradient vanishes, only when the ratio has left the trust
		 * region in the direction the advantage pushes it.
		 */
		int clipped = (adv > 0 && ratio > 1 + clip) ||
		    (adv < 0 && ratio < 1 - clip);
		double l, d;
		if (clipped) {
			double rc = adv > 0 ? 1 + clip : 1 - clip;
			l = -rc * adv;
			d = 0;
		} else {
			l = -ratio * adv;
			d = -ratio * adv;
		}
		double k = 0;
		if (kl_coef != 0 || ref != NULL) {
			double x = ref ? ref[t] - lp[t] : 0, dk;	/* dx/dlp = -1 */
			switch (est) {
			case KL_K1:
				k = -x;
				dk = 1;
				break;
			case KL_K2:
				k = 0.5 * x * x;
				dk = -x;
				break;
			case KL_K3:
			default:
				k = exp(x) - x - 1;
				dk = -exp(x) + 1;
				break;
			}
			l += kl_coef * k;
			d += kl_coef * dk;
		}
		loss += l;
		if (dlp)
			dlp[t] = scale * d;
		if (st) {
			st->tokens++;
			st->kl_sum += k;
			st->clipped += clipped;
			st->ratio_sum += ratio;
		}
	}
	return scale * loss;
}

void
ppo_gae(int n, const double *r, const double *v, double gamma, double lambda,
    double *adv, double *ret)
{
	double next_v = 0, next_a = 0;

	for (int t = n - 1; t >= 0; t--) {
		double delta = r[t] + gamma * next_v - v[t];
		adv[t] = delta + gamma * lambda * next_a;
		ret[t] = adv[t] + v[t];
		next_v = v[t];
		next_a = adv[t];
	}
}

double
loss_value(int n, const double *v, const double *old, const double *ret,
    double clip, double scale, double *dv, double *nclipped)
{
	double loss = 0;

	for (int t = 0; t < n; t++) {
		double e = v[t] - ret[t], ec = e;
		int out = 0;	/* v outside old's trust region */
		if (clip > 0 && fabs(v[t] - old[t]) > clip) {
			double vc = old[t] + (v[t] > old[t] ? clip : -clip);
			ec = vc - ret[t];
			out = 1;
		}
		/* The clipped term is constant in v: it wins, no gradient. */
		int clipped = out && ec * ec > e * e;
		loss += 0.5 * (clipped ? ec * ec : e * e);
		if (dv)
			dv[t] = clipped ? 0 : scale * e;
		if (nclipped)
			*nclipped += clipped;
	}
	return scale * loss;
}
