/*
 * jump.c: see jump.h.  The __wrap_ functions are what the linker's --wrap
 * makes the library's calls to err, errx, verr, verrx, malloc, calloc,
 * realloc and free reach; __real_ ones are the originals (ASan's).
 */
#define _GNU_SOURCE
#include <err.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "jump.h"

jmp_buf fuzz_on_error;
static int armed;

void __real_verr(int, const char *, va_list) __attribute__((noreturn));
void __real_verrx(int, const char *, va_list) __attribute__((noreturn));
void *__real_malloc(size_t);
void *__real_calloc(size_t, size_t);
void *__real_realloc(void *, size_t);
void __real_free(void *);

void __wrap_verr(int, const char *, va_list) __attribute__((noreturn));
void __wrap_verrx(int, const char *, va_list) __attribute__((noreturn));
void __wrap_err(int, const char *, ...) __attribute__((noreturn));
void __wrap_errx(int, const char *, ...) __attribute__((noreturn));
void *__wrap_malloc(size_t);
void *__wrap_calloc(size_t, size_t);
void *__wrap_realloc(void *, size_t);
void __wrap_free(void *);

/* ------------------------------------------------------------------------ */
/* The blocks allocated while armed: an open-addressing set of pointers. */

#define GONE ((void *)1)	/* a freed slot, kept so probes go on */
static void **set;
static size_t setcap, setn, setused;	/* slots, live, live + gone */

static size_t
slot_of(const void *p)
{
	uint64_t h = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull;
	return (size_t)(h >> 20) & (setcap - 1);
}

static void set_add(void *p);

static void
set_grow(void)
{
	void **old = set;
	size_t oldcap = setcap;

	setcap = setcap ? (setn * 4 > setcap ? setcap * 2 : setcap) : 1024;
	set = __real_calloc(setcap, sizeof *set);
	if (set == NULL)
		abort();
	setn = setused = 0;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i] != NULL && old[i] != GONE)
			set_add(old[i]);
	__real_free(old);
}

static void
set_add(void *p)
{
	if (p == NULL)
		return;
	if ((setused + 1) * 2 > setcap)
		set_grow();
	size_t i = slot_of(p);
	while (set[i] != NULL && set[i] != GONE)
		i = (i + 1) & (setcap - 1);
	if (set[i] == NULL)
		setused++;
	set[i] = p;
	setn++;
}

static void
set_del(void *p)
{
	if (p == NULL || setn == 0)
		return;
	for (size_t i = slot_of(p); set[i] != NULL; i = (i + 1) & (setcap - 1))
		if (set[i] == p) {
			set[i] = GONE;
			setn--;
			return;
		}
}

static void
set_clear(int free_them)
{
	for (size_t i = 0; i < setcap; i++) {
		if (free_them && set[i] != NULL && set[i] != GONE)
			__real_free(set[i]);
		set[i] = NULL;
	}
	setn = setused = 0;
}

void *
__wrap_malloc(size_t n)
{
	void *p = __real_malloc(n);
	if (armed)
		set_add(p);
	return p;
}

void *
__wrap_calloc(size_t n, size_t size)
{
	void *p = __real_calloc(n, size);
	if (armed)
		set_add(p);
	return p;
}

void *
__wrap_realloc(void *old, size_t n)
{
	void *p = __real_realloc(old, n);
	if (p != NULL || n == 0)
		set_del(old);
	if (armed)
		set_add(p);
	return p;
}

void
__wrap_free(void *p)
{
	set_del(p);
	__real_free(p);
}

void
fuzz_arm(void)
{
	static int once;
	if (!once) {
		json_set_alloc_funcs(__wrap_malloc, __wrap_free);
		once = 1;
	}
	if (setcap)
		set_clear(0);
	armed = 1;
}

void
fuzz_disarm(void)
{
	armed = 0;
	if (setcap)
		set_clear(0);
}

void
fuzz_reclaim(void)
{
	armed = 0;
	if (setcap)
		set_clear(1);
}

/* ------------------------------------------------------------------------ */
/* Error exits */

/* FUZZ_VERBOSE=1 in the environment prints the messages jumped over. */
static void
say(const char *fmt, va_list ap)
{
	static int verbose = -1;
	if (verbose < 0)
		verbose = getenv("FUZZ_VERBOSE") != NULL;
	if (verbose && fmt != NULL) {
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
}

void
__wrap_verr(int status, const char *fmt, va_list ap)
{
	if (!armed)
		__real_verr(status, fmt, ap);
	say(fmt, ap);
	longjmp(fuzz_on_error, 1);
}

void
__wrap_verrx(int status, const char *fmt, va_list ap)
{
	if (!armed)
		__real_verrx(status, fmt, ap);
	say(fmt, ap);
	longjmp(fuzz_on_error, 1);
}

void
__wrap_err(int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	__wrap_verr(status, fmt, ap);
}

void
__wrap_errx(int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	__wrap_verrx(status, fmt, ap);
}

void
fuzz_file(const char *name, const void *data, size_t size, char *path,
    size_t pathsz)
{
	static int fd = -1;
	if (fd < 0 && (fd = memfd_create(name, 0)) < 0)
		abort();
	if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) !=
	    (ssize_t)size)
		abort();
	snprintf(path, pathsz, "/proc/self/fd/%d", fd);
}
