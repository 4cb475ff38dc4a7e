/*
 * pair: turn the ranked samples of each prompt into preference pairs.
 *
 * Each output record is one pair: the fields the group's samples share,
 * then "chosen" and "rejected" maps holding each side's own fields, then
 * the margin between them.  Pairs are assembled from pointers into the
 * grouped records and written as they are made, so a pair costs no
 * allocation.
 */
#include "config.h"

#include <err.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "records/group.h"
#include "records/record.h"
#include "records/trl.h"
#include "util/rng.h"
#include "util/util.h"

#define SYNOPSIS \
	"pair [-Jz] [--strategy best-worst|best-random|all|adjacent] " \
	"[--by FIELD]\n" \
	"            [--group-by FIELD] [--min-margin M] [--seed S] " \
	"[--sorted]\n" \
	"            [--consistency FIELD] [FILE ...]\n" \
	"       pair [-Jz] --kto [--group-by FIELD] [--label-threshold X " \
	"[--by FIELD]]\n" \
	"            [--sorted] [FILE ...]\n" \
	"       pair [-Jz] --from-strings [FILE ...]"

enum strategy { S_BEST_WORST, S_BEST_RANDOM, S_ALL, S_ADJACENT };

/*
 * Fields that belong to a sample even when every sample of a group has the
 * same value: a consumer of pairs looks for them under chosen and rejected.
 */
static const char *const sample_fields[] = {
	"sample", "response", "response_tokens", "logprobs", "ref_logprobs",
	"reward", "correct", "finish", "policy", "greedy", "weight",
	/* The pair's own fields can never be common. */
	"chosen", "rejected", "margin",
};

/* A growable array of map entries. */
struct kvbuf {
	msgpack_object_kv *kv;
	uint32_t n, cap;
};

struct pair {
	enum strategy strategy;
	double min_margin;
	const char *consistency;	/* --consistency FIELD, or NULL */
	double cons;		/* this group's C */
	uint64_t seed;
	const char *by_top;	/* the top-level field holding --by */
	size_t by_toplen;
	struct rec_writer *w;
	struct kvbuf common, chosen, rejected, out;
};

static msgpack_object
str_obj(const char *s)
{
	msgpack_object o;
	o.type = MSGPACK_OBJECT_STR;
	o.via.str.ptr = s;
	o.via.str.size = (uint32_t)strlen(s);
	return o;
}

static void
kv_push(struct kvbuf *b, msgpack_object key, msgpack_object val)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 16;
		b->kv = xreallocarray(b->kv, b->cap, sizeof(*b->kv));
	}
	b->kv[b->n].key = key;
	b->kv[b->n].val = val;
	b->n++;
}

static int
key_eq(const msgpack_object *k, const char *s, size_t len)
{
	return k->via.str.size == len && memcmp(k->via.str.ptr, s, len) == 0;
}

static const msgpack_object *
field(const struct rec *r, const msgpack_object *key)
{
	for (uint32_t i = 0; i < r->n; i++)
		if (key_eq(&r->kv[i].key, key->via.str.ptr, key->via.str.size))
			return &r->kv[i].val;
	return NULL;
}

static int
is_sample_field(const struct pair *p, const msgpack_object *key)
{
	if (key_eq(key, p->by_top, p->by_toplen))
		return 1;
	for (size_t i = 0; i < sizeof(sample_fields) / sizeof(*sample_fields);
	    i++)
		if (key_eq(key, sample_fields[i], strlen(sample_fields[i])))
			return 1;
	return 0;
}

static int
is_common(const struct pair *p, const msgpack_object *key)
{
	for (uint32_t i = 0; i < p->common.n; i++)
		if (msgpack_object_equal(p->common.kv[i].key, *key))
			return 1;
	return 0;
}

/* The group's common fields: in every ranked member, with equal values. */
static void
find_common(struct pair *p, const struct group *g)
{
	const struct rec *first = &g->ranked[0]->rec;
	p->common.n = 0;
	for (uint32_t f = 0; f < first->n; f++) {
		const msgpack_object *key = &first->kv[f].key;
		if (is_sample_field(p, key))
			continue;
		size_t j;
		for (j = 1; j < g->nranked; j++) {
			const msgpack_object *v = field(&g->ranked[j]->rec,
			    key);
			if (v == NULL || !msgpack_object_equal(*v,
			    first->kv[f].val))
				break;
		}
		if (j == g->nranked)
			kv_push(&p->common, *key, first->kv[f].val);
	}
}

static msgpack_object
side(struct pair *p, struct kvbuf *b, const struct member *m)
{
	b->n = 0;
	for (uint32_t f = 0; f < m->rec.n; f++)
		if (!is_common(p, &m->rec.kv[f].key))
			kv_push(b, m->rec.kv[f].key, m->rec.kv[f].val);
	msgpack_object o;
	o.type = MSGPACK_OBJECT_MAP;
	o.via.map.ptr = b->kv;
	o.via.map.size = b->n;
	return o;
}

