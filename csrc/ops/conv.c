/* Convolutions: the dispatcher. Each pass checks its arguments, normalises the problem to three
 * spatial axes and hands it to one strategy of ops/conv/ (see ops/conv/base.h for the list). The
 * order of the tests below is the order of preference: the specialised kernels where their rule
 * and the device's tunables allow them, the general direct kernels next, im2col + GEMM when the
 * device's conv.algo asks for it. */
#include "ops/conv.h"

#include <string.h>

#include "cl/pool.h"
#include "ops/conv/base.h"
#include "ops/nn.h"

/* ---- forward ---- */

static lu_status conv_fwd(const lu_conv_geom *g, const lu_tensor *x, const lu_tensor *w, const lu_tensor *b,
                          lu_tensor *y) {
  lu_device *dev = x->dev;
  if (lu_conv_igemm_applies(dev, x, y)) return lu_conv_igemm_run(LU_IGEMM_FWD, g, x, NULL, w, b, NULL, y, NULL, 0);
  if (!lu_conv_use_direct(dev)) return lu_conv_gemm_fwd(g, x, w, b, y);
  if (lu_conv_s2rows_applies(dev, g->X, g->k, g->s, g->p)) return lu_conv_s2rows_run(dev, g, x->buf, w->buf, b, y->buf);
  if (lu_conv_wino_applies(dev, g->Cin, g->Cout, g->X, g->k, g->s, g->p))
    return lu_conv_wino_run(dev, g->N, g->Cin, g->Cout, g->Z, g->Y, g->X, g->k[0], x->buf, w->buf, 0, b, y->buf);
  return lu_conv_direct_run(dev, g->N, g->Cin, g->Cout, g->Z, g->Y, g->X, g->OZ, g->OY, g->OX, g->k, g->s, g->p,
                            x->buf, w->buf, LU_DIRECT_CONV, b, y->buf);
}

lu_status lu_conv_fwd(const lu_conv_desc *d, const lu_tensor *x, const lu_tensor *w, const lu_tensor *b,
                      lu_tensor *y) {
  if (lu_conv_any_half(x, y) && !lu_conv_igemm_applies(x->dev, x, y)) /* float16 on the float32 strategies */
    return lu_conv_fwd_f32(lu_conv_fwd, d, x, w, b, y);
  lu_conv_geom g;
  LU_TRY(lu_conv_check("conv_fwd", d, 0, x, "x", w, "w", b, "b", y, "y", &g));
  return lu_conv_context(conv_fwd(&g, x, w, b, y), "conv_fwd", &g);
}

static lu_status fwd_cached(lu_conv_fwd_fn fwd, const lu_conv_desc *d, const lu_tensor *x, const lu_tensor *w,
                            const lu_tensor *b, lu_tensor *y, lu_conv_wcache *wc) {
  lu_device *dev = x->dev;
  if (!wc || !dev || dev->conv_wcache) return fwd(d, x, w, b, y); /* no cache, host tensors, or nested */
  dev->conv_wcache = wc; /* read by lu_conv_pack_launch / lu_conv_pack_blocks (ops/conv/base.c) */
  lu_status st = fwd(d, x, w, b, y);
  dev->conv_wcache = NULL;
  return st;
}

lu_status lu_conv_fwd_cached(const lu_conv_desc *d, const lu_tensor *x, const lu_tensor *w, const lu_tensor *b,
                             lu_tensor *y, lu_conv_wcache *wc) {
  return fwd_cached(lu_conv_fwd, d, x, w, b, y, wc);
}

lu_status lu_convT_fwd_cached(const lu_conv_desc *d, const lu_tensor *x, const lu_tensor *w, const lu_tensor *b,
                              lu_tensor *y, lu_conv_wcache *wc) {
  return fwd_cached(lu_convT_fwd, d, x, w, b, y, wc);
}

void lu_conv_wcache_clear(lu_device *dev, lu_conv_wcache *wc) {
  if (wc->buf && dev) lu_buffer_release(dev, (cl_mem)wc->buf, wc->bytes);
  memset(wc, 0, sizeof *wc);
}

/* ---- backward data ---- */

