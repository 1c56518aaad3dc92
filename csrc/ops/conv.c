/* Convolutions as tiled im2col + CLBlast GEMM.
 *
 * Every problem is normalised to 3 spatial axes (2-D: Z = 1, kz = 1). The output is cut into tiles
 * of whole output rows (row = (oz, oy), all ox) whose column buffer fits the workspace budget; when
 * whole samples fit, a tile spans several samples and the GEMM is strided-batched over them.
 * 1x1(x1) kernels with stride 1 skip im2col: the input is the GEMM operand. */
#include "ops/conv.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl/blas.h"
#include "cl/device.h"
#include "cl/pool.h"
#include "cl/program.h"
#include "ops/convT.h"
#include "ops/ops.h"

#ifndef LU_CONV_WORKSPACE_MB
#define LU_CONV_WORKSPACE_MB 64
#endif

/* Direct-kernel tunables, per device class (#ifndef defaults; $LUNET_CONV_VX, _COB, _WGRAD_VX, _COBW
 * override them at run time for tuning). CPU (PoCL, AVX-512): 16 lanes = one register, 16 output
 * channels = 16 accumulators. GPU (measured on an H200, bench/ops.lua quick 3d): fewer registers
 * per work-item win: forward 8 x 8 ran 4x faster than 16 x 16 there (10.7 vs 2.6 TFLOP/s), the
 * weight gradient 4 lanes x 8 channels 3.4x faster than 16 x 8. */
#ifndef LU_CONV_VX
#define LU_CONV_VX 16 /* widest x vector per work-item in the forward / backward-data kernel */
#endif
#ifndef LU_CONV_COB
#define LU_CONV_COB 16 /* output channels per work-item in the forward / backward-data kernel */
#endif
#ifndef LU_CONV_WGRAD_VX
#define LU_CONV_WGRAD_VX 16 /* widest x vector in the weight-gradient kernel */
#endif
#ifndef LU_CONV_COBW
#define LU_CONV_COBW 8 /* output channels per work-item in the weight-gradient kernel */
#endif
#ifndef LU_CONV_CIB
#define LU_CONV_CIB 8 /* input channels per work-item in the narrow-row weight gradient (wgrad_cvec) */
#endif
#ifndef LU_CONV_VX_GPU
#define LU_CONV_VX_GPU 8
#endif
#ifndef LU_CONV_COB_GPU
#define LU_CONV_COB_GPU 8
#endif
#ifndef LU_CONV_WGRAD_VX_GPU
#define LU_CONV_WGRAD_VX_GPU 4
#endif
#ifndef LU_CONV_COBW_GPU
#define LU_CONV_COBW_GPU 8
#endif

#define CONV_FILE "conv/conv.cl"
#define DIRECT_FILE "conv/direct.cl"
#define BIAS_FILE "conv/bias.cl"
#define REDUCE_FILE "conv/reduce_chunks.cl"
#define WINO_FILE "conv/wino.cl"
#define S2ROWS_FILE "conv/s2rows.cl"

size_t lu_conv_workspace_bytes(void) {
  const char *e = getenv("LUNET_CONV_WORKSPACE_KB");
  long kb = e && *e ? atol(e) : (long)LU_CONV_WORKSPACE_MB << 10;
  if (kb < 1) kb = 1;
  return (size_t)kb << 10;
}

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

/* ---- normalised geometry ---- */

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

static lu_status check_tensor(const char *op, const char *arg, const lu_tensor *t, lu_device *dev, int ndim,
                              const int64_t *shape) {
  LU_TRY(lu_check_device_tensor(t, LU_F32, op, arg));
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
  LU_TRY(lu_check_device_tensor(x, LU_F32, op, xn));
  LU_TRY(lu_check_device_tensor(w, LU_F32, op, wn));
  LU_TRY(lu_check_device_tensor(y, LU_F32, op, yn));
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
  LU_TRY(check_tensor(op, wn, w, x->dev, nd, ws));
  if (x->shape[1] != cin) {
    char a[96];
    return lu_fail(LU_EARG, "%s: %s has %lld channels but %s %s expects %lld", op, xn, (long long)x->shape[1], wn,
                   lu_shape_str(w->ndim, w->shape, a, sizeof a), (long long)cin);
  }
  LU_TRY(check_tensor(op, yn, y, x->dev, nd, ys));
  if (b) LU_TRY(check_tensor(op, bn, b, x->dev, 1, &cout));
  lu_conv_geom_from(d, x->shape, ys, g);
  return LU_OK;
}

/* ---- bias helpers (shared with convT) ---- */

lu_status lu_conv_bias_fill(lu_tensor *y, const lu_tensor *b, int N, int C, int64_t S) {
  cl_kernel k;
  LU_TRY(lu_kernel_get(y->dev, BIAS_FILE, "bias_fill", NULL, &k));
  cl_mem my = y->buf, mb = b ? b->buf : y->buf;
  int c = C, s = (int)S, hb = b != NULL;
  LU_CL_CHECK(LU_ARG(k, 0, my) | LU_ARG(k, 1, mb) | LU_ARG(k, 2, c) | LU_ARG(k, 3, s) | LU_ARG(k, 4, hb), "bias_fill args");
  size_t gl[2] = {lu_global_1d((size_t)S, 16), (size_t)N * C}, lo[2] = {16, 1};
  return lu_launch(y->dev, k, 2, gl, lo, "bias_fill");
}

lu_status lu_conv_bias_grad(lu_tensor *db, const lu_tensor *dy, int N, int C, int64_t S, int accumulate) {
  cl_kernel k;
  int cpu = dy->dev->is_cpu;
  LU_TRY(lu_kernel_get(dy->dev, BIAS_FILE, cpu ? "bias_grad_serial" : "bias_grad", NULL, &k));
  cl_mem mdb = db->buf, mdy = dy->buf;
  int n = N, c = C, s = (int)S, acc = accumulate;
  LU_CL_CHECK(LU_ARG(k, 0, mdb) | LU_ARG(k, 1, mdy) | LU_ARG(k, 2, n) | LU_ARG(k, 3, c) | LU_ARG(k, 4, s) |
                  LU_ARG(k, 5, acc), "bias_grad args");
  size_t gl[2] = {64, (size_t)C}, lo[2] = {64, 1}, gc = (size_t)C;
  if (cpu) return lu_launch(dy->dev, k, 1, &gc, NULL, "bias_grad");
  return lu_launch(dy->dev, k, 2, gl, lo, "bias_grad");
}

/* ---- tiling ---- */