static void
emit(struct pair *p, const struct member *c, const struct member *r)
{
	double margin = c->val - r->val;
	if (!(margin > p->min_margin))
		return;
	p->out.n = 0;
	for (uint32_t i = 0; i < p->common.n; i++)
		kv_push(&p->out, p->common.kv[i].key, p->common.kv[i].val);
	kv_push(&p->out, str_obj("chosen"), side(p, &p->chosen, c));
	kv_push(&p->out, str_obj("rejected"), side(p, &p->rejected, r));
	msgpack_object m;
	m.type = MSGPACK_OBJECT_FLOAT64;
	m.via.f64 = margin;
	kv_push(&p->out, str_obj("margin"), m);
	if (p->consistency != NULL) {
		/* CREAM: the pair's soft label, DPO's label_smoothing */
		m.via.f64 = p->cons;
		kv_push(&p->out, str_obj("consistency"), m);
		m.via.f64 = 1 - p->cons;
		kv_push(&p->out, str_obj("label_smoothing"), m);
	}
	msgpack_object o;
	o.type = MSGPACK_OBJECT_MAP;
	o.via.map.ptr = p->out.kv;
	o.via.map.size = p->out.n;
	rec_write_object(p->w, &o);
}

/* A member's --consistency value. */
static double
cons_value(const struct pair *p, const struct member *m)
{
	const msgpack_object *v = rec_get_path(&m->rec, p->consistency);
	double x;

	if (v == NULL)
		rec_die(&m->rec, p->consistency, "missing (the ranking "
		    "--consistency compares with)");
	if (!rec_obj_num(v, &x) || isnan(x))
		rec_die(&m->rec, p->consistency, "expected number, got %s",
		    v->type == MSGPACK_OBJECT_FLOAT64 ||
		    v->type == MSGPACK_OBJECT_FLOAT32 ? "NaN" :
		    rec_type_name(v));
	return x;
}

/*
 * CREAM's consistency of a group: Kendall's tau between the ranking by
 * --by and the ranking by --consistency over its ranked members, counting
 * each pair of members +1 when the two agree on its order, -1 when they
 * disagree, 0 when either ties it, over all n (n - 1) / 2 pairs; mapped
 * to C = (tau + 1) / 2 in [0, 1].
 */
static double
consistency(const struct pair *p, const struct group *g)
{
	size_t n = g->nranked;
	double *c = xreallocarray(NULL, n, sizeof(*c)), s = 0;

	for (size_t i = 0; i < n; i++)
		c[i] = cons_value(p, g->ranked[i]);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++) {
			double a = g->ranked[i]->val - g->ranked[j]->val;
			double b = c[i] - c[j];
			s += (a > 0) - (a < 0) == 0 || (b > 0) - (b < 0) == 0 ?
			    0 : ((a > 0) == (b > 0) ? 1 : -1);
		}
	free(c);
	return (s / ((double)n * (n - 1) / 2) + 1) / 2;
}

static void
on_group(struct group *g, void *arg)
{
	struct pair *p = arg;
	struct member **rk = g->ranked;
	size_t n = g->nranked;

	if (n < 2 || rk[0]->val - rk[n - 1]->val <= p->min_margin)
		return;		/* no pair can clear the margin */
	if (p->consistency != NULL)
		p->cons = consistency(p, g);
	find_common(p, g);
	switch (p->strategy) {
	case S_BEST_WORST:
		emit(p, rk[0], rk[n - 1]);
		break;
	case S_BEST_RANDOM: {
		/*
		 * The rejected side is drawn from the members the best one
		 * beats by more than the margin: a suffix of the ranking.
		 */
		size_t lo = 1;
		while (rk[0]->val - rk[lo]->val <= p->min_margin)
			lo++;
		struct rng rng;
		rng_stream(&rng, p->seed, &g->hash, 1);
		emit(p, rk[0], rk[lo + rng_below(&rng, n - lo)]);
		break;
	}
	case S_ALL:
		for (size_t i = 0; i + 1 < n; i++)
			for (size_t j = i + 1; j < n; j++)
				emit(p, rk[i], rk[j]);
		break;
	case S_ADJACENT:
		for (size_t i = 0; i + 1 < n; i++)
			emit(p, rk[i], rk[i + 1]);
		break;
	}
}

