/*
 * ranking.h: ranking accuracy of preference pairs (Chen et al. 2024,
 * "Preference Learning Algorithms Do Not Learn Preference Rankings"), as
 * recs rank-accuracy reports it.
 *
 * A pair ranks correctly under a model when the model gives the chosen
 * response a higher summed log-probability than the rejected one.  The
 * idealized model of RLHF and DPO, pi*(y) proportional to
 * pi_ref(y) exp(r(y) / beta), ranks a pair correctly when
 *
 *   beta (S_ref(y_w) - S_ref(y_l)) + (r(y_w) - r(y_l)) > 0,
 *
 * with r(y_w) - r(y_l) = logit(alpha) under Bradley-Terry, alpha the
 * probability that y_w is preferred: read from a field, or taken as the
 * pair's margin itself (the difference of the rewards pair ranked by,
 * as Bradley-Terry logits).
 */
#ifndef PREFPIPE_RANKING_H
#define PREFPIPE_RANKING_H

#include <stdint.h>

struct rec;

struct rank_opts {
	const char *policy;	/* prefix of the policy's sums: P_logprob */
	const char *ref;	/* the reference's */
	const char *alpha;	/* field of P(chosen preferred), or NULL:
				 * logit(alpha) is the margin field */
	const char *margin;	/* "margin" */
	double beta;
};

struct rank_acc {
	uint64_t pairs;
	uint64_t policy_correct;	/* policy sums, chosen above */
	uint64_t ref_pairs, ref_correct;	/* pairs with ref sums */
	uint64_t ideal_correct;		/* of ref_pairs */
};

/* Count pair record r (errors name its record and field). */
void rank_acc_add(struct rank_acc *a, const struct rec *r,
    const struct rank_opts *o);

#endif
