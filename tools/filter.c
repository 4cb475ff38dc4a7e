/*
 * filter: keep some of the samples of each prompt.
 *
 * Records are grouped by a key field (the prompt's id) and ranked by a
 * number field (the reward); a strategy picks the members of each group
 * that go on, as in PF-PPO's policy filtration.  Greedy baselines always
 * go on, untouched.  --where selects single records before any grouping.
 */
#include "config.h"

#include <err.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "records/expr.h"
#include "records/group.h"
#include "records/record.h"
#include "util/rng.h"
#include "util/util.h"

#define SYNOPSIS \
	"filter [-Jz] [--keep STRATEGY] [--by FIELD] [--group-by FIELD] " \
	"[--sorted]\n" \
	"              [--drop-uniform] [--weight pow:K] [--where EXPR] " \
	"[--r2 TRUTH]\n" \
	"              [--bins B] [--report FILE] [--seed S] [FILE ...]"

enum keep { K_ALL, K_BEST, K_WORST, K_BEST_WORST, K_BEST_RANDOM, K_TOP,
	K_BOTTOM, K_RANDOM };

/* One kept sample, for --r2. */
struct point {
	double x, y;
	uint64_t ord;
};

struct filter {
	enum keep keep;
	const char *keep_name;
	size_t k;		/* top:K, bottom:K, random:K */
	int drop_uniform;
	int weight;
	double power;		/* --weight pow:K */
	const char *truth;	/* --r2 */
	uint64_t seed;
	struct rec_writer *w;
	struct point *pts;
	size_t npts, cappts;
	struct member **scratch;
	size_t capscratch;
};

static void
parse_keep(struct filter *f, const char *s)
{
	static const struct {
		const char *name;
		enum keep keep;
	} fixed[] = {
		{ "all", K_ALL }, { "best", K_BEST }, { "worst", K_WORST },
		{ "best-worst", K_BEST_WORST },
		{ "best-random", K_BEST_RANDOM },
	}, counted[] = {
		{ "top:", K_TOP }, { "bottom:", K_BOTTOM },
		{ "random:", K_RANDOM },
	};
	f->keep_name = s;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (strcmp(s, fixed[i].name) == 0) {
			f->keep = fixed[i].keep;
			return;
		}
	for (size_t i = 0; i < sizeof(counted) / sizeof(counted[0]); i++) {
		size_t len = strlen(counted[i].name);
		if (strncmp(s, counted[i].name, len) == 0) {
			f->keep = counted[i].keep;
			f->k = (size_t)pp_parse_int("--keep", s + len, 1,
			    (long long)1 << 40);
			return;
		}
	}
	pp_usage("--keep: unknown strategy \"%s\" (all, best, worst, "
	    "best-worst, best-random, top:K, bottom:K, random:K)", s);
}

/* Mark the members of g that the strategy keeps. */
static void
choose(struct filter *f, struct group *g)
{
	struct member **rk = g->ranked;
	size_t n = g->nranked, k = f->k < n ? f->k : n;
	struct rng rng;

	if (n == 0)
		return;
	switch (f->keep) {
	case K_ALL:
		for (size_t i = 0; i < n; i++)
			rk[i]->mark = 1;
		break;
	case K_BEST:
		rk[0]->mark = 1;
		break;
	case K_WORST:
		rk[n - 1]->mark = 1;
		break;
	case K_BEST_WORST:
		rk[0]->mark = rk[n - 1]->mark = 1;
		break;
	case K_BEST_RANDOM:
		rk[0]->mark = 1;
		if (n > 1) {
			rng_stream(&rng, f->seed, &g->hash, 1);
			rk[1 + rng_below(&rng, n - 1)]->mark = 1;
		}
		break;
	case K_TOP:
		for (size_t i = 0; i < k; i++)
			rk[i]->mark = 1;
		break;
	case K_BOTTOM:
		for (size_t i = n - k; i < n; i++)
			rk[i]->mark = 1;
		break;
	case K_RANDOM:
		/* The first k steps of a Fisher-Yates shuffle of the ranks. */
		if (n > f->capscratch) {
			f->capscratch = 2 * n;
			f->scratch = xreallocarray(f->scratch, f->capscratch,
			    sizeof(*f->scratch));
		}
		memcpy(f->scratch, rk, n * sizeof(*rk));
		rng_stream(&rng, f->seed, &g->hash, 1);
		for (size_t i = 0; i < k; i++) {
			size_t j = i + rng_below(&rng, n - i);
			struct member *t = f->scratch[j];
			f->scratch[j] = f->scratch[i];
			f->scratch[i] = t;
			t->mark = 1;
		}
		break;
	}
}