/*
 * --kto: unpaired samples for KTO.  Every sample keeps its own fields and
 * gets a label (its own, or its --by value against --label-threshold)
 * and, as the map kl, the response of a sample of another prompt: member
 * j of group g takes member j mod n of group g + 1 (n its size), and the
 * last group takes the first's.  Groups come in order (input order when
 * sorted), each written when the next arrives, so the previous group and
 * the first are all that is held.
 */
struct kto {
	struct rec_writer *w;
	const char *by;
	double threshold;
	int thresholded;	/* --label-threshold given */
	struct rec *first, *prev;	/* copies of two groups' members */
	size_t nfirst, nprev, ngroups;
};

static struct rec *
copy_members(const struct group *g)
{
	struct rec *r = xreallocarray(NULL, g->n, sizeof(*r));
	for (size_t i = 0; i < g->n; i++)
		rec_copy(&r[i], &g->m[i]->rec);
	return r;
}

static void
free_members(struct rec *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		rec_free(&r[i]);
	free(r);
}

/* Write the members of one group, each with kl from the next group's. */
static void
kto_write(struct kto *k, struct rec *g, size_t n, const struct rec *next,
    size_t nnext)
{
	static const char *const resp[] = { "response", "response_tokens" };

	for (size_t j = 0; j < n; j++) {
		struct rec *r = &g[j], kl;
		const struct rec *o = &next[j % nnext];
		int any = 0;

		if (rec_get(r, "label") != NULL)
			(void)rec_need_bool(r, "label");
		else if (k->thresholded) {
			const msgpack_object *v = rec_get_path(r, k->by);
			double x;
			if (v == NULL)
				rec_die(r, k->by, "missing (the field "
				    "--label-threshold reads; see --by)");
			if (!rec_obj_num(v, &x))
				rec_die(r, k->by, "expected number, got %s",
				    rec_type_name(v));
			rec_set_bool(r, "label", x >= k->threshold);
		} else
			rec_die(r, "label", "missing (give --label-threshold "
			    "to label by --by)");
		rec_init(&kl, r->src, r->recno);
		for (int f = 0; f < 2; f++) {
			const msgpack_object *v = rec_get(o, resp[f]);
			if (v != NULL) {
				rec_set_obj(&kl, resp[f], v);
				any = 1;
			}
		}
		if (!any)
			rec_die(o, "response", "missing (the mismatched "
			    "response pair --kto gives another record)");
		rec_set_sub(r, "kl", &kl);
		rec_free(&kl);
		rec_write(k->w, r);
	}
}

static void
on_kto_group(struct group *g, void *arg)
{
	struct kto *k = arg;
	struct rec *cur = copy_members(g);

	if (k->ngroups++ == 0) {
		k->first = cur;
		k->nfirst = g->n;
		return;
	}
	if (k->prev != NULL) {
		kto_write(k, k->prev, k->nprev, cur, g->n);
		free_members(k->prev, k->nprev);
	} else	/* the first group, held until now */
		kto_write(k, k->first, k->nfirst, cur, g->n);
	k->prev = cur;
	k->nprev = g->n;
}

static void
kto_end(struct kto *k)
{
	if (k->ngroups == 1)
		errx(EXIT_DATA, "--kto: every record is of one group (one "
		    "prompt); a mismatched response needs two or more");
	if (k->ngroups > 1)
		kto_write(k, k->prev, k->nprev, k->first, k->nfirst);
	if (k->prev != NULL)
		free_members(k->prev, k->nprev);
	if (k->first != NULL)
		free_members(k->first, k->nfirst);
}

/*
 * --from-strings: an offline preference dataset in TRL's forms (explicit
 * or implicit prompt, strings or messages; lib/records/trl.h) into pair
 * records, as recs from-trl converts it; other types are an error.
 */
static void
from_strings(struct pair *p, struct rec_reader *rd)
{
	struct rec r, o;
	uint64_t ordinal = 0;

	while (rec_read(rd, &r)) {
		ordinal++;
		for (int k = 0; k < 2; k++)
			if (rec_get(&r, k ? "rejected" : "chosen") == NULL)
				rec_die(&r, k ? "rejected" : "chosen",
				    "missing");
		(void)trl_to_rec(&r, ordinal, &o);
		rec_write(p->w, &o);
		rec_free(&o);
		rec_free(&r);
	}
}

enum { O_STRATEGY = 256, O_BY, O_GROUP_BY, O_MIN_MARGIN, O_SEED, O_SORTED,
	O_FROM_STRINGS, O_KTO, O_LABEL_THRESHOLD, O_CONSISTENCY };