static lu_status conv_bwd_data(const lu_conv_geom *g, const lu_tensor *dy, const lu_tensor *w, lu_tensor *dx) {
  lu_device *dev = dy->dev;
  if (lu_conv_igemm_applies(dev, dx, dy)) return lu_conv_igemm_run(LU_IGEMM_DGRAD, g, NULL, dy, w, NULL, dx, NULL, NULL, 0);
  if (!lu_conv_use_direct(dev)) return lu_conv_gemm_bwd_data(g, dy, w, dx);
  int strided = g->s[0] != 1 || g->s[1] != 1 || g->s[2] != 1;
  if (strided) {
    if (lu_conv_dgrad_rows_applies(g, dev)) return lu_conv_dgrad_rows_run(g, dy, w, dx);
    if (lu_conv_dgrad_phases_applies(g, dev)) return lu_conv_dgrad_phases_run(g, dy, w, dx);
    if (lu_conv_dgrad_cvec_applies(g, dev))
      return lu_conv_direct_run(dev, g->N, g->Cout, g->Cin, g->OZ, g->OY, g->OX, g->Z, g->Y, g->X, g->k, g->s, g->p,
                                dy->buf, w->buf, LU_DIRECT_BWD_DATA_STRIDED, NULL, dx->buf);
    return lu_conv_dgrad_strided_run(g, dy, w, dx);
  }
  /* stride 1: dx = conv(dy, flipped transposed w) with padding k - 1 - p (1x1 too: the GEMM with K = Cout
   * and M = Cin of a 3-class head ran at 1-4 GFLOP/s on PoCL) */
  int pp[3] = {g->k[0] - 1 - g->p[0], g->k[1] - 1 - g->p[1], g->k[2] - 1 - g->p[2]};
  if (lu_conv_wino_applies(dev, g->Cout, g->Cin, g->OX, g->k, g->s, pp))
    return lu_conv_wino_run(dev, g->N, g->Cout, g->Cin, g->OZ, g->OY, g->OX, g->k[0], dy->buf, w->buf, 1, NULL,
                            dx->buf);
  return lu_conv_direct_run(dev, g->N, g->Cout, g->Cin, g->OZ, g->OY, g->OX, g->Z, g->Y, g->X, g->k, g->s, pp,
                            dy->buf, w->buf, LU_DIRECT_BWD_DATA, NULL, dx->buf);
}

lu_status lu_conv_bwd_data(const lu_conv_desc *d, const lu_tensor *dy, const lu_tensor *w, lu_tensor *dx) {
  if (lu_conv_any_half(dx, dy) && !lu_conv_igemm_applies(dy->dev, dx, dy))
    return lu_conv_bwd_data_f32(lu_conv_bwd_data, d, dy, w, dx);
  lu_conv_geom g;
  LU_TRY(lu_conv_check("conv_bwd_data", d, 0, dx, "dx", w, "w", NULL, NULL, dy, "dy", &g));
  return lu_conv_context(conv_bwd_data(&g, dy, w, dx), "conv_bwd_data", &g);
}

/* ---- backward weight ---- */

static lu_status conv_bwd_weight(const lu_conv_geom *g, const lu_tensor *x, const lu_tensor *dy, lu_tensor *dw,
                                 lu_tensor *db, int accumulate) {
  if (db) LU_TRY(lu_conv_bias_grad(db, dy, g->N, g->Cout, g->OS, accumulate));
  if (lu_conv_igemm_applies(x->dev, x, dy))
    return lu_conv_igemm_run(LU_IGEMM_WGRAD, g, x, dy, NULL, NULL, NULL, NULL, dw, accumulate);
  if (!lu_conv_use_direct(x->dev)) return lu_conv_gemm_bwd_weight(g, x, dy, dw, accumulate);
  return lu_conv_wgrad_run(g, x, dy, dw, accumulate);
}

lu_status lu_conv_bwd_weight(const lu_conv_desc *d, const lu_tensor *x, const lu_tensor *dy, lu_tensor *dw,
                             lu_tensor *db, int accumulate) {
  if (lu_conv_any_half(x, dy) && !lu_conv_igemm_applies(x->dev, x, dy))
    return lu_conv_bwd_weight_f32(lu_conv_bwd_weight, d, x, dy, dw, db, accumulate);
  lu_conv_geom g;
  LU_TRY(lu_conv_check("conv_bwd_weight", d, 0, x, "x", dw, "dw", db, "db", dy, "dy", &g));
  return lu_conv_context(conv_bwd_weight(&g, x, dy, dw, db, accumulate), "conv_bwd_weight", &g);
}

/* ---- an input in two parts (the decoder's concatenation of upsampled map and skip) ---- */

int lu_conv_cat_in_place(const lu_device *dev, lu_dtype dt) {
  lu_tensor probe;
  memset(&probe, 0, sizeof probe);
  probe.dtype = dt;
  return lu_conv_igemm_applies(dev, &probe, NULL);
}

/* The concatenation's shell (x1's buffer, x1 + x2 channels) after checking that the parts fit together. */
static lu_status cat_shell(const char *op, const lu_tensor *x1, const lu_tensor *x2, lu_tensor *cat) {
  if (!x1 || !x2 || x1->ndim != x2->ndim || x1->ndim < 3 || x1->dtype != x2->dtype || x1->dev != x2->dev)
    return lu_fail(LU_EARG, "%s: the two input parts must be device tensors of one dtype and rank", op);
  for (int a = 0; a < x1->ndim; a++)
    if (a != 1 && x1->shape[a] != x2->shape[a])
      return lu_fail(LU_EARG, "%s: input parts differ in dimension %d (%lld vs %lld)", op, a, (long long)x1->shape[a],
                     (long long)x2->shape[a]);
  *cat = *x1;
  cat->shape[1] = x1->shape[1] + x2->shape[1];
  cat->bytes = x1->bytes + x2->bytes;
  return LU_OK;
}