/* PF-PPO's reweighting: |r|^K over its mean in the group's kept samples. */
static void
reweight(struct filter *f, struct group *g)
{
	double sum = 0;
	size_t n = 0;
	for (size_t i = 0; i < g->nranked; i++)
		if (g->ranked[i]->mark) {
			sum += pow(fabs(g->ranked[i]->val), f->power);
			n++;
		}
	if (n == 0)
		return;
	if (!isfinite(sum))
		rec_die(&g->ranked[0]->rec, "weight", "|r|^%g overflows a "
		    "double in this group", f->power);
	double mean = sum / (double)n;
	for (size_t i = 0; i < g->nranked; i++) {
		struct member *m = g->ranked[i];
		if (!m->mark)
			continue;
		/* All |r| zero: every sample counts the same. */
		double w = mean > 0 ? pow(fabs(m->val), f->power) / mean : 1;
		rec_set_num(&m->rec, "weight", w);
	}
}

static double
truth_value(const struct member *m, const char *field)
{
	const msgpack_object *v = rec_get_path(&m->rec, field);
	if (v == NULL)
		rec_die(&m->rec, field, "missing (the ground truth of --r2)");
	switch (v->type) {
	case MSGPACK_OBJECT_BOOLEAN:
		return v->via.boolean;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return (double)v->via.u64;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return (double)v->via.i64;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		if (isnan(v->via.f64))
			rec_die(&m->rec, field, "is NaN");
		return v->via.f64;
	default:
		rec_die(&m->rec, field, "expected number or boolean, got %s",
		    rec_type_name(v));
	}
}

static void
on_group(struct group *g, void *arg)
{
	struct filter *f = arg;

	if (!(f->drop_uniform && group_uniform(g)))
		choose(f, g);
	if (f->weight)
		reweight(f, g);
	if (f->truth != NULL) {
		for (size_t i = 0; i < g->nranked; i++) {
			struct member *m = g->ranked[i];
			if (!m->mark)
				continue;
			if (f->npts == f->cappts) {
				f->cappts = f->cappts ? 2 * f->cappts : 1024;
				f->pts = xreallocarray(f->pts, f->cappts,
				    sizeof(*f->pts));
			}
			f->pts[f->npts++] = (struct point){ m->val,
			    truth_value(m, f->truth), m->ord };
		}
	}
	for (size_t i = 0; i < g->n; i++)
		if (g->m[i]->greedy || g->m[i]->mark)
			rec_write(f->w, &g->m[i]->rec);
}

/* ------------------------------------------------------------------------ */
/* --r2 */

static int
point_cmp(const void *a, const void *b)
{
	const struct point *p = a, *q = b;
	if (p->x != q->x)
		return p->x < q->x ? -1 : 1;
	return p->ord < q->ord ? -1 : p->ord > q->ord;
}

/* The squared correlation of (x, y); NaN when either does not vary. */
static double
r_squared(const struct point *p, size_t n)
{
	double mx = 0, my = 0, sxx = 0, syy = 0, sxy = 0;
	for (size_t i = 0; i < n; i++) {
		mx += p[i].x;
		my += p[i].y;
	}
	mx /= (double)n;
	my /= (double)n;
	for (size_t i = 0; i < n; i++) {
		double dx = p[i].x - mx, dy = p[i].y - my;
		sxx += dx * dx;
		syy += dy * dy;
		sxy += dx * dy;
	}
	if (n < 2 || sxx <= 0 || syy <= 0)
		return NAN;
	return sxy * sxy / (sxx * syy);
}

static void
report_r2(struct filter *f, size_t bins, const char *by, const char *path,
    int flags)
{
	size_t n = f->npts;
	if (bins > n)
		bins = n;
	/*
	 * Equal-count bins of the samples sorted by reward; bin b holds
	 * ranks [b n / B, (b + 1) n / B), so sizes differ by at most one.
	 */
	if (n > 0)
		qsort(f->pts, n, sizeof(*f->pts), point_cmp);
	struct point *mean = xcalloc(bins ? bins : 1, sizeof(*mean));
	for (size_t b = 0; b < bins; b++) {
		size_t lo = b * n / bins, hi = (b + 1) * n / bins;
		for (size_t i = lo; i < hi; i++) {
			mean[b].x += f->pts[i].x;
			mean[b].y += f->pts[i].y;
		}
		mean[b].x /= (double)(hi - lo);
		mean[b].y /= (double)(hi - lo);
	}
	double binned = bins ? r_squared(mean, bins) : NAN;
	double samples = n ? r_squared(f->pts, n) : NAN;
	free(mean);

	fprintf(stderr, "filter: r2: by=%s truth=%s keep=%s n=%zu bins=%zu "
	    "r2_binned=%.6g r2_samples=%.6g\n", by, f->truth, f->keep_name, n,
	    bins, binned, samples);
	if (path == NULL)
		return;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
	if (fd < 0)
		err(EXIT_DATA, "%s", path);
	struct rec_writer *w = rec_writer_open(fd, path, flags);
	struct rec r;
	rec_init(&r, path, 1);
	rec_set_str(&r, "strategy", f->keep_name);
	rec_set_str(&r, "by", by);
	rec_set_str(&r, "truth", f->truth);
	rec_set_uint(&r, "n", n);
	rec_set_uint(&r, "bins", bins);
	/* Undefined (a constant reward or truth) is null, not NaN. */
	if (isnan(binned))
		rec_set_nil(&r, "r2_binned");
	else
		rec_set_num(&r, "r2_binned", binned);
	if (isnan(samples))
		rec_set_nil(&r, "r2_samples");
	else
		rec_set_num(&r, "r2_samples", samples);
	rec_write(w, &r);
	rec_free(&r);
	rec_writer_close(w);
	if (close(fd) != 0)
		err(EXIT_DATA, "%s", path);
}

