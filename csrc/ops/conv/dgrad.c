/* Backward data of strided convolutions (the decoder's gradient through the encoder's stride-2
 * convs): dgrad_rows (whole dy rows times tap pairs), by output phases (a dense stride-1 conv per
 * parity class of dx), and the general dgrad_cvec / dgrad_strided / dgrad_s2x kernels. */
#include "ops/conv/base.h"

#include <stdio.h>
#include <string.h>

#include "cl/pool.h"
#include "ops/ops.h"

/* ---- strided backward data by dy rows (dgrad_rows) ----
 * On CPUs, for stride 2 / 3 taps / pad 1 along y and x with a z axis of stride 2 / 3 taps / pad 1,
 * stride 1 / 3 taps / pad 1 or 1 tap, when dy rows fill a 16-lane vector. Tunable conv.dgrad_rows: 1
 * wherever the geometry allows, 0 never. */
int lu_conv_dgrad_rows_applies(const lu_conv_geom *g, const lu_device *dev) {
  if (!lu_tune_cpu(dev) || g->k[1] != 3 || g->k[2] != 3 || g->p[1] != 1 || g->p[2] != 1 || g->s[1] != 2 || g->s[2] != 2)
    return 0;
  int z_ok = (g->k[0] == 3 && g->p[0] == 1 && (g->s[0] == 1 || g->s[0] == 2)) ||
             (g->k[0] == 1 && g->p[0] == 0 && g->s[0] == 1);
  if (!z_ok) return 0;
  return lu_tune_or(dev, LU_TUNE_CONV_DGRAD_ROWS, g->OX >= 16) != 0;
}

lu_status lu_conv_dgrad_rows_run(const lu_conv_geom *g, const lu_tensor *dy, const lu_tensor *w, lu_tensor *dx) {
  lu_device *dev = dy->dev;
  lu_conv_tunables t = lu_conv_direct_tunables(dev);
  t.cob = 4;
  char opts[260];
  lu_conv_direct_opts(&t, g->k, g->s, g->p, 16, opts, sizeof opts);
  cl_kernel kk;
  LU_TRY(lu_conv_kernel(dev, "dgrad_rows", opts, &kk));
  int cdy = g->Cout, cdx = g->Cin, ncb = (cdx + 3) / 4;
  cl_mem wp = NULL, zrow = NULL;
  size_t wbytes, zbytes = 0;
  LU_TRY(lu_conv_pack_blocks(dev, opts, w->buf, cdy, cdx, 4, (size_t)g->kv, LU_DIRECT_CONVT, &wp, &wbytes));
  lu_status st = lu_conv_zero_row(dev, g->OX, &zrow, &zbytes);
  int Z = g->Z, Y = g->Y, X = g->X, OZ = g->OZ, OY = g->OY, OX = g->OX;
  if (st == LU_OK && (LU_ARG(kk, 0, dy->buf) | LU_ARG(kk, 1, wp) | LU_ARG(kk, 2, dx->buf) | LU_ARG(kk, 3, cdy) |
                      LU_ARG(kk, 4, cdx) | LU_ARG(kk, 5, Z) | LU_ARG(kk, 6, Y) | LU_ARG(kk, 7, X) | LU_ARG(kk, 8, OZ) |
                      LU_ARG(kk, 9, OY) | LU_ARG(kk, 10, OX) | LU_ARG(kk, 11, zrow)))
    st = lu_fail(LU_ECL, "dgrad_rows args");
  size_t gl[3] = {(size_t)((OX + 15) / 16) * ncb, (size_t)Z * 2 * ((OY + 1) / 2), (size_t)g->N};
  /* one work-group per (dx plane, row phase, dy row block) and sample */
  if (st == LU_OK) st = lu_launch_by_rows(dev, kk, gl, "dgrad_rows");
  if (zrow) lu_buffer_release(dev, zrow, zbytes);
  lu_conv_pack_release(dev, wp, wbytes);
  return st;
}

typedef struct { int extent, taps; } phase_axis;

/* Strided backward data on CPUs, when every axis is stride 2 / 3 taps / pad 1, stride 1 / 3 taps / pad 1
 * or stride 1 / 1 tap, with at least 64 positions per phase: below, the launches cost more than the
 * skipped zeros (2-D 8x8 dx 4.7 vs 4.2 ms, 3-D 4^3 7.5 vs 5.6 ms; 16x16: 7.4 vs 17.1 ms). */
