/* Instance normalisation forward/backward (kernels/instnorm/instnorm.cl): one work-group per (n, c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl/pool.h"
#include "cl/program.h"
#include "cl/tunables.h"
#include "ops/nn.h"

#define IN_FILE "instnorm/instnorm.cl"

/* Work-group size: 256 unless the device allows less (power of two). */
static size_t in_wg(const lu_device *dev) {
  size_t wg = 256;
  while (wg > 1 && wg > dev->max_wg) wg >>= 1;
  return wg;
}

/* CPU devices (PoCL) take the row-per-work-item kernels with explicit float8 vectors; GPUs the
 * work-group-per-row kernels with local reductions. Tunable instnorm = rows | groups overrides. */
static int use_rows(const lu_device *dev) {
  int k = lu_tune(dev, LU_TUNE_INSTNORM);
  return k == LU_TUNE_AUTO ? lu_tune_cpu(dev) : k == 0;
}

/* half: x, y, dy, dx are float16 storage (kernels compute in float); act_bwd: the backward applies the
 * LeakyReLU's backward as it reads dy */
static lu_status in_kernel_act(lu_device *dev, const char *name, size_t wg, int half, int act_bwd, cl_kernel *k) {
  char opts[64];
  snprintf(opts, sizeof opts, "-DWG=%zu%s%s", wg, half ? " -DHALF=1" : "", act_bwd ? " -DACT_BWD=1" : "");
  return lu_kernel_get(dev, IN_FILE, name, opts, k);
}

static lu_status in_kernel(lu_device *dev, const char *name, size_t wg, int half, cl_kernel *k) {
  return in_kernel_act(dev, name, wg, half, 0, k);
}

static lu_status check_x(const char *op, const lu_tensor *x, int64_t *n, int64_t *c, int64_t *s) {
  if (x->ndim < 3) {
    char b[96];
    return lu_fail(LU_EARG, "%s: x has shape %s, expected (N, C, spatial...)", op, lu_shape_str(x->ndim, x->shape, b, sizeof b));
  }
  *n = x->shape[0];
  *c = x->shape[1];
  *s = 1;
  for (int i = 2; i < x->ndim; i++) *s *= x->shape[i];
  return LU_OK;
}

static lu_status check_len_dt(const char *op, const char *arg, const lu_tensor *t, const lu_tensor *x, int64_t want,
                             lu_dtype dt) {
  LU_TRY(lu_check_device_tensor(t, dt, op, arg));
  if (lu_tensor_numel(t) != want || t->dev != x->dev) {
    char b[96], c[96];
    return lu_fail(LU_EARG, "%s: %s has shape %s, expected %lld elements for x %s%s", op, arg,
                   lu_shape_str(t->ndim, t->shape, b, sizeof b), (long long)want,
                   lu_shape_str(x->ndim, x->shape, c, sizeof c), t->dev != x->dev ? " on the same device" : "");
  }
  return LU_OK;
}

/* Statistics and affine parameters: float32 always. */
static lu_status check_len(const char *op, const char *arg, const lu_tensor *t, const lu_tensor *x, int64_t want) {
  return check_len_dt(op, arg, t, x, want, LU_F32);
}

/* Activations: float32 or float16 storage, like x. */
static lu_status check_act(const char *op, const char *arg, const lu_tensor *t, const lu_tensor *x, int64_t want) {
  return check_len_dt(op, arg, t, x, want, x->dtype);
}

/* Chunks per row for the GPU path: enough work-groups to fill the device (8 per compute unit),
 * at least 4 elements per work-item, at most 256 chunks. */
static size_t in_chunks(const lu_device *dev, int64_t rows, int64_t S, size_t wg) {
  size_t target = (dev->compute_units ? dev->compute_units : 16) * 8;
  size_t ch = (target + (size_t)rows - 1) / (size_t)rows;
  size_t max_ch = (size_t)S / (wg * 4);
  if (ch > max_ch) ch = max_ch;
  if (ch > 256) ch = 256;
  return ch < 1 ? 1 : ch;
}

