#include "cl/blas.h"

#include <clblast_c.h>

#include "cl/profile.h"
#include "core/addrspace.h"
#include "core/env.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parameters found by clblast_tuner_xgemm on the machines we run on. CLBlast's own database has
 * no entry for PoCL CPU devices, and its defaults run SGEMM ~4x below the tuned figure there.
 * Entries match a substring of the device name; a `lunet tune` file for the device wins. */
typedef struct { const char *device_substr, *kernel, *params; } lu_tuning_entry;
static const lu_tuning_entry lu_builtin_tuning[] = {
  {"skylake-avx512", "Xgemm",
   "GEMMK=0 KREG=1 KWG=32 KWI=2 MDIMA=8 MDIMC=8 MWG=64 NDIMB=8 NDIMC=8 NWG=64 SA=1 SB=1 STRM=0 STRN=0 VWM=4 VWN=4"},
  {NULL, NULL, NULL},
};

#define LU_MAX_TUNED_DEVICES 32
static struct { cl_device_id id; int applied; char source[1100]; } lu_tuned[LU_MAX_TUNED_DEVICES];

static int tuned_slot(lu_device *dev) {
  for (int i = 0; i < LU_MAX_TUNED_DEVICES; i++)
    if (lu_tuned[i].id == dev->id || lu_tuned[i].id == NULL) { lu_tuned[i].id = dev->id; return i; }
  return LU_MAX_TUNED_DEVICES - 1;
}

void lu_blas_tuning_path(const lu_device *dev, char *buf, size_t n) {
  lu_cache_file(buf, n, "clblast-", dev->name, ".params");
}

/* Applies one "KERNEL NAME=VALUE ..." line. */
static lu_status apply_line(lu_device *dev, const char *kernel, const char *params, const char *origin) {
  const char *names[64];
  size_t values[64], n = 0;
  char buf[2048];
  snprintf(buf, sizeof buf, "%s", params);
  for (char *tok = strtok(buf, " \t\r\n"); tok && n < 64; tok = strtok(NULL, " \t\r\n")) {
    char *eq = strchr(tok, '=');
    if (!eq) return lu_fail(LU_EFORMAT, "%s: expected NAME=VALUE, got '%s'", origin, tok);
    *eq = 0;
    names[n] = tok;
    values[n] = (size_t)strtoul(eq + 1, NULL, 10);
    n++;
  }
  CLBlastStatusCode s = CLBlastOverrideParameters(dev->id, kernel, CLBlastPrecisionSingle, n, names, values);
  if (s != CLBlastSuccess)
    return lu_fail(LU_EBLAS, "%s: CLBlast rejected the %s parameters (status %d)", origin, kernel, (int)s);
  return LU_OK;
}

lu_status lu_blas_apply_tuning(lu_device *dev) {
  int slot = tuned_slot(dev);
  lu_tuned[slot].applied = 1;
  snprintf(lu_tuned[slot].source, sizeof lu_tuned[slot].source, "default");
  if (lu_env("LUNET_CLBLAST_DEFAULTS")) return LU_OK;
  char path[1024];
  lu_blas_tuning_path(dev, path, sizeof path);
  FILE *f = fopen(path, "r");
  if (f) {
    char line[2048];
    lu_status st = LU_OK;
    while (st == LU_OK && fgets(line, sizeof line, f)) {
      char kernel[64];
      int off = 0;
      if (line[0] == '#' || sscanf(line, "%63s %n", kernel, &off) < 1) continue;
      st = apply_line(dev, kernel, line + off, path);
    }
    fclose(f);
    if (st != LU_OK) return st;
    snprintf(lu_tuned[slot].source, sizeof lu_tuned[slot].source, "file:%s", path);
    return LU_OK;
  }
  for (const lu_tuning_entry *e = lu_builtin_tuning; e->device_substr; e++)
    if (strstr(dev->name, e->device_substr)) {
      LU_TRY(apply_line(dev, e->kernel, e->params, "builtin tuning table"));
      snprintf(lu_tuned[slot].source, sizeof lu_tuned[slot].source, "builtin:%s", e->device_substr);
    }
  return LU_OK;
}

const char *lu_blas_tuning_source(lu_device *dev) {
  int slot = tuned_slot(dev);
  if (!lu_tuned[slot].applied) lu_blas_apply_tuning(dev);
  return lu_tuned[slot].source;
}

static lu_status ensure_tuned(lu_device *dev) {
  int slot = tuned_slot(dev);
  return lu_tuned[slot].applied ? LU_OK : lu_blas_apply_tuning(dev);
}

