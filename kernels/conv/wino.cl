// 3x3, 1x3x3 and 3x3x3 stride-1 convolutions (pad 1) by Winograd transforms, for CPUs (PoCL): conv_wino
// (F(2,3) along x, below), conv_wino_tile (F(2x2) / F(2x2x2) tiles) and conv_wino_t4 (F(4x4) tiles) further on.
// conv_wino: 1-D Winograd F(2,3) along x.
// Two outputs of a kernel row take 4 multiplies instead of 6: for the inputs d0..d3 = x[o-1 .. o+2]
// and taps g0..g2, with V = (d0 - d2, d1 + d2, d2 - d1, d1 - d3) and
// U = (g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2), M = U * V (summed over channels and kernel rows),
// y[o] = M0 + M1 + M2 and y[o + 1] = M1 - M2 - M3.
// A work-item owns 32 outputs of RG rows: 16 tiles of 2, tile t in lane t. For each chunk of CICH input
// channels it transforms its RG + 2 input rows once into V (private, 4 vectors per row and channel), then
// sweeps the output channel blocks; each (V, U) product is one FMA with a broadcast weight, and the
// inverse transform runs once per block. Against conv_rows (9 FMAs per 16 outputs, kernel row and
// channel) this is 6 per 16, and the transform's shuffles and adds are shared by every channel block.
// Build options: COB (output channels per block), CICH (input channels per chunk), RG (rows per work-item).
#ifndef COB
#define COB 4
#endif
#ifndef CICH
#define CICH 32
#endif
#ifndef RG
#define RG 1
#endif
#ifndef KZ
#define KZ 1 // kernel planes: 1 (2-D, or 1x3x3) or 3 (3x3x3, pad 1 along z)
#endif
#define WT 4               // transformed taps of a kernel row
#define KR (KZ * 3)        // kernel rows
#define UCH (KR * WT * COB) // floats of U per input channel and channel block

// Constant shuffles of two float16 as single permutes (OpenCL's shuffle2 with a mask vector came out of
// PoCL as 8-byte loads and inserts: 40% of the kernel's time)
#define EVEN(a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
#define ODD(a, b) __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31)
#define BACK(a, b) __builtin_shufflevector(a, b, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30)
#define AHEAD(a, b) __builtin_shufflevector(a, b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)
#define MIX_LO(a, b) __builtin_shufflevector(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23)
#define MIX_HI(a, b) __builtin_shufflevector(a, b, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31)

// U (ceil(Cout / COB), Cin, KZ x 3 kernel rows, WT, COB) from the weights of the pass: forward w (Cout,
// Cin, KZ, 3, 3); flip (backward data as a conv of dy): w (Cin, Cout, KZ, 3, 3) of the forward conv, taps
// reversed. Channels past Cout get zeros.
// global: (Cin, ceil(Cout / COB) * COB)
__kernel void wino_pack(__global float *restrict u, __global const float *restrict w, const int Cin, const int Cout,
                        const int flip) {
  const int ci = get_global_id(0), co = get_global_id(1);
  __global float *o = u + ((size_t)(co / COB) * Cin + ci) * UCH + co % COB;
  for (int kr = 0; kr < KR; kr++) { // kernel row: plane kr / 3, row kr % 3
    float g0 = 0.0f, g1 = 0.0f, g2 = 0.0f;
    if (co < Cout && !flip) {
      __global const float *r = w + ((size_t)co * Cin + ci) * KR * 3 + kr * 3;
      g0 = r[0], g1 = r[1], g2 = r[2];
    } else if (co < Cout) {
      __global const float *r = w + ((size_t)ci * Cout + co) * KR * 3 + (KR - 1 - kr) * 3;
      g0 = r[2], g1 = r[1], g2 = r[0];
    }
    o[(kr * WT + 0) * COB] = g0;
    o[(kr * WT + 1) * COB] = 0.5f * (g0 + g1 + g2);
    o[(kr * WT + 2) * COB] = 0.5f * (g0 - g1 + g2);
    o[(kr * WT + 3) * COB] = g2;
  }
}

