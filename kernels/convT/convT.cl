// Transposed convolution with kernel == stride: the GEMM result T (nb, Cout * KV, Pt) holds, for every
// input voxel p of a tile of input rows (row = iz * Y + iy, all X columns; p = (row - r0) * X + ix),
// the SZ x SY x SX block of outputs it produces. scatter moves T into y (adding the bias); gather is
// its adjoint (dy -> G). Work-items run over output voxels so y / dy are accessed contiguously.
#ifndef SZ
#define SZ 2
#endif
#ifndef SY
#define SY 2
#endif
#ifndef SX
#define SX 2
#endif
#define KV (SZ * SY * SX)

// Index of the output voxel for work-item (ox, q, jc) and of its entry in T / G.
#define CONVT_INDEX                                                                          \
  const int ox = get_global_id(0), q = get_global_id(1), jc = get_global_id(2);            \
  const int rl = q / (SZ * SY), ab = q % (SZ * SY), a = ab / SY, bb = ab % SY;              \
  const int row = r0 + rl, iz = row / Y, iy = row % Y;                                     \
  const int ix = ox / SX, c = ox % SX;                                                     \
  const int j = jc / Cout, co = jc % Cout;                                                 \
  const size_t Pt = (size_t)nrows * X, OY = (size_t)Y * SY, OX = (size_t)X * SX;           \
  const size_t OS = (size_t)Z * SZ * OY * OX;                                              \
  const size_t ti = ((size_t)j * Cout * KV + (size_t)co * KV + (a * SY + bb) * SX + c) * Pt + (size_t)rl * X + ix; \
  const size_t yi = (size_t)jc * OS + ((size_t)(iz * SZ + a) * OY + (size_t)(iy * SY + bb)) * OX + ox;

// global: (X * SX, nrows * SZ * SY, nb * Cout); y_off = first sample's offset in y.
__kernel void scatter(__global float *restrict y, const ulong y_off, __global const float *restrict t,
                      __global const float *restrict b, const int has_bias, const int Cout, const int Z, const int Y,
                      const int X, const int r0, const int nrows) {
  CONVT_INDEX
  y[y_off + yi] = t[ti] + (has_bias ? b[co] : 0.0f);
}

// G[j][co * KV + abc][p] = dy[...]; same work-items as scatter.
__kernel void gather(__global float *restrict g, __global const float *restrict dy, const ulong dy_off,
                     const int Cout, const int Z, const int Y, const int X, const int r0, const int nrows) {
  CONVT_INDEX
  g[ti] = dy[dy_off + yi];
}

// wt[m][ci] = w[ci][m] for w (Cin, M): lets the forward GEMM run without a transposed operand.
// global: (M, Cin)
__kernel void transpose(__global float *restrict wt, __global const float *restrict w, const int Cin, const int M) {
  const int m = get_global_id(0), ci = get_global_id(1);
  wt[(size_t)m * Cin + ci] = w[(size_t)ci * M + m];
}

// ---- backward data on CPUs, without shuffles ----
// dx[ci, z, y, x] = sum over co and taps (a, b, c) of w[ci, co, a, b, c] dy[co, SZ z + a, SY y + b, SX x + c]
// (kernel == stride: each dy value feeds one dx value). A work-item computes DRB dx rows x DXW positions
// for COB channels. It loads dy rows whole, NV vectors of 16 consecutive values, and multiplies each by
// the SX taps of a kernel row repeated across the lanes (for SX = 2 one 64-bit broadcast of the tap
// pair, which sits contiguously in w), so lane l of an accumulator collects dy column SX x0 + l; the SX
// adjacent lanes of a dx position are summed once, at the store. (As a strided conv on the x-vector
// kernel, each tap took a double-width load split into even and odd lanes and 16 weight broadcasts
// per 16 FMAs.)
#ifndef COB
#define COB 4
#endif
#ifndef NV
#define NV 2
#endif
#ifndef DRB
#define DRB 2
#endif
#define DXW (16 * NV / SX) // dx positions per work-item row

// The first n (< 16) values at p, the rest zero.
inline float16 dgrad_part16(__global const float *p, const int n) {
  float t[16];
  for (int l = 0; l < 16; l++) t[l] = l < n ? p[l] : 0.0f;
  return vload16(0, t);
}

// The first n lanes of v to p (none for n <= 0).
inline void store16_part(__global float *p, const float16 v, const int n) {
  if (n >= 16) {
    vstore16(v, 0, p);
    return;
  }
  float t[16];
  vstore16(v, 0, t);
  for (int l = 0; l < n; l++) p[l] = t[l];
}

// The SX taps w[0 .. SX - 1] repeated across 16 lanes (SX = 2: w is 8-byte aligned, as KV is even).
inline float16 tap_lanes(__global const float *w) {
#if SX == 2
  return as_float16((ulong8)(*(__global const ulong *)w));
#else
  return (float16)(*w);
#endif
}

