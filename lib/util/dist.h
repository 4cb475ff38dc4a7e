/*
 * dist.h: the processes of one run under mpirun (Open MPI), and what they
 * exchange.  Built without MPI (configure --without-mpi, or Open MPI not
 * found), or started without mpirun, a program is one process of rank 0:
 * every function here is then a no-op and nothing of MPI is touched.
 *
 * Sums across processes are taken in rank order, never in the order
 * messages arrive (MPI_Allreduce promises none), so a run gives the same
 * bits at every launch and K processes agree with one up to the rounding
 * of a different grouping of the same terms.
 *
 * An exit with a non-zero status on any rank (errx, pp_usage) calls
 * MPI_Abort with that status after the message is printed: every rank
 * ends, none waits forever on a peer that is gone.
 */
#ifndef PREFPIPE_DIST_H
#define PREFPIPE_DIST_H

#include <stddef.h>

/*
 * MPI_Init when mpirun (or srun) started this process; call first thing in
 * main.  Idempotent.
 */
void pp_dist_init(int *argc, char ***argv);
int pp_dist_rank(void);
int pp_dist_size(void);
/*
 * Whether mpirun started this process, one rank or more.  Its stdout and
 * stderr are then mpirun's pseudo-terminal or pipe, not the user's: a
 * tool picks its output format without asking isatty().
 */
int pp_dist_active(void);

/*
 * Rank 0's standard input, read to its end, becomes every rank's standard
 * input (mpirun connects stdin to rank 0 alone): each rank then reads the
 * same records from fd 0.
 */
void pp_dist_share_stdin(void);

/* x (n) on every rank becomes the sum over ranks, in rank order. */
void pp_dist_sum_float(float *x, size_t n);
void pp_dist_sum_double(double *x, size_t n);
/*
 * Wall seconds this process has spent in the two sums above since it
 * started, waiting for slower ranks included (the time a step loses to
 * its all-reduce); 0 in one process.
 */
double pp_dist_sum_seconds(void);

/*
 * x holds the blocks of every rank back to back, rank r's count[r]
 * floats at the sum of the counts before it; each rank has filled its
 * own block, and afterwards every rank has all of them.
 */
void pp_dist_allgather_float(float *x, const size_t *count);

/*
 * The n bytes at p of every rank, to rank 0: there it returns them back
 * to back in rank order (malloc'd) with count[r] (size entries) the bytes
 * of rank r; elsewhere NULL.
 */
void *pp_dist_gather_bytes(const void *p, size_t n, size_t *count);

/* All of fd from where it stands (name for messages), malloc'd. */
char *pp_dist_read_all(int fd, const char *name, size_t *len);
/* A memory file (memfd) holding the n bytes at p, positioned at 0. */
int pp_dist_memfile(const void *p, size_t n);

/* The share [*lo, *hi) of n items that rank takes, contiguous, in order. */
void pp_dist_slice(size_t n, int rank, int size, size_t *lo, size_t *hi);

#endif
