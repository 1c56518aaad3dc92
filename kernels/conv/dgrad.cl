// Direct convolution, backward data of strided convolutions: dgrad_cvec (16 input channels in the
// lanes), dgrad_rows (stride 2 along y and x by dy rows), dgrad_strided (VX lanes along x, any
// geometry) and dgrad_s2x (stride 2 along x, even / odd phases split). The stride-1 backward data runs
// on the forward kernels with flipped weights.
#include "common/conv_vec.cl"

// Strided backward data: the dy row that tap row (a, bb) of the kernel brings to dx row (iz, iy) of
// dy's channel plane dc, or 0 when the stride skips it or it lies outside dy.
inline __global const float *dgrad_dy_row(__global const float *dc, const int iz, const int iy, const int a,
                                          const int bb, const int OZ, const int OY, const int OX) {
  const int tz = iz + PZ - a, ty = iy + PY - bb;
  if (tz < 0 || tz % SZ || tz / SZ >= OZ || ty < 0 || ty % SY || ty / SY >= OY) return 0;
  return dc + ((size_t)(tz / SZ) * OY + ty / SY) * OX;
}

// ---- backward data of a strided convolution, vectors over input channels ----
// dx[ci][iz][iy][ix] = sum over co and taps t with (i + p - t) % s == 0 along every axis of
// w[co][ci][t] dy[co][(i + p - t) / s]: 16 input channels in the lanes (weights packed with
// flip = 2 from the (Cout, Cin, k) layout: this pass's "input" channels are co), PB positions of a
// dx row in PB accumulators. PB is even and rows start at multiples of PB, so the x parity test
// of each (position, tap) pair is a compile-time constant. The arguments are conv_direct's, seen
// from this pass (dy is the input, dx the output; no bias), so one launcher serves both.
// global: (ceil(X / PB) * ceil(Cin / 16), Z * Y, N)
__kernel void dgrad_cvec(__global const float *restrict dy, __global const float *restrict wp,
                         __global const float *restrict no_bias, const int no_has_bias, __global float *restrict dx,
                         const int Cout, const int Cin, const int OZ, const int OY, const int OX, const int Z,
                         const int Y, const int X) {
  (void)no_bias;
  (void)no_has_bias;
  const int ncb = (Cin + 15) / 16, g0 = get_global_id(0), row = get_global_id(1), n = get_global_id(2);
  const int ix0 = (g0 / ncb) * PB, cb = g0 % ncb, ci0 = cb * 16;
  const int iz = row / Y, iy = row % Y;
  float16 acc[PB];
#pragma unroll
  for (int p = 0; p < PB; p++) acc[p] = (float16)(0.0f);
  const size_t OS = (size_t)OZ * OY * OX;
  __global const float *wb = wp + (size_t)cb * Cout * KV * 16;
  for (int co = 0; co < Cout; co++) {
    __global const float *dc = dy + ((size_t)n * Cout + co) * OS;
    __global const float *wc = wb + (size_t)co * KV * 16;
#pragma unroll
    for (int a = 0; a < KZ; a++) {
#pragma unroll
      for (int bb = 0; bb < KY; bb++) {
        __global const float *dr = dgrad_dy_row(dc, iz, iy, a, bb, OZ, OY, OX);
        if (!dr) continue;
#pragma unroll
        for (int c = 0; c < KX; c++) {
          const float16 wv = vload16(0, wc + ((a * KY + bb) * KX + c) * 16);
#pragma unroll
          for (int p = 0; p < PB; p++) {
            if ((p + PX - c + 2 * SX) % SX) continue; // parity: constant after unrolling
            const int tx = ix0 + p + PX - c;
            if (tx >= 0 && tx / SX < OX) acc[p] = fma((float16)(dr[tx / SX]), wv, acc[p]);
          }
        }
      }
    }
  }
  const size_t S = (size_t)Z * Y * X;
  __global float *xr = dx + ((size_t)n * Cin + ci0) * S + (size_t)row * X + ix0;
  float t[PB * 16];
#pragma unroll
  for (int p = 0; p < PB; p++) vstore16(acc[p], p, t);
  cvec_store_rows(xr, t, min(16, Cin - ci0), min(PB, X - ix0), 1, S);
}

