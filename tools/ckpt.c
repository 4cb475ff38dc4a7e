/*
 * ckpt: create, inspect, convert and compare model checkpoints.
 *
 * Each subcommand is one function in the table at the end; a subcommand
 * parses its own options.  Checkpoints are read and written through
 * lib/checkpoints/checkpoint.h, so every form (directory, .tar, .tar.zst, .tar.gz) works
 * everywhere.
 */
#include "config.h"

#include <err.h>
#include <getopt.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoints/checkpoint.h"
#include "model/model.h"
#include "model/model_ckpt.h"
#include "records/record.h"
#include "text/tokenizer.h"
#include "util/util.h"

#define SYNOPSIS \
	"ckpt init -o OUT [--arch llama|qwen2|qwen3|mistral|gemma2|gemma3]\n" \
	"            [--tokenizer byte|FILE] [--sliding-window N]\n" \
	"            [--vocab-size N] [--dim N] [--layers N] [--heads N]\n" \
	"            [--kv-heads N] [--head-dim N] [--ffn N] [--ctx N]\n" \
	"            [--rope-theta X] [--attention-bias] [--tie]\n" \
	"            [--head score] [--seed S] [--dtype DTYPE]\n" \
	"       ckpt info [-Jz] CKPT\n" \
	"       ckpt convert [--dtype f32|bf16|f16] IN OUT\n" \
	"       ckpt diff [-Jz] A B\n" \
	"       ckpt tokenize [-Jz] [--field F] [--no-special] CKPT [FILE ...]\n" \
	"       ckpt detokenize [-Jz] [--skip-special] CKPT [FILE ...]"

/* ------------------------------------------------------------------------ */
/* init: a new model with random weights */

/* The largest model ckpt init makes: 8 GiB of fp32 weights. */
#define INIT_MAX_PARAMS ((size_t)1 << 31)

/* The byte-level tokenizer's special tokens follow the 256 bytes. */
enum { BYTE_BOS = 256, BYTE_EOS, BYTE_PAD, BYTE_VOCAB };

/*
 * A checkpoint; a LoRA adapter directory has no model of its own to
 * inspect, convert or compare: merge(1) folds it into its base first.
 */
static struct ckpt *
load_model_ckpt(const char *path)
{
	struct ckpt *c = ckpt_load(path);

	if (ckpt_is_adapter(c))
		errx(EXIT_DATA, "%s: a LoRA adapter directory, not a model "
		    "(merge -o OUT %s folds it into its base)", path, path);
	return c;
}

static const char *const byte_special[] = { "<|bos|>", "<|eos|>", "<|pad|>" };

/*
 * GPT-2's byte-level alphabet: printable bytes stand for themselves, the
 * others for the code points from 256 on, so that every byte is a visible
 * character in the BPE vocabulary.
 */
static int
byte_char(int b)
{
	int n = 0;
	if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)
		return b;
	for (int x = 0; x < b; x++)
		if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) ||
		    x >= 174))
			n++;
	return 256 + n;
}

static void
utf8(char *s, int cp)
{
	if (cp < 0x80) {
		s[0] = (char)cp;
		s[1] = 0;
	} else {
		s[0] = (char)(0xc0 | cp >> 6);
		s[1] = (char)(0x80 | (cp & 0x3f));
		s[2] = 0;
	}
}

static json_t *
added_token(int id, const char *content)
{
	return json_pack("{s:i,s:s,s:b,s:b,s:b,s:b,s:b}", "id", id,
	    "content", content, "single_word", 0, "lstrip", 0, "rstrip", 0,
	    "normalized", 0, "special", 1);
}

/*
 * A Hugging Face tokenizer.json: a BPE model with the 256 byte tokens and no
 * merges, byte-level pre-tokenizer and decoder, three special tokens, and a
 * post-processor that puts <|bos|> in front.
 */
