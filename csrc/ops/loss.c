/* Softmax family and nnU-Net's compound losses (DC_and_CE, DC_and_BCE) fused with the gradient of
 * the logits (kernels/loss/). Three device passes; the (small) per-group Dice sums are finished on
 * the host in double. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cl/pool.h"
#include "cl/profile.h"
#include "cl/program.h"
#include "cl/tunables.h"
#include "ops/nn.h"

/* Work-group size: tunable loss.wg (PoCL measured 64 faster than 256), capped by the device. */
static size_t loss_wg(const lu_device *dev) {
  int t = lu_tune(dev, LU_TUNE_LOSS_WG);
  size_t wg = t > 0 ? (size_t)t : 64;
  while (wg > 1 && wg > dev->max_wg) wg >>= 1;
  return wg;
}

/* Voxels per work-item: 8 in float8 on CPU devices (PoCL then emits vector exp/log) when S allows it;
 * tunable loss.vw = 1 forces scalars. */
static int loss_vw(const lu_device *dev, int64_t S) {
  int vw = lu_tune_or(dev, LU_TUNE_LOSS_VW, lu_tune_cpu(dev) ? 8 : 1);
  return vw == 8 && S % 8 == 0 ? 8 : 1;
}

/* ---- softmax family ---- */

static lu_status softmax_like(const char *op, const char *kname, int log_out, lu_tensor *y, const lu_tensor *a,
                              const lu_tensor *b) {
  LU_TRY(lu_check_device_tensor(y, LU_F32, op, "out"));
  LU_TRY(lu_check_device_tensor(a, LU_F32, op, "in"));
  if (b) LU_TRY(lu_check_device_tensor(b, LU_F32, op, "dy"));
  int64_t N = 0, C = 0, S = 0;
  LU_TRY(lu_shape_ncs(a, op, "in", &N, &C, &S));
  if (lu_tensor_numel(y) != N * C * S || (b && lu_tensor_numel(b) != N * C * S) || y->dev != a->dev ||
      (b && b->dev != a->dev)) {
    char s1[96], s2[96];
    return lu_fail(LU_EARG, "%s: out %s does not match in %s (or another argument differs)", op,
                   lu_shape_str(y->ndim, y->shape, s1, sizeof s1), lu_shape_str(a->ndim, a->shape, s2, sizeof s2));
  }
  if (N * C * S == 0) return LU_OK;
  cl_kernel k;
  int64_t vw = loss_vw(a->dev, S);
  LU_TRY(lu_kernel_get(a->dev, "loss/softmax.cl", kname, vw == 8 ? "-DVW=8" : NULL, &k));
  S /= vw; /* work-items along S */
  cl_mem my = y->buf, ma = a->buf;
  cl_ulong c = (cl_ulong)C, s = (cl_ulong)(S * vw);
  cl_int lo = log_out;
  cl_int e;
  if (b) {
    cl_mem mb = b->buf;
    e = LU_ARG(k, 0, my) | LU_ARG(k, 1, ma) | LU_ARG(k, 2, mb) | LU_ARG(k, 3, c) | LU_ARG(k, 4, s) | LU_ARG(k, 5, lo);
  } else {
    e = LU_ARG(k, 0, my) | LU_ARG(k, 1, ma) | LU_ARG(k, 2, c) | LU_ARG(k, 3, s) | LU_ARG(k, 4, lo);
  }
  if (e != CL_SUCCESS) return lu_fail(LU_ECL, "%s (%s args)", lu_cl_errname(e), op);
  size_t wg = S >= 64 ? 64 : 0;
  size_t g[2] = {wg ? lu_global_1d((size_t)S, wg) : (size_t)S, (size_t)N}, l[2] = {wg, 1};
  return lu_launch(a->dev, k, 2, g, wg ? l : NULL, op);
}

