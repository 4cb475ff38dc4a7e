/*
 * train-step: optimizer steps over a batch of records.
 *
 *     train-step -m CKPT -o OUT --loss sft|dpo|rm|pg [options] < records
 *
 * One invocation reads every record on stdin, runs optimizer steps over
 * them, writes one metrics record per step on stdout and the updated
 * checkpoint, with its optimizer state, to OUT.  An iterative loop is a
 * shell loop around it.
 *
 * This file is the options; the training loop is lib/training/train.h.
 * Under mpirun (built with MPI) the ranks share rank 0's stdin and each
 * batch; rank 0 alone writes the metrics and the checkpoint.
 */
#include "config.h"

#include <err.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "checkpoints/checkpoint.h"
#include "model/model.h"
#include "records/record.h"
#include "text/chat.h"
#include "text/conversation.h"
#include "training/train.h"
#include "util/dist.h"
#include "util/progress.h"
#include "util/util.h"

#define SYNOPSIS \
	"train-step -m CKPT -o OUT --loss sft|dpo|rm|pg|simpo|orpo|kto|ppo|value [--lr X] " \
	"[--batch-size N]\n" \
	"           [--micro-batch N] [--epochs N] [--max-steps N] " \
	"[--warmup N]\n" \
	"           [--schedule constant|linear|cosine] [--schedule-steps N] " \
	"[--min-lr X]\n" \
	"           [--weight-decay X] [--clip-grad X] [--adam-beta1 X] " \
	"[--adam-beta2 X]\n" \
	"           [--adam-eps X] [--seed N] [--no-shuffle] " \
	"[--max-length N] [--truncate]\n" \
	"           [--ref CKPT] [--reset-optimizer] [--dtype f32|bf16|f16] " \
	"[--weights TYPE] [-qJz]\n" \
	"           [--recompute] [--compute f32|bf16]\n" \
	"           [--beta X] [--dpo-variant sigmoid|hinge|ipo|robust] " \
	"[--label-smoothing X]\n" \
	"           [--nll-coef X] [--simpo-gamma X] [--orpo-lambda X] " \
	"[--add-head]\n" \
	"           [--kto-desirable-weight X] [--kto-undesirable-weight X]\n" \
	"           " \
	"[--advantage reinforce|remax|rloo|grpo]\n" \
	"           [--scale group|batch|none] [--clip X] [--ppo-epochs N] " \
	"[--kl-coef X]\n" \
	"           [--kl-estimator k1|k2|k3] [--loss-agg token|seq]\n" \
	"           [--gamma X] [--lambda X] [--value-clip X] [--no-whiten]\n" \
	"           [--chat-template NAME] [--template-arg KEY=VALUE]...\n" \
	"           [--lora-rank R [--lora-alpha X] [--lora-dropout P]\n" \
	"           [--lora-targets q_proj,k_proj,...] " \
	"[--train-modules lm_head,...]] [--base CKPT]"

/* ------------------------------------------------------------------------ */
/* Options */

static int quiet;	/* -q: no progress line */

enum {
	O_LOSS = 256, O_LR, O_BATCH, O_MICRO, O_EPOCHS, O_MAX_STEPS, O_WARMUP,
	O_SCHEDULE, O_SCHED_STEPS, O_MIN_LR, O_WD, O_CLIP_GRAD, O_BETA1,
	O_BETA2, O_EPS, O_SEED, O_NO_SHUFFLE, O_MAX_LENGTH, O_TRUNCATE, O_REF,
	O_RESET, O_DTYPE, O_BETA, O_VARIANT, O_LS, O_NLL, O_ADD_HEAD, O_ADV,
	O_SCALE, O_CLIP, O_PPO_EPOCHS, O_KL, O_KL_EST, O_AGG, O_CHAT, O_TARG,
	O_FREEZE, O_SIMPO_GAMMA, O_ORPO_LAMBDA, O_KTO_WD, O_KTO_WU, O_GAMMA,
	O_LAMBDA, O_VALUE_CLIP, O_NO_WHITEN,
	O_LORA_RANK, O_LORA_ALPHA, O_LORA_DROPOUT, O_LORA_TARGETS,
	O_TRAIN_MODULES, O_BASE,
	O_RECOMPUTE, O_WEIGHTS, O_COMPUTE,
};