// y (N, Cout, OZ, OY, OX) = conv(x (N, Cin, Z, Y, X)) + bias, the same extents (the arguments of the
// other row kernels), kernel (KZ, 3, 3), pad (KZ / 2, 1, 1), X a multiple of 16 (the last work-item of a
// row may own 16 outputs: tiles 8-15 then read zeros and are not stored). A work-item computes RG
// consecutive rows of a plane: the RG + 2 input rows of each of its KZ input planes are transformed once
// per chunk, and each channel block's slice of U is read for all RG rows while it sits in L1.
// PAIR (rows of exactly 16): a vector holds the 8 tiles of two consecutive rows, the upper row in lanes
// 8-15, and a work-item computes RG such pairs; transformed "rows" are then pairs of input rows, 2 RG + 1
// of them per plane (pair g, kernel row r: input rows oy0 + 2g + r - 1 and the one below).
// global: (ceil(X / 32), Z * ceil(Y / (RG or 2 RG)), N)
#ifndef PAIR
#define PAIR 0
#endif
#define WROWS (RG * (PAIR + 1))           // output rows per work-item
#define SPAN (PAIR ? 2 * RG + 1 : RG + 2) // transformed rows per plane
#define SROWS (KZ * SPAN)                 // transformed rows per channel: plane by plane
__kernel void conv_wino(__global const float *restrict x, __global const float *restrict u,
                        __global const float *restrict b, const int has_bias, __global float *restrict y,
                        const int Cin, const int Cout, const int Z, const int Y, const int X, const int OZ,
                        const int OY, const int OX) {
  const int nrg = (OY + WROWS - 1) / WROWS, n = get_global_id(2), oz = get_global_id(1) / nrg;
  const int oy0 = get_global_id(1) % nrg * WROWS, nr = min(WROWS, OY - oy0);
  const int ox0 = get_global_id(0) * 32, nx = X - ox0, ncb = (Cout + COB - 1) / COB; // nx: 16 or >= 32
  const size_t plane = (size_t)Z * Y * X, OS = (size_t)OZ * OY * OX;
  __global const float *xn = x + (size_t)n * Cin * plane + ox0;
  __global float *yn = y + (size_t)n * Cout * OS + ((size_t)oz * OY + oy0) * OX + ox0;
  const float16 zero = 0.0f;
  float16 vs[CICH * SROWS * WT]; // the chunk's transformed input rows, channel by channel
  for (int ci0 = 0; ci0 < Cin; ci0 += CICH) {
    const int nc = min(CICH, Cin - ci0);
    for (int c = 0; c < nc; c++) {
      for (int r = 0; r < SROWS; r++) {
        const int iz = oz - KZ / 2 + r / SPAN, iy = oy0 - 1 + r % SPAN;
        const int zin = iz >= 0 && iz < Z;
        __global const float *xr = xn + (size_t)(ci0 + c) * plane + ((size_t)iz * Y + iy) * X;
        float16 d0 = zero, d1 = zero, d2 = zero, d3 = zero;
#if PAIR
        // rows iy and iy + 1, each inside the plane and needed by a row of this work-item
        const int ina = zin && iy >= 0 && iy < Y && iy <= oy0 + nr;
        const int inb = zin && iy + 1 < Y && iy + 1 <= oy0 + nr;
        if (ina || inb) {
          const float16 pa = ina ? vload16(0, xr) : zero, pb = inb ? vload16(0, xr + X) : zero;
          d1 = EVEN(pa, pb); // lanes 0-7: x[2t] of row iy, 8-15: of row iy + 1
          d2 = ODD(pa, pb);
          d0 = __builtin_shufflevector(d2, zero, 16, 0, 1, 2, 3, 4, 5, 6, 16, 8, 9, 10, 11, 12, 13, 14);
          d3 = __builtin_shufflevector(d1, zero, 1, 2, 3, 4, 5, 6, 7, 16, 9, 10, 11, 12, 13, 14, 15, 16);
        }
#else
        if (zin && iy >= 0 && iy < Y && iy <= oy0 + nr) {
          const float16 p = vload16(0, xr), q = nx > 16 ? vload16(1, xr) : zero;
          const float16 l = ox0 > 0 ? vload16(0, xr - 16) : zero;
          const float16 rt = nx > 32 ? vload16(2, xr) : zero;
          d1 = EVEN(p, q);    // x[ox0 + 2t]
          d2 = ODD(p, q);     // x[ox0 + 2t + 1]
          d0 = BACK(l, d2);   // x[ox0 + 2t - 1]: lane t - 1 of d2, lane 0 from l
          d3 = AHEAD(d1, rt); // x[ox0 + 2t + 2]: lane t + 1 of d1, lane 15 from rt
        }
#endif
        float16 *v = vs + (c * SROWS + r) * WT;
        v[0] = d0 - d2;
        v[1] = d1 + d2;
        v[2] = d2 - d1;
        v[3] = d1 - d3;
      }
    }
    for (int cb = 0; cb < ncb; cb++)
      for (int g = 0; g < (nr + PAIR) / (PAIR + 1); g++) {
        float16 acc[COB][WT];
#pragma unroll
        for (int j = 0; j < COB; j++)
#pragma unroll
          for (int t = 0; t < WT; t++) acc[j][t] = 0.0f;
        __global const float *uc = u + ((size_t)cb * Cin + ci0) * UCH;
        const float16 *vc = vs + g * (PAIR + 1) * WT;
        for (int c = 0; c < nc; c++, uc += UCH, vc += SROWS * WT) {
#pragma unroll
          for (int r = 0; r < KR; r++) // kernel row r: input row r % 3 of plane r / 3
#pragma unroll
            for (int t = 0; t < WT; t++) {
              const float16 v = vc[((r / 3) * SPAN + r % 3) * WT + t];
#pragma unroll
              for (int j = 0; j < COB; j++) acc[j][t] = fma((float16)(uc[(r * WT + t) * COB + j]), v, acc[j][t]);
            }
        }
#pragma unroll
        for (int j = 0; j < COB; j++) {
          const int co = cb * COB + j;
          if (co >= Cout) break;
          const float16 ye = acc[j][0] + acc[j][1] + acc[j][2], yo = acc[j][1] - acc[j][2] - acc[j][3];
          float16 lo = MIX_LO(ye, yo), hi = MIX_HI(ye, yo);
          __global float *yc = yn + (size_t)co * OS + (size_t)g * (PAIR + 1) * OX;
          // hi: the next 16 outputs of the row, or (PAIR) the row below
          const int hi_live = PAIR ? 2 * g + 1 < nr : nx > 16;
          __global float *yh = yc + (PAIR ? OX : 16);
          if (ci0 == 0) {
            const float bj = has_bias ? b[co] : 0.0f;
            lo += bj;
            hi += bj;
          } else {
            lo += vload16(0, yc);
            hi += hi_live ? vload16(0, yh) : zero;
          }
          vstore16(lo, 0, yc);
          if (hi_live) vstore16(hi, 0, yh);
        }
      }
  }
}

