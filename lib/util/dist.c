/*
 * dist.c: processes under mpirun; see dist.h.
 */
#include "config.h"

#include <sys/mman.h>

#include <err.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef HAVE_MPI
#include <dlfcn.h>
#include <stdio.h>

#include "util/mpi_ops.h"
#endif

#include "util/dist.h"
#include "util/util.h"

static int dist_rank = 0, dist_size = 1;
static double dist_sum_seconds;	/* in pp_dist_sum_*, see dist.h */

double
pp_dist_sum_seconds(void)
{
	return dist_sum_seconds;
}

void
pp_dist_slice(size_t n, int rank, int size, size_t *lo, size_t *hi)
{
	*lo = n * (size_t)rank / (size_t)size;
	*hi = n * (size_t)(rank + 1) / (size_t)size;
}

int
pp_dist_rank(void)
{
	return dist_rank;
}

int
pp_dist_size(void)
{
	return dist_size;
}

char *
pp_dist_read_all(int fd, const char *name, size_t *len)
{
	struct strbuf b;

	sb_init(&b);
	for (;;) {
		sb_reserve(&b, 1 << 16);
		ssize_t r = read(fd, b.data + b.len, b.cap - b.len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			err(EXIT_DATA, "%s", name);
		if (r == 0)
			break;
		b.len += (size_t)r;
	}
	*len = b.len;
	return b.data;
}

int
pp_dist_memfile(const void *p, size_t n)
{
	int fd = memfd_create("prefpipe", 0);
	if (fd < 0)
		err(EXIT_DATA, "memfd_create");
	for (size_t o = 0; o < n;) {
		ssize_t w = write(fd, (const char *)p + o, n - o);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			err(EXIT_DATA, "memory file");
		o += (size_t)w;
	}
	if (lseek(fd, 0, SEEK_SET) != 0)
		err(EXIT_DATA, "memory file");
	return fd;
}

#ifndef HAVE_MPI

int pp_dist_active(void) { return 0; }
void pp_dist_init(int *argc, char ***argv) { (void)argc; (void)argv; }
void pp_dist_share_stdin(void) { }
void pp_dist_sum_float(float *x, size_t n) { (void)x; (void)n; }
void pp_dist_sum_double(double *x, size_t n) { (void)x; (void)n; }
void pp_dist_allgather_float(float *x, const size_t *count) { (void)x;
    (void)count; }

void *
pp_dist_gather_bytes(const void *p, size_t n, size_t *count)
{
	void *all = xmalloc(n + 1);
	if (n)
		memcpy(all, p, n);
	count[0] = n;
	return all;
}

#else

static const struct pp_mpi_ops *mpi;	/* the module, once MPI_Init ran */

int
pp_dist_active(void)
{
	return mpi != NULL;
}

/*
 * At exit: a clean exit leaves MPI as its standard asks (MPI_Finalize);
 * any other takes every rank down with this one's status, its message
 * already on stderr.
 */
static void
dist_exit(int status, void *arg)
{
	(void)arg;
	if (mpi->finalized())
		return;
	if (status == 0)
		mpi->finalize();
	else
		mpi->abort(status);
}

/* Whether a launcher that speaks MPI's wire-up started this process. */
static int
launched(void)
{
	static const char *const vars[] = { "OMPI_COMM_WORLD_SIZE",
	    "PMIX_RANK", "PMI_RANK", "PMI_SIZE" };
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		if (getenv(vars[i]) != NULL)
			return 1;
	return 0;
}

/*
 * The module (mpi_ops.h): $PREFPIPE_MPI_MODULE, else lib/prefpipe-mpi.so
 * beside the tools' directory (the build tree: tools/ and lib/), else
 * where make install put it.  RTLD_GLOBAL: Open MPI opens components of
 * its own that look for libmpi's symbols in the global scope.
 */
static const struct pp_mpi_ops *
load_module(void)
{
	char exe[4096], path[4096 + 64], tried[3 * 4160] = "";
	const char *cand[3];
	int n = 0;
	ssize_t len;

	if ((cand[n] = getenv("PREFPIPE_MPI_MODULE")) != NULL)
		n++;
	else {
		len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (len > 0) {
			exe[len] = '\0';
			char *slash = strrchr(exe, '/');
			if (slash != NULL) {
				*slash = '\0';
				snprintf(path, sizeof(path),
				    "%s/../lib/prefpipe-mpi.so", exe);
				cand[n++] = path;
			}
		}
		cand[n++] = PP_PKGLIBDIR "/prefpipe-mpi.so";
	}
	for (int i = 0; i < n; i++) {
		void *h = dlopen(cand[i], RTLD_NOW | RTLD_GLOBAL);
		if (h == NULL) {
			size_t k = strlen(tried);
			snprintf(tried + k, sizeof(tried) - k, "%s%s",
			    k ? "; " : "", dlerror());
			continue;
		}
		const struct pp_mpi_ops *o = dlsym(h, "pp_mpi_ops");
		if (o == NULL || o->abi != PP_MPI_ABI)
			errx(EXIT_DATA, "MPI: %s is not this build's module "
			    "(%s)", cand[i], o == NULL ? "no pp_mpi_ops" :
			    "another version");
		return o;
	}
	errx(EXIT_DATA, "MPI: started by mpirun, but prefpipe's MPI module "
	    "does not load: %s", tried);
}

void
pp_dist_init(int *argc, char ***argv)
{
	const struct pp_mpi_ops *o;

	/* A plain start stays a plain process: no singleton MPI start-up,
	 * which costs time and wants a runtime around it, and no Open MPI
	 * libraries in its memory. */
	if (mpi != NULL || !launched())
		return;
	o = load_module();
	if (o->init(argc, argv, &dist_rank, &dist_size) != 0)
		errx(EXIT_DATA, "MPI_Init failed");
	mpi = o;
	if (on_exit(dist_exit, NULL) != 0)
		errx(EXIT_DATA, "on_exit failed");
}

/* MPI counts are int: big transfers go in pieces of at most this. */
#define DIST_CHUNK ((size_t)1 << 28)

static void
bcast_bytes(void *p, size_t n)
{
	for (size_t o = 0; o < n; o += DIST_CHUNK) {
		size_t k = n - o < DIST_CHUNK ? n - o : DIST_CHUNK;
		mpi->bcast((char *)p + o, (int)k, PP_MPI_BYTE);
	}
}

void
pp_dist_share_stdin(void)
{
	char *data = NULL;
	size_t len = 0;
	uint64_t n = 0;

	if (dist_size == 1)
		return;
	if (dist_rank == 0) {
		data = pp_dist_read_all(0, "stdin", &len);
		n = len;
	}
	mpi->bcast(&n, 1, PP_MPI_U64);
	if (dist_rank != 0)
		data = xmalloc(n + 1);
	bcast_bytes(data, n);

	/* The bytes as a file on fd 0: the readers see stdin as before. */
	int fd = pp_dist_memfile(data, n);
	if (dup2(fd, 0) < 0)
		err(EXIT_DATA, "stdin copy");
	close(fd);
	free(data);
}

/*
 * The fixed-order sum: the vector is cut into size segments, rank r
 * gathers segment r of every rank (all-to-all), adds them in rank order,
 * and the sums go round to everyone (all-gather).  Each rank sends and
 * receives about 2n elements whatever the number of ranks, as a ring
 * all-reduce does.  The vector goes in blocks of at most SUM_BLOCK
 * elements, which bounds the scratch space (one block) whatever n is.
 */
#define SUM_BLOCK ((size_t)1 << 24)
#define SUM_IMPL(name, type, mpitype)					\
void									\
name(type *x, size_t n)							\
{									\
	int K = dist_size;						\
	if (K == 1 || n == 0)						\
		return;							\
	double t0 = pp_now();						\
	size_t piece = n / K + 1, cap = SUM_BLOCK / K + 1;		\
	if (piece > cap)						\
		piece = cap;						\
	type *buf = xreallocarray(NULL, (size_t)K * piece, sizeof(type)); \
	int *sc = xreallocarray(NULL, 4 * (size_t)K, sizeof(int));	\
	int *sd = sc + K, *rc = sd + K, *rd = rc + K;			\
	for (size_t o = 0; o < n; o += (size_t)K * piece) {		\
		size_t blk = n - o < (size_t)K * piece ? n - o :	\
		    (size_t)K * piece;					\
		for (int r = 0; r < K; r++) {				\
			size_t lo, hi;					\
			pp_dist_slice(blk, r, K, &lo, &hi);		\
			sc[r] = (int)(hi - lo);				\
			sd[r] = (int)lo;				\
		}							\
		int mine = sc[dist_rank];				\
		for (int r = 0; r < K; r++) {				\
			rc[r] = mine;					\
			rd[r] = r * mine;				\
		}							\
		mpi->alltoallv(x + o, sc, sd, buf, rc, rd, mpitype);	\
		type *dst = x + o + sd[dist_rank];			\
		for (int j = 0; j < mine; j++) {			\
			type s = buf[j];				\
			for (int r = 1; r < K; r++)			\
				s += buf[(size_t)r * mine + j];		\
			dst[j] = s;					\
		}							\
		mpi->allgatherv(x + o, sc, sd, mpitype);		\
	}								\
	free(sc);							\
	free(buf);							\
	dist_sum_seconds += pp_now() - t0;				\
}

SUM_IMPL(pp_dist_sum_float, float, PP_MPI_FLOAT)
SUM_IMPL(pp_dist_sum_double, double, PP_MPI_DOUBLE)

void
pp_dist_allgather_float(float *x, const size_t *count)
{
	int K = dist_size;
	if (K == 1)
		return;
	int *rc = xreallocarray(NULL, 2 * (size_t)K, sizeof(int));
	int *rd = rc + K;
	size_t off = 0;
	for (int r = 0; r < K; r++) {
		if (count[r] > INT32_MAX || off > INT32_MAX)
			errx(EXIT_DATA, "MPI: %zu values are too many to "
			    "gather at once", off + count[r]);
		rc[r] = (int)count[r];
		rd[r] = (int)off;
		off += count[r];
	}
	mpi->allgatherv(x, rc, rd, PP_MPI_FLOAT);
	free(rc);
}

void *
pp_dist_gather_bytes(const void *p, size_t n, size_t *count)
{
	int K = dist_size;
	uint64_t mine = n, *all_n = xreallocarray(NULL, K, sizeof(*all_n));

	mpi->gather(&mine, all_n, PP_MPI_U64);
	if (n > INT32_MAX)
		errx(EXIT_DATA, "MPI: %zu bytes are too many to gather at "
		    "once", n);
	int *rc = NULL, *rd = NULL;
	char *all = NULL;
	if (dist_rank == 0) {
		size_t tot = 0;
		rc = xreallocarray(NULL, 2 * (size_t)K, sizeof(int));
		rd = rc + K;
		for (int r = 0; r < K; r++) {
			if (tot + all_n[r] > INT32_MAX)
				errx(EXIT_DATA, "MPI: %zu bytes are too many "
				    "to gather at once", tot + all_n[r]);
			rc[r] = (int)all_n[r];
			rd[r] = (int)tot;
			count[r] = all_n[r];
			tot += all_n[r];
		}
		all = xmalloc(tot + 1);
	}
	mpi->gatherv(p, (int)n, all, rc, rd, PP_MPI_BYTE);
	free(rc);
	free(all_n);
	return all;
}

#endif
