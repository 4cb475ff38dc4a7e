/* util.c: see util.h. */
#include "config.h"

#include <err.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <sys/mman.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

const char *pp_synopsis = "";

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		err(EXIT_DATA, "out of memory (%zu bytes)", n);
	return p;
}

void *
xmalloc_huge(size_t n)
{
	const size_t huge = (size_t)2 << 20;
	void *p;
	int e;

	if (n < huge)
		return xmalloc(n);
	if ((e = posix_memalign(&p, huge, n)) != 0) {
		errno = e;
		err(EXIT_DATA, "out of memory (%zu bytes)", n);
	}
#ifdef MADV_HUGEPAGE
	(void)madvise(p, n, MADV_HUGEPAGE);	/* a hint: no matter if refused */
#endif
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (p == NULL)
		err(EXIT_DATA, "out of memory (%zu x %zu bytes)", n, size);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (p == NULL)
		err(EXIT_DATA, "out of memory (%zu bytes)", n);
	return p;
}

void *
xreallocarray(void *p, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		errx(EXIT_DATA, "out of memory (%zu x %zu bytes)", n, size);
	return xrealloc(p, n * size);
}

char *
xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(xmalloc(n), s, n);
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	if (n)
		memcpy(p, s, n);
	p[n] = 0;
	return p;
}

void
sb_init(struct strbuf *b)
{
	b->data = NULL;
	b->len = b->cap = 0;
}

void
sb_free(struct strbuf *b)
{
	free(b->data);
	sb_init(b);
}

void
sb_reserve(struct strbuf *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + extra + 1)
		cap *= 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

void
sb_adds(struct strbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

void
sb_printf(struct strbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	sb_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void
pp_init(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_DFL);
}

void
pp_usage(const char *fmt, ...)
{
	if (fmt != NULL) {
		va_list ap;
		va_start(ap, fmt);
		vwarnx(fmt, ap);
		va_end(ap);
	}
	fprintf(stderr, "usage: %s\n", pp_synopsis);
	exit(EXIT_USAGE);
}

void
pp_help(void)
{
	printf("usage: %s\n", pp_synopsis);
	pp_close_stdout();
	exit(0);
}

long long
pp_parse_int(const char *opt, const char *s, long long min, long long max)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (*s == 0 || *end != 0 || errno != 0)
		pp_usage("%s: not an integer: \"%s\"", opt, s);
	if (v < min || v > max)
		pp_usage("%s: %lld is out of range [%lld, %lld]", opt, v, min,
		    max);
	return v;
}

double
pp_parse_num(const char *opt, const char *s, double min, double max)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (*s == 0 || *end != 0 || errno != 0 || isnan(v))
		pp_usage("%s: not a number: \"%s\"", opt, s);
	if (v < min || v > max)
		pp_usage("%s: %g is out of range [%g, %g]", opt, v, min, max);
	return v;
}

char *
pp_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct strbuf b;
	char tmp[65536];
	size_t n;

	if (f == NULL)
		err(EXIT_DATA, "%s", path);
	sb_init(&b);
	sb_reserve(&b, 0);
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		sb_add(&b, tmp, n);
	if (ferror(f))
		err(EXIT_DATA, "%s", path);
	fclose(f);
	*len = b.len;
	return b.data;
}

void
pp_close_stdout(void)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (errno == EPIPE)
			exit(EXIT_DATA);
		err(EXIT_DATA, "stdout");
	}
	if (fclose(stdout) != 0 && errno != EPIPE)
		err(EXIT_DATA, "stdout");
}

double
pp_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int
pp_cpu_avx2(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return getenv("PREFPIPE_NO_AVX2") == NULL &&
	    __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
	return 0;
#endif
}

int
pp_errf(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
	return -1;
}