// ---- Winograd tiles: F(2x2, 3x3) over (y, x) and F(2x2x2, 3x3x3) over (z, y, x) ----
// The row kernel above transforms along x only (4 multiplies per 2 outputs of a kernel row: 2/3 of the
// direct count). Transforming along y as well takes 16 multiplies per 2x2 outputs and input channel
// (4/9 of direct), and along z too 64 per 2x2x2 (8/27). A work-item owns 2 output rows (WZ: of 2
// planes) of 32 outputs, lanes holding x-tiles as above; per chunk of CICH input channels it transforms
// its 4 (x 4 planes) input rows along x, then y (then z), and each channel block accumulates the
// transformed components one at a time, COB channels x 4 x-components in registers, before the
// inverse transform adds 2x2(x2) outputs per lane into y.
// Build options: COB, CICH, KZ (kernel planes: 1 or 3), WZ (1: transformed along z too; KZ = 3).
#ifndef WZ
#define WZ 0
#endif
#define TP (WZ ? 4 : KZ)        // input planes per channel (WZ: transformed)
#define PZ (WZ ? 2 : 1)         // output planes per work-item
#define NQ (WZ ? 16 : 4)        // components accumulated apart: (z,) y
#define KI (WZ ? 1 : KZ)        // kernel planes summed into one component (direct along z)
#define UQ (KI * WT * COB)      // floats of U per component, input channel and channel block
#ifndef TRB
#define TRB 1 // conv_wino_tile: blocks of 2 output rows per work-item
#endif
#ifndef TCBG
#define TCBG 1 // conv_wino_tile: work-items sharing the channel blocks of one row range
#endif

// A row's 64 floats from 16 before it (PoCL's prefetch() is empty; clang's builtin emits prefetcht0; the
// address through an integer: the builtin takes a private pointer, and PoCL's address spaces are one)
#define WINO_PREFETCH(p)                                                                                        \
  do {                                                                                                          \
    __builtin_prefetch((const void *)(size_t)(p));                                                              \
    __builtin_prefetch((const void *)(size_t)((p) + 16));                                                       \
    __builtin_prefetch((const void *)(size_t)((p) + 32));                                                       \
    __builtin_prefetch((const void *)(size_t)((p) + 48));                                                       \
  } while (0)

// 16 floats from p of which the first n (any int) lie inside the row; zeros past them. Rows whose
// length is no multiple of 16 take the scalar path at their end only.
static inline float16 load16_upto(__global const float *p, const int n) {
  if (n >= 16) return vload16(0, p);
  float16 v = 0.0f;
  if (n <= 0) return v;
  float t[16];
  for (int i = 0; i < 16; i++) t[i] = i < n ? p[i] : 0.0f;
  return vload16(0, t);
}

static inline void store16_upto(const float16 v, __global float *p, const int n) {
  if (n >= 16) {
    vstore16(v, 0, p);
  } else if (n > 0) {
    float t[16];
    vstore16(v, 0, t);
    for (int i = 0; i < n; i++) p[i] = t[i];
  }
}

// A tile kernel's 16 outputs at p (the first n inside the row): the first chunk of input channels stores
// them, later ones add the partial sums already there.
static inline void store16_sum(float16 v, __global float *p, const int n, const int add) {
  if (add) v += load16_upto(p, n);
  store16_upto(v, p, n);
}

// acc[j][t] = U * V over the chunk's nc channels for one component of the tile kernels: per channel, KN
// kernel planes (summed directly) of NT x-components each, U's COB channels broadcast against one vector of
// V; U advances UQN floats and V NT vectors per channel, V's kernel planes lie NT x CICH x NT vectors apart.
#define WINO_ACCUMULATE(acc, uc, vq, nc, NT, KN, UQN)                                                           \
  _Pragma("unroll") for (int j_ = 0; j_ < COB; j_++)                                                           \
  _Pragma("unroll") for (int t_ = 0; t_ < (NT); t_++) acc[j_][t_] = 0.0f;                                      \
  for (int c_ = 0; c_ < (nc); c_++, (uc) += (UQN), (vq) += (NT)) {                                             \
    _Pragma("unroll") for (int ki_ = 0; ki_ < (KN); ki_++)                                                     \
    _Pragma("unroll") for (int t_ = 0; t_ < (NT); t_++) {                                                      \
      const float16 v_ = (vq)[ki_ * (NT) * CICH * (NT) + t_];                                                  \
      _Pragma("unroll") for (int j_ = 0; j_ < COB; j_++)                                                       \
        acc[j_][t_] = fma((float16)((uc)[(ki_ * (NT) + t_) * COB + j_]), v_, acc[j_][t_]);                     \
    }                                                                                                          \
  }

