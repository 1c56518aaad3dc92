#include <stdio.h>

#include "cl/device.h"
#include "cl/program.h"
#include "ops/ops.h"

#define EW_FILE "elementwise/elementwise.cl"
#define EW_WG 256

lu_status lu_check_device_tensor(const lu_tensor *t, lu_dtype dt, const char *op, const char *arg) {
  if (!t) return lu_fail(LU_EARG, "%s: %s is missing", op, arg);
  if (!t->buf) return lu_fail(LU_EARG, "%s: %s is a host tensor (move it with :to_device())", op, arg);
  if (t->dtype != dt)
    return lu_fail(LU_EARG, "%s: %s has dtype %s, expected %s", op, arg, lu_dtype_name(t->dtype), lu_dtype_name(dt));
  return LU_OK;
}

lu_status lu_shape_ncs(const lu_tensor *t, const char *op, const char *arg, int64_t *n, int64_t *c, int64_t *s) {
  if (t->ndim < 2) {
    char b[96];
    return lu_fail(LU_EARG, "%s: %s has shape %s, expected (N, C, ...)", op, arg, lu_shape_str(t->ndim, t->shape, b, sizeof b));
  }
  *n = t->shape[0];
  *c = t->shape[1];
  *s = 1;
  for (int i = 2; i < t->ndim; i++) *s *= t->shape[i];
  return LU_OK;
}

lu_status lu_check_act_tensor(const lu_tensor *t, const char *op, const char *arg) {
  return lu_check_device_tensor(t, t && t->dtype == LU_F16 ? LU_F16 : LU_F32, op, arg);
}

size_t lu_global_1d(size_t n, size_t wg) { return (n + wg - 1) / wg * wg; }

static lu_status same_shape(const char *op, const lu_tensor *a, const lu_tensor *b) {
  if (lu_tensor_numel(a) == lu_tensor_numel(b) && a->dev == b->dev) return LU_OK;
  char sa[96], sb[96];
  return lu_fail(LU_EARG, "%s: shapes %s and %s differ%s", op, lu_shape_str(a->ndim, a->shape, sa, sizeof sa),
                 lu_shape_str(b->ndim, b->shape, sb, sizeof sb), a->dev != b->dev ? " or live on different devices" : "");
}

/* float32, or float16 storage (mixed-precision activations): the kernels' build option */
static const char *act_opts(lu_dtype dt) { return dt == LU_F16 ? "-DHALF=1" : NULL; }

static lu_status run1d(lu_device *dev, cl_kernel k, cl_ulong n, const char *what) {
  size_t g = lu_global_1d((size_t)n, EW_WG), l = EW_WG;
  return lu_launch(dev, k, 1, &g, n < EW_WG ? NULL : &l, what);
}

lu_status lu_fill(lu_tensor *y, float v) {
  LU_TRY(lu_check_act_tensor(y, "fill", "y"));
  cl_kernel k;
  LU_TRY(lu_kernel_get(y->dev, EW_FILE, "fill_f32", act_opts(y->dtype), &k));
  cl_mem m = y->buf;
  cl_ulong n = (cl_ulong)lu_tensor_numel(y);
  LU_CL_CHECK(LU_ARG(k, 0, m) | LU_ARG(k, 1, v) | LU_ARG(k, 2, n), "fill args");
  return run1d(y->dev, k, n, "fill");
}

lu_status lu_scale(lu_tensor *y, float a) {
  LU_TRY(lu_check_act_tensor(y, "scale", "y"));
  cl_kernel k;
  LU_TRY(lu_kernel_get(y->dev, EW_FILE, "scale_f32", act_opts(y->dtype), &k));
  cl_mem m = y->buf;
  cl_ulong n = (cl_ulong)lu_tensor_numel(y);
  LU_CL_CHECK(LU_ARG(k, 0, m) | LU_ARG(k, 1, a) | LU_ARG(k, 2, n), "scale args");
  return run1d(y->dev, k, n, "scale");
}

