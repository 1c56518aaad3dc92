/* Transposed convolution with kernel == stride (nnU-Net's upsampling): the dispatcher and its GEMM
 * strategy. Each input voxel produces a disjoint stride-sized block of outputs: y block = W^T x (per
 * voxel), so the forward pass is one GEMM (Cout*kv x Cin) * (Cin x P) over tiles of input rows
 * followed by a scatter into y (or convT_cvec on CPUs, ops/conv/direct.c). The backward passes are
 * ordinary strided convolutions run on the direct kernels (below); with conv.algo = gemm they gather
 * dy into the GEMM layout instead. Stride 1 everywhere is a 1x1 convolution: no scatter. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl/blas.h"
#include "cl/pool.h"
#include "cl/program.h"
#include "ops/conv/base.h"
#include "ops/ops.h"

#define CONVT_FILE "convT/convT.cl"

static lu_status shuffle(lu_device *dev, const lu_conv_geom *g, int scatter, cl_mem y, cl_mem t, const lu_tensor *b,
                         const lu_conv_tile *tl) {
  char opts[96];
  snprintf(opts, sizeof opts, "-DSZ=%d -DSY=%d -DSX=%d", g->s[0], g->s[1], g->s[2]);
  cl_kernel k;
  LU_TRY(lu_kernel_get(dev, CONVT_FILE, scatter ? "scatter" : "gather", opts, &k));
  cl_ulong off = (cl_ulong)tl->n0 * g->Cout * g->OS;
  int cout = g->Cout, Z = g->Z, Y = g->Y, X = g->X, r0 = tl->r0, nr = tl->nrows;
  int i = 0;
  cl_int e;
  if (scatter) {
    cl_mem mb = b ? b->buf : t;
    int hb = b != NULL;
    e = LU_ARG(k, 0, y) | LU_ARG(k, 1, off) | LU_ARG(k, 2, t) | LU_ARG(k, 3, mb) | LU_ARG(k, 4, hb);
    i = 5;
  } else {
    e = LU_ARG(k, 0, t) | LU_ARG(k, 1, y) | LU_ARG(k, 2, off);
    i = 3;
  }
  e |= LU_ARG(k, i, cout) | LU_ARG(k, i + 1, Z) | LU_ARG(k, i + 2, Y) | LU_ARG(k, i + 3, X) | LU_ARG(k, i + 4, r0) |
       LU_ARG(k, i + 5, nr);
  LU_CL_CHECK(e, "convT %s args", scatter ? "scatter" : "gather");
  size_t gl[3] = {(size_t)g->X * g->s[2], (size_t)tl->nrows * g->s[0] * g->s[1], (size_t)tl->nb * g->Cout};
  return lu_launch(dev, k, 3, gl, NULL, scatter ? "convT scatter" : "convT gather");
}

static lu_status ctx(lu_status st, const char *op, const lu_conv_geom *g) { return lu_conv_context(st, op, g); }

/* The tiles of the GEMM strategy: M = Cout * kv floats per input position, tiles of input rows. */
typedef struct {
  const lu_conv_geom *g;
  cl_mem w;            /* the GEMM's weights: W^T (forward) or W */
  const lu_tensor *x, *dy, *b;
  cl_mem y;
  float beta;
} convT_ctx;

static lu_status tile_scatter(const lu_conv_tiled *job, cl_mem t, const lu_conv_tile *tl) {
  const convT_ctx *c = job->ctx;
  return shuffle(job->dev, c->g, 1, c->y, t, c->b, tl);
}

static lu_status tile_gather(const lu_conv_tiled *job, cl_mem t, const lu_conv_tile *tl) {
  const convT_ctx *c = job->ctx;
  return shuffle(job->dev, c->g, 0, c->dy->buf, t, NULL, tl);
}

/* t (M x positions) = W^T x[tile] */
static lu_status gemm_fwd(const lu_conv_tiled *job, cl_mem t, const lu_conv_tile *tt, size_t pt) {
  const convT_ctx *c = job->ctx;
  const lu_conv_geom *g = c->g;
  size_t Cin = (size_t)g->Cin, M = (size_t)g->Cout * g->kv, S = (size_t)g->S;
  size_t xoff = (size_t)tt->n0 * Cin * S + (size_t)tt->r0 * g->X;
  return lu_conv_tile_sgemm(job->dev, 0, 0, M, pt, Cin, c->w, 0, Cin, 0, c->x->buf, xoff, S, Cin * S, 0.0f, t, 0, pt,
                            M * pt, tt->nb);
}

