// 3x3, 1x3x3 and 3x3x3 stride-1 convolutions (pad 1) by 1-D Winograd F(2,3) along x, for CPUs (PoCL).
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
