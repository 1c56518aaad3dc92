/* The direct convolution kernels (kernels/conv/): conv_direct (x-vectors of VX lanes, COB output
 * channels per work-item), conv_cvec (output channels in the lanes, for the short rows of deep
 * layers on CPUs), conv_rows (two output rows share each weight broadcast along 3-tap rows),
 * convT_cvec (transposed conv forward) and dgrad_cvec (strided backward data). Weights are packed
 * per block of output channels first, unless conv_rows reads them in place. */
#include "ops/conv/base.h"

#include <stdio.h>
#include <string.h>

#include "cl/pool.h"
#include "ops/ops.h"

/* Output positions per work-item of the channel-vector kernel, or 0 for the x-vector kernel: on CPUs
 * (where a row of 4-8 x-lanes leaves most of a 16-lane register idle) with enough output channels to
 * fill the lanes. Rows up to 8 wide are one work-item; wider ones are split evenly. Tunable
 * conv.cvec = 0 keeps the x-vector kernel. */
static int cvec_positions(const lu_device *dev, int ox, int cout) {
  if (!lu_conv_cvec_allowed(dev) || cout < 12) return 0;
  /* wider rows too when 16-lane x-vectors would leave a quarter of their lanes idle (a 20-wide row
   * fills 20 of 32): 24x20 layers 1.38 -> 0.91 ms, 2.68 -> 1.60 ms; 48x40 ones stay faster on x-vectors */
  int vecs = (ox + 15) / 16;
  if (ox >= 16 && 5 * ox >= 4 * 16 * vecs) return 0;
  return lu_conv_cvec_block(ox);
}

/* conv_rows instead of conv_direct: on CPUs, for x-vectors of 16 lanes along rows of 3 taps, pad 1,
 * stride 1 in x and y (two output rows share each weight broadcast), when the kernel has 3 taps along z
 * or the pass has >= 32 input channels (forward; backward data >= 64) and >= 16 output channels. Single
 * layers, forward, one process alternating (best-of / median ratios over 4-9 rounds): 3-D 64^3 32 ch
 * 1.21-1.25x, 32^3 64 ch 1.0-1.27x, 16^3 128 ch 1.10x (backward data 1.07-1.20x); 2-D 64x64 128 ch
 * 1.07-1.13x, 128x128 128 > 64 ch 1.09-1.15x. 2-D layers with 32-64 input channels lost (0.92-0.96x)
 * until conv_rows swept its channel blocks per chunk; since then they gain: forward 256^2
 * 32 > 32 1.19-1.29x, 128^2 64 > 64 1.09-1.30x, 256^2 64 > 32 1.01-1.27x, backward data from 64 dy
 * channels 1.14-1.44x, from 32 still 0.8-0.98x. Tunable conv.rows: 1 wherever the geometry allows, 0
 * never. */
