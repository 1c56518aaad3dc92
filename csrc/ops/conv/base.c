/* The convolutions' shared base: descriptors and shapes, argument checks and the normalised geometry,
 * bias fill and gradient, the workspace tiler with the one tiled-GEMM loop, and the build options and
 * buffers (padded copies, packed weights) that the direct strategies share. */
#include "ops/conv/base.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl/blas.h"
#include "cl/pool.h"
#include "ops/ops.h"

lu_status lu_conv_desc_check(const lu_conv_desc *d) {
  if (!d || (d->nsp != 2 && d->nsp != 3))
    return lu_fail(LU_EARG, "conv: descriptor needs nsp = 2 or 3 (got %d)", d ? d->nsp : -1);
  for (int i = 0; i < d->nsp; i++)
    if (d->k[i] < 1 || d->stride[i] < 1 || d->pad[i] < 0 || d->pad[i] >= d->k[i])
      return lu_fail(LU_EARG, "conv: axis %d has kernel %d, stride %d, pad %d (need k >= 1, stride >= 1, 0 <= pad < k)",
                     i, d->k[i], d->stride[i], d->pad[i]);
  return LU_OK;
}

lu_status lu_conv_desc_init(lu_conv_desc *d, int nsp, const int *k, const int *stride) {
  d->nsp = nsp;
  for (int i = 0; i < 3; i++) {
    d->k[i] = i < nsp ? k[i] : 1;
    d->stride[i] = i < nsp && stride ? stride[i] : 1;
    d->pad[i] = (d->k[i] - 1) / 2;
  }
  return lu_conv_desc_check(d);
}

lu_status lu_convT_desc_init(lu_conv_desc *d, int nsp, const int *stride) {
  d->nsp = nsp;
  for (int i = 0; i < 3; i++) {
    d->stride[i] = i < nsp ? stride[i] : 1;
    d->k[i] = d->stride[i];
    d->pad[i] = 0;
  }
  return lu_conv_desc_check(d);
}

lu_status lu_conv_out_shape(const lu_conv_desc *d, const int64_t *xs, int64_t cout, int64_t *ys) {
  LU_TRY(lu_conv_desc_check(d));
  ys[0] = xs[0];
  ys[1] = cout;
  for (int i = 0; i < d->nsp; i++) {
    int64_t e = xs[2 + i] + 2 * d->pad[i] - d->k[i];
    if (e < 0) return lu_fail(LU_EARG, "conv: spatial axis %d of size %lld is smaller than kernel %d (pad %d)", i,
                              (long long)xs[2 + i], d->k[i], d->pad[i]);
    ys[2 + i] = e / d->stride[i] + 1;
  }
  return LU_OK;
}

void lu_conv_weight_shape(const lu_conv_desc *d, int64_t cin, int64_t cout, int64_t *ws) {
  ws[0] = cout;
  ws[1] = cin;
  for (int i = 0; i < d->nsp; i++) ws[2 + i] = d->k[i];
}

lu_status lu_convT_out_shape(const lu_conv_desc *d, const int64_t *xs, int64_t cout, int64_t *ys) {
  LU_TRY(lu_conv_desc_check(d));
  ys[0] = xs[0];
  ys[1] = cout;
  for (int i = 0; i < d->nsp; i++) {
    if (d->k[i] != d->stride[i] || d->pad[i] != 0)
      return lu_fail(LU_EUNSUPPORTED, "convT: axis %d has kernel %d, stride %d, pad %d; only kernel == stride, pad 0",
                     i, d->k[i], d->stride[i], d->pad[i]);
    ys[2 + i] = xs[2 + i] * d->stride[i];
  }
  return LU_OK;
}

void lu_convT_weight_shape(const lu_conv_desc *d, int64_t cin, int64_t cout, int64_t *ws) {
  ws[0] = cin;
  ws[1] = cout;
  for (int i = 0; i < d->nsp; i++) ws[2 + i] = d->k[i];
}

double lu_conv_flops(const lu_conv_desc *d, const int64_t *xs, int64_t cout) {
  int64_t ys[5];
  if (lu_conv_out_shape(d, xs, cout, ys) != LU_OK) return 0;
  double f = 2.0 * (double)ys[0] * (double)cout * (double)xs[1];
  for (int i = 0; i < d->nsp; i++) f *= (double)ys[2 + i] * d->k[i];
  return f;
}

