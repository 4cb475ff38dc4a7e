/*
 * unit_score.c: the model scorers of score(1) against numbers computed
 * another way:
 *   --logprob against the model core's PyTorch fixtures
 *     (tests/fixtures/model), plain and pair records;
 *   --flr and --rm against a judge whose layers add nothing (o_proj and
 *     down_proj zero), so the network is a bigram table:
 *     logits(next | a) = lm_head . rmsnorm(embed[a]), and the reward
 *     head's output at the last token b is score . rmsnorm(embed[b]).
 *     The expected values come from that table, by hand, in double.
 * Run by `make check`; fixtures are found through $top_srcdir.
 */
#include "config.h"

#include <err.h>
#include <math.h>
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

static int failures;
static char tmpdir[] = "/tmp/unit_score.XXXXXX";

#define CHECK(cond, ...) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);	\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
		failures++;						\
	}								\
} while (0)

static const char *
srcdir(void)
{
	const char *s = getenv("top_srcdir");
	return s != NULL ? s : ".";
}

/* A fixture tensor's data (F32 or I32, both 4 bytes an element). */
static const void *
fixture_get(const char *buf, json_t *hdr, const char *name, size_t *n)
{
	uint64_t h;
	json_t *t = json_object_get(hdr, name), *off;

	if (t == NULL)
		errx(1, "fixture tensor %s missing", name);
	memcpy(&h, buf, 8);
	off = json_object_get(t, "data_offsets");
	size_t a = (size_t)json_integer_value(json_array_get(off, 0));
	size_t b = (size_t)json_integer_value(json_array_get(off, 1));
	*n = (b - a) / 4;
	return buf + 8 + h + a;
}

static void
save(const struct model *m, const char *dir, int with_tokenizer)
{
	struct ckpt_writer *w = ckpt_writer_open(dir, NULL);
	char path[4096];
	size_t len;
	char *data;

	model_save(m, w);
	if (with_tokenizer) {
		snprintf(path, sizeof(path), "%s/tests/tokenizer/byte.json",
		    srcdir());
		data = pp_read_file(path, &len);
		ckpt_writer_add_file(w, "tokenizer.json", data, len);
		free(data);
		snprintf(path, sizeof(path),
		    "%s/tests/tokenizer/byte_config.json", srcdir());
		data = pp_read_file(path, &len);
		ckpt_writer_add_file(w, "tokenizer_config.json", data, len);
		free(data);
	}
	ckpt_writer_commit(w);
}

/* Parse JSON Lines text into records r[0..n). */
static int
parse_recs(const char *text, struct rec *r, int max)
{
	char path[4096];
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "%s/in.jsonl", tmpdir);
	if ((f = fopen(path, "w")) == NULL || fputs(text, f) == EOF ||
	    fclose(f) != 0)
		err(1, "%s", path);
	char *paths[] = { path, NULL };
	struct rec_reader *rd = rec_reader_open(paths, 1);
	while (n < max && rec_read(rd, &r[n]))
		n++;
	rec_reader_close(rd);
	return n;
}

/* Score the records of text with s; the results come back in out. */
static int
run(struct mscorer *s, const char *text, struct rec *out, int max)
{
	struct rec in[16];
	char path[4096];
	int n = parse_recs(text, in, 16);

	snprintf(path, sizeof(path), "%s/out.mp", tmpdir);
	FILE *f = fopen(path, "w");
	if (f == NULL)
		err(1, "%s", path);
	struct rec_writer *w = rec_writer_open(fileno(f), path, 0);
	for (int i = 0; i < n; i++)
		ms_add(s, &in[i], w);
	ms_flush(s, w);
	rec_writer_close(w);
	fclose(f);
	char *paths[] = { path, NULL };
	struct rec_reader *rd = rec_reader_open(paths, 1);
	int k = 0;
	while (k < max && rec_read(rd, &out[k]))
		k++;
	rec_reader_close(rd);
	CHECK(k == n, "%d records in, %d out", n, k);
	return k;
}