static int rows_apply(const lu_device *dev, int Cin, int Cout, const int *k, const int *s, const int *p, int vx,
                      int mode) {
  if (!lu_tune_cpu(dev) || vx != 16 || k[2] != 3 || p[2] != 1 || p[1] != k[1] / 2 || s[2] != 1 || s[1] != 1) return 0;
  int min_cin = mode == LU_DIRECT_CONV ? 32 : 64;
  return lu_tune_or(dev, LU_TUNE_CONV_ROWS, k[0] == 3 || (Cin >= min_cin && Cout >= 16)) != 0;
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

/* y (N, Cout, OZ, OY, OX) from x (N, Cin, Z, Y, X) and weights w with geometry k, s, p, as `mode`
 * says; for the backward-data modes x is dy and y is dx, Cin / Cout the pass's own channel counts
 * and k, s, p the forward convolution's (stride 1: already flipped to k - 1 - p). The weights are
 * packed per channel block first. */
lu_status lu_conv_direct_run(lu_device *dev, int N, int Cin, int Cout, int Z, int Y, int X, int OZ, int OY, int OX,
                            const int *k, const int *s, const int *p, cl_mem x, cl_mem w, int mode, const lu_tensor *b,
                            cl_mem y) {
  lu_conv_tunables t = lu_conv_direct_tunables(dev);
  int vx = lu_conv_pick_vx(OX, t.vx), pb = cvec_positions(dev, OX, Cout);
  if (mode >= LU_DIRECT_CONVT) pb = OX < 8 ? OX : 8; /* convT_cvec / dgrad_cvec, any row width */
  if (mode == LU_DIRECT_CONVT && pb % k[2]) pb -= pb % k[2]; /* convT_cvec: blocks start on a tap-0 position */
  int rows = !pb && mode <= LU_DIRECT_BWD_DATA && rows_apply(dev, Cin, Cout, k, s, p, vx, mode);
  if (pb) t.cob = 16; /* the channel-vector kernels: 16 output channels in the lanes */
  if (rows) t.cob = lu_tune(dev, LU_TUNE_CONV_ROWS_COB); /* conv_rows: 2 rows x 8 channels */
  int cob = t.cob;
  char opts[260];
  lu_conv_direct_opts(&t, k, s, p, vx, opts, sizeof opts);
  int rb = 1, order = 0, rgrp = 1;
  /* conv_rows over <= 1024 positions (N OZ OY OX) reads w in place (1: forward, 2: backward data,
   * flipped): its weights are scalar broadcasts either way, and there packing cost ~8% of the time (2-D
   * 16^2 512 > 512 and 1024 > 512 forward: 1.05-1.39x in place). Over more positions the packing weighs
   * less than the scattered reads (32^2 1.0x, 128^2 64 ch and 3-D 0.85-0.95x). */
  int wdirect = rows && Cout >= cob && lu_tune_or(dev, LU_TUNE_CONV_WDIRECT, (size_t)N * OZ * OY * OX <= 1024) != 0
                    ? 1 + (mode == LU_DIRECT_BWD_DATA)
                    : 0;
  if (pb && mode <= LU_DIRECT_BWD_DATA) { /* conv_cvec: rows of pb positions up to 16 accumulators */
    pb = lu_tune_or(dev, LU_TUNE_CONV_PB, pb);
    rb = lu_tune_or(dev, LU_TUNE_CONV_RB, 16 / pb < 1 ? 1 : (16 / pb > OY ? OY : 16 / pb));
    order = lu_tune(dev, LU_TUNE_CONV_CVEC_ORDER);
  } else if (mode == LU_DIRECT_CONVT) {
    /* convT_cvec, channel blocks slowest when the weights outgrow half the 2 MB L2: 2-D 512 > 512 (4 MB)
     * 1.29-1.81x, 512 > 256 1.46x, 3-D 320 > 256 1.75x; 256 > 128 (0.5 MB) 0.93-1.0x */
    size_t wbytes_all = (size_t)Cin * Cout * k[0] * k[1] * k[2] * sizeof(float);
    order = lu_tune_or(dev, LU_TUNE_CONVT_ORDER, wbytes_all > (1u << 20));
  }
  if (pb) lu_conv_opts_add(opts, sizeof opts, " -DPB=%d -DRB=%d -DCVEC_ORDER=%d", pb, rb, order);
  if (mode == LU_DIRECT_CONVT) { /* convT_cvec: the k[1] output rows of one input row per work-item */
    rb = lu_tune_or(dev, LU_TUNE_CONVT_TROWS, k[1]);
    lu_conv_opts_add(opts, sizeof opts, " -DTROWS=%d", rb);
  }
  if (rows) {
    rb = lu_tune(dev, LU_TUNE_CONV_DRB);
    rgrp = lu_tune_or(dev, LU_TUNE_CONV_RGRP,
                           rows_group(dev, N, Cin, Cout, OZ * ((OY + rb - 1) / rb), (OX + vx - 1) / vx, k));
    lu_conv_opts_add(opts, sizeof opts, " -DDRB=%d -DCICH=%d -DRGRP=%d -DWDIRECT=%d", rb,
             lu_tune(dev, LU_TUNE_CONV_CICH), rgrp, wdirect);
  }
  const char *kname = mode == LU_DIRECT_CONVT              ? "convT_cvec"
                      : mode == LU_DIRECT_BWD_DATA_STRIDED ? "dgrad_cvec"
                      : pb                              ? "conv_cvec"
                      : rows                            ? "conv_rows"
                                                        : "conv_direct";
  int flip = mode == LU_DIRECT_BWD_DATA_STRIDED ? LU_DIRECT_CONVT : mode;
  int kk_is_padded = pb && mode <= LU_DIRECT_BWD_DATA; /* conv_cvec */
  cl_kernel kk;
  LU_TRY(lu_conv_kernel(dev, kname, opts, &kk));
  int ncb = (Cout + cob - 1) / cob;
  cl_mem wp = w;
  size_t wbytes = 0;
  if (!wdirect) LU_TRY(lu_conv_pack_blocks(dev, opts, w, Cin, Cout, cob, (size_t)k[0] * k[1] * k[2], flip, &wp, &wbytes));
  lu_status st = lu_conv_kernel_args(kk, kname, x, wp, w, b, y, Cin, Cout, Z, Y, X, OZ, OY, OX);
  int per = pb ? pb : vx;
  /* conv_rows sweeps the channel blocks itself */
  size_t gl[3] = {(size_t)((OX + per - 1) / per) * (rows ? 1 : ncb),
                  ((size_t)OZ * ((OY + rb - 1) / rb) + rgrp - 1) / rgrp, (size_t)N};
  cl_mem xpad = NULL;
  size_t xpad_bytes = 0;
  if (st == LU_OK && kk_is_padded) {
    /* conv_cvec reads a zero-padded copy: extents cover every tap of every position block */
    int Zp = Z + 2 * p[0], Yp = Y + 2 * p[1], Xp = X + 2 * p[2];
    int need_x = lu_conv_blocked_reach(OX, pb, s[2], k[2]), need_y = lu_conv_blocked_reach(OY, rb, s[1], k[1]);
    if (Xp < need_x) Xp = need_x;
    if (Yp < need_y) Yp = need_y;
    st = lu_conv_pad_copy(dev, opts, x, N, Cin, Z, Y, X, Zp, Yp, Xp, &xpad, &xpad_bytes);
    int phase = 0, wofs = 0;
    if (st == LU_OK && (LU_ARG(kk, 0, xpad) | LU_ARG(kk, 7, Zp) | LU_ARG(kk, 8, Yp) | LU_ARG(kk, 9, Xp) |
                        LU_ARG(kk, 13, OZ) | LU_ARG(kk, 14, OY) | LU_ARG(kk, 15, OX) | LU_ARG(kk, 16, phase) |
                        LU_ARG(kk, 17, wofs)))
      st = lu_fail(LU_ECL, "conv_cvec args");
  }
  cl_mem zrow = NULL;
  size_t zrow_bytes = 0;
  if (st == LU_OK && rows) {
    st = lu_conv_zero_row(dev, X, &zrow, &zrow_bytes);
    if (st == LU_OK && LU_ARG(kk, 13, zrow)) st = lu_fail(LU_ECL, "conv_rows args");
  }
  /* conv_cvec, conv_rows: one work-group per row block and sample */
  if (st == LU_OK)
    st = kk_is_padded || rows ? lu_launch_by_rows(dev, kk, gl, kname) : lu_launch(dev, kk, 3, gl, NULL, kname);
  if (zrow) lu_buffer_release(dev, zrow, zrow_bytes);
  if (xpad) lu_buffer_release(dev, xpad, xpad_bytes);
  if (!wdirect) lu_conv_pack_release(dev, wp, wbytes);
  return st;
}

int lu_convT_fwd_direct_applies(const lu_conv_geom *g, const lu_device *dev) {
  return lu_conv_cvec_allowed(dev) && g->kv > 1 && g->Cout >= 12;
}

lu_status lu_convT_fwd_direct(const lu_conv_geom *g, const lu_tensor *x, const lu_tensor *w, const lu_tensor *b,
                              lu_tensor *y) {
  const int p0[3] = {0, 0, 0};
  return lu_conv_direct_run(x->dev, g->N, g->Cin, g->Cout, g->Z, g->Y, g->X, g->OZ, g->OY, g->OX, g->s, g->s, p0, x->buf,
                    w->buf, LU_DIRECT_CONVT, b, y->buf);
}
