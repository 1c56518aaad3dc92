// Direct convolution, backward weight: wgrad_direct (VX lanes along x; its chunk partial sums are
// added by conv/reduce_chunks.cl) and wgrad_cvec (16 output channels in the lanes, on dy reordered by
// transpose_dy; its partial sums are added and reordered by reduce_cvec).
#include "common/conv_vec.cl"

// ---- backward weight ----
// A work-item owns COBW output channels x one input channel x one (a, b) kernel row and the KX taps
// of that row: COBW * KX vector accumulators. It sums dy * x over a chunk of `rows` output rows
// ((n, oz, oy) flattened); chunks go to separate partial sums (part: nchunks x Cout x Cin x KV) that
// reduce_chunks adds up. Work-items of one chunk run together, so the chunk's dy and x stay in cache.
#ifndef COBW
#define COBW 4
#endif

// global: (ceil(Cout / COBW) * Cin * KZ * KY, nchunks)
__kernel void wgrad_direct(__global float *restrict part, __global const float *restrict x,
                           __global const float *restrict dy, const int N, const int Cin, const int Cout, const int Z,
                           const int Y, const int X, const int OZ, const int OY, const int OX, const int rows) {
  const int combo = get_global_id(0), chunk = get_global_id(1);
  const int ab = combo % (KZ * KY), rest = combo / (KZ * KY);
  const int ci = rest % Cin, co0 = (rest / Cin) * COBW;
  if (co0 >= Cout) return;
  const int a = ab / KY, bb = ab % KY;
  floatV acc[COBW][KX];
#pragma unroll
  for (int j = 0; j < COBW; j++)
#pragma unroll
    for (int c = 0; c < KX; c++) acc[j][c] = (floatV)(0.0f);
  const int total = N * OZ * OY, r0 = chunk * rows, r1 = min(r0 + rows, total);
  const size_t OS = (size_t)OZ * OY * OX, S = (size_t)Z * Y * X, xtotal = (size_t)N * Cin * S,
               dtotal = (size_t)N * Cout * OS;
  for (int r = r0; r < r1; r++) {
    const int n = r / (OZ * OY), rr = r % (OZ * OY), oz = rr / OY, oy = rr % OY;
    const int iz = oz * SZ - PZ + a, iy = oy * SY - PY + bb;
    if (iz < 0 || iz >= Z || iy < 0 || iy >= Y) continue;
    __global const float *xr = x + ((size_t)n * Cin + ci) * S + ((size_t)iz * Y + iy) * X;
    __global const float *dr = dy + ((size_t)n * Cout + co0) * OS + (size_t)rr * OX;
    for (int ox0 = 0; ox0 < OX; ox0 += VX) {
      floatV d[COBW];
      const size_t dlast = (size_t)(dr - dy) + (size_t)(min(COBW, Cout - co0) - 1) * OS + ox0 + VX;
      if (ox0 + VX <= OX) {
#pragma unroll
        for (int j = 0; j < COBW; j++) d[j] = vloadV(0, dr + (size_t)min(j, Cout - 1 - co0) * OS + ox0); // unused rows repeat
      } else if (dlast <= dtotal) { // a partial vector: whole-vector loads, lanes past the row zeroed
#pragma unroll
        for (int j = 0; j < COBW; j++)
          d[j] = mask_x(vloadV(0, dr + (size_t)min(j, Cout - 1 - co0) * OS + ox0), ox0, 1, OX);
      } else {
#pragma unroll
        for (int j = 0; j < COBW; j++) {
          float t[VX];
          for (int l = 0; l < VX; l++) t[l] = (co0 + j < Cout && ox0 + l < OX) ? dr[(size_t)j * OS + ox0 + l] : 0.0f;
          d[j] = vloadV(0, t);
        }
      }
      floatV vt[KX];
      load_taps(xr, ox0, X, has_room((size_t)(xr - x), ox0, xtotal), vt);
#pragma unroll
      for (int c = 0; c < KX; c++) {
        const floatV v = vt[c];
#pragma unroll
        for (int j = 0; j < COBW; j++) acc[j][c] = fma(d[j], v, acc[j][c]);
      }
    }
  }
  const int KVv = KV;
#pragma unroll
  for (int j = 0; j < COBW; j++) {
    if (co0 + j >= Cout) continue;
#pragma unroll
    for (int c = 0; c < KX; c++) {
      float t[VX];
      vstoreV(acc[j][c], 0, t);
      float s = 0.0f;
#pragma unroll
      for (int l = 0; l < VX; l++) s += t[l];
      part[(((size_t)chunk * Cout + co0 + j) * Cin + ci) * KVv + ab * KX + c] = s;
    }
  }
}