int lu_conv_dgrad_phases_applies(const lu_conv_geom *g, const lu_device *dev) {
  if (!lu_tune_cpu(dev) || g->Cin < 12 || lu_tune(dev, LU_TUNE_CONV_PHASES) == 0) return 0;
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

lu_status lu_conv_dgrad_phases_run(const lu_conv_geom *g, const lu_tensor *dy, const lu_tensor *w, lu_tensor *dx) {
  lu_device *dev = dy->dev;
  lu_conv_tunables t = lu_conv_direct_tunables(dev);
  t.cob = 16;
  const int cin = g->Cout, cout = g->Cin; /* this pass: dy's channels in, dx's out */
  const int O[3] = {g->OZ, g->OY, g->OX}, one[3] = {1, 1, 1}, ncb = (cout + 15) / 16;
  int off[3]; /* dy's zero padding before: 1 along the stride-1 axes of 3 taps */
  for (int i = 0; i < 3; i++) off[i] = g->k[i] == 3 && g->s[i] == 1;
  /* one program build for every phase (conv_cvec takes the taps from its phase argument, PHASE_TAPS):
   * positions per work-item (pb along x, rb rows) from the widest phase, the even one */
  phase_axis y0 = phase_of(g, 1, 0), x0 = phase_of(g, 2, 0);
  int pb = lu_conv_cvec_block(x0.extent);
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
        int need[3] = {lu_conv_blocked_reach(az.extent, 1, 1, az.taps), lu_conv_blocked_reach(ay.extent, rb, 1, ay.taps),
                       lu_conv_blocked_reach(ax.extent, pb, 1, ax.taps)};
        for (int i = 0; i < 3; i++)
          if (Dp[i] < need[i]) Dp[i] = need[i];
        ph[nph].ax[0] = az, ph[nph].ax[1] = ay, ph[nph].ax[2] = ax;
        ph[nph].code = pz * 4 + py * 2 + px + (az.taps << 3) + (ay.taps << 5) + (ax.taps << 7);
        ph[nph].wofs = wofs;
        nph++;
      }
  char opts[320];
  lu_conv_direct_opts(&t, g->k, one, off, lu_conv_pick_vx(x0.extent, t.vx), opts, sizeof opts);
  /* channel blocks slowest (as in convT_cvec) when the weights outgrow an L2 of this machine: 2-D 16^2 512 >
   * 512 and 32^2 256 > 512 1.05-1.11x; 1.2 MB (128 > 256) 0.96-1.0x */
  size_t wbytes_all = (size_t)g->Cin * g->Cout * g->kv * sizeof(float);
  lu_conv_opts_add(opts, sizeof opts, " -DPB=%d -DRB=%d -DOSZ=%d -DOSY=%d -DOSX=%d -DPHASE_TAPS=1 -DCVEC_ORDER=%d", pb, rb,
           g->s[0], g->s[1], g->s[2], lu_tune_or(dev, LU_TUNE_CONV_PHASE_ORDER, wbytes_all > (2u << 20)));
  cl_kernel kp, kk;
  LU_TRY(lu_conv_kernel(dev, "pack_phases", opts, &kp));
  LU_TRY(lu_conv_kernel(dev, "conv_cvec", opts, &kk));
  cl_mem dyp = NULL, wp = NULL;
  size_t dyp_bytes = 0, wbytes = wfloats * sizeof(float);
  int zero = 0;
  LU_TRY(lu_buffer_alloc(dev, wbytes, &wp));
  lu_status st = lu_conv_pad_copy(dev, opts, dy->buf, g->N, cin, O[0], O[1], O[2], Dp[0], Dp[1], Dp[2], &dyp, &dyp_bytes);
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

/* Strided backward data on the channel-vector kernel dgrad_cvec (CPUs, >= 12 dx channels). */
int lu_conv_dgrad_cvec_applies(const lu_conv_geom *g, const lu_device *dev) {
  return lu_conv_cvec_allowed(dev) && g->Cin >= 12;
}

/* Strided backward data on dgrad_strided, or dgrad_s2x where x has 3 taps, pad 1 and stride 2 (the
 * phase-split kernel: no zero lanes): the kernels GPUs and narrow layers run. */
lu_status lu_conv_dgrad_strided_run(const lu_conv_geom *g, const lu_tensor *dy, const lu_tensor *w, lu_tensor *dx) {
  lu_device *dev = dy->dev;
  lu_conv_tunables tn = lu_conv_direct_tunables(dev);
  char opts[240];
  lu_conv_direct_opts(&tn, g->k, g->s, g->p, 8, opts, sizeof opts);
  int s2x = g->k[2] == 3 && g->p[2] == 1 && g->s[2] == 2 && tn.cob >= 2 && lu_tune(dev, LU_TUNE_CONV_S2X) != 0;
  cl_kernel k;
  LU_TRY(lu_conv_kernel(dev, s2x ? "dgrad_s2x" : "dgrad_strided", opts, &k));
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
