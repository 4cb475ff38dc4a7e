/*
 * bench_score.c: the model scorers of score(1) against the model's raw
 * forward pass on the same batches.
 *
 *   bench_score logprob|rm|flr [RECORDS]
 *
 * Each mode makes a random checkpoint (byte tokenizer) in a temporary
 * directory, builds RECORDS records in memory, and times
 *   raw:   model_forward over the very sequences the scorer runs, batch by
 *          batch as it would (for flr: context + follow-up, every one);
 *   score: the scorer from the first record to the last one written (to
 *          /dev/null), tokenizing, batching and writing included.
 * Both are reported in tokens of the scored sequences per second, the best
 * of three rounds each, alternating, and their ratio.  For flr the scorer
 * reads each context once (a shared KV cache) while the raw baseline reads
 * it for every follow-up, so the ratio also shows what the cache saves;
 * flr_nocache is the scorer running the same forward passes as raw.
 */
#include "config.h"

#include <err.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoints/checkpoint.h"
#include "model/model.h"
#include "records/record.h"
#include "scoring/scorer.h"
#include "text/tokenizer.h"
#include "util/util.h"

#define PROMPT	96	/* tokens of a prompt, BOS included */
#define RESP	32	/* tokens of a response */
#define BATCH	4096	/* --batch-tokens */

static char dir[] = "/tmp/bench_score.XXXXXX";

static void
make_ckpt(const char *path, int rm)
{
	char text[2048], e[256];
	struct model_config cfg;
	json_error_t je;
	json_t *j;
	const char *src = getenv("top_srcdir");
	size_t len;
	char *data, file[4096];

	snprintf(text, sizeof(text), "{\"architectures\":[\"%s\"],"
	    "\"model_type\":\"llama\",\"vocab_size\":4096,\"hidden_size\":256,"
	    "\"intermediate_size\":688,\"num_hidden_layers\":4,"
	    "\"num_attention_heads\":8,\"num_key_value_heads\":4,"
	    "\"max_position_embeddings\":1024,\"rms_norm_eps\":1e-5,"
	    "\"rope_theta\":10000.0,\"tie_word_embeddings\":false,"
	    "\"hidden_act\":\"silu\",\"bos_token_id\":256,"
	    "\"eos_token_id\":257%s}",
	    rm ? "LlamaForSequenceClassification" : "LlamaForCausalLM",
	    rm ? ",\"id2label\":{\"0\":\"LABEL_0\"}" : "");
	if ((j = json_loads(text, 0, &je)) == NULL)
		errx(1, "config: %s", je.text);
	if (model_config_from_json(&cfg, j, e, sizeof(e)) != 0)
		errx(1, "config: %s", e);
	json_decref(j);
	struct model *m = model_new(&cfg);
	model_init_random(m, 1);
	struct ckpt_writer *w = ckpt_writer_open(path, NULL);
	model_save(m, w);
	snprintf(file, sizeof(file), "%s/tests/tokenizer/byte.json",
	    src ? src : ".");
	data = pp_read_file(file, &len);
	ckpt_writer_add_file(w, "tokenizer.json", data, len);
	free(data);
	ckpt_writer_commit(w);
	model_free(m);
}

/* Record i: token ids for logprob, text of the same lengths otherwise. */
static void
make_rec(struct rec *r, int i, int tokens)
{
	int32_t p[PROMPT], q[RESP];
	char pt[PROMPT], rt[RESP + 1];
	uint64_t x = 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1);

	rec_init(r, "bench", (uint64_t)i + 1);
	for (int t = 0; t < PROMPT; t++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		p[t] = t == 0 ? 256 : 'a' + (int)(x >> 60);
		pt[t] = (char)p[t];
	}
	for (int t = 0; t < RESP; t++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		q[t] = 'a' + (int)(x >> 60);
		rt[t] = (char)q[t];
	}
	rt[RESP] = 0;
	rec_set_int(r, "id", i);
	if (tokens) {
		rec_set_int_array(r, "prompt_tokens", p, PROMPT);
		rec_set_int_array(r, "response_tokens", q, RESP);
	} else {
		/* BOS comes from the tokenizer: one character fewer. */
		rec_set_strn(r, "prompt", pt + 1, PROMPT - 1);
		rec_set_strn(r, "response", rt, RESP);
	}
}

/*
 * The raw forward passes: nseq sequences of the given lengths, in batches
 * of at least BATCH tokens as the scorer forms them (a batch is run when
 * its tokens reach BATCH); unit is the tokens of one record's work.
 */
static double
raw(struct model *m, const int *lens, int nseq, int per_rec, int targets)
{
	int maxN = 0, n = 0;
	for (int i = 0; i < nseq; i++)
		maxN += lens[i];
	int *tok = xmalloc(maxN * sizeof(*tok));
	int *tgt = xmalloc(maxN * sizeof(*tgt));
	float *lp = xmalloc(maxN * sizeof(*lp));
	for (int i = 0; i < maxN; i++) {
		tok[i] = 'a' + i % 16;
		tgt[i] = targets ? 'a' + (i + 1) % 16 : -1;
	}
	double t0 = pp_now();
	for (int i = 0; i < nseq; ) {
		int j = i, N = 0;
		/* Whole records, until the batch is full. */
		while (j < nseq && N < BATCH) {
			for (int k = 0; k < per_rec; k++)
				N += lens[j + k];
			j += per_rec;
		}
		struct model_batch b = { j - i, lens + i, tok,
		    targets ? tgt : NULL };
		model_forward(m, &b, targets ? lp : NULL);
		i = j;
		n += N;
	}
	double t = pp_now() - t0;
	free(tok);
	free(tgt);
	free(lp);
	return t;
}

