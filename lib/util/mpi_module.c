/*
 * mpi_module.c: lib/prefpipe-mpi.so, the one part of prefpipe linked
 * with Open MPI: the table of mpi_ops.h over MPI_COMM_WORLD, each entry
 * one MPI call.  dist.c opens it under mpirun.
 */
#include <mpi.h>

#include "util/mpi_ops.h"

static MPI_Datatype
mpitype(enum pp_mpi_type t)
{
	switch (t) {
	case PP_MPI_FLOAT:
		return MPI_FLOAT;
	case PP_MPI_DOUBLE:
		return MPI_DOUBLE;
	case PP_MPI_U64:
		return MPI_UINT64_T;
	default:
		return MPI_BYTE;
	}
}

static int
mpi_init(int *argc, char ***argv, int *rank, int *size)
{
	if (MPI_Init(argc, argv) != MPI_SUCCESS)
		return -1;
	MPI_Comm_rank(MPI_COMM_WORLD, rank);
	MPI_Comm_size(MPI_COMM_WORLD, size);
	/* MPI's own errors end the run with a message, as ours do. */
	MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
	return 0;
}

static int
mpi_finalized(void)
{
	int fin = 0;

	MPI_Finalized(&fin);
	return fin;
}

static void
mpi_finalize(void)
{
	MPI_Finalize();
}

static void
mpi_abort(int status)
{
	MPI_Abort(MPI_COMM_WORLD, status);
}

static void
mpi_bcast(void *p, int n, enum pp_mpi_type t)
{
	MPI_Bcast(p, n, mpitype(t), 0, MPI_COMM_WORLD);
}

static void
mpi_alltoallv(const void *send, const int *sc, const int *sd, void *recv,
    const int *rc, const int *rd, enum pp_mpi_type t)
{
	MPI_Alltoallv(send, sc, sd, mpitype(t), recv, rc, rd, mpitype(t),
	    MPI_COMM_WORLD);
}

static void
mpi_allgatherv(void *x, const int *rc, const int *rd, enum pp_mpi_type t)
{
	MPI_Allgatherv(MPI_IN_PLACE, 0, mpitype(t), x, rc, rd, mpitype(t),
	    MPI_COMM_WORLD);
}

static void
mpi_gather(const void *mine, void *all, enum pp_mpi_type t)
{
	MPI_Gather(mine, 1, mpitype(t), all, 1, mpitype(t), 0,
	    MPI_COMM_WORLD);
}

static void
mpi_gatherv(const void *p, int n, void *all, const int *rc, const int *rd,
    enum pp_mpi_type t)
{
	MPI_Gatherv(p, n, mpitype(t), all, rc, rd, mpitype(t), 0,
	    MPI_COMM_WORLD);
}

const struct pp_mpi_ops pp_mpi_ops = {
	.abi = PP_MPI_ABI,
	.init = mpi_init,
	.finalized = mpi_finalized,
	.finalize = mpi_finalize,
	.abort = mpi_abort,
	.bcast = mpi_bcast,
	.alltoallv = mpi_alltoallv,
	.allgatherv = mpi_allgatherv,
	.gather = mpi_gather,
	.gatherv = mpi_gatherv,
};