/* Plans tiles for a per-output-row cost of `row_floats` workspace floats. */
void lu_conv_tiler_init(lu_conv_tiler *t, int N, int rows, size_t row_floats) {
  size_t budget = lu_conv_workspace_bytes() / sizeof(float);
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

static void geom_opts(const lu_conv_geom *g, char *buf, size_t n) {
  snprintf(buf, n, "-DKZ=%d -DKY=%d -DKX=%d -DSZ=%d -DSY=%d -DSX=%d -DPZ=%d -DPY=%d -DPX=%d", g->k[0], g->k[1],
           g->k[2], g->s[0], g->s[1], g->s[2], g->p[0], g->p[1], g->p[2]);
}

static int is_pointwise(const lu_conv_geom *g) {
  return g->kv == 1 && g->s[0] == 1 && g->s[1] == 1 && g->s[2] == 1;
}

static lu_status run_im2col(lu_device *dev, const lu_conv_geom *g, const lu_tensor *x, cl_mem col, const lu_conv_tile *t) {
  char opts[160];
  geom_opts(g, opts, sizeof opts);
  cl_kernel k;
  LU_TRY(lu_kernel_get(dev, CONV_FILE, "im2col", opts, &k));
  cl_mem mx = x->buf;
  cl_ulong xoff = (cl_ulong)t->n0 * g->Cin * g->S;
  int cin = g->Cin, Z = g->Z, Y = g->Y, X = g->X, OY = g->OY, OX = g->OX, r0 = t->r0, nr = t->nrows;
  LU_CL_CHECK(LU_ARG(k, 0, mx) | LU_ARG(k, 1, xoff) | LU_ARG(k, 2, col) | LU_ARG(k, 3, cin) | LU_ARG(k, 4, Z) |
                  LU_ARG(k, 5, Y) | LU_ARG(k, 6, X) | LU_ARG(k, 7, OY) | LU_ARG(k, 8, OX) | LU_ARG(k, 9, r0) |
                  LU_ARG(k, 10, nr), "im2col args");
  size_t gl[3] = {(size_t)g->OX, (size_t)t->nrows, (size_t)t->nb * g->Cin * g->k[0] * g->k[1]};
  return lu_launch(dev, k, 3, gl, NULL, "im2col");
}

/* Input rows (iz * Y + iy) that output rows [r0, r0 + nrows) read. */
static void input_rows(const lu_conv_geom *g, const lu_conv_tile *t, int *ir0, int *nir) {
  if (t->whole) { *ir0 = 0; *nir = g->Z * g->Y; return; }
  int ra = t->r0, rb = t->r0 + t->nrows - 1;
  int oza = ra / g->OY, ozb = rb / g->OY;
  int iza = oza * g->s[0] - g->p[0], izb = ozb * g->s[0] - g->p[0] + g->k[0] - 1;
  if (iza < 0) iza = 0;
  if (izb > g->Z - 1) izb = g->Z - 1;
  int iya = 0, iyb = g->Y - 1;
  if (oza == ozb) {
    iya = (ra % g->OY) * g->s[1] - g->p[1];
    iyb = (rb % g->OY) * g->s[1] - g->p[1] + g->k[1] - 1;
    if (iya < 0) iya = 0;
    if (iyb > g->Y - 1) iyb = g->Y - 1;
  }
  *ir0 = iza * g->Y + iya;
  *nir = izb * g->Y + iyb - *ir0 + 1;
  if (*nir < 0) *nir = 0;
}

static lu_status run_col2im(lu_device *dev, const lu_conv_geom *g, lu_tensor *dx, cl_mem col, const lu_conv_tile *t,
                            int accumulate) {
  char opts[160];
  geom_opts(g, opts, sizeof opts);
  cl_kernel k;
  LU_TRY(lu_kernel_get(dev, CONV_FILE, "col2im", opts, &k));
  int ir0, nir;
  input_rows(g, t, &ir0, &nir);
  cl_mem mdx = dx->buf;
  cl_ulong off = (cl_ulong)t->n0 * g->Cin * g->S;
  int cin = g->Cin, Z = g->Z, Y = g->Y, X = g->X, OZ = g->OZ, OY = g->OY, OX = g->OX, r0 = t->r0, nr = t->nrows,
      acc = accumulate;
  LU_CL_CHECK(LU_ARG(k, 0, mdx) | LU_ARG(k, 1, off) | LU_ARG(k, 2, col) | LU_ARG(k, 3, cin) | LU_ARG(k, 4, Z) |
                  LU_ARG(k, 5, Y) | LU_ARG(k, 6, X) | LU_ARG(k, 7, OZ) | LU_ARG(k, 8, OY) | LU_ARG(k, 9, OX) |
                  LU_ARG(k, 10, r0) | LU_ARG(k, 11, nr) | LU_ARG(k, 12, ir0) | LU_ARG(k, 13, acc), "col2im args");
  size_t gl[3] = {(size_t)g->X, (size_t)nir, (size_t)t->nb * g->Cin};
  return lu_launch(dev, k, 3, gl, NULL, "col2im");
}

static lu_status ctx(lu_status st, const char *op, const lu_conv_geom *g) {
  if (st == LU_OK) return st;
  return lu_fail_context(st, "%s N=%d Cin=%d Cout=%d in %dx%dx%d k %dx%dx%d stride %dx%dx%d", op, g->N, g->Cin,
                         g->Cout, g->Z, g->Y, g->X, g->k[0], g->k[1], g->k[2], g->s[0], g->s[1], g->s[2]);
}

/* ---- direct kernels ---- */

/* Which algorithm: $LUNET_CONV_ALGO = gemm | direct forces one (for measurements); else per shape. */
static int use_direct(const lu_conv_geom *g, int pass) {
  const char *e = getenv("LUNET_CONV_ALGO");
  if (e && !strcmp(e, "gemm")) return 0;
  (void)g;
  (void)pass;
  return 1; /* direct measured faster on PoCL for every nnU-Net layer (bench/ops.lua) */
}

int lu_conv_env_int(const char *name, int dflt) {
  const char *e = getenv(name);
  return e && *e ? atoi(e) : dflt;
}

/* A 3-D range launched as one work-group per (row block, sample), gl[0] work-items each, when the device
 * allows groups that large: so that even few row blocks spread over the cores (PoCL's own choice for
 * small ranges can be one work-group for everything), and so that no group's private state outgrows a
 * worker thread's stack (dgrad_rows, with PoCL's choice of 4096 work-items per group, crashed). */
lu_status lu_launch_by_rows(lu_device *dev, cl_kernel k, const size_t gl[3], const char *name) {
  size_t lo[3] = {gl[0], 1, 1};
  return lu_launch(dev, k, 3, gl, gl[0] <= dev->max_wg ? lo : NULL, name);
}

typedef struct { int vx, cob, wgrad_vx, cobw, cib, cov; } conv_tunables;

static conv_tunables tunables(const lu_device *dev) {
  conv_tunables t = dev->is_gpu ? (conv_tunables){LU_CONV_VX_GPU, LU_CONV_COB_GPU, LU_CONV_WGRAD_VX_GPU,
                                                  LU_CONV_COBW_GPU, LU_CONV_CIB, 1}
                                : (conv_tunables){LU_CONV_VX, LU_CONV_COB, LU_CONV_WGRAD_VX, LU_CONV_COBW, LU_CONV_CIB, 1};
  t.vx = lu_conv_env_int("LUNET_CONV_VX", t.vx);
  t.cob = lu_conv_env_int("LUNET_CONV_COB", t.cob);
  t.wgrad_vx = lu_conv_env_int("LUNET_CONV_WGRAD_VX", t.wgrad_vx);
  t.cobw = lu_conv_env_int("LUNET_CONV_COBW", t.cobw);
  if (t.cob < 1) t.cob = 1;
  if (t.cobw < 1) t.cobw = 1;
  return t;
}

/* Lanes per work-item along x ($LUNET_CONV_VX caps it, for tuning). */
static int pick_vx_cap(int ox, int cap) {
  int v = ox >= 16 ? 16 : ox >= 8 ? 8 : 4;
  return v > cap ? (cap >= 8 ? 8 : 4) : v;
}

/* Build options for direct.cl: every kernel of one geometry and lane count shares one program build. */
static void direct_opts(const conv_tunables *t, const int *k, const int *s, const int *p, int vx, char *buf, size_t n) {
  snprintf(buf, n,
           "-DKZ=%d -DKY=%d -DKX=%d -DSZ=%d -DSY=%d -DSX=%d -DPZ=%d -DPY=%d -DPX=%d -DVX=%d -DCOB=%d -DCOBW=%d -DCIB=%d "
           "-DCOV=%d",
           k[0], k[1], k[2], s[0], s[1], s[2], p[0], p[1], p[2], vx, t->cob, t->cobw, t->cib, t->cov);
}

/* Appends printf-formatted build options to buf (n bytes, holding a string). */
static void opts_add(char *buf, size_t n, const char *fmt, ...) {
  size_t len = strlen(buf);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf + len, n - len, fmt, ap);
  va_end(ap);
}

/* Output positions per work-item of the channel-vector kernel, or 0 for the x-vector kernel: on CPUs
 * (where a row of 4-8 x-lanes leaves most of a 16-lane register idle) with enough output channels to
 * fill the lanes. Rows up to 8 wide are one work-item; wider ones are split evenly.
 * $LUNET_CONV_NO_CVEC=1 keeps the x-vector kernel (measurements). */
/* conv_cvec's positions per work-item along a row of `extent`: the row in equal pieces of <= 8. */
static int cvec_block(int extent) {
  int parts = (extent + 7) / 8;
  return (extent + parts - 1) / parts;
}

/* The input extent that blocks of `block` outputs read along an axis: every block is computed whole,
 * so the last one reaches past `extent` outputs (the padded copies must cover it). */
static int blocked_reach(int extent, int block, int stride, int taps) {
  return ((extent + block - 1) / block * block - 1) * stride + taps;
}

static int cvec_positions(const lu_device *dev, int ox, int cout) {
  if (!dev->is_cpu || cout < 12 || getenv("LUNET_CONV_NO_CVEC")) return 0;
  /* wider rows too when 16-lane x-vectors would leave a quarter of their lanes idle (a 20-wide row
   * fills 20 of 32): 24x20 layers 1.38 -> 0.91 ms, 2.68 -> 1.60 ms; 48x40 ones stay faster on x-vectors */
  int vecs = (ox + 15) / 16;
  if (ox >= 16 && 5 * ox >= 4 * 16 * vecs) return 0;
  return cvec_block(ox);
}

/* What run_direct computes; the value is also pack_weights' `flip` argument, except for
 * DIRECT_BWD_DATA_STRIDED, which packs like DIRECT_CONVT (unflipped, channels swapped). */
enum {
  DIRECT_CONV = 0,            /* conv_direct / conv_cvec; w (Cout, Cin, k...) */
  DIRECT_BWD_DATA = 1,        /* stride-1 backward data as a conv of dy: w (Cin', Cout', k...) flipped */
  DIRECT_CONVT = 2,           /* transposed conv forward, k = s: convT_cvec; w (Cin, Cout, k...) */
  DIRECT_BWD_DATA_STRIDED = 3 /* strided backward data: dgrad_cvec; w (Cin', Cout', k...) */
};

/* conv_rows instead of conv_direct: on CPUs, for x-vectors of 16 lanes along rows of 3 taps, pad 1,
 * stride 1 in x and y (two output rows share each weight broadcast), when the kernel has 3 taps along z
 * or the pass has >= 32 input channels (forward; backward data >= 64) and >= 16 output channels. Single
 * layers, forward, one process alternating (best-of / median ratios over 4-9 rounds): 3-D 64^3 32 ch
 * 1.21-1.25x, 32^3 64 ch 1.0-1.27x, 16^3 128 ch 1.10x (backward data 1.07-1.20x); 2-D 64x64 128 ch
 * 1.07-1.13x, 128x128 128 > 64 ch 1.09-1.15x. 2-D layers with 32-64 input channels lost (0.92-0.96x)
 * until conv_rows swept its channel blocks per chunk; in the ninth session they gained: forward 256^2
 * 32 > 32 1.19-1.29x, 128^2 64 > 64 1.09-1.30x, 256^2 64 > 32 1.01-1.27x, backward data from 64 dy
 * channels 1.14-1.44x, from 32 still 0.8-0.98x. $LUNET_CONV_ROWS: 1 wherever the geometry allows, 0
 * never (conv.set_fwd). */