lu_status lu_axpy(lu_tensor *y, float a, const lu_tensor *x) {
  LU_TRY(lu_check_act_tensor(y, "axpy", "y"));
  LU_TRY(lu_check_device_tensor(x, y->dtype, "axpy", "x"));
  LU_TRY(same_shape("axpy", y, x));
  cl_kernel k;
  LU_TRY(lu_kernel_get(y->dev, EW_FILE, "axpy_f32", act_opts(y->dtype), &k));
  cl_mem my = y->buf, mx = x->buf;
  cl_ulong n = (cl_ulong)lu_tensor_numel(y);
  LU_CL_CHECK(LU_ARG(k, 0, my) | LU_ARG(k, 1, mx) | LU_ARG(k, 2, a) | LU_ARG(k, 3, n), "axpy args");
  return run1d(y->dev, k, n, "axpy");
}

static lu_status binary(const char *op, const char *kname, lu_tensor *z, const lu_tensor *x, const lu_tensor *y) {
  LU_TRY(lu_check_act_tensor(z, op, "z"));
  LU_TRY(lu_check_device_tensor(x, z->dtype, op, "x"));
  LU_TRY(lu_check_device_tensor(y, z->dtype, op, "y"));
  LU_TRY(same_shape(op, x, y));
  LU_TRY(same_shape(op, z, x));
  cl_kernel k;
  LU_TRY(lu_kernel_get(z->dev, EW_FILE, kname, act_opts(z->dtype), &k));
  cl_mem mz = z->buf, mx = x->buf, my = y->buf;
  cl_ulong n = (cl_ulong)lu_tensor_numel(z);
  LU_CL_CHECK(LU_ARG(k, 0, mz) | LU_ARG(k, 1, mx) | LU_ARG(k, 2, my) | LU_ARG(k, 3, n), "%s args", op);
  return run1d(z->dev, k, n, op);
}

lu_status lu_add(lu_tensor *z, const lu_tensor *x, const lu_tensor *y) { return binary("add", "add_f32", z, x, y); }
lu_status lu_mul(lu_tensor *z, const lu_tensor *x, const lu_tensor *y) { return binary("mul", "mul_f32", z, x, y); }

lu_status lu_copy(lu_tensor *dst, const lu_tensor *src) {
  if (!dst->buf || !src->buf) return lu_fail(LU_EARG, "copy: both tensors must live on a device");
  if (dst->bytes != src->bytes || dst->dev != src->dev)
    return lu_fail(LU_EARG, "copy: %zu bytes into %zu bytes%s", src->bytes, dst->bytes,
                   dst->dev != src->dev ? " across devices" : "");
  if (!dst->bytes || dst->buf == src->buf) return LU_OK;
  LU_CL_CHECK(clEnqueueCopyBuffer(dst->dev->queue, (cl_mem)src->buf, (cl_mem)dst->buf, 0, 0, dst->bytes, 0, NULL, NULL),
              "copy of %zu bytes", dst->bytes);
  return LU_OK;
}

lu_status lu_cast(lu_tensor *dst, const lu_tensor *src) {
  if (!dst->buf || !src->buf) return lu_fail(LU_EARG, "cast: both tensors must live on a device");
  LU_TRY(same_shape("cast", dst, src));
  if (dst->dtype == src->dtype) return lu_copy(dst, src);
  const char *kname = src->dtype == LU_F16 && dst->dtype == LU_F32   ? "cast_f16_f32"
                      : src->dtype == LU_F32 && dst->dtype == LU_F16 ? "cast_f32_f16"
                                                                     : NULL;
  if (!kname)
    return lu_fail(LU_EUNSUPPORTED, "cast: %s to %s (float16 <-> float32 only)", lu_dtype_name(src->dtype),
                   lu_dtype_name(dst->dtype));
  cl_kernel k;
  LU_TRY(lu_kernel_get(dst->dev, EW_FILE, kname, NULL, &k));
  cl_mem md = dst->buf, ms = src->buf;
  cl_ulong n = (cl_ulong)lu_tensor_numel(dst);
  LU_CL_CHECK(LU_ARG(k, 0, md) | LU_ARG(k, 1, ms) | LU_ARG(k, 2, n), "cast args");
  return run1d(dst->dev, k, n, "cast");
}