// One work-item's accumulation over all dy channels; full: every dy vector lies whole in its row.
__attribute__((always_inline)) inline void dgradT_accumulate(float16 acc[DRB][COB][NV], __global const float *dyn,
                                                             __global const float *wb, const int Cout,
                                                             const size_t OS, const int OY, const int OX,
                                                             const int ndy, const int full) {
  for (int co = 0; co < Cout; co++) {
    __global const float *dyc = dyn + (size_t)co * OS;
    __global const float *wc = wb + (size_t)co * KV;
#pragma unroll
    for (int a = 0; a < SZ; a++)
#pragma unroll
      for (int b = 0; b < SY; b++) {
        // LLVM issues every kernel row's loads at the top of the channel (2-D: 8 dy vectors and 8 tap
        // pairs beside 16 accumulators, 4 of which spill); a compiler barrier per row, the row loop
        // outermost or not unrolled, or addresses offset by an opaque zero did not help (docs/ops.md)
        float16 v[DRB][NV];
#pragma unroll
        for (int q = 0; q < DRB; q++)
#pragma unroll
          for (int u = 0; u < NV; u++) {
            __global const float *p = dyc + ((size_t)a * OY + q * SY + b) * OX + 16 * u;
            v[q][u] = full ? vload16(0, p) : dgrad_part16(p, ndy - 16 * u);
          }
#pragma unroll
        for (int j = 0; j < COB; j++) {
          const float16 wv = tap_lanes(wc + (size_t)j * Cout * KV + (a * SY + b) * SX);
#pragma unroll
          for (int q = 0; q < DRB; q++)
#pragma unroll
            for (int u = 0; u < NV; u++) acc[q][j][u] = fma(v[q][u], wv, acc[q][j][u]);
        }
      }
  }
}

// dy (N, Cout, Z SZ, Y SY, X SX), w (Cin, Cout, SZ, SY, SX), dx (N, Cin, Z, Y, X); Cin >= COB, Y a
// multiple of DRB, NV = 1 when SX = 1.
// global: (ceil(X / DXW) * ceil(Cin / COB), Z * Y / DRB, N). (With the channel block as the slowest
// index, the big-weight layers read their weights from cache but dy from farther: 0.5-1.1x.)
__kernel void convT_dgrad(__global const float *restrict dy, __global const float *restrict w,
                          __global float *restrict dx, const int Cin, const int Cout, const int Z, const int Y,
                          const int X) {
  const int ncb = (Cin + COB - 1) / COB, nxb = (X + DXW - 1) / DXW, nrb = (Y + DRB - 1) / DRB;
  // channel blocks fastest: consecutive work-items read the same dy rows
  const int xb = get_global_id(0) / ncb, cb = get_global_id(0) % ncb, rowblk = get_global_id(1),
            n = get_global_id(2);
  const int x0 = xb * DXW, nx = min(DXW, X - x0), z = rowblk / nrb, y0 = (rowblk % nrb) * DRB;
  const int OY = Y * SY, OX = X * SX;
  const size_t OS = (size_t)Z * SZ * OY * OX, S = (size_t)Z * Y * X;
  float16 acc[DRB][COB][NV];
#pragma unroll
  for (int q = 0; q < DRB; q++)
#pragma unroll
    for (int j = 0; j < COB; j++)
#pragma unroll
      for (int u = 0; u < NV; u++) acc[q][j][u] = (float16)(0.0f);
  __global const float *dyn = dy + (size_t)n * Cout * OS + ((size_t)z * SZ * OY + (size_t)y0 * SY) * OX + x0 * SX;
  // a partial last block starts COB channels before Cin (Cin >= COB): its first channels, the previous
  // block's, are computed again but not stored
  const int c0 = min(cb * COB, Cin - COB);
  __global const float *wb = w + (size_t)c0 * Cout * KV;
  const int ndy = nx * SX;
  if (nx == DXW)
    dgradT_accumulate(acc, dyn, wb, Cout, OS, OY, OX, ndy, 1);
  else
    dgradT_accumulate(acc, dyn, wb, Cout, OS, OY, OX, ndy, 0);
  __global float *dxn = dx + (size_t)n * Cin * S + ((size_t)z * Y + y0) * X + x0;
#pragma unroll
  for (int q = 0; q < DRB; q++) {
#pragma unroll
    for (int j = 0; j < COB; j++) {
      const int ci = c0 + j;
      if (ci < cb * COB) continue;
      __global float *dst = dxn + (size_t)ci * S + (size_t)q * X;
#if SX == 2 && NV == 2
      store16_part(dst, (float16)(acc[q][j][0].even + acc[q][j][0].odd, acc[q][j][1].even + acc[q][j][1].odd), nx);
#elif SX == 2
      const float8 o = acc[q][j][0].even + acc[q][j][0].odd;
      if (nx >= 8) {
        vstore8(o, 0, dst);
      } else {
        float t[8];
        vstore8(o, 0, t);
        for (int l = 0; l < nx; l++) dst[l] = t[l];
      }
#else
#pragma unroll
      for (int u = 0; u < NV; u++) store16_part(dst + 16 * u, acc[q][j][u], nx - 16 * u);
#endif
    }
  }
}