static int rows_apply(const lu_device *dev, int Cin, int Cout, const int *k, const int *s, const int *p, int vx,
                      int mode) {
  if (!dev->is_cpu || vx != 16 || k[2] != 3 || p[2] != 1 || p[1] != k[1] / 2 || s[2] != 1 || s[1] != 1) return 0;
  int min_cin = mode == DIRECT_CONV ? 32 : 64;
  return lu_conv_env_int("LUNET_CONV_ROWS", k[0] == 3 || (Cin >= min_cin && Cout >= 16)) != 0;
}

/* conv_rows' row blocks per work-item: with weights over 2 MB (an L2 of this machine) 8, so that each
 * chunk-and-channel-block slice of weights (18 KB) comes from L2 once and from L1 for the other 7 row
 * blocks (with one, each work-item streamed all weights from L3: 2-D 16^2 1024 > 512 and 512 > 512, 32^2
 * 512 > 256, forward and backward data, 1.04-1.17x), but never fewer work-items than compute units. */
static int rows_group(const lu_device *dev, int N, int Cin, int Cout, int blocks, int xblocks, const int *k) {
  size_t wbytes = (size_t)Cin * Cout * k[0] * k[1] * k[2] * sizeof(float);
  if (wbytes <= (2u << 20)) return 1;
  size_t cu = dev->compute_units ? dev->compute_units : 1;
  int g = 8;
  while (g > 1 && ((size_t)blocks + g - 1) / g * xblocks * N < cu) g /= 2;
  return g;
}

/* A zero-padded copy (pad_input) of x (N, C, Z, Y, X) with extents (Zp, Yp, Xp): the input is at
 * offset (PZ, PY, PX) of the build options opts. *out is a pool buffer of *bytes bytes. */
static lu_status pad_copy(lu_device *dev, const char *opts, cl_mem x, int N, int C, int Z, int Y, int X, int Zp,
                          int Yp, int Xp, cl_mem *out, size_t *bytes) {
  cl_kernel kpad;
  *bytes = (size_t)N * C * Zp * Yp * Xp * sizeof(float);
  LU_TRY(lu_kernel_get(dev, DIRECT_FILE, "pad_input", opts, &kpad));
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

/* Weights packed per block of cob output channels (pack_weights with `flip`, build options opts, whose
 * COB must be cob): w is (cout, cin, taps...) or, flipped or transposed, (cin, cout, taps...) with cin
 * the pass's input channels. *wp is a pool buffer of *bytes bytes. */
static lu_status pack_blocks(lu_device *dev, const char *opts, cl_mem w, int cin, int cout, int cob, size_t kv,
                             int flip, cl_mem *wp, size_t *bytes) {
  cl_kernel kp;
  LU_TRY(lu_kernel_get(dev, DIRECT_FILE, "pack_weights", opts, &kp));
  int ncb = (cout + cob - 1) / cob;
  *bytes = (size_t)ncb * cob * cin * kv * sizeof(float);
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
  }
  return st;
}

/* A row of zeros for the row kernels (conv_rows, dgrad_rows) to read where an input row lies off the
 * input: `len` floats (a row and 2 vectors of slack either side) in a pool buffer of *bytes bytes. */
