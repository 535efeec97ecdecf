/*
 * libdescent_mpi: descent's collectives (descent_collectives, since 1.1) over an MPI
 * communicator. A separate library, built against one MPI implementation, so that libdescent
 * itself never links MPI. Link with -ldescent_mpi -ldescent and your MPI (pkg-config
 * descent-mpi; CMake target descent_mpi).
 */
#ifndef DESCENT_DESCENT_MPI_H
#define DESCENT_DESCENT_MPI_H

#include <mpi.h>

#include "descent/descent.h"

#if defined(__GNUC__) || defined(__clang__)
#define DESCENT_MPI_API __attribute__((visibility("default")))
#else
#define DESCENT_MPI_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* A collectives handle over comm, with this process's rank and the communicator's size. The
 * communicator is duplicated (MPI_Comm_dup, collective over comm) with MPI_ERRORS_RETURN, so
 * descent's traffic never mixes with the caller's and MPI errors come back as
 * DESCENT_ERR_CALLBACK with MPI's error string; the duplicate is freed with the handle's last
 * reference (skipped if MPI is already finalized: free every optimizer and handle before
 * MPI_Finalize). All-gatherv uses MPI_Allgatherv in place (MPI_Bcast per rank in chunks beyond
 * 2^31 bytes); all-reduce uses MPI_Allreduce in place on MPI_DOUBLE with MPI_SUM or MPI_MAX.
 * *out is set only on success; release it with descent_collectives_free. */
DESCENT_MPI_API descent_status descent_mpi_collectives_create(MPI_Comm comm,
                                                              descent_collectives** out,
                                                              char* error, size_t error_capacity);

#ifdef __cplusplus
}
#endif

#endif /* DESCENT_DESCENT_MPI_H */