static void
ids_json(struct strbuf *b, const int *t, int n)
{
	sb_addc(b, '[');
	for (int i = 0; i < n; i++)
		sb_printf(b, "%s%d", i ? "," : "", t[i]);
	sb_addc(b, ']');
}

/* ------------------------------------------------------------------------ */
/* --logprob against the PyTorch fixtures */

static void
check_lps(const struct rec *r, const char *side, const float *want, int n,
    const char *what)
{
	struct rec sub;
	const struct rec *x = r;
	float *got;

	if (side != NULL) {
		rec_need_sub(r, side, &sub);
		x = &sub;
	}
	size_t k = rec_need_float_array(x, "ref_logprobs", &got);
	CHECK((int)k == n, "%s: %zu log-probs, want %d", what, k, n);
	double sum = 0, worst = 0;
	for (int i = 0; i < n && i < (int)k; i++) {
		double e = fabs(got[i] - want[i]) / (1 + fabs(want[i]));
		if (e > worst)
			worst = e;
		sum += want[i];
	}
	CHECK(worst < 1e-4, "%s: log-prob error %g", what, worst);
	double s = rec_need_num(x, "ref_logprob");
	CHECK(fabs(s - sum) < 1e-3 * (1 + fabs(sum)), "%s: sum %g, want %g",
	    what, s, sum);
	free(got);
	if (side != NULL)
		rec_free(&sub);
}

static void
test_fixture(const char *name)
{
	char path[4096], e[256], dir[4096];
	json_error_t je;
	json_t *j, *hdr;
	struct model_config cfg;
	size_t len, n;

	snprintf(path, sizeof(path), "%s/tests/fixtures/model/%s.config.json",
	    srcdir(), name);
	if ((j = json_load_file(path, 0, &je)) == NULL)
		errx(1, "%s: %s", path, je.text);
	if (model_config_from_json(&cfg, j, e, sizeof(e)) != 0)
		errx(1, "%s: %s", path, e);
	json_decref(j);
	struct model *m = model_new(&cfg);
	model_init_normal(m, 1234, 0.3, 0.2);
	snprintf(dir, sizeof(dir), "%s/%s", tmpdir, name);
	save(m, dir, 0);
	model_free(m);

	snprintf(path, sizeof(path),
	    "%s/tests/fixtures/model/%s.expect.safetensors", srcdir(), name);
	char *buf = pp_read_file(path, &len);
	uint64_t h;
	memcpy(&h, buf, 8);
	if ((hdr = json_loadb(buf + 8, h, 0, &je)) == NULL)
		errx(1, "%s: %s", path, je.text);
	const int *lens = fixture_get(buf, hdr, "lens", &n);
	const int *tok = fixture_get(buf, hdr, "tokens", &n);
	const float *lp = fixture_get(buf, hdr, "logprobs", &n);
	int L0 = lens[0], L1 = lens[1], P = 3;

	/*
	 * Prompts of 3 tokens: the fixture's targets are the next tokens
	 * from position 2 on (only position 1 has none).  A pair's rejected
	 * side is a prefix of its chosen one: causal attention gives it the
	 * same log-probs.
	 */
	struct strbuf b;
	sb_init(&b);
	sb_adds(&b, "{\"prompt_tokens\":");
	ids_json(&b, tok, P);
	sb_adds(&b, ",\"response_tokens\":");
	ids_json(&b, tok + P, L0 - P);
	sb_adds(&b, "}\n{\"prompt_tokens\":");
	ids_json(&b, tok + L0, P);
	sb_adds(&b, ",\"response_tokens\":");
	ids_json(&b, tok + L0 + P, L1 - P);
	sb_adds(&b, "}\n{\"prompt_tokens\":");
	ids_json(&b, tok, P);
	sb_adds(&b, ",\"chosen\":{\"response_tokens\":");
	ids_json(&b, tok + P, L0 - P);
	sb_adds(&b, "},\"rejected\":{\"response_tokens\":");
	ids_json(&b, tok + P, 2);
	sb_adds(&b, "}}\n");

	for (long bt = 4; bt <= 4096; bt *= 1024) {
		struct ms_opts o = { .as = "ref", .batch_tokens = bt };
		struct mscorer *s = ms_new(MS_LOGPROB, dir, &o);
		struct rec out[3];
		char what[128];
		if (run(s, b.data, out, 3) == 3) {
			snprintf(what, sizeof(what), "%s seq 0 (batch %ld)",
			    name, bt);
			check_lps(&out[0], NULL, lp + P - 1, L0 - P, what);
			snprintf(what, sizeof(what), "%s seq 1 (batch %ld)",
			    name, bt);
			check_lps(&out[1], NULL, lp + L0 + P - 1, L1 - P, what);
			snprintf(what, sizeof(what), "%s chosen (batch %ld)",
			    name, bt);
			check_lps(&out[2], "chosen", lp + P - 1, L0 - P, what);
			snprintf(what, sizeof(what), "%s rejected (batch %ld)",
			    name, bt);
			check_lps(&out[2], "rejected", lp + P - 1, 2, what);
		}
		for (int i = 0; i < 3; i++)
			rec_free(&out[i]);
		ms_free(s);
	}
	sb_free(&b);
	json_decref(hdr);
	free(buf);
}