// ---- weight gradient for narrow rows: vectors over output channels ----
// dy is first transposed to blocks of 16 COV channels (transpose_dy; CP = Cout rounded up to the
// block, zeros past Cout), so the 16 output channels of one position are one vector load. A work-item
// owns 16 COV output channels x CIB input channels x one (a, b) kernel row: COV * CIB * KX
// accumulators over a chunk of output rows, whose partial sums reduce_cvec adds up.
#ifndef CIB
#define CIB 4
#endif
#ifndef WPAD
#define WPAD 0
#endif
// dyt (N, CP / CB, OS, CB) from dy (N, Cout, OS), CB = 16 COV channels a block: a wgrad_cvec work-item
// then reads its channel block's positions one after another (with the channels of all blocks at
// each position, its dy loads strode CP floats and missed L1 on every position). A work-item moves
// 16 positions x 16 channels: 16 row loads, a transpose in registers, 16 vector stores (a float per
// work-item, strided loads and scalar stores, took 20-25% of a 2-D weight gradient).
// global: (ceil(OS / 16), CP / 16, N)
#ifndef COV
#define COV 1
#endif
#define CB (16 * COV)
// the 16 x 16 transpose's butterfly: rows r and r + b exchange their off-diagonal b x b blocks
#define TR_LO(b) (uint16)(TR_L(b, 0), TR_L(b, 1), TR_L(b, 2), TR_L(b, 3), TR_L(b, 4), TR_L(b, 5), TR_L(b, 6), \
                          TR_L(b, 7), TR_L(b, 8), TR_L(b, 9), TR_L(b, 10), TR_L(b, 11), TR_L(b, 12), TR_L(b, 13), \
                          TR_L(b, 14), TR_L(b, 15))
#define TR_HI(b) (uint16)(TR_H(b, 0), TR_H(b, 1), TR_H(b, 2), TR_H(b, 3), TR_H(b, 4), TR_H(b, 5), TR_H(b, 6), \
                          TR_H(b, 7), TR_H(b, 8), TR_H(b, 9), TR_H(b, 10), TR_H(b, 11), TR_H(b, 12), TR_H(b, 13), \
                          TR_H(b, 14), TR_H(b, 15))
#define TR_L(b, l) ((l) % (2 * (b)) < (b) ? (l) : 16 + (l) - (b))
#define TR_H(b, l) ((l) % (2 * (b)) < (b) ? (l) + (b) : 16 + (l))
#define TR_STAGE(v, b)                                                                                         \
  _Pragma("unroll") for (int r = 0; r < 16; r++)                                                               \
    if (r % (2 * (b)) < (b)) {                                                                                 \
      const float16 lo = shuffle2(v[r], v[r + (b)], TR_LO(b)), hi = shuffle2(v[r], v[r + (b)], TR_HI(b));     \
      v[r] = lo;                                                                                               \
      v[r + (b)] = hi;                                                                                         \
    }
// v[r][l] <-> v[l][r]: transpose_dy and reduce_cvec move 16 x 16 tiles through it
__attribute__((always_inline)) inline void transpose16(float16 v[16]) {
  TR_STAGE(v, 8)
  TR_STAGE(v, 4)
  TR_STAGE(v, 2)
  TR_STAGE(v, 1)
}
__kernel void transpose_dy(__global float *restrict dyt, __global const float *restrict dy, const int Cout,
                           const int CP, const int OS) {
  const int p0 = get_global_id(0) * 16, c0 = get_global_id(1) * 16, n = get_global_id(2);
  const int np = min(16, OS - p0);
  float16 v[16];
#pragma unroll
  for (int i = 0; i < 16; i++) {
    __global const float *src = dy + ((size_t)n * Cout + c0 + i) * OS + p0;
    if (c0 + i >= Cout) {
      v[i] = (float16)(0.0f);
    } else if (np == 16) {
      v[i] = vload16(0, src);
    } else {
      float t[16];
      for (int l = 0; l < 16; l++) t[l] = l < np ? src[l] : 0.0f;
      v[i] = vload16(0, t);
    }
  }
  transpose16(v);
  __global float *dst = dyt + ((size_t)n * CP + c0 / CB * CB) * OS + (size_t)p0 * CB + c0 % CB;
#pragma unroll
  for (int l = 0; l < 16; l++)
    if (l < np) vstore16(v[l], 0, dst + (size_t)l * CB);
}

