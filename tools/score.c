/*
 * score: add a score to every record of a stream.
 *
 * One scorer per invocation; scorers chain in a pipeline.  Records stream
 * through in order and every field passes through; the scorer adds its
 * field (reward, or what --as names) to the record, or inside the chosen
 * and rejected maps of a pair record.
 */
#include "config.h"

#include <err.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "model/model.h"
#include "records/rec_part.h"
#include "model/model_lora.h"
#include "records/record.h"
#include "scoring/judge.h"
#include "scoring/scorer.h"
#include "text/conversation.h"
#include "util/dist.h"
#include "util/progress.h"
#include "util/util.h"

#define SYNOPSIS \
	"score --exact [--answer-field FIELD] [--extract REGEX] [--as FIELD]\n" \
	"             [-Jz] [FILE ...]\n" \
	"       score --cmd COMMAND [--window N] [--timeout S] [--as FIELD] [-Jz]\n" \
	"             [FILE ...]\n" \
	"       score --logprob CKPT [--as PREFIX] [--ratio-to PREFIX] [--retokenize]\n" \
	"             [-b TOKENS] [--chat-template NAME]\n" \
	"             [--template-arg KEY=VALUE]... [--weights TYPE]\n" \
	"             [-qJz] [FILE ...]\n" \
	"       score --rm CKPT [--as FIELD] [-b TOKENS] [--chat-template NAME]\n" \
	"             [--template-arg KEY=VALUE]... [--weights TYPE] [-qJz]\n" \
	"             [FILE ...]\n" \
	"       score --value CKPT [--as FIELD] [-b TOKENS] " \
	"[--chat-template NAME]\n" \
	"             [--template-arg KEY=VALUE]... [--weights TYPE] [-qJz]\n" \
	"             [FILE ...]\n" \
	"       score --judge CKPT --template FILE [--pairwise] [--labels LIST]\n" \
	"             [--as FIELD] [-b TOKENS] [--chat-template NAME]\n" \
	"             [--template-arg KEY=VALUE]... [--weights TYPE] [-qJz]\n" \
	"             [FILE ...]\n" \
	"       score --flr CKPT [--positive FILE] [--negative FILE] [--details]\n" \
	"             [--no-cache] [--as FIELD] [-b TOKENS]\n" \
	"             [--chat-template NAME] [--template-arg KEY=VALUE]...\n" \
	"             [--weights TYPE] [-qJz] [FILE ...]\n" \
	"       (with --logprob, --rm, --flr, --value: [--base CKPT] for an adapter)\n" \
	"       (with a model: [--compute f32|bf16])"

enum scorer { S_NONE, S_EXACT, S_CMD, S_LOGPROB, S_RM, S_FLR, S_VALUE,
	S_JUDGE };

enum {
	O_EXACT = 256, O_ANSWER, O_EXTRACT, O_CMD, O_LOGPROB, O_RM, O_FLR,
	O_POSITIVE, O_NEGATIVE, O_DETAILS, O_AS, O_RETOKENIZE, O_NOCACHE,
	O_CHAT, O_TARG, O_WINDOW, O_TIMEOUT, O_VALUE, O_JUDGE, O_TEMPLATE,
	O_PAIRWISE, O_LABELS, O_RATIO_TO, O_BASE, O_WEIGHTS, O_COMPUTE
};