static lu_status blas_status(CLBlastStatusCode s, const char *what, size_t m, size_t n, size_t k) {
  if (s == CLBlastSuccess) return LU_OK;
  if (s < 0 && s > -100) /* negative small codes are OpenCL errors */
    return lu_fail(LU_ECL, "%s (%s m=%zu n=%zu k=%zu)", lu_cl_errname((cl_int)s), what, m, n, k);
  return lu_fail(LU_EBLAS, "CLBlast status %d (%s m=%zu n=%zu k=%zu)", (int)s, what, m, n, k);
}

void lu_blas_shutdown(void) { CLBlastClearCache(); }

/* CLBlast pads operands into scratch buffers of its own, which PoCL's CPU driver allocates at first use
 * and aborts on when the address space is exhausted: check the room for them first (at most one padded
 * copy of A, B and C, a quarter extra for the padding). */
static lu_status gemm_room(lu_device *dev, size_t m, size_t n, size_t k, size_t batch) {
  if (!dev->host_buffers) return LU_OK;
  double bytes = 1.25 * 4.0 * ((double)m * (double)k + (double)k * (double)n + (double)m * (double)n) * (double)batch;
  size_t b = bytes > 1e18 ? (size_t)1e18 : (size_t)bytes;
  return lu_addrspace_check(b, b, "CLBlast's GEMM scratch buffers", dev->name);
}

lu_status lu_sgemm(lu_device *dev, int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha, cl_mem a,
                   size_t a_off, size_t lda, cl_mem b, size_t b_off, size_t ldb, float beta, cl_mem c, size_t c_off,
                   size_t ldc) {
  if (m == 0 || n == 0) return LU_OK;
  LU_TRY(lu_device_check_live(dev, "sgemm"));
  LU_TRY(gemm_room(dev, m, n, k, 1));
  LU_TRY(ensure_tuned(dev));
  cl_command_queue q = dev->queue;
  /* CLBlast may run several kernels (padding, transposes): its event is the last one's, so the profile
   * charges the span from a marker before it */
  cl_event m0, *mp = lu_profile_event(&m0), ev, *evp = lu_profile_event(&ev);
  if (mp && clEnqueueMarkerWithWaitList(q, 0, NULL, mp) != CL_SUCCESS) m0 = NULL;
  lu_count_launch();
  CLBlastStatusCode s = CLBlastSgemm(CLBlastLayoutRowMajor, trans_a ? CLBlastTransposeYes : CLBlastTransposeNo,
                                     trans_b ? CLBlastTransposeYes : CLBlastTransposeNo, m, n, k, alpha, a, a_off,
                                     lda, b, b_off, ldb, beta, c, c_off, ldc, &q, evp);
  if (evp) lu_profile_record_span(m0, s == CLBlastSuccess ? ev : NULL, "clblast_sgemm");
  return blas_status(s, "sgemm", m, n, k);
}

lu_status lu_sgemm_strided_batched(lu_device *dev, int trans_a, int trans_b, size_t m, size_t n, size_t k,
                                   float alpha, cl_mem a, size_t a_off, size_t lda, size_t stride_a, cl_mem b,
                                   size_t b_off, size_t ldb, size_t stride_b, float beta, cl_mem c, size_t c_off,
                                   size_t ldc, size_t stride_c, size_t batch) {
  if (m == 0 || n == 0 || batch == 0) return LU_OK;
  LU_TRY(lu_device_check_live(dev, "sgemm_strided_batched"));
  LU_TRY(gemm_room(dev, m, n, k, batch));
  LU_TRY(ensure_tuned(dev));
  cl_command_queue q = dev->queue;
  cl_event m0, *mp = lu_profile_event(&m0), ev, *evp = lu_profile_event(&ev);
  if (mp && clEnqueueMarkerWithWaitList(q, 0, NULL, mp) != CL_SUCCESS) m0 = NULL;
  lu_count_launch();
  CLBlastStatusCode s = CLBlastSgemmStridedBatched(
      CLBlastLayoutRowMajor, trans_a ? CLBlastTransposeYes : CLBlastTransposeNo,
      trans_b ? CLBlastTransposeYes : CLBlastTransposeNo, m, n, k, alpha, a, a_off, lda, stride_a, b, b_off, ldb,
      stride_b, beta, c, c_off, ldc, stride_c, batch, &q, evp);
  if (evp) lu_profile_record_span(m0, s == CLBlastSuccess ? ev : NULL, "clblast_sgemm_batched");
  return blas_status(s, "sgemm_strided_batched", m, n, k);
}