// the two outputs of F(2,3) from 4 transformed values
#define INV0(m0, m1, m2, m3) ((m0) + (m1) + (m2))
#define INV1(m0, m1, m2, m3) ((m1) - (m2) - (m3))

// Tap (kz, ky, kx) of the pass's kernel for input channel ci and output channel co: forward w (Cout, Cin, KZ,
// 3, 3); flip (backward data as a conv of dy): w (Cin, Cout, KZ, 3, 3) of the forward conv, taps reversed.
// 0 past Cout (the last channel block's padding).
static inline float wino_tap(__global const float *w, const int ci, const int co, const int Cin, const int Cout,
                             const int flip, const int kz, const int ky, const int kx) {
  if (co >= Cout) return 0.0f;
  if (!flip) return w[(((size_t)co * Cin + ci) * KZ + kz) * 9 + ky * 3 + kx];
  return w[(((size_t)ci * Cout + co) * KZ + (KZ - 1 - kz)) * 9 + (2 - ky) * 3 + (2 - kx)];
}

// G g for the taps g0..g2 of one kernel row (or column, or plane line)
static inline void wino_g(const float g0, const float g1, const float g2, float *o) {
  o[0] = g0;
  o[1] = 0.5f * (g0 + g1 + g2);
  o[2] = 0.5f * (g0 - g1 + g2);
  o[3] = g2;
}

// U (ceil(Cout / COB), NQ, Cin, KI, WT, COB): the transformed weights of each component, channel by channel,
// from w as wino_pack reads it (flip: backward data). Channels past Cout get zeros.
// global: (Cin, ceil(Cout / COB) * COB)
__kernel void wino_tile_pack(__global float *restrict u, __global const float *restrict w, const int Cin,
                             const int Cout, const int flip) {
  const int ci = get_global_id(0), co = get_global_id(1);
  float g[KZ][3][3];
  for (int kz = 0; kz < KZ; kz++)
    for (int ky = 0; ky < 3; ky++)
      for (int kx = 0; kx < 3; kx++) g[kz][ky][kx] = wino_tap(w, ci, co, Cin, Cout, flip, kz, ky, kx);
  float gx[KZ][3][WT], gy[KZ][WT][WT], t[WT];
  for (int kz = 0; kz < KZ; kz++) {
    for (int ky = 0; ky < 3; ky++) wino_g(g[kz][ky][0], g[kz][ky][1], g[kz][ky][2], gx[kz][ky]);
    for (int ex = 0; ex < WT; ex++) {
      wino_g(gx[kz][0][ex], gx[kz][1][ex], gx[kz][2][ex], t);
      for (int ey = 0; ey < WT; ey++) gy[kz][ey][ex] = t[ey];
    }
  }
  __global float *o = u + (size_t)(co / COB) * NQ * Cin * UQ + (size_t)ci * UQ + co % COB;
  for (int ey = 0; ey < WT; ey++)
    for (int ex = 0; ex < WT; ex++) {
#if WZ
      wino_g(gy[0][ey][ex], gy[1][ey][ex], gy[2][ey][ex], t);
      for (int ez = 0; ez < WT; ez++) o[((size_t)(ez * WT + ey) * Cin * UQ) + ex * COB] = t[ez];
#else
      for (int kz = 0; kz < KZ; kz++) o[((size_t)ey * Cin * UQ) + (kz * WT + ex) * COB] = gy[kz][ey][ex];
#endif
    }
}