static json_t *
byte_tokenizer(void)
{
	json_t *vocab = json_object(), *added = json_array();
	char ch[4];

	for (int b = 0; b < 256; b++) {
		utf8(ch, byte_char(b));
		json_object_set_new(vocab, ch, json_integer(b));
	}
	for (int i = 0; i < 3; i++)
		json_array_append_new(added, added_token(BYTE_BOS + i,
		    byte_special[i]));
	json_t *bos = json_pack("{s:{s:s,s:i}}", "SpecialToken", "id",
	    "<|bos|>", "type_id", 0);
	json_t *post = json_pack("{s:s,s:[O,{s:{s:s,s:i}}],"
	    "s:[O,{s:{s:s,s:i}},{s:{s:s,s:i}}],s:{s:{s:s,s:[i],s:[s]}}}",
	    "type", "TemplateProcessing",
	    "single", bos, "Sequence", "id", "A", "type_id", 0,
	    "pair", bos, "Sequence", "id", "A", "type_id", 0,
	    "Sequence", "id", "B", "type_id", 1,
	    "special_tokens", "<|bos|>", "id", "<|bos|>", "ids", BYTE_BOS,
	    "tokens", "<|bos|>");
	json_decref(bos);
	return json_pack("{s:s,s:n,s:n,s:o,s:n,"
	    "s:{s:s,s:b,s:b,s:b},s:o,s:{s:s,s:b,s:b,s:b},"
	    "s:{s:s,s:n,s:n,s:n,s:n,s:b,s:b,s:o,s:[]}}",
	    "version", "1.0", "truncation", "padding", "added_tokens", added,
	    "normalizer",
	    "pre_tokenizer", "type", "ByteLevel", "add_prefix_space", 0,
	    "trim_offsets", 1, "use_regex", 1,
	    "post_processor", post,
	    "decoder", "type", "ByteLevel", "add_prefix_space", 1,
	    "trim_offsets", 1, "use_regex", 1,
	    "model", "type", "BPE", "dropout", "unk_token",
	    "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0,
	    "byte_fallback", 0, "vocab", vocab, "merges");
}

static json_t *
byte_tokenizer_config(int ctx)
{
	json_t *dec = json_object();
	char id[16];
	for (int i = 0; i < 3; i++) {
		json_t *t = added_token(BYTE_BOS + i, byte_special[i]);
		json_object_del(t, "id");
		snprintf(id, sizeof id, "%d", BYTE_BOS + i);
		json_object_set_new(dec, id, t);
	}
	return json_pack("{s:o,s:s,s:s,s:s,s:b,s:b,s:i,s:s}",
	    "added_tokens_decoder", dec, "bos_token", "<|bos|>",
	    "eos_token", "<|eos|>", "pad_token", "<|pad|>",
	    "add_bos_token", 1, "clean_up_tokenization_spaces", 0,
	    "model_max_length", ctx, "tokenizer_class",
	    "PreTrainedTokenizerFast");
}

/*
 * A tokenizer.json and the files that go with it in its directory, as
 * they are: transformers reads them together, so they travel together.
 */
static const char *const tok_siblings[] = { "tokenizer_config.json",
    "special_tokens_map.json", "generation_config.json" };

static void
add_tokenizer_files(struct ckpt_writer *w, const char *tokpath)
{
	char *p = xstrdup(tokpath), path[4096];
	const char *dir = dirname(p);
	size_t len;
	char *data = pp_read_file(tokpath, &len);

	ckpt_writer_add_file(w, "tokenizer.json", data, len);
	free(data);
	for (size_t i = 0; i < sizeof tok_siblings / sizeof tok_siblings[0];
	    i++) {
		snprintf(path, sizeof path, "%s/%s", dir, tok_siblings[i]);
		if (access(path, F_OK) != 0)
			continue;
		data = pp_read_file(path, &len);
		ckpt_writer_add_file(w, tok_siblings[i], data, len);
		free(data);
	}
	free(p);
}

/*
 * A tokenizer file read as every tool reads it (lib/text/tokenizer.h),
 * with its directory's tokenizer_config.json.  Errors end the program.
 */
static struct tokenizer *
read_tokenizer(const char *tokpath)
{
	char e[1024], *p = xstrdup(tokpath), path[4096];
	struct tokenizer *t = tokenizer_from_file(tokpath, e, sizeof e);

	if (t == NULL)
		errx(EXIT_DATA, "%s", e);
	snprintf(path, sizeof path, "%s/tokenizer_config.json", dirname(p));
	free(p);
	if (access(path, F_OK) == 0) {
		size_t len;
		char *data = pp_read_file(path, &len);
		if (tokenizer_load_config(t, data, len, path, e,
		    sizeof e) != 0)
			errx(EXIT_DATA, "%s", e);
		free(data);
	}
	return t;
}