// ---- forward on CPUs, lanes along x ----
// y[co, SZ z + a, SY y + b, SX x + c] = b[co] + sum over ci of w[ci, co, a, b, c] x[ci, z, y, x] (kernel ==
// stride: each input value feeds one output per tap). A work-item takes one input row (z, y) and TXW of its
// positions, and computes the SZ x SY output rows they feed, 16 NV outputs each, for COB channels: per
// input channel one load of the row's values (spread over SX lanes each), then per output row and channel
// the SX taps repeated across the lanes (one 64-bit broadcast for SX = 2) into NV FMAs, and contiguous
// stores. (convT_cvec, lanes over channels, stored 16 channels x 8 positions through a transpose per
// work-item: the 2d plan's last convT, 64 -> 32 channels at 512^2, ran at half its other convTs' rate.)
#define TXW (16 * NV / SX) // input positions per work-item
#define TR (SZ * SY)       // output rows per input row
// global: (ceil(X / TXW) * ceil(Cout / COB), Z * Y, N); Cout >= COB, SX 1 or 2
__kernel void convT_rows(__global const float *restrict x, __global const float *restrict w,
                         __global const float *restrict b, const int has_bias, __global float *restrict y,
                         const int Cin, const int Cout, const int Z, const int Y, const int X) {
  const int ncb = (Cout + COB - 1) / COB, xb = get_global_id(0) / ncb, cb = get_global_id(0) % ncb;
  const int row = get_global_id(1), n = get_global_id(2), z = row / Y, iy = row % Y;
  const int x0 = xb * TXW, nx = min(TXW, X - x0);
  // a partial last block starts COB channels before Cout: its first channels are computed again, not stored
  const int c0 = min(cb * COB, Cout - COB);
  const int OY = Y * SY, OX = X * SX;
  const size_t S = (size_t)Z * Y * X, OS = (size_t)Z * SZ * OY * OX;
  float16 acc[TR][COB][NV];
#pragma unroll
  for (int j = 0; j < COB; j++) {
    const float16 bj = (float16)(has_bias ? b[c0 + j] : 0.0f);
#pragma unroll
    for (int r = 0; r < TR; r++)
#pragma unroll
      for (int u = 0; u < NV; u++) acc[r][j][u] = bj;
  }
  __global const float *xr = x + (size_t)n * Cin * S + ((size_t)z * Y + iy) * X + x0;
  __global const float *wb = w + (size_t)c0 * KV;
  for (int ci = 0; ci < Cin; ci++, xr += S, wb += (size_t)Cout * KV) {
    float16 v[NV]; // output lane l of vector u: input x0 + (16 u + l) / SX
#if SX == 2
#if NV == 2
    const float16 in = nx == TXW ? vload16(0, xr) : dgrad_part16(xr, nx);
#else
    const float16 in = dgrad_part16(xr, nx); // 8 inputs
#endif
    v[0] = __builtin_shufflevector(in, in, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
#if NV == 2
    v[1] = __builtin_shufflevector(in, in, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
#endif
#else
#pragma unroll
    for (int u = 0; u < NV; u++) v[u] = nx == TXW ? vload16(u, xr) : dgrad_part16(xr + 16 * u, nx - 16 * u);
#endif
#pragma unroll
    for (int j = 0; j < COB; j++)
#pragma unroll
      for (int r = 0; r < TR; r++) {
        const float16 wv = tap_lanes(wb + (size_t)j * KV + r * SX);
#pragma unroll
        for (int u = 0; u < NV; u++) acc[r][j][u] = fma(v[u], wv, acc[r][j][u]);
      }
  }
  const int nout = nx * SX;
#pragma unroll
  for (int j = 0; j < COB; j++) {
    const int co = c0 + j;
    if (co < cb * COB) continue;
#pragma unroll
    for (int r = 0; r < TR; r++) {
      __global float *dst = y + ((size_t)n * Cout + co) * OS +
                            ((size_t)(z * SZ + r / SY) * OY + (size_t)iy * SY + r % SY) * OX + (size_t)x0 * SX;
#pragma unroll
      for (int u = 0; u < NV; u++) store16_part(dst + 16 * u, acc[r][j][u], nout - 16 * u);
    }
  }
}