// y (N, Cout, OZ, OY, OX) = conv(x (N, Cin, Z, Y, X)) + bias, extents as conv_wino's, rows of any length
// (a last work-item of fewer than 32 outputs reads zeros past the row and stores only its outputs).
// TRB blocks of 2 rows per work-item and TCBG work-items per row range split the channel blocks, as
// conv_wino_t4's RB and CBG (small maps with many channels).
// global: (ceil(X / 32), ceil(OZ / PZ) * ceil(OY / (2 TRB)), N * TCBG)
__kernel void conv_wino_tile(__global const float *restrict x, __global const float *restrict u,
                             __global const float *restrict b, const int has_bias, __global float *restrict y,
                             const int Cin, const int Cout, const int Z, const int Y, const int X, const int OZ,
                             const int OY, const int OX) {
  const int nyt = (OY + 2 * TRB - 1) / (2 * TRB), n = get_global_id(2) / TCBG, grp = get_global_id(2) % TCBG;
  const int oz0 = get_global_id(1) / nyt * PZ, oy0 = get_global_id(1) % nyt * 2 * TRB;
  const int ox0 = get_global_id(0) * 32, nx = X - ox0, ncb = (Cout + COB - 1) / COB;
  const int cb0 = grp * ncb / TCBG, cb1 = (grp + 1) * ncb / TCBG;
  const int nrb = min(TRB, (OY - oy0 + 1) / 2), nz = min(PZ, OZ - oz0);
  const size_t plane = (size_t)Z * Y * X, OS = (size_t)OZ * OY * OX;
  __global const float *xn = x + (size_t)n * Cin * plane + ox0;
  __global float *yn = y + (size_t)n * Cout * OS + ((size_t)oz0 * OY + oy0) * OX + ox0;
  const float16 zero = 0.0f;
  // the chunk's transformed inputs: plane (or z component), y component, channel, x component (channels
  // of one component adjacent: a row stride of 4 KiB would keep them in one L1 set)
  float16 vs[TRB * TP * WT * CICH * WT]; // and row block, outermost
  float16 ms[NQ * COB * 2];        // a channel block's components after the inverse along x
  for (int ci0 = 0; ci0 < Cin; ci0 += CICH) {
    const int nc = min(CICH, Cin - ci0);
    for (int c = 0; c < nc; c++)
      for (int rb = 0; rb < nrb; rb++) {
        const int ry0 = oy0 + 2 * rb; // the block's first output row
        float16 *vc = vs + (size_t)rb * TP * WT * CICH * WT + c * WT;
        if (ci0 + c + 1 < Cin) // the next channel's rows, while this one is transformed (they miss the caches)
          for (int p = 0; p < TP; p++)
            for (int r = 0; r < 4; r++) {
              const int iz = oz0 - KZ / 2 + p, iy = ry0 - 1 + r;
              if (iz >= 0 && iz < Z && iy >= 0 && iy < Y)
                WINO_PREFETCH(xn + (size_t)(ci0 + c + 1) * plane + ((size_t)iz * Y + iy) * X - (ox0 > 0 ? 16 : 0));
            }
        for (int p = 0; p < TP; p++) {
          const int iz = oz0 - KZ / 2 + p;
          float16 t[4][WT]; // the plane's 4 input rows, transformed along x
          for (int r = 0; r < 4; r++) {
            const int iy = ry0 - 1 + r;
            float16 d0 = zero, d1 = zero, d2 = zero, d3 = zero;
            if (iz >= 0 && iz < Z && iy >= 0 && iy < Y) {
              __global const float *xr = xn + (size_t)(ci0 + c) * plane + ((size_t)iz * Y + iy) * X;
              const float16 pv = load16_upto(xr, nx), q = load16_upto(xr + 16, nx - 16);
              const float16 l = ox0 > 0 ? vload16(0, xr - 16) : zero;
              const float16 rt = load16_upto(xr + 32, nx - 32);
              d1 = EVEN(pv, q);
              d2 = ODD(pv, q);
              d0 = BACK(l, d2);
              d3 = AHEAD(d1, rt);
            }
            t[r][0] = d0 - d2;
            t[r][1] = d1 + d2;
            t[r][2] = d2 - d1;
            t[r][3] = d1 - d3;
          }
          float16 *vp = vc + p * WT * CICH * WT;
#pragma unroll
          for (int e = 0; e < WT; e++) { // along y
            vp[0 * CICH * WT + e] = t[0][e] - t[2][e];
            vp[1 * CICH * WT + e] = t[1][e] + t[2][e];
            vp[2 * CICH * WT + e] = t[2][e] - t[1][e];
            vp[3 * CICH * WT + e] = t[1][e] - t[3][e];
          }
        }
#if WZ
#pragma unroll
        for (int e = 0; e < WT * WT; e++) { // along z, in place: y component e / 4, x component e % 4
#define VZ(p) vc[(((p) * WT + e / WT) * CICH) * WT + e % WT]
          const float16 a0 = VZ(0), a1 = VZ(1), a2 = VZ(2), a3 = VZ(3);
          VZ(0) = a0 - a2;
          VZ(1) = a1 + a2;
          VZ(2) = a2 - a1;
          VZ(3) = a1 - a3;
#undef VZ
        }
#endif
      }
    for (int cb = cb0; cb < cb1; cb++)
      for (int rb = 0; rb < nrb; rb++) {
        const int ny = min(2, OY - oy0 - 2 * rb);
        for (int q = 0; q < NQ; q++) {
          float16 acc[COB][WT];
          __global const float *uc = u + ((size_t)(cb * NQ + q) * Cin + ci0) * UQ;
          // WZ: z component q / 4; y component q % 4
          const float16 *vq = vs + (size_t)rb * TP * WT * CICH * WT + (size_t)q * CICH * WT;
          WINO_ACCUMULATE(acc, uc, vq, nc, WT, KI, UQ);
#pragma unroll
          for (int j = 0; j < COB; j++) {
            ms[(q * COB + j) * 2] = INV0(acc[j][0], acc[j][1], acc[j][2], acc[j][3]);
            ms[(q * COB + j) * 2 + 1] = INV1(acc[j][0], acc[j][1], acc[j][2], acc[j][3]);
          }
        }
        for (int j = 0; j < COB; j++) {
          const int co = cb * COB + j;
          if (co >= Cout) break;
          const float bj = ci0 == 0 && has_bias ? b[co] : 0.0f;
          float16 o[PZ][2][2]; // output plane, row, even / odd x
#pragma unroll
          for (int h = 0; h < 2; h++) {
            float16 r[2][NQ / WT]; // along y first: output row, z component
#pragma unroll
            for (int qz = 0; qz < NQ / WT; qz++) {
              const float16 *m = ms + (qz * WT * COB + j) * 2 + h;
              const float16 m0 = m[0], m1 = m[COB * 2], m2 = m[2 * COB * 2], m3 = m[3 * COB * 2];
              r[0][qz] = INV0(m0, m1, m2, m3);
              r[1][qz] = INV1(m0, m1, m2, m3);
            }
#pragma unroll
            for (int py = 0; py < 2; py++) {
#if WZ
              o[0][py][h] = INV0(r[py][0], r[py][1], r[py][2], r[py][3]);
              o[1][py][h] = INV1(r[py][0], r[py][1], r[py][2], r[py][3]);
#else
              o[0][py][h] = r[py][0];
#endif
            }
          }
          for (int pz = 0; pz < nz; pz++)
            for (int py = 0; py < ny; py++) {
              float16 lo = MIX_LO(o[pz][py][0], o[pz][py][1]) + bj, hi = MIX_HI(o[pz][py][0], o[pz][py][1]) + bj;
              __global float *yc = yn + (size_t)co * OS + ((size_t)pz * OY + 2 * rb + py) * OX;
              store16_sum(lo, yc, nx, ci0 > 0);
              store16_sum(hi, yc + 16, nx - 16, ci0 > 0);
            }
        }
      }
  }
}