static const struct option longopts[] = {
	{ "model", required_argument, NULL, 'm' },
	{ "output", required_argument, NULL, 'o' },
	{ "json", no_argument, NULL, 'J' },
	{ "zstd", no_argument, NULL, 'z' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "loss", required_argument, NULL, O_LOSS },
	{ "lr", required_argument, NULL, O_LR },
	{ "batch-size", required_argument, NULL, O_BATCH },
	{ "micro-batch", required_argument, NULL, O_MICRO },
	{ "epochs", required_argument, NULL, O_EPOCHS },
	{ "max-steps", required_argument, NULL, O_MAX_STEPS },
	{ "warmup", required_argument, NULL, O_WARMUP },
	{ "schedule", required_argument, NULL, O_SCHEDULE },
	{ "schedule-steps", required_argument, NULL, O_SCHED_STEPS },
	{ "min-lr", required_argument, NULL, O_MIN_LR },
	{ "weight-decay", required_argument, NULL, O_WD },
	{ "clip-grad", required_argument, NULL, O_CLIP_GRAD },
	{ "adam-beta1", required_argument, NULL, O_BETA1 },
	{ "adam-beta2", required_argument, NULL, O_BETA2 },
	{ "adam-eps", required_argument, NULL, O_EPS },
	{ "seed", required_argument, NULL, O_SEED },
	{ "no-shuffle", no_argument, NULL, O_NO_SHUFFLE },
	{ "max-length", required_argument, NULL, O_MAX_LENGTH },
	{ "truncate", no_argument, NULL, O_TRUNCATE },
	{ "ref", required_argument, NULL, O_REF },
	{ "reset-optimizer", no_argument, NULL, O_RESET },
	{ "dtype", required_argument, NULL, O_DTYPE },
	{ "beta", required_argument, NULL, O_BETA },
	{ "dpo-variant", required_argument, NULL, O_VARIANT },
	{ "label-smoothing", required_argument, NULL, O_LS },
	{ "nll-coef", required_argument, NULL, O_NLL },
	{ "add-head", no_argument, NULL, O_ADD_HEAD },
	{ "freeze", required_argument, NULL, O_FREEZE },
	{ "lora-rank", required_argument, NULL, O_LORA_RANK },
	{ "lora-alpha", required_argument, NULL, O_LORA_ALPHA },
	{ "lora-dropout", required_argument, NULL, O_LORA_DROPOUT },
	{ "lora-targets", required_argument, NULL, O_LORA_TARGETS },
	{ "train-modules", required_argument, NULL, O_TRAIN_MODULES },
	{ "base", required_argument, NULL, O_BASE },
	{ "recompute", no_argument, NULL, O_RECOMPUTE },
	{ "weights", required_argument, NULL, O_WEIGHTS },
	{ "compute", required_argument, NULL, O_COMPUTE },
	{ "simpo-gamma", required_argument, NULL, O_SIMPO_GAMMA },
	{ "orpo-lambda", required_argument, NULL, O_ORPO_LAMBDA },
	{ "kto-desirable-weight", required_argument, NULL, O_KTO_WD },
	{ "kto-undesirable-weight", required_argument, NULL, O_KTO_WU },
	{ "advantage", required_argument, NULL, O_ADV },
	{ "scale", required_argument, NULL, O_SCALE },
	{ "clip", required_argument, NULL, O_CLIP },
	{ "ppo-epochs", required_argument, NULL, O_PPO_EPOCHS },
	{ "kl-coef", required_argument, NULL, O_KL },
	{ "gamma", required_argument, NULL, O_GAMMA },
	{ "lambda", required_argument, NULL, O_LAMBDA },
	{ "value-clip", required_argument, NULL, O_VALUE_CLIP },
	{ "no-whiten", no_argument, NULL, O_NO_WHITEN },
	{ "kl-estimator", required_argument, NULL, O_KL_EST },
	{ "loss-agg", required_argument, NULL, O_AGG },
	{ "chat-template", required_argument, NULL, O_CHAT },
	{ "template-arg", required_argument, NULL, O_TARG },
	{ NULL, 0, NULL, 0 }
};