lu_status lu_softmax_fwd(lu_tensor *y, const lu_tensor *x) { return softmax_like("softmax", "softmax_fwd", 0, y, x, NULL); }
lu_status lu_log_softmax_fwd(lu_tensor *y, const lu_tensor *x) {
  return softmax_like("log_softmax", "softmax_fwd", 1, y, x, NULL);
}
lu_status lu_softmax_bwd(lu_tensor *dx, const lu_tensor *y, const lu_tensor *dy) {
  return softmax_like("softmax_bwd", "softmax_bwd", 0, dx, y, dy);
}
lu_status lu_log_softmax_bwd(lu_tensor *dx, const lu_tensor *y, const lu_tensor *dy) {
  return softmax_like("log_softmax_bwd", "softmax_bwd", 1, dx, y, dy);
}

/* ---- losses ---- */

void lu_loss_opts_default(lu_loss_opts *o) {
  o->regions = 0;
  o->batch_dice = 0;
  o->do_bg = 0;
  o->has_ignore = 0;
  o->ignore_label = 0;
  o->smooth = 1e-5f;
  o->weight_ce = 1.0f;
  o->weight_dice = 1.0f;
  o->scale = 1.0f;
  o->reduce_sums = NULL;
  o->reduce_ranks = 1;
  o->grad_scale = NULL;
  o->device_acc = NULL;
}

typedef struct loss_ctx {
  lu_device *dev;
  cl_mem P, part1, part2, coef;
  size_t P_bytes, p1_bytes, p2_bytes, coef_bytes;
  int own_P;
  float *h1, *h2, *hcoef;
} loss_ctx;

static void ctx_free(loss_ctx *c) {
  if (c->own_P && c->P) lu_buffer_release(c->dev, c->P, c->P_bytes);
  if (c->part1) lu_buffer_release(c->dev, c->part1, c->p1_bytes);
  if (c->part2) lu_buffer_release(c->dev, c->part2, c->p2_bytes);
  if (c->coef) lu_buffer_release(c->dev, c->coef, c->coef_bytes);
  free(c->h1);
  free(c->h2);
  free(c->hcoef);
}

/* Pass 3: the gradient in place on P from the coefficients in cx->coef (the host's or loss_finish's; ce_k is
 * the float after the 2 N C coefficients). */
static lu_status grad_pass(loss_ctx *cx, cl_kernel k3, const lu_loss_opts *o, cl_mem mt, cl_ulong c, cl_ulong s,
                           cl_ulong tc, cl_int ign, cl_int has_ign, int64_t SV, int64_t N, int64_t C) {
  const char *op = o->regions ? "dc_bce_loss" : "dc_ce_loss";
  lu_device *dev = cx->dev;
  cl_mem gsc = (cl_mem)o->grad_scale;
  if (gsc) LU_CL_CHECK(LU_ARG(k3, 8, gsc), "%s grad scale arg", op);
  cl_ulong cek = (cl_ulong)(N * C) * 2;
  size_t wg3 = SV >= 64 ? 64 : 0;
  size_t gs = wg3 ? lu_global_1d((size_t)SV, wg3) : (size_t)SV;
  if (o->regions) {
    LU_CL_CHECK(LU_ARG(k3, 0, cx->P) | LU_ARG(k3, 1, mt) | LU_ARG(k3, 2, cx->coef) | LU_ARG(k3, 3, cek) |
                    LU_ARG(k3, 4, c) | LU_ARG(k3, 5, s) | LU_ARG(k3, 6, tc) | LU_ARG(k3, 7, has_ign),
                "%s grad args", op);
    size_t g3[3] = {gs, (size_t)C, (size_t)N}, l3[3] = {wg3, 1, 1};
    return lu_launch(dev, k3, 3, g3, wg3 ? l3 : NULL, op);
  }
  LU_CL_CHECK(LU_ARG(k3, 0, cx->P) | LU_ARG(k3, 1, mt) | LU_ARG(k3, 2, cx->coef) | LU_ARG(k3, 3, cek) |
                  LU_ARG(k3, 4, c) | LU_ARG(k3, 5, s) | LU_ARG(k3, 6, ign) | LU_ARG(k3, 7, has_ign),
              "%s grad args", op);
  size_t g3[2] = {gs, (size_t)N}, l3[2] = {wg3, 1};
  return lu_launch(dev, k3, 2, g3, wg3 ? l3 : NULL, op);
}