double lu_convT_flops(const lu_conv_desc *d, const int64_t *xs, int64_t cout) {
  double f = 2.0 * (double)xs[0] * (double)cout * (double)xs[1];
  for (int i = 0; i < d->nsp; i++) f *= (double)xs[2 + i] * d->k[i];
  return f;
}

/* ---- normalised geometry and checks ---- */

void lu_conv_geom_from(const lu_conv_desc *d, const int64_t *xs, const int64_t *ys, lu_conv_geom *g) {
  int o = 3 - d->nsp;
  g->N = (int)xs[0];
  g->Cin = (int)xs[1];
  g->Cout = (int)ys[1];
  int *in[3] = {&g->Z, &g->Y, &g->X}, *out[3] = {&g->OZ, &g->OY, &g->OX};
  for (int i = 0; i < 3; i++) {
    int a = i - o;
    *in[i] = a >= 0 ? (int)xs[2 + a] : 1;
    *out[i] = a >= 0 ? (int)ys[2 + a] : 1;
    g->k[i] = a >= 0 ? d->k[a] : 1;
    g->s[i] = a >= 0 ? d->stride[a] : 1;
    g->p[i] = a >= 0 ? d->pad[a] : 0;
  }
  g->S = (int64_t)g->Z * g->Y * g->X;
  g->OS = (int64_t)g->OZ * g->OY * g->OX;
  g->kv = g->k[0] * g->k[1] * g->k[2];
}

/* act: an activation, which may be float16 */
static lu_status check_tensor(const char *op, const char *arg, const lu_tensor *t, lu_device *dev, int ndim,
                              const int64_t *shape, int act) {
  LU_TRY(act ? lu_check_act_tensor(t, op, arg) : lu_check_device_tensor(t, LU_F32, op, arg));
  int ok = t->dev == dev && t->ndim == ndim;
  for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
  if (ok) return LU_OK;
  char a[96], b[96];
  return lu_fail(LU_EARG, "%s: %s has shape %s, expected %s%s", op, arg, lu_shape_str(t->ndim, t->shape, a, sizeof a),
                 lu_shape_str(ndim, shape, b, sizeof b), t->dev != dev ? " (or lives on another device)" : "");
}

/* Checks x, w, (b), y of a conv (transposed = 0) or convT (transposed = 1) and derives geometry.
 * x is the input-side tensor, y the output-side tensor, as in the forward pass. */
lu_status lu_conv_check(const char *op, const lu_conv_desc *d, int transposed, const lu_tensor *x, const char *xn,
                        const lu_tensor *w, const char *wn, const lu_tensor *b, const char *bn, const lu_tensor *y,
                        const char *yn, lu_conv_geom *g) {
  LU_TRY(lu_conv_desc_check(d));
  /* activations may be float16 (mixed precision: the implicit GEMM reads and writes them); weights are
   * the float32 masters */
  LU_TRY(lu_check_act_tensor(x, op, xn));
  LU_TRY(lu_check_device_tensor(w, LU_F32, op, wn));
  LU_TRY(lu_check_act_tensor(y, op, yn));
  int nd = 2 + d->nsp;
  if (x->ndim != nd) {
    char a[96];
    return lu_fail(LU_EARG, "%s: %s has shape %s; a %d-D convolution needs (N, C, %s)", op, xn,
                   lu_shape_str(x->ndim, x->shape, a, sizeof a), d->nsp, d->nsp == 3 ? "Z, Y, X" : "Y, X");
  }
  if (w->ndim != nd) {
    char a[96];
    return lu_fail(LU_EARG, "%s: %s has shape %s; expected %d dims", op, wn, lu_shape_str(w->ndim, w->shape, a, sizeof a), nd);
  }
  int64_t cout = transposed ? w->shape[1] : w->shape[0];
  int64_t cin = transposed ? w->shape[0] : w->shape[1];
  int64_t ws[5], ys[5];
  if (transposed) {
    lu_convT_weight_shape(d, cin, cout, ws);
    LU_TRY(lu_convT_out_shape(d, x->shape, cout, ys));
  } else {
    lu_conv_weight_shape(d, cin, cout, ws);
    LU_TRY(lu_conv_out_shape(d, x->shape, cout, ys));
  }
  LU_TRY(check_tensor(op, wn, w, x->dev, nd, ws, 0));
  if (x->shape[1] != cin) {
    char a[96];
    return lu_fail(LU_EARG, "%s: %s has %lld channels but %s %s expects %lld", op, xn, (long long)x->shape[1], wn,
                   lu_shape_str(w->ndim, w->shape, a, sizeof a), (long long)cin);
  }
  LU_TRY(check_tensor(op, yn, y, x->dev, nd, ys, 1));
  if (b) LU_TRY(check_tensor(op, bn, b, x->dev, 1, &cout, 0));
  lu_conv_geom_from(d, x->shape, ys, g);
  return LU_OK;
}

