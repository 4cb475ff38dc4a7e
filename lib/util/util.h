/*
 * util.h: small things every prefpipe tool and library file needs: memory
 * that cannot fail, a growable byte buffer, strict number parsing for
 * options, and the start-up that gives every tool the same SIGPIPE and
 * exit-status behaviour.
 */
#ifndef PREFPIPE_UTIL_H
#define PREFPIPE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Exit statuses shared by every tool. */
enum { EXIT_DATA = 1, EXIT_USAGE = 2 };

/*
 * For functions that return errors in a caller's buffer: format the
 * message into err (errsz bytes) and return -1.
 */
int pp_errf(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Memory allocation that ends the program with a message when it fails. */
void *xmalloc(size_t n);
/*
 * For arrays read end to end at every step (weights, KV caches): aligned
 * to 2 MiB and offered transparent huge pages, so streaming them walks
 * one page table entry per 2 MiB instead of per 4 KiB.  Freed by free().
 */
void *xmalloc_huge(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
/* The n bytes at s (NULL allowed when n is 0) as a C string. */
char *xstrndup(const char *s, size_t n);

/* A growable byte buffer; data is always NUL-terminated. */
struct strbuf {
	char *data;
	size_t len, cap;
};
void sb_init(struct strbuf *b);
void sb_free(struct strbuf *b);
void sb_reserve(struct strbuf *b, size_t extra);
void sb_adds(struct strbuf *b, const char *s);
void sb_printf(struct strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appending is on every encoder's hot path: inline, grow out of line. */
static inline void
sb_add(struct strbuf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap)
		sb_reserve(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = 0;
}

static inline void
sb_addc(struct strbuf *b, char c)
{
	if (b->len + 2 > b->cap)
		sb_reserve(b, 1);
	b->data[b->len++] = c;
	b->data[b->len] = 0;
}

static inline void sb_clear(struct strbuf *b) { b->len = 0; if (b->data) b->data[0] = 0; }

/*
 * Tool start-up: restores the default SIGPIPE action, so a tool whose
 * reader went away (`tool | head -1`) ends quietly like any Unix filter.
 */
void pp_init(int argc, char **argv);
/* The tool's usage line(s), set by the tool; printed by pp_usage. */
extern const char *pp_synopsis;
/* Print "usage: ..." and exit 2, after an optional message. */
void pp_usage(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));
/* Print the synopsis to stdout and exit 0 (for --help). */
void pp_help(void) __attribute__((noreturn));

/*
 * Option values, parsed strictly: the whole string must be a number within
 * [min, max]; anything else is a usage error naming the option.
 */
long long pp_parse_int(const char *opt, const char *s, long long min,
    long long max);
double pp_parse_num(const char *opt, const char *s, double min, double max);

/*
 * The whole file at path, NUL-terminated, in a malloc'd buffer; *len gets
 * its size.  An unreadable file ends the program with a message.
 */
char *pp_read_file(const char *path, size_t *len);

/* Close stdout, ending the program with a message if data was lost. */
void pp_close_stdout(void);

/* The value of hexadecimal digit c, or -1. */
static inline int
pp_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Monotonic wall-clock seconds. */
double pp_now(void);

/*
 * Whether the CPU has AVX2 and FMA, for the kernels that have a path of
 * their own for them; the environment variable PREFPIPE_NO_AVX2 (any
 * value) says no, so the tests can run the plain paths on any machine.
 */
int pp_cpu_avx2(void);

#endif