/* ------------------------------------------------------------------------ */
/* A bigram judge and reward model */

static const char *BASECFG =
    "\"model_type\":\"llama\",\"vocab_size\":259,\"hidden_size\":16,"
    "\"intermediate_size\":24,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":4,\"num_key_value_heads\":2,"
    "\"max_position_embeddings\":512,\"rms_norm_eps\":1e-5,"
    "\"rope_theta\":10000.0,\"tie_word_embeddings\":false,"
    "\"hidden_act\":\"silu\",\"bos_token_id\":256,\"eos_token_id\":257";

static struct model *
bigram_model(const char *arch, const char *extra, uint64_t seed)
{
	char text[2048], e[256];
	struct model_config cfg;
	json_error_t je;
	json_t *j;

	snprintf(text, sizeof(text), "{\"architectures\":[\"%s\"],%s%s}",
	    arch, BASECFG, extra);
	if ((j = json_loads(text, 0, &je)) == NULL)
		errx(1, "config: %s", je.text);
	if (model_config_from_json(&cfg, j, e, sizeof(e)) != 0)
		errx(1, "config: %s", e);
	json_decref(j);
	struct model *m = model_new(&cfg);
	model_init_normal(m, seed, 0.5, 0.3);
	for (int l = 0; l < cfg.n_layers; l++) {
		char name[64];
		const char *which[2] = { "self_attn.o_proj", "mlp.down_proj" };
		for (int k = 0; k < 2; k++) {
			snprintf(name, sizeof(name), "model.layers.%d.%s.weight",
			    l, which[k]);
			const struct model_tensor *t = model_tensor(m, name);
			if (t == NULL)
				errx(1, "no tensor %s", name);
			memset(model_param(m, t), 0, t->n * sizeof(float));
		}
	}
	return m;
}

/* rmsnorm(embed[a]) * norm.weight, in double. */
static void
hidden(struct model *m, int a, double *h)
{
	int C = m->cfg.dim;
	const float *E = model_param(m, model_tensor(m,
	    "model.embed_tokens.weight")) + (size_t)a * C;
	const float *g = model_param(m, model_tensor(m, "model.norm.weight"));
	double ss = 0;

	for (int i = 0; i < C; i++)
		ss += (double)E[i] * E[i];
	double r = 1 / sqrt(ss / C + m->cfg.norm_eps);
	for (int i = 0; i < C; i++)
		h[i] = E[i] * r * g[i];
}

