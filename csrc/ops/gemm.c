#include "cl/blas.h"
#include "ops/ops.h"

lu_status lu_gemm(lu_tensor *c, const lu_tensor *a, const lu_tensor *b, int trans_a, int trans_b, float alpha,
                  float beta) {
  LU_TRY(lu_check_device_tensor(a, LU_F32, "gemm", "A"));
  LU_TRY(lu_check_device_tensor(b, LU_F32, "gemm", "B"));
  LU_TRY(lu_check_device_tensor(c, LU_F32, "gemm", "C"));
  char sa[64], sb[64], sc[64];
  int nd = a->ndim;
  if ((nd != 2 && nd != 3) || b->ndim != nd || c->ndim != nd || a->dev != b->dev || a->dev != c->dev)
    return lu_fail(LU_EARG, "gemm: A %s, B %s, C %s must all be 2-D (or all 3-D, batched) on one device",
                   lu_shape_str(a->ndim, a->shape, sa, 64), lu_shape_str(b->ndim, b->shape, sb, 64),
                   lu_shape_str(c->ndim, c->shape, sc, 64));
  int o = nd - 2;
  size_t batch = nd == 3 ? (size_t)a->shape[0] : 1;
  size_t ar = (size_t)a->shape[o], ac = (size_t)a->shape[o + 1], br = (size_t)b->shape[o], bc = (size_t)b->shape[o + 1];
  size_t m = trans_a ? ac : ar, k = trans_a ? ar : ac, kb = trans_b ? bc : br, n = trans_b ? br : bc;
  if (k != kb || (size_t)c->shape[o] != m || (size_t)c->shape[o + 1] != n ||
      (nd == 3 && ((size_t)b->shape[0] != batch || (size_t)c->shape[0] != batch)))
    return lu_fail(LU_EARG, "gemm: shapes do not agree: A %s%s, B %s%s, C %s",
                   lu_shape_str(a->ndim, a->shape, sa, 64), trans_a ? "^T" : "", lu_shape_str(b->ndim, b->shape, sb, 64),
                   trans_b ? "^T" : "", lu_shape_str(c->ndim, c->shape, sc, 64));
  lu_status st;
  if (nd == 2)
    st = lu_sgemm(a->dev, trans_a, trans_b, m, n, k, alpha, a->buf, 0, ac, b->buf, 0, bc, beta, c->buf, 0, n);
  else
    st = lu_sgemm_strided_batched(a->dev, trans_a, trans_b, m, n, k, alpha, a->buf, 0, ac, ar * ac, b->buf, 0, bc,
                                  br * bc, beta, c->buf, 0, n, m * n, batch);
  if (st != LU_OK)
    return lu_fail_context(st, "gemm A %s%s B %s%s C %s", lu_shape_str(a->ndim, a->shape, sa, 64), trans_a ? "^T" : "",
                           lu_shape_str(b->ndim, b->shape, sb, 64), trans_b ? "^T" : "",
                           lu_shape_str(c->ndim, c->shape, sc, 64));
  return LU_OK;
}