// ---- backward data of a stride-2 convolution along y and x (3 taps, pad 1), by dy rows (CPU) ----
// dx[2m] = w1 dy[m] and dx[2m + 1] = w2 dy[m] + w0 dy[m + 1] along each stride-2 axis. A work-item takes
// 16 dy positions n0 .. n0 + 15 of DGB = 2 dy rows m0, m0 + 1 and computes, for 4 input channels, the
// dx row phase py of both (dx rows 2 (m0 + q) + py) at even and odd columns as separate vectors: the
// odd ones read dy at n and n + 1 by two unaligned loads, so no lane moves until the even and odd
// vectors are interleaved once at the store. Each weight broadcast feeds the 2 dy rows: 2 + 4 loads
// per 24 or 48 FMAs per dy channel (the phase convolutions on conv_cvec issue a load per FMA).
// Along z: stride 2 (3 taps, pad 1) by the plane's parity, or stride 1 (the flipped taps).
// dy (N, Cdy, OZ, OY, OX); wp: pack_weights (flip = 2, COB = 4) of w (Cdy, Cdx, KZ, KY, KX);
// dx (N, Cdx, Z, Y, X); zrow: OX + 2 VX + 4 zero floats.
// global: (ceil(OX / 16) * ceil(Cdx / COB), Z * 2 * ceil(OY / 2), N)
#if KX == 3 && PX == 1 && SX == 2 && KY == 3 && PY == 1 && SY == 2 && VX == 16 && COB == 4
#define DGB 2 // dy rows per work-item

// dy at positions n0 + s + l of the row at dr, lanes past the row zero; safe: lane by lane.
__attribute__((always_inline)) inline float16 dgrad_load(__global const float *dr, const int s, const intV m,
                                                        const int safe, const int n0, const int OX) {
  if (!safe) return select((float16)(0.0f), vload16(0, dr + s), m);
  float t[16];
  for (int l = 0; l < 16; l++) t[l] = n0 + s + l < OX ? dr[s + l] : 0.0f;
  return vload16(0, t);
}

__attribute__((always_inline)) inline void dgrad_rows_acc(float16 acc[DGB][2][COB], __global const float *dyn,
                                                          __global const float *wb, __global const float *zr,
                                                          const int c0, const int c1, const int OZ, const int OY,
                                                          const int OX, const int iz, const int m0, const int py,
                                                          const int n0, const int safe) {
  const size_t plane = (size_t)OZ * OY * OX;
  const intV m_0 = LANES + (intV)(n0) < OX, m_1 = LANES + (intV)(n0 + 1) < OX;
  // z taps: stride 2: the plane's parity gives tap 1 (dy plane iz / 2) or taps 2 and 0 (dy planes
  // (iz - 1) / 2 and (iz + 1) / 2); stride 1: tap a reads dy plane iz + PZ - a
  const int na = SZ == 2 ? 1 + (iz & 1) : KZ;
  for (int u = 0; u < na; u++) {
    const int a = SZ == 2 ? ((iz & 1) ? 2 - 2 * u : 1) : u;
    const int mz = SZ == 2 ? ((iz & 1) ? (iz - 1) / 2 + u : iz / 2) : iz + PZ - a;
    if (mz < 0 || mz >= OZ) continue;
    for (int ci = c0; ci < c1; ci++) {
      __global const float *dc = dyn + (size_t)ci * plane + (size_t)mz * OY * OX + n0;
      __global const float *wc = wb + ((size_t)ci * KV + a * 9) * COB;
      // dy rows m0, m0 + 1 (and m0 + 2 for the odd phase), each at n and n + 1
      float16 v[DGB + 1][2];
#pragma unroll
      for (int r = 0; r < DGB + 1; r++) {
        if (r == DGB && py == 0) break;
        const int my = m0 + r;
        __global const float *dr = my < OY ? dc + (size_t)my * OX : zr;
        v[r][0] = dgrad_load(dr, 0, m_0, safe, n0, OX);
        v[r][1] = dgrad_load(dr, 1, m_1, safe, n0, OX);
      }
      // (tap along y, dy row offset): py 0: (1, 0); py 1: (2, 0), (0, 1)
#pragma unroll
      for (int e = 0; e < 2; e++) {
        if (py == 0 && e == 1) break;
        const int ty = py == 0 ? 1 : (e == 0 ? 2 : 0), ro = e;
        __global const float *wt = wc + ty * 3 * COB;
#pragma unroll
        for (int j = 0; j < COB; j++) {
          const float16 w0 = (float16)(wt[j]), w1 = (float16)(wt[COB + j]), w2 = (float16)(wt[2 * COB + j]);
#pragma unroll
          for (int q = 0; q < DGB; q++) {
            acc[q][0][j] = fma(v[q + ro][0], w1, acc[q][0][j]);
            acc[q][1][j] = fma(v[q + ro][0], w2, acc[q][1][j]);
            acc[q][1][j] = fma(v[q + ro][1], w0, acc[q][1][j]);
          }
        }
      }
    }
  }
}