/* ------------------------------------------------------------------------ */

enum { O_KEEP = 256, O_BY, O_GROUP_BY, O_SORTED, O_DROP_UNIFORM, O_WEIGHT,
	O_WHERE, O_R2, O_BINS, O_REPORT, O_SEED };

static const struct option opts[] = {
	{ "keep", required_argument, NULL, O_KEEP },
	{ "by", required_argument, NULL, O_BY },
	{ "group-by", required_argument, NULL, O_GROUP_BY },
	{ "sorted", no_argument, NULL, O_SORTED },
	{ "drop-uniform", no_argument, NULL, O_DROP_UNIFORM },
	{ "weight", required_argument, NULL, O_WEIGHT },
	{ "where", required_argument, NULL, O_WHERE },
	{ "r2", required_argument, NULL, O_R2 },
	{ "bins", required_argument, NULL, O_BINS },
	{ "report", required_argument, NULL, O_REPORT },
	{ "seed", required_argument, NULL, O_SEED },
	{ "json", no_argument, NULL, 'J' },
	{ "zstd", no_argument, NULL, 'z' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

int
main(int argc, char **argv)
{
	struct filter f = { .keep = K_ALL, .keep_name = "all" };
	const char *by = "reward", *group_by = "id", *report = NULL;
	const char *where_src = NULL;
	struct expr *where = NULL;
	int sorted = 0, flags = REC_AUTO, c;
	size_t bins = 10;

	pp_init(argc, argv);
	pp_synopsis = SYNOPSIS;
	while ((c = getopt_long(argc, argv, "Jzh", opts, NULL)) != -1) {
		switch (c) {
		case O_KEEP:
			parse_keep(&f, optarg);
			break;
		case O_BY:
			rec_path_option("--by", optarg);
			by = optarg;
			break;
		case O_GROUP_BY:
			rec_path_option("--group-by", optarg);
			group_by = optarg;
			break;
		case O_SORTED:
			sorted = 1;
			break;
		case O_DROP_UNIFORM:
			f.drop_uniform = 1;
			break;
		case O_WEIGHT:
			if (strncmp(optarg, "pow:", 4) != 0)
				pp_usage("--weight: expected pow:K, got \"%s\"",
				    optarg);
			f.weight = 1;
			f.power = pp_parse_num("--weight", optarg + 4, 0, 1e6);
			break;
		case O_WHERE:
			where_src = optarg;
			break;
		case O_R2:
			rec_path_option("--r2", optarg);
			f.truth = optarg;
			break;
		case O_BINS:
			bins = (size_t)pp_parse_int("--bins", optarg, 1,
			    1 << 24);
			break;
		case O_REPORT:
			report = optarg;
			break;
		case O_SEED:
			f.seed = (uint64_t)pp_parse_int("--seed", optarg, 0,
			    INT64_MAX);
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
	if (report != NULL && f.truth == NULL)
		pp_usage("--report needs --r2");
	if (where_src != NULL) {
		char msg[160];
		int col;
		if ((where = expr_parse(where_src, msg, sizeof(msg),
		    &col)) == NULL)
			pp_usage("--where: column %d: %s\n    %s\n    %*s^",
			    col, msg, where_src, col - 1, "");
	}

	/* Without a group-level choice there is nothing to collect. */
	int grouped = f.keep != K_ALL || f.drop_uniform || f.weight ||
	    f.truth != NULL;
	struct rec_reader *rd = rec_reader_open(argv + optind, argc - optind);
	f.w = rec_writer_open(1, "stdout", flags);
	struct grouper *gr = grouped ? grouper_new(by, group_by, sorted,
	    on_group, &f) : NULL;
	struct rec r;
	while (rec_read(rd, &r)) {
		if (where == NULL || expr_eval(where, &r)) {
			if (gr != NULL)
				grouper_add(gr, &r);
			else
				rec_write(f.w, &r);
		}
		rec_free(&r);
	}
	if (gr != NULL)
		grouper_end(gr);
	rec_writer_close(f.w);
	rec_reader_close(rd);
	if (f.truth != NULL)
		report_r2(&f, bins, by, report, flags & ~REC_AUTO);
	expr_free(where);
	free(f.pts);
	free(f.scratch);
	pp_close_stdout();
	return 0;
}