/* dx[tile] = W (Cin x M) t (M x positions) */
static lu_status gemm_bwd_data(const lu_conv_tiled *job, cl_mem t, const lu_conv_tile *tt, size_t pt) {
  const convT_ctx *c = job->ctx;
  const lu_conv_geom *g = c->g;
  size_t Cin = (size_t)g->Cin, M = (size_t)g->Cout * g->kv, S = (size_t)g->S;
  size_t xoff = (size_t)tt->n0 * Cin * S + (size_t)tt->r0 * g->X;
  return lu_conv_tile_sgemm(job->dev, 0, 0, Cin, pt, M, c->w, 0, M, 0, t, 0, pt, M * pt, 0.0f, c->y, xoff, S, Cin * S,
                            tt->nb);
}

/* dW (Cin x M) (+)= x[tile] t^T, one SGEMM per sample */
static lu_status gemm_bwd_weight(const lu_conv_tiled *job, cl_mem t, const lu_conv_tile *tt, size_t pt) {
  convT_ctx *c = job->ctx;
  const lu_conv_geom *g = c->g;
  size_t Cin = (size_t)g->Cin, M = (size_t)g->Cout * g->kv, S = (size_t)g->S;
  for (int j = 0; j < tt->nb; j++) {
    size_t xoff = (size_t)(tt->n0 + j) * Cin * S + (size_t)tt->r0 * g->X;
    LU_TRY(lu_sgemm(job->dev, 0, 1, Cin, M, pt, 1.0f, c->x->buf, xoff, S, t, (size_t)j * M * pt, pt, c->beta, c->y, 0,
                    M));
    c->beta = 1.0f;
  }
  return LU_OK;
}

/* Forward on CPUs by convT_rows (convT.cl): lanes along x, each input channel's row values spread over
 * the SX lanes of their outputs and multiplied by the tap pair repeated across the lanes, rows stored
 * whole. Against convT_cvec (lanes over channels, a transpose per store), 2d plan's forward: 64 -> 32
 * channels at 512^2 out 15.4 -> 10.1 ms, 128 -> 64 at 256^2 8.6 -> 6.7, 256 -> 128 at 128^2 6.6 -> 6.2;
 * with weights over 1 MB it lost (512 -> 256 at 64^2 6.0 -> 6.8, 512 -> 512 at 32^2 3.2 -> 5.0: each
 * work-item streams its channel block's weights, which convT_cvec shares between neighbours). For rows
 * of >= 8 positions along a stride-2 (or 1) x axis, >= 4 output channels and weights up to 1 MB;
 * tunable convT.rows = 0 keeps convT_cvec, 1 forces it past the weight limit. */
static int convT_rows_applies(const lu_conv_geom *g, const lu_device *dev) {
  if (!lu_tune_cpu(dev) || g->kv == 1 || g->s[2] > 2 || g->Cout < 4 || g->X < 8) return 0;
  size_t wbytes = (size_t)g->Cin * g->Cout * g->kv * sizeof(float);
  return lu_tune_or(dev, LU_TUNE_CONVT_ROWS, wbytes <= (1u << 20)) != 0;
}

static lu_status run_convT_rows(const lu_conv_geom *g, const lu_tensor *x, const lu_tensor *w, const lu_tensor *b,
                                lu_tensor *y) {
  lu_device *dev = x->dev;
  /* 16 accumulators: output rows per input row x channels x vectors of 16 outputs */
  int nv = g->X * g->s[2] >= 32 ? 2 : 1, tr = g->s[0] * g->s[1], cob = 16 / (tr * nv);
  if (cob < 1) cob = 1;
  if (cob > g->Cout) cob = g->Cout;
  int txw = 16 * nv / g->s[2];
  char opts[120];
  snprintf(opts, sizeof opts, "-DSZ=%d -DSY=%d -DSX=%d -DCOB=%d -DNV=%d", g->s[0], g->s[1], g->s[2], cob, nv);
  cl_kernel k;
  LU_TRY(lu_kernel_get(dev, CONVT_FILE, "convT_rows", opts, &k));
  cl_mem bm = b ? b->buf : x->buf; /* any buffer when there is no bias */
  int has_bias = b != NULL, cin = g->Cin, cout = g->Cout, Z = g->Z, Y = g->Y, X = g->X;
  if (LU_ARG(k, 0, x->buf) | LU_ARG(k, 1, w->buf) | LU_ARG(k, 2, bm) | LU_ARG(k, 3, has_bias) | LU_ARG(k, 4, y->buf) |
      LU_ARG(k, 5, cin) | LU_ARG(k, 6, cout) | LU_ARG(k, 7, Z) | LU_ARG(k, 8, Y) | LU_ARG(k, 9, X))
    return lu_fail(LU_ECL, "convT_rows args");
  size_t gl[3] = {(size_t)((X + txw - 1) / txw) * ((cout + cob - 1) / cob), (size_t)Z * Y, (size_t)g->N};
  return lu_launch_by_rows(dev, k, gl, "convT_rows");
}

