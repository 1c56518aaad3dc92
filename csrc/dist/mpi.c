/* lu_dist over MPI (see dist.h). Without LU_HAVE_MPI every function is the one-rank identity. */
#include "dist/dist.h"

#include "core/env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef LU_HAVE_MPI
#include <dlfcn.h>
#include <limits.h>
#include <mpi.h>
#endif

static int g_init, g_rank, g_size = 1, g_local_rank, g_local_size = 1;
static char g_host[256] = "localhost";

int lu_dist_launched(void) {
  const char *off = lu_env("LUNET_MPI");
  if (off && strcmp(off, "0") == 0) return 0;
  static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK", "MPI_LOCALNRANKS", NULL};
  for (int i = 0; vars[i]; i++)
    if (lu_env(vars[i])) return 1;
  return 0;
}

int lu_dist_rank(void) { return g_rank; }
int lu_dist_size(void) { return g_size; }
int lu_dist_local_rank(void) { return g_local_rank; }
int lu_dist_local_size(void) { return g_local_size; }
const char *lu_dist_host(void) { return g_host; }

#ifdef LU_HAVE_MPI

int lu_dist_compiled(void) { return 1; }

static int g_mpi;        /* MPI_Init was called here */
static int g_serialized; /* MPI calls from another thread are allowed, one at a time */

int lu_dist_thread_ok(void) { return g_size <= 1 || g_serialized; }

static MPI_Request *g_req; /* the pending non-blocking requests (lu_dist_iallreduce_sum_f32 .. lu_dist_wait) */
static int g_nreq, g_capreq;

static void finalize(void) {
  free(g_req);
  g_req = NULL;
  g_nreq = g_capreq = 0;
  int fin = 0;
  if (g_mpi && MPI_Finalized(&fin) == MPI_SUCCESS && !fin) MPI_Finalize();
}

static lu_status mpi_fail(int rc, const char *what) {
  char s[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "error %d", rc);
  return lu_fail(LU_EIO, "%s: %s", what, s);
}

lu_status lu_dist_init(void) {
  if (g_init) return LU_OK;
  g_init = 1;
  if (!lu_dist_launched()) return LU_OK;
  /* The module is loaded RTLD_LOCAL by Lua's require; Open MPI's plugins expect libmpi's symbols
   * global. Promote the already-loaded library (no new load). */
  Dl_info di;
  if (dladdr((void *)&MPI_Init, &di) && di.dli_fname) dlopen(di.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    /* SERIALIZED: the batch Dice's allreduce may run on the training step's worker thread (l_async.c) while the
     * main thread makes no MPI call */
    int provided, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS) return lu_fail(LU_EIO, "MPI_Init_thread failed (%d)", rc);
    g_serialized = provided >= MPI_THREAD_SERIALIZED;
    g_mpi = 1;
    atexit(finalize);
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  MPI_Comm local;
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
    MPI_Comm_rank(local, &g_local_rank);
    MPI_Comm_size(local, &g_local_size);
    MPI_Comm_free(&local);
  }
  int len = 0;
  char name[MPI_MAX_PROCESSOR_NAME];
  if (MPI_Get_processor_name(name, &len) == MPI_SUCCESS) snprintf(g_host, sizeof g_host, "%s", name);
  return LU_OK;
}

lu_status lu_dist_allreduce_mean_f32(float *buf, size_t n) {
  if (g_size <= 1) return LU_OK;
  for (size_t off = 0; off < n;) { /* MPI counts are int */
    size_t c = n - off < (size_t)INT_MAX / 2 ? n - off : (size_t)INT_MAX / 2;
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Allreduce (gradients)");
    off += c;
  }
  const float inv = 1.0f / (float)g_size;
  for (size_t i = 0; i < n; i++) buf[i] *= inv;
  return LU_OK;
}

