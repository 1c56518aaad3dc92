/* Convolutions as tiled im2col + CLBlast SGEMM, the strategy for any geometry: the output is cut into
 * tiles of whole output rows (row = (oz, oy), all ox) whose column buffer fits the workspace budget;
 * when whole samples fit, a tile spans several samples and the GEMM is strided-batched over them.
 * 1x1(x1) kernels with stride 1 skip im2col: the input is the GEMM operand. */
#include "ops/conv/base.h"

#include <stdio.h>

#include "cl/blas.h"
#include "ops/ops.h"

static void geom_opts(const lu_conv_geom *g, char *buf, size_t n) {
  snprintf(buf, n, "-DKZ=%d -DKY=%d -DKX=%d -DSZ=%d -DSY=%d -DSX=%d -DPZ=%d -DPY=%d -DPX=%d", g->k[0], g->k[1],
           g->k[2], g->s[0], g->s[1], g->s[2], g->p[0], g->p[1], g->p[2]);
}

static lu_status run_im2col(lu_device *dev, const lu_conv_geom *g, const lu_tensor *x, cl_mem col, const lu_conv_tile *t) {
  char opts[160];
  geom_opts(g, opts, sizeof opts);
  cl_kernel k;
  LU_TRY(lu_conv_kernel(dev, "im2col", opts, &k));
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
  LU_TRY(lu_conv_kernel(dev, "col2im", opts, &k));
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

/* ---- the three passes, each one lu_conv_tiled_gemm loop ---- */

typedef struct {
  const lu_conv_geom *g;
  const lu_tensor *x, *w, *dy;
  lu_tensor *out;
  float beta; /* weight gradient: 0 for the first tile unless accumulating, then 1 */
} gemm_ctx;

static lu_status fill_im2col(const lu_conv_tiled *job, cl_mem col, const lu_conv_tile *t) {
  const gemm_ctx *c = job->ctx;
  return run_im2col(job->dev, c->g, c->x, col, t);
}

/* y[tile] += w (Cout x K) col (K x positions) */
static lu_status gemm_fwd(const lu_conv_tiled *job, cl_mem col, const lu_conv_tile *t, size_t pt) {
  const gemm_ctx *c = job->ctx;
  const lu_conv_geom *g = c->g;
  size_t K = (size_t)g->Cin * g->kv, OS = (size_t)g->OS, Cout = (size_t)g->Cout;
  size_t yoff = (size_t)t->n0 * Cout * OS + (size_t)t->r0 * g->OX;
  return lu_conv_tile_sgemm(job->dev, 0, 0, Cout, pt, K, c->w->buf, 0, K, 0, col, 0, pt, K * pt, 1.0f, c->out->buf,
                            yoff, OS, Cout * OS, t->nb);
}

lu_status lu_conv_gemm_fwd(const lu_conv_geom *g, const lu_tensor *x, const lu_tensor *w, const lu_tensor *b,
                           lu_tensor *y) {
  lu_device *dev = x->dev;
  LU_TRY(lu_conv_bias_fill(y, b, g->N, g->Cout, g->OS));
  size_t K = (size_t)g->Cin * g->kv, S = (size_t)g->S, OS = (size_t)g->OS, Cout = (size_t)g->Cout;
  if (lu_conv_is_pointwise(g))
    return lu_sgemm_strided_batched(dev, 0, 0, Cout, OS, K, 1.0f, w->buf, 0, K, 0, x->buf, 0, S, K * S, 1.0f, y->buf,
                                    0, OS, Cout * OS, (size_t)g->N);
  gemm_ctx c = {g, x, w, NULL, y, 1.0f};
  lu_conv_tiled job = {dev, g->N, g->OZ * g->OY, g->OX, K, NULL, &c, fill_im2col, gemm_fwd, NULL};
  return lu_conv_tiled_gemm(&job);
}

/* col = w^T (K x Cout) dy[tile] (Cout x positions) */
static lu_status gemm_bwd_data(const lu_conv_tiled *job, cl_mem col, const lu_conv_tile *t, size_t pt) {
  const gemm_ctx *c = job->ctx;
  const lu_conv_geom *g = c->g;
  size_t K = (size_t)g->Cin * g->kv, OS = (size_t)g->OS, Cout = (size_t)g->Cout;
  size_t dyoff = (size_t)t->n0 * Cout * OS + (size_t)t->r0 * g->OX;
  return lu_conv_tile_sgemm(job->dev, 1, 0, K, pt, Cout, c->w->buf, 0, K, 0, c->dy->buf, dyoff, OS, Cout * OS, 0.0f,
                            col, 0, pt, K * pt, t->nb);
}

static lu_status drain_col2im(const lu_conv_tiled *job, cl_mem col, const lu_conv_tile *t) {
  const gemm_ctx *c = job->ctx;
  return run_col2im(job->dev, c->g, c->out, col, t, !t->whole);
}

lu_status lu_conv_gemm_bwd_data(const lu_conv_geom *g, const lu_tensor *dy, const lu_tensor *w, lu_tensor *dx) {
  lu_device *dev = dy->dev;
  size_t K = (size_t)g->Cin * g->kv, S = (size_t)g->S, OS = (size_t)g->OS, Cout = (size_t)g->Cout,
         Cin = (size_t)g->Cin;
  if (lu_conv_is_pointwise(g))
    return lu_sgemm_strided_batched(dev, 1, 0, Cin, S, Cout, 1.0f, w->buf, 0, K, 0, dy->buf, 0, OS, Cout * OS, 0.0f,
                                    dx->buf, 0, S, Cin * S, (size_t)g->N);
  gemm_ctx c = {g, NULL, w, dy, dx, 0.0f};
  lu_conv_tiled job = {dev, g->N, g->OZ * g->OY, g->OX, K, dx, &c, NULL, gemm_bwd_data, drain_col2im};
  return lu_conv_tiled_gemm(&job);
}

/* dw (+)= dy[tile] (Cout x positions) col^T (positions x K), one SGEMM per sample of the tile */
static lu_status gemm_bwd_weight(const lu_conv_tiled *job, cl_mem col, const lu_conv_tile *t, size_t pt) {
  gemm_ctx *c = job->ctx;
  const lu_conv_geom *g = c->g;
  size_t K = (size_t)g->Cin * g->kv, OS = (size_t)g->OS, Cout = (size_t)g->Cout;
  for (int j = 0; j < t->nb; j++) {
    size_t dyoff = (size_t)(t->n0 + j) * Cout * OS + (size_t)t->r0 * g->OX;
    LU_TRY(lu_sgemm(job->dev, 0, 1, Cout, K, pt, 1.0f, c->dy->buf, dyoff, OS, col, (size_t)j * K * pt, pt, c->beta,
                    c->out->buf, 0, K));
    c->beta = 1.0f;
  }
  return LU_OK;
}

lu_status lu_conv_gemm_bwd_weight(const lu_conv_geom *g, const lu_tensor *x, const lu_tensor *dy, lu_tensor *dw,
                                  int accumulate) {
  lu_device *dev = x->dev;
  size_t K = (size_t)g->Cin * g->kv, S = (size_t)g->S, OS = (size_t)g->OS, Cout = (size_t)g->Cout;
  float beta = accumulate ? 1.0f : 0.0f;
  if (lu_conv_is_pointwise(g)) {
    for (int n = 0; n < g->N; n++) {
      LU_TRY(lu_sgemm(dev, 0, 1, Cout, K, S, 1.0f, dy->buf, (size_t)n * Cout * OS, OS, x->buf, (size_t)n * K * S, S,
                      beta, dw->buf, 0, K));
      beta = 1.0f;
    }
    return LU_OK;
  }
  gemm_ctx c = {g, x, NULL, dy, dw, beta};
  lu_conv_tiled job = {dev, g->N, g->OZ * g->OY, g->OX, K, NULL, &c, fill_im2col, gemm_bwd_weight, NULL};
  return lu_conv_tiled_gemm(&job);
}
