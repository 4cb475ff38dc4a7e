/*
 * group.h: collecting records into groups (the samples of one prompt) and
 * ranking each group, as filter and pair both do.
 *
 * A group is the records whose group-key field (--group-by, default id)
 * has the same value, compared by its msgpack bytes.  Within a group the
 * records other than greedy baselines (greedy: true) are ranked by a number
 * field (--by, default reward), highest first, equal values in input order;
 * greedy baselines are members but are never ranked.
 *
 * Unsorted, the grouper keeps every record and hands over the groups at the
 * end, in order of first appearance.  Sorted (groups arrive contiguous),
 * it hands over each group when the next one starts, and memory is bounded
 * by the largest group.
 */
#ifndef PREFPIPE_GROUP_H
#define PREFPIPE_GROUP_H

#include <stddef.h>
#include <stdint.h>

#include "records/record.h"

struct member {
	struct rec rec;		/* a copy, valid in the callback */
	double val;		/* the --by value (0 if greedy) */
	uint64_t ord;		/* 0-based ordinal of all added */
	int greedy;
	int mark;		/* for the callback; starts 0 */
	size_t next;		/* internal: next in its group */
};

struct group {
	const void *key;	/* msgpack bytes of the key's value */
	size_t keylen;
	uint64_t hash;		/* hash_bytes(key): the RNG stream */
	struct member **m;	/* every member, in input order */
	size_t n;
	struct member **ranked;	/* non-greedy members, best first */
	size_t nranked;
};

typedef void group_fn(struct group *g, void *arg);

struct grouper;

/*
 * A grouper calling fn for every complete group.  by and group_by are field
 * paths (dotted for nested maps); by NULL: no ranking (every value 0).
 */
struct grouper *grouper_new(const char *by, const char *group_by, int sorted,
    group_fn *fn, void *arg);
/*
 * Add a copy of r; the caller keeps r.  Ends the program when r lacks the
 * group key, or (unless it is a greedy baseline) a numeric --by field.
 */
void grouper_add(struct grouper *gr, const struct rec *r);
/* Hand over the groups not yet handed over, then free the grouper. */
void grouper_end(struct grouper *gr);

/* Whether the ranked members' values are all equal (or there are < 2). */
int group_uniform(const struct group *g);

#endif