static lu_status convT_fwd(const lu_conv_geom *g, const lu_tensor *x, const lu_tensor *w, const lu_tensor *b,
                           lu_tensor *y) {
  lu_device *dev = x->dev;
  size_t Cin = (size_t)g->Cin, M = (size_t)g->Cout * g->kv, S = (size_t)g->S, OS = (size_t)g->OS;
  if (lu_conv_igemm_applies(dev, x, y)) return lu_conv_igemm_run(LU_IGEMM_T_FWD, g, x, NULL, w, b, NULL, y, NULL, 0);
  if (g->kv == 1) {
    LU_TRY(lu_conv_bias_fill(y, b, g->N, g->Cout, g->OS));
    return lu_sgemm_strided_batched(dev, 1, 0, M, S, Cin, 1.0f, w->buf, 0, M, 0, x->buf, 0, S, Cin * S, 1.0f, y->buf,
                                    0, OS, M * OS, (size_t)g->N);
  }
  if (convT_rows_applies(g, dev)) return run_convT_rows(g, x, w, b, y);
  if (lu_convT_fwd_direct_applies(g, dev)) return lu_convT_fwd_direct(g, x, w, b, y);
  /* CLBlast is several times slower with a transposed A on PoCL: transpose W (small) first */
  cl_kernel kt;
  LU_TRY(lu_kernel_get(dev, CONVT_FILE, "transpose", "-DSZ=1 -DSY=1 -DSX=1", &kt));
  size_t wbytes = M * Cin * sizeof(float);
  cl_mem wt;
  LU_TRY(lu_buffer_alloc(dev, wbytes, &wt));
  cl_mem mw = w->buf;
  int cin = g->Cin, m = (int)M;
  lu_status st = LU_OK;
  if (LU_ARG(kt, 0, wt) | LU_ARG(kt, 1, mw) | LU_ARG(kt, 2, cin) | LU_ARG(kt, 3, m)) st = lu_fail(LU_ECL, "transpose args");
  size_t gt[2] = {M, Cin};
  if (st == LU_OK) st = lu_launch(dev, kt, 2, gt, NULL, "convT transpose");
  convT_ctx c = {g, wt, x, NULL, b, y->buf, 0.0f};
  lu_conv_tiled job = {dev, g->N, g->Z * g->Y, g->X, M, NULL, &c, NULL, gemm_fwd, tile_scatter};
  if (st == LU_OK) st = lu_conv_tiled_gemm(&job);
  lu_buffer_release(dev, wt, wbytes);
  return st;
}

lu_status lu_convT_fwd(const lu_conv_desc *d, const lu_tensor *x, const lu_tensor *w, const lu_tensor *b,
                       lu_tensor *y) {
  if (lu_conv_any_half(x, y) && !lu_conv_igemm_applies(x->dev, x, y)) /* float16 on the float32 strategies */
    return lu_conv_fwd_f32(lu_convT_fwd, d, x, w, b, y);
  lu_conv_geom g;
  LU_TRY(lu_conv_check("convT_fwd", d, 1, x, "x", w, "w", b, "b", y, "y", &g));
  return ctx(convT_fwd(&g, x, w, b, y), "convT_fwd", &g);
}