#ifndef WTAPS
#define WTAPS 0
#endif
// One output position of wgrad_cvec with every tap along x: the COV dy vectors at dp are loaded once
// for the KX taps; x positions ix0 .. ix0 + KX - 1 (tested against [0, X) when guard).
__attribute__((always_inline)) inline void wgrad_taps_at(float16 acc[COV][CIB][KX], __global const float *dp,
                                                         __global const float *const *xr, const int ix0,
                                                         const int guard, const int X) {
  SCHED_BARRIER(); // no x value kept from the previous position (it would be re-broadcast on the shuffle port)
  float16 dv[COV];
#pragma unroll
  for (int v = 0; v < COV; v++) dv[v] = vload16(0, dp + 16 * v);
#pragma unroll
  for (int c = 0; c < KX; c++) {
    const int ix = ix0 + c;
    if (guard && (ix < 0 || ix >= X)) continue;
#pragma unroll
    for (int i = 0; i < CIB; i++) {
      const float16 xv = (float16)(xr[i][ix]);
#pragma unroll
      for (int v = 0; v < COV; v++) acc[v][i][c] = fma(dv[v], xv, acc[v][i][c]);
    }
  }
}

// COV vectors of 16 output channels (dyt's CP a multiple of 16 COV): each x broadcast feeds COV FMAs.
// global: (ceil(Cout / (16 COV)) * ceil(Cin / CIB) * KZ * KY, nchunks)
__kernel void wgrad_cvec(__global float *restrict part, __global const float *restrict x,
                         __global const float *restrict dyt, const int N, const int Cin, const int Cout, const int Z,
                         const int Y, const int X, const int OZ, const int OY, const int OX, const int rows) {
  const int combo = get_global_id(0), chunk = get_global_id(1);
  const int ab = combo % (KZ * KY), rest = combo / (KZ * KY);
  const int CP = ((Cout + 16 * COV - 1) / (16 * COV)) * 16 * COV;
  const int nib = (Cin + CIB - 1) / CIB;
  const int ci0 = (rest % nib) * CIB, cb = rest / nib;
  const int co0 = cb * 16 * COV, a = ab / KY, bb = ab % KY;
  float16 acc[COV][CIB][KX];
#pragma unroll
  for (int v = 0; v < COV; v++)
#pragma unroll
    for (int i = 0; i < CIB; i++)
#pragma unroll
      for (int c = 0; c < KX; c++) acc[v][i][c] = (float16)(0.0f);
  const int total = N * OZ * OY, r0 = chunk * rows, r1 = min(r0 + rows, total);
  const size_t OS = (size_t)OZ * OY * OX, S = (size_t)Z * Y * X;
#if WPAD
  // x zero-padded (pad_input: Z, Y, X are the padded extents): the taps need no bounds tests, which
  // cost more than the FMAs on short rows (run_wgrad_direct pads when the copy is small)
  const int PZ0 = 0, PY0 = 0, PX0 = 0;
#else
  const int PZ0 = PZ, PY0 = PY, PX0 = PX;
#endif
  for (int r = r0; r < r1; r++) {
    const int n = r / (OZ * OY), rr = r % (OZ * OY), oz = rr / OY, oy = rr % OY;
    const int iz = oz * SZ - PZ0 + a, iy = oy * SY - PY0 + bb;
#if WPAD
    if (iz < PZ || iz >= Z - PZ || iy < PY || iy >= Y - PY) continue; // a padding row: all zeros
#else
    if (iz < 0 || iz >= Z || iy < 0 || iy >= Y) continue;
#endif
    __global const float *xr[CIB];
#pragma unroll
    for (int i = 0; i < CIB; i++)
      xr[i] = x + ((size_t)n * Cin + min(ci0 + i, Cin - 1)) * S + ((size_t)iz * Y + iy) * X; // unused rows repeat
    __global const float *dr = dyt + ((size_t)n * CP + co0) * OS + (size_t)rr * OX * CB;
#if WTAPS
    __global const float *const *xrp = xr;
    const int lo = min(OX, (PX0 + SX - 1) / SX), hi = max(lo, min(OX, (X - KX + PX0) / SX + 1));
    for (int ox = 0; ox < lo; ox++) wgrad_taps_at(acc, dr + (size_t)ox * CB, xrp, ox * SX - PX0, 1, X);
    for (int ox = lo; ox < hi; ox++) wgrad_taps_at(acc, dr + (size_t)ox * CB, xrp, ox * SX - PX0, 0, X);
    for (int ox = hi; ox < OX; ox++) wgrad_taps_at(acc, dr + (size_t)ox * CB, xrp, ox * SX - PX0, 1, X);
#else
    // tap outermost: with the position loop outside, LLVM kept the overlapping x values of neighbouring
    // taps in registers and re-broadcast them on the shuffle port, which the FMAs also need; this way
    // every x value is a broadcast from memory (load ports) and dy is reloaded from L1 per tap
#pragma unroll
    for (int c = 0; c < KX; c++)
      for (int ox = 0; ox < OX; ox++) {
        const int ix = ox * SX - PX0 + c;
#if !WPAD
        if (ix < 0 || ix >= X) continue;
#endif
        float16 dv[COV];
#pragma unroll
        for (int v = 0; v < COV; v++) dv[v] = vload16(0, dr + (size_t)ox * CB + 16 * v);
#pragma unroll
        for (int i = 0; i < CIB; i++) {
          const float16 xv = (float16)(xr[i][ix]);
#pragma unroll
          for (int v = 0; v < COV; v++) acc[v][i][c] = fma(dv[v], xv, acc[v][i][c]);
        }
      }
#endif
  }
  // partial sums in channel blocks, part (nchunks, CP / CB, Cin, KV, CB): whole-vector stores (stored
  // straight into dw's (Cout, Cin, KV) order, the lanes of a vector lay Cin KV floats apart, and with
  // 1024 input channels those stores took a third of the layer's time); reduce_cvec reorders them
  __global float *o = part + (((size_t)chunk * (CP / CB) + cb) * Cin + ci0) * KV * CB + (size_t)ab * KX * CB;
#pragma unroll
  for (int i = 0; i < CIB; i++) {
    if (ci0 + i >= Cin) continue;
#pragma unroll
    for (int c = 0; c < KX; c++)
#pragma unroll
      for (int v = 0; v < COV; v++) vstore16(acc[v][i][c], 0, o + ((size_t)i * KV + c) * CB + 16 * v);
  }
}

