/*
 * loss.h: train-step's objectives as pure functions in double precision.
 *
 * Each function takes what the model produced for one record (per-token
 * log-probabilities of the response, or their sums, or reward-head scores)
 * and returns the record's loss together with d loss / d input, which the
 * caller hands to model_backward.  No function sees a batch: the batch's
 * normaliser (tokens or records of the optimizer step) comes in as a
 * scale, so a loss is a plain sum over records and gradients accumulate
 * over micro-batches, and over processes, exactly.
 *
 * Notation: lp[t] the policy's log-probability of response token t, ref[t]
 * the reference model's, old[t] the rollout policy's; S_w, S_l sums over
 * the chosen and rejected responses; sigma the logistic function.
 */
#ifndef PREFPIPE_LOSS_H
#define PREFPIPE_LOSS_H

#include <stddef.h>

/* log sigma(x), without overflow for large |x|. */
double log_sigmoid(double x);
double sigmoid(double x);

/* ------------------------------------------------------------------------ */
/* SFT: negative log-likelihood of the target tokens. */

/*
 * loss = -scale * sum_t lp[t]; dlp[t] (may be NULL) = -scale.
 * With scale = 1 / (loss tokens of the batch) the batch loss is the mean
 * token NLL.
 */
double loss_sft(const double *lp, int n, double scale, double *dlp);

/* ------------------------------------------------------------------------ */
/* DPO and its variants, on one pair. */

enum dpo_variant { DPO_SIGMOID, DPO_HINGE, DPO_IPO, DPO_ROBUST };

/* "sigmoid", "hinge", "ipo", "robust": the enum, or -1. */
int dpo_variant_parse(const char *s);

struct dpo_in {
	double pol_w, ref_w;	/* S_w of the policy and of the reference */
	double pol_l, ref_l;	/* S_l likewise */
	int n_w, n_l;		/* response tokens of each side */
};

struct dpo_out {
	double loss;		/* the objective plus the NLL term */
	double h;		/* (pol_w - ref_w) - (pol_l - ref_l) */
	double chosen_reward;	/* beta (pol_w - ref_w) */
	double rejected_reward;	/* beta (pol_l - ref_l) */
	double d_w, d_l;	/* d loss / d lp[t] of every chosen / rejected
				   token (the same for all tokens of a side) */
};

/*
 * With z = beta h:
 *   sigmoid  -(1 - eps) log sigma(z) - eps log sigma(-z)   (cDPO)
 *   hinge    max(0, 1 - z)
 *   ipo      (hbar - 1 / (2 beta))^2, hbar = (pol_w - ref_w) / n_w -
 *            (pol_l - ref_l) / n_l (log-ratios averaged over tokens)
 *   robust   [-(1 - eps) log sigma(z) + eps log sigma(-z)] / (1 - 2 eps)
 * plus nll_coef * (-pol_w / n_w), the chosen response's mean token NLL
 * (RPO).  Everything is multiplied by scale.
 */
void loss_dpo(enum dpo_variant v, double beta, double eps, double nll_coef,
    double scale, const struct dpo_in *in, struct dpo_out *out);

/* ------------------------------------------------------------------------ */
/* Reference-free pair objectives: SimPO and ORPO. */

/*
 * In both, l_w = pol_w / n_w and l_l = pol_l / n_l are the mean token
 * log-probabilities of the chosen and rejected responses (ref_* unused).
 *
 * SimPO (Meng et al. 2024), gamma the paper's target margin:
 *   loss = -scale * log sigma(beta l_w - beta l_l - gamma)
 * chosen_reward = beta l_w, rejected_reward = beta l_l; h = l_w - l_l.
 */
void loss_simpo(double beta, double gamma, double scale,
    const struct dpo_in *in, struct dpo_out *out);

/*
 * ORPO (Hong et al. 2024), the odds-ratio term of one pair:
 *   log odds(y) = l - log(1 - exp l)
 *   loss = -scale * lambda * log sigma(log odds(y_w) - log odds(y_l))
 * chosen_reward = lambda l_w, rejected_reward = lambda l_l (TRL's), h the
 * log odds ratio.  ORPO's NLL term is the token mean of the batch's
 * chosen tokens, an SFT loss the caller adds (loss_sft).  A response of
 * probability 1 (l = 0) has infinite odds: l is taken as at most -1e-12.
 */
void loss_orpo(double lambda, double scale, const struct dpo_in *in,
    struct dpo_out *out);

/* ------------------------------------------------------------------------ */
/* KTO on one unpaired example. */

