/* Channel concat / split for skip connections: one slice-copy kernel (kernels/concat/concat.cl). */
#include "cl/program.h"
#include "ops/nn.h"

lu_status lu_copy_channels(lu_tensor *dst, int64_t dst_c0, const lu_tensor *src, int64_t src_c0, int64_t nc,
                           int accumulate) {
  /* float32 or float16 storage, both alike */
  LU_TRY(lu_check_act_tensor(dst, "copy_channels", "dst"));
  LU_TRY(lu_check_device_tensor(src, dst->dtype, "copy_channels", "src"));
  int64_t dn = 0, dc = 0, ds = 0, sn = 0, sc = 0, ss = 0;
  LU_TRY(lu_shape_ncs(dst, "copy_channels", "dst", &dn, &dc, &ds));
  LU_TRY(lu_shape_ncs(src, "copy_channels", "src", &sn, &sc, &ss));
  char a[96], b[96];
  if (dn != sn || ds != ss || dst->dev != src->dev)
    return lu_fail(LU_EARG, "copy_channels: dst %s and src %s differ in batch or spatial size%s",
                   lu_shape_str(dst->ndim, dst->shape, a, sizeof a), lu_shape_str(src->ndim, src->shape, b, sizeof b),
                   dst->dev != src->dev ? " or device" : "");
  if (nc < 0 || dst_c0 < 0 || src_c0 < 0 || dst_c0 + nc > dc || src_c0 + nc > sc)
    return lu_fail(LU_EARG, "copy_channels: channels [%lld, +%lld) of src %s into [%lld, +%lld) of dst %s out of range",
                   (long long)src_c0, (long long)nc, lu_shape_str(src->ndim, src->shape, b, sizeof b), (long long)dst_c0,
                   (long long)nc, lu_shape_str(dst->ndim, dst->shape, a, sizeof a));
  if (nc == 0 || dn == 0 || ds == 0) return LU_OK;
  cl_kernel k;
  int half = dst->dtype == LU_F16;
  int v4 = ds % 4 == 0 && !half; /* float4 loads/stores when rows stay 16-byte aligned */
  LU_TRY(lu_kernel_get(dst->dev, "concat/concat.cl", v4 ? "copy_channels4" : "copy_channels", half ? "-DHALF=1" : NULL,
                       &k));
  cl_mem md = dst->buf, ms = src->buf;
  if (v4) ds /= 4;
  cl_ulong udc = (cl_ulong)dc, udc0 = (cl_ulong)dst_c0, usc = (cl_ulong)sc, usc0 = (cl_ulong)src_c0, us = (cl_ulong)ds;
  cl_int acc = accumulate ? 1 : 0;
  LU_CL_CHECK(LU_ARG(k, 0, md) | LU_ARG(k, 1, udc) | LU_ARG(k, 2, udc0) | LU_ARG(k, 3, ms) | LU_ARG(k, 4, usc) |
                  LU_ARG(k, 5, usc0) | LU_ARG(k, 6, us) | LU_ARG(k, 7, acc),
              "copy_channels args");
  size_t wg = ds >= 256 ? 256 : 0;
  size_t g[3] = {wg ? lu_global_1d((size_t)ds, wg) : (size_t)ds, (size_t)nc, (size_t)dn}, l[3] = {wg, 1, 1};
  return lu_launch(dst->dev, k, 3, g, wg ? l : NULL, "copy_channels");
}

lu_status lu_concat_channels(lu_tensor *out, const lu_tensor *a, const lu_tensor *b) {
  LU_TRY(lu_check_act_tensor(out, "concat", "out"));
  LU_TRY(lu_check_device_tensor(a, out->dtype, "concat", "a"));
  LU_TRY(lu_check_device_tensor(b, out->dtype, "concat", "b"));
  int64_t on = 0, oc = 0, os = 0, an = 0, ac = 0, as = 0, bn = 0, bc = 0, bs = 0;
  LU_TRY(lu_shape_ncs(out, "concat", "out", &on, &oc, &os));
  LU_TRY(lu_shape_ncs(a, "concat", "a", &an, &ac, &as));
  LU_TRY(lu_shape_ncs(b, "concat", "b", &bn, &bc, &bs));
  if (oc != ac + bc) {
    char s1[96], s2[96], s3[96];
    return lu_fail(LU_EARG, "concat: out %s cannot hold a %s and b %s along channels",
                   lu_shape_str(out->ndim, out->shape, s1, sizeof s1), lu_shape_str(a->ndim, a->shape, s2, sizeof s2),
                   lu_shape_str(b->ndim, b->shape, s3, sizeof s3));
  }
  LU_TRY(lu_copy_channels(out, 0, a, 0, ac, 0));
  return lu_copy_channels(out, ac, b, 0, bc, 0);
}

lu_status lu_split_channels(const lu_tensor *in, lu_tensor *da, lu_tensor *db, int accumulate) {
  LU_TRY(lu_check_act_tensor(in, "split", "in"));
  int64_t n = 0, c = 0, s = 0, ac = 0, bc = 0, t1 = 0, t2 = 0;
  LU_TRY(lu_shape_ncs(in, "split", "in", &n, &c, &s));
  if (da) { LU_TRY(lu_check_device_tensor(da, in->dtype, "split", "da")); LU_TRY(lu_shape_ncs(da, "split", "da", &t1, &ac, &t2)); }
  if (db) { LU_TRY(lu_check_device_tensor(db, in->dtype, "split", "db")); LU_TRY(lu_shape_ncs(db, "split", "db", &t1, &bc, &t2)); }
  if (!da && db) ac = c - bc;
  if (ac + (db ? bc : c - ac) != c) {
    char s1[96];
    return lu_fail(LU_EARG, "split: channels of da (%lld) and db (%lld) do not add up to in %s", (long long)ac,
                   (long long)bc, lu_shape_str(in->ndim, in->shape, s1, sizeof s1));
  }
  if (da) LU_TRY(lu_copy_channels(da, 0, in, 0, ac, accumulate));
  if (db) LU_TRY(lu_copy_channels(db, 0, in, ac, bc, accumulate));
  return LU_OK;
}