static int
choice(const char *optname, const char *arg, int v)
{
	if (v < 0)
		pp_usage("%s: unknown value \"%s\"", optname, arg);
	return v;
}

static void
parse_options(int argc, char **argv, struct train_opts *o, int *out_flags)
{
	const long long BIG = (long long)1 << 40;
	int c, beta_given = 0, kl_given = 0;

	while ((c = getopt_long(argc, argv, "m:o:qJzh", longopts, NULL)) != -1) {
		switch (c) {
		case 'q': quiet = 1; break;
		case 'm': o->model = optarg; break;
		case 'o': o->out = optarg; break;
		case 'J':
		case 'z': rec_output_option(c, out_flags); break;
		case 'h': pp_help();
		case O_LOSS: {
			/* Each value is checked: a later bad one is no
			 * less an error. */
			o->objective = choice("--loss", optarg,
			    train_objective_parse(optarg));
			break;
		}
		case O_LR: o->lr = pp_parse_num("--lr", optarg, 0, 1e3); break;
		case O_BATCH:
			o->batch = pp_parse_int("--batch-size", optarg, 1, BIG);
			break;
		case O_MICRO:
			o->micro = pp_parse_int("--micro-batch", optarg, 1, BIG);
			break;
		case O_EPOCHS:
			o->epochs = pp_parse_int("--epochs", optarg, 1, BIG);
			break;
		case O_MAX_STEPS:
			o->max_steps = pp_parse_int("--max-steps", optarg, 0,
			    BIG);
			break;
		case O_WARMUP:
			o->warmup = pp_parse_int("--warmup", optarg, 0, BIG);
			break;
		case O_SCHEDULE:
			o->schedule = choice("--schedule", optarg,
			    lr_schedule_parse(optarg));
			break;
		case O_SCHED_STEPS:
			o->sched_steps = pp_parse_int("--schedule-steps",
			    optarg, 1, BIG);
			break;
		case O_MIN_LR:
			o->min_lr = pp_parse_num("--min-lr", optarg, 0, 1e3);
			break;
		case O_WD:
			o->weight_decay = pp_parse_num("--weight-decay", optarg,
			    0, 1e3);
			break;
		case O_CLIP_GRAD:
			o->clip_grad = pp_parse_num("--clip-grad", optarg, 0,
			    1e30);
			break;
		case O_BETA1:
			o->beta1 = pp_parse_num("--adam-beta1", optarg, 0,
			    0.999999999);
			break;
		case O_BETA2:
			o->beta2 = pp_parse_num("--adam-beta2", optarg, 0,
			    0.999999999);
			break;
		case O_EPS:
			o->eps = pp_parse_num("--adam-eps", optarg, 0, 1);
			/* Zero divides by zero where a moment is zero. */
			if (o->eps <= 0)
				pp_usage("--adam-eps: %g is not positive",
				    o->eps);
			break;
		case O_SEED:
			o->seed = (uint64_t)pp_parse_int("--seed", optarg, 0,
			    INT64_MAX);
			break;
		case O_NO_SHUFFLE: o->shuffle = 0; break;
		case O_MAX_LENGTH:
			o->max_length = pp_parse_int("--max-length", optarg, 2,
			    BIG);
			break;
		case O_TRUNCATE: o->truncate = 1; break;
		case O_REF: o->ref = optarg; break;
		case O_RESET: o->reset_optimizer = 1; break;
		case O_FREEZE: o->freeze = optarg; break;
		case O_LORA_RANK:
			o->lora_rank = (int)pp_parse_int("--lora-rank", optarg,
			    1, 1 << 16);
			break;
		case O_LORA_ALPHA:
			o->lora_alpha = pp_parse_num("--lora-alpha", optarg,
			    -1e12, 1e12);
			o->lora_alpha_set = 1;
			break;
		case O_LORA_DROPOUT:
			o->lora_dropout = pp_parse_num("--lora-dropout", optarg,
			    0, 0.999);
			o->lora_dropout_set = 1;
			break;
		case O_LORA_TARGETS: o->lora_targets = optarg; break;
		case O_TRAIN_MODULES: o->train_modules = optarg; break;
		case O_BASE: o->base = optarg; break;
		case O_RECOMPUTE: o->recompute = 1; break;
		case O_WEIGHTS:
			if (model_weights_parse(optarg, &(int){ 0 }) != 0)
				pp_usage("--weights: \"%s\" is none of auto, "
				    "f32, bf16, f16", optarg);
			o->weights = optarg;
			break;
		case O_COMPUTE:
			if (model_compute_parse(optarg, &(int){ 0 }) != 0)
				pp_usage("--compute: \"%s\" is neither f32 "
				    "nor bf16", optarg);
			o->compute = optarg;
			break;
		case O_DTYPE:
			if (dtype_parse(optarg) < 0)
				pp_usage("--dtype: unknown value \"%s\"", optarg);
			o->dtype = optarg;
			break;
		case O_BETA:
			o->beta = pp_parse_num("--beta", optarg, 1e-12, 1e12);
			beta_given = 1;
			break;
		case O_SIMPO_GAMMA:
			o->simpo_gamma = pp_parse_num("--simpo-gamma", optarg,
			    -1e12, 1e12);
			break;
		case O_ORPO_LAMBDA:
			o->orpo_lambda = pp_parse_num("--orpo-lambda", optarg,
			    0, 1e12);
			break;
		case O_KTO_WD:
			o->kto_desirable = pp_parse_num(
			    "--kto-desirable-weight", optarg, 0, 1e12);
			break;
		case O_KTO_WU:
			o->kto_undesirable = pp_parse_num(
			    "--kto-undesirable-weight", optarg, 0, 1e12);
			break;
		case O_VARIANT:
			o->dpo_variant = choice("--dpo-variant", optarg,
			    dpo_variant_parse(optarg));
			break;
		case O_LS:
			o->label_smoothing = pp_parse_num("--label-smoothing",
			    optarg, 0, 0.5);
			break;
		case O_NLL:
			o->nll_coef = pp_parse_num("--nll-coef", optarg, 0,
			    1e12);
			break;
		case O_ADD_HEAD: o->add_head = 1; break;
		case O_ADV:
			o->advantage = choice("--advantage", optarg,
			    pg_advantage_parse(optarg));
			break;
		case O_SCALE:
			o->scale = choice("--scale", optarg,
			    pg_scale_parse(optarg));
			break;
		case O_CLIP:
			o->clip = pp_parse_num("--clip", optarg, 0, 1e6);
			break;
		case O_PPO_EPOCHS:
			o->ppo_epochs = pp_parse_int("--ppo-epochs", optarg, 1,
			    BIG);
			break;
		case O_KL:
			o->kl_coef = pp_parse_num("--kl-coef", optarg, 0, 1e12);
			kl_given = 1;
			break;
		case O_GAMMA:
			o->gamma = pp_parse_num("--gamma", optarg, 0, 1);
			break;
		case O_LAMBDA:
			o->lambda = pp_parse_num("--lambda", optarg, 0, 1);
			break;
		case O_VALUE_CLIP:
			o->value_clip = pp_parse_num("--value-clip", optarg, 0,
			    1e12);
			break;
		case O_NO_WHITEN:
			o->whiten = 0;
			break;
		case O_KL_EST:
			o->kl_est = choice("--kl-estimator", optarg,
			    kl_estimator_parse(optarg));
			break;
		case O_AGG:
			if (strcmp(optarg, "token") == 0)
				o->agg = AGG_TOKEN;
			else if (strcmp(optarg, "seq") == 0)
				o->agg = AGG_SEQ;
			else
				pp_usage("--loss-agg: unknown value \"%s\"",
				    optarg);
			break;
		case O_CHAT:
			if (chat_template_by_name(optarg) == NULL)
				pp_usage("--chat-template: unknown template "
				    "\"%s\" (known: %s)", optarg,
				    chat_template_names());
			o->chat_template = optarg;
			break;
		case O_TARG: {
			static json_t *targs;
			char e[256];
			if (targs == NULL)
				targs = json_object();
			if (conv_template_arg(targs, optarg, e, sizeof e) != 0)
				pp_usage("--template-arg: %s", e);
			o->template_args = targs;
			break;
		}
		default:
			pp_usage(NULL);
		}
	}
	if (optind != argc)
		pp_usage("unexpected operand: %s", argv[optind]);
	if (o->model == NULL || o->out == NULL)
		pp_usage("-m CKPT and -o OUT are required");
	if (o->objective < 0)
		pp_usage("--loss sft|dpo|rm|pg|simpo|orpo|kto|ppo|value is required");
	/* SimPO's beta is on mean log-probs: the paper's range, not DPO's. */
	if (o->objective == OBJ_SIMPO && !beta_given)
		o->beta = 2.0;
	if ((o->objective == OBJ_SIMPO || o->objective == OBJ_ORPO) && o->ref)
		pp_usage("--loss %s is reference-free: no --ref",
		    train_objective_name(o->objective));
	if (o->dpo_variant == DPO_ROBUST && o->label_smoothing >= 0.5)
		pp_usage("--dpo-variant robust needs --label-smoothing < 0.5");
	if (o->micro <= 0 || o->micro > o->batch)
		o->micro = o->batch;
	if (o->add_head && !OBJ_IS_HEAD(o->objective))
		pp_usage("--add-head goes with --loss rm or value");
	/* PPO's KL penalty is in the reward: TRL's default weight. */
	if ((o->objective == OBJ_PPO || o->objective == OBJ_VALUE) &&
	    !kl_given)
		o->kl_coef = 0.05;
}