__kernel void dgrad_rows(__global const float *restrict dy, __global const float *restrict wp,
                         __global float *restrict dx, const int Cdy, const int Cdx, const int Z, const int Y,
                         const int X, const int OZ, const int OY, const int OX, __global const float *restrict zrow) {
  const int ncb = (Cdx + COB - 1) / COB, g0 = get_global_id(0), g1 = get_global_id(1), n = get_global_id(2);
  const int n0 = (g0 / ncb) * 16, cb = g0 % ncb, cx0 = cb * COB;
  const int nmb = (OY + DGB - 1) / DGB, iz = g1 / (2 * nmb), py = (g1 / nmb) & 1, m0 = (g1 % nmb) * DGB;
  float16 acc[DGB][2][COB];
#pragma unroll
  for (int q = 0; q < DGB; q++)
#pragma unroll
    for (int h = 0; h < 2; h++)
#pragma unroll
      for (int j = 0; j < COB; j++) acc[q][h][j] = (float16)(0.0f);
  const size_t plane = (size_t)OZ * OY * OX, total = (size_t)get_global_size(2) * Cdy * plane;
  __global const float *dyn = dy + (size_t)n * Cdy * plane;
  __global const float *wb = wp + (size_t)cb * Cdy * KV * COB;
  // whole-vector loads reach n0 + 16 of the rows m0 .. m0 + 2: only the last channel(s) of the last
  // sample can reach past the buffer (tiny planes: several)
  const size_t hi = ((size_t)n * Cdy + Cdy - 1) * plane + ((size_t)(OZ - 1) * OY + min(m0 + DGB, OY - 1)) * OX + n0 + 17;
  const int tail = channels_past_end(hi, total, plane, Cdy);
  __global const float *zr = zrow + 2 + n0;
  if (py == 0) {
    dgrad_rows_acc(acc, dyn, wb, zr, 0, Cdy - tail, OZ, OY, OX, iz, m0, 0, n0, 0);
    if (tail) dgrad_rows_acc(acc, dyn, wb, zr, Cdy - tail, Cdy, OZ, OY, OX, iz, m0, 0, n0, 1);
  } else {
    dgrad_rows_acc(acc, dyn, wb, zr, 0, Cdy - tail, OZ, OY, OX, iz, m0, 1, n0, 0);
    if (tail) dgrad_rows_acc(acc, dyn, wb, zr, Cdy - tail, Cdy, OZ, OY, OX, iz, m0, 1, n0, 1);
  }
  const size_t S = (size_t)Z * Y * X;
  const int ix0 = 2 * n0;
#pragma unroll
  for (int q = 0; q < DGB; q++) {
    const int iy = 2 * (m0 + q) + py;
    if (iy >= Y) continue;
#pragma unroll
    for (int j = 0; j < COB; j++) {
      if (cx0 + j >= Cdx) continue;
      __global float *xr = dx + ((size_t)n * Cdx + cx0 + j) * S + ((size_t)iz * Y + iy) * X + ix0;
      const float16 lo = shuffle2(acc[q][0][j], acc[q][1][j],
                                  (uint16)(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23));
      const float16 hi2 = shuffle2(acc[q][0][j], acc[q][1][j],
                                   (uint16)(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31));
      if (ix0 + 32 <= X) {
        vstore16(lo, 0, xr);
        vstore16(hi2, 0, xr + 16);
      } else {
        float t[32];
        vstore16(lo, 0, t);
        vstore16(hi2, 0, t + 16);
        for (int l = 0; l < X - ix0; l++) xr[l] = t[l];
      }
    }
  }
}
#endif

