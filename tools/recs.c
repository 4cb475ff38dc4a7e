/*
 * recs: inspect and convert record streams.
 *
 * Every subcommand reads records in any form the library detects (msgpack,
 * JSON Lines, either zstd-compressed) from its file operands or stdin.
 */
#include "config.h"

#include <err.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "records/record.h"
#include "util/rng.h"
#include "records/trl.h"
#include "scoring/judge.h"
#include "scoring/ranking.h"
#include "util/strmap.h"
#include "util/util.h"

#define SYNOPSIS \
	"recs cat [-Jz] [FILE ...]\n" \
	"       recs to-json [-z] [FILE ...]\n" \
	"       recs from-json [-z] [FILE ...]\n" \
	"       recs head [-Jz] [-n N] [FILE ...]\n" \
	"       recs count [FILE ...]\n" \
	"       recs stats [-Jz] [--by FIELD] [FIELD ...]\n" \
	"       recs to-tsv [-H] FIELD ...\n" \
	"       recs from-trl [-Jz] [FILE ...]\n" \
	"       recs to-trl [-z] [FILE ...]\n" \
	"       recs rank-accuracy [-Jz] [--policy PREFIX] [--ref PREFIX] " \
	"[--beta B]\n" \
	"                          [--alpha FIELD] [FILE ...]\n" \
	"       recs judge-data [-Jz] --template FILE [--labels A,B] [--dpo] " \
	"[FILE ...]\n" \
	"       recs gen arith [-Jz] [-n N] [--seed S] [--digits D] " \
	"[--split train|eval]\n" \
	"                      [--sft] [--noise P [--systematic]]"

/* Output options shared by the subcommands that write records. */
static int out_flags = REC_AUTO;

static const struct option out_opts[] = {
	{ "json", no_argument, NULL, 'J' },
	{ "zstd", no_argument, NULL, 'z' },
	{ "lines", required_argument, NULL, 'n' },
	{ "by", required_argument, NULL, 'b' },
	{ "header", no_argument, NULL, 'H' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

/*
 * Parse the options of a subcommand; allowed lists its option letters.
 * Returns the index of the first operand.
 */
static int
parse_opts(int argc, char **argv, const char *allowed, long long *n,
    const char **by, int *header)
{
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "Jzn:b:Hh", out_opts, NULL)) != -1) {
		if (c == 'h')
			pp_help();
		if (c == '?' || strchr(allowed, c) == NULL)
			pp_usage(c == '?' ? NULL : "%s: option -%c not "
			    "allowed here", argv[0], c);
		switch (c) {
		case 'J':
		case 'z':
			rec_output_option(c, &out_flags);
			break;
		case 'n':
			*n = pp_parse_int("-n", optarg, 0, (long long)1 << 62);
			break;
		case 'b':
			*by = optarg;
			break;
		case 'H':
			*header = 1;
			break;
		}
	}
	return optind;
}

/* cat, to-json, from-json, head: copy records, re-encoded. */
static int
cmd_copy(int argc, char **argv, int flags, const char *allowed)
{
	long long limit = strchr(allowed, 'n') ? 10 : -1;	/* head: 10 */
	int first = parse_opts(argc, argv, allowed, &limit, NULL, NULL);
	if (flags >= 0)
		out_flags = (out_flags & REC_ZSTD) | flags;
	struct rec_reader *rd = rec_reader_open(argv + first, argc - first);
	struct rec_writer *w = rec_writer_open(1, "stdout", out_flags);
	struct rec r;
	for (long long i = 0; limit < 0 || i < limit; i++) {
		if (!rec_read(rd, &r))
			break;
		rec_write(w, &r);
		rec_free(&r);
	}
	rec_writer_close(w);
	rec_reader_close(rd);
	return 0;
}

