// Weight gradient as a correlation of two channel-row copies (CPUs; conv.c: run_wgrad_corr).
//
// Both copies live on one grid per sample: the output extents (OZ, OY, OX) plus, along each axis
// with 3 taps, one zero plane / row / column. dy sits at the grid's origin, the zeros after it; the
// input sits one cell further, so along an axis the zero cell after row y is also the one before row
// y + 1 (pads on both sides cost one cell, not two). A stride-2 axis splits the input into its two
// phases (even and odd positions), each a row of its own on the same grid. Then tap t of an axis
// reads the input row of phase PH(s, t) at a fixed shift SH(s, t) from the output position:
//   stride 1: input x[o + t - 1] sits at grid o + t           -> phase 0, shift t
//   stride 2: x[2o + t - 1]: t = 0 odd phase at o - 1 (grid o), t = 1 even at o (grid o + 1),
//             t = 2 odd at o (grid o + 1)                     -> phase (t + 1) & 1, shift (t + 1) / 2
//   stride 2, 2 taps, no pad (a transposed conv's weight gradient, convT.c): x[2o + t], no zero
//             cell on the axis                                -> phase t, shift 0
// so over the grid's linear index j
//   dw[co][ci][a][b][c] = sum over j of dy[co][j] * xrow(ci, a, b, c)[j + shift(a, b, c)]
// with no bounds or wrap tests: dy is zero wherever a shifted read leaves its own row or plane.
// Vectors run along j (16 positions), so every FMA takes two registers, no broadcast: per 16
// positions a work-item loads WR dy vectors and WC KX input vectors for WR WC KX FMAs, and reduces
// its lanes once per chunk.
// Build options: KZ KY KX (taps: 1 or 3; 2 with stride 2), SZ SY SX (strides: 1 or 2).
#if !defined(KZ) || !defined(KY) || !defined(KX) || !defined(SZ) || !defined(SY) || !defined(SX)
#error "wgrad.cl is built with -DKZ -DKY -DKX -DSZ -DSY -DSX (conv.c: run_wgrad_corr)"
#endif
#ifndef WR
#define WR 4 // output channels per work-item
#endif
#ifndef WC
#define WC 2 // input channels per work-item (WR * WC * KX accumulators: 24 of 32 AVX-512 registers)
#endif
#define KV (KZ * KY * KX)
#define NPH (SZ * SY * SX) // input rows per channel: one per phase
#define PH(s, k, t) ((s) == 2 ? ((k) == 3 ? ((t) + 1) & 1 : (t)) : 0)
#define SH(s, k, t) ((s) == 2 ? ((k) == 3 ? ((t) + 1) >> 1 : 0) : (t))

// out: C * nph rows of `row` floats, from grid row r0 (of all samples' grid rows in order) on. Row
// c * nph + (pz sy + py) sx + px holds, for each of the N samples one after another, the (Zp, Yp, Xp)
// grid with cell (oz + mz, oy + my, ox + mx) = in[n][c][sz mz + pz][sy my + py][sx mx + px] for
// m < (DZ, DY, DX) and inside the input, zeros elsewhere and from grid row rend on.
// global: (ceil(row / Xp) rounded up to the work-group, C * nph): a work-item writes one grid row of Xp
// cells (or what is left of the row).
__kernel void pad_rows(__global float *restrict out, __global const float *restrict in, const int N,
                       const int Z, const int Y, const int X, const int DZ, const int DY, const int DX,
                       const int Zp, const int Yp, const int Xp, const int oz, const int oy, const int ox,
                       const int sz, const int sy, const int sx, const int r0, const int rend, const int row) {
  const int r = get_global_id(0), cr = get_global_id(1), nph = sz * sy * sx;
  const int C = get_global_size(1) / nph, c = cr / nph, ph = cr % nph;
  const int pz = ph / (sy * sx), py = ph / sx % sy, px = ph % sx;
  if ((long)r * Xp >= row) return; // the work-group's spare rows
  const int rg = r0 + r, cells = min(Xp, row - r * Xp);
  __global float *dst = out + (size_t)cr * row + (size_t)r * Xp;
  const int n = rg / (Zp * Yp), zy = rg % (Zp * Yp), mz = zy / Yp - oz, my = zy % Yp - oy;
  const int z = sz * mz + pz, y = sy * my + py;
  if (rg >= rend || mz < 0 || mz >= DZ || my < 0 || my >= DY || z >= Z || y >= Y) {
    for (int i = 0; i < cells; i++) dst[i] = 0.0f;
    return;
  }
  __global const float *src = in + (((size_t)n * C + c) * Z + z) * Y * X + (size_t)y * X;
  for (int i = 0; i < cells; i++) {
    const int mx = i - ox, x = sx * mx + px;
    dst[i] = mx >= 0 && mx < DX && x < X ? src[x] : 0.0f;
  }
}