// ---- backward data of a strided convolution ----
// dx[ci][i] = sum over co and taps t with (i + p - t) % s == 0 of w[co][ci][t] * dy[co][(i + p - t) / s].
// A work-item computes VX x-lanes of dx for COB input channels. Along z and y the tap test is uniform
// per work-item; along x, for the nnU-Net case (3 taps, pad 1, stride 2, VX 8) the three tap vectors
// are lane shuffles of 4 + 1 dy values (half the lanes are zero: the stride-2 parity); stride 1
// along x uses shifted loads; other x geometries take a per-lane path.
inline float dy_at(__global const float *row, int t, int OX) {
  return (t >= 0 && t % SX == 0 && t / SX < OX) ? row[t / SX] : 0.0f;
}

inline void load_dtaps(__global const float *row, int ix0, int OX, floatV *v) {
#if KX == 3 && PX == 1 && SX == 2 && VX == 8
  const int o0 = ix0 / 2; // ix0 is a multiple of VX, so even
  if (o0 + 4 <= OX) {
    const float4 h = vload4(0, row + o0);
    const float4 e = (float4)(0.0f, 0.0f, 0.0f, o0 + 4 < OX ? row[o0 + 4] : 0.0f);
    v[0] = shuffle2(h, e, (uint8)(4, 1, 4, 2, 4, 3, 4, 7)); // tap 0: odd lanes read dy[o0 + (l + 1) / 2]
    v[1] = shuffle2(h, e, (uint8)(0, 4, 1, 4, 2, 4, 3, 4)); // tap 1: even lanes read dy[o0 + l / 2]
    v[2] = shuffle2(h, e, (uint8)(4, 0, 4, 1, 4, 2, 4, 3)); // tap 2: odd lanes read dy[o0 + (l - 1) / 2]
    return;
  }
#endif
#pragma unroll
  for (int c = 0; c < KX; c++) {
    float t[VX];
#pragma unroll
    for (int l = 0; l < VX; l++) t[l] = dy_at(row, ix0 + l + PX - c, OX);
    v[c] = vloadV(0, t);
  }
}

// dy (N, Cout, OZ, OY, OX), w (Cout, Cin, KZ, KY, KX), dx (N, Cin, Z, Y, X).
// global: (ceil(X / VX), Z * Y, N * ceil(Cin / COB)).
__kernel void dgrad_strided(__global const float *restrict dy, __global const float *restrict w,
                            __global float *restrict dx, const int Cin, const int Cout, const int Z, const int Y,
                            const int X, const int OZ, const int OY, const int OX) {
  const int ix0 = get_global_id(0) * VX, row = get_global_id(1), g = get_global_id(2);
  const int ncb = (Cin + COB - 1) / COB;
  const int n = g / ncb, ci0 = (g % ncb) * COB;
  const int iz = row / Y, iy = row % Y;
  floatV acc[COB];
#pragma unroll
  for (int j = 0; j < COB; j++) acc[j] = (floatV)(0.0f);
  const size_t OS = (size_t)OZ * OY * OX;
  for (int co = 0; co < Cout; co++) {
    __global const float *dc = dy + ((size_t)n * Cout + co) * OS;
    __global const float *wc = w + ((size_t)co * Cin + ci0) * KV;
#pragma unroll
    for (int a = 0; a < KZ; a++) {
#pragma unroll
      for (int bb = 0; bb < KY; bb++) {
        __global const float *dr = dgrad_dy_row(dc, iz, iy, a, bb, OZ, OY, OX);
        if (!dr) continue;
        floatV vt[KX];
        load_dtaps(dr, ix0, OX, vt);
#pragma unroll
        for (int c = 0; c < KX; c++) {
          const int tap = (a * KY + bb) * KX + c;
#pragma unroll
          for (int j = 0; j < COB; j++) {
            const int cj = min(ci0 + j, Cin - 1) - ci0;
            acc[j] = fma(vt[c], (floatV)(wc[(size_t)cj * KV + tap]), acc[j]);
          }
        }
      }
    }
  }
  const size_t S = (size_t)Z * Y * X;
  __global float *xr = dx + ((size_t)n * Cin + ci0) * S + (size_t)row * X + ix0;
#pragma unroll
  for (int j = 0; j < COB; j++)
    if (ci0 + j < Cin) store_lanes(xr + (size_t)j * S, acc[j], X - ix0);
}