/* With kernel == stride and no padding, dW[ci, co, a] = sum_i x[ci, i] dy[co, s i + a] is an ordinary
 * strided conv_bwd_weight with the roles of x and dy swapped (dW read as (Cin, Cout, k...) conv
 * weights), so it runs on the direct weight-gradient kernels (ops/conv/wgrad.c), measured 1.2-1.8x faster than gather +
 * SGEMM on PoCL. Backward data is likewise conv_fwd of dy with W (W read as (Cin, Cout, k...) conv
 * weights, no flip) on the direct forward kernel: 2.8-3.6x faster than gather + SGEMM on PoCL once that
 * kernel's tap loads became plain loads (bench/ops.lua 3d, dec2..dec0.up). */
static int convT_via_conv(const lu_conv_geom *g, const lu_device *dev) { return g->kv > 1 && lu_conv_use_direct(dev); }

/* Backward data on CPUs by convT_dgrad (convT.cl): dy rows read whole, each multiplied by the kernel
 * row's taps repeated across the lanes, no shuffles in the loop. Against the strided conv on the direct
 * kernel (in-process A/B): 2-D 128^2 64 > 32 ... 8^2 512 > 512 1.13-1.5x, 3-D 32^3 64 > 32 1.65-1.81x,
 * 16^3 128 > 64 1.13-1.17x, 8^3 256 > 128 1.46-1.53x. For rows of >= 8 dx positions along a stride-2 x
 * axis (>= 16 along a stride-1 one); tunable convT.dgrad = 0 keeps the direct kernel. */
static int convT_dgrad_applies(const lu_conv_geom *g, const lu_device *dev) {
  if (!lu_tune_cpu(dev) || g->kv == 1 || !lu_tune_or(dev, LU_TUNE_CONVT_DGRAD, 1)) return 0;
  return g->X >= (g->s[2] == 2 ? 8 : 16);
}

static lu_status run_convT_dgrad(const lu_conv_geom *g, const lu_tensor *dy, const lu_tensor *w, lu_tensor *dx) {
  lu_device *dev = dy->dev;
  /* 4 channels x 2 rows x 2 vectors (16 accumulators) in 2-D; with 2 kernel planes, whose loads LLVM
   * issues all at once, 8 accumulators: 4 channels x 1 row x 2 vectors, or x 2 rows of one vector (3-D
   * 32^3 64 > 32 with 16: 1.0x the direct kernel, with 8: 1.48x; 8^3 256 > 128 2 x 2 rows x 1 vector
   * against 4 x 2 x 1: 0.7x) */
  int nv = g->s[2] == 2 ? (g->X >= 16 ? 2 : 1) : 1, dxw = 16 * nv / g->s[2];
  int cob = lu_tune(dev, LU_TUNE_CONVT_DGRAD_COB);
  int drb = lu_tune_or(dev, LU_TUNE_CONVT_DGRAD_DRB, g->s[0] == 2 && nv == 2 ? 1 : 2);
  if (cob > g->Cin) cob = g->Cin;
  if (g->Y % drb) drb = 1; /* the kernel computes whole row blocks */
  char opts[160];
  snprintf(opts, sizeof opts, "-DSZ=%d -DSY=%d -DSX=%d -DCOB=%d -DNV=%d -DDRB=%d", g->s[0], g->s[1], g->s[2], cob, nv,
           drb);
  cl_kernel k;
  LU_TRY(lu_kernel_get(dev, CONVT_FILE, "convT_dgrad", opts, &k));
  int cin = g->Cin, cout = g->Cout, Z = g->Z, Y = g->Y, X = g->X;
  if (LU_ARG(k, 0, dy->buf) | LU_ARG(k, 1, w->buf) | LU_ARG(k, 2, dx->buf) | LU_ARG(k, 3, cin) | LU_ARG(k, 4, cout) |
      LU_ARG(k, 5, Z) | LU_ARG(k, 6, Y) | LU_ARG(k, 7, X))
    return lu_fail(LU_ECL, "convT_dgrad args");
  size_t gl[3] = {(size_t)((X + dxw - 1) / dxw) * ((cin + cob - 1) / cob), (size_t)Z * ((Y + drb - 1) / drb),
                  (size_t)g->N};
  return lu_launch_by_rows(dev, k, gl, "convT_dgrad");
}