lu_status lu_conv_context(lu_status st, const char *op, const lu_conv_geom *g) {
  if (st == LU_OK) return st;
  return lu_fail_context(st, "%s N=%d Cin=%d Cout=%d in %dx%dx%d k %dx%dx%d stride %dx%dx%d", op, g->N, g->Cin,
                         g->Cout, g->Z, g->Y, g->X, g->k[0], g->k[1], g->k[2], g->s[0], g->s[1], g->s[2]);
}

int lu_conv_is_pointwise(const lu_conv_geom *g) {
  return g->kv == 1 && g->s[0] == 1 && g->s[1] == 1 && g->s[2] == 1;
}

/* The direct kernels measured faster on PoCL than im2col + GEMM for every nnU-Net layer (bench/ops.lua);
 * conv.algo = gemm keeps the GEMM path reachable for measurements and as the reference strategy. */
int lu_conv_use_direct(const lu_device *dev) { return lu_tune(dev, LU_TUNE_CONV_ALGO) != 1; }

int lu_conv_cvec_allowed(const lu_device *dev) { return lu_tune_cpu(dev) && lu_tune(dev, LU_TUNE_CONV_CVEC) != 0; }

/* ---- float16 activations on the float32 strategies ---- */

lu_status lu_conv_f32_view(const lu_tensor *t, int load, lu_tensor *out) {
  *out = *t;
  if (t->dtype != LU_F16) return LU_OK;
  out->dtype = LU_F32;
  out->host = NULL;
  out->bytes = (size_t)lu_tensor_numel(t) * sizeof(float);
  cl_mem m;
  LU_TRY(lu_buffer_alloc_for(t->dev, out->bytes, "float32 copy of a float16 activation (conv)", &m));
  out->buf = m;
  lu_status st = load ? lu_cast(out, t) : LU_OK;
  if (st != LU_OK) lu_buffer_release(t->dev, m, out->bytes);
  return st;
}

lu_status lu_conv_f32_done(lu_tensor *f, lu_tensor *t, int store, lu_status st) {
  if (f->buf == t->buf) return st;
  if (st == LU_OK && store) st = lu_cast(t, f);
  lu_buffer_release(f->dev, (cl_mem)f->buf, f->bytes); /* the in-order queue runs the cast first */
  return st;
}

lu_status lu_conv_fwd_f32(lu_conv_fwd_fn pass, const lu_conv_desc *d, const lu_tensor *x, const lu_tensor *w,
                          const lu_tensor *b, lu_tensor *y) {
  lu_tensor xf, yf;
  LU_TRY(lu_conv_f32_view(x, 1, &xf));
  lu_status st = lu_conv_f32_view(y, 0, &yf);
  if (st == LU_OK) st = lu_conv_f32_done(&yf, y, 1, pass(d, &xf, w, b, &yf));
  return lu_conv_f32_done(&xf, (lu_tensor *)x, 0, st);
}

lu_status lu_conv_bwd_data_f32(lu_conv_bwd_data_fn pass, const lu_conv_desc *d, const lu_tensor *dy,
                               const lu_tensor *w, lu_tensor *dx) {
  lu_tensor dyf, dxf;
  LU_TRY(lu_conv_f32_view(dy, 1, &dyf));
  lu_status st = lu_conv_f32_view(dx, 0, &dxf);
  if (st == LU_OK) st = lu_conv_f32_done(&dxf, dx, 1, pass(d, &dyf, w, &dxf));
  return lu_conv_f32_done(&dyf, (lu_tensor *)dy, 0, st);
}

lu_status lu_conv_bwd_weight_f32(lu_conv_bwd_weight_fn pass, const lu_conv_desc *d, const lu_tensor *x,
                                 const lu_tensor *dy, lu_tensor *dw, lu_tensor *db, int accumulate) {
  lu_tensor xf, dyf;
  LU_TRY(lu_conv_f32_view(x, 1, &xf));
  lu_status st = lu_conv_f32_view(dy, 1, &dyf);
  if (st == LU_OK) st = lu_conv_f32_done(&dyf, (lu_tensor *)dy, 0, pass(d, &xf, &dyf, dw, db, accumulate));
  return lu_conv_f32_done(&xf, (lu_tensor *)x, 0, st);
}