/* log p(b | a) of the bigram table. */
static double
bigram(struct model *m, int a, int b)
{
	int C = m->cfg.dim, V = m->cfg.vocab_size;
	const float *W = model_param(m, model_tensor(m, "lm_head.weight"));
	double h[64], *lg = xmalloc(V * sizeof(double)), mx = -INFINITY,
	    sum = 0;

	hidden(m, a, h);
	for (int v = 0; v < V; v++) {
		lg[v] = 0;
		for (int i = 0; i < C; i++)
			lg[v] += W[(size_t)v * C + i] * h[i];
		if (lg[v] > mx)
			mx = lg[v];
	}
	for (int v = 0; v < V; v++)
		sum += exp(lg[v] - mx);
	double r = lg[b] - mx - log(sum);
	free(lg);
	return r;
}

/* Mean log-prob of the follow-up's bytes after byte prev. */
static double
ell(struct model *m, int prev, const char *f)
{
	double s = 0;
	int n = (int)strlen(f);

	for (int i = 0; i < n; i++) {
		s += bigram(m, prev, (unsigned char)f[i]);
		prev = (unsigned char)f[i];
	}
	return s / n;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f == NULL || fputs(text, f) == EOF || fclose(f) != 0)
		err(1, "%s", path);
}

static void
test_flr(void)
{
	char dir[4096], pos[4096], neg[4096];
	const char *P[] = { "Thanks!", "Great, that works." };
	const char *N[] = { "Wrong.", "No.", "That is not it at all" };
	struct model *m = bigram_model("LlamaForCausalLM", "", 77);

	snprintf(dir, sizeof(dir), "%s/judge", tmpdir);
	save(m, dir, 1);
	snprintf(pos, sizeof(pos), "%s/pos.txt", tmpdir);
	snprintf(neg, sizeof(neg), "%s/neg.txt", tmpdir);
	write_file(pos, "Thanks!\n\n  Great, that works.  \n");
	write_file(neg, "Wrong.\nNo.\nThat is not it at all");

	/* A base model: the follow-up comes after a newline. */
	double p = (ell(m, '\n', P[0]) + ell(m, '\n', P[1])) / 2;
	double q = (ell(m, '\n', N[0]) + ell(m, '\n', N[1]) +
	    ell(m, '\n', N[2])) / 3;
	for (int nocache = 0; nocache < 2; nocache++) {
		struct ms_opts o = { .as = "flr", .positive = pos,
		    .negative = neg, .details = 1, .nocache = nocache,
		    .batch_tokens = nocache ? 40 : 4096 };
		struct mscorer *s = ms_new(MS_FLR, dir, &o);
		struct rec out[2];
		if (run(s, "{\"prompt\":\"Hi\",\"response\":\"Hello\"}\n"
		    "{\"prompt\":\"Q\",\"chosen\":{\"response\":\"A\"},"
		    "\"rejected\":{\"response\":\"B\\n\"}}\n", out, 2) == 2) {
			double got = rec_need_num(&out[0], "flr");
			CHECK(fabs(got - (p - q)) < 1e-4, "flr (nocache %d) "
			    "%g, want %g", nocache, got, p - q);
			float *v;
			size_t k = rec_need_float_array(&out[0],
			    "flr_negative", &v);
			CHECK(k == 3 && fabs(v[2] - ell(m, '\n', N[2])) < 1e-4,
			    "flr_negative[2]");
			free(v);
			double c = rec_get_path(&out[1], "chosen.flr")->via.f64;
			double r = rec_get_path(&out[1],
			    "rejected.flr")->via.f64;
			CHECK(fabs(c - (p - q)) < 1e-4 && fabs(r - (p - q)) <
			    1e-4, "pair flr %g %g, want %g", c, r, p - q);
		}
		for (int i = 0; i < 2; i++)
			rec_free(&out[i]);
		ms_free(s);
	}

	/*
	 * Chat templates: the follow-up opens a user turn, whose header ends
	 * in a newline in each of these, so for a bigram judge the reward is
	 * the base model's.  A context cut in the wrong place (after the
	 * turn's end, or before its header) would end in another byte.
	 */
	const char *tpl[] = { "chatml", "llama3", "zephyr", "qwen2" };
	for (int k = 0; k < 4; k++) {
		struct ms_opts o = { .as = "flr", .positive = pos,
		    .negative = neg, .chat = tpl[k] };
		struct mscorer *s = ms_new(MS_FLR, dir, &o);
		struct rec out[1];
		if (run(s, "{\"prompt\":\"Hi\",\"response\":\"Hello\"}\n",
		    out, 1) == 1) {
			double got = rec_need_num(&out[0], "flr");
			CHECK(fabs(got - (p - q)) < 1e-4, "flr with %s: %g, "
			    "want %g", tpl[k], got, p - q);
			rec_free(&out[0]);
		}
		ms_free(s);
	}

	/* The built-in follow-ups: check the first record only. */
	{
		struct ms_opts o = { .as = "reward" };
		struct mscorer *s = ms_new(MS_FLR, dir, &o);
		struct rec out[1];
		double want = 0;
		int np = 0, nn = 0;
		for (; flr_default_positive[np] != NULL; np++)
			want += ell(m, '\n', flr_default_positive[np]);
		want /= np;
		double neg_sum = 0;
		for (; flr_default_negative[nn] != NULL; nn++)
			neg_sum += ell(m, '\n', flr_default_negative[nn]);
		want -= neg_sum / nn;
		CHECK(np == 10 && nn == 10, "%d and %d built-in follow-ups",
		    np, nn);
		if (run(s, "{\"prompt\":\"x\",\"response\":\"y\"}\n", out,
		    1) == 1) {
			double got = rec_need_num(&out[0], "reward");
			CHECK(fabs(got - want) < 1e-4, "built-in flr %g, want "
			    "%g", got, want);
			rec_free(&out[0]);
		}
		ms_free(s);
	}
	model_free(m);
}

