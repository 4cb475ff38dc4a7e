/*
 * progress.h: the one progress line of the tools that run a model
 * (rollout, score, train-step, merge).
 *
 *     rollout: 120 records, 2345 tok/s
 *     train-step: 3/8 steps, 1830 tok/s, loss 2.3021, ETA 0:12
 *
 * It is drawn on standard error, only when that is a terminal and the
 * tool was not given -q, at most twice a second, and ended with a newline
 * by progress_end.  Work of unknown total shows no ETA.
 */
#ifndef PREFPIPE_PROGRESS_H
#define PREFPIPE_PROGRESS_H

#include <stdint.h>

struct progress;

/* unit names what is counted ("records", "steps", "tensors"); total 0:
 * unknown.  quiet (or stderr not a terminal) makes every call a no-op. */
struct progress *progress_new(const char *unit, uint64_t total, int quiet);
/*
 * done units so far and tokens processed so far (0: not shown); extra, a
 * short text such as "loss 2.3021", or NULL.  Redraws when half a second
 * has passed since the last drawing.
 */
void progress_update(struct progress *p, uint64_t done, uint64_t tokens,
    const char *extra);
/* The last state drawn, a newline, and p freed (NULL is fine). */
void progress_end(struct progress *p);

#endif