lu_status lu_dist_allreduce_f64(double *buf, size_t n, lu_dist_op op) {
  if (g_size <= 1) return LU_OK;
  MPI_Op m = op == LU_DIST_MAX ? MPI_MAX : op == LU_DIST_MIN ? MPI_MIN : MPI_SUM;
  int rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, m, MPI_COMM_WORLD);
  return rc == MPI_SUCCESS ? LU_OK : mpi_fail(rc, "MPI_Allreduce");
}

lu_status lu_dist_iallreduce_sum_f32(float *buf, size_t n) {
  if (g_size <= 1) return LU_OK;
  for (size_t off = 0; off < n;) { /* MPI counts are int */
    size_t c = n - off < (size_t)INT_MAX / 2 ? n - off : (size_t)INT_MAX / 2;
    if (g_nreq == g_capreq) {
      int cap = g_capreq ? 2 * g_capreq : 64;
      MPI_Request *r = realloc(g_req, (size_t)cap * sizeof *r);
      if (!r) return lu_fail(LU_ENOMEM, "MPI_Iallreduce: %d requests", cap);
      g_req = r;
      g_capreq = cap;
    }
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf + off, (int)c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &g_req[g_nreq]);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Iallreduce (gradients)");
    g_nreq++;
    off += c;
  }
  return LU_OK;
}

lu_status lu_dist_progress(int *done) {
  int flag = 1;
  if (g_nreq) {
    int rc = MPI_Testall(g_nreq, g_req, &flag, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Testall");
    if (flag) g_nreq = 0;
  }
  if (done) *done = flag;
  return LU_OK;
}

lu_status lu_dist_wait(void) {
  if (!g_nreq) return LU_OK;
  int rc = MPI_Waitall(g_nreq, g_req, MPI_STATUSES_IGNORE);
  g_nreq = 0;
  return rc == MPI_SUCCESS ? LU_OK : mpi_fail(rc, "MPI_Waitall");
}

lu_status lu_dist_bcast(void *buf, size_t bytes, int root) {
  if (g_size <= 1) return LU_OK;
  for (size_t off = 0; off < bytes;) {
    size_t c = bytes - off < (size_t)INT_MAX / 2 ? bytes - off : (size_t)INT_MAX / 2;
    int rc = MPI_Bcast((char *)buf + off, (int)c, MPI_BYTE, root, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Bcast");
    off += c;
  }
  return LU_OK;
}

lu_status lu_dist_barrier(void) {
  if (g_size <= 1) return LU_OK;
  int rc = MPI_Barrier(MPI_COMM_WORLD);
  return rc == MPI_SUCCESS ? LU_OK : mpi_fail(rc, "MPI_Barrier");
}

void lu_dist_abort(int code, const char *msg) {
  fprintf(stderr, "lunet: rank %d of %d (%s) failed: %s\n", g_rank, g_size, g_host, msg ? msg : "");
  fflush(stderr);
  if (g_size > 1) MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
  exit(code ? code : 1);
}

#else

int lu_dist_compiled(void) { return 0; }
int lu_dist_thread_ok(void) { return 1; }
lu_status lu_dist_init(void) {
  g_init = 1;
  return LU_OK;
}
lu_status lu_dist_allreduce_mean_f32(float *buf, size_t n) { return LU_OK; }
lu_status lu_dist_allreduce_f64(double *buf, size_t n, lu_dist_op op) { return LU_OK; }
lu_status lu_dist_iallreduce_sum_f32(float *buf, size_t n) { return LU_OK; }
lu_status lu_dist_progress(int *done) {
  if (done) *done = 1;
  return LU_OK;
}
lu_status lu_dist_wait(void) { return LU_OK; }
lu_status lu_dist_bcast(void *buf, size_t bytes, int root) { return LU_OK; }
lu_status lu_dist_barrier(void) { return LU_OK; }
void lu_dist_abort(int code, const char *msg) {
  fprintf(stderr, "lunet: %s\n", msg ? msg : "");
  fflush(stderr);
  exit(code ? code : 1);
}

#endif