static const struct option longopts[] = {
	{ "exact", no_argument, NULL, O_EXACT },
	{ "answer-field", required_argument, NULL, O_ANSWER },
	{ "extract", required_argument, NULL, O_EXTRACT },
	{ "cmd", required_argument, NULL, O_CMD },
	{ "logprob", required_argument, NULL, O_LOGPROB },
	{ "rm", required_argument, NULL, O_RM },
	{ "flr", required_argument, NULL, O_FLR },
	{ "value", required_argument, NULL, O_VALUE },
	{ "judge", required_argument, NULL, O_JUDGE },
	{ "template", required_argument, NULL, O_TEMPLATE },
	{ "pairwise", no_argument, NULL, O_PAIRWISE },
	{ "labels", required_argument, NULL, O_LABELS },
	{ "ratio-to", required_argument, NULL, O_RATIO_TO },
	{ "positive", required_argument, NULL, O_POSITIVE },
	{ "negative", required_argument, NULL, O_NEGATIVE },
	{ "details", no_argument, NULL, O_DETAILS },
	{ "as", required_argument, NULL, O_AS },
	{ "retokenize", no_argument, NULL, O_RETOKENIZE },
	{ "no-cache", no_argument, NULL, O_NOCACHE },
	{ "chat-template", required_argument, NULL, O_CHAT },
	{ "template-arg", required_argument, NULL, O_TARG },
	{ "base", required_argument, NULL, O_BASE },
	{ "weights", required_argument, NULL, O_WEIGHTS },
	{ "compute", required_argument, NULL, O_COMPUTE },
	{ "window", required_argument, NULL, O_WINDOW },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "batch-tokens", required_argument, NULL, 'b' },
	{ "json", no_argument, NULL, 'J' },
	{ "zstd", no_argument, NULL, 'z' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

static const char *scorer_opt[] = {
	"", "--exact", "--cmd", "--logprob", "--rm", "--flr", "--value",
	"--judge"
};

static void
pick(enum scorer *s, enum scorer want)
{
	if (*s != S_NONE && *s != want)
		pp_usage("%s and %s: one scorer per invocation", scorer_opt[*s],
		    scorer_opt[want]);
	*s = want;
}

/* An option that only one scorer takes, given to another. */
static void
only_for(int given, const char *opt, enum scorer s, enum scorer want)
{
	if (given && s != want)
		pp_usage("%s does not apply to %s", opt, scorer_opt[s]);
}

static int quiet;	/* -q: no progress line */

/*
 * Under mpirun rank r scores the records whose ordinal is r modulo K and
 * notes each one's ordinal: every record read gives one written, in the
 * same order, so rank 0 can put them back in input order.
 */
static struct rec_part *part;
static uint64_t nread;

static int
next_rec(struct rec_reader *rd, struct rec *r)
{
	int K = pp_dist_size(), me = pp_dist_rank();

	while (rec_read(rd, r)) {
		uint64_t ord = nread++;
		if ((int)(ord % (uint64_t)K) == me) {
			rec_part_note(part, ord);
			return 1;
		}
		rec_free(r);
	}
	return 0;
}

/* --exact: every side's response against the record's answer. */
static void
run_exact(struct rec_reader *rd, struct rec_writer *w, const char *field,
    const char *pattern, const char *as)
{
	struct exact *e = exact_new(pattern);
	struct side s[2];
	struct rec r;

	while (next_rec(rd, &r)) {
		int n = sides_open(&r, s, 0);
		for (int i = 0; i < n; i++) {
			size_t alen, rlen;
			const char *ans = side_need_str(&s[i], field, 1, &alen);
			const char *resp = side_need_str(&s[i], "response", 0,
			    &rlen);
			int ok = exact_match(e, resp, rlen, ans, alen);
			if (ok < 0)
				side_die(&s[i], "response", 0, "--extract: %s",
				    exact_error(e));
			side_set_num(&s[i], as, ok ? 1.0 : 0.0);
		}
		sides_close(s, n);
		rec_write(w, &r);
		rec_free(&r);
	}
	exact_free(e);
}

/* --cmd: one child for the whole stream, records streamed to it. */
struct cmd_out {
	struct rec_writer *w;
	const char *as;
};

static void
cmd_done(struct rec *r, double v, void *arg)
{
	struct cmd_out *o = arg;
	rec_set_num(r, o->as, v);
	rec_write(o->w, r);
}

/* A bad input record: the records before it are answered and written
 * first (cmd_drain), as everywhere else. */
static struct cmd_child *cmd_running;
static void (*cmd_data_error)(const char *msg);

static void
cmd_on_data_error(const char *msg)
{
	rec_error_hook = cmd_data_error;
	cmd_drain(cmd_running);
	cmd_data_error(msg);
}

static void
run_cmd(struct rec_reader *rd, struct rec_writer *w, const char *command,
    const char *as, int window, double timeout)
{
	struct cmd_out o = { w, as };
	struct cmd_child *c = cmd_start(command, window, timeout, cmd_done, &o);
	struct rec r;

	cmd_running = c;
	cmd_data_error = rec_error_hook;
	for (;;) {
		/* Only the reader's errors drain: the child's own end it. */
		rec_error_hook = cmd_on_data_error;
		int got = next_rec(rd, &r);
		rec_error_hook = cmd_data_error;
		if (!got)
			break;
		cmd_send(c, &r);
	}
	cmd_finish(c);
}

/* --judge: records in batches through the judge. */
static void
run_judge(struct rec_reader *rd, struct rec_writer *w, const char *ckpt,
    const struct judge_opts *o)
{
	struct judge *j = judge_new(ckpt, o);
	struct progress *pr = progress_new("records", 0, quiet);
	struct rec r;
	uint64_t n = 0;

	while (next_rec(rd, &r)) {
		judge_add(j, &r, w);
		progress_update(pr, ++n, judge_tokens(j), NULL);
	}
	judge_flush(j, w);
	progress_end(pr);
	judge_free(j);
}

/* --logprob, --rm, --flr: records in batches through the model. */
static void
run_model(struct rec_reader *rd, struct rec_writer *w, enum ms_kind kind,
    const char *ckpt, const struct ms_opts *o)
{
	struct mscorer *ms = ms_new(kind, ckpt, o);
	struct progress *pr = progress_new("records", 0, quiet);
	struct rec r;
	uint64_t n = 0;

	while (next_rec(rd, &r)) {
		ms_add(ms, &r, w);
		progress_update(pr, ++n, ms_stats(ms)->tokens, NULL);
	}
	ms_flush(ms, w);
	progress_update(pr, n, ms_stats(ms)->tokens, NULL);
	progress_end(pr);
	if (getenv("PREFPIPE_SCORE_STATS") != NULL) {
		const struct ms_stats *st = ms_stats(ms);
		fprintf(stderr, "score: %llu records, %llu model positions, "
		    "%llu sequence tokens, %.3f s in the model, %.3f s in "
		    "all\n", (unsigned long long)st->records,
		    (unsigned long long)st->tokens,
		    (unsigned long long)st->seq_tokens, st->model_s,
		    st->total_s);
	}
	ms_free(ms);
}

int
main(int argc, char **argv)
{
	enum scorer s = S_NONE;
	const char *answer = NULL, *extract = NULL, *command = NULL;
	const char *ckpt = NULL, *positive = NULL, *negative = NULL;
	const char *as = NULL, *chat = NULL, *tmpl = NULL, *labels = NULL;
	const char *ratio_to = NULL, *base = NULL;
	int pairwise = 0;
	json_t *targs = NULL;	/* --template-arg */
	int details = 0, retokenize = 0, nocache = 0, flags = REC_AUTO;
	const char *weights = NULL, *compute = NULL;
	long long batch = 0, window = -1;
	double timeout = -1;
	int c;

	pp_dist_init(&argc, &argv);
	pp_init(argc, argv);
	pp_synopsis = SYNOPSIS;
	while ((c = getopt_long(argc, argv, "b:qJzh", longopts, NULL)) != -1) {
		switch (c) {
		case 'q':
			quiet = 1;
			break;
		case O_EXACT:
			pick(&s, S_EXACT);
			break;
		case O_ANSWER:
			answer = optarg;
			break;
		case O_EXTRACT:
			extract = optarg;
			break;
		case O_CMD:
			pick(&s, S_CMD);
			command = optarg;
			break;
		case O_LOGPROB:
			pick(&s, S_LOGPROB);
			ckpt = optarg;
			break;
		case O_RM:
			pick(&s, S_RM);
			ckpt = optarg;
			break;
		case O_FLR:
			pick(&s, S_FLR);
			ckpt = optarg;
			break;
		case O_VALUE:
			pick(&s, S_VALUE);
			ckpt = optarg;
			break;
		case O_JUDGE:
			pick(&s, S_JUDGE);
			ckpt = optarg;
			break;
		case O_TEMPLATE:
			tmpl = optarg;
			break;
		case O_PAIRWISE:
			pairwise = 1;
			break;
		case O_LABELS:
			labels = optarg;
			break;
		case O_RATIO_TO:
			if (*optarg == 0)
				pp_usage("--ratio-to: empty prefix");
			ratio_to = optarg;
			break;
		case O_POSITIVE:
			positive = optarg;
			break;
		case O_NEGATIVE:
			negative = optarg;
			break;
		case O_DETAILS:
			details = 1;
			break;
		case O_AS:
			if (*optarg == 0)
				pp_usage("--as: empty field name");
			as = optarg;
			break;
		case O_RETOKENIZE:
			retokenize = 1;
			break;
		case O_NOCACHE:
			nocache = 1;
			break;
		case O_CHAT:
			chat = optarg;
			break;
		case O_TARG: {
			char e[256];
			if (targs == NULL)
				targs = json_object();
			if (conv_template_arg(targs, optarg, e, sizeof e) != 0)
				pp_usage("--template-arg: %s", e);
			break;
		}
		case O_BASE:
			base = optarg;
			break;
		case O_WEIGHTS:
			if (model_weights_parse(optarg, &(int){ 0 }) != 0)
				pp_usage("--weights: \"%s\" is none of auto, "
				    "f32, bf16, f16", optarg);
			weights = optarg;
			break;
		case O_COMPUTE:
			if (model_compute_parse(optarg, &(int){ 0 }) != 0)
				pp_usage("--compute: \"%s\" is neither f32 "
				    "nor bf16", optarg);
			compute = optarg;
			break;
		case O_WINDOW:
			window = pp_parse_int("--window", optarg, 1, 1 << 20);
			break;
		case O_TIMEOUT:
			timeout = pp_parse_num("--timeout", optarg, 0, 1e9);
			break;
		case 'b':
			batch = pp_parse_int("--batch-tokens", optarg, 1,
			    1 << 30);
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
	if (s == S_NONE)
		pp_usage("no scorer: give --exact, --cmd, --logprob, --rm, "
		    "--flr, --value or --judge");
	only_for(answer != NULL, "--answer-field", s, S_EXACT);
	only_for(extract != NULL, "--extract", s, S_EXACT);
	only_for(positive != NULL, "--positive", s, S_FLR);
	only_for(negative != NULL, "--negative", s, S_FLR);
	only_for(details, "--details", s, S_FLR);
	only_for(nocache, "--no-cache", s, S_FLR);
	only_for(retokenize, "--retokenize", s, S_LOGPROB);
	only_for(ratio_to != NULL, "--ratio-to", s, S_LOGPROB);
	only_for(window >= 0, "--window", s, S_CMD);
	only_for(timeout >= 0, "--timeout", s, S_CMD);
	only_for(tmpl != NULL, "--template", s, S_JUDGE);
	only_for(pairwise, "--pairwise", s, S_JUDGE);
	only_for(labels != NULL, "--labels", s, S_JUDGE);
	if (s == S_JUDGE && tmpl == NULL)
		pp_usage("--judge needs --template FILE");
	if ((batch != 0 || chat != NULL || targs != NULL || weights != NULL ||
	    compute != NULL) && (s == S_EXACT || s == S_CMD))
		pp_usage("%s does not apply to %s", batch ? "--batch-tokens" :
		    chat ? "--chat-template" : targs != NULL ? "--template-arg" :
		    weights != NULL ? "--weights" : "--compute", scorer_opt[s]);
	if (base != NULL && (s == S_EXACT || s == S_CMD || s == S_JUDGE))
		pp_usage("--base does not apply to %s", scorer_opt[s]);
	if (base != NULL && !lora_path_is_adapter(ckpt))
		pp_usage("--base: %s is no adapter directory", ckpt);
	if (answer != NULL && *answer == 0)
		pp_usage("--answer-field: empty field name");
	if (as == NULL)
		as = s == S_LOGPROB ? "ref" : s == S_VALUE ? "values" :
		    s == S_JUDGE && pairwise ? "judge" : "reward";

	/* Under mpirun: rank 0's stdin for every rank, and stdout is
	 * mpirun's (msgpack unless -J, no progress line). */
	if (pp_dist_active()) {
		flags &= ~REC_AUTO;
		quiet = 1;
	}
	if (pp_dist_size() > 1) {
		if (argc - optind == 0)
			pp_dist_share_stdin();
		else
			for (int i = optind; i < argc; i++)
				if (strcmp(argv[i], "-") == 0)
					pp_usage("under mpirun, stdin is "
					    "read as the only input");
	}
	struct rec_reader *rd = rec_reader_open(argv + optind, argc - optind);
	part = rec_part_open(flags);
	struct rec_writer *w = rec_part_writer(part);
	switch (s) {
	case S_EXACT:
		run_exact(rd, w, answer ? answer : "answer", extract, as);
		break;
	case S_CMD:
		run_cmd(rd, w, command, as, window > 0 ? (int)window : 256,
		    timeout > 0 ? timeout : 0);
		break;
	case S_JUDGE:
		run_judge(rd, w, ckpt, &(struct judge_opts){ .template_path =
		    tmpl, .pairwise = pairwise, .labels = labels, .as = as,
		    .chat = chat, .targs = targs, .batch_tokens = batch,
		    .weights = weights, .compute = compute });
		break;
	default:
		run_model(rd, w, s == S_LOGPROB ? MS_LOGPROB : s == S_RM ?
		    MS_RM : s == S_VALUE ? MS_VALUE : MS_FLR, ckpt,
		    &(struct ms_opts){ .as = as, .chat = chat, .targs = targs,
		    .positive = positive, .negative = negative,
		    .batch_tokens = batch, .retokenize = retokenize,
		    .ratio_to = ratio_to,
		    .details = details, .nocache = nocache, .base = base,
		    .weights = weights, .compute = compute });
	}
	rec_part_close(part);
	rec_reader_close(rd);
	pp_close_stdout();
	return 0;
}