/* ---- bias ---- */

lu_status lu_conv_bias_fill(lu_tensor *y, const lu_tensor *b, int N, int C, int64_t S) {
  cl_kernel k;
  LU_TRY(lu_kernel_get(y->dev, "conv/bias.cl", "bias_fill", NULL, &k));
  cl_mem my = y->buf, mb = b ? b->buf : y->buf;
  int c = C, s = (int)S, hb = b != NULL;
  LU_CL_CHECK(LU_ARG(k, 0, my) | LU_ARG(k, 1, mb) | LU_ARG(k, 2, c) | LU_ARG(k, 3, s) | LU_ARG(k, 4, hb), "bias_fill args");
  size_t gl[2] = {lu_global_1d((size_t)S, 16), (size_t)N * C}, lo[2] = {16, 1};
  return lu_launch(y->dev, k, 2, gl, lo, "bias_fill");
}

lu_status lu_conv_bias_grad(lu_tensor *db, const lu_tensor *dy, int N, int C, int64_t S, int accumulate) {
  lu_device *dev = dy->dev;
  cl_mem mdb = db->buf, mdy = dy->buf;
  int n = N, c = C, s = (int)S, acc = accumulate;
  if (C <= 0) return LU_OK;
  const char *half = dy->dtype == LU_F16 ? "-DHALF=1" : NULL;
  cl_kernel k;
  if (lu_tune_cpu(dev)) { /* one work-item per channel beats work-groups and barriers on PoCL */
    LU_TRY(lu_kernel_get(dev, "conv/bias.cl", "bias_grad_serial", half, &k));
    LU_CL_CHECK(LU_ARG(k, 0, mdb) | LU_ARG(k, 1, mdy) | LU_ARG(k, 2, n) | LU_ARG(k, 3, c) | LU_ARG(k, 4, s) |
                    LU_ARG(k, 5, acc), "bias_grad args");
    size_t gc = (size_t)C;
    return lu_launch(dev, k, 1, &gc, NULL, "bias_grad");
  }
  /* chunks per channel: about 8 work-groups per compute unit over all channels, each item at least 4
   * values, at most 256 chunks */
  const size_t wg = 64;
  int64_t total = (int64_t)N * S;
  size_t target = (dev->compute_units ? dev->compute_units : 16) * 8;
  size_t ch = (target + (size_t)C - 1) / (size_t)C, max_ch = (size_t)(total / (int64_t)(wg * 4));
  if (ch > max_ch) ch = max_ch;
  if (ch > 256) ch = 256;
  if (ch < 1) ch = 1;
  cl_long per = (cl_long)((total + (int64_t)ch - 1) / (int64_t)ch);
  cl_kernel k2;
  LU_TRY(lu_kernel_get(dev, "conv/bias.cl", "bias_grad_partial", half, &k));
  LU_TRY(lu_kernel_get(dev, "conv/bias.cl", "bias_grad_finish", half, &k2));
  size_t pbytes = (size_t)C * ch * sizeof(float);
  cl_mem part;
  LU_TRY(lu_buffer_alloc(dev, pbytes, &part));
  int ich = (int)ch;
  lu_status st = LU_OK;
  cl_int e = LU_ARG(k, 0, part) | LU_ARG(k, 1, mdy) | LU_ARG(k, 2, n) | LU_ARG(k, 3, c) | LU_ARG(k, 4, s) |
             LU_ARG(k, 5, per);
  e |= LU_ARG(k2, 0, mdb) | LU_ARG(k2, 1, part) | LU_ARG(k2, 2, c) | LU_ARG(k2, 3, ich) | LU_ARG(k2, 4, acc);
  if (e != CL_SUCCESS) st = lu_fail(LU_ECL, "%s (bias_grad args)", lu_cl_errname(e));
  size_t gl[2] = {ch * wg, (size_t)C}, lo[2] = {wg, 1}, gc = (size_t)C;
  if (st == LU_OK) st = lu_launch(dev, k, 2, gl, lo, "bias_grad");
  if (st == LU_OK) st = lu_launch(dev, k2, 1, &gc, NULL, "bias_grad");
  /* the in-order queue orders any reuse of the pooled buffer after both kernels */
  lu_buffer_release(dev, part, pbytes);
  return st;
}