/*
 * One round of the scorer s (kept across rounds, so its buffers are as
 * warm as the raw baseline's): records made, scored, written.
 */
static double
scored(struct mscorer *s, int nrec, int tokens)
{
	int fd = open("/dev/null", O_WRONLY);
	struct rec_writer *w = rec_writer_open(fd, "/dev/null", 0);
	struct rec r;

	double t0 = pp_now();
	for (int i = 0; i < nrec; i++) {
		make_rec(&r, i, tokens);
		ms_add(s, &r, w);
	}
	ms_flush(s, w);
	rec_writer_close(w);
	double t = pp_now() - t0;
	close(fd);
	return t;
}

static struct mscorer *
scorer(enum ms_kind kind, const char *path, int nocache)
{
	struct ms_opts o = { .as = kind == MS_LOGPROB ? "ref" : "reward",
	    .batch_tokens = BATCH, .nocache = nocache };
	return ms_new(kind, path, &o);
}

int
main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "logprob";
	int nrec = argc > 2 ? atoi(argv[2]) : 96;
	char path[4096];
	int rm = strcmp(mode, "rm") == 0, flr = strcmp(mode, "flr") == 0;
	enum ms_kind kind = rm ? MS_RM : flr ? MS_FLR : MS_LOGPROB;

	if (!rm && !flr && strcmp(mode, "logprob") != 0)
		errx(2, "usage: bench_score logprob|rm|flr [RECORDS]");
	if (mkdtemp(dir) == NULL)
		err(1, "mkdtemp");
	snprintf(path, sizeof(path), "%s/m", dir);
	make_ckpt(path, rm);
	struct ckpt *c = ckpt_load(path);
	struct model *m = model_from_ckpt(c);
	ckpt_free(c);

	/* The sequences the scorer runs. */
	int per = 1, *lens;
	if (flr) {
		/* Context: BOS + prompt + response + "\n"; then a follow-up. */
		char e[256];
		snprintf(path, sizeof(path), "%s/m/tokenizer.json", dir);
		struct tokenizer *tok = tokenizer_from_file(path, e,
		    sizeof(e));
		if (tok == NULL)
			errx(1, "%s", e);
		int nf = 0;
		while (flr_default_positive[nf] != NULL)
			nf++;
		per = 2 * nf;
		lens = xmalloc((size_t)nrec * per * sizeof(*lens));
		for (int f = 0; f < per; f++) {
			const char *u = f < nf ? flr_default_positive[f] :
			    flr_default_negative[f - nf];
			int32_t *ids;
			int n = (int)tokenizer_encode(tok, u, strlen(u), 0, &ids);
			free(ids);
			for (int i = 0; i < nrec; i++)
				lens[i * per + f] = PROMPT + RESP + 1 + n;
		}
		tokenizer_free(tok);
		snprintf(path, sizeof(path), "%s/m", dir);
	} else {
		lens = xmalloc(nrec * sizeof(*lens));
		for (int i = 0; i < nrec; i++)
			lens[i] = PROMPT + RESP;
	}
	uint64_t want = 0;
	for (int i = 0; i < nrec * per; i++)
		want += (uint64_t)lens[i];

	double best_raw = 1e30, best_score = 1e30, best_nc = 1e30;
	struct mscorer *sc = scorer(kind, path, 0);
	struct mscorer *nc = flr ? scorer(kind, path, 1) : NULL;
	for (int round = 0; round < 3; round++) {
		double t = raw(m, lens, nrec * per, per, !rm);
		if (t < best_raw)
			best_raw = t;
		t = scored(sc, nrec, kind == MS_LOGPROB);
		if (t < best_score)
			best_score = t;
		if (flr) {
			t = scored(nc, nrec, 0);
			if (t < best_nc)
				best_nc = t;
		}
	}
	uint64_t got = ms_stats(sc)->seq_tokens / 3;
	ms_free(sc);
	ms_free(nc);
	if (got != want)
		warnx("the scorer ran %llu sequence tokens, the baseline %llu",
		    (unsigned long long)got, (unsigned long long)want);
	printf("%s_records=%d\n", mode, nrec);
	printf("%s_tokens=%llu\n", mode, (unsigned long long)want);
	printf("%s_raw_forward_tokens_per_s=%.0f\n", mode, want / best_raw);
	printf("%s_score_tokens_per_s=%.0f\n", mode, want / best_score);
	printf("%s_score_over_raw=%.2f\n", mode, best_raw / best_score);
	if (flr) {
		printf("flr_nocache_score_tokens_per_s=%.0f\n", want / best_nc);
		printf("flr_nocache_over_raw=%.2f\n", best_raw / best_nc);
	}
	model_free(m);
	free(lens);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	if (system(path) != 0)
		warnx("could not remove %s", dir);
	return 0;
}