static const struct option opts[] = {
	{ "strategy", required_argument, NULL, O_STRATEGY },
	{ "by", required_argument, NULL, O_BY },
	{ "group-by", required_argument, NULL, O_GROUP_BY },
	{ "min-margin", required_argument, NULL, O_MIN_MARGIN },
	{ "seed", required_argument, NULL, O_SEED },
	{ "sorted", no_argument, NULL, O_SORTED },
	{ "from-strings", no_argument, NULL, O_FROM_STRINGS },
	{ "kto", no_argument, NULL, O_KTO },
	{ "consistency", required_argument, NULL, O_CONSISTENCY },
	{ "label-threshold", required_argument, NULL, O_LABEL_THRESHOLD },
	{ "json", no_argument, NULL, 'J' },
	{ "zstd", no_argument, NULL, 'z' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

int
main(int argc, char **argv)
{
	static const char *const names[] = {
		[S_BEST_WORST] = "best-worst", [S_BEST_RANDOM] = "best-random",
		[S_ALL] = "all", [S_ADJACENT] = "adjacent",
	};
	struct pair p = { .strategy = S_BEST_WORST };
	const char *by = "reward", *group_by = "id";
	struct kto k = { 0 };
	int sorted = 0, strings = 0, grouping_opt = 0, flags = REC_AUTO, c;
	int kto = 0, pair_opt = 0;

	pp_init(argc, argv);
	pp_synopsis = SYNOPSIS;
	while ((c = getopt_long(argc, argv, "Jzh", opts, NULL)) != -1) {
		switch (c) {
		case O_STRATEGY: {
			size_t i;
			for (i = 0; i < sizeof(names) / sizeof(*names); i++)
				if (strcmp(optarg, names[i]) == 0)
					break;
			if (i == sizeof(names) / sizeof(*names))
				pp_usage("--strategy: unknown strategy \"%s\"",
				    optarg);
			p.strategy = (enum strategy)i;
			grouping_opt = pair_opt = 1;
			break;
		}
		case O_BY:
			rec_path_option("--by", optarg);
			by = optarg;
			grouping_opt = 1;
			break;
		case O_GROUP_BY:
			rec_path_option("--group-by", optarg);
			group_by = optarg;
			grouping_opt = 1;
			break;
		case O_MIN_MARGIN:
			p.min_margin = pp_parse_num("--min-margin", optarg,
			    -HUGE_VAL, HUGE_VAL);
			grouping_opt = pair_opt = 1;
			break;
		case O_SEED:
			p.seed = (uint64_t)pp_parse_int("--seed", optarg, 0,
			    INT64_MAX);
			grouping_opt = pair_opt = 1;
			break;
		case O_KTO:
			kto = 1;
			break;
		case O_CONSISTENCY:
			rec_path_option("--consistency", optarg);
			p.consistency = optarg;
			grouping_opt = pair_opt = 1;
			break;
		case O_LABEL_THRESHOLD:
			k.threshold = pp_parse_num("--label-threshold", optarg,
			    -HUGE_VAL, HUGE_VAL);
			k.thresholded = 1;
			break;
		case O_SORTED:
			sorted = 1;
			grouping_opt = 1;
			break;
		case O_FROM_STRINGS:
			strings = 1;
			break;
		case 'J':
		case 'z':
			rec_output_option(c, &flags);
			break;
		case 'h':
			pp_help();
		default:
			pp_usage(NULL);
		}
	}
	if (strings && (grouping_opt || kto || k.thresholded))
		pp_usage("--from-strings takes none of --strategy, --by, "
		    "--group-by, --min-margin, --seed, --sorted, --kto, "
		    "--label-threshold");
	if (kto && pair_opt)
		pp_usage("--kto takes none of --strategy, --min-margin, "
		    "--seed, --consistency");
	if (k.thresholded && !kto)
		pp_usage("--label-threshold goes with --kto");
	const char *dot = strchr(by, '.');
	p.by_top = by;
	p.by_toplen = dot ? (size_t)(dot - by) : strlen(by);

	struct rec_reader *rd = rec_reader_open(argv + optind, argc - optind);
	p.w = rec_writer_open(1, "stdout", flags);
	if (strings)
		from_strings(&p, rd);
	else if (kto) {
		struct grouper *gr = grouper_new(NULL, group_by, sorted,
		    on_kto_group, &k);
		struct rec r;
		k.w = p.w;
		k.by = by;
		while (rec_read(rd, &r)) {
			grouper_add(gr, &r);
			rec_free(&r);
		}
		grouper_end(gr);
		kto_end(&k);
	} else {
		struct grouper *gr = grouper_new(by, group_by, sorted,
		    on_group, &p);
		struct rec r;
		while (rec_read(rd, &r)) {
			grouper_add(gr, &r);
			rec_free(&r);
		}
		grouper_end(gr);
	}
	rec_writer_close(p.w);
	rec_reader_close(rd);
	free(p.common.kv);
	free(p.chosen.kv);
	free(p.rejected.kv);
	free(p.out.kv);
	pp_close_stdout();
	return 0;
}