static int
cmd_count(int argc, char **argv)
{
	int first = parse_opts(argc, argv, "", NULL, NULL, NULL);
	struct rec_reader *rd = rec_reader_open(argv + first, argc - first);
	struct rec r;
	unsigned long long n = 0;
	while (rec_read(rd, &r)) {
		n++;
		rec_free(&r);
	}
	rec_reader_close(rd);
	printf("%llu\n", n);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* from-trl, to-trl: TRL's dataset formats (lib/records/trl.h) */

static int
cmd_trl(int argc, char **argv, int from)
{
	int first = parse_opts(argc, argv, from ? "Jz" : "z", NULL, NULL,
	    NULL);
	if (!from)	/* for Python's tooling: JSON Lines */
		out_flags = (out_flags & REC_ZSTD) | REC_JSON;
	struct rec_reader *rd = rec_reader_open(argv + first, argc - first);
	struct rec_writer *w = rec_writer_open(1, "stdout", out_flags);
	struct rec r, o;
	uint64_t ordinal = 0;
	while (rec_read(rd, &r)) {
		ordinal++;
		if (from)
			(void)trl_to_rec(&r, ordinal, &o);
		else
			(void)trl_from_rec(&r, &o);
		rec_write(w, &o);
		rec_free(&o);
		rec_free(&r);
	}
	rec_writer_close(w);
	rec_reader_close(rd);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* stats */

/* Running moments of one field in one group (Welford's update). */
struct moments {
	uint64_t n;
	double mean, m2, min, max;
};

struct group {
	msgpack_object key;	/* the --by value (in keyzone) */
	uint64_t records;
	struct moments *m;	/* one per field */
	size_t nm;
};

static void
moments_add(struct moments *m, double x)
{
	if (m->n == 0 || x < m->min)
		m->min = x;
	if (m->n == 0 || x > m->max)
		m->max = x;
	m->n++;
	double d = x - m->mean;
	m->mean += d / (double)m->n;
	m->m2 += d * (x - m->mean);
}

static int
cmd_stats(int argc, char **argv)
{
	const char *by = NULL;
	int first = parse_opts(argc, argv, "Jzb", NULL, &by, NULL);
	char **fields = argv + first;
	size_t nfields = (size_t)(argc - first);
	int all = nfields == 0;		/* every numeric top-level field */
	char **names = NULL;		/* the fields, in order seen */
	struct strmap *fieldidx = strmap_new(), *groupidx = strmap_new();
	struct group *groups = NULL;
	size_t ngroups = 0, groupcap = 0, namecap = nfields;
	msgpack_zone *keyzone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	msgpack_sbuffer kb;
	msgpack_packer kp;
	msgpack_sbuffer_init(&kb);
	msgpack_packer_init(&kp, &kb, msgpack_sbuffer_write);

	if (by != NULL)
		rec_path_option("stats: --by", by);
	for (size_t i = 0; i < nfields; i++)
		rec_path_option("stats", fields[i]);
	if (!all) {
		names = fields;
		for (size_t i = 0; i < nfields; i++)
			strmap_put(fieldidx, fields[i], strlen(fields[i]),
			    (long)i);
	}
	struct rec_reader *rd = rec_reader_open(NULL, 0);
	struct rec r;
	while (rec_read(rd, &r)) {
		/* Find the record's group by the bytes of its key. */
		msgpack_object nil = { .type = MSGPACK_OBJECT_NIL };
		const msgpack_object *kv = by ? rec_get_path(&r, by) : NULL;
		if (kv == NULL)
			kv = &nil;
		msgpack_sbuffer_clear(&kb);
		msgpack_pack_object(&kp, *kv);
		long g = strmap_get(groupidx, kb.data, kb.size);
		if (g < 0) {
			g = (long)ngroups++;
			/* Doubling: one new group per record must not be
			 * quadratic in the number of groups. */
			if (ngroups > groupcap) {
				groupcap = groupcap ? 2 * groupcap : 16;
				groups = xreallocarray(groups, groupcap,
				    sizeof(*groups));
			}
			memset(&groups[g], 0, sizeof(groups[g]));
			/* Keep the key: unpack a copy of its bytes. */
			char *bytes = msgpack_zone_malloc(keyzone, kb.size);
			memcpy(bytes, kb.data, kb.size);
			size_t off = 0;
			msgpack_unpack(bytes, kb.size, &off, keyzone,
			    &groups[g].key);
			strmap_put(groupidx, kb.data, kb.size, g);
		}
		struct group *gr = &groups[g];
		gr->records++;
		if (gr->nm < nfields) {
			gr->m = xreallocarray(gr->m, nfields, sizeof(*gr->m));
			memset(gr->m + gr->nm, 0, (nfields - gr->nm) *
			    sizeof(*gr->m));
			gr->nm = nfields;
		}
		if (all) {
			for (uint32_t i = 0; i < r.n; i++) {
				double x;
				const msgpack_object *k = &r.kv[i].key;
				if (!rec_obj_num(&r.kv[i].val, &x))
					continue;
				if (by && k->via.str.size == strlen(by) &&
				    memcmp(k->via.str.ptr, by, strlen(by)) == 0)
					continue;
				long f = strmap_get(fieldidx, k->via.str.ptr,
				    k->via.str.size);
				if (f < 0) {
					f = (long)nfields++;
					if (nfields > namecap) {
						namecap = 2 * namecap + 8;
						names = xreallocarray(names,
						    namecap, sizeof(*names));
					}
					names[f] = xmalloc(k->via.str.size + 1);
					memcpy(names[f], k->via.str.ptr,
					    k->via.str.size);
					names[f][k->via.str.size] = 0;
					strmap_put(fieldidx, names[f],
					    k->via.str.size, f);
					gr->m = xreallocarray(gr->m, nfields,
					    sizeof(*gr->m));
					memset(&gr->m[f], 0, sizeof(gr->m[f]));
					gr->nm = nfields;
				}
				moments_add(&gr->m[f], x);
			}
		} else {
			for (size_t f = 0; f < nfields; f++) {
				const msgpack_object *v = rec_get_path(&r,
				    fields[f]);
				double x;
				if (v == NULL || v->type == MSGPACK_OBJECT_NIL)
					continue;
				if (!rec_obj_num(v, &x))
					rec_die(&r, fields[f], "expected number, "
					    "got %s", rec_type_name(v));
				moments_add(&gr->m[f], x);
			}
		}
		rec_free(&r);
	}
	rec_reader_close(rd);

	/* One record per group, in the order the groups first appeared. */
	struct rec_writer *w = rec_writer_open(1, "stdout", out_flags);
	for (size_t g = 0; g < ngroups; g++) {
		struct rec o, s;
		rec_init(&o, "stats", g + 1);
		if (by)
			rec_set_obj(&o, by, &groups[g].key);
		rec_set_uint(&o, "count", groups[g].records);
		for (size_t f = 0; f < nfields; f++) {
			struct moments m = { 0 };
			if (f < groups[g].nm)
				m = groups[g].m[f];
			rec_init(&s, "stats", g + 1);
			rec_set_uint(&s, "count", m.n);
			if (m.n > 0) {
				rec_set_num(&s, "mean", m.mean);
				rec_set_num(&s, "std", sqrt(m.m2 /
				    (double)m.n));
				rec_set_num(&s, "min", m.min);
				rec_set_num(&s, "max", m.max);
			}
			rec_set_sub(&o, names[f], &s);
			rec_free(&s);
		}
		rec_write(w, &o);
		rec_free(&o);
		free(groups[g].m);
	}
	rec_writer_close(w);
	if (all) {
		for (size_t f = 0; f < nfields; f++)
			free(names[f]);
		free(names);
	}
	free(groups);
	strmap_free(fieldidx);
	strmap_free(groupidx);
	msgpack_sbuffer_destroy(&kb);
	msgpack_zone_free(keyzone);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* to-tsv */

/* A value as one TSV cell: strings raw with \t \n \r \\ escaped. */
static void
tsv_cell(struct strbuf *b, const struct rec *r, const char *field,
    const msgpack_object *v)
{
	if (v == NULL || v->type == MSGPACK_OBJECT_NIL)
		return;
	if (v->type == MSGPACK_OBJECT_STR) {
		const char *s = v->via.str.ptr;
		for (uint32_t i = 0; i < v->via.str.size; i++) {
			switch (s[i]) {
			case '\t': sb_add(b, "\\t", 2); break;
			case '\n': sb_add(b, "\\n", 2); break;
			case '\r': sb_add(b, "\\r", 2); break;
			case '\\': sb_add(b, "\\\\", 2); break;
			default: sb_addc(b, s[i]);
			}
		}
		return;
	}
	int e = json_emit(b, v);
	if (e != 0)
		rec_die(r, field, "%s", json_emit_error(e));
}

static int
cmd_to_tsv(int argc, char **argv)
{
	int header = 0;
	int first = parse_opts(argc, argv, "H", NULL, NULL, &header);
	if (first == argc)
		pp_usage("to-tsv: no fields named");
	struct strbuf line;
	sb_init(&line);
	if (header) {
		for (int f = first; f < argc; f++) {
			if (f > first)
				sb_addc(&line, '\t');
			sb_adds(&line, argv[f]);
		}
		puts(line.data);
	}
	struct rec_reader *rd = rec_reader_open(NULL, 0);
	struct rec r;
	while (rec_read(rd, &r)) {
		sb_clear(&line);
		for (int f = first; f < argc; f++) {
			if (f > first)
				sb_addc(&line, '\t');
			tsv_cell(&line, &r, argv[f], rec_get_path(&r, argv[f]));
		}
		sb_addc(&line, '\n');
		fwrite(line.data, 1, line.len, stdout);
		rec_free(&r);
	}
	rec_reader_close(rd);
	sb_free(&line);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* gen arith: the embedded default task */

/*
 * Addition problems "a+b=" with a and b of up to D digits.  The problem
 * space is split for good by a hash of (a, b): one in ten problems is held
 * out for evaluation, so train and eval never share a problem whatever the
 * seed or count.  With --sft a record carries a response (the answer, or
 * with probability P a near miss), so the SFT model learns a noisy skill.
 */
static int
is_eval(uint64_t a, uint64_t b)
{
	uint64_t st = a * 1000003u + b;
	return splitmix64(&st) % 10 == 0;
}

static int
cmd_gen(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'J' },
		{ "zstd", no_argument, NULL, 'z' },
		{ "seed", required_argument, NULL, 's' },
		{ "digits", required_argument, NULL, 'd' },
		{ "split", required_argument, NULL, 'p' },
		{ "sft", no_argument, NULL, 'f' },
		{ "noise", required_argument, NULL, 'e' },
		{ "systematic", no_argument, NULL, 'y' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	long long n = 1000, seed = 0, digits = 3;
	double noise = 0;
	int eval = 0, sft = 0, have_noise = 0, systematic = 0, c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "Jzn:", opts, NULL)) != -1) {
		switch (c) {
		case 'J':
		case 'z':
			rec_output_option(c, &out_flags);
			break;
		case 'n':
			n = pp_parse_int("-n", optarg, 0, (long long)1 << 40);
			break;
		case 's':
			seed = pp_parse_int("--seed", optarg, 0, LLONG_MAX);
			break;
		case 'd':
			digits = pp_parse_int("--digits", optarg, 1, 9);
			break;
		case 'p':
			if (strcmp(optarg, "train") != 0 &&
			    strcmp(optarg, "eval") != 0)
				pp_usage("--split: train or eval, not %s",
				    optarg);
			eval = strcmp(optarg, "eval") == 0;
			break;
		case 'f':
			sft = 1;
			break;
		case 'e':
			noise = pp_parse_num("--noise", optarg, 0, 1);
			have_noise = 1;
			break;
		case 'y':
			systematic = 1;
			break;
		case 'h':
			pp_help();
		default:
			pp_usage(NULL);
		}
	}
	if (optind != argc - 1 || strcmp(argv[optind], "arith") != 0)
		pp_usage("gen: the only task is arith");
	/* The noise is in the response, which only --sft writes. */
	if (have_noise && !sft)
		pp_usage("gen: --noise needs --sft");
	if (systematic && !have_noise)
		pp_usage("gen: --systematic needs --noise");

	uint64_t range = 1;
	for (int i = 0; i < digits; i++)
		range *= 10;
	struct rng g;
	rng_seed(&g, (uint64_t)seed);
	struct rec_writer *w = rec_writer_open(1, "stdout", out_flags);
	char prompt[64], answer[32], id[64];
	for (long long i = 0; i < n; i++) {
		uint64_t a, b;
		do {
			a = rng_below(&g, range);
			b = rng_below(&g, range);
		} while (is_eval(a, b) != eval);
		snprintf(prompt, sizeof(prompt), "%llu+%llu=",
		    (unsigned long long)a, (unsigned long long)b);
		snprintf(answer, sizeof(answer), "%llu",
		    (unsigned long long)(a + b));
		snprintf(id, sizeof(id), "%s-%llu-%lld", eval ? "eval" :
		    "train", (unsigned long long)seed, i);
		struct rec r;
		rec_init(&r, "gen", (uint64_t)i + 1);
		rec_set_str(&r, "id", id);
		rec_set_str(&r, "prompt", prompt);
		rec_set_str(&r, "answer", answer);
		if (sft) {
			/*
			 * A near miss: one digit of the sum one up or down
			 * (9 and 0 wrap).  A leading digit may not become 0,
			 * so from 1 it goes up and from 9 down: every near
			 * miss differs from the answer.  --systematic: always
			 * the last digit, always up (9 to 0), so that with
			 * P > 1/2 the commonest response is wrong.
			 */
			char resp[32];
			snprintf(resp, sizeof(resp), "%s", answer);
			if (rng_uniform(&g) < noise) {
				size_t len = strlen(resp);
				/* (drawn either way: --systematic changes
				 * which digit, not the prompts or which
				 * responses miss) */
				size_t k = (size_t)rng_below(&g, len);
				int up = (int)rng_below(&g, 2);
				if (systematic) {
					k = len - 1;
					up = 1;
				}
				int d = resp[k] - '0';
				if (k == 0 && len > 1 && d == 1)
					up = 1;
				else if (k == 0 && len > 1 && d == 9)
					up = 0;
				resp[k] = (char)('0' + (up ? (d + 1) % 10 :
				    (d + 9) % 10));
			}
			rec_set_str(&r, "response", resp);
		}
		rec_write(w, &r);
		rec_free(&r);
	}
	rec_writer_close(w);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* rank-accuracy */

static int
cmd_rank(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "policy", required_argument, NULL, 'p' },
		{ "ref", required_argument, NULL, 'r' },
		{ "beta", required_argument, NULL, 'B' },
		{ "alpha", required_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'J' },
		{ "zstd", no_argument, NULL, 'z' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct rank_opts o = { "policy", "ref", NULL, "margin", 0.1 };
	struct rank_acc a = { 0 };
	struct rec r, out;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "Jzh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
		case 'r':
			if (*optarg == 0)
				pp_usage("rank-accuracy: --%s: empty prefix",
				    c == 'p' ? "policy" : "ref");
			*(c == 'p' ? &o.policy : &o.ref) = optarg;
			break;
		case 'B':
			o.beta = pp_parse_num("--beta", optarg, 1e-12, 1e12);
			break;
		case 'a':
			rec_path_option("rank-accuracy: --alpha", optarg);
			o.alpha = optarg;
			break;
		case 'J':
		case 'z':
			rec_output_option(c, &out_flags);
			break;
		case 'h':
			pp_help();
		default:
			pp_usage(NULL);
		}
	}
	struct rec_reader *rd = rec_reader_open(argv + optind, argc - optind);
	while (rec_read(rd, &r)) {
		rank_acc_add(&a, &r, &o);
		rec_free(&r);
	}
	rec_reader_close(rd);
	if (a.pairs == 0)
		errx(EXIT_DATA, "rank-accuracy: no pairs");
	if (a.ref_pairs > 0 && a.ref_pairs < a.pairs)
		errx(EXIT_DATA, "rank-accuracy: %llu of %llu pairs have the "
		    "reference's sums (%s_logprob): all or none",
		    (unsigned long long)a.ref_pairs,
		    (unsigned long long)a.pairs, o.ref);
	struct rec_writer *w = rec_writer_open(1, "stdout", out_flags);
	rec_init(&out, "rank-accuracy", 1);
	rec_set_uint(&out, "pairs", a.pairs);
	rec_set_num(&out, "ranking_accuracy",
	    (double)a.policy_correct / a.pairs);
	if (a.ref_pairs == a.pairs) {
		rec_set_num(&out, "ref_ranking_accuracy",
		    (double)a.ref_correct / a.pairs);
		rec_set_num(&out, "idealized_ranking_accuracy",
		    (double)a.ideal_correct / a.pairs);
		rec_set_num(&out, "beta", o.beta);
	}
	rec_write(w, &out);
	rec_free(&out);
	rec_writer_close(w);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* judge-data */

/* One judging example: the template of pair r in one order, answered. */
static void
judge_example(struct rec_writer *w, const struct rec *r, const char *tmpl,
    int order, const char *const lab[2], int dpo)
{
	size_t alen, blen;
	const char *a = judge_field(r, "chosen.response", &alen);
	const char *b = judge_field(r, "rejected.response", &blen);
	char *text = order == 0 ?
	    judge_template_render(tmpl, 1, r, a, alen, b, blen) :
	    judge_template_render(tmpl, 1, r, b, blen, a, alen);
	const char *right = lab[order], *wrong = lab[1 - order];
	struct rec o, side;
	msgpack_object turns;
	msgpack_object_kv kv[2][2];
	msgpack_object arr[2];

	/* messages: the user's turn, and for SFT the answer's */
	for (int t = 0; t < 2; t++) {
		kv[t][0].key = (msgpack_object){ .type = MSGPACK_OBJECT_STR,
		    .via.str = { 4, "role" } };
		kv[t][1].key = (msgpack_object){ .type = MSGPACK_OBJECT_STR,
		    .via.str = { 7, "content" } };
		arr[t].type = MSGPACK_OBJECT_MAP;
		arr[t].via.map.ptr = kv[t];
		arr[t].via.map.size = 2;
	}
	kv[0][0].val = (msgpack_object){ .type = MSGPACK_OBJECT_STR,
	    .via.str = { 4, "user" } };
	kv[0][1].val = (msgpack_object){ .type = MSGPACK_OBJECT_STR,
	    .via.str = { (uint32_t)strlen(text), text } };
	kv[1][0].val = (msgpack_object){ .type = MSGPACK_OBJECT_STR,
	    .via.str = { 9, "assistant" } };
	kv[1][1].val = (msgpack_object){ .type = MSGPACK_OBJECT_STR,
	    .via.str = { (uint32_t)strlen(right), right } };
	turns.type = MSGPACK_OBJECT_ARRAY;
	turns.via.array.ptr = arr;
	turns.via.array.size = dpo ? 1 : 2;
	rec_init(&o, r->src, r->recno);
	const msgpack_object *id = rec_get(r, "id");
	if (id != NULL)
		rec_set_obj(&o, "id", id);
	rec_set_int(&o, "order", order);
	rec_set_obj(&o, "messages", &turns);
	if (dpo) {
		for (int k = 0; k < 2; k++) {
			rec_init(&side, r->src, r->recno);
			rec_set_str(&side, "response", k == 0 ? right : wrong);
			rec_set_sub(&o, k == 0 ? "chosen" : "rejected", &side);
			rec_free(&side);
		}
	}
	rec_write(w, &o);
	rec_free(&o);
	free(text);
}

static int
cmd_judge_data(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "template", required_argument, NULL, 't' },
		{ "labels", required_argument, NULL, 'l' },
		{ "dpo", no_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'J' },
		{ "zstd", no_argument, NULL, 'z' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *path = NULL, *labels = "A,B";
	int dpo = 0, c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "Jzh", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			path = optarg;
			break;
		case 'l':
			labels = optarg;
			break;
		case 'd':
			dpo = 1;
			break;
		case 'J':
		case 'z':
			rec_output_option(c, &out_flags);
			break;
		case 'h':
			pp_help();
		default:
			pp_usage(NULL);
		}
	}
	if (path == NULL)
		pp_usage("judge-data: --template FILE is required");
	const char *comma = strchr(labels, ',');
	if (comma == NULL || comma == labels || comma[1] == 0 ||
	    strchr(comma + 1, ',') != NULL)
		pp_usage("judge-data: --labels: two labels, \"A,B\"");
	char *lab0 = xstrndup(labels, (size_t)(comma - labels));
	const char *lab[2] = { lab0, comma + 1 };
	char *tmpl = judge_template_load(path);
	struct rec_reader *rd = rec_reader_open(argv + optind, argc - optind);
	struct rec_writer *w = rec_writer_open(1, "stdout", out_flags);
	struct rec r;
	while (rec_read(rd, &r)) {
		judge_example(w, &r, tmpl, 0, lab, dpo);
		judge_example(w, &r, tmpl, 1, lab, dpo);
		rec_free(&r);
	}
	rec_writer_close(w);
	rec_reader_close(rd);
	free(tmpl);
	free(lab0);
	return 0;
}