static int
cmd_init(int argc, char **argv)
{
	enum { O_ARCH = 256, O_TOK, O_VOCAB, O_DIM, O_LAYERS, O_HEADS, O_KV,
	    O_HD, O_FFN, O_CTX, O_THETA, O_BIAS, O_TIE, O_HEAD, O_SEED,
	    O_DTYPE, O_WINDOW };
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "arch", required_argument, NULL, O_ARCH },
		{ "tokenizer", required_argument, NULL, O_TOK },
		{ "vocab-size", required_argument, NULL, O_VOCAB },
		{ "dim", required_argument, NULL, O_DIM },
		{ "layers", required_argument, NULL, O_LAYERS },
		{ "heads", required_argument, NULL, O_HEADS },
		{ "kv-heads", required_argument, NULL, O_KV },
		{ "head-dim", required_argument, NULL, O_HD },
		{ "ffn", required_argument, NULL, O_FFN },
		{ "ctx", required_argument, NULL, O_CTX },
		{ "rope-theta", required_argument, NULL, O_THETA },
		{ "attention-bias", no_argument, NULL, O_BIAS },
		{ "sliding-window", required_argument, NULL, O_WINDOW },
		{ "tie", no_argument, NULL, O_TIE },
		{ "head", required_argument, NULL, O_HEAD },
		{ "seed", required_argument, NULL, O_SEED },
		{ "dtype", required_argument, NULL, O_DTYPE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *out = NULL, *tokpath = "byte", *dtype = NULL;
	struct model_config cfg = { .arch = MODEL_LLAMA };
	long long vocab = 0, ffn = 0, kv = 0, hd = 0, seed = 0;
	double theta = 0;
	int dim = 64, layers = 2, heads = 4, ctx = 512, tie = 0, score = 0;
	int bias = 0, window = -1;
	int c;

	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case O_ARCH:
			if (strcmp(optarg, "llama") == 0)
				cfg.arch = MODEL_LLAMA;
			else if (strcmp(optarg, "qwen2") == 0)
				cfg.arch = MODEL_QWEN2;
			else if (strcmp(optarg, "qwen3") == 0)
				cfg.arch = MODEL_QWEN3;
			else if (strcmp(optarg, "mistral") == 0)
				cfg.arch = MODEL_MISTRAL;
			else if (strcmp(optarg, "gemma2") == 0)
				cfg.arch = MODEL_GEMMA2;
			else if (strcmp(optarg, "gemma3") == 0)
				cfg.arch = MODEL_GEMMA3;
			else
				pp_usage("--arch: llama, qwen2, qwen3, mistral, "
				    "gemma2 or gemma3, not \"%s\"", optarg);
			break;
		case O_TOK: tokpath = optarg; break;
		case O_VOCAB:
			vocab = pp_parse_int("--vocab-size", optarg, 1,
			    1 << 24);
			break;
		case O_DIM: dim = (int)pp_parse_int("--dim", optarg, 1,
			    1 << 16); break;
		case O_LAYERS: layers = (int)pp_parse_int("--layers", optarg,
			    0, 1024); break;
		case O_HEADS: heads = (int)pp_parse_int("--heads", optarg, 1,
			    1024); break;
		case O_KV: kv = pp_parse_int("--kv-heads", optarg, 1, 1024);
			break;
		case O_HD: hd = pp_parse_int("--head-dim", optarg, 2, 4096);
			break;
		case O_FFN: ffn = pp_parse_int("--ffn", optarg, 1, 1 << 20);
			break;
		case O_CTX: ctx = (int)pp_parse_int("--ctx", optarg, 1,
			    1 << 24); break;
		case O_THETA: theta = pp_parse_num("--rope-theta", optarg, 1,
			    1e12); break;
		case O_BIAS: bias = 1; break;
		case O_WINDOW: window = (int)pp_parse_int("--sliding-window",
			    optarg, 0, 1 << 30); break;
		case O_TIE: tie = 1; break;
		case O_HEAD:
			if (strcmp(optarg, "score") != 0)
				pp_usage("--head: only \"score\"");
			score = 1;
			break;
		case O_SEED: seed = pp_parse_int("--seed", optarg, 0,
			    INT64_MAX); break;
		case O_DTYPE: dtype = optarg; break;
		case 'h': pp_help();
		default: pp_usage(NULL);
		}
	}
	if (out == NULL || optind != argc)
		pp_usage("init: -o OUT and no operands");
	if (dtype != NULL && dtype_parse(dtype) < 0)
		pp_usage("--dtype: f32, bf16 or f16, not \"%s\"", dtype);
	if (hd == 0 && dim % heads != 0)
		pp_usage("--dim %d is not a multiple of --heads %d (or give "
		    "--head-dim)", dim, heads);
	int gemma = cfg.arch == MODEL_GEMMA2 || cfg.arch == MODEL_GEMMA3;
	if (window >= 0 && cfg.arch != MODEL_MISTRAL && !gemma)
		pp_usage("--sliding-window: only with --arch mistral, gemma2 "
		    "or gemma3");
	if (window == 0 && gemma)
		pp_usage("--sliding-window: gemma's sliding layers need a "
		    "window");
	if (bias && cfg.arch != MODEL_QWEN3 && !gemma)
		pp_usage("--attention-bias: only with --arch qwen3, gemma2 or "
		    "gemma3 (qwen2 always has q/k/v biases, llama none)");
	if (score && gemma)
		pp_usage("--head score: no gemma classifier is supported");

	/* The tokenizer fixes the least vocabulary and the special ids. */
	json_t *tok = NULL, *tokcfg = NULL;
	long long ntok;
	if (strcmp(tokpath, "byte") == 0) {
		tok = byte_tokenizer();
		tokcfg = byte_tokenizer_config(ctx);
		ntok = BYTE_VOCAB;
		cfg.bos_id = BYTE_BOS;
		cfg.eos_ids[0] = BYTE_EOS;
		cfg.pad_id = BYTE_PAD;
	} else {
		struct tokenizer *t = read_tokenizer(tokpath);
		ntok = (long long)tokenizer_vocab_size(t);
		cfg.bos_id = tokenizer_bos_id(t);
		cfg.eos_ids[0] = tokenizer_eos_id(t);
		cfg.pad_id = tokenizer_pad_id(t);
		tokenizer_free(t);
		if (ntok > 1 << 24)
			errx(EXIT_DATA, "%s: %lld tokens; at most 2^24 are "
			    "supported", tokpath, ntok);
	}
	cfg.n_eos = cfg.eos_ids[0] >= 0;
	if (vocab == 0)
		vocab = ntok;
	if (vocab < ntok)
		pp_usage("--vocab-size %lld is less than the tokenizer's %lld",
		    vocab, ntok);

	cfg.vocab_size = (int)vocab;
	cfg.dim = dim;
	cfg.n_layers = layers;
	cfg.n_heads = heads;
	cfg.n_kv_heads = kv ? (int)kv : heads;
	cfg.head_dim = hd ? (int)hd : dim / heads;
	/* Llama's MLP: 8/3 of the width, rounded up to a multiple of 32. */
	cfg.hidden_dim = ffn ? (int)ffn : (8 * dim / 3 + 31) / 32 * 32;
	cfg.max_seq_len = ctx;
	cfg.qkv_bias = cfg.arch == MODEL_QWEN2 || bias;
	cfg.o_bias = bias;
	/* The released checkpoints' values: Qwen2 and Qwen3 1e-6 and
	 * 1000000, Llama and Mistral 7B v0.1 1e-5 and 10000 (and its
	 * window, MistralConfig's 4096; 0 writes null, no window). */
	cfg.norm_eps = cfg.arch == MODEL_LLAMA || cfg.arch == MODEL_MISTRAL ?
	    1e-5f : 1e-6f;
	cfg.rope_theta = theta ? theta :
	    cfg.arch == MODEL_LLAMA || cfg.arch == MODEL_MISTRAL ? 1e4 : 1e6;
	if (cfg.arch == MODEL_MISTRAL)
		cfg.sliding_window = window >= 0 ? window : 4096;
	cfg.rope_scaling = ROPE_NONE;
	cfg.tie_embeddings = tie;
	/* Gemma 2 and 3: Gemma2Config's and Gemma3TextConfig's values, the
	 * attention scaled by head_dim as the released checkpoints are,
	 * embeddings tied, a window of 4096 unless given */
	if (gemma) {
		cfg.query_pre_attn_scalar = cfg.head_dim;
		cfg.attn_softcap = cfg.arch == MODEL_GEMMA2 ? 50 : 0;
		cfg.final_softcap = cfg.arch == MODEL_GEMMA2 ? 30 : 0;
		cfg.sliding_window = window > 0 ? window : 4096;
		cfg.sliding_pattern = cfg.arch == MODEL_GEMMA2 ? 2 : 6;
		cfg.rope_theta = theta ? theta :
		    cfg.arch == MODEL_GEMMA2 ? 1e4 : 1e6;
		/* Gemma 3's sliding layers: rope_local_base_freq 10000 */
		cfg.rope_local_theta = cfg.arch == MODEL_GEMMA3 ? 1e4 : 0;
		cfg.tie_embeddings = 1;
	}
	cfg.lm_head = !score;
	cfg.num_labels = score;
	char e[256];
	if (model_config_check(&cfg, e, sizeof e) != 0)
		pp_usage("%s", e);
	/* The weights are made in memory: refuse a size no machine here
	 * holds before asking for it (a sanitizer build aborts on it). */
	size_t np = model_num_params(&cfg);
	if (np > INIT_MAX_PARAMS)
		pp_usage("init: these sizes make %zu parameters; ckpt init "
		    "makes at most %llu (2^31)", np,
		    (unsigned long long)INIT_MAX_PARAMS);

	struct ckpt_writer *w = ckpt_writer_open(out, dtype);
	json_t *gen = json_object();
	if (cfg.bos_id >= 0)
		json_object_set_new(gen, "bos_token_id",
		    json_integer(cfg.bos_id));
	if (cfg.n_eos)
		json_object_set_new(gen, "eos_token_id",
		    json_integer(cfg.eos_ids[0]));
	if (cfg.pad_id >= 0)
		json_object_set_new(gen, "pad_token_id",
		    json_integer(cfg.pad_id));
	/* A tokenizer's own generation_config.json replaces this one. */
	ckpt_writer_add_json(w, "generation_config.json", gen);
	json_decref(gen);
	if (tok != NULL) {
		ckpt_writer_add_json(w, "tokenizer.json", tok);
		ckpt_writer_add_json(w, "tokenizer_config.json", tokcfg);
	} else
		add_tokenizer_files(w, tokpath);
	json_decref(tok);
	json_decref(tokcfg);

	/* config.json and the weights: the model's own random
	 * initialisation, written as every tool writes a model. */
	struct model *m = model_new(&cfg);
	model_init_random(m, (uint64_t)seed);
	model_save(m, w);
	model_free(m);
	ckpt_writer_commit(w);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* info */