/* Where the implicit GEMM does not run: the concatenation in a scratch buffer (released with cat_release),
 * filled from x1 and x2 unless they are NULL (an output). */
static lu_status cat_scratch(lu_tensor *cat, const lu_tensor *x1, const lu_tensor *x2) {
  cl_mem m;
  LU_TRY(lu_buffer_alloc_for(cat->dev, cat->bytes, "conv input concatenation", &m));
  cat->buf = m;
  cat->host = NULL;
  lu_status st = x1 ? lu_concat_channels(cat, x1, x2) : LU_OK;
  if (st != LU_OK) lu_buffer_release(cat->dev, m, cat->bytes);
  return st;
}

/* Releases the scratch concatenation (the in-order queue runs its readers first) and passes st on. */
static lu_status cat_release(lu_tensor *cat, lu_status st) {
  lu_buffer_release(cat->dev, (cl_mem)cat->buf, cat->bytes);
  return st;
}

lu_status lu_conv_fwd_cat(const lu_conv_desc *d, const lu_tensor *x1, const lu_tensor *x2, const lu_tensor *w,
                          const lu_tensor *b, lu_tensor *y) {
  lu_tensor cat;
  LU_TRY(cat_shell("conv_fwd_cat", x1, x2, &cat));
  if (!lu_conv_igemm_applies(x1->dev, x1, y)) {
    LU_TRY(cat_scratch(&cat, x1, x2));
    return cat_release(&cat, lu_conv_fwd(d, &cat, w, b, y));
  }
  lu_conv_geom g;
  LU_TRY(lu_conv_check("conv_fwd_cat", d, 0, &cat, "x", w, "w", b, "b", y, "y", &g));
  return lu_conv_context(lu_conv_igemm_run_cat(LU_IGEMM_FWD, &g, x1, x2, (int)x1->shape[1], NULL, w, b, NULL, NULL,
                                               y, NULL, 0),
                         "conv_fwd_cat", &g);
}

lu_status lu_conv_bwd_data_cat(const lu_conv_desc *d, const lu_tensor *dy, const lu_tensor *w, lu_tensor *dx1,
                               lu_tensor *dx2) {
  lu_tensor cat;
  LU_TRY(cat_shell("conv_bwd_data_cat", dx1, dx2, &cat));
  if (!lu_conv_igemm_applies(dy->dev, dx1, dy)) {
    LU_TRY(cat_scratch(&cat, NULL, NULL));
    lu_status st = lu_conv_bwd_data(d, dy, w, &cat);
    return cat_release(&cat, st == LU_OK ? lu_split_channels(&cat, dx1, dx2, 0) : st);
  }
  lu_conv_geom g;
  LU_TRY(lu_conv_check("conv_bwd_data_cat", d, 0, &cat, "dx", w, "w", NULL, NULL, dy, "dy", &g));
  return lu_conv_context(lu_conv_igemm_run_cat(LU_IGEMM_DGRAD, &g, NULL, NULL, (int)dx1->shape[1], dy, w, NULL, dx1,
                                               dx2, NULL, NULL, 0),
                         "conv_bwd_data_cat", &g);
}

lu_status lu_conv_bwd_weight_cat(const lu_conv_desc *d, const lu_tensor *x1, const lu_tensor *x2, const lu_tensor *dy,
                                 lu_tensor *dw, lu_tensor *db, int accumulate) {
  lu_tensor cat;
  LU_TRY(cat_shell("conv_bwd_weight_cat", x1, x2, &cat));
  if (!lu_conv_igemm_applies(x1->dev, x1, dy)) {
    LU_TRY(cat_scratch(&cat, x1, x2));
    return cat_release(&cat, lu_conv_bwd_weight(d, &cat, dy, dw, db, accumulate));
  }
  lu_conv_geom g;
  LU_TRY(lu_conv_check("conv_bwd_weight_cat", d, 0, &cat, "x", dw, "dw", db, "db", dy, "dy", &g));
  if (db) LU_TRY(lu_conv_bias_grad(db, dy, g.N, g.Cout, g.OS, accumulate));
  return lu_conv_context(lu_conv_igemm_run_cat(LU_IGEMM_WGRAD, &g, x1, x2, (int)x1->shape[1], dy, NULL, NULL, NULL,
                                               NULL, NULL, dw, accumulate),
                         "conv_bwd_weight_cat", &g);
}
