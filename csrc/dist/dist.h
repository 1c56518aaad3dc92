/* Data-parallel training's transport: Open MPI (or any MPI) when the build found one and the process
 * was started by an MPI launcher (mpirun, mpiexec, srun with PMI/PMIx), else a world of one rank in
 * which every collective is the identity. Nothing here knows networks or Lua: it moves host floats.
 *
 * lu_dist_init is idempotent and cheap: in a plain process (no launcher environment) it does not call
 * MPI_Init at all, so single-process runs load no MPI state. All functions return a status; a failed
 * collective is fatal to the job in MPI anyway (MPI_ERRORS_ARE_FATAL), lu_dist_abort ends every rank. */
#ifndef LU_DIST_H
#define LU_DIST_H

#include <stddef.h>

#include "core/status.h"

typedef enum { LU_DIST_SUM = 0, LU_DIST_MAX = 1, LU_DIST_MIN = 2 } lu_dist_op;

/* 1 when this build has MPI (compiled with LU_HAVE_MPI). */
int lu_dist_compiled(void);
/* 1 when the environment says an MPI launcher started this process (and LUNET_MPI is not 0). */
int lu_dist_launched(void);
/* Initialises MPI when compiled and launched; otherwise a one-rank world. */
lu_status lu_dist_init(void);
int lu_dist_rank(void);
int lu_dist_size(void);
int lu_dist_local_rank(void);  /* rank among the ranks of this machine (device index) */
int lu_dist_local_size(void);
const char *lu_dist_host(void); /* processor name */
/* 1 when a thread other than the main one may make MPI calls (one at a time): MPI_THREAD_SERIALIZED. */
int lu_dist_thread_ok(void);

/* In place over all ranks: sum, then divided by the number of ranks. */
lu_status lu_dist_allreduce_mean_f32(float *buf, size_t n);
lu_status lu_dist_allreduce_f64(double *buf, size_t n, lu_dist_op op);
/* Non-blocking sum over all ranks, in place (MPI_Iallreduce): buf must stay untouched until lu_dist_wait. The
 * request joins this process's one set of pending requests; every rank must start them in the same order. */
lu_status lu_dist_iallreduce_sum_f32(float *buf, size_t n);
/* Lets MPI advance the pending requests (MPI_Testall: Open MPI moves non-blocking collectives only inside MPI
 * calls); *done = 1 when none is left. */
lu_status lu_dist_progress(int *done);
/* Waits for every pending request; the set is empty afterwards. */
lu_status lu_dist_wait(void);
lu_status lu_dist_bcast(void *buf, size_t bytes, int root);
lu_status lu_dist_barrier(void);
/* Writes "lunet: rank R/N (host): msg" to stderr and ends the whole job with code (MPI_Abort); in a
 * one-rank world it exits the process with code. Does not return. */
void lu_dist_abort(int code, const char *msg) __attribute__((noreturn));

#endif