static int out_flags = REC_AUTO;

/* -J, -z and --help: the options of subcommands that write records. */
static int
parse_rec_opts(int argc, char **argv, int json_default)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'J' },
		{ "zstd", no_argument, NULL, 'z' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int c, json = json_default;
	while ((c = getopt_long(argc, argv, "Jzh", opts, NULL)) != -1) {
		switch (c) {
		case 'J': json = 1; rec_output_option(c, &out_flags); break;
		case 'z': rec_output_option(c, &out_flags); break;
		case 'h': pp_help();
		default: pp_usage(NULL);
		}
	}
	return json;
}

static void
shape_rec(struct rec *r, const struct tensor *t)
{
	int32_t s[TENSOR_MAXDIM];
	for (int d = 0; d < t->ndim; d++)
		s[d] = (int32_t)t->shape[d];
	rec_set_int_array(r, "shape", s, (size_t)t->ndim);
}

static int
cmd_info(int argc, char **argv)
{
	int json = parse_rec_opts(argc, argv, 0);
	if (argc - optind != 1)
		pp_usage("info: one checkpoint");
	struct ckpt *c = load_model_ckpt(argv[optind]);
	struct model_config cfg;
	model_ckpt_check(c, &cfg);
	json_t *conf = ckpt_config(c);
	const char *arch = json_string_value(json_array_get(
	    json_object_get(conf, "architectures"), 0));
	const char *mtype = json_string_value(json_object_get(conf,
	    "model_type"));
	size_t params = 0;
	for (size_t i = 0; i < ckpt_ntensors(c); i++)
		params += ckpt_tensor(c, i)->n;

	if (json) {
		struct rec_writer *w = rec_writer_open(1, "stdout", out_flags);
		struct rec r;
		rec_init(&r, "ckpt", 0);
		rec_set_str(&r, "path", ckpt_path(c));
		rec_set_str(&r, "architecture", arch ? arch : "");
		rec_set_str(&r, "model_type", mtype ? mtype : "");
		rec_set_int(&r, "vocab_size", cfg.vocab_size);
		rec_set_int(&r, "hidden_size", cfg.dim);
		rec_set_int(&r, "num_hidden_layers", cfg.n_layers);
		rec_set_int(&r, "num_attention_heads", cfg.n_heads);
		rec_set_int(&r, "num_key_value_heads", cfg.n_kv_heads);
		rec_set_int(&r, "head_dim", cfg.head_dim);
		rec_set_int(&r, "intermediate_size", cfg.hidden_dim);
		rec_set_int(&r, "max_position_embeddings", cfg.max_seq_len);
		rec_set_uint(&r, "params", params);
		rec_set_uint(&r, "tensors", ckpt_ntensors(c));
		rec_write(w, &r);
		rec_free(&r);
		for (size_t i = 0; i < ckpt_ntensors(c); i++) {
			const struct tensor *t = ckpt_tensor(c, i);
			rec_init(&r, "ckpt", 0);
			rec_set_str(&r, "name", t->name);
			shape_rec(&r, t);
			rec_set_str(&r, "dtype", dtype_name(t->dtype));
			rec_set_uint(&r, "params", t->n);
			rec_set_str(&r, "file", t->file);
			rec_write(w, &r);
			rec_free(&r);
		}
		rec_writer_close(w);
	} else {
		char s[128];
		printf("path          %s\n", ckpt_path(c));
		printf("architecture  %s (%s)\n", arch ? arch : "?",
		    mtype ? mtype : "?");
		printf("dimensions    vocab %d, dim %d, layers %d, "
		    "heads %d, kv-heads %d, head-dim %d, ffn %d, ctx %d\n",
		    cfg.vocab_size, cfg.dim, cfg.n_layers, cfg.n_heads,
		    cfg.n_kv_heads, cfg.head_dim, cfg.hidden_dim,
		    cfg.max_seq_len);
		printf("parameters    %zu\n", params);
		printf("files        ");
		for (size_t i = 0; i < ckpt_nfiles(c); i++)
			printf(" %s", ckpt_file_name(c, i));
		printf("\n\n");
		for (size_t i = 0; i < ckpt_ntensors(c); i++) {
			const struct tensor *t = ckpt_tensor(c, i);
			printf("%-48s %-16s %s\n", t->name, tensor_shape_str(s,
			    sizeof s, t->ndim, t->shape),
			    dtype_name(t->dtype));
		}
	}
	ckpt_free(c);
	pp_close_stdout();
	return 0;
}

