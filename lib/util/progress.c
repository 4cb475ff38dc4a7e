/*
 * progress.c: the progress line (progress.h).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/progress.h"
#include "util/util.h"

struct progress {
	const char *unit;
	uint64_t total, done, tokens;
	char extra[64];
	double t0, tlast;
	int drawn;
};

struct progress *
progress_new(const char *unit, uint64_t total, int quiet)
{
	if (quiet || !isatty(2))
		return NULL;
	struct progress *p = xcalloc(1, sizeof(*p));
	p->unit = unit;
	p->total = total;
	p->t0 = p->tlast = pp_now();
	return p;
}

static void
draw(struct progress *p, double now)
{
	double dt = now - p->t0 > 1e-9 ? now - p->t0 : 1e-9;
	char eta[32] = "";

	if (p->total > 0 && p->done > 0 && p->done < p->total) {
		double left = dt * (double)(p->total - p->done) /
		    (double)p->done;
		long s = (long)(left + 0.5);
		snprintf(eta, sizeof(eta), ", ETA %ld:%02ld", s / 60, s % 60);
	}
	fprintf(stderr, "\r%s: %" PRIu64, program_invocation_short_name, p->done);
	if (p->total > 0)
		fprintf(stderr, "/%" PRIu64, p->total);
	fprintf(stderr, " %s", p->unit);
	if (p->tokens > 0)
		fprintf(stderr, ", %.0f tok/s", (double)p->tokens / dt);
	if (p->extra[0])
		fprintf(stderr, ", %s", p->extra);
	/* Spaces rub out what a longer line before left. */
	fprintf(stderr, "%s   ", eta);
	p->drawn = 1;
}

void
progress_update(struct progress *p, uint64_t done, uint64_t tokens,
    const char *extra)
{
	if (p == NULL)
		return;
	p->done = done;
	p->tokens = tokens;
	snprintf(p->extra, sizeof(p->extra), "%s", extra ? extra : "");
	double now = pp_now();
	if (p->drawn && now - p->tlast < 0.5)
		return;
	p->tlast = now;
	draw(p, now);
}

void
progress_end(struct progress *p)
{
	if (p == NULL)
		return;
	draw(p, pp_now());
	fputc('\n', stderr);
	free(p);
}
