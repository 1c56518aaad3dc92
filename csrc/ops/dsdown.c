/* Deep-supervision target downsampling (nearest-exact, as batchgeneratorsv2's
 * DownsampleSegForDSTransform), loss weights and output shapes. */
#include <math.h>
#include <stdio.h>

#include "cl/program.h"
#include "ops/nn.h"

void lu_ds_shape(int ndim, const int64_t *in, const double *scale, int64_t *out) {
  for (int i = 0; i < ndim; i++) out[i] = in[i];
  /* Python's round(): half to even, which nearbyint gives in the default rounding mode */
  for (int i = 2; i < ndim; i++) out[i] = (int64_t)nearbyint((double)in[i] * scale[i - 2]);
}

void lu_ds_weights(int n, double *w) {
  if (n <= 0) return;
  if (n == 1) { w[0] = 1.0; return; }
  double sum = 0.0;
  for (int i = 0; i < n; i++) w[i] = i == n - 1 ? 0.0 : 1.0 / (double)(1LL << i);
  for (int i = 0; i < n; i++) sum += w[i];
  for (int i = 0; i < n; i++) w[i] /= sum;
}

lu_status lu_ds_downsample(lu_tensor *out, const lu_tensor *seg) {
  const char *op = "ds_downsample";
  if (!out || !seg || !out->buf || !seg->buf) return lu_fail(LU_EARG, "%s: out and seg must be device tensors", op);
  char a[96], b[96];
  lu_shape_str(seg->ndim, seg->shape, a, sizeof a);
  lu_shape_str(out->ndim, out->shape, b, sizeof b);
  if (out->dtype != seg->dtype) return lu_fail(LU_EARG, "%s: out is %s but seg is %s", op, lu_dtype_name(out->dtype), lu_dtype_name(seg->dtype));
  const char *T;
  switch (seg->dtype) {
    case LU_I32: T = "int"; break;
    case LU_F32: T = "float"; break;
    case LU_U8: T = "uchar"; break;
    case LU_I16: T = "short"; break;
    default: return lu_fail(LU_EARG, "%s: dtype %s not supported (int32, float32, u8, i16)", op, lu_dtype_name(seg->dtype));
  }
  if ((seg->ndim != 4 && seg->ndim != 5) || out->ndim != seg->ndim || out->shape[0] != seg->shape[0] ||
      out->shape[1] != seg->shape[1] || out->dev != seg->dev)
    return lu_fail(LU_EARG, "%s: seg %s and out %s must be (N, C, [Z,] Y, X) with equal N and C on one device", op, a, b);
  int64_t is[3] = {1, 1, 1}, os[3] = {1, 1, 1};
  int sp = seg->ndim - 2;
  for (int i = 0; i < sp; i++) {
    is[3 - sp + i] = seg->shape[2 + i];
    os[3 - sp + i] = out->shape[2 + i];
  }
  for (int i = 0; i < 3; i++)
    if (os[i] < 1 || is[i] < 1) return lu_fail(LU_EARG, "%s: empty spatial axis in seg %s or out %s", op, a, b);
  int64_t nc = seg->shape[0] * seg->shape[1];
  if (nc == 0) return LU_OK;
  char opts[32];
  snprintf(opts, sizeof opts, "-DT=%s", T);
  cl_kernel k;
  LU_TRY(lu_kernel_get(seg->dev, "dsdown/dsdown.cl", "ds_nearest", opts, &k));
  cl_mem mo = out->buf, mi = seg->buf;
  cl_long iz = is[0], iy = is[1], ix = is[2], oz = os[0], oy = os[1], ox = os[2];
  cl_float sz = (float)is[0] / (float)os[0], sy = (float)is[1] / (float)os[1], sx = (float)is[2] / (float)os[2];
  LU_CL_CHECK(LU_ARG(k, 0, mo) | LU_ARG(k, 1, mi) | LU_ARG(k, 2, iz) | LU_ARG(k, 3, iy) | LU_ARG(k, 4, ix) |
                  LU_ARG(k, 5, oz) | LU_ARG(k, 6, oy) | LU_ARG(k, 7, ox) | LU_ARG(k, 8, sz) | LU_ARG(k, 9, sy) |
                  LU_ARG(k, 10, sx),
              "%s args", op);
  size_t g[3] = {(size_t)ox, (size_t)oy, (size_t)(nc * oz)};
  return lu_launch(seg->dev, k, 3, g, NULL, op);
}