/* ------------------------------------------------------------------------ */
/* convert */

/* Copy one tensor: bit for bit when its dtype stays, else via fp32. */
static void
copy_tensor(struct ckpt_writer *w, struct ckpt *c, const char *file,
    const char *name, const struct tensor *t, int dt)
{
	if (dt < 0 || (enum dtype)dt == t->dtype) {
		ckpt_writer_add_raw_to(w, file, name, t->ndim, t->shape,
		    t->raw, t->dtype);
		return;
	}
	ckpt_writer_add_tensor_to(w, file, name, t->ndim, t->shape,
	    ckpt_data(c, t), (enum dtype)dt);
	ckpt_drop(c, t);
}

static int
cmd_convert(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dtype", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int c, dt = -1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if ((dt = dtype_parse(optarg)) < 0)
				pp_usage("--dtype: f32, bf16 or f16, not "
				    "\"%s\"", optarg);
			break;
		case 'h': pp_help();
		default: pp_usage(NULL);
		}
	}
	if (argc - optind != 2)
		pp_usage("convert: IN and OUT");
	struct ckpt *in = load_model_ckpt(argv[optind]);
	/* The header's room planned ahead, for the usual case of one dtype
	 * (else the writer moves the data once at the end). */
	int wdt = dt >= 0 ? dt : ckpt_ntensors(in) > 0 ?
	    (int)ckpt_tensor(in, 0)->dtype : DT_F32;
	struct ckpt_writer *w = ckpt_writer_open(argv[optind + 1],
	    dtype_name((enum dtype)wdt));
	ckpt_writer_plan(w, in);

	/* The model's tensors, shards or not, into one model.safetensors,
	 * named as transformers writes them (a tied matrix stored as the
	 * head alone becomes the embedding). */
	for (size_t i = 0; i < ckpt_ntensors(in); i++) {
		const struct tensor *t = ckpt_tensor(in, i);
		copy_tensor(w, in, "model.safetensors",
		    model_ckpt_write_name(in, t), t, dt);
	}

	/* Everything else as it is, other safetensors files tensor by
	 * tensor (optimizer state keeps its dtype). */
	for (size_t i = 0; i < ckpt_nfiles(in); i++) {
		const char *name = ckpt_file_name(in, i);
		size_t len, nl = strlen(name);
		int model_file = strcmp(name,
		    "model.safetensors.index.json") == 0;
		for (size_t k = 0; k < ckpt_ntensors(in) && !model_file; k++)
			model_file = strcmp(ckpt_tensor(in, k)->file,
			    name) == 0;
		if (model_file)
			continue;
		if (nl > 12 && strcmp(name + nl - 12, ".safetensors") == 0) {
			struct st_set *s = ckpt_extra(in, name);
			for (size_t k = 0; k < st_set_ntensors(s); k++)
				copy_tensor(w, in, name,
				    st_set_tensor(s, k)->name,
				    st_set_tensor(s, k), -1);
			continue;
		}
		if (strcmp(name, "config.json") == 0 && dt >= 0) {
			json_t *conf = json_deep_copy(ckpt_config(in));
			ckpt_config_set_dtype(conf, (enum dtype)dt);
			ckpt_writer_add_json(w, name, conf);
			json_decref(conf);
			continue;
		}
		const void *p = ckpt_file(in, name, &len);
		ckpt_writer_add_file(w, name, p, len);
	}
	ckpt_writer_commit(w);
	ckpt_free(in);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* diff */