static void
test_rm(void)
{
	char dir[4096];
	struct model *m = bigram_model("LlamaForSequenceClassification",
	    ",\"id2label\":{\"0\":\"LABEL_0\"}", 5);
	const float *w;
	double h[64], want[2] = { 0, 0 };
	/*
	 * The reward is read at the last token train-step trains at: the EOS
	 * a text response gets, or the last of the response_tokens given.
	 */
	int last[2] = { m->cfg.n_eos > 0 ? m->cfg.eos_ids[0] : 'o', '!' };

	CHECK(m->cfg.num_labels == 1 && !m->cfg.lm_head, "a reward model");
	CHECK(m->cfg.n_eos > 0, "the judge has an EOS token");
	snprintf(dir, sizeof(dir), "%s/rm", tmpdir);
	save(m, dir, 1);
	w = model_param(m, model_tensor(m, "score.weight"));
	for (int k = 0; k < 2; k++) {
		hidden(m, last[k], h);
		for (int i = 0; i < m->cfg.dim; i++)
			want[k] += w[i] * h[i];
	}
	struct ms_opts o = { .as = "rm", .batch_tokens = 8 };
	struct mscorer *s = ms_new(MS_RM, dir, &o);
	struct rec out[2];
	if (run(s, "{\"prompt\":\"Hi\",\"response\":\"Hello\"}\n"
	    "{\"prompt_tokens\":[81],\"chosen\":{\"response_tokens\":"
	    "[89,101,115,33]},\"rejected\":{\"response_tokens\":[110,111]}}"
	    "\n", out, 2) == 2) {
		double got = rec_need_num(&out[0], "rm");
		CHECK(fabs(got - want[0]) < 1e-4, "rm %g, want %g", got,
		    want[0]);
		got = rec_get_path(&out[1], "chosen.rm")->via.f64;
		CHECK(fabs(got - want[1]) < 1e-4, "rm chosen %g, want %g", got,
		    want[1]);
		rec_free(&out[0]);
		rec_free(&out[1]);
	}
	ms_free(s);
	model_free(m);
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL)
		err(1, "mkdtemp");
	test_fixture("llama_gqa_tied");
	test_fixture("llama3_untied");
	test_fixture("qwen2_bias");
	test_flr();
	test_rm();
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		warnx("could not remove %s", tmpdir);
	if (failures)
		fprintf(stderr, "%d check(s) failed\n", failures);
	return failures != 0;
}