static lu_status fwd(const char *op, const lu_tensor *x, const lu_tensor *w, const lu_tensor *b, float eps, int act,
                     float slope, lu_tensor *y, lu_tensor *mean, lu_tensor *invstd) {
  LU_TRY(lu_check_act_tensor(x, op, "x"));
  const int half = x->dtype == LU_F16;
  int64_t N = 0, C = 0, S = 0;
  LU_TRY(check_x(op, x, &N, &C, &S));
  LU_TRY(check_act(op, "y", y, x, N * C * S));
  LU_TRY(check_len(op, "weight", w, x, C));
  LU_TRY(check_len(op, "bias", b, x, C));
  LU_TRY(check_len(op, "mean", mean, x, N * C));
  LU_TRY(check_len(op, "invstd", invstd, x, N * C));
  if (N * C == 0) return LU_OK;
  if (S == 0) return lu_fail(LU_EARG, "%s: x has no spatial elements", op);
  lu_device *dev = x->dev;
  size_t wg = in_wg(dev);
  cl_mem mx = x->buf, mw = w->buf, mb = b->buf, my = y->buf, mm = mean->buf, mi = invstd->buf;
  cl_int a = act;
  cl_ulong s = (cl_ulong)S, c = (cl_ulong)C, rows = (cl_ulong)(N * C);
  cl_kernel k;
  if (use_rows(dev)) {
    LU_TRY(in_kernel(dev, "instnorm_fwd_rows", wg, half, &k));
    LU_CL_CHECK(LU_ARG(k, 0, mx) | LU_ARG(k, 1, mw) | LU_ARG(k, 2, mb) | LU_ARG(k, 3, eps) | LU_ARG(k, 4, a) |
                    LU_ARG(k, 5, slope) | LU_ARG(k, 6, my) | LU_ARG(k, 7, mm) | LU_ARG(k, 8, mi) | LU_ARG(k, 9, s) |
                    LU_ARG(k, 10, c) | LU_ARG(k, 11, rows),
                "%s args", op);
    size_t g1 = (size_t)(N * C);
    return lu_launch(dev, k, 1, &g1, NULL, op);
  }
  cl_kernel k2;
  LU_TRY(in_kernel(dev, "instnorm_stats", wg, half, &k));
  LU_TRY(in_kernel(dev, "instnorm_apply", wg, half, &k2));
  size_t CH = in_chunks(dev, N * C, S, wg);
  cl_ulong per = (cl_ulong)((S + (int64_t)CH - 1) / (int64_t)CH);
  size_t pbytes = (size_t)(N * C) * (2 * CH + 1) * sizeof(float);
  cl_mem part;
  LU_TRY(lu_buffer_alloc(dev, pbytes, &part));
  lu_status st = LU_OK;
  cl_int e = LU_ARG(k, 0, mx) | LU_ARG(k, 1, part) | LU_ARG(k, 2, s) | LU_ARG(k, 3, per);
  if (e != CL_SUCCESS) st = lu_fail(LU_ECL, "%s (%s stats args)", lu_cl_errname(e), op);
  size_t g[2] = {CH * wg, (size_t)(N * C)}, l[2] = {wg, 1};
  if (st == LU_OK) st = lu_launch(dev, k, 2, g, l, op);
  if (st == LU_OK) {
    e = LU_ARG(k2, 0, mx) | LU_ARG(k2, 1, mw) | LU_ARG(k2, 2, mb) | LU_ARG(k2, 3, eps) | LU_ARG(k2, 4, a) |
        LU_ARG(k2, 5, slope) | LU_ARG(k2, 6, my) | LU_ARG(k2, 7, mm) | LU_ARG(k2, 8, mi) | LU_ARG(k2, 9, part) |
        LU_ARG(k2, 10, s) | LU_ARG(k2, 11, c) | LU_ARG(k2, 12, per);
    if (e != CL_SUCCESS) st = lu_fail(LU_ECL, "%s (%s args)", lu_cl_errname(e), op);
  }
  if (st == LU_OK) st = lu_launch(dev, k2, 2, g, l, op);
  /* the in-order queue orders any later reuse of the pooled buffer after these kernels */
  lu_buffer_release(dev, part, pbytes);
  return st;
}

lu_status lu_instnorm_fwd(const lu_tensor *x, const lu_tensor *weight, const lu_tensor *bias, float eps, lu_tensor *y,
                          lu_tensor *mean, lu_tensor *invstd) {
  return fwd("instnorm_fwd", x, weight, bias, eps, 0, 0.0f, y, mean, invstd);
}