// dw (Cout, M) (+)= the sum over chunks of wgrad_cvec's blocked partial sums part (nchunks, CP / CB, M,
// CB), M = Cin KV: a work-item sums and transposes a tile of 16 m x 16 channels.
// global: (ceil(M / 16), CP / 16)
__kernel void reduce_cvec(__global float *restrict dw, __global const float *restrict part, const int Cout,
                          const int CP, const int M, const int nchunks, const int accumulate) {
  const int m0 = get_global_id(0) * 16, c0 = get_global_id(1) * 16, nm = min(16, M - m0);
  float16 v[16];
#pragma unroll
  for (int r = 0; r < 16; r++) v[r] = (float16)(0.0f);
  for (int ch = 0; ch < nchunks; ch++) {
    __global const float *src = part + (((size_t)ch * (CP / CB) + c0 / CB) * M + m0) * CB + c0 % CB;
#pragma unroll
    for (int r = 0; r < 16; r++)
      if (r < nm) v[r] += vload16(0, src + (size_t)r * CB);
  }
  transpose16(v);
#pragma unroll
  for (int l = 0; l < 16; l++) {
    if (c0 + l >= Cout) break;
    __global float *d = dw + (size_t)(c0 + l) * M + m0;
    if (nm == 16) {
      vstore16(accumulate ? v[l] + vload16(0, d) : v[l], 0, d);
    } else {
      float t[16];
      vstore16(v[l], 0, t);
      for (int j = 0; j < nm; j++) d[j] = accumulate ? d[j] + t[j] : t[j];
    }
  }
}