/* ---- workspace, tiles and the tiled GEMM ---- */

size_t lu_conv_workspace_bytes(const lu_device *dev) {
  long kb = lu_tune(dev, LU_TUNE_CONV_WORKSPACE_KB);
  if (kb < 1) kb = 1;
  return (size_t)kb << 10;
}

/* Plans tiles for a per-output-row cost of `row_floats` workspace floats. */
void lu_conv_tiler_init(lu_conv_tiler *t, const lu_device *dev, int N, int rows, size_t row_floats) {
  size_t budget = lu_conv_workspace_bytes(dev) / sizeof(float);
  size_t rpt = row_floats ? budget / row_floats : (size_t)rows;
  if (rpt < 1) rpt = 1;
  t->N = N;
  t->rows = rows;
  if (rpt >= (size_t)rows) {
    t->rows_per_tile = rows;
    size_t spt = rpt / (size_t)rows;
    t->samples_per_tile = spt > (size_t)N ? N : (int)spt;
  } else {
    /* balance the tiles so the last one is not a sliver */
    int ntiles = (int)((rows + rpt - 1) / rpt);
    t->rows_per_tile = (rows + ntiles - 1) / ntiles;
    t->samples_per_tile = 1;
  }
  t->n = 0;
  t->r = 0;
}

int lu_conv_tiler_next(lu_conv_tiler *t, lu_conv_tile *o) {
  if (t->n >= t->N) return 0;
  o->n0 = t->n;
  if (t->rows_per_tile == t->rows) {
    o->nb = t->N - t->n < t->samples_per_tile ? t->N - t->n : t->samples_per_tile;
    o->r0 = 0;
    o->nrows = t->rows;
    o->whole = 1;
    t->n += o->nb;
    return 1;
  }
  o->nb = 1;
  o->r0 = t->r;
  o->nrows = t->rows - t->r < t->rows_per_tile ? t->rows - t->r : t->rows_per_tile;
  o->whole = 0;
  t->r += o->nrows;
  if (t->r >= t->rows) { t->r = 0; t->n++; }
  return 1;
}

lu_status lu_conv_tiled_gemm(const lu_conv_tiled *job) {
  lu_conv_tiler tl;
  lu_conv_tiler_init(&tl, job->dev, job->N, job->rows, job->floats_per_pos * job->row_len);
  if (job->clear && tl.rows_per_tile < tl.rows) LU_TRY(lu_fill(job->clear, 0.0f));
  size_t cap = (size_t)tl.samples_per_tile * tl.rows_per_tile * job->row_len * job->floats_per_pos * sizeof(float);
  cl_mem buf;
  LU_TRY(lu_buffer_alloc(job->dev, cap, &buf));
  lu_status st = LU_OK;
  lu_conv_tile t;
  while (st == LU_OK && lu_conv_tiler_next(&tl, &t)) {
    if (job->fill) st = job->fill(job, buf, &t);
    if (st == LU_OK) st = job->gemm(job, buf, &t, (size_t)t.nrows * job->row_len);
    if (st == LU_OK && job->drain) st = job->drain(job, buf, &t);
  }
  lu_buffer_release(job->dev, buf, cap);
  return st;
}

lu_status lu_conv_tile_sgemm(lu_device *dev, int ta, int tb, size_t M, size_t N, size_t K, cl_mem a, size_t aoff,
                             size_t lda, size_t a_stride, cl_mem b, size_t boff, size_t ldb, size_t b_stride,
                             float beta, cl_mem c, size_t coff, size_t ldc, size_t c_stride, int nb) {
  if (nb == 1) return lu_sgemm(dev, ta, tb, M, N, K, 1.0f, a, aoff, lda, b, boff, ldb, beta, c, coff, ldc);
  return lu_sgemm_strided_batched(dev, ta, tb, M, N, K, 1.0f, a, aoff, lda, a_stride, b, boff, ldb, b_stride, beta, c,
                                  coff, ldc, c_stride, (size_t)nb);
}

/* ---- kernels and the buffers the direct strategies share ---- */