static int
same_shape(const struct tensor *a, const struct tensor *b)
{
	if (a->ndim != b->ndim)
		return 0;
	for (int d = 0; d < a->ndim; d++)
		if (a->shape[d] != b->shape[d])
			return 0;
	return 1;
}

/* A distance to a NaN or an infinity is no distance: an error. */
static void
finite_or_die(struct ckpt *c, const struct tensor *t, const float *x)
{
	char w[4096];
	long long k = dtype_nonfinite(DT_F32, x, t->n);

	if (k >= 0)
		errx(EXIT_DATA, "%s: tensor \"%s\": element %lld is %s",
		    ckpt_where(c, t->file, w, sizeof w), t->name, k,
		    isnan(x[k]) ? "NaN" : "infinite");
}

static int
cmd_diff(int argc, char **argv)
{
	parse_rec_opts(argc, argv, 0);
	if (argc - optind != 2)
		pp_usage("diff: two checkpoints");
	/*
	 * Static: the errx calls below exit with both still loaded, and
	 * LeakSanitizer must find them (a leak changes the exit status).
	 */
	static struct ckpt *a, *b;
	a = load_model_ckpt(argv[optind]);
	b = load_model_ckpt(argv[optind + 1]);
	char s1[64], s2[64];

	for (size_t i = 0; i < ckpt_ntensors(b); i++)
		if (ckpt_meta(a, ckpt_tensor(b, i)->name) == NULL)
			errx(EXIT_DATA, "%s: tensor \"%s\": missing (%s has "
			    "it)", ckpt_path(a), ckpt_tensor(b, i)->name,
			    ckpt_path(b));
	struct rec_writer *w = rec_writer_open(1, "stdout", out_flags);
	for (size_t i = 0; i < ckpt_ntensors(a); i++) {
		const struct tensor *ta = ckpt_tensor(a, i);
		const struct tensor *tb = ckpt_meta(b, ta->name);
		if (tb == NULL)
			errx(EXIT_DATA, "%s: tensor \"%s\": missing (%s has "
			    "it)", ckpt_path(b), ta->name, ckpt_path(a));
		if (!same_shape(ta, tb))
			errx(EXIT_DATA, "tensor \"%s\": shape %s in %s, %s in "
			    "%s", ta->name, tensor_shape_str(s1, sizeof s1,
			    ta->ndim, ta->shape), ckpt_path(a),
			    tensor_shape_str(s2, sizeof s2, tb->ndim,
			    tb->shape),
			    ckpt_path(b));
		const float *x = ckpt_data(a, ta), *y = ckpt_data(b, tb);
		/* NaN compares false with everything: it would pass for 0. */
		finite_or_die(a, ta, x);
		finite_or_die(b, tb, y);
		double d2 = 0, xy = 0, xx = 0, yy = 0, mx = 0;
		for (size_t k = 0; k < ta->n; k++) {
			double d = (double)x[k] - y[k];
			d2 += d * d;
			xy += (double)x[k] * y[k];
			xx += (double)x[k] * x[k];
			yy += (double)y[k] * y[k];
			if (fabs(d) > mx)
				mx = fabs(d);
		}
		/* Two zero tensors point the same way; one alone, nowhere. */
		double cosine = xx > 0 && yy > 0 ? xy / sqrt(xx * yy) :
		    xx == yy ? 1 : 0;
		struct rec r;
		rec_init(&r, "ckpt", i + 1);
		rec_set_str(&r, "name", ta->name);
		rec_set_num(&r, "l2", sqrt(d2));
		rec_set_num(&r, "cosine", cosine);
		rec_set_num(&r, "max_abs", mx);
		rec_write(w, &r);
		rec_free(&r);
		ckpt_drop(a, ta);
		ckpt_drop(b, tb);
	}
	rec_writer_close(w);
	ckpt_free(a);
	ckpt_free(b);
	pp_close_stdout();
	return 0;
}