// ---- Winograd F(4x4, 3x3) tiles over (y, x), kernel planes summed directly ----
// 36 multiplies per 4x4 outputs, kernel plane and input channel (1/4 of direct, against 4/9 for the 2x2
// tiles above); the transforms have the weights 4, 5 and 2 (Lavin and Gray's points 0, +-1, +-2). A
// work-item owns 4 output rows of 64 outputs, lane t holding outputs 4t .. 4t + 3 of a row; per chunk of
// CICH input channels its 6 input rows of each of the KZ planes are transformed along x then y, and each
// channel block accumulates the 6 y components one at a time, COB channels x 6 x-components in registers.
// Build options: COB, CICH, KZ (kernel planes: 1 or 3).
#define T6 6
#define UQ6 (KZ * T6 * COB) // floats of U per y component, input channel and channel block
#ifndef RB
#define RB 1 // conv_wino_t4: blocks of 4 output rows per work-item
#endif
#ifndef CBG
#define CBG 1 // conv_wino_t4: work-items sharing the channel blocks of one row range
#endif
#ifndef TG
#define TG 1 // conv_wino_t4: blocks of 4 rows side by side in a vector (rows of at most 64 / TG)
#endif
#define TSEG (4 / TG) // 16-float segments of a row in a vector
#define BROWS (4 * TG) // output rows of one block

// B^T d for the 6 inputs d0..d5 of a tile
#define BT6(d0, d1, d2, d3, d4, d5, v)                                                                          \
  do {                                                                                                          \
    v[0] = 4.0f * (d0) - 5.0f * (d2) + (d4);                                                                    \
    v[1] = -4.0f * ((d1) + (d2)) + (d3) + (d4);                                                                 \
    v[2] = 4.0f * ((d1) - (d2)) - (d3) + (d4);                                                                  \
    v[3] = 2.0f * ((d3) - (d1)) - (d2) + (d4);                                                                  \
    v[4] = 2.0f * ((d1) - (d3)) - (d2) + (d4);                                                                  \
    v[5] = 4.0f * (d1) - 5.0f * (d3) + (d5);                                                                    \
  } while (0)

// A^T m: the 4 outputs from 6 transformed values
#define AT6(m, o)                                                                                               \
  do {                                                                                                          \
    const float16 s12_ = (m)[1] + (m)[2], d12_ = (m)[1] - (m)[2], s34_ = (m)[3] + (m)[4], d34_ = (m)[3] - (m)[4]; \
    o[0] = (m)[0] + s12_ + s34_;                                                                                \
    o[1] = d12_ + 2.0f * d34_;                                                                                  \
    o[2] = s12_ + 4.0f * s34_;                                                                                  \
    o[3] = d12_ + 8.0f * d34_ + (m)[5];                                                                         \
  } while (0)

// G g for the taps g0..g2
static inline void wino_g6(const float g0, const float g1, const float g2, float *o) {
  o[0] = 0.25f * g0;
  o[1] = -(g0 + g1 + g2) / 6.0f;
  o[2] = -(g0 - g1 + g2) / 6.0f;
  o[3] = g0 / 24.0f + g1 / 12.0f + g2 / 6.0f;
  o[4] = g0 / 24.0f - g1 / 12.0f + g2 / 6.0f;
  o[5] = g2;
}

