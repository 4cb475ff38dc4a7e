/*
 * rec_part.c: one output stream from several ranks; see rec_part.h.
 */
#include "config.h"

#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "records/record.h"
#include "records/rec_part.h"
#include "util/dist.h"
#include "util/util.h"

struct rec_part {
	int flags, fd, many;
	struct rec_writer *w;
	uint64_t *ord;		/* (n) ordinals of the records written */
	size_t n, cap;
};

struct rec_part *
rec_part_open(int flags)
{
	struct rec_part *p = xcalloc(1, sizeof(*p));

	p->flags = flags;
	p->many = pp_dist_size() > 1;
	/* A part is msgpack: rank 0 decodes it and writes with flags. */
	p->fd = p->many ? pp_dist_memfile(NULL, 0) : 1;
	p->w = rec_writer_open(p->fd, "stdout", p->many ? 0 : flags);
	return p;
}

struct rec_writer *
rec_part_writer(struct rec_part *p)
{
	return p->w;
}

void
rec_part_note(struct rec_part *p, uint64_t ordinal)
{
	if (!p->many)
		return;
	if (p->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 256;
		p->ord = xreallocarray(p->ord, p->cap, sizeof(*p->ord));
	}
	p->ord[p->n++] = ordinal;
}

/* Every rank's records, to rank 0's writer w in ordinal order. */
static void
merge(struct rec_part *p, struct rec_writer *w)
{
	int K = pp_dist_size();
	size_t len, *cnt = xreallocarray(NULL, 2 * (size_t)K, sizeof(*cnt));
	size_t *ocnt = cnt + K;

	if (lseek(p->fd, 0, SEEK_SET) != 0)
		err(EXIT_DATA, "rank output");
	char *mine = pp_dist_read_all(p->fd, "rank output", &len);
	char *bytes = pp_dist_gather_bytes(mine, len, cnt);
	uint64_t *ords = pp_dist_gather_bytes(p->ord, p->n * sizeof(*p->ord),
	    ocnt);
	free(mine);
	if (pp_dist_rank() != 0) {
		free(cnt);
		return;
	}
	struct rec_reader **rds = xcalloc(K, sizeof(*rds));
	size_t *at = xcalloc(2 * (size_t)K, sizeof(*at)), *end = at + K;
	int *fds = xcalloc(K, sizeof(*fds));
	/* The readers keep the paths they are given: one each, to the end. */
	char (*paths)[32] = xcalloc(K, sizeof(*paths));
	char **pv = xcalloc(2 * (size_t)K, sizeof(*pv));
	size_t boff = 0, ooff = 0;
	for (int r = 0; r < K; r++) {
		fds[r] = pp_dist_memfile(bytes + boff, cnt[r]);
		snprintf(paths[r], sizeof(paths[r]), "/dev/fd/%d", fds[r]);
		pv[2 * r] = paths[r];
		rds[r] = rec_reader_open(pv + 2 * r, 1);
		at[r] = ooff / sizeof(uint64_t);
		end[r] = (ooff + ocnt[r]) / sizeof(uint64_t);
		boff += cnt[r];
		ooff += ocnt[r];
	}
	/* Each rank's records are in increasing ordinal order and no
	 * ordinal is two ranks': the smallest next one goes first. */
	for (;;) {
		int best = -1;
		for (int r = 0; r < K; r++)
			if (at[r] < end[r] && (best < 0 ||
			    ords[at[r]] < ords[at[best]]))
				best = r;
		if (best < 0)
			break;
		struct rec rec;
		if (!rec_read(rds[best], &rec))
			errx(EXIT_DATA, "rank %d: its output ended early",
			    best);
		rec_write(w, &rec);
		rec_free(&rec);
		at[best]++;
	}
	for (int r = 0; r < K; r++) {
		struct rec rec;
		/* One note per record: a tool that broke it is a bug. */
		if (rec_read(rds[r], &rec))
			errx(EXIT_DATA, "rank %d: more records than "
			    "ordinals noted", r);
		rec_reader_close(rds[r]);
		close(fds[r]);
	}
	free(rds);
	free(at);
	free(fds);
	free(paths);
	free(pv);
	free(ords);
	free(bytes);
	free(cnt);
}

void
rec_part_close(struct rec_part *p)
{
	rec_writer_close(p->w);
	if (p->many) {
		struct rec_writer *o = pp_dist_rank() == 0 ?
		    rec_writer_open(1, "stdout", p->flags) : NULL;
		merge(p, o);
		if (o)
			rec_writer_close(o);
		close(p->fd);
	}
	free(p->ord);
	free(p);
}
