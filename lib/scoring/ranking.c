/* ranking.c: ranking accuracy of preference pairs; see ranking.h. */
#include "config.h"

#include <math.h>
#include <stdio.h>

#include "records/record.h"
#include "scoring/ranking.h"

/* The number at side.PREFIX_logprob of r, or 0 (and *have 0) when absent. */
static double
side_sum(const struct rec *r, const char *side, const char *prefix,
    int *have)
{
	char path[256];
	const msgpack_object *v;
	double x;

	snprintf(path, sizeof(path), "%s.%s_logprob", side, prefix);
	v = rec_get_path(r, path);
	*have = v != NULL;
	if (v == NULL)
		return 0;
	if (!rec_obj_num(v, &x))
		rec_die(r, path, "expected number, got %s", rec_type_name(v));
	return x;
}

/* logit(alpha) of the pair: from the alpha field, or the margin. */
static double
pair_logit(const struct rec *r, const struct rank_opts *o)
{
	const char *f = o->alpha != NULL ? o->alpha : o->margin;
	const msgpack_object *v = rec_get_path(r, f);
	double x;

	if (v == NULL)
		rec_die(r, f, "missing (%s)", o->alpha != NULL ?
		    "the preference probability --alpha names" :
		    "the pair's margin, as pair writes it; or give --alpha");
	if (!rec_obj_num(v, &x))
		rec_die(r, f, "expected number, got %s", rec_type_name(v));
	if (o->alpha == NULL)
		return x;
	if (!(x >= 0 && x <= 1))
		rec_die(r, f, "%g is not a probability", x);
	return log(x) - log1p(-x);	/* +inf at 1 */
}

void
rank_acc_add(struct rank_acc *a, const struct rec *r,
    const struct rank_opts *o)
{
	int hw, hl;
	double pw = side_sum(r, "chosen", o->policy, &hw);
	double pl = side_sum(r, "rejected", o->policy, &hl);

	if (!hw || !hl) {
		char path[256];
		snprintf(path, sizeof(path), "%s.%s_logprob", hw ? "rejected" :
		    "chosen", o->policy);
		rec_die(r, path, "missing (score --logprob CKPT --as %s)",
		    o->policy);
	}
	a->pairs++;
	a->policy_correct += pw > pl;
	double rw = side_sum(r, "chosen", o->ref, &hw);
	double rl = side_sum(r, "rejected", o->ref, &hl);
	if (!hw || !hl)
		return;
	a->ref_pairs++;
	a->ref_correct += rw > rl;
	a->ideal_correct += o->beta * (rw - rl) + pair_logit(r, o) > 0;
}