/* Which file of kernels/conv/ holds each kernel the strategies launch. */
static const struct { const char *kernel, *file; } conv_kernels[] = {
  {"im2col", "conv/conv.cl"},        {"col2im", "conv/conv.cl"},
  {"pack_weights", "conv/pack.cl"},  {"pack_phases", "conv/pack.cl"},    {"pad_input", "conv/pack.cl"},
  {"conv_direct", "conv/fwd.cl"},    {"conv_rows", "conv/fwd.cl"},       {"conv_cvec", "conv/fwd.cl"},
  {"convT_cvec", "conv/convT.cl"},
  {"dgrad_cvec", "conv/dgrad.cl"},   {"dgrad_rows", "conv/dgrad.cl"},    {"dgrad_strided", "conv/dgrad.cl"},
  {"dgrad_s2x", "conv/dgrad.cl"},
  {"wgrad_direct", "conv/wgrad.cl"}, {"wgrad_cvec", "conv/wgrad.cl"},    {"transpose_dy", "conv/wgrad.cl"},
  {"reduce_cvec", "conv/wgrad.cl"},  {"reduce_chunks", "conv/reduce_chunks.cl"},
  {"wino_pack", "conv/wino.cl"},     {"conv_wino", "conv/wino.cl"},
  {"wino_tile_pack", "conv/wino.cl"}, {"conv_wino_tile", "conv/wino.cl"},
  {"wino_t4_pack", "conv/wino.cl"},   {"conv_wino_t4", "conv/wino.cl"},
  {"s2_pack", "conv/s2rows.cl"},     {"conv_s2rows", "conv/s2rows.cl"},
};

lu_status lu_conv_kernel(lu_device *dev, const char *name, const char *opts, cl_kernel *k) {
  for (size_t i = 0; i < sizeof conv_kernels / sizeof conv_kernels[0]; i++)
    if (strcmp(conv_kernels[i].kernel, name) == 0) return lu_kernel_get(dev, conv_kernels[i].file, name, opts, k);
  return lu_fail(LU_EARG, "conv: no kernel '%s' in the conv kernels' table", name);
}

lu_conv_tunables lu_conv_direct_tunables(const lu_device *dev) {
  lu_conv_tunables t = {lu_tune(dev, LU_TUNE_CONV_VX), lu_tune(dev, LU_TUNE_CONV_COB), lu_tune(dev, LU_TUNE_CONV_WGRAD_VX),
                        lu_tune(dev, LU_TUNE_CONV_COBW), LU_CONV_CIB, 1};
  if (t.cob < 1) t.cob = 1;
  if (t.cobw < 1) t.cobw = 1;
  return t;
}

/* A 3-D range launched as one work-group per (row block, sample), gl[0] work-items each, when the device
 * allows groups that large: so that even few row blocks spread over the cores (PoCL's own choice for
 * small ranges can be one work-group for everything), and so that no group's private state outgrows a
 * worker thread's stack (dgrad_rows, with PoCL's choice of 4096 work-items per group, crashed). */
lu_status lu_launch_by_rows(lu_device *dev, cl_kernel k, const size_t gl[3], const char *name) {
  size_t lo[3] = {gl[0], 1, 1};
  return lu_launch(dev, k, 3, gl, gl[0] <= dev->max_wg ? lo : NULL, name);
}

/* Lanes per work-item along x (conv.vx / conv.wgrad_vx cap it). */
int lu_conv_pick_vx(int ox, int cap) {
  int v = ox >= 16 ? 16 : ox >= 8 ? 8 : 4;
  return v > cap ? (cap >= 8 ? 8 : 4) : v;
}

/* Build options for the direct kernels: every kernel of one geometry and lane count shares them. */
void lu_conv_direct_opts(const lu_conv_tunables *t, const int *k, const int *s, const int *p, int vx, char *buf, size_t n) {
  snprintf(buf, n,
           "-DKZ=%d -DKY=%d -DKX=%d -DSZ=%d -DSY=%d -DSX=%d -DPZ=%d -DPY=%d -DPX=%d -DVX=%d -DCOB=%d -DCOBW=%d -DCIB=%d "
           "-DCOV=%d",
           k[0], k[1], k[2], s[0], s[1], s[2], p[0], p[1], p[2], vx, t->cob, t->cobw, t->cib, t->cov);
}

/* Appends printf-formatted build options to buf (n bytes, holding a string). */
void lu_conv_opts_add(char *buf, size_t n, const char *fmt, ...) {
  size_t len = strlen(buf);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf + len, n - len, fmt, ap);
  va_end(ap);
}

/* conv_cvec's positions per work-item along a row of `extent`: the row in equal pieces of <= 8. */
int lu_conv_cvec_block(int extent) {
  int parts = (extent + 7) / 8;
  return (extent + parts - 1) / parts;
}

