/* C side of the Fortran module `ckpt` (ckpt.f90): what iso_c_binding cannot do alone.
 * The communicator arrives as a Fortran handle (MPI_Fint: the integer of `use mpi`, or
 * MPI_VAL of a type(MPI_Comm) of `use mpi_f08`) and becomes an MPI_Comm here. Not part of
 * the C API: only the module calls these. */
#include <ckpt/ckpt.h>

#include <mpi.h>
#include <stddef.h>
#include <stdlib.h>

ckpt_status ckpt_fortran_open(MPI_Fint comm, const char *dir, const ckpt_options *opts,
                              ckpt_handle **out, int *rank);
size_t ckpt_fortran_options_size(void);
void ckpt_fortran_exit(int code);

/* ckpt_open on a Fortran communicator; also gives the caller's rank for the module's own
 * messages. Returns -1 (no ckpt_status) for MPI_COMM_NULL. Collective over comm. */
ckpt_status ckpt_fortran_open(MPI_Fint comm, const char *dir, const ckpt_options *opts,
                              ckpt_handle **out, int *rank) {
  MPI_Comm c = MPI_Comm_f2c(comm);
  *out = NULL;
  *rank = -1;
  if (c == MPI_COMM_NULL) return (ckpt_status)-1; /* the module says why */
  if (MPI_Comm_rank(c, rank) != MPI_SUCCESS) *rank = -1;
  return ckpt_open(c, dir, opts, out);
}

/* sizeof(ckpt_options): the module checks that its bind(C) copy has the same size. */
size_t ckpt_fortran_options_size(void) { return sizeof(ckpt_options); }

/* Ends the process with `code` after MPI_Finalize (Fortran 2008 has no STOP with a
 * computed code that prints nothing; gfortran flushes its units at exit). */
void ckpt_fortran_exit(int code) { exit(code); }
