// Transposed convolution (kernel == stride), forward, on the direct kernels' packed weights
// (pack_weights with flip = 2). Its backward passes are in kernels/convT/convT.cl and conv/wgrad.cl.
#include "common/conv_vec.cl"

// ---- transposed convolution (kernel == stride K*), forward, vectors over output channels ----
// y[co][oz][oy][ox] = b[co] + sum_ci w[ci][co][oz % KZ][oy % KY][ox % KX] x[ci][oz / KZ][oy / KY][ox / KX]:
// 16 output channels in the lanes (weights packed with flip = 2), PB output positions of TROWS rows in
// TROWS x PB accumulators. x (N, Cin, Z, Y, X) is the convT input; OZ = Z * KZ etc.
// global: (ceil(OX / PB) * ceil(Cout / 16), OZ * OY / TROWS, N)
#ifndef TROWS
#define TROWS KY // output rows per convT_cvec work-item: all KY taps of one input row
#endif
__kernel void convT_cvec(__global const float *restrict x, __global const float *restrict wp,
                         __global const float *restrict b, const int has_bias, __global float *restrict y,
                         const int Cin, const int Cout, const int Z, const int Y, const int X, const int OZ,
                         const int OY, const int OX) {
  const int ncb = (Cout + 15) / 16;
#if CVEC_ORDER
  // channel blocks slowest, as in conv_cvec: consecutive work-items share their block's weights
  const int4 id = cvec_slow_order((OX + PB - 1) / PB);
  const int rowblk = id.y, n = id.z, cb = id.w, ox0 = id.x * PB, co0 = cb * 16;
#else
  const int g0 = get_global_id(0), rowblk = get_global_id(1), n = get_global_id(2);
  const int ox0 = (g0 / ncb) * PB, cb = g0 % ncb, co0 = cb * 16;
#endif
  const int nrb = OY / TROWS, oz = rowblk / nrb, oy0 = (rowblk % nrb) * TROWS, iz = oz / KZ, iy = oy0 / KY;
  const int trow = ((oz % KZ) * KY + oy0 % KY) * KX; // first tap of the first output row
  const float16 bias = cvec_bias(b, has_bias, co0, Cout);
  float16 acc[TROWS][PB];
#pragma unroll
  for (int q = 0; q < TROWS; q++)
#pragma unroll
    for (int p = 0; p < PB; p++) acc[q][p] = bias;
  __global const float *xr = x + ((size_t)n * Cin * Z + iz) * Y * X + (size_t)iy * X;
  __global const float *wb = wp + (size_t)cb * Cin * KV * 16 + (size_t)trow * 16;
  const size_t S = (size_t)Z * Y * X;
  // ox0 is a multiple of PB, which run_direct makes a multiple of KX: position p uses tap p % KX and
  // input ox0 / KX + p / KX, both known when compiled (a run-time tap index kept wv[] out of registers);
  // positions past OX (the last block) read a clamped input and are not stored. The TROWS output rows
  // (taps along y of one input row) share every input value: each broadcast feeds TROWS * KX FMAs.
  for (int ci = 0; ci < Cin; ci++) {
    float16 wv[TROWS][KX];
#pragma unroll
    for (int q = 0; q < TROWS; q++)
#pragma unroll
      for (int c = 0; c < KX; c++) wv[q][c] = vload16(0, wb + ((size_t)ci * KV + q * KX + c) * 16);
    __global const float *xc = xr + (size_t)ci * S;
#pragma unroll
    for (int p = 0; p < PB; p++) {
      const float16 xv = (float16)(xc[min(ox0 / KX + p / KX, X - 1)]);
#pragma unroll
      for (int q = 0; q < TROWS; q++) acc[q][p] = fma(xv, wv[q][p % KX], acc[q][p]);
    }
  }
  const size_t OS = (size_t)OZ * OY * OX;
#pragma unroll
  for (int q = 0; q < TROWS; q++) {
    __global float *yr = y + ((size_t)n * Cout + co0) * OS + ((size_t)oz * OY + oy0 + q) * OX + ox0;
    float t[PB * 16];
#pragma unroll
    for (int p = 0; p < PB; p++) vstore16(acc[q][p], p, t);
    cvec_store_rows(yr, t, min(16, Cout - co0), min(PB, OX - ox0), 1, OS);
  }
}