/* The input extent that blocks of `block` outputs read along an axis: every block is computed whole,
 * so the last one reaches past `extent` outputs (the padded copies must cover it). */
int lu_conv_blocked_reach(int extent, int block, int stride, int taps) {
  return ((extent + block - 1) / block * block - 1) * stride + taps;
}

/* A zero-padded copy (pad_input) of x (N, C, Z, Y, X) with extents (Zp, Yp, Xp): the input is at
 * offset (PZ, PY, PX) of the build options opts. *out is a pool buffer of *bytes bytes. */
lu_status lu_conv_pad_copy(lu_device *dev, const char *opts, cl_mem x, int N, int C, int Z, int Y, int X, int Zp,
                          int Yp, int Xp, cl_mem *out, size_t *bytes) {
  cl_kernel kpad;
  *bytes = (size_t)N * C * Zp * Yp * Xp * sizeof(float);
  LU_TRY(lu_conv_kernel(dev, "pad_input", opts, &kpad));
  LU_TRY(lu_buffer_alloc(dev, *bytes, out));
  lu_status st = LU_OK;
  if (LU_ARG(kpad, 0, *out) | LU_ARG(kpad, 1, x) | LU_ARG(kpad, 2, Z) | LU_ARG(kpad, 3, Y) | LU_ARG(kpad, 4, X) |
      LU_ARG(kpad, 5, Zp) | LU_ARG(kpad, 6, Yp) | LU_ARG(kpad, 7, Xp))
    st = lu_fail(LU_ECL, "pad_input args");
  size_t gpad[2] = {(size_t)Zp, (size_t)N * C};
  if (st == LU_OK) st = lu_launch(dev, kpad, 2, gpad, NULL, "pad_input");
  if (st != LU_OK) {
    lu_buffer_release(dev, *out, *bytes);
    *out = NULL;
  }
  return st;
}

/* The cache of the lu_conv_fwd_cached pass in flight, if any: its packed buffer when it was made by kernel kp
 * from w for the same extents (*out set, 1), else 0. */
static int wcache_hit(lu_device *dev, cl_kernel kp, cl_mem w, int cin, int cout, int flip, size_t bytes, cl_mem *out) {
  lu_conv_wcache *wc = dev->conv_wcache;
  if (!wc || !wc->buf || wc->kernel != (const void *)kp || wc->w != (const void *)w || wc->cin != cin ||
      wc->cout != cout || wc->flip != flip || wc->bytes != bytes)
    return 0;
  *out = (cl_mem)wc->buf;
  return 1;
}

/* A pack just made becomes the cache's (replacing what it held) while a cached pass is in flight. */
static void wcache_keep(lu_device *dev, cl_kernel kp, cl_mem w, int cin, int cout, int flip, size_t bytes, cl_mem buf) {
  lu_conv_wcache *wc = dev->conv_wcache;
  if (!wc) return;
  lu_conv_wcache_clear(dev, wc);
  *wc = (lu_conv_wcache){buf, bytes, (const void *)kp, (const void *)w, cin, cout, flip};
}

void lu_conv_pack_release(lu_device *dev, cl_mem wp, size_t bytes) {
  const lu_conv_wcache *wc = dev->conv_wcache;
  if (wp && !(wc && wc->buf == (void *)wp)) lu_buffer_release(dev, wp, bytes);
}

/* Weights packed per block of cob output channels (pack_weights with `flip`, build options opts, whose
 * COB must be cob): w is (cout, cin, taps...) or, flipped or transposed, (cin, cout, taps...) with cin
 * the pass's input channels. *wp is a pool buffer of *bytes bytes. */
