/*
 * check.h: the assertions of the C unit tests.  CHECK (and CHECKF, with
 * a message) counts a failure and goes on, so one run reports every broken check; main returns
 * check_status() at the end.
 */
#ifndef PREFPIPE_CHECK_H
#define PREFPIPE_CHECK_H

#include <stdio.h>

static int failures;

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
		    __LINE__, #cond); \
		failures++; \
	} \
} while (0)

/* The same with a message of its own: CHECKF(cond, fmt, ...). */
#define CHECKF(cond, ...) do { \
	if (!(cond)) { \
		fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
		fprintf(stderr, __VA_ARGS__); \
		fputc('\n', stderr); \
		failures++; \
	} \
} while (0)

static inline int
check_status(void)
{
	if (failures)
		fprintf(stderr, "%d check(s) failed\n", failures);
	return failures != 0;
}

#endif