/*
 * KTO (Ethayarajh et al. 2024), r = pol - ref the summed log-ratio of the
 * response and z0 the batch's reference point (given, no gradient):
 *   desirable    loss = scale * w_d * (1 - sigma(beta (r - z0)))
 *   undesirable  loss = scale * w_u * (1 - sigma(beta (z0 - r)))
 * *dpol gets d loss / d pol (every response token's d loss / d lp[t]),
 * *reward beta r.  Returns the loss.
 */
double loss_kto(double beta, double w_d, double w_u, int desirable,
    double pol, double ref, double z0, double scale, double *dpol,
    double *reward);

/* ------------------------------------------------------------------------ */
/* Reward model: Bradley-Terry on one pair of scores. */

/*
 * loss = -scale * log sigma(r_w - r_l); *d_w, *d_l get d loss / d r.
 */
double loss_rm(double r_w, double r_l, double scale, double *d_w, double *d_l);

/* ------------------------------------------------------------------------ */
/* Policy gradient: advantages, then the PPO clipped objective. */

enum pg_advantage { ADV_REINFORCE, ADV_REMAX, ADV_RLOO, ADV_GRPO };
enum pg_scale { SCALE_GROUP, SCALE_BATCH, SCALE_NONE };
enum kl_estimator { KL_K1, KL_K2, KL_K3 };

int pg_advantage_parse(const char *s);
int pg_scale_parse(const char *s);
int kl_estimator_parse(const char *s);

/*
 * Advantages of n samples from their rewards.  group[i] numbers the group
 * (prompt) of sample i, 0 .. ngroups-1; greedy[i] marks a greedy baseline
 * (ReMax), which only serves as a baseline: its own advantage is 0.
 *   reinforce  r - mean of every non-greedy sample
 *   remax      r - r of the group's greedy sample
 *   rloo       r - mean of the group's other samples
 *   grpo       (r - group mean) / (s + 1e-4), s the group's sample standard
 *              deviation (scale group), the batch's (scale batch), or
 *              without the division (scale none: Dr. GRPO)
 * Standard deviations are unbiased (n - 1), 0 for a single sample.
 * Returns 0, or the number + 1 of a group that cannot be served (remax:
 * no greedy sample; rloo: fewer than two samples).
 */
int pg_advantages(enum pg_advantage kind, enum pg_scale scale, int n,
    const double *reward, const int *group, const int *greedy, int ngroups,
    double *adv);

/* Running sums for the metrics of the PPO objective. */
struct pg_stats {
	double tokens, kl_sum, clipped, ratio_sum;
};

/*
 * The per-token PPO objective of one sample of n response tokens with
 * advantages adv[t] (the sample's one advantage repeated, or GAE's):
 *
 *   ratio_t = exp(lp[t] - old[t])
 *   l_t = -min(ratio_t adv_t, clip(ratio_t, 1 - c, 1 + c) adv_t)
 *         + kl_coef * k(ref[t] - lp[t])
 *   k1(x) = -x,  k2(x) = x^2 / 2,  k3(x) = e^x - x - 1
 *
 * Returns scale * sum_t l_t and sets dlp[t] = d/d lp[t] of that.  ref may
 * be NULL when kl_coef is 0.  For token aggregation scale is
 * weight / (tokens of the batch); for sequence aggregation
 * weight / (n * sequences of the batch).  Adds to *st.
 */
double loss_ppo(int n, const double *lp, const double *old, const double *ref,
    const double *adv, double clip, double kl_coef, enum kl_estimator est,
    double scale, double *dlp, struct pg_stats *st);

/* ------------------------------------------------------------------------ */
/* PPO with a critic: GAE and the value loss. */

/*
 * Generalized advantage estimation (Schulman et al. 2016) over one
 * response of n tokens, from per-token rewards r[t] and the critic's
 * values v[t] (its estimate before token t); the episode ends after the
 * last token, so v_n = 0:
 *
 *   delta_t = r_t + gamma v_{t+1} - v_t
 *   A_t = delta_t + gamma lambda A_{t+1},  A_n = 0
 *   ret_t = A_t + v_t   (the critic's target)
 */
void ppo_gae(int n, const double *r, const double *v, double gamma,
    double lambda, double *adv, double *ret);

/*
 * The clipped value loss of one response (PPO's critic):
 *
 *   vc_t = old_t + clip(v_t - old_t, -c, c)
 *   l_t = 1/2 max((v_t - ret_t)^2, (vc_t - ret_t)^2)
 *
 * old[t] the values the samples were scored with, ret[t] the returns; c
 * <= 0: unclipped.  Returns scale * sum_t l_t, sets dv[t] = d/dv_t of
 * that (dv may be NULL), and adds to *nclipped (may be NULL) the tokens
 * whose clipped term is the larger, where the gradient vanishes.
 */
double loss_value(int n, const double *v, const double *old,
    const double *ret, double clip, double scale, double *dv,
    double *nclipped);

#endif