/* The kernels read the target as TGT and convert to float; uint8 lets a training batch upload its labels in a
 * quarter of int32's bytes (every nnU-Net label and ignore value up to 255). */
static const char *target_type(lu_dtype d) { return d == LU_I32 ? "int" : d == LU_U8 ? "uchar" : "float"; }

static lu_status loss_run(loss_ctx *cx, const lu_tensor *logits, const lu_tensor *target, const lu_loss_opts *o,
                          double *loss_value, lu_tensor *dlogits, lu_loss_terms *terms) {
  const char *op = o->regions ? "dc_bce_loss" : "dc_ce_loss";
  /* float16 logits (mixed precision) are read as float; the probabilities and dlogits stay float32 */
  LU_TRY(lu_check_act_tensor(logits, op, "logits"));
  if (!target || !target->buf) return lu_fail(LU_EARG, "%s: target must be a device tensor", op);
  if (target->dtype != LU_I32 && target->dtype != LU_F32 && target->dtype != LU_U8)
    return lu_fail(LU_EARG, "%s: target has dtype %s, expected uint8, int32 or float32", op,
                   lu_dtype_name(target->dtype));
  int64_t N = 0, C = 0, S = 0, TN = 0, TC = 0, TS = 0;
  LU_TRY(lu_shape_ncs(logits, op, "logits", &N, &C, &S));
  LU_TRY(lu_shape_ncs(target, op, "target", &TN, &TC, &TS));
  int64_t want_tc = o->regions ? C + (o->has_ignore ? 1 : 0) : 1;
  char s1[96], s2[96];
  lu_shape_str(logits->ndim, logits->shape, s1, sizeof s1);
  lu_shape_str(target->ndim, target->shape, s2, sizeof s2);
  if (TN != N || TS != S || TC != want_tc || target->dev != logits->dev)
    return lu_fail(LU_EARG, "%s: target %s does not fit logits %s (expected %lld target channel%s%s)", op, s2, s1,
                   (long long)want_tc, want_tc == 1 ? "" : "s",
                   o->regions && o->has_ignore ? ": regions plus the ignore mask" : "");
  if (dlogits) {
    LU_TRY(lu_check_device_tensor(dlogits, LU_F32, op, "dlogits"));
    if (lu_tensor_numel(dlogits) != N * C * S || dlogits->dev != logits->dev)
      return lu_fail(LU_EARG, "%s: dlogits %s does not match logits %s", op,
                     lu_shape_str(dlogits->ndim, dlogits->shape, s2, sizeof s2), s1);
    if (dlogits->buf == logits->buf) return lu_fail(LU_EARG, "%s: dlogits must not alias logits", op);
  }
  if (N * C * S == 0) return lu_fail(LU_EARG, "%s: empty logits %s", op, s1);
  lu_device *dev = logits->dev;
  cx->dev = dev;
  size_t wg = loss_wg(dev);
  size_t vw = (size_t)loss_vw(dev, S);
  char opts[96];
  snprintf(opts, sizeof opts, "-DWG=%zu -DVW=%zu -DTGT=%s%s%s", wg, vw, target_type(target->dtype),
           o->grad_scale ? " -DGSCALE=1" : "", logits->dtype == LU_F16 ? " -DHALF=1" : "");
  cl_kernel k1, k2, k3;
  LU_TRY(lu_kernel_get(dev, "loss/loss.cl", o->regions ? "probs_sigmoid" : "probs_softmax", opts, &k1));
  LU_TRY(lu_kernel_get(dev, "loss/loss.cl", "dice_stats", opts, &k2));
  LU_TRY(lu_kernel_get(dev, "loss/loss.cl", o->regions ? "grad_sigmoid" : "grad_softmax", opts, &k3));

  if (dlogits) cx->P = dlogits->buf;
  else {
    cx->P_bytes = (size_t)(N * C * S) * sizeof(float);
    LU_TRY(lu_buffer_alloc(dev, cx->P_bytes, &cx->P));
    cx->own_P = 1;
  }
  int64_t SV = S / (int64_t)vw; /* work-items along S */
  size_t G0 = (size_t)((SV + (int64_t)wg - 1) / (int64_t)wg);
  cx->p1_bytes = G0 * (size_t)N * 2 * sizeof(float);
  LU_TRY(lu_buffer_alloc(dev, cx->p1_bytes, &cx->part1));
  size_t CH = (size_t)((SV + (int64_t)wg * 16 - 1) / ((int64_t)wg * 16));
  if (CH > 64) CH = 64;
  if (CH < 1) CH = 1;
  /* voxels per chunk, a multiple of vw */
  cl_ulong per = (cl_ulong)(((S + (int64_t)CH - 1) / (int64_t)CH + (int64_t)vw - 1) / (int64_t)vw * (int64_t)vw);
  cx->p2_bytes = (size_t)(N * C) * CH * 3 * sizeof(float);
  LU_TRY(lu_buffer_alloc(dev, cx->p2_bytes, &cx->part2));

  cl_mem mz = logits->buf, mt = target->buf;
  cl_ulong c = (cl_ulong)C, s = (cl_ulong)S, tc = (cl_ulong)TC;
  cl_int ign = o->ignore_label, has_ign = o->has_ignore ? 1 : 0, reg = o->regions ? 1 : 0;
  /* pass 1: probabilities and CE/BCE partial sums */
  if (o->regions)
    LU_CL_CHECK(LU_ARG(k1, 0, mz) | LU_ARG(k1, 1, mt) | LU_ARG(k1, 2, cx->P) | LU_ARG(k1, 3, cx->part1) |
                    LU_ARG(k1, 4, c) | LU_ARG(k1, 5, s) | LU_ARG(k1, 6, tc) | LU_ARG(k1, 7, has_ign),
                "%s probs args", op);
  else
    LU_CL_CHECK(LU_ARG(k1, 0, mz) | LU_ARG(k1, 1, mt) | LU_ARG(k1, 2, cx->P) | LU_ARG(k1, 3, cx->part1) |
                    LU_ARG(k1, 4, c) | LU_ARG(k1, 5, s) | LU_ARG(k1, 6, ign) | LU_ARG(k1, 7, has_ign),
                "%s probs args", op);
  size_t g1[2] = {G0 * wg, (size_t)N}, l1[2] = {wg, 1};
  LU_TRY(lu_launch(dev, k1, 2, g1, l1, op));
  /* pass 2: Dice sums */
  LU_CL_CHECK(LU_ARG(k2, 0, cx->P) | LU_ARG(k2, 1, mt) | LU_ARG(k2, 2, cx->part2) | LU_ARG(k2, 3, c) |
                  LU_ARG(k2, 4, s) | LU_ARG(k2, 5, tc) | LU_ARG(k2, 6, ign) | LU_ARG(k2, 7, per) |
                  LU_ARG(k2, 8, has_ign) | LU_ARG(k2, 9, reg),
              "%s dice args", op);
  size_t g2[3] = {CH * wg, (size_t)C, (size_t)N}, l2[3] = {wg, 1, 1};
  LU_TRY(lu_launch(dev, k2, 3, g2, l2, op));

  cx->coef_bytes = ((size_t)(N * C) * 2 + 1) * sizeof(float); /* + ce_k in the last slot */
  if (o->device_acc && !o->reduce_sums) {
    /* pass 2b: the finish on the device, one work-group; pass 3 reads the coefficients it wrote */
    cl_kernel kf;
    LU_TRY(lu_kernel_get(dev, "loss/loss.cl", "loss_finish", opts, &kf));
    LU_TRY(lu_buffer_alloc(dev, cx->coef_bytes, &cx->coef));
    cl_mem acc = (cl_mem)o->device_acc;
    cl_ulong n1 = (cl_ulong)(G0 * (size_t)N), nn = (cl_ulong)N, ch = (cl_ulong)CH, ncs = (cl_ulong)(N * C * S);
    cl_int dobg = o->do_bg ? 1 : 0, bd = o->batch_dice ? 1 : 0;
    cl_float sc = o->scale, wce = o->weight_ce, wdc = o->weight_dice, sm = o->smooth;
    LU_CL_CHECK(LU_ARG(kf, 0, cx->part1) | LU_ARG(kf, 1, n1) | LU_ARG(kf, 2, cx->part2) | LU_ARG(kf, 3, nn) |
                    LU_ARG(kf, 4, c) | LU_ARG(kf, 5, ch) | LU_ARG(kf, 6, reg) | LU_ARG(kf, 7, has_ign) |
                    LU_ARG(kf, 8, dobg) | LU_ARG(kf, 9, bd) | LU_ARG(kf, 10, ncs) | LU_ARG(kf, 11, sc) |
                    LU_ARG(kf, 12, wce) | LU_ARG(kf, 13, wdc) | LU_ARG(kf, 14, sm) | LU_ARG(kf, 15, cx->coef) |
                    LU_ARG(kf, 16, acc),
                "%s finish args", op);
    LU_TRY(lu_launch(dev, kf, 1, &wg, &wg, op));
    if (!dlogits) return LU_OK;
    return grad_pass(cx, k3, o, mt, c, s, tc, ign, has_ign, SV, N, C);
  }

  cx->h1 = malloc(cx->p1_bytes);
  cx->h2 = malloc(cx->p2_bytes);
  if (!cx->h1 || !cx->h2) return lu_fail(LU_ENOMEM, "%s: host partial sums", op);
  LU_CL_CHECK(clEnqueueReadBuffer(dev->queue, cx->part1, CL_FALSE, 0, cx->p1_bytes, cx->h1, 0, NULL, NULL),
              "%s: reading partial sums", op);
  lu_note_host_wait("loss: host finish");
  LU_CL_CHECK(clEnqueueReadBuffer(dev->queue, cx->part2, CL_TRUE, 0, cx->p2_bytes, cx->h2, 0, NULL, NULL),
              "%s: reading Dice sums", op);

  /* CE / BCE */
  double ce_sum = 0.0, cnt = 0.0;
  for (size_t i = 0; i < G0 * (size_t)N; i++) { ce_sum += cx->h1[2 * i]; cnt += cx->h1[2 * i + 1]; }
  double den;
  if (o->regions) den = o->has_ignore ? fmax(cnt, 1e-8) : (double)(N * C * S);
  else den = cnt;
  double ce = den > 0 ? ce_sum / den : 0.0;
  double ce_k = den > 0 ? (double)o->scale * o->weight_ce / den : 0.0;

  /* Dice: I, P, G per (n, c), then per group */
  int c0 = o->do_bg ? 0 : 1;
  int64_t ncls = C - c0;
  int64_t ngroups = o->batch_dice ? ncls : N * ncls;
  double *I = calloc((size_t)(N * C) * 3, sizeof(double));
  if (!I) return lu_fail(LU_ENOMEM, "%s: Dice sums", op);
  for (int64_t r = 0; r < N * C; r++)
    for (size_t h = 0; h < CH; h++)
      for (int q = 0; q < 3; q++) I[r * 3 + q] += cx->h2[((size_t)r * CH + h) * 3 + q];
  double dsum = 0.0;
  cx->hcoef = calloc((size_t)(N * C) * 2 + 1, sizeof(float));
  if (!cx->hcoef) { free(I); return lu_fail(LU_ENOMEM, "%s: coefficients", op); }
  double kw = ngroups > 0 ? (double)o->scale * o->weight_dice / (double)ngroups : 0.0;
  double kg = kw; /* the gradient's factor: times the ranks when the batch Dice is reduced over ranks */
  if (o->batch_dice && o->reduce_sums && ncls > 0) {
    /* the batch's sums per class, reduced over the ranks, stored back into sample 0's slots */
    double *R = calloc((size_t)ncls * 3, sizeof(double));
    if (!R) { free(I); return lu_fail(LU_ENOMEM, "%s: Dice sums", op); }
    for (int64_t ci = c0; ci < C; ci++)
      for (int64_t n = 0; n < N; n++)
        for (int q = 0; q < 3; q++) R[(ci - c0) * 3 + q] += I[(n * C + ci) * 3 + q];
    lu_status rs = o->reduce_sums(R, (size_t)ncls * 3);
    for (int64_t ci = c0; ci < C && rs == LU_OK; ci++)
      for (int64_t n = 0; n < N; n++)
        for (int q = 0; q < 3; q++) I[(n * C + ci) * 3 + q] = n == 0 ? R[(ci - c0) * 3 + q] : 0.0;
    free(R);
    if (rs != LU_OK) { free(I); return rs; }
    kg = kw * (double)(o->reduce_ranks > 0 ? o->reduce_ranks : 1);
  }
  for (int64_t ci = c0; ci < C; ci++) {
    int64_t nb = o->batch_dice ? 1 : N;
    for (int64_t gn = 0; gn < nb; gn++) {
      double si = 0, sp = 0, sg = 0;
      for (int64_t n = (o->batch_dice ? 0 : gn); n < (o->batch_dice ? N : gn + 1); n++) {
        si += I[(n * C + ci) * 3];
        sp += I[(n * C + ci) * 3 + 1];
        sg += I[(n * C + ci) * 3 + 2];
      }
      double d = sg + sp + (double)o->smooth, dc;
      int clipped = d < 1e-8;
      if (clipped) d = 1e-8;
      dc = (2.0 * si + (double)o->smooth) / d;
      dsum += dc;
      double A = -kg * 2.0 / d, B = clipped ? 0.0 : kg * dc / d;
      for (int64_t n = (o->batch_dice ? 0 : gn); n < (o->batch_dice ? N : gn + 1); n++) {
        cx->hcoef[(n * C + ci) * 2] = (float)A;
        cx->hcoef[(n * C + ci) * 2 + 1] = (float)B;
      }
    }
  }
  free(I);
  double dice = ngroups > 0 ? -dsum / (double)ngroups : 0.0;
  double loss = (double)o->weight_ce * ce + (double)o->weight_dice * dice;
  if (terms) { terms->ce = ce; terms->dice = dice; terms->loss = loss; terms->n_valid = den; }
  if (loss_value) *loss_value = (double)o->scale * loss;
  if (!dlogits) return LU_OK;

  /* pass 3: gradient in place on P */
  cx->hcoef[(size_t)(N * C) * 2] = (float)ce_k;
  LU_TRY(lu_buffer_alloc(dev, cx->coef_bytes, &cx->coef));
  lu_note_host_wait("loss: coefficients");
  LU_CL_CHECK(clEnqueueWriteBuffer(dev->queue, cx->coef, CL_TRUE, 0, cx->coef_bytes, cx->hcoef, 0, NULL, NULL),
              "%s: writing coefficients", op);
  return grad_pass(cx, k3, o, mt, c, s, tc, ign, has_ign, SV, N, C);
}

lu_status lu_dc_ce_loss_terms(const lu_tensor *logits, const lu_tensor *target, const lu_loss_opts *opts,
                              double *loss_value, lu_tensor *dlogits, lu_loss_terms *terms) {
  lu_loss_opts def;
  if (!opts) { lu_loss_opts_default(&def); opts = &def; }
  loss_ctx cx = {0};
  lu_status st = loss_run(&cx, logits, target, opts, loss_value, dlogits, terms);
  /* buffers go back to the pool: later users are ordered after this work by the in-order queue */
  if (cx.dev) ctx_free(&cx);
  else { free(cx.h1); free(cx.h2); free(cx.hcoef); }
  return st;
}

lu_status lu_dc_ce_loss(const lu_tensor *logits, const lu_tensor *target, const lu_loss_opts *opts, double *loss_value,
                        lu_tensor *dlogits) {
  return lu_dc_ce_loss_terms(logits, target, opts, loss_value, dlogits, NULL);
}