lu_status lu_conv_pack_blocks(lu_device *dev, const char *opts, cl_mem w, int cin, int cout, int cob, size_t kv,
                             int flip, cl_mem *wp, size_t *bytes) {
  cl_kernel kp;
  LU_TRY(lu_conv_kernel(dev, "pack_weights", opts, &kp));
  int ncb = (cout + cob - 1) / cob;
  *bytes = (size_t)ncb * cob * cin * kv * sizeof(float);
  if (wcache_hit(dev, kp, w, cin, cout, flip, *bytes, wp)) return LU_OK;
  LU_TRY(lu_buffer_alloc(dev, *bytes, wp));
  lu_status st = LU_OK;
  if (LU_ARG(kp, 0, *wp) | LU_ARG(kp, 1, w) | LU_ARG(kp, 2, cin) | LU_ARG(kp, 3, cout) | LU_ARG(kp, 4, flip))
    st = lu_fail(LU_ECL, "pack_weights args");
  size_t gp[2] = {(size_t)cin, (size_t)ncb};
  if (flip) gp[0] = (size_t)ncb, gp[1] = (size_t)cin; /* the kernel's order for reading w sequentially */
  if (st == LU_OK) st = lu_launch(dev, kp, 2, gp, NULL, "pack_weights");
  if (st != LU_OK) {
    lu_buffer_release(dev, *wp, *bytes);
    *wp = NULL;
  } else {
    wcache_keep(dev, kp, w, cin, cout, flip, *bytes, *wp);
  }
  return st;
}

/* A row of zeros for the row kernels (conv_rows, dgrad_rows) to read where an input row lies off the
 * input: `len` floats (a row and 2 vectors of slack either side) in a pool buffer of *bytes bytes. */
lu_status lu_conv_zero_row(lu_device *dev, int len, cl_mem *out, size_t *bytes) {
  *bytes = (size_t)(len + 2 * 16 + 4) * sizeof(float);
  LU_TRY(lu_buffer_alloc(dev, *bytes, out));
  const float zero = 0.0f;
  if (clEnqueueFillBuffer(dev->queue, *out, &zero, sizeof zero, 0, *bytes, 0, NULL, NULL) == CL_SUCCESS) return LU_OK;
  lu_buffer_release(dev, *out, *bytes);
  *out = NULL;
  return lu_fail(LU_ECL, "clearing a row of zeros");
}

/* The arguments the row and direct conv kernels share: x, packed weights wp, the bias (or, unused, w) and
 * whether there is one, y, Cin, Cout and the input and output extents. */
lu_status lu_conv_kernel_args(cl_kernel kk, const char *kname, cl_mem x, cl_mem wp, cl_mem w, const lu_tensor *b,
                                  cl_mem y, int Cin, int Cout, int Z, int Y, int X, int OZ, int OY, int OX) {
  cl_mem mb = b ? b->buf : w;
  int hb = b != NULL;
  if (LU_ARG(kk, 0, x) | LU_ARG(kk, 1, wp) | LU_ARG(kk, 2, mb) | LU_ARG(kk, 3, hb) | LU_ARG(kk, 4, y) |
      LU_ARG(kk, 5, Cin) | LU_ARG(kk, 6, Cout) | LU_ARG(kk, 7, Z) | LU_ARG(kk, 8, Y) | LU_ARG(kk, 9, X) |
      LU_ARG(kk, 10, OZ) | LU_ARG(kk, 11, OY) | LU_ARG(kk, 12, OX))
    return lu_fail(LU_ECL, "%s args", kname);
  return LU_OK;
}

/* The weights w of a pass packed by kp (wino_pack, s2_pack: arguments out, w, Cin, Cout, then flip when flip
 * >= 0; s2_pack takes none, -1), `floats` per input channel and output channel, in blocks of cob output
 * channels: *out is a pool buffer of *bytes bytes. */
lu_status lu_conv_pack_launch(lu_device *dev, cl_kernel kp, const char *kname, cl_mem w, int Cin, int Cout, int cob,
                              size_t floats, int flip, cl_mem *out, size_t *bytes) {
  size_t padded = (size_t)(Cout + cob - 1) / cob * cob;
  *bytes = padded * Cin * floats * sizeof(float);
  if (wcache_hit(dev, kp, w, Cin, Cout, flip, *bytes, out)) return LU_OK;
  LU_TRY(lu_buffer_alloc(dev, *bytes, out));
  lu_status st = LU_OK;
  if (LU_ARG(kp, 0, *out) | LU_ARG(kp, 1, w) | LU_ARG(kp, 2, Cin) | LU_ARG(kp, 3, Cout) |
      (flip >= 0 && LU_ARG(kp, 4, flip)))
    st = lu_fail(LU_ECL, "%s args", kname);
  size_t gp[2] = {(size_t)Cin, padded};
  if (st == LU_OK) st = lu_launch(dev, kp, 2, gp, NULL, kname);
  if (st != LU_OK) {
    lu_buffer_release(dev, *out, *bytes);
    *out = NULL;
  } else {
    wcache_keep(dev, kp, w, Cin, Cout, flip, *bytes, *out);
  }
  return st;
}