// U (ceil(Cout / COB), 6 y components, Cin, KZ, 6 x components, COB) from w as wino_pack reads it.
// global: (Cin, ceil(Cout / COB) * COB)
__kernel void wino_t4_pack(__global float *restrict u, __global const float *restrict w, const int Cin,
                           const int Cout, const int flip) {
  const int ci = get_global_id(0), co = get_global_id(1);
  __global float *o = u + (size_t)(co / COB) * T6 * Cin * UQ6 + (size_t)ci * UQ6 + co % COB;
  for (int kz = 0; kz < KZ; kz++) {
    float g[3][3], gx[3][T6], t[T6];
    for (int ky = 0; ky < 3; ky++)
      for (int kx = 0; kx < 3; kx++) g[ky][kx] = wino_tap(w, ci, co, Cin, Cout, flip, kz, ky, kx);
    for (int ky = 0; ky < 3; ky++) wino_g6(g[ky][0], g[ky][1], g[ky][2], gx[ky]);
    for (int ex = 0; ex < T6; ex++) {
      wino_g6(gx[0][ex], gx[1][ex], gx[2][ex], t);
      for (int ey = 0; ey < T6; ey++) o[(size_t)ey * Cin * UQ6 + (kz * T6 + ex) * COB] = t[ey];
    }
  }
}