inline float lane_sum(const float16 v) {
  const float8 a = v.lo + v.hi;
  const float4 b = a.lo + a.hi;
  const float2 c = b.lo + b.hi;
  return c.x + c.y;
}

// part[chunk0 + chunk][co][ci][tap] = the sum above over j in [chunk * len, min(chunk * len + len, L))
// of a slab of grid rows (conv.c copies a bounded slab at a time).
// dyp: Cout rows of L floats (L a multiple of 16); xp: Cin * NPH rows of LX >= L + largest shift + 16.
// global: (KZ * KY * ceil(Cin / WC) * ceil(Cout / WR), nchunks), local (KZ * KY, 1): the (a, b) of a
// work-group read the same rows at nearby shifts, from cache.
__kernel void wgrad_corr(__global float *restrict part, __global const float *restrict xp,
                         __global const float *restrict dyp, const int Cin, const int Cout, const int L,
                         const int LX, const int Xp, const int YXp, const int len, const int chunk0) {
  const int combo = get_global_id(0), chunk = get_global_id(1);
  const int ab = combo % (KZ * KY), rest = combo / (KZ * KY);
  const int nib = (Cin + WC - 1) / WC, ci0 = (rest % nib) * WC, co0 = (rest / nib) * WR;
  const int a = ab / KY, b = ab % KY;
  const int j0 = chunk * len, j1 = min(j0 + len, L);
  __global const float *d[WR];
  __global const float *xr[WC][KX];
#pragma unroll
  for (int r = 0; r < WR; r++) d[r] = dyp + (size_t)min(co0 + r, Cout - 1) * L + j0; // spare rows repeat
#pragma unroll
  for (int i = 0; i < WC; i++)
#pragma unroll
    for (int c = 0; c < KX; c++) {
      const int xrow = min(ci0 + i, Cin - 1) * NPH + (PH(SZ, KZ, a) * SY + PH(SY, KY, b)) * SX + PH(SX, KX, c);
      xr[i][c] = xp + (size_t)xrow * LX + (size_t)SH(SZ, KZ, a) * YXp + (size_t)SH(SY, KY, b) * Xp + SH(SX, KX, c) + j0;
    }
  float16 acc[WR][WC][KX];
#pragma unroll
  for (int r = 0; r < WR; r++)
#pragma unroll
    for (int i = 0; i < WC; i++)
#pragma unroll
      for (int c = 0; c < KX; c++) acc[r][i][c] = (float16)(0.0f);
  for (int j = 0; j < j1 - j0; j += 16) {
    float16 dv[WR];
#pragma unroll
    for (int r = 0; r < WR; r++) dv[r] = vload16(0, d[r] + j);
#pragma unroll
    for (int i = 0; i < WC; i++)
#pragma unroll
      for (int c = 0; c < KX; c++) {
        const float16 xv = vload16(0, xr[i][c] + j);
#pragma unroll
        for (int r = 0; r < WR; r++) acc[r][i][c] = fma(dv[r], xv, acc[r][i][c]);
      }
  }
#pragma unroll
  for (int r = 0; r < WR; r++) {
    if (co0 + r >= Cout) continue;
#pragma unroll
    for (int i = 0; i < WC; i++) {
      if (ci0 + i >= Cin) continue;
      __global float *o = part + (((size_t)(chunk0 + chunk) * Cout + co0 + r) * Cin + ci0 + i) * KV + ab * KX;
#pragma unroll
      for (int c = 0; c < KX; c++) o[c] = lane_sum(acc[r][i][c]);
    }
  }
}