/* ------------------------------------------------------------------------ */
/* tokenize, detokenize: text to token ids and back, with the checkpoint's
 * tokenizer (lib/text/tokenizer.h), as Hugging Face's encode and decode. */

/* The checkpoint's tokenizer; a checkpoint without one is an error. */
static struct tokenizer *
load_tokenizer(struct ckpt *c)
{
	char e[1024];
	struct tokenizer *t = tokenizer_from_ckpt(c, e, sizeof e);

	if (t == NULL)
		errx(EXIT_DATA, "%s", e);
	return t;
}

/* The options of tokenize and detokenize, in one place. */
struct tok_opts {
	const char *field;	/* tokenize: the text field */
	int special;		/* tokenize: add the post-processor's tokens */
	int skip;		/* detokenize: drop special tokens */
};

typedef void tok_fn(struct tokenizer *, const struct tok_opts *,
    struct rec *);

static void
encode_record(struct tokenizer *tok, const struct tok_opts *o, struct rec *r)
{
	size_t len, n;
	int32_t *ids;
	char e[256];
	const char *s = rec_need_str(r, o->field, &len);
	n = tokenizer_try_encode(tok, s, len, o->special, &ids, e, sizeof(e));
	if (n == (size_t)-1)
		rec_die(r, o->field, "%s", e);
	rec_set_int_array(r, "tokens", ids, n);
	free(ids);
}