static lu_status zero_row(lu_device *dev, int len, cl_mem *out, size_t *bytes) {
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
static lu_status conv_kernel_args(cl_kernel kk, const char *kname, cl_mem x, cl_mem wp, cl_mem w, const lu_tensor *b,
                                  cl_mem y, int Cin, int Cout, int Z, int Y, int X, int OZ, int OY, int OX) {
  cl_mem mb = b ? b->buf : w;
  int hb = b != NULL;
  if (LU_ARG(kk, 0, x) | LU_ARG(kk, 1, wp) | LU_ARG(kk, 2, mb) | LU_ARG(kk, 3, hb) | LU_ARG(kk, 4, y) |
      LU_ARG(kk, 5, Cin) | LU_ARG(kk, 6, Cout) | LU_ARG(kk, 7, Z) | LU_ARG(kk, 8, Y) | LU_ARG(kk, 9, X) |
      LU_ARG(kk, 10, OZ) | LU_ARG(kk, 11, OY) | LU_ARG(kk, 12, OX))
    return lu_fail(LU_ECL, "%s args", kname);
  return LU_OK;
}

/* The weights w of a pass packed by kp (wino_pack, s2_pack: arguments out, w, Cin, Cout, and any further
 * ones already set), `floats` per input channel and output channel, in blocks of cob output channels:
 * *out is a pool buffer of *bytes bytes. */
static lu_status pack_launch(lu_device *dev, cl_kernel kp, const char *kname, cl_mem w, int Cin, int Cout, int cob,
                             size_t floats, cl_mem *out, size_t *bytes) {
  size_t padded = (size_t)(Cout + cob - 1) / cob * cob;
  *bytes = padded * Cin * floats * sizeof(float);
  LU_TRY(lu_buffer_alloc(dev, *bytes, out));
  lu_status st = LU_OK;
  if (LU_ARG(kp, 0, *out) | LU_ARG(kp, 1, w) | LU_ARG(kp, 2, Cin) | LU_ARG(kp, 3, Cout))
    st = lu_fail(LU_ECL, "%s args", kname);
  size_t gp[2] = {(size_t)Cin, padded};
  if (st == LU_OK) st = lu_launch(dev, kp, 2, gp, NULL, kname);
  if (st != LU_OK) {
    lu_buffer_release(dev, *out, *bytes);
    *out = NULL;
  }
  return st;
}

/* conv_wino (kernels/conv/wino.cl, Winograd F(2,3) along x) instead of the direct kernels: on CPUs, for
 * 3x3, 1x3x3 and 3x3x3 stride-1 pad-1 passes, forward and backward data as a conv of dy, over rows at
 * least 32 wide and a multiple of 16. In-process A/B against conv_rows / conv_direct (tenth session):
 * 2-D forward 1.3-1.5x on 256^2-64^2 layers, 1.06-1.13x at 32^2, 1.15x at 48^2, backward data 1.6-1.9x,
 * 1.07-1.24x at 32^2; 3-D 64^3 and 32^3 forward 1.33-1.68x, backward data 1.35-1.47x, 16^3 1.12-1.26x.
 * $LUNET_CONV_WINO: 0 never (conv.set_wino). */
static int wino_apply(const lu_device *dev, int Cout, int X, const int *k, const int *s, const int *p) {
  if (!dev->is_cpu || (k[0] != 1 && k[0] != 3) || k[1] != 3 || k[2] != 3 || s[0] != 1 || s[1] != 1 || s[2] != 1)
    return 0;
  if (p[0] != k[0] / 2 || p[1] != 1 || p[2] != 1 || X % 16 != 0 || Cout < 4) return 0;
  /* rows of 16 (two to a vector) gained on 3-D 16^3 layers (1.12-1.26x) but not on 2-D 16^2 ones (0.86-1.04x
   * against conv_rows with its row groups and unpacked weights) */
  if (X == 16 && k[0] != 3) return 0;
  return lu_conv_env_int("LUNET_CONV_WINO", 1) != 0;
}

/* y (N, Cout, Z, Y, X) from x (N, Cin, Z, Y, X) by conv_wino with kz kernel planes: 2 rows per work-item
 * (1.13-1.22x over 1: the transformed rows and each slice of U shared; rows of 16: 2 pairs of rows, each
 * pair in one vector), transforms per chunk of 32 input channels, 8 with 3 planes (1.16-1.21x over 16:
 * 12 rows per channel); w as run_direct's (flip: backward data). */
static lu_status run_wino(lu_device *dev, int N, int Cin, int Cout, int Z, int Y, int X, int kz, cl_mem x,
                          cl_mem w, int flip, const lu_tensor *b, cl_mem y) {
  int cob = lu_conv_env_int("LUNET_CONV_WINO_COB", 4);
  char opts[80];
  int rg = lu_conv_env_int("LUNET_CONV_WINO_RG", 2);
  int chunk = lu_conv_env_int("LUNET_CONV_WINO_CICH", kz == 3 ? 8 : 32);
  int pair = X == 16;
  snprintf(opts, sizeof opts, "-DCOB=%d -DCICH=%d -DRG=%d -DKZ=%d -DPAIR=%d", cob, chunk, rg, kz, pair);
  cl_kernel kp, kk;
  LU_TRY(lu_kernel_get(dev, WINO_FILE, "wino_pack", opts, &kp));
  LU_TRY(lu_kernel_get(dev, WINO_FILE, "conv_wino", opts, &kk));
  cl_mem u;
  size_t ubytes;
  if (LU_ARG(kp, 4, flip)) return lu_fail(LU_ECL, "wino_pack args");
  LU_TRY(pack_launch(dev, kp, "wino_pack", w, Cin, Cout, cob, (size_t)kz * 12, &u, &ubytes));
  lu_status st = conv_kernel_args(kk, "conv_wino", x, u, w, b, y, Cin, Cout, Z, Y, X, Z, Y, X);
  int wrows = rg * (pair + 1);
  size_t gl[3] = {(size_t)(X + 31) / 32, (size_t)Z * ((Y + wrows - 1) / wrows), (size_t)N};
  if (st == LU_OK) st = lu_launch_by_rows(dev, kk, gl, "conv_wino");
  lu_buffer_release(dev, u, ubytes);
  return st;
}

/* conv_s2rows (kernels/conv/s2rows.cl) for strided forwards on CPUs: kernel (1 or 3, 3, 3), stride
 * (1 or 2, 2, 2), pad (k / 2, 1, 1), rows a multiple of 32 wide. In-process A/B against conv_direct
 * (tenth session): 2-D 256^2-64^2 1.19-1.35x, 32^2 1.08x; 3-D 64^3 and 32^3 1.28-1.41x.
 * $LUNET_CONV_S2ROWS: 0 never (conv.set_s2rows). */
static int s2rows_apply(const lu_device *dev, int X, const int *k, const int *s, const int *p) {
  if (!dev->is_cpu || (k[0] != 1 && k[0] != 3) || k[1] != 3 || k[2] != 3 || s[1] != 2 || s[2] != 2) return 0;
  if ((s[0] != 1 && s[0] != 2) || p[0] != k[0] / 2 || p[1] != 1 || p[2] != 1 || X % 32 != 0) return 0;
  return lu_conv_env_int("LUNET_CONV_S2ROWS", 1) != 0;
}

/* y (N, Cout, OZ, OY, OX) from x by conv_s2rows: 2 output rows per work-item (1 row: 0.73-0.91x, 4: 0.89-1.03x),
 * de-interleaved per chunk of 32 input channels, 8 with 3x3x3 kernels; w (Cout, Cin, k...). */
static lu_status run_s2rows(lu_device *dev, int N, int Cin, int Cout, int Z, int Y, int X, int OZ, int OY, int OX,
                            const int *k, const int *s, cl_mem x, cl_mem w, const lu_tensor *b, cl_mem y) {
  int cob = 16, rg = lu_conv_env_int("LUNET_CONV_S2_RG", 2);
  int chunk = lu_conv_env_int("LUNET_CONV_S2_CICH", k[0] == 3 ? 8 : 32);
  char opts[96];
  snprintf(opts, sizeof opts, "-DCOB=%d -DCICH=%d -DRG=%d -DKZ=%d -DSZ=%d", cob, chunk, rg, k[0], s[0]);
  cl_kernel kp, kk;
  LU_TRY(lu_kernel_get(dev, S2ROWS_FILE, "s2_pack", opts, &kp));
  LU_TRY(lu_kernel_get(dev, S2ROWS_FILE, "conv_s2rows", opts, &kk));
  cl_mem wp;
  size_t wbytes;
  LU_TRY(pack_launch(dev, kp, "s2_pack", w, Cin, Cout, cob, (size_t)k[0] * 9, &wp, &wbytes));
  lu_status st = conv_kernel_args(kk, "conv_s2rows", x, wp, w, b, y, Cin, Cout, Z, Y, X, OZ, OY, OX);
  size_t gl[3] = {(size_t)OX / 16, (size_t)OZ * ((OY + rg - 1) / rg), (size_t)N};
  if (st == LU_OK) st = lu_launch_by_rows(dev, kk, gl, "conv_s2rows");
  lu_buffer_release(dev, wp, wbytes);
  return st;
}

/* y (N, Cout, OZ, OY, OX) from x (N, Cin, Z, Y, X) and weights w with geometry k, s, p, as `mode`
 * says; for the backward-data modes x is dy and y is dx, Cin / Cout the pass's own channel counts
 * and k, s, p the forward convolution's (stride 1: already flipped to k - 1 - p). The weights are
 * packed per channel block first. */
static lu_status run_direct(lu_device *dev, int N, int Cin, int Cout, int Z, int Y, int X, int OZ, int OY, int OX,
                            const int *k, const int *s, const int *p, cl_mem x, cl_mem w, int mode, const lu_tensor *b,
                            cl_mem y) {
  if (mode == DIRECT_CONV && s2rows_apply(dev, X, k, s, p))
    return run_s2rows(dev, N, Cin, Cout, Z, Y, X, OZ, OY, OX, k, s, x, w, b, y);
  if (mode <= DIRECT_BWD_DATA && wino_apply(dev, Cout, X, k, s, p))
    return run_wino(dev, N, Cin, Cout, Z, Y, X, k[0], x, w, mode == DIRECT_BWD_DATA, b, y);
  conv_tunables t = tunables(dev);
  int vx = pick_vx_cap(OX, t.vx), pb = cvec_positions(dev, OX, Cout);
  if (mode >= DIRECT_CONVT) pb = OX < 8 ? OX : 8; /* convT_cvec / dgrad_cvec, any row width */
  if (mode == DIRECT_CONVT && pb % k[2]) pb -= pb % k[2]; /* convT_cvec: blocks start on a tap-0 position */
  int rows = !pb && mode <= DIRECT_BWD_DATA && rows_apply(dev, Cin, Cout, k, s, p, vx, mode);
  if (pb) t.cob = 16; /* the channel-vector kernels: 16 output channels in the lanes */
  if (rows) t.cob = lu_conv_env_int("LUNET_CONV_ROWS_COB", 8); /* conv_rows: 2 rows x 8 channels */
  int cob = t.cob;
  char opts[260];
  direct_opts(&t, k, s, p, vx, opts, sizeof opts);
  int rb = 1, order = 0, rgrp = 1;
  /* conv_rows over <= 1024 positions (N OZ OY OX) reads w in place (1: forward, 2: backward data,
   * flipped): its weights are scalar broadcasts either way, and there packing cost ~8% of the time (2-D
   * 16^2 512 > 512 and 1024 > 512 forward: 1.05-1.39x in place). Over more positions the packing weighs
   * less than the scattered reads (32^2 1.0x, 128^2 64 ch and 3-D 0.85-0.95x). */
  int wdirect = rows && Cout >= cob && lu_conv_env_int("LUNET_CONV_WDIRECT", (size_t)N * OZ * OY * OX <= 1024) != 0
                    ? 1 + (mode == DIRECT_BWD_DATA)
                    : 0;
  if (pb && mode <= DIRECT_BWD_DATA) { /* conv_cvec: rows of pb positions up to 16 accumulators */
    pb = lu_conv_env_int("LUNET_CONV_PB", pb);
    rb = lu_conv_env_int("LUNET_CONV_RB", 16 / pb < 1 ? 1 : (16 / pb > OY ? OY : 16 / pb));
    order = lu_conv_env_int("LUNET_CONV_CVEC_ORDER", 1);
  } else if (mode == DIRECT_CONVT) {
    /* convT_cvec, channel blocks slowest when the weights outgrow half the 2 MB L2: 2-D 512 > 512 (4 MB)
     * 1.29-1.81x, 512 > 256 1.46x, 3-D 320 > 256 1.75x; 256 > 128 (0.5 MB) 0.93-1.0x */
    size_t wbytes_all = (size_t)Cin * Cout * k[0] * k[1] * k[2] * sizeof(float);
    order = lu_conv_env_int("LUNET_CONVT_ORDER", wbytes_all > (1u << 20));
  }
  if (pb) opts_add(opts, sizeof opts, " -DPB=%d -DRB=%d -DCVEC_ORDER=%d", pb, rb, order);
  if (mode == DIRECT_CONVT) { /* convT_cvec: the k[1] output rows of one input row per work-item */
    rb = lu_conv_env_int("LUNET_CONVT_TROWS", k[1]);
    opts_add(opts, sizeof opts, " -DTROWS=%d", rb);
  }
  if (rows) {
    rb = lu_conv_env_int("LUNET_CONV_DRB", 2);
    rgrp = lu_conv_env_int("LUNET_CONV_RGRP",
                           rows_group(dev, N, Cin, Cout, OZ * ((OY + rb - 1) / rb), (OX + vx - 1) / vx, k));
    opts_add(opts, sizeof opts, " -DDRB=%d -DCICH=%d -DRGRP=%d -DWDIRECT=%d", rb,
             lu_conv_env_int("LUNET_CONV_CICH", 64), rgrp, wdirect);
  }
  const char *kname = mode == DIRECT_CONVT              ? "convT_cvec"
                      : mode == DIRECT_BWD_DATA_STRIDED ? "dgrad_cvec"
                      : pb                              ? "conv_cvec"
                      : rows                            ? "conv_rows"
                                                        : "conv_direct";
  int flip = mode == DIRECT_BWD_DATA_STRIDED ? DIRECT_CONVT : mode;
  int kk_is_padded = pb && mode <= DIRECT_BWD_DATA; /* conv_cvec */
  cl_kernel kk;
  LU_TRY(lu_kernel_get(dev, DIRECT_FILE, kname, opts, &kk));
  int ncb = (Cout + cob - 1) / cob;
  cl_mem wp = w;
  size_t wbytes = 0;
  if (!wdirect) LU_TRY(pack_blocks(dev, opts, w, Cin, Cout, cob, (size_t)k[0] * k[1] * k[2], flip, &wp, &wbytes));
  lu_status st = conv_kernel_args(kk, kname, x, wp, w, b, y, Cin, Cout, Z, Y, X, OZ, OY, OX);
  int per = pb ? pb : vx;
  /* conv_rows sweeps the channel blocks itself */
  size_t gl[3] = {(size_t)((OX + per - 1) / per) * (rows ? 1 : ncb),
                  ((size_t)OZ * ((OY + rb - 1) / rb) + rgrp - 1) / rgrp, (size_t)N};
  cl_mem xpad = NULL;
  size_t xpad_bytes = 0;
  if (st == LU_OK && kk_is_padded) {
    /* conv_cvec reads a zero-padded copy: extents cover every tap of every position block */
    int Zp = Z + 2 * p[0], Yp = Y + 2 * p[1], Xp = X + 2 * p[2];
    int need_x = blocked_reach(OX, pb, s[2], k[2]), need_y = blocked_reach(OY, rb, s[1], k[1]);
    if (Xp < need_x) Xp = need_x;
    if (Yp < need_y) Yp = need_y;
    st = pad_copy(dev, opts, x, N, Cin, Z, Y, X, Zp, Yp, Xp, &xpad, &xpad_bytes);
    int phase = 0, wofs = 0;
    if (st == LU_OK && (LU_ARG(kk, 0, xpad) | LU_ARG(kk, 7, Zp) | LU_ARG(kk, 8, Yp) | LU_ARG(kk, 9, Xp) |
                        LU_ARG(kk, 13, OZ) | LU_ARG(kk, 14, OY) | LU_ARG(kk, 15, OX) | LU_ARG(kk, 16, phase) |
                        LU_ARG(kk, 17, wofs)))
      st = lu_fail(LU_ECL, "conv_cvec args");
  }
  cl_mem zrow = NULL;
  size_t zrow_bytes = 0;
  if (st == LU_OK && rows) {
    st = zero_row(dev, X, &zrow, &zrow_bytes);
    if (st == LU_OK && LU_ARG(kk, 13, zrow)) st = lu_fail(LU_ECL, "conv_rows args");
  }
  /* conv_cvec, conv_rows: one work-group per row block and sample */
  if (st == LU_OK)
    st = kk_is_padded || rows ? lu_launch_by_rows(dev, kk, gl, kname) : lu_launch(dev, kk, 3, gl, NULL, kname);
  if (zrow) lu_buffer_release(dev, zrow, zrow_bytes);
  if (xpad) lu_buffer_release(dev, xpad, xpad_bytes);
  if (!wdirect) lu_buffer_release(dev, wp, wbytes);
  return st;
}

/* ---- strided backward data by output phases ----
 * The backward data of a strided conv as stride-1 convolutions of dy, one per output phase, each run by
 * conv_cvec writing its positions of dx in place (output strides OS*, phase offset): along an axis of
 * stride 2 (3 taps, pad 1) the even positions of dx take tap 1 of dy[m] only and the odd ones taps 2
 * and 0 of dy[m] and dy[m + 1], so each phase is a dense 1- or 2-tap convolution (axes of stride 1 keep
 * their flipped kernel) and no multiply lands on a zero. The direct strided kernel (dgrad_cvec) tests
 * parity and bounds per value and ran at a third to a half of this rate. (Transposed convolutions split
 * the same way, a pointwise conv per output phase, measured no faster than convT_cvec.) */
typedef struct { int extent, taps; } phase_axis;

/* Strided backward data on CPUs, when every axis is stride 2 / 3 taps / pad 1, stride 1 / 3 taps / pad 1
 * or stride 1 / 1 tap, with at least 64 positions per phase: below, the launches cost more than the
 * skipped zeros (2-D 8x8 dx 4.7 vs 4.2 ms, 3-D 4^3 7.5 vs 5.6 ms; 16x16: 7.4 vs 17.1 ms). */
static int dgrad_phases_apply(const lu_conv_geom *g, const lu_device *dev) {
  if (!dev->is_cpu || g->Cin < 12 || getenv("LUNET_CONV_NO_PHASES")) return 0;
  if ((long)g->Z * g->Y * g->X < 64L * g->s[0] * g->s[1] * g->s[2]) return 0;
  for (int i = 0; i < 3; i++) {
    int k = g->k[i], s = g->s[i], p = g->p[i];
    if (!((s == 2 && k == 3 && p == 1) || (s == 1 && k == 3 && p == 1) || (s == 1 && k == 1 && p == 0))) return 0;
  }
  return 1;
}

/* Phase ph (0: even, 1: odd) of axis i: its extent in dx and its taps (pack_phases maps them to the
 * forward taps). */
static phase_axis phase_of(const lu_conv_geom *g, int i, int ph) {
  int D = i == 0 ? g->Z : i == 1 ? g->Y : g->X;
  if (g->s[i] == 2) return ph ? (phase_axis){D / 2, 2} : (phase_axis){(D + 1) / 2, 1};
  return (phase_axis){D, g->k[i]};
}

static lu_status run_dgrad_phases(const lu_conv_geom *g, const lu_tensor *dy, const lu_tensor *w, lu_tensor *dx) {
  lu_device *dev = dy->dev;
  conv_tunables t = tunables(dev);
  t.cob = 16;
  const int cin = g->Cout, cout = g->Cin; /* this pass: dy's channels in, dx's out */
  const int O[3] = {g->OZ, g->OY, g->OX}, one[3] = {1, 1, 1}, ncb = (cout + 15) / 16;
  int off[3]; /* dy's zero padding before: 1 along the stride-1 axes of 3 taps */
  for (int i = 0; i < 3; i++) off[i] = g->k[i] == 3 && g->s[i] == 1;
  /* one program build for every phase (conv_cvec takes the taps from its phase argument, PHASE_TAPS):
   * positions per work-item (pb along x, rb rows) from the widest phase, the even one */
  phase_axis y0 = phase_of(g, 1, 0), x0 = phase_of(g, 2, 0);
  int pb = cvec_block(x0.extent);
  int rb = 16 / pb > y0.extent ? y0.extent : 16 / pb;
  /* per phase: its axes and the offset of its packed weights; the padded dy covers what every phase reads */
  struct { phase_axis ax[3]; int code; size_t wofs; } ph[8];
  int nph = 0, Dp[3] = {O[0] + 2 * off[0], O[1] + 2 * off[1], O[2] + 2 * off[2]};
  size_t wfloats = 0;
  for (int pz = 0; pz < g->s[0]; pz++)
    for (int py = 0; py < g->s[1]; py++)
      for (int px = 0; px < g->s[2]; px++) {
        phase_axis az = phase_of(g, 0, pz), ay = phase_of(g, 1, py), ax = phase_of(g, 2, px);
        size_t wofs = wfloats;
        wfloats += (size_t)ncb * 16 * cin * az.taps * ay.taps * ax.taps; /* as pack_phases lays them out */
        if (!az.extent || !ay.extent || !ax.extent) continue;
        int need[3] = {blocked_reach(az.extent, 1, 1, az.taps), blocked_reach(ay.extent, rb, 1, ay.taps),
                       blocked_reach(ax.extent, pb, 1, ax.taps)};
        for (int i = 0; i < 3; i++)
          if (Dp[i] < need[i]) Dp[i] = need[i];
        ph[nph].ax[0] = az, ph[nph].ax[1] = ay, ph[nph].ax[2] = ax;
        ph[nph].code = pz * 4 + py * 2 + px + (az.taps << 3) + (ay.taps << 5) + (ax.taps << 7);
        ph[nph].wofs = wofs;
        nph++;
      }
  char opts[320];
  direct_opts(&t, g->k, one, off, pick_vx_cap(x0.extent, t.vx), opts, sizeof opts);
  /* channel blocks slowest (as in convT_cvec) when the weights outgrow an L2 of this machine: 2-D 16^2 512 >
   * 512 and 32^2 256 > 512 1.05-1.11x; 1.2 MB (128 > 256) 0.96-1.0x */
  size_t wbytes_all = (size_t)g->Cin * g->Cout * g->kv * sizeof(float);
  opts_add(opts, sizeof opts, " -DPB=%d -DRB=%d -DOSZ=%d -DOSY=%d -DOSX=%d -DPHASE_TAPS=1 -DCVEC_ORDER=%d", pb, rb,
           g->s[0], g->s[1], g->s[2], lu_conv_env_int("LUNET_CONV_PHASE_ORDER", wbytes_all > (2u << 20)));
  cl_kernel kp, kk;
  LU_TRY(lu_kernel_get(dev, DIRECT_FILE, "pack_phases", opts, &kp));
  LU_TRY(lu_kernel_get(dev, DIRECT_FILE, "conv_cvec", opts, &kk));
  cl_mem dyp = NULL, wp = NULL;
  size_t dyp_bytes = 0, wbytes = wfloats * sizeof(float);
  int zero = 0;
  LU_TRY(lu_buffer_alloc(dev, wbytes, &wp));
  lu_status st = pad_copy(dev, opts, dy->buf, g->N, cin, O[0], O[1], O[2], Dp[0], Dp[1], Dp[2], &dyp, &dyp_bytes);
  if (st == LU_OK && (LU_ARG(kp, 0, wp) | LU_ARG(kp, 1, w->buf) | LU_ARG(kp, 2, cin) | LU_ARG(kp, 3, cout) |
                      LU_ARG(kp, 4, g->k[0]) | LU_ARG(kp, 5, g->k[1]) | LU_ARG(kp, 6, g->k[2]) |
                      LU_ARG(kp, 7, g->s[0]) | LU_ARG(kp, 8, g->s[1]) | LU_ARG(kp, 9, g->s[2])))
    st = lu_fail(LU_ECL, "pack_phases args");
  size_t gp[2] = {(size_t)cin, (size_t)ncb};
  if (st == LU_OK) st = lu_launch(dev, kp, 2, gp, NULL, "pack_phases");
  if (st == LU_OK &&
      (LU_ARG(kk, 0, dyp) | LU_ARG(kk, 1, wp) | LU_ARG(kk, 2, w->buf) | LU_ARG(kk, 3, zero) | LU_ARG(kk, 4, dx->buf) |
       LU_ARG(kk, 5, cin) | LU_ARG(kk, 6, cout) | LU_ARG(kk, 7, Dp[0]) | LU_ARG(kk, 8, Dp[1]) | LU_ARG(kk, 9, Dp[2]) |
       LU_ARG(kk, 13, g->Z) | LU_ARG(kk, 14, g->Y) | LU_ARG(kk, 15, g->X)))
    st = lu_fail(LU_ECL, "conv_cvec args");
  for (int i = 0; i < nph && st == LU_OK; i++) {
    phase_axis az = ph[i].ax[0], ay = ph[i].ax[1], ax = ph[i].ax[2];
    const int wofs = (int)ph[i].wofs;
    if (LU_ARG(kk, 10, az.extent) | LU_ARG(kk, 11, ay.extent) | LU_ARG(kk, 12, ax.extent) |
        LU_ARG(kk, 16, ph[i].code) | LU_ARG(kk, 17, wofs))
      st = lu_fail(LU_ECL, "conv_cvec args (phase %d)", ph[i].code & 7);
    size_t gl[3] = {(size_t)((ax.extent + pb - 1) / pb) * ncb, (size_t)az.extent * ((ay.extent + rb - 1) / rb),
                    (size_t)g->N};
    if (st == LU_OK) st = lu_launch_by_rows(dev, kk, gl, "conv_cvec");
  }
  if (dyp) lu_buffer_release(dev, dyp, dyp_bytes);
  lu_buffer_release(dev, wp, wbytes);
  return st;
}

int lu_convT_fwd_direct_applies(const lu_conv_geom *g, const lu_device *dev) {
  return dev->is_cpu && g->kv > 1 && g->Cout >= 12 && !getenv("LUNET_CONV_NO_CVEC");
}

lu_status lu_convT_fwd_direct(const lu_conv_geom *g, const lu_tensor *x, const lu_tensor *w, const lu_tensor *b,
                              lu_tensor *y) {
  const int p0[3] = {0, 0, 0};
  return run_direct(x->dev, g->N, g->Cin, g->Cout, g->Z, g->Y, g->X, g->OZ, g->OY, g->OX, g->s, g->s, p0, x->buf,
                    w->buf, DIRECT_CONVT, b, y->buf);
}

#define WGRAD_PAD_MAX_BYTES ((size_t)8 << 20)

#ifndef LU_CONV_WGRAD_CHUNK
#define LU_CONV_WGRAD_CHUNK 4096 /* output voxels per partial sum (keeps a chunk's dy and x in cache) */
#endif

/* dw (+)= the sum over nchunks partial weight gradients of n values each (part[chunk][i]). */
static lu_status reduce_partials(lu_device *dev, cl_mem dw, cl_mem part, int n, int nchunks, int accumulate) {
  cl_kernel k;
  LU_TRY(lu_kernel_get(dev, REDUCE_FILE, "reduce_chunks", "", &k));
  if (LU_ARG(k, 0, dw) | LU_ARG(k, 1, part) | LU_ARG(k, 2, n) | LU_ARG(k, 3, nchunks) | LU_ARG(k, 4, accumulate))
    return lu_fail(LU_ECL, "reduce_chunks args");
  size_t g1 = lu_global_1d((size_t)n, 64), l1 = 64; /* one work-group size: one compile, not one per shape */
  return lu_launch(dev, k, 1, &g1, &l1, "reduce_chunks");
}

static lu_status run_wgrad_direct(lu_device *dev, const lu_conv_geom *g, const lu_tensor *x, const lu_tensor *dy,
                                  lu_tensor *dw, int accumulate) {
  conv_tunables t = tunables(dev);
  int vx = pick_vx_cap(g->OX, t.wgrad_vx), cobw = t.cobw;
  /* on a CPU, output channels in the lanes (wgrad_cvec over a transposed dy) for every row width:
   * 2x the x-vector kernel over the 3-D 64^3 net's layers (1725 vs 3404 ms), 1.5-3x on 2-D rows of
   * 5-40; not for fewer than LU_CONV_CIB input channels (a stem would leave most CIB rows idle).
   * A correlation form (x-vectors along whole channel rows, no broadcasts) ran the stride-1 layers
   * until wgrad_cvec's dy and partial sums went into channel blocks; then wgrad_cvec took 0.53-0.95x
   * its time on every 2-D and 3-D layer of the bench nets, and the correlation was removed. */
  int cvec = dev->is_cpu && g->Cout >= 12 && g->Cin >= LU_CONV_CIB && !getenv("LUNET_CONV_NO_CVEC");
  const char *kname = cvec ? "wgrad_cvec" : "wgrad_direct";
  if (cvec) { /* two vectors of output channels share each x broadcast, over half as many input channels */
    t.cov = lu_conv_env_int("LUNET_CONV_WGRAD_COV", 2);
    t.cib = lu_conv_env_int("LUNET_CONV_CIB", LU_CONV_CIB / t.cov);
  }
  char opts[240];
  direct_opts(&t, g->k, g->s, g->p, vx, opts, sizeof opts);
  /* wgrad_cvec on a zero-padded x: no bounds tests in the inner loop (2-D ct_iso weight gradients
   * 1.2-1.5x); only for small inputs, whose copy does not raise a training step's peak memory (and
   * within half the conv workspace, which specs shrink to reach the unpadded path) */
  int Zp = g->Z + 2 * g->p[0], Yp = g->Y + 2 * g->p[1], Xp = g->X + 2 * g->p[2];
  size_t xpad_max = lu_conv_workspace_bytes() / 2;
  if (xpad_max > WGRAD_PAD_MAX_BYTES) xpad_max = WGRAD_PAD_MAX_BYTES;
  int wpad = cvec && (size_t)g->N * g->Cin * Zp * Yp * Xp * sizeof(float) <= xpad_max;
  if (wpad) opts_add(opts, sizeof opts, " -DWPAD=1");
  /* wgrad_cvec with every tap of a position at once (WTAPS): each dy vector is loaded once for the 3
   * taps, 14 instead of 18 loads per 24 FMAs; on rows of >= 64 outputs (2-D 128^2 and 256^2 stride 2:
   * 0.88-0.91x the time) but not on narrow ones (16^3 stride 2 with 8-wide rows 1.5-1.8x; 32 wide 0.9-1.1x).
   * $LUNET_CONV_WGRAD_TAPS=1 / 0 forces it on / off. */
  if (cvec && lu_conv_env_int("LUNET_CONV_WGRAD_TAPS", g->OX >= 64)) opts_add(opts, sizeof opts, " -DWTAPS=1");
  cl_kernel k;
  LU_TRY(lu_kernel_get(dev, DIRECT_FILE, kname, opts, &k));
  int total = g->N * g->OZ * g->OY;
  int rows = lu_conv_env_int("LUNET_CONV_WGRAD_CHUNK", LU_CONV_WGRAD_CHUNK) / g->OX;
  if (rows < 1) rows = 1;
  int nchunks = (total + rows - 1) / rows;
  /* wgrad_cvec writes its partial sums in blocks of 16 COV output channels (CP of them), which
   * reduce_cvec reorders, also for one chunk */
  int cob16 = 16 * t.cov, cp = (g->Cout + cob16 - 1) / cob16 * cob16, os = g->OS;
  size_t wn = (size_t)g->Cout * g->Cin * g->kv, pn = cvec ? (size_t)cp * g->Cin * g->kv : wn;
  size_t maxch = lu_conv_workspace_bytes() / (pn * sizeof(float));
  if (maxch < 1) maxch = 1;
  if ((size_t)nchunks > maxch) {
    nchunks = (int)maxch;
    rows = (total + nchunks - 1) / nchunks;
    nchunks = (total + rows - 1) / rows;
  }
  /* one chunk and no accumulation: wgrad_direct's partial sums are the gradient, written in place */
  int direct_out = !cvec && nchunks == 1 && !accumulate;
  size_t cap = direct_out ? 0 : pn * (size_t)nchunks * sizeof(float);
  cl_mem part = dw->buf;
  if (!direct_out) LU_TRY(lu_buffer_alloc(dev, cap, &part));
  cl_mem mx = x->buf, mdy = dy->buf, dyt = NULL;
  int N = g->N, cin = g->Cin, cout = g->Cout, Z = g->Z, Y = g->Y, X = g->X, OZ = g->OZ, OY = g->OY, OX = g->OX;
  lu_status st = LU_OK;
  size_t tbytes = (size_t)g->N * g->OS * cp * sizeof(float);
  cl_mem xpad = NULL;
  size_t xpad_bytes = 0;
  if (wpad) {
    st = pad_copy(dev, opts, mx, N, cin, Z, Y, X, Zp, Yp, Xp, &xpad, &xpad_bytes);
    mx = xpad;
    Z = Zp;
    Y = Yp;
    X = Xp;
  }
  if (st == LU_OK && cvec) {
    cl_kernel kt;
    st = lu_kernel_get(dev, DIRECT_FILE, "transpose_dy", opts, &kt);
    if (st == LU_OK) st = lu_buffer_alloc(dev, tbytes, &dyt);
    if (st == LU_OK && (LU_ARG(kt, 0, dyt) | LU_ARG(kt, 1, mdy) | LU_ARG(kt, 2, cout) | LU_ARG(kt, 3, cp) |
                        LU_ARG(kt, 4, os)))
      st = lu_fail(LU_ECL, "transpose_dy args");
    size_t gt[3] = {(size_t)(g->OS + 15) / 16, (size_t)cp / 16, (size_t)g->N};
    if (st == LU_OK) st = lu_launch(dev, kt, 3, gt, NULL, "transpose_dy");
    mdy = dyt;
  }
  if (st == LU_OK && LU_ARG(k, 0, part) | LU_ARG(k, 1, mx) | LU_ARG(k, 2, mdy) | LU_ARG(k, 3, N) | LU_ARG(k, 4, cin) |
      LU_ARG(k, 5, cout) | LU_ARG(k, 6, Z) | LU_ARG(k, 7, Y) | LU_ARG(k, 8, X) | LU_ARG(k, 9, OZ) | LU_ARG(k, 10, OY) |
      LU_ARG(k, 11, OX) | LU_ARG(k, 12, rows))
    st = lu_fail(LU_ECL, "%s args", kname);
  size_t gl[2] = {(size_t)((g->Cout + cobw - 1) / cobw) * g->Cin * g->k[0] * g->k[1], (size_t)nchunks};
  if (cvec) gl[0] = (size_t)(cp / cob16) * ((g->Cin + t.cib - 1) / t.cib) * g->k[0] * g->k[1];
  /* wgrad_cvec in work-groups of one (a, b) sweep: left to itself PoCL made groups of thousands of
   * work-items, three in all on the 2-D decoder's 1024-channel conv (two cores: 38 -> 29 ms) */
  size_t lo[2] = {(size_t)g->k[0] * g->k[1], 1};
  if (st == LU_OK) st = lu_launch(dev, k, 2, gl, cvec ? lo : NULL, kname);
  if (st == LU_OK && cvec) {
    cl_kernel kr;
    int m = g->Cin * g->kv;
    st = lu_kernel_get(dev, DIRECT_FILE, "reduce_cvec", opts, &kr);
    if (st == LU_OK && (LU_ARG(kr, 0, dw->buf) | LU_ARG(kr, 1, part) | LU_ARG(kr, 2, cout) | LU_ARG(kr, 3, cp) |
                        LU_ARG(kr, 4, m) | LU_ARG(kr, 5, nchunks) | LU_ARG(kr, 6, accumulate)))
      st = lu_fail(LU_ECL, "reduce_cvec args");
    size_t gr[2] = {(size_t)(m + 15) / 16, (size_t)cp / 16};
    if (st == LU_OK) st = lu_launch(dev, kr, 2, gr, NULL, "reduce_cvec");
  } else if (st == LU_OK && !direct_out) {
    st = reduce_partials(dev, dw->buf, part, (int)wn, nchunks, accumulate);
  }
  if (!direct_out) lu_buffer_release(dev, part, cap);
  if (dyt) lu_buffer_release(dev, dyt, tbytes);
  if (xpad) lu_buffer_release(dev, xpad, xpad_bytes);
  return st;
}

/* ---- forward ---- */

static lu_status conv_fwd(const lu_conv_geom *g, const lu_tensor *x, const lu_tensor *w, const lu_tensor *b,
                          lu_tensor *y) {
  lu_device *dev = x->dev;
  if (use_direct(g, 0))
    return run_direct(dev, g->N, g->Cin, g->Cout, g->Z, g->Y, g->X, g->OZ, g->OY, g->OX, g->k, g->s, g->p, x->buf,
                      w->buf, DIRECT_CONV, b, y->buf);
  LU_TRY(lu_conv_bias_fill(y, b, g->N, g->Cout, g->OS));
  size_t K = (size_t)g->Cin * g->kv, S = (size_t)g->S, OS = (size_t)g->OS, Cout = (size_t)g->Cout;
  if (is_pointwise(g))
    return lu_sgemm_strided_batched(dev, 0, 0, Cout, OS, K, 1.0f, w->buf, 0, K, 0, x->buf, 0, S, K * S, 1.0f, y->buf,
                                    0, OS, Cout * OS, (size_t)g->N);
  lu_conv_tiler tl;
  lu_conv_tiler_init(&tl, g->N, g->OZ * g->OY, K * g->OX);
  size_t cap = (size_t)tl.samples_per_tile * tl.rows_per_tile * g->OX * K * sizeof(float);
  cl_mem col;
  LU_TRY(lu_buffer_alloc(dev, cap, &col));
  lu_status st = LU_OK;
  lu_conv_tile t;
  while (st == LU_OK && lu_conv_tiler_next(&tl, &t)) {
    size_t Pt = (size_t)t.nrows * g->OX;
    st = run_im2col(dev, g, x, col, &t);
    if (st != LU_OK) break;
    size_t yoff = (size_t)t.n0 * Cout * OS + (size_t)t.r0 * g->OX;
    if (t.nb == 1)
      st = lu_sgemm(dev, 0, 0, Cout, Pt, K, 1.0f, w->buf, 0, K, col, 0, Pt, 1.0f, y->buf, yoff, OS);
    else
      st = lu_sgemm_strided_batched(dev, 0, 0, Cout, Pt, K, 1.0f, w->buf, 0, K, 0, col, 0, Pt, K * Pt, 1.0f, y->buf,
                                    yoff, OS, Cout * OS, (size_t)t.nb);
  }
  lu_buffer_release(dev, col, cap);
  return st;
}

lu_status lu_conv_fwd(const lu_conv_desc *d, const lu_tensor *x, const lu_tensor *w, const lu_tensor *b,
                      lu_tensor *y) {
  lu_conv_geom g;
  LU_TRY(lu_conv_check("conv_fwd", d, 0, x, "x", w, "w", b, "b", y, "y", &g));
  return ctx(conv_fwd(&g, x, w, b, y), "conv_fwd", &g);
}

/* ---- backward data ---- */

/* ---- strided backward data by dy rows (dgrad_rows) ----
 * On CPUs, for stride 2 / 3 taps / pad 1 along y and x with a z axis of stride 2 / 3 taps / pad 1,
 * stride 1 / 3 taps / pad 1 or 1 tap, when dy rows fill a 16-lane vector. $LUNET_CONV_DGRAD_ROWS: 1
 * wherever the geometry allows, 0 never. */
static int dgrad_rows_apply(const lu_conv_geom *g, const lu_device *dev) {
  if (!dev->is_cpu || g->k[1] != 3 || g->k[2] != 3 || g->p[1] != 1 || g->p[2] != 1 || g->s[1] != 2 || g->s[2] != 2)
    return 0;
  int z_ok = (g->k[0] == 3 && g->p[0] == 1 && (g->s[0] == 1 || g->s[0] == 2)) ||
             (g->k[0] == 1 && g->p[0] == 0 && g->s[0] == 1);
  if (!z_ok) return 0;
  return lu_conv_env_int("LUNET_CONV_DGRAD_ROWS", g->OX >= 16) != 0;
}

static lu_status run_dgrad_rows(const lu_conv_geom *g, const lu_tensor *dy, const lu_tensor *w, lu_tensor *dx) {
  lu_device *dev = dy->dev;
  conv_tunables t = tunables(dev);
  t.cob = 4;
  char opts[260];
  direct_opts(&t, g->k, g->s, g->p, 16, opts, sizeof opts);
  cl_kernel kk;
  LU_TRY(lu_kernel_get(dev, DIRECT_FILE, "dgrad_rows", opts, &kk));
  int cdy = g->Cout, cdx = g->Cin, ncb = (cdx + 3) / 4;
  cl_mem wp = NULL, zrow = NULL;
  size_t wbytes, zbytes = 0;
  LU_TRY(pack_blocks(dev, opts, w->buf, cdy, cdx, 4, (size_t)g->kv, DIRECT_CONVT, &wp, &wbytes));
  lu_status st = zero_row(dev, g->OX, &zrow, &zbytes);
  int Z = g->Z, Y = g->Y, X = g->X, OZ = g->OZ, OY = g->OY, OX = g->OX;
  if (st == LU_OK && (LU_ARG(kk, 0, dy->buf) | LU_ARG(kk, 1, wp) | LU_ARG(kk, 2, dx->buf) | LU_ARG(kk, 3, cdy) |
                      LU_ARG(kk, 4, cdx) | LU_ARG(kk, 5, Z) | LU_ARG(kk, 6, Y) | LU_ARG(kk, 7, X) | LU_ARG(kk, 8, OZ) |
                      LU_ARG(kk, 9, OY) | LU_ARG(kk, 10, OX) | LU_ARG(kk, 11, zrow)))
    st = lu_fail(LU_ECL, "dgrad_rows args");
  size_t gl[3] = {(size_t)((OX + 15) / 16) * ncb, (size_t)Z * 2 * ((OY + 1) / 2), (size_t)g->N};
  /* one work-group per (dx plane, row phase, dy row block) and sample */
  if (st == LU_OK) st = lu_launch_by_rows(dev, kk, gl, "dgrad_rows");
  if (zrow) lu_buffer_release(dev, zrow, zbytes);
  lu_buffer_release(dev, wp, wbytes);
  return st;
}

static lu_status conv_bwd_data(const lu_conv_geom *g, const lu_tensor *dy, const lu_tensor *w, lu_tensor *dx) {
  lu_device *dev = dy->dev;
  size_t K = (size_t)g->Cin * g->kv, S = (size_t)g->S, OS = (size_t)g->OS, Cout = (size_t)g->Cout,
         Cin = (size_t)g->Cin;
  int strided = g->s[0] != 1 || g->s[1] != 1 || g->s[2] != 1;
  if (strided && use_direct(g, 1) && dgrad_rows_apply(g, dev)) return run_dgrad_rows(g, dy, w, dx);
  if (strided && use_direct(g, 1) && dgrad_phases_apply(g, dev)) return run_dgrad_phases(g, dy, w, dx);
  if (strided && use_direct(g, 1) && dev->is_cpu && g->Cin >= 12 && !getenv("LUNET_CONV_NO_CVEC"))
    return run_direct(dev, g->N, g->Cout, g->Cin, g->OZ, g->OY, g->OX, g->Z, g->Y, g->X, g->k, g->s, g->p, dy->buf,
                      w->buf, DIRECT_BWD_DATA_STRIDED, NULL, dx->buf);
  if (strided && use_direct(g, 1)) {
    conv_tunables tn = tunables(dev);
    char opts[240];
    direct_opts(&tn, g->k, g->s, g->p, 8, opts, sizeof opts);
    /* 3 taps, pad 1, stride 2 along x: the phase-split kernel (no zero lanes) */
    int s2x = g->k[2] == 3 && g->p[2] == 1 && g->s[2] == 2 && tn.cob >= 2 && !getenv("LUNET_CONV_NO_S2X");
    cl_kernel k;
    LU_TRY(lu_kernel_get(dev, DIRECT_FILE, s2x ? "dgrad_s2x" : "dgrad_strided", opts, &k));
    cl_mem mdy = dy->buf, mw = w->buf, mdx = dx->buf;
    int cin = g->Cin, cout = g->Cout, Z = g->Z, Y = g->Y, X = g->X, OZ = g->OZ, OY = g->OY, OX = g->OX;
    int cob = tn.cob;
    LU_CL_CHECK(LU_ARG(k, 0, mdy) | LU_ARG(k, 1, mw) | LU_ARG(k, 2, mdx) | LU_ARG(k, 3, cin) | LU_ARG(k, 4, cout) |
                    LU_ARG(k, 5, Z) | LU_ARG(k, 6, Y) | LU_ARG(k, 7, X) | LU_ARG(k, 8, OZ) | LU_ARG(k, 9, OY) |
                    LU_ARG(k, 10, OX), "dgrad_strided args");
    if (s2x) cob /= 2;
    size_t gl[3] = {(size_t)(X + (s2x ? 15 : 7)) / (s2x ? 16 : 8), (size_t)Z * Y, (size_t)g->N * ((cin + cob - 1) / cob)};
    return lu_launch(dev, k, 3, gl, NULL, s2x ? "dgrad_s2x" : "dgrad_strided");
  }
  if (use_direct(g, 1)) {
    /* stride 1: dx = conv(dy, flipped transposed w) with padding k - 1 - p (1x1: the GEMM with K = Cout
     * and M = Cin of a 3-class head ran at 1-4 GFLOP/s on PoCL) */
    int pp[3] = {g->k[0] - 1 - g->p[0], g->k[1] - 1 - g->p[1], g->k[2] - 1 - g->p[2]};
    return run_direct(dev, g->N, g->Cout, g->Cin, g->OZ, g->OY, g->OX, g->Z, g->Y, g->X, g->k, g->s, pp, dy->buf,
                      w->buf, DIRECT_BWD_DATA, NULL, dx->buf);
  }
  if (is_pointwise(g))
    return lu_sgemm_strided_batched(dev, 1, 0, Cin, S, Cout, 1.0f, w->buf, 0, K, 0, dy->buf, 0, OS, Cout * OS, 0.0f,
                                    dx->buf, 0, S, Cin * S, (size_t)g->N);
  lu_conv_tiler tl;
  lu_conv_tiler_init(&tl, g->N, g->OZ * g->OY, K * g->OX);
  int partial = tl.rows_per_tile < tl.rows;
  if (partial) LU_TRY(lu_fill(dx, 0.0f));
  size_t cap = (size_t)tl.samples_per_tile * tl.rows_per_tile * g->OX * K * sizeof(float);
  cl_mem col;
  LU_TRY(lu_buffer_alloc(dev, cap, &col));
  lu_status st = LU_OK;
  lu_conv_tile t;
  while (st == LU_OK && lu_conv_tiler_next(&tl, &t)) {
    size_t Pt = (size_t)t.nrows * g->OX;
    size_t dyoff = (size_t)t.n0 * Cout * OS + (size_t)t.r0 * g->OX;
    if (t.nb == 1)
      st = lu_sgemm(dev, 1, 0, K, Pt, Cout, 1.0f, w->buf, 0, K, dy->buf, dyoff, OS, 0.0f, col, 0, Pt);
    else
      st = lu_sgemm_strided_batched(dev, 1, 0, K, Pt, Cout, 1.0f, w->buf, 0, K, 0, dy->buf, dyoff, OS, Cout * OS,
                                    0.0f, col, 0, Pt, K * Pt, (size_t)t.nb);
    if (st == LU_OK) st = run_col2im(dev, g, dx, col, &t, partial);
  }
  lu_buffer_release(dev, col, cap);
  return st;
}

lu_status lu_conv_bwd_data(const lu_conv_desc *d, const lu_tensor *dy, const lu_tensor *w, lu_tensor *dx) {
  lu_conv_geom g;
  LU_TRY(lu_conv_check("conv_bwd_data", d, 0, dx, "dx", w, "w", NULL, NULL, dy, "dy", &g));
  return ctx(conv_bwd_data(&g, dy, w, dx), "conv_bwd_data", &g);
}

/* ---- backward weight ---- */

static lu_status conv_bwd_weight(const lu_conv_geom *g, const lu_tensor *x, const lu_tensor *dy, lu_tensor *dw,
                                 lu_tensor *db, int accumulate) {
  lu_device *dev = x->dev;
  size_t K = (size_t)g->Cin * g->kv, S = (size_t)g->S, OS = (size_t)g->OS, Cout = (size_t)g->Cout;
  if (db) LU_TRY(lu_conv_bias_grad(db, dy, g->N, g->Cout, g->OS, accumulate));
  float beta = accumulate ? 1.0f : 0.0f;
  if (use_direct(g, 2)) return run_wgrad_direct(dev, g, x, dy, dw, accumulate);
  if (is_pointwise(g)) {
    for (int n = 0; n < g->N; n++) {
      LU_TRY(lu_sgemm(dev, 0, 1, Cout, K, S, 1.0f, dy->buf, (size_t)n * Cout * OS, OS, x->buf, (size_t)n * K * S, S,
                      beta, dw->buf, 0, K));
      beta = 1.0f;
    }
    return LU_OK;
  }
  lu_conv_tiler tl;
  lu_conv_tiler_init(&tl, g->N, g->OZ * g->OY, K * g->OX);
  size_t cap = (size_t)tl.samples_per_tile * tl.rows_per_tile * g->OX * K * sizeof(float);
  cl_mem col;
  LU_TRY(lu_buffer_alloc(dev, cap, &col));
  lu_status st = LU_OK;
  lu_conv_tile t;
  while (st == LU_OK && lu_conv_tiler_next(&tl, &t)) {
    size_t Pt = (size_t)t.nrows * g->OX;
    st = run_im2col(dev, g, x, col, &t);
    for (int j = 0; st == LU_OK && j < t.nb; j++) {
      size_t dyoff = (size_t)(t.n0 + j) * Cout * OS + (size_t)t.r0 * g->OX;
      st = lu_sgemm(dev, 0, 1, Cout, K, Pt, 1.0f, dy->buf, dyoff, OS, col, (size_t)j * K * Pt, Pt, beta, dw->buf, 0, K);
      beta = 1.0f;
    }
  }
  lu_buffer_release(dev, col, cap);
  return st;
}

lu_status lu_conv_bwd_weight(const lu_conv_desc *d, const lu_tensor *x, const lu_tensor *dy, lu_tensor *dw,
                             lu_tensor *db, int accumulate) {
  lu_conv_geom g;
  LU_TRY(lu_conv_check("conv_bwd_weight", d, 0, x, "x", dw, "dw", db, "db", dy, "dy", &g));
  return ctx(conv_bwd_weight(&g, x, dy, dw, db, accumulate), "conv_bwd_weight", &g);
}
