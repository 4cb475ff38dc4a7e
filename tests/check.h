/*
 * check.h: the assertion of the C unit tests.  CHECK counts a failure and
 * goes on, so one run reports every broken check; main returns
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

static inline int
check_status(void)
{
	if (failures)
		fprintf(stderr, "%d check(s) failed\n", failures);
	return failures != 0;
}

#endif
