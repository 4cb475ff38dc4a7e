/*
 * bench_tokenizer: encoding and decoding speed of lib/tokenizer, one core.
 *
 *   bench_tokenizer TOKENIZER.json TEXT [REPEAT]
 *
 * TEXT is cut into paragraphs (at blank lines), each encoded by its own
 * call as records' texts are; the whole file is encoded REPEAT times (the
 * first pass warms the pre-token cache, as any long run does) and the best
 * pass counts.  Prints key=value lines.
 */
#include "config.h"

#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "text/tokenizer.h"
#include "util/util.h"

/* CPU seconds of this thread: a busy machine does not count against us. */
static double
cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	struct tokenizer *t;
	struct strbuf text;
	char e[512], buf[65536], *s;
	FILE *f;
	size_t n, i, start, ntok = 0, total = 0, *cut = NULL, ncut = 0, cap = 0;
	int32_t *ids, *all = NULL;
	size_t nall = 0, allcap = 0;
	double t0, c0, best = 1e30, cbest = 1e30, dbest = 1e30, el;
	int rep, reps;

	if (argc < 3)
		errx(2, "usage: bench_tokenizer TOKENIZER.json TEXT [REPEAT]");
	reps = argc > 3 ? atoi(argv[3]) : 3;
	if ((t = tokenizer_from_file(argv[1], e, sizeof(e))) == NULL)
		errx(1, "%s", e);
	if ((f = fopen(argv[2], "rb")) == NULL)
		err(1, "%s", argv[2]);
	sb_init(&text);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		sb_add(&text, buf, n);
	fclose(f);

	/* Paragraph boundaries. */
	for (start = 0, i = 0; i <= text.len; i++) {
		if (i < text.len && !(text.data[i] == '\n' && i + 1 < text.len &&
		    text.data[i + 1] == '\n'))
			continue;
		if (ncut + 2 > cap) {
			cap = cap ? cap * 2 : 1024;
			cut = xreallocarray(cut, cap, sizeof(*cut));
		}
		cut[ncut++] = start;
		cut[ncut++] = i;
		start = i;
	}

	for (rep = 0; rep < reps; rep++) {
		ntok = 0;
		nall = 0;
		t0 = pp_now();
		c0 = cpu_now();
		for (i = 0; i < ncut; i += 2) {
			n = tokenizer_encode(t, text.data + cut[i],
			    cut[i + 1] - cut[i], 0, &ids);
			ntok += n;
			if (rep == 0) {
				if (nall + n > allcap) {
					allcap = (nall + n) * 2;
					all = xreallocarray(all, allcap,
					    sizeof(*all));
				}
				memcpy(all + nall, ids, n * sizeof(*ids));
				nall += n;
				total = nall;
			}
			free(ids);
		}
		el = pp_now() - t0;
		if (el < best)
			best = el;
		el = cpu_now() - c0;
		if (el < cbest)
			cbest = el;
	}
	for (rep = 0; rep < reps; rep++) {
		t0 = pp_now();
		s = tokenizer_decode(t, all, total, 0, &n);
		el = pp_now() - t0;
		if (el < dbest)
			dbest = el;
		if (n != text.len || memcmp(s, text.data, n) != 0)
			errx(1, "decode(encode(text)) != text");
		free(s);
	}
	printf("tokenizer=%s\n", argv[1]);
	printf("text_bytes=%zu\nparagraphs=%zu\ntokens=%zu\n", text.len,
	    ncut / 2, ntok);
	printf("encode_s=%.3f\nencode_mb_per_s=%.1f\nencode_tokens_per_s=%.0f\n",
	    best, text.len / best / 1e6, ntok / best);
	printf("encode_cpu_s=%.3f\nencode_mb_per_cpu_s=%.1f\n", cbest,
	    text.len / cbest / 1e6);
	printf("decode_mb_per_s=%.1f\n", text.len / dbest / 1e6);
	free(all);
	free(cut);
	sb_free(&text);
	tokenizer_free(t);
	return 0;
}