// Phase-split variant for the nnU-Net case along x (3 taps, pad 1, stride 2): dx[2m] = w1 dy[m],
// dx[2m+1] = w0 dy[m+1] + w2 dy[m]. A work-item keeps even and odd outputs in separate 8-lane
// accumulators (16 dx values along x) for COB / 2 input channels, so no lane multiplies a zero,
// and interleaves them on the store. global: (ceil(X / 16), Z * Y, N * ceil(Cin / (COB / 2))).
#define COB2 (COB / 2)
__kernel void dgrad_s2x(__global const float *restrict dy, __global const float *restrict w,
                        __global float *restrict dx, const int Cin, const int Cout, const int Z, const int Y,
                        const int X, const int OZ, const int OY, const int OX) {
  const int ix0 = get_global_id(0) * 16, row = get_global_id(1), g = get_global_id(2);
  const int m0 = ix0 / 2;
  const int ncb = (Cin + COB2 - 1) / COB2;
  const int n = g / ncb, ci0 = (g % ncb) * COB2;
  const int iz = row / Y, iy = row % Y;
  float8 E[COB2], O[COB2];
#pragma unroll
  for (int j = 0; j < COB2; j++) E[j] = O[j] = (float8)(0.0f);
  const size_t OS = (size_t)OZ * OY * OX;
  for (int co = 0; co < Cout; co++) {
    __global const float *dc = dy + ((size_t)n * Cout + co) * OS;
    __global const float *wc = w + ((size_t)co * Cin + ci0) * KV;
#pragma unroll
    for (int a = 0; a < KZ; a++) {
#pragma unroll
      for (int bb = 0; bb < KY; bb++) {
        __global const float *dr = dgrad_dy_row(dc, iz, iy, a, bb, OZ, OY, OX);
        if (!dr) continue;
        float8 h;
        if (m0 + 8 <= OX) {
          h = vload8(0, dr + m0);
        } else {
          float t[8];
#pragma unroll
          for (int l = 0; l < 8; l++) t[l] = m0 + l < OX ? dr[m0 + l] : 0.0f;
          h = vload8(0, t);
        }
        const float nx = m0 + 8 < OX ? dr[m0 + 8] : 0.0f;
        const float8 h1 = shuffle2(h, (float8)(nx), (uint8)(1, 2, 3, 4, 5, 6, 7, 8));
        const int t0 = (a * KY + bb) * KX;
#pragma unroll
        for (int j = 0; j < COB2; j++) {
          __global const float *wj = wc + (size_t)(min(ci0 + j, Cin - 1) - ci0) * KV + t0;
          E[j] = fma(h, (float8)(wj[1]), E[j]);
          O[j] = fma(h1, (float8)(wj[0]), fma(h, (float8)(wj[2]), O[j]));
        }
      }
    }
  }
  const size_t S = (size_t)Z * Y * X;
  __global float *xr = dx + ((size_t)n * Cin + ci0) * S + (size_t)row * X + ix0;
#pragma unroll
  for (int j = 0; j < COB2; j++) {
    if (ci0 + j >= Cin) continue;
    const float16 r = shuffle2(E[j], O[j], (uint16)(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15));
    if (ix0 + 16 <= X) {
      vstore16(r, 0, xr + (size_t)j * S);
    } else {
      float t[16];
      vstore16(r, 0, t);
      for (int l = 0; l < X - ix0; l++) xr[(size_t)j * S + l] = t[l];
    }
  }
}