// y (N, Cout, OZ, OY, OX) = conv(x (N, Cin, Z, Y, X)) + bias, extents as conv_wino's, rows of any length.
// Small maps with many channels (32^2 x 512 of a 2-D plan): every work-item streams all of U once per chunk
// (37 MB there), so a work-item takes RB blocks of 4 rows, whose transforms share each slice of U while it
// sits in L1, and CBG work-items split the channel blocks of one row range between them.
// TG > 1 (rows of at most 64 / TG): a block is TG groups of 4 rows side by side in the lanes, group g in
// lanes 16 g / TG .., so narrow rows still fill the vector; a group's tiles read zeros left of x = 0 and
// right of its row.
// global: (ceil(X / 64), Z * ceil(OY / (4 TG RB)), N * CBG)
__kernel void conv_wino_t4(__global const float *restrict x, __global const float *restrict u,
                           __global const float *restrict b, const int has_bias, __global float *restrict y,
                           const int Cin, const int Cout, const int Z, const int Y, const int X, const int OZ,
                           const int OY, const int OX) {
  const int nyt = (OY + BROWS * RB - 1) / (BROWS * RB), n = get_global_id(2) / CBG, grp = get_global_id(2) % CBG;
  const int oz = get_global_id(1) / nyt, oy0 = get_global_id(1) % nyt * BROWS * RB;
  const int ox0 = get_global_id(0) * 64, nx = X - ox0, ncb = (Cout + COB - 1) / COB;
  const int cb0 = grp * ncb / CBG, cb1 = (grp + 1) * ncb / CBG;
  const int nrb = min(RB, (OY - oy0 + BROWS - 1) / BROWS); // row blocks inside the output
  const size_t plane = (size_t)Z * Y * X, OS = (size_t)OZ * OY * OX;
  __global const float *xn = x + (size_t)n * Cin * plane + ox0;
  __global float *yn = y + (size_t)n * Cout * OS + ((size_t)oz * OY + oy0) * OX + ox0;
  const float16 zero = 0.0f;
  // the chunk's transformed inputs: row block, kernel plane, y component, channel, x component
  float16 vs[RB * KZ * T6 * CICH * T6];
  float16 ms[T6 * COB * 4]; // a channel block's y components after the inverse along x
  for (int ci0 = 0; ci0 < Cin; ci0 += CICH) {
    const int nc = min(CICH, Cin - ci0);
    for (int c = 0; c < nc; c++)
      for (int rb = 0; rb < nrb; rb++) {
        const int ry0 = oy0 + BROWS * rb; // the block's first output row
        if (ci0 + c + 1 < Cin)
          for (int p = 0; p < KZ; p++)
            for (int r = 0; r < BROWS + 2; r++) {
              const int iz = oz - KZ / 2 + p, iy = ry0 - 1 + r;
              if (iz >= 0 && iz < Z && iy >= 0 && iy < Y) {
                __global const float *xr = xn + (size_t)(ci0 + c + 1) * plane + ((size_t)iz * Y + iy) * X;
                WINO_PREFETCH(xr);
                __builtin_prefetch((const void *)(size_t)(xr + 64));
              }
            }
        for (int p = 0; p < KZ; p++) {
          const int iz = oz - KZ / 2 + p;
          float16 t[T6][T6]; // the plane's 6 input rows, transformed along x
          for (int r = 0; r < T6; r++) {
            float16 d0 = zero, d1 = zero, d2 = zero, d3 = zero, d4 = zero, d5 = zero;
#if TG == 1
            const int iy = ry0 - 1 + r;
            if (iz >= 0 && iz < Z && iy >= 0 && iy < Y) {
              __global const float *xr = xn + (size_t)(ci0 + c) * plane + ((size_t)iz * Y + iy) * X;
              const float16 p0 = load16_upto(xr, nx), p1 = load16_upto(xr + 16, nx - 16);
              const float16 p2 = load16_upto(xr + 32, nx - 32), p3 = load16_upto(xr + 48, nx - 48);
              const float16 l = ox0 > 0 ? vload16(0, xr - 16) : zero;
              const float16 rt = load16_upto(xr + 64, nx - 64);
              const float16 e01 = EVEN(p0, p1), e23 = EVEN(p2, p3), o01 = ODD(p0, p1), o23 = ODD(p2, p3);
              d1 = EVEN(e01, e23); // x[ox0 + 4t]
              d3 = ODD(e01, e23);  // x[ox0 + 4t + 2]
              d2 = EVEN(o01, o23); // x[ox0 + 4t + 1]
              d4 = ODD(o01, o23);  // x[ox0 + 4t + 3]
              d0 = BACK(l, d4);    // x[ox0 + 4t - 1]
              d5 = AHEAD(d1, rt);  // x[ox0 + 4t + 4]
            }
#else
            // segment j of the 64 lanes' inputs: group j / TSEG's row, columns 16 (j % TSEG) ..
            float16 pj[4];
            int any = 0;
#pragma unroll
            for (int j = 0; j < 4; j++) {
              const int iy = ry0 + 4 * (j / TSEG) - 1 + r, off = 16 * (j % TSEG);
              pj[j] = zero;
              if (iz >= 0 && iz < Z && iy >= 0 && iy < Y) {
                pj[j] = load16_upto(xn + (size_t)(ci0 + c) * plane + ((size_t)iz * Y + iy) * X + off, nx - off);
                any = 1;
              }
            }
            if (any) {
              const float16 e01 = EVEN(pj[0], pj[1]), e23 = EVEN(pj[2], pj[3]);
              const float16 o01 = ODD(pj[0], pj[1]), o23 = ODD(pj[2], pj[3]);
              d1 = EVEN(e01, e23);
              d3 = ODD(e01, e23);
              d2 = EVEN(o01, o23);
              d4 = ODD(o01, o23);
#if TG == 2 // a group's first tile reads x = -1, its last x = 32: zeros (rows of at most 32)
              d0 = __builtin_shufflevector(d4, zero, 16, 0, 1, 2, 3, 4, 5, 6, 16, 8, 9, 10, 11, 12, 13, 14);
              d5 = __builtin_shufflevector(d1, zero, 1, 2, 3, 4, 5, 6, 7, 16, 9, 10, 11, 12, 13, 14, 15, 16);
#else
              d0 = __builtin_shufflevector(d4, zero, 16, 0, 1, 2, 16, 4, 5, 6, 16, 8, 9, 10, 16, 12, 13, 14);
              d5 = __builtin_shufflevector(d1, zero, 1, 2, 3, 16, 5, 6, 7, 16, 9, 10, 11, 16, 13, 14, 15, 16);
#endif
            }
#endif
            BT6(d0, d1, d2, d3, d4, d5, t[r]);
          }
          float16 *vp = vs + ((size_t)rb * KZ + p) * T6 * CICH * T6 + c * T6;
#pragma unroll
          for (int e = 0; e < T6; e++) { // along y
            float16 v[T6];
            BT6(t[0][e], t[1][e], t[2][e], t[3][e], t[4][e], t[5][e], v);
#pragma unroll
            for (int ey = 0; ey < T6; ey++) vp[ey * CICH * T6 + e] = v[ey];
          }
        }
      }
    for (int cb = cb0; cb < cb1; cb++)
      for (int rb = 0; rb < nrb; rb++) {
        for (int q = 0; q < T6; q++) { // y component
          float16 acc[COB][T6];
          __global const float *uc = u + ((size_t)(cb * T6 + q) * Cin + ci0) * UQ6;
          const float16 *vq = vs + ((size_t)rb * KZ * T6 + q) * CICH * T6;
          WINO_ACCUMULATE(acc, uc, vq, nc, T6, KZ, UQ6);
#pragma unroll
          for (int j = 0; j < COB; j++) {
            float16 o[4];
            AT6(acc[j], o);
#pragma unroll
            for (int k = 0; k < 4; k++) ms[(q * COB + j) * 4 + k] = o[k];
          }
        }
        for (int j = 0; j < COB; j++) {
          const int co = cb * COB + j;
          if (co >= Cout) break;
          const float bj = ci0 == 0 && has_bias ? b[co] : 0.0f;
          float16 rows[4][4]; // output row, x output k of each lane
#pragma unroll
          for (int k = 0; k < 4; k++) {
            float16 m[T6], o[4];
#pragma unroll
            for (int q = 0; q < T6; q++) m[q] = ms[(q * COB + j) * 4 + k];
            AT6(m, o);
#pragma unroll
            for (int r = 0; r < 4; r++) rows[r][k] = o[r];
          }
          for (int r = 0; r < 4; r++) {
            const float16 a = MIX_LO(rows[r][0], rows[r][2]), bb = MIX_LO(rows[r][1], rows[r][3]);
            const float16 a2 = MIX_HI(rows[r][0], rows[r][2]), b2 = MIX_HI(rows[r][1], rows[r][3]);
            const float16 out[4] = {MIX_LO(a, bb) + bj, MIX_HI(a, bb) + bj, MIX_LO(a2, b2) + bj, MIX_HI(a2, b2) + bj};
#pragma unroll
            for (int s = 0; s < 4; s++) { // segment s: row r of group s / TSEG
              const int oy = BROWS * rb + 4 * (s / TSEG) + r, off = 16 * (s % TSEG);
              if (oy0 + oy < OY) store16_sum(out[s], yn + (size_t)co * OS + (size_t)oy * OX + off, nx - off, ci0 > 0);
            }
          }
        }
      }
  }
}