int
main(int argc, char **argv)
{
	struct train_opts o;
	struct train_metrics mt;
	struct rec rec;
	int out_flags = REC_AUTO;

	pp_dist_init(&argc, &argv);
	pp_init(argc, argv);
	pp_synopsis = SYNOPSIS;
	train_opts_init(&o);
	parse_options(argc, argv, &o, &out_flags);

	struct train_ctx *t = train_new(&o);
	int lead = pp_dist_rank() == 0;
	pp_dist_share_stdin();
	/* mpirun passes every rank's stdout on: only rank 0's may carry
	 * records (an empty zstd frame at close would be one too many). */
	if (!lead) {
		int fd = open("/dev/null", O_WRONLY);
		if (fd < 0 || dup2(fd, 1) < 0)
			err(EXIT_DATA, "/dev/null");
		close(fd);
	}
	struct rec_reader *rd = rec_reader_open(NULL, 0);
	train_read(t, rd);
	rec_reader_close(rd);
	train_prepare(t);

	/* Under mpirun, stdout and stderr are mpirun's, not the user's
	 * terminal: msgpack unless -J, and no progress line. */
	if (pp_dist_active())
		out_flags &= ~REC_AUTO;
	struct rec_writer *w = rec_writer_open(1, "stdout", out_flags);
	struct progress *pr = progress_new("steps",
	    (uint64_t)train_planned(t), quiet || pp_dist_active());
	uint64_t done = 0, tokens = 0;
	char loss[32];
	double sum_s = pp_dist_sum_seconds();
	while (train_step(t, &mt)) {
		if (lead) {
			train_metrics_rec(t, &mt, &rec);
			/* Under mpirun: the step's share of waiting on the
			 * sums of gradients and metrics. */
			if (pp_dist_size() > 1)
				rec_set_num(&rec, "allreduce_seconds",
				    pp_dist_sum_seconds() - sum_s);
			rec_write(w, &rec);
			rec_writer_flush(w);
			rec_free(&rec);
		}
		sum_s = pp_dist_sum_seconds();
		tokens += (uint64_t)mt.tokens;
		snprintf(loss, sizeof(loss), "loss %.4f", mt.loss);
		progress_update(pr, ++done, tokens, loss);
	}
	progress_end(pr);
	rec_writer_close(w);

	if (lead)
		train_save(t);
	train_free(t);
	pp_close_stdout();
	return 0;
}