static void
decode_record(struct tokenizer *tok, const struct tok_opts *o, struct rec *r)
{
	int32_t *ids;
	size_t len, n = rec_need_int_array(r, "tokens", &ids);
	char *text = tokenizer_decode(tok, ids, n, o->skip, &len);
	rec_set_strn(r, "text", text, len);
	free(text);
	free(ids);
}

/*
 * ckpt tokenize|detokenize [options] CKPT [FILE...]: fn applied to every
 * record with the checkpoint's tokenizer.
 */
static int
tok_command(int argc, char **argv, const char *name, tok_fn *fn)
{
	enum { O_FIELD = 256, O_NOSPECIAL, O_SKIP };
	static const struct option opts[] = {
		{ "field", required_argument, NULL, O_FIELD },
		{ "no-special", no_argument, NULL, O_NOSPECIAL },
		{ "skip-special", no_argument, NULL, O_SKIP },
		{ "json", no_argument, NULL, 'J' },
		{ "zstd", no_argument, NULL, 'z' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct tok_opts o = { "text", 1, 0 };
	int c, encode = fn == encode_record;

	while ((c = getopt_long(argc, argv, "Jzh", opts, NULL)) != -1) {
		switch (c) {
		case O_FIELD:
		case O_NOSPECIAL:
			if (!encode)
				pp_usage("%s: --%s is for tokenize", name,
				    c == O_FIELD ? "field" : "no-special");
			if (c == O_FIELD)
				o.field = optarg;
			else
				o.special = 0;
			break;
		case O_SKIP:
			if (encode)
				pp_usage("%s: --skip-special is for detokenize",
				    name);
			o.skip = 1;
			break;
		case 'J':
		case 'z': rec_output_option(c, &out_flags); break;
		case 'h': pp_help();
		default: pp_usage(NULL);
		}
	}
	if (argc - optind < 1)
		pp_usage("%s: a checkpoint", name);
	struct ckpt *ck = load_model_ckpt(argv[optind]);
	struct tokenizer *tok = load_tokenizer(ck);
	struct rec_reader *rd = rec_reader_open(argv + optind + 1,
	    argc - optind - 1);
	struct rec_writer *w = rec_writer_open(1, "stdout", out_flags);
	struct rec r;
	while (rec_read(rd, &r)) {
		fn(tok, &o, &r);
		rec_write(w, &r);
		rec_free(&r);
	}
	rec_writer_close(w);
	rec_reader_close(rd);
	tokenizer_free(tok);
	ckpt_free(ck);
	pp_close_stdout();
	return 0;
}

static int
cmd_tokenize(int argc, char **argv)
{
	return tok_command(argc, argv, "tokenize", encode_record);
}

static int
cmd_detokenize(int argc, char **argv)
{
	return tok_command(argc, argv, "detokenize", decode_record);
}

/* ------------------------------------------------------------------------ */
/* Dispatch: one line per subcommand. */

static const struct {
	const char *name;
	int (*run)(int, char **);
} cmds[] = {
	{ "init", cmd_init },
	{ "info", cmd_info },
	{ "convert", cmd_convert },
	{ "diff", cmd_diff },
	{ "tokenize", cmd_tokenize },
	{ "detokenize", cmd_detokenize },
};

int
main(int argc, char **argv)
{
	pp_init(argc, argv);
	pp_synopsis = SYNOPSIS;
	if (argc < 2)
		pp_usage(NULL);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		pp_help();
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].run(argc - 1, argv + 1);
	pp_usage("unknown subcommand \"%s\"", argv[1]);
}
