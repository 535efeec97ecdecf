/* libdescent_mpi: descent_collectives over MPI (include/descent/descent_mpi.h). */
#include "descent/descent_mpi.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct endpoint {
  MPI_Comm comm;
  int rank, size;
  int* counts; /* size entries, reused by every all-gatherv */
  int* displs;
  int refs; /* the two callbacks share it */
} endpoint;

static void release(void* p) {
  endpoint* e = (endpoint*)p;
  if (--e->refs > 0) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Comm_free(&e->comm);
  free(e->counts);
  free(e->displs);
  free(e);
}

static descent_status mpi_failure(int code, const char* what, char* message, size_t capacity) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS)
    snprintf(text, sizeof text, "code %d", code);
  if (message && capacity) snprintf(message, capacity, "%s: %s", what, text);
  return DESCENT_ERR_CALLBACK;
}

static descent_status gather(void* buffer, const size_t* bytes, void* user_data, char* message,
                             size_t capacity) {
  endpoint* e = (endpoint*)user_data;
  size_t total = 0, largest = 0;
  for (int r = 0; r < e->size; ++r) {
    total += bytes[r];
    if (bytes[r] > largest) largest = bytes[r];
  }
  if (total <= (size_t)INT_MAX) {
    size_t at = 0;
    for (int r = 0; r < e->size; ++r) {
      e->counts[r] = (int)bytes[r];
      e->displs[r] = (int)at;
      at += bytes[r];
    }
    const int rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buffer, e->counts, e->displs,
                                  MPI_BYTE, e->comm);
    return rc == MPI_SUCCESS ? DESCENT_OK : mpi_failure(rc, "MPI_Allgatherv", message, capacity);
  }
  /* Beyond int counts: each rank broadcasts its segment in chunks. */
  const size_t chunk = (size_t)1 << 30;
  size_t at = 0;
  for (int r = 0; r < e->size; ++r) {
    for (size_t done = 0; done < bytes[r]; done += chunk) {
      const size_t n = bytes[r] - done < chunk ? bytes[r] - done : chunk;
      const int rc = MPI_Bcast((char*)buffer + at + done, (int)n, MPI_BYTE, r, e->comm);
      if (rc != MPI_SUCCESS) return mpi_failure(rc, "MPI_Bcast", message, capacity);
    }
    at += bytes[r];
  }
  (void)largest;
  return DESCENT_OK;
}

static descent_status reduce(double* values, size_t count, descent_reduce_op op, void* user_data,
                             char* message, size_t capacity) {
  endpoint* e = (endpoint*)user_data;
  if (count > (size_t)INT_MAX) {
    if (message && capacity) snprintf(message, capacity, "all-reduce of more than 2^31 values");
    return DESCENT_ERR_INVALID_ARGUMENT;
  }
  const int rc = MPI_Allreduce(MPI_IN_PLACE, values, (int)count, MPI_DOUBLE,
                               op == DESCENT_REDUCE_MAX ? MPI_MAX : MPI_SUM, e->comm);
  return rc == MPI_SUCCESS ? DESCENT_OK : mpi_failure(rc, "MPI_Allreduce", message, capacity);
}

static descent_status fail(const char* text, descent_status status, char* error, size_t capacity) {
  if (error && capacity) snprintf(error, capacity, "%s", text);
  return status;
}

descent_status descent_mpi_collectives_create(MPI_Comm comm, descent_collectives** out, char* error,
                                              size_t error_capacity) {
  if (!out) return fail("out is NULL", DESCENT_ERR_NULL_ARGUMENT, error, error_capacity);
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized)
    return fail("MPI is not initialized", DESCENT_ERR_INVALID_STATE, error, error_capacity);
  if (comm == MPI_COMM_NULL)
    return fail("comm is MPI_COMM_NULL", DESCENT_ERR_INVALID_ARGUMENT, error, error_capacity);
  endpoint* e = (endpoint*)calloc(1, sizeof *e);
  if (!e) return fail("out of memory", DESCENT_ERR_OUT_OF_MEMORY, error, error_capacity);
  int rc = MPI_Comm_dup(comm, &e->comm);
  if (rc != MPI_SUCCESS) {
    free(e);
    return mpi_failure(rc, "MPI_Comm_dup", error, error_capacity);
  }
  MPI_Comm_set_errhandler(e->comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(e->comm, &e->rank);
  MPI_Comm_size(e->comm, &e->size);
  e->counts = (int*)calloc((size_t)e->size, sizeof(int));
  e->displs = (int*)calloc((size_t)e->size, sizeof(int));
  e->refs = 1;
  descent_collectives* c = NULL;
  descent_status s =
      (e->counts && e->displs)
          ? descent_collectives_create((size_t)e->rank, (size_t)e->size, &c, error, error_capacity)
          : fail("out of memory", DESCENT_ERR_OUT_OF_MEMORY, error, error_capacity);
  if (s == DESCENT_OK)
    s = descent_collectives_set_allgatherv(c, gather, e, release, error, error_capacity);
  if (s == DESCENT_OK) {
    e->refs = 2;
    s = descent_collectives_set_allreduce(c, reduce, e, release, error, error_capacity);
    if (s != DESCENT_OK) e->refs = 1;
  }
  if (s != DESCENT_OK) {
    if (c)
      descent_collectives_free(c); /* releases e once if the gather was set */
    else
      release(e);
    return s == DESCENT_OK ? DESCENT_ERR_INTERNAL : s;
  }
  *out = c;
  return DESCENT_OK;
}
