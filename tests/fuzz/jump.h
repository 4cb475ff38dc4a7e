/*
 * jump.h: the error exits of the library, caught for the fuzz targets.
 *
 * Library code that meets bad data ends the program with err(3) or
 * errx(3).  Under libFuzzer that would end the run at the first bad
 * input, so the targets link with -Wl,--wrap=err,--wrap=errx,... and the
 * wrappers (jump.c) jump back to the harness while it is armed.  What the
 * library had allocated on such a path would then be lost, and a long run
 * would grow until libFuzzer's memory limit: so malloc, calloc, realloc
 * and free are wrapped too (and jansson's allocator set to them), every
 * block allocated while armed is remembered until freed, and the harness
 * frees what is left after a jump.  The pattern:
 *
 *	fuzz_arm();
 *	if (setjmp(fuzz_on_error) == 0) {
 *		... call the library, free what it returns ...
 *		fuzz_disarm();
 *	} else
 *		fuzz_reclaim();
 */
#ifndef PREFPIPE_FUZZ_JUMP_H
#define PREFPIPE_FUZZ_JUMP_H

#include <setjmp.h>
#include <stddef.h>

extern jmp_buf fuzz_on_error;

/* From now on, err and friends jump to fuzz_on_error. */
void fuzz_arm(void);
/* Back to exiting; blocks still allocated stay the caller's. */
void fuzz_disarm(void);
/* After the jump: free every block allocated since fuzz_arm, and disarm. */
void fuzz_reclaim(void);

/*
 * A file (memfd_create) named name holding the size bytes at data, and its
 * /proc path in path: for the loaders that take paths.
 */
void fuzz_file(const char *name, const void *data, size_t size, char *path,
    size_t pathsz);

#endif