lu_status lu_instnorm_lrelu_fwd(const lu_tensor *x, const lu_tensor *weight, const lu_tensor *bias, float eps,
                                float slope, lu_tensor *y, lu_tensor *mean, lu_tensor *invstd) {
  return fwd("instnorm_lrelu_fwd", x, weight, bias, eps, 1, slope, y, mean, invstd);
}

/* ya (may be NULL): the LeakyReLU output whose backward is applied to dy as it is read */
static lu_status bwd(const char *op, const lu_tensor *x, const lu_tensor *weight, const lu_tensor *mean,
                     const lu_tensor *invstd, const lu_tensor *ya, float slope, const lu_tensor *dy, lu_tensor *dx,
                     lu_tensor *dweight, lu_tensor *dbias, int accumulate) {
  LU_TRY(lu_check_act_tensor(x, op, "x"));
  const int half = x->dtype == LU_F16;
  int64_t N = 0, C = 0, S = 0;
  LU_TRY(check_x(op, x, &N, &C, &S));
  LU_TRY(check_len(op, "weight", weight, x, C));
  LU_TRY(check_len(op, "mean", mean, x, N * C));
  LU_TRY(check_len(op, "invstd", invstd, x, N * C));
  LU_TRY(check_act(op, "dy", dy, x, N * C * S));
  if (ya) LU_TRY(check_act(op, "y", ya, x, N * C * S));
  if (dx) LU_TRY(check_act(op, "dx", dx, x, N * C * S));
  if (dweight) LU_TRY(check_len(op, "dweight", dweight, x, C));
  if (dbias) LU_TRY(check_len(op, "dbias", dbias, x, C));
  if (N * C == 0 || (!dx && !dweight && !dbias)) return LU_OK;
  if (S == 0) return lu_fail(LU_EARG, "%s: x has no spatial elements", op);
  lu_device *dev = x->dev;
  size_t wg = in_wg(dev);
  int rows_path = use_rows(dev);
  size_t CH = rows_path ? 1 : in_chunks(dev, N * C, S, wg);
  cl_ulong per = (cl_ulong)((S + (int64_t)CH - 1) / (int64_t)CH);
  cl_kernel k, k1 = NULL, k2;
  const int act_bwd = ya != NULL;
  if (rows_path) LU_TRY(in_kernel_act(dev, "instnorm_bwd_rows", wg, half, act_bwd, &k));
  else {
    LU_TRY(in_kernel_act(dev, "instnorm_bwd_stats", wg, half, act_bwd, &k1));
    LU_TRY(in_kernel_act(dev, "instnorm_bwd_apply", wg, half, act_bwd, &k));
  }
  LU_TRY(in_kernel(dev, "instnorm_wb", wg, half, &k2));
  size_t wbytes = (size_t)(N * C) * 2 * sizeof(float), pbytes = rows_path ? 0 : wbytes * CH;
  cl_mem wb, part = NULL;
  LU_TRY(lu_buffer_alloc(dev, wbytes, &wb));
  if (pbytes) {
    lu_status ps = lu_buffer_alloc(dev, pbytes, &part);
    if (ps != LU_OK) { lu_buffer_release(dev, wb, wbytes); return ps; }
  }
  cl_mem mx = x->buf, mw = weight->buf, mm = mean->buf, mi = invstd->buf, mdy = dy->buf;
  cl_mem mya = ya ? (cl_mem)ya->buf : mdy; /* unused without ACT_BWD */
  cl_mem mdx = dx ? (cl_mem)dx->buf : NULL, mdw = dweight ? (cl_mem)dweight->buf : NULL,
         mdb = dbias ? (cl_mem)dbias->buf : NULL;
  cl_int want_dx = dx != NULL, want_w = dweight != NULL, want_b = dbias != NULL, acc = accumulate ? 1 : 0;
  cl_ulong s = (cl_ulong)S, c = (cl_ulong)C, n = (cl_ulong)N, rows = (cl_ulong)(N * C);
  lu_status st = LU_OK;
  cl_int e;
  if (rows_path) {
    e = LU_ARG(k, 0, mx) | LU_ARG(k, 1, mw) | LU_ARG(k, 2, mm) | LU_ARG(k, 3, mi) | LU_ARG(k, 4, mdy) |
        LU_ARG(k, 5, mdx) | LU_ARG(k, 6, want_dx) | LU_ARG(k, 7, wb) | LU_ARG(k, 8, s) | LU_ARG(k, 9, c) |
        LU_ARG(k, 10, rows) | LU_ARG(k, 11, mya) | LU_ARG(k, 12, slope);
    if (e != CL_SUCCESS) st = lu_fail(LU_ECL, "%s (%s args)", lu_cl_errname(e), op);
    size_t g1 = (size_t)(N * C);
    if (st == LU_OK) st = lu_launch(dev, k, 1, &g1, NULL, op);
  } else {
    size_t g[2] = {CH * wg, (size_t)(N * C)}, l[2] = {wg, 1};
    e = LU_ARG(k1, 0, mx) | LU_ARG(k1, 1, mm) | LU_ARG(k1, 2, mi) | LU_ARG(k1, 3, mdy) | LU_ARG(k1, 4, part) |
        LU_ARG(k1, 5, s) | LU_ARG(k1, 6, per) | LU_ARG(k1, 7, mya) | LU_ARG(k1, 8, slope);
    if (e != CL_SUCCESS) st = lu_fail(LU_ECL, "%s (%s stats args)", lu_cl_errname(e), op);
    if (st == LU_OK) st = lu_launch(dev, k1, 2, g, l, op);
    if (st == LU_OK) {
      e = LU_ARG(k, 0, mx) | LU_ARG(k, 1, mw) | LU_ARG(k, 2, mm) | LU_ARG(k, 3, mi) | LU_ARG(k, 4, mdy) |
          LU_ARG(k, 5, mdx) | LU_ARG(k, 6, want_dx) | LU_ARG(k, 7, wb) | LU_ARG(k, 8, part) | LU_ARG(k, 9, s) |
          LU_ARG(k, 10, c) | LU_ARG(k, 11, per) | LU_ARG(k, 12, mya) | LU_ARG(k, 13, slope);
      if (e != CL_SUCCESS) st = lu_fail(LU_ECL, "%s (%s args)", lu_cl_errname(e), op);
    }
    if (st == LU_OK) st = lu_launch(dev, k, 2, g, l, op);
  }
  if (st == LU_OK && (dweight || dbias)) {
    e = LU_ARG(k2, 0, wb) | LU_ARG(k2, 1, mdw) | LU_ARG(k2, 2, mdb) | LU_ARG(k2, 3, want_w) | LU_ARG(k2, 4, want_b) |
        LU_ARG(k2, 5, acc) | LU_ARG(k2, 6, n) | LU_ARG(k2, 7, c);
    if (e != CL_SUCCESS) st = lu_fail(LU_ECL, "%s (%s weight-gradient args)", lu_cl_errname(e), op);
    size_t g1 = (size_t)C;
    if (st == LU_OK) st = lu_launch(dev, k2, 1, &g1, NULL, op);
  }
  if (part) lu_buffer_release(dev, part, pbytes);
  /* the pool hands the buffer out again only after queued work that uses it (in-order queue) */
  lu_buffer_release(dev, wb, wbytes);
  return st;
}

lu_status lu_instnorm_bwd(const lu_tensor *x, const lu_tensor *weight, const lu_tensor *mean, const lu_tensor *invstd,
                          const lu_tensor *dy, lu_tensor *dx, lu_tensor *dweight, lu_tensor *dbias, int accumulate) {
  return bwd("instnorm_bwd", x, weight, mean, invstd, NULL, 0.0f, dy, dx, dweight, dbias, accumulate);
}

lu_status lu_instnorm_lrelu_bwd(const lu_tensor *x, const lu_tensor *weight, const lu_tensor *mean,
                                const lu_tensor *invstd, const lu_tensor *y, float slope, const lu_tensor *dy,
                                lu_tensor *dx, lu_tensor *dweight, lu_tensor *dbias, int accumulate) {
  if (!y) return lu_fail(LU_EARG, "instnorm_lrelu_bwd: y (the LeakyReLU output) is missing");
  return bwd("instnorm_lrelu_bwd", x, weight, mean, invstd, y, slope, dy, dx, dweight, dbias, accumulate);
}
