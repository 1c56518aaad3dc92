/* The weight gradient on the direct kernels: partial sums over chunks of output positions
 * (conv.wgrad_chunk, sized so a chunk's dy and x stay in cache), reduced into dw. On CPUs wgrad_cvec
 * puts output channels in the lanes over a transposed dy; elsewhere wgrad_direct runs x-vectors. */
#include "ops/conv/base.h"

#include <stdio.h>
#include <string.h>

#include "cl/pool.h"
#include "ops/ops.h"

#define WGRAD_PAD_MAX_BYTES ((size_t)8 << 20)

/* dw (+)= the sum over nchunks partial weight gradients of n values each (part[chunk][i]). */
static lu_status reduce_partials(lu_device *dev, cl_mem dw, cl_mem part, int n, int nchunks, int accumulate) {
  cl_kernel k;
  LU_TRY(lu_conv_kernel(dev, "reduce_chunks", "", &k));
  if (LU_ARG(k, 0, dw) | LU_ARG(k, 1, part) | LU_ARG(k, 2, n) | LU_ARG(k, 3, nchunks) | LU_ARG(k, 4, accumulate))
    return lu_fail(LU_ECL, "reduce_chunks args");
  size_t g1 = lu_global_1d((size_t)n, 64), l1 = 64; /* one work-group size: one compile, not one per shape */
  return lu_launch(dev, k, 1, &g1, &l1, "reduce_chunks");
}

lu_status lu_conv_wgrad_run(const lu_conv_geom *g, const lu_tensor *x, const lu_tensor *dy, lu_tensor *dw,
                            int accumulate) {
  lu_device *dev = x->dev;
  lu_conv_tunables t = lu_conv_direct_tunables(dev);
  int vx = lu_conv_pick_vx(g->OX, t.wgrad_vx), cobw = t.cobw;
  /* on a CPU, output channels in the lanes (wgrad_cvec over a transposed dy) for every row width:
   * 2x the x-vector kernel over the 3-D 64^3 net's layers (1725 vs 3404 ms), 1.5-3x on 2-D rows of
   * 5-40; not for fewer than LU_CONV_CIB input channels (a stem would leave most CIB rows idle).
   * A correlation form (x-vectors along whole channel rows, no broadcasts) ran the stride-1 layers
   * until wgrad_cvec's dy and partial sums went into channel blocks; then wgrad_cvec took 0.53-0.95x
   * its time on every 2-D and 3-D layer of the bench nets, and the correlation was removed. */
  int cvec = lu_conv_cvec_allowed(dev) && g->Cout >= 12 && g->Cin >= LU_CONV_CIB;
  const char *kname = cvec ? "wgrad_cvec" : "wgrad_direct";
  if (cvec) { /* two vectors of output channels share each x broadcast, over half as many input channels */
    t.cov = lu_tune(dev, LU_TUNE_CONV_WGRAD_COV);
    t.cib = lu_tune_or(dev, LU_TUNE_CONV_CIB, LU_CONV_CIB / t.cov);
  }
  char opts[240];
  lu_conv_direct_opts(&t, g->k, g->s, g->p, vx, opts, sizeof opts);
  /* wgrad_cvec on a zero-padded x: no bounds tests in the inner loop (2-D ct_iso weight gradients
   * 1.2-1.5x); only for small inputs, whose copy does not raise a training step's peak memory (and
   * within half the conv workspace, which specs shrink to reach the unpadded path) */
  int Zp = g->Z + 2 * g->p[0], Yp = g->Y + 2 * g->p[1], Xp = g->X + 2 * g->p[2];
  size_t xpad_max = lu_conv_workspace_bytes(dev) / 2;
  if (xpad_max > WGRAD_PAD_MAX_BYTES) xpad_max = WGRAD_PAD_MAX_BYTES;
  int wpad = cvec && (size_t)g->N * g->Cin * Zp * Yp * Xp * sizeof(float) <= xpad_max;
  if (wpad) lu_conv_opts_add(opts, sizeof opts, " -DWPAD=1");
  /* wgrad_cvec with every tap of a position at once (WTAPS): each dy vector is loaded once for the 3
   * taps, 14 instead of 18 loads per 24 FMAs; on rows of >= 64 outputs (2-D 128^2 and 256^2 stride 2:
   * 0.88-0.91x the time) but not on narrow ones (16^3 stride 2 with 8-wide rows 1.5-1.8x; 32 wide 0.9-1.1x).
   * Tunable conv.wgrad_taps = 1 / 0 forces it on / off. */
  if (cvec && lu_tune_or(dev, LU_TUNE_CONV_WGRAD_TAPS, g->OX >= 64)) lu_conv_opts_add(opts, sizeof opts, " -DWTAPS=1");
  cl_kernel k;
  LU_TRY(lu_conv_kernel(dev, kname, opts, &k));
  int total = g->N * g->OZ * g->OY;
  int rows = lu_tune(dev, LU_TUNE_CONV_WGRAD_CHUNK) / g->OX;
  if (rows < 1) rows = 1;
  int nchunks = (total + rows - 1) / rows;
  /* wgrad_cvec writes its partial sums in blocks of 16 COV output channels (CP of them), which
   * reduce_cvec reorders, also for one chunk */
  int cob16 = 16 * t.cov, cp = (g->Cout + cob16 - 1) / cob16 * cob16, os = g->OS;
  size_t wn = (size_t)g->Cout * g->Cin * g->kv, pn = cvec ? (size_t)cp * g->Cin * g->kv : wn;
  size_t maxch = lu_conv_workspace_bytes(dev) / (pn * sizeof(float));
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
    st = lu_conv_pad_copy(dev, opts, mx, N, cin, Z, Y, X, Zp, Yp, Xp, &xpad, &xpad_bytes);
    mx = xpad;
    Z = Zp;
    Y = Yp;
    X = Xp;
  }
  if (st == LU_OK && cvec) {
    cl_kernel kt;
    st = lu_conv_kernel(dev, "transpose_dy", opts, &kt);
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
    st = lu_conv_kernel(dev, "reduce_cvec", opts, &kr);
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