static lu_status convT_bwd_data(const lu_conv_desc *d, const lu_conv_geom *g, const lu_tensor *dy, const lu_tensor *w, lu_tensor *dx) {
  lu_device *dev = dy->dev;
  size_t Cin = (size_t)g->Cin, M = (size_t)g->Cout * g->kv, S = (size_t)g->S, OS = (size_t)g->OS;
  if (lu_conv_igemm_applies(dev, dx, dy))
    return lu_conv_igemm_run(LU_IGEMM_T_DGRAD, g, NULL, dy, w, NULL, dx, NULL, NULL, 0);
  if (g->kv == 1)
    return lu_sgemm_strided_batched(dev, 0, 0, Cin, S, M, 1.0f, w->buf, 0, M, 0, dy->buf, 0, OS, M * OS, 0.0f,
                                    dx->buf, 0, S, Cin * S, (size_t)g->N);
  if (convT_via_conv(g, dev) && convT_dgrad_applies(g, dev)) return run_convT_dgrad(g, dy, w, dx);
  if (convT_via_conv(g, dev)) return lu_conv_fwd(d, dy, w, NULL, dx);
  convT_ctx c = {g, w->buf, NULL, dy, NULL, dx->buf, 0.0f};
  lu_conv_tiled job = {dev, g->N, g->Z * g->Y, g->X, M, NULL, &c, tile_gather, gemm_bwd_data, NULL};
  return lu_conv_tiled_gemm(&job);
}

lu_status lu_convT_bwd_data(const lu_conv_desc *d, const lu_tensor *dy, const lu_tensor *w, lu_tensor *dx) {
  if (lu_conv_any_half(dx, dy) && !lu_conv_igemm_applies(dy->dev, dx, dy))
    return lu_conv_bwd_data_f32(lu_convT_bwd_data, d, dy, w, dx);
  lu_conv_geom g;
  LU_TRY(lu_conv_check("convT_bwd_data", d, 1, dx, "dx", w, "w", NULL, NULL, dy, "dy", &g));
  return ctx(convT_bwd_data(d, &g, dy, w, dx), "convT_bwd_data", &g);
}

static lu_status convT_bwd_weight(const lu_conv_desc *d, const lu_conv_geom *g, const lu_tensor *x,
                                  const lu_tensor *dy, lu_tensor *dw, lu_tensor *db, int accumulate) {
  lu_device *dev = x->dev;
  size_t Cin = (size_t)g->Cin, M = (size_t)g->Cout * g->kv, S = (size_t)g->S, OS = (size_t)g->OS;
  if (db) LU_TRY(lu_conv_bias_grad(db, dy, g->N, g->Cout, g->OS, accumulate));
  if (lu_conv_igemm_applies(dev, x, dy))
    return lu_conv_igemm_run(LU_IGEMM_T_WGRAD, g, x, dy, NULL, NULL, NULL, NULL, dw, accumulate);
  if (convT_via_conv(g, dev)) return lu_conv_bwd_weight(d, dy, x, dw, NULL, accumulate);
  float beta = accumulate ? 1.0f : 0.0f;
  if (g->kv == 1) {
    for (int n = 0; n < g->N; n++) {
      LU_TRY(lu_sgemm(dev, 0, 1, Cin, M, S, 1.0f, x->buf, (size_t)n * Cin * S, S, dy->buf, (size_t)n * M * OS, OS,
                      beta, dw->buf, 0, M));
      beta = 1.0f;
    }
    return LU_OK;
  }
  convT_ctx c = {g, NULL, x, dy, NULL, dw->buf, beta};
  lu_conv_tiled job = {dev, g->N, g->Z * g->Y, g->X, M, NULL, &c, tile_gather, gemm_bwd_weight, NULL};
  return lu_conv_tiled_gemm(&job);
}

lu_status lu_convT_bwd_weight(const lu_conv_desc *d, const lu_tensor *x, const lu_tensor *dy, lu_tensor *dw,
                              lu_tensor *db, int accumulate) {
  if (lu_conv_any_half(x, dy) && !lu_conv_igemm_applies(x->dev, x, dy))
    return lu_conv_bwd_weight_f32(lu_convT_bwd_weight, d, x, dy, dw, db, accumulate);
  lu_conv_geom g;
  LU_TRY(lu_conv_check("convT_bwd_weight", d, 1, x, "x", dw, "dw", db, "db", dy, "dy", &g));
  return ctx(convT_bwd_weight(d, &g, x, dy, dw, db, accumulate), "convT_bwd_weight", &g);
}
