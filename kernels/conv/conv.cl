// Convolution helper kernels: tiled im2col / col2im (gather form) and bias broadcast / reduction.
// Geometry that selects code paths comes as build options (kernel size KZ KY KX, stride SZ SY SX,
// padding PZ PY PX); sizes come as arguments so one binary serves every shape of a layer type.
//
// A tile is `nrows` consecutive output rows (row = oz * OY + oy, all OX columns) starting at row r0,
// for `nb` consecutive samples. Its column buffer is laid out (nb, K, Pt) with K = Cin * KZ*KY*KX
// and Pt = nrows * OX: column p = (row - r0) * OX + ox, as the GEMM with the weights expects.
#include "common/conv_geometry.cl"

// x: (N, Cin, Z, Y, X) at sample n0; col: (nb, K, Pt).
// global: (OX, nrows, nb * Cin * KZ * KY)  -- the KX taps are unrolled inside.
__kernel void im2col(__global const float *restrict x, const ulong x_off, __global float *restrict col,
                     const int Cin, const int Z, const int Y, const int X, const int OY, const int OX,
                     const int r0, const int nrows) {
  const int ox = get_global_id(0), rl = get_global_id(1), g = get_global_id(2);
  const int zy = g % (KZ * KY), jc = g / (KZ * KY); // jc = j * Cin + ci
  const int a = zy / KY, b = zy % KY;
  const int row = r0 + rl, oz = row / OY, oy = row % OY;
  const int iz = oz * SZ - PZ + a, iy = oy * SY - PY + b;
  const int Pt = nrows * OX;
  const int j = jc / Cin, ci = jc % Cin;
  __global float *dst = col + ((size_t)j * Cin * KV + (size_t)(ci * KV + zy * KX)) * Pt + (size_t)rl * OX + ox;
  const int inside = iz >= 0 && iz < Z && iy >= 0 && iy < Y;
  __global const float *src = x + x_off + (((size_t)jc * Z + (inside ? iz : 0)) * Y + (inside ? iy : 0)) * X;
#pragma unroll
  for (int c = 0; c < KX; c++) {
    const int ix = ox * SX - PX + c;
    dst[(size_t)c * Pt] = (inside && ix >= 0 && ix < X) ? src[ix] : 0.0f;
  }
}

// Gather form of col2im: each input element sums the column entries of this tile that read it.
// dx: (N, Cin, Z, Y, X) at sample n0, input rows [ir0, ir0 + nirows) (row = iz * Y + iy).
// global: (X, nirows, nb * Cin). accumulate: dx += sum, else dx = sum.
__kernel void col2im(__global float *restrict dx, const ulong dx_off, __global const float *restrict col,
                     const int Cin, const int Z, const int Y, const int X, const int OZ, const int OY, const int OX,
                     const int r0, const int nrows, const int ir0, const int accumulate) {
  const int ix = get_global_id(0), irl = get_global_id(1), jc = get_global_id(2);
  const int irow = ir0 + irl, iz = irow / Y, iy = irow % Y;
  const int j = jc / Cin, ci = jc % Cin;
  const int Pt = nrows * OX;
  __global const float *cb = col + ((size_t)j * Cin + ci) * KV * (size_t)Pt;
  float acc = 0.0f;
#pragma unroll
  for (int a = 0; a < KZ; a++) {
    const int tz = iz + PZ - a;
    if (tz < 0 || tz % SZ) continue;
    const int oz = tz / SZ;
    if (oz >= OZ) continue;
#pragma unroll
    for (int b = 0; b < KY; b++) {
      const int ty = iy + PY - b;
      if (ty < 0 || ty % SY) continue;
      const int oy = ty / SY;
      if (oy >= OY) continue;
      const int orow = oz * OY + oy - r0;
      if (orow < 0 || orow >= nrows) continue;
#pragma unroll
      for (int c = 0; c < KX; c++) {
        const int tx = ix + PX - c;
        if (tx < 0 || tx % SX) continue;
        const int ox = tx / SX;
        if (ox >= OX) continue;
        acc += cb[(size_t)((a * KY + b) * KX + c) * Pt + (size_t)orow * OX + ox];
      }
    }
  }
  __global float *d = dx + dx_off + (((size_t)jc * Z + iz) * Y + iy) * X + ix;
  *d = accumulate ? *d + acc : acc;
}
