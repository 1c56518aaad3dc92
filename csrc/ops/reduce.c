#include <math.h>
#include <stdlib.h>

#include "cl/device.h"
#include "cl/pool.h"
#include "cl/profile.h"
#include "cl/program.h"
#include "cl/tunables.h"
#include "ops/ops.h"

#define RED_WG 64

lu_status lu_reduce(const lu_tensor *x, lu_reduce_op op, double *out) {
  LU_TRY(lu_check_device_tensor(x, LU_F32, "reduce", "x"));
  lu_device *dev = x->dev;
  cl_ulong n = (cl_ulong)lu_tensor_numel(x);
  if (n == 0) { *out = op == LU_REDUCE_MAX ? -INFINITY : 0.0; return LU_OK; }
  /* enough groups to fill the device, few enough that the host pass is negligible */
  size_t groups = dev->compute_units ? dev->compute_units * 8 : 64;
  size_t max_groups = (size_t)((n + RED_WG - 1) / RED_WG);
  if (groups > max_groups) groups = max_groups;
  if (groups > 1024) groups = 1024;
  cl_kernel k;
  LU_TRY(lu_kernel_get(dev, "reduce/reduce.cl", "reduce_f32", lu_tune_cpu(dev) ? "-DWG=64 -DCONTIG=1" : "-DWG=64", &k));
  cl_mem partials;
  LU_TRY(lu_buffer_alloc(dev, groups * sizeof(float), &partials));
  cl_mem mx = x->buf;
  cl_int iop = (cl_int)op;
  lu_status st = LU_OK;
  cl_int e = LU_ARG(k, 0, mx) | LU_ARG(k, 1, n) | LU_ARG(k, 2, iop) | LU_ARG(k, 3, partials);
  if (e != CL_SUCCESS) st = lu_fail(LU_ECL, "%s (reduce args)", lu_cl_errname(e));
  size_t g = groups * RED_WG, l = RED_WG;
  if (st == LU_OK) st = lu_launch(dev, k, 1, &g, &l, "reduce");
  float *host = NULL;
  if (st == LU_OK) {
    host = malloc(groups * sizeof(float));
    if (!host) st = lu_fail(LU_ENOMEM, "reduce partials");
  }
  if (st == LU_OK) {
    lu_note_host_wait("reduce");
    e = clEnqueueReadBuffer(dev->queue, partials, CL_TRUE, 0, groups * sizeof(float), host, 0, NULL, NULL);
    if (e != CL_SUCCESS) st = lu_fail(LU_ECL, "%s (reading reduce partials)", lu_cl_errname(e));
  }
  if (st == LU_OK) {
    double acc = op == LU_REDUCE_MAX ? -INFINITY : 0.0;
    for (size_t i = 0; i < groups; i++) acc = op == LU_REDUCE_MAX ? fmax(acc, host[i]) : acc + host[i];
    *out = acc;
  }
  free(host);
  lu_buffer_release(dev, partials, groups * sizeof(float));
  return st;
}
