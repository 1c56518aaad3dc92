/* (Leaky) ReLU and sigmoid: elementwise kernels in kernels/act/act.cl. */
#include "cl/program.h"
#include "ops/nn.h"

#define ACT_FILE "act/act.cl"
#define ACT_WG 256

static lu_status same_numel(const char *op, const char *an, const lu_tensor *a, const char *bn, const lu_tensor *b) {
  if (lu_tensor_numel(a) == lu_tensor_numel(b) && a->dev == b->dev) return LU_OK;
  char sa[96], sb[96];
  return lu_fail(LU_EARG, "%s: %s %s and %s %s differ%s", op, an, lu_shape_str(a->ndim, a->shape, sa, sizeof sa), bn,
                 lu_shape_str(b->ndim, b->shape, sb, sizeof sb), a->dev != b->dev ? " in device" : " in size");
}

/* Activations are float32 or float16 storage (both tensors alike); the kernels compute in float. */
static lu_status act_dtype(const char *op, const lu_tensor *a, const char *an, const lu_tensor *b, const char *bn) {
  LU_TRY(lu_check_act_tensor(a, op, an));
  LU_TRY(lu_check_device_tensor(b, a->dtype, op, bn));
  return LU_OK;
}

static lu_status run1d(lu_device *dev, cl_kernel k, cl_ulong n, const char *what) {
  size_t g = lu_global_1d((size_t)n, ACT_WG), l = ACT_WG;
  return lu_launch(dev, k, 1, &g, n < ACT_WG ? NULL : &l, what);
}

lu_status lu_lrelu_fwd(lu_tensor *y, const lu_tensor *x, float slope) {
  LU_TRY(act_dtype("lrelu_fwd", y, "y", x, "x"));
  LU_TRY(same_numel("lrelu_fwd", "y", y, "x", x));
  cl_kernel k;
  cl_ulong n = (cl_ulong)lu_tensor_numel(y);
  int half = y->dtype == LU_F16, v4 = n % 4 == 0 && !half;
  LU_TRY(lu_kernel_get(y->dev, ACT_FILE, v4 ? "lrelu_fwd4" : "lrelu_fwd", half ? "-DHALF=1" : NULL, &k));
  cl_mem my = y->buf, mx = x->buf;
  if (v4) n /= 4;
  LU_CL_CHECK(LU_ARG(k, 0, my) | LU_ARG(k, 1, mx) | LU_ARG(k, 2, slope) | LU_ARG(k, 3, n), "lrelu_fwd args");
  return run1d(y->dev, k, n, "lrelu_fwd");
}

lu_status lu_lrelu_bwd(lu_tensor *dx, const lu_tensor *y, const lu_tensor *dy, float slope) {
  LU_TRY(act_dtype("lrelu_bwd", y, "y", dx, "dx"));
  LU_TRY(act_dtype("lrelu_bwd", y, "y", dy, "dy"));
  LU_TRY(same_numel("lrelu_bwd", "dx", dx, "y", y));
  LU_TRY(same_numel("lrelu_bwd", "dy", dy, "y", y));
  cl_kernel k;
  cl_ulong n = (cl_ulong)lu_tensor_numel(y);
  int half = y->dtype == LU_F16, v4 = n % 4 == 0 && !half;
  LU_TRY(lu_kernel_get(y->dev, ACT_FILE, v4 ? "lrelu_bwd4" : "lrelu_bwd", half ? "-DHALF=1" : NULL, &k));
  cl_mem mdx = dx->buf, my = y->buf, mdy = dy->buf;
  if (v4) n /= 4;
  LU_CL_CHECK(LU_ARG(k, 0, mdx) | LU_ARG(k, 1, my) | LU_ARG(k, 2, mdy) | LU_ARG(k, 3, slope) | LU_ARG(k, 4, n),
              "lrelu_bwd args");
  return run1d(y->dev, k, n, "lrelu_bwd");
}

lu_status lu_sigmoid_fwd(lu_tensor *y, const lu_tensor *x) {
  LU_TRY(lu_check_device_tensor(y, LU_F32, "sigmoid", "y"));
  LU_TRY(lu_check_device_tensor(x, LU_F32, "sigmoid", "x"));
  LU_TRY(same_numel("sigmoid", "y", y, "x", x));
  cl_kernel k;
  LU_TRY(lu_kernel_get(y->dev, ACT_FILE, "sigmoid_fwd", NULL, &k));
  cl_mem my = y->buf, mx = x->buf;
  cl_ulong n = (cl_ulong)lu_tensor_numel(y);
  LU_CL_CHECK(LU_ARG(k, 0, my) | LU_ARG(k, 1, mx) | LU_ARG(k, 2, n), "sigmoid args");
  return run1d(y->dev, k, n, "sigmoid");
}
