/*
 * unit_sample_check: checks rollout's records against plain forward passes
 * of the model, without a KV cache, for tests/rollout_*.sh.
 *
 *   unit_sample_check CKPT < records
 *	For every record, one forward pass over prompt_tokens followed by
 *	response_tokens: logprobs must equal the log-probabilities of the
 *	response tokens there (to 1e-4), and for a greedy record (greedy:
 *	true, or every record with -g) each response token must be the
 *	argmax of the logits before it.  Prints the number of records
 *	checked; exits 1 at the first mismatch.
 *
 *   unit_sample_check -p CKPT < record
 *	Prints the probabilities of the first response token of the first
 *	record's prompt, one "id probability" line per token, for the
 *	sampling-frequency test.
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
#include "util/util.h"

int
main(int argc, char **argv)
{
	int probs = 0, allgreedy = 0, c;
	while ((c = getopt(argc, argv, "pg")) != -1) {
		if (c == 'p')
			probs = 1;
		else if (c == 'g')
			allgreedy = 1;
		else
			errx(2, "usage: unit_sample_check [-pg] CKPT");
	}
	if (optind + 1 != argc)
		errx(2, "usage: unit_sample_check [-pg] CKPT");
	struct ckpt *ck = ckpt_load(argv[optind]);
	struct model *m = model_from_ckpt(ck);
	int V = m->cfg.vocab_size;
	struct rec_reader *rd = rec_reader_open(NULL, 0);
	struct rec r;
	long nrec = 0;

	while (rec_read(rd, &r)) {
		int32_t *p, *resp;
		float *lp;
		size_t np = rec_need_int_array(&r, "prompt_tokens", &p);
		size_t nr = rec_need_int_array(&r, "response_tokens", &resp);
		size_t nl = rec_need_float_array(&r, "logprobs", &lp);
		int greedy = allgreedy || rec_opt_bool(&r, "greedy", 0);
		int len = (int)(np + nr);
		int *toks = xmalloc(len * sizeof(int));
		int *tgt = xmalloc(len * sizeof(int));
		float *out = xmalloc(len * sizeof(float));

		if (nl != nr)
			errx(1, "record %ld: %zu logprobs for %zu tokens",
			    nrec + 1, nl, nr);
		for (int i = 0; i < len; i++)
			toks[i] = i < (int)np ? p[i] : resp[i - np];
		for (int i = 0; i < len; i++)
			tgt[i] = i + 1 < len ? toks[i + 1] : -1;
		struct model_batch b = { 1, &len, toks, tgt };
		float *logits = xmalloc((size_t)len * V * sizeof(float));

		model_forward(m, &b, out);
		model_logits(m, logits);

		if (probs) {
			const float *row = logits + (size_t)(np - 1) * V;
			double mx = row[0], z = 0;
			for (int v = 1; v < V; v++)
				if (row[v] > mx)
					mx = row[v];
			for (int v = 0; v < V; v++)
				z += exp(row[v] - mx);
			for (int v = 0; v < V; v++)
				printf("%d %.12g\n", v, exp(row[v] - mx) / z);
			return 0;
		}
		for (size_t k = 0; k < nr; k++) {
			float want = out[np - 1 + k];
			if (fabsf(want - lp[k]) > 1e-4f * (1 + fabsf(want)))
				errx(1, "record %ld: token %zu (%d): logprob "
				    "%.7g, forward pass says %.7g", nrec + 1, k,
				    resp[k], lp[k], want);
			if (greedy) {
				const float *row = logits +
				    (size_t)(np - 1 + k) * V;
				int best = 0;
				for (int v = 1; v < V; v++)
					if (row[v] > row[best])
						best = v;
				/* Cached and uncached sums round differently:
				 * allow a near tie. */
				if (best != resp[k] &&
				    row[resp[k]] < row[best] - 1e-4f)
					errx(1, "record %ld: greedy token %zu is "
					    "%d, argmax is %d", nrec + 1, k,
					    resp[k], best);
			}
		}
		free(p);
		free(resp);
		free(lp);
		free(toks);
		free(tgt);
		free(out);
		free(logits);
		rec_free(&r);
		nrec++;
	}
	rec_reader_close(rd);
	printf("%ld\n", nrec);
	model_free(m);
	ckpt_free(ck);
	return 0;
}