/* ------------------------------------------------------------------------ */

int
main(int argc, char **argv)
{
	pp_init(argc, argv);
	pp_synopsis = SYNOPSIS;
	if (argc < 2)
		pp_usage(NULL);
	const char *cmd = argv[1];
	argc--;
	argv++;
	int rc;
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0)
		pp_help();
	else if (strcmp(cmd, "cat") == 0)
		rc = cmd_copy(argc, argv, -1, "Jz");
	else if (strcmp(cmd, "to-json") == 0)
		rc = cmd_copy(argc, argv, REC_JSON, "z");
	else if (strcmp(cmd, "from-json") == 0)
		rc = cmd_copy(argc, argv, 0, "z");
	else if (strcmp(cmd, "head") == 0) {
		rc = cmd_copy(argc, argv, -1, "Jzn");
	} else if (strcmp(cmd, "count") == 0)
		rc = cmd_count(argc, argv);
	else if (strcmp(cmd, "stats") == 0)
		rc = cmd_stats(argc, argv);
	else if (strcmp(cmd, "to-tsv") == 0)
		rc = cmd_to_tsv(argc, argv);
	else if (strcmp(cmd, "gen") == 0)
		rc = cmd_gen(argc, argv);
	else if (strcmp(cmd, "from-trl") == 0)
		rc = cmd_trl(argc, argv, 1);
	else if (strcmp(cmd, "to-trl") == 0)
		rc = cmd_trl(argc, argv, 0);
	else if (strcmp(cmd, "rank-accuracy") == 0)
		rc = cmd_rank(argc, argv);
	else if (strcmp(cmd, "judge-data") == 0)
		rc = cmd_judge_data(argc, argv);
	else
		pp_usage("unknown command: %s", cmd);
	pp_close_stdout();
	return rc;
}
