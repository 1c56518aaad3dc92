// Stride-2 convolution forward along rows, for CPUs (PoCL): kernel (KZ, 3, 3), stride (SZ, 2, 2), pad
// (KZ / 2, 1, 1), rows a multiple of 32 wide. Output x = ox reads input x = 2 ox - 1, 2 ox, 2 ox + 1: the
// odd elements one lane back, the even ones and the odd ones of the row's de-interleaved halves. A
// work-item owns 16 outputs of RG rows; per chunk of CICH input channels it de-interleaves its 2 RG + 1
// input rows of each plane once into a private array (3 vectors per row: 2 loads, 3 permutes), then sweeps
// the output channel blocks of COB with one vector load per tap and COB FMAs whose weights are embedded
// broadcasts. (Permutes inside the FMA loop, as conv_direct's strided taps have them, leave too few
// registers or make the loop load-bound.)
#ifndef COB
#define COB 16
#endif
#ifndef CICH
#define CICH 32
#endif
#ifndef RG
#define RG 2
#endif
#ifndef KZ
#define KZ 1
#endif
#ifndef SZ
#define SZ 1
#endif
#define KV (KZ * 9)
#define SPAN (2 * RG + 1)  // input rows per plane
#define SROWS (KZ * SPAN) // input rows per channel

#define EVEN(a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
#define ODD(a, b) __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31)
#define BACK(a, b) __builtin_shufflevector(a, b, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30)

// wp (ceil(Cout / COB), Cin, KV, COB) from w (Cout, Cin, KZ, 3, 3); channels past Cout get zeros.
// global: (Cin, ceil(Cout / COB) * COB)
__kernel void s2_pack(__global float *restrict wp, __global const float *restrict w, const int Cin, const int Cout) {
  const int ci = get_global_id(0), co = get_global_id(1);
  __global float *o = wp + ((size_t)(co / COB) * Cin + ci) * KV * COB + co % COB;
  for (int t = 0; t < KV; t++) o[t * COB] = co < Cout ? w[((size_t)co * Cin + ci) * KV + t] : 0.0f;
}

// y (N, Cout, OZ, OY, OX) = conv(x (N, Cin, Z, Y, X)) + bias.
// global: (OX / 16, OZ * ceil(OY / RG), N)
__kernel void conv_s2rows(__global const float *restrict x, __global const float *restrict wp,
                          __global const float *restrict b, const int has_bias, __global float *restrict y,
                          const int Cin, const int Cout, const int Z, const int Y, const int X, const int OZ,
                          const int OY, const int OX) {
  const int nrg = (OY + RG - 1) / RG, n = get_global_id(2), oz = get_global_id(1) / nrg;
  const int oy0 = get_global_id(1) % nrg * RG, nr = min(RG, OY - oy0);
  const int ox0 = get_global_id(0) * 16, ncb = (Cout + COB - 1) / COB;
  const size_t plane = (size_t)Z * Y * X, OS = (size_t)OZ * OY * OX;
  __global const float *xn = x + (size_t)n * Cin * plane + 2 * ox0;
  __global float *yn = y + (size_t)n * Cout * OS + ((size_t)oz * OY + oy0) * OX + ox0;
  const float16 zero = 0.0f;
  float16 vs[CICH * SROWS * 3]; // the chunk's de-interleaved input rows: x[2t - 1], x[2t], x[2t + 1]
  for (int ci0 = 0; ci0 < Cin; ci0 += CICH) {
    const int nc = min(CICH, Cin - ci0);
    for (int c = 0; c < nc; c++) {
      for (int r = 0; r < SROWS; r++) {
        const int iz = oz * SZ - KZ / 2 + r / SPAN, iy = 2 * oy0 - 1 + r % SPAN;
        float16 om = zero, ev = zero, od = zero;
        if (iz >= 0 && iz < Z && iy >= 0 && iy < Y && iy <= 2 * (oy0 + nr) - 1) {
          __global const float *xr = xn + (size_t)(ci0 + c) * plane + ((size_t)iz * Y + iy) * X;
          const float16 p = vload16(0, xr), q = vload16(1, xr);
          const float16 l = ox0 > 0 ? vload16(0, xr - 16) : zero;
          ev = EVEN(p, q);
          od = ODD(p, q);
          om = BACK(l, od);
        }
        float16 *v = vs + (c * SROWS + r) * 3;
        v[0] = om;
        v[1] = ev;
        v[2] = od;
      }
    }
    for (int cb = 0; cb < ncb; cb++)
      for (int g = 0; g < nr; g++) {
        float16 acc[COB];
#pragma unroll
        for (int j = 0; j < COB; j++) acc[j] = 0.0f;
        __global const float *wc = wp + ((size_t)cb * Cin + ci0) * KV * COB;
        const float16 *vc = vs + 2 * g * 3;
        for (int c = 0; c < nc; c++, wc += KV * COB, vc += SROWS * 3) {
#pragma unroll
          for (int t = 0; t < KV; t++) { // tap (kz, ky, kx): input row ky of plane kz, vector kx
            const float16 v = vc[((t / 9) * SPAN + (t / 3) % 3) * 3 + t % 3];
#pragma unroll
            for (int j = 0; j < COB; j++) acc[j] = fma((float16)(wc[t * COB + j]), v, acc[j]);
          }
        }
#pragma unroll
        for (int j = 0; j < COB; j++) {
          const int co = cb * COB + j;
          if (co >= Cout) break;
          __global float *yc = yn + (size_t)co * OS + (size_t)g * OX;
          const float16 prev = ci0 == 0 ? (float16)(has_bias ? b[co] : 0.0f) : vload16(0, yc);
          vstore16(acc[j] + prev, 0, yc);
        }
      }
  }
}
