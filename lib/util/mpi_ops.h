/*
 * mpi_ops.h: what dist.c asks of MPI, as a table of functions that the
 * module lib/prefpipe-mpi.so (mpi_module.c) fills in.
 *
 * Why a module: a tool linked with libmpi maps Open MPI's libraries (and
 * theirs: hwloc, libevent, PMIx) at every start, some 1.2 MiB of memory
 * and a dependency on Open MPI installed, though it runs under mpirun
 * only sometimes.  So the tools never link it; dist.c opens the module,
 * which does, only when a launcher started the process.
 *
 * Every call is a collective over MPI_COMM_WORLD and ends the run on any
 * MPI error (MPI_ERRORS_ARE_FATAL).  Counts are MPI's ints; dist.c cuts
 * what is bigger.
 */
#ifndef PREFPIPE_MPI_OPS_H
#define PREFPIPE_MPI_OPS_H

#include <stdint.h>

/* Bumped whenever the table changes: a module of another build is
 * refused by name instead of called wrongly. */
#define PP_MPI_ABI 1

/* The element types the table moves. */
enum pp_mpi_type { PP_MPI_BYTE, PP_MPI_FLOAT, PP_MPI_DOUBLE, PP_MPI_U64 };

struct pp_mpi_ops {
	int abi;		/* PP_MPI_ABI */
	/* MPI_Init, this rank and the number of ranks; 0, or -1 when
	 * MPI_Init failed. */
	int (*init)(int *argc, char ***argv, int *rank, int *size);
	int (*finalized)(void);
	void (*finalize)(void);
	void (*abort)(int status);
	/* n elements at p from rank 0 to every rank */
	void (*bcast)(void *p, int n, enum pp_mpi_type t);
	/* MPI_Alltoallv: counts and displacements in elements */
	void (*alltoallv)(const void *send, const int *sc, const int *sd,
	    void *recv, const int *rc, const int *rd, enum pp_mpi_type t);
	/* MPI_Allgatherv in place: rank r's block of x is rc[r] elements
	 * at rd[r], and every rank ends with all of them */
	void (*allgatherv)(void *x, const int *rc, const int *rd,
	    enum pp_mpi_type t);
	/* one element of every rank, to all at rank 0 (size of them) */
	void (*gather)(const void *mine, void *all, enum pp_mpi_type t);
	/* MPI_Gatherv to rank 0: n elements of each, at rd[r] of all */
	void (*gatherv)(const void *p, int n, void *all, const int *rc,
	    const int *rd, enum pp_mpi_type t);
};

/* The module's one symbol. */
extern const struct pp_mpi_ops pp_mpi_ops;

#endif
