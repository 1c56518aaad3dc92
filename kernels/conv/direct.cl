// Direct convolution written for CPUs (PoCL) with explicit vectors: a work-item computes VX
// consecutive output voxels along x (one floatVX) for COB output channels, keeping COB vector
// accumulators in registers; each input vector is loaded once per tap and reused for COB FMAs,
// and each weight is a scalar broadcast. The same kernel runs the backward-data pass of a stride-1
// convolution with flipped, transposed weights (see conv.c).
// Build options: KZ KY KX SZ SY SX PZ PY PX (geometry), VX (4, 8 or 16), COB (tunable).
#ifndef KZ
#define KZ 3
#endif
#ifndef KY
#define KY 3
#endif
#ifndef KX
#define KX 3
#endif
#ifndef SZ
#define SZ 1
#endif
#ifndef SY
#define SY 1
#endif
#ifndef SX
#define SX 1
#endif
#ifndef PZ
#define PZ 1
#endif
#ifndef PY
#define PY 1
#endif
#ifndef PX
#define PX 1
#endif
#ifndef VX
#define VX 16
#endif
#ifndef COB
#define COB 8
#endif
#define KV (KZ * KY * KX)

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define floatV CAT(float, VX)
#define vloadV CAT(vload, VX)
#define vstoreV CAT(vstore, VX)

// The VX inputs at x positions ix0 + l * SX, l = 0..VX-1, zero outside [0, X).
inline floatV load_row(__global const float *row, int ix0, int X) {
  if (ix0 >= 0 && ix0 + (VX - 1) * SX < X) {
#if SX == 1
    return vloadV(0, row + ix0);
#else
    floatV v;
    float t[VX];
#pragma unroll
    for (int l = 0; l < VX; l++) t[l] = row[ix0 + l * SX];
    v = vloadV(0, t);
    return v;
#endif
  }
  float t[VX];
#pragma unroll
  for (int l = 0; l < VX; l++) {
    int ix = ix0 + l * SX;
    t[l] = (ix >= 0 && ix < X) ? row[ix] : 0.0f;
  }
  return vloadV(0, t);
}

// The first n lanes of v to dst: one vector store when all VX fit.
inline void store_lanes(__global float *dst, const floatV v, const int n) {
  if (n >= VX) {
    vstoreV(v, 0, dst);
    return;
  }
  float t[VX];
  vstoreV(v, 0, t);
  for (int l = 0; l < n; l++) dst[l] = t[l];
}

// The first n lanes at src (the rest zero): one vector load when all VX lie in the row.
inline floatV load_lanes(__global const float *src, const int n) {
  if (n >= VX) return vloadV(0, src);
  float t[VX];
  for (int l = 0; l < VX; l++) t[l] = l < n ? src[l] : 0.0f;
  return vloadV(0, t);
}

// How many trailing channels (planes of `plane` floats) of a `total`-float buffer hold elements at or past
// its end that a load reaching up to element hi (exclusive) of its last channel touches, at most C: the
// channels the row kernels read lane by lane.
inline int channels_past_end(const size_t hi, const size_t total, const size_t plane, const int C) {
  return hi > total ? (int)min((hi - total + plane - 1) / plane, (size_t)C) : 0;
}

#define intV CAT(int, VX)
#if VX == 4
#define LANES (int4)(0, 1, 2, 3)
#elif VX == 8
#define LANES (int8)(0, 1, 2, 3, 4, 5, 6, 7)
#else
#define LANES (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
#endif

// Lanes whose x position ix0 + l * step lies outside [0, X) become zero.
inline floatV mask_x(floatV v, int ix0, int step, int X) {
  const intV ix = (intV)(ix0) + LANES * step;
  return select(v, (floatV)(0.0f), (ix < 0) | (ix >= X));
}

// The KX tap vectors of one input row for outputs ox0 .. ox0 + VX - 1. `room`: the buffer holds
// the elements just before and after the span this row needs (true except at the very first and
// last row of the buffer), so the shifted taps are plain unaligned loads whose lanes outside the
// row are zeroed with a compare + select. (Building them with shuffles of one aligned load came out
// of PoCL's LLVM as chains of 8-16 permutes per vector.)
inline void load_taps(__global const float *row, int ox0, int X, int room, floatV *v) {
#if KX == 3 && PX == 1 && SX == 1
  if (room) {
    v[0] = mask_x(vloadV(0, row + ox0 - 1), ox0 - 1, 1, X);
    v[1] = mask_x(vloadV(0, row + ox0), ox0, 1, X);
    v[2] = mask_x(vloadV(0, row + ox0 + 1), ox0 + 1, 1, X);
    return;
  }
#elif KX == 3 && PX == 1 && SX == 2
  if (room) {
#if VX == 16
    const float16 lo = vload16(0, row + 2 * ox0), hi = vload16(0, row + 2 * ox0 + 16);
    const float16 lm = vload16(0, row + 2 * ox0 - 2), hm = vload16(0, row + 2 * ox0 + 14);
    v[0] = mask_x((float16)(lm.odd, hm.odd), 2 * ox0 - 1, 2, X);
    v[1] = mask_x((float16)(lo.even, hi.even), 2 * ox0, 2, X);
    v[2] = mask_x((float16)(lo.odd, hi.odd), 2 * ox0 + 1, 2, X);
#elif VX == 8
    const float16 w2 = vload16(0, row + 2 * ox0), wm = vload16(0, row + 2 * ox0 - 2);
    v[0] = mask_x(wm.odd, 2 * ox0 - 1, 2, X);
    v[1] = mask_x(w2.even, 2 * ox0, 2, X);
    v[2] = mask_x(w2.odd, 2 * ox0 + 1, 2, X);
#else
    const float8 w2 = vload8(0, row + 2 * ox0), wm = vload8(0, row + 2 * ox0 - 2);
    v[0] = mask_x(wm.odd, 2 * ox0 - 1, 2, X);
    v[1] = mask_x(w2.even, 2 * ox0, 2, X);
    v[2] = mask_x(w2.odd, 2 * ox0 + 1, 2, X);
#endif
    return;
  }
#elif KX == 2 && PX == 0 && SX == 2
  // kernel == stride 2, no padding (the transposed conv's backward passes): even / odd lanes
  if (room) {
#if VX == 16
    const float16 lo = vload16(0, row + 2 * ox0), hi = vload16(0, row + 2 * ox0 + 16);
    v[0] = mask_x((float16)(lo.even, hi.even), 2 * ox0, 2, X);
    v[1] = mask_x((float16)(lo.odd, hi.odd), 2 * ox0 + 1, 2, X);
#elif VX == 8
    const float16 w2 = vload16(0, row + 2 * ox0);
    v[0] = mask_x(w2.even, 2 * ox0, 2, X);
    v[1] = mask_x(w2.odd, 2 * ox0 + 1, 2, X);
#else
    const float8 w2 = vload8(0, row + 2 * ox0);
    v[0] = mask_x(w2.even, 2 * ox0, 2, X);
    v[1] = mask_x(w2.odd, 2 * ox0 + 1, 2, X);
#endif
    return;
  }
#endif
#pragma unroll
  for (int c = 0; c < KX; c++) v[c] = load_row(row, ox0 * SX - PX + c, X);
}

// Whether the buffer of `total` floats holds the elements a tap load of this row may touch:
// from (row start + ox0 * SX - 2) to (row start + (ox0 + VX) * SX + 1).
inline int has_room(size_t row_ofs, int ox0, size_t total) {
  const size_t lo = row_ofs + (size_t)ox0 * SX;
  return lo >= 2 && lo + (size_t)VX * SX + 2 <= total;
}

// Weights packed per block of COB output channels: wp[((cb * Cin + ci) * KV + t) * COB + j] is weight
// (co = cb * COB + j, ci, tap t), zero for co >= Cout. The COB weights of one tap are then adjacent, so
// the kernel addresses them from one pointer with constant offsets (one strided pointer per output
// channel ran out of general registers and spilled). flip = 1 packs the flipped, transposed weights
// of the stride-1 backward-data pass: w is then (Cin', Cout', KV) with Cin' = this conv's output count.
// flip = 2: a transposed convolution's weights (Cin, Cout, KV), not flipped.
// A work-item packs one (input channel, channel block): COB source runs of KV weights each (contiguous
// in w) into KV * COB contiguous floats (one float per work-item, as before, cost 7 GB/s on PoCL).
// global: (Cin, ceil(Cout / COB)) for flip 0, else (ceil(Cout / COB), Cin)
#if COB == 4 || COB == 8 || COB == 16
#define floatCOB CAT(float, COB)
#define vstoreCOB CAT(vstore, COB)
#endif
__kernel void pack_weights(__global float *restrict wp, __global const float *restrict w, const int Cin,
                           const int Cout, const int flip) {
  // flip 0 reads COB runs a channel further per work-item, so input channels go fastest; flip 1 and 2
  // read one run of COB KV floats, so channel blocks go fastest (the other way the reads strode Cout KV)
  const int ci = get_global_id(flip ? 1 : 0), cb = get_global_id(flip ? 0 : 1);
  __global float *dst = wp + ((size_t)cb * Cin + ci) * KV * COB;
  // the source of (co = cb COB + j, tap t) is w[src0 + j sj + t st]
  const size_t sj = flip ? KV : (size_t)Cin * KV;
  const size_t src0 = flip ? ((size_t)ci * Cout + (size_t)cb * COB) * KV + (flip == 1 ? KV - 1 : 0)
                           : ((size_t)cb * COB * Cin + ci) * KV;
  const int st = flip == 1 ? -1 : 1, nj = min(COB, Cout - cb * COB);
#ifdef floatCOB
  // whole channel blocks: the COB weights of a tap gathered into a vector and stored at once (written
  // as scalar loops, PoCL vectorised the kernel across work-items into gathers: half of a 1024-channel
  // layer's backward-data time went to packing)
  if (nj == COB) {
    for (int t = 0; t < KV; t++) {
      float v[COB];
#pragma unroll
      for (int j = 0; j < COB; j++) v[j] = w[src0 + j * sj + t * st];
      vstoreCOB(CAT(vload, COB)(0, v), 0, dst + t * COB);
    }
    return;
  }
#endif
  for (int t = 0; t < KV; t++)
    for (int j = 0; j < COB; j++) dst[t * COB + j] = j < nj ? w[src0 + j * sj + t * st] : 0.0f;
}

// x (N, Cin, Z, Y, X), wp packed as above, b (Cout) or unused, y (N, Cout, OZ, OY, OX). A work-item
// computes VX consecutive outputs along x for COB output channels (COB vector accumulators; each
// input vector is loaded once per tap and feeds COB FMAs with broadcast weights). The output-channel
// block is the fastest-varying index, so the work-items that run one after another on a CPU core
// read the same input rows from cache. (Sharing broadcasts between two x vectors came out of LLVM
// with the broadcasts hoisted and spilled; conv_rows below does it for stride-1 rows.)
// global: (ceil(OX / VX) * ceil(Cout / COB), OZ * OY, N).
__kernel void conv_direct(__global const float *restrict x, __global const float *restrict wp,
                          __global const float *restrict b, const int has_bias, __global float *restrict y,
                          const int Cin, const int Cout, const int Z, const int Y, const int X, const int OZ,
                          const int OY, const int OX) {
  const int ncb = (Cout + COB - 1) / COB, g0 = get_global_id(0), row = get_global_id(1), n = get_global_id(2);
  const int ox0 = (g0 / ncb) * VX, cb = g0 % ncb, co0 = cb * COB;
  const int oz = row / OY, oy = row % OY;
  floatV acc[COB];
#pragma unroll
  for (int j = 0; j < COB; j++) acc[j] = (floatV)(has_bias ? b[min(co0 + j, Cout - 1)] : 0.0f);
  const size_t total = (size_t)get_global_size(2) * Cin * Z * Y * X;
  __global const float *xn = x + (size_t)n * Cin * Z * Y * X;
  __global const float *wb = wp + (size_t)cb * Cin * KV * COB;
  for (int ci = 0; ci < Cin; ci++) {
    __global const float *xc = xn + (size_t)ci * Z * Y * X;
    __global const float *wc = wb + (size_t)ci * KV * COB;
#pragma unroll
    for (int a = 0; a < KZ; a++) {
      const int iz = oz * SZ - PZ + a;
      if (iz < 0 || iz >= Z) continue;
#pragma unroll
      for (int bb = 0; bb < KY; bb++) {
        const int iy = oy * SY - PY + bb;
        if (iy < 0 || iy >= Y) continue;
        __global const float *xr = xc + ((size_t)iz * Y + iy) * X;
        floatV vt[KX];
        load_taps(xr, ox0, X, has_room((size_t)(xr - x), ox0, total), vt);
#pragma unroll
        for (int c = 0; c < KX; c++) {
          __global const float *wt = wc + ((a * KY + bb) * KX + c) * COB;
#pragma unroll
          for (int j = 0; j < COB; j++) acc[j] = fma(vt[c], (floatV)(wt[j]), acc[j]);
        }
      }
    }
  }
  const size_t OS = (size_t)OZ * OY * OX;
  __global float *yr = y + ((size_t)n * Cout + co0) * OS + (size_t)row * OX + ox0;
#pragma unroll
  for (int j = 0; j < COB; j++)
    if (co0 + j < Cout) store_lanes(yr + (size_t)j * OS, acc[j], OX - ox0);
}

// ---- stride-1, 3-tap rows on CPUs: DRB rows per work-item share each weight broadcast ----
// conv_direct spends one load per FMA on its weight broadcasts (a memory operand of the FMA); a core
// issues two loads and two FMAs per cycle, so with its tap loads it was load-bound (~77% of the FMA
// peak). Here a work-item computes DRB output rows of VX lanes for COB channels: each broadcast feeds
// DRB FMAs, and the DRB + 2 input rows of a block are loaded once for its 3 kernel rows. Input rows
// outside the plane read a row of zeros (`zrow`) through a pointer choice instead of a branch, and lanes
// outside a row are cleared by per-tap lane masks, so the channel loop is straight code.
#ifndef DRB
#define DRB 2
#endif
#if defined(__x86_64__)
// a compiler-only barrier: LLVM would otherwise hoist every load of a block to the top, where 12 live
// input vectors next to the 16 accumulators spilled the accumulators once per input channel
#define SCHED_BARRIER() __asm__ volatile("" ::: "memory")
#else
#define SCHED_BARRIER()
#endif
#if KX == 3 && PX == 1 && PY == KY / 2 && VX == 16 && SX == 1 && SY == 1

// The 3 taps of the input row at xr (xr: the row's position ox0) for outputs ox0 .. ox0 + 15: three
// unaligned loads. Tap 0 of output 0 and tap 2 of output X - 1 lie off the row (masks m0, m2); a lane
// past the last output reads whatever follows the row, but its sum is never stored, so tap 1 needs no
// mask. safe: lane by lane, touching only the row's own elements (the first and last input channels of
// the buffer, where a whole vector could reach past it).
__attribute__((always_inline)) inline void rows_taps(floatV v[3], __global const float *xr, const intV m0,
                                                     const intV m2, const int safe, const int ox0, const int X) {
  if (safe) {
#pragma unroll
    for (int c = 0; c < 3; c++) {
      float t[VX];
      for (int l = 0; l < VX; l++) {
        const int ix = ox0 + l - 1 + c;
        t[l] = ix >= 0 && ix < X ? xr[l - 1 + c] : 0.0f;
      }
      v[c] = vloadV(0, t);
    }
    return;
  }
  v[0] = select((floatV)(0.0f), vloadV(0, xr - 1), m0);
  v[1] = vloadV(0, xr);
  v[2] = select((floatV)(0.0f), vloadV(0, xr + 1), m2);
}

// Whether kernel row bb loads input row r of a block (rows oy0 - PY + r; input row r feeds output row q
// through kernel row r - q): the first kernel row that reads it, so the DRB + KY - 1 rows are loaded
// once per input channel and plane.
inline int rows_loads(const int bb, const int r) { return bb == max(r - DRB + 1, 0); }
#define ROWS_IN (DRB + KY - 1) // input rows of a block

#ifndef WDIRECT
#define WDIRECT 0 // conv_rows' weights: 0 packed, 1 in place (forward), 2 in place, flipped (backward data)
#endif
// The weight of tap t for block channel j and the input channel at wc, and wc's step per input channel
// (wstride: the forward's Cin KV, the backward data's Cout KV)
#if WDIRECT == 1 // w (Cout, Cin, k...): a block channel's weights lie wstride floats apart
#define ROWS_W(wc, t, j) (wc)[(size_t)(j) * wstride + (t)]
#define ROWS_WCH KV
#elif WDIRECT == 2 // w (Cin, Cout, k...) of this pass, taps flipped
#define ROWS_W(wc, t, j) (wc)[(j) * KV + KV - 1 - (t)]
#define ROWS_WCH wstride
#else
#define ROWS_W(wc, t, j) (wc)[(t) * COB + (j)]
#define ROWS_WCH (KV * COB)
#endif

// The accumulation of one work-item over input channels ci0 .. ci1 - 1 (inlined twice: safe = 0, 1).
__attribute__((always_inline)) inline void rows_accumulate(floatV acc[DRB][COB], __global const float *xn,
                                                           __global const float *wb, __global const float *zr,
                                                           const int ci0, const int ci1, const int Z, const int Y,
                                                           const int X, const int oz, const int oy0, const int ox0,
                                                           const size_t wstride, const int safe) {
  const size_t plane = (size_t)Z * Y * X;
  const intV lane = LANES + (intV)(ox0);
  const intV m0 = lane >= 1, m2 = lane + 1 < X;
  // planes outside the input are skipped whole, so the channel loop has no branch
  const int a_lo = max(PZ - oz * SZ, 0), a_hi = min(Z - 1 + PZ - oz * SZ, KZ - 1);
  for (int a = a_lo; a <= a_hi; a++) {
    const size_t zofs = (size_t)(oz * SZ - PZ + a) * Y * X;
    // the block's input rows as pointers stepped one plane per channel (rows off the plane: the row of
    // zeros, not stepped); recomputed per channel, their index products and pointer choices had been
    // ~40 scalar instructions beside 144 FMAs
    __global const float *rp[ROWS_IN];
    size_t rstep[ROWS_IN];
#pragma unroll
    for (int r = 0; r < ROWS_IN; r++) {
      const int iy = oy0 - PY + r, inside = iy >= 0 && iy < Y;
      rp[r] = inside ? xn + (size_t)ci0 * plane + zofs + (size_t)iy * X + ox0 : zr;
      rstep[r] = inside ? plane : 0;
    }
    __global const float *wc = wb + (size_t)ci0 * ROWS_WCH;
    for (int ci = ci0; ci < ci1; ci++, wc += ROWS_WCH) {
      floatV v[ROWS_IN][3]; // the block's input rows, 3 taps each
#pragma unroll
      for (int bb = 0; bb < KY; bb++) {
        SCHED_BARRIER(); // each input row is loaded just before the first kernel row that uses it
#pragma unroll
        for (int r = 0; r < ROWS_IN; r++) {
          if (!rows_loads(bb, r)) continue;
          rows_taps(v[r], rp[r], m0, m2, safe, ox0, X);
        }
#pragma unroll
        for (int c = 0; c < 3; c++) {
#pragma unroll
          for (int j = 0; j < COB; j++) {
            const floatV wj = (floatV)(ROWS_W(wc, (a * KY + bb) * KX + c, j));
#pragma unroll
            for (int q = 0; q < DRB; q++) acc[q][j] = fma(v[q + bb][c], wj, acc[q][j]);
          }
        }
      }
#pragma unroll
      for (int r = 0; r < ROWS_IN; r++) rp[r] += rstep[r];
    }
  }
}

#ifndef CICH
#define CICH 64 // conv_rows: input channels per sweep over the channel blocks
#endif
#ifndef RGRP
#define RGRP 1 // conv_rows: row blocks per work-item
#endif

// y (N, Cout, OZ, OY, OX) as conv_direct; zrow: X + 2 VX + 4 zero floats. A work-item computes all
// output channels of RGRP consecutive blocks of DRB rows x VX lanes (blocks counted over planes): for
// each chunk of CICH input channels it sweeps the channel blocks, and for each channel block its row
// blocks, taking each block's partial sums from y and putting them back. (With one channel block per
// work-item, a block read the rows of every input channel, and with 512 channels those rows and the
// block's weights outgrew L1 before the next block came to reuse them.)
// global: (ceil(OX / VX), ceil(OZ * ceil(OY / DRB) / RGRP), N)
__kernel void conv_rows(__global const float *restrict x, __global const float *restrict wp,
                        __global const float *restrict b, const int has_bias, __global float *restrict y,
                        const int Cin, const int Cout, const int Z, const int Y, const int X, const int OZ,
                        const int OY, const int OX, __global const float *restrict zrow) {
  const int ncb = (Cout + COB - 1) / COB, n = get_global_id(2);
  const int ox0 = get_global_id(0) * VX, nx = OX - ox0;
  const int nrb = (OY + DRB - 1) / DRB, g0 = get_global_id(1) * RGRP, g1 = min(g0 + RGRP, OZ * nrb);
  const size_t plane = (size_t)Z * Y * X, total = (size_t)get_global_size(2) * Cin * plane;
  const size_t OS = (size_t)OZ * OY * OX;
  __global const float *xn = x + (size_t)n * Cin * plane;
  __global const float *zr = zrow + 2 + ox0;
  for (int ci0 = 0; ci0 < Cin; ci0 += CICH) {
    const int ci1 = min(ci0 + CICH, Cin);
    for (int cb = 0; cb < ncb; cb++)
      for (int rowblk = g0; rowblk < g1; rowblk++) { // a weight slice is read once for all the row blocks
        const int oz = rowblk / nrb, oy0 = (rowblk % nrb) * DRB;
#if WDIRECT
        // a partial last block starts COB channels before Cout (Cout >= COB): its first channels, the
        // previous block's, are computed again but not stored
        const int co0 = min(cb * COB, Cout - COB);
#else
        const int co0 = cb * COB;
#endif
        // whether a whole-vector load of this block can reach before or past the buffer: the first
        // element before its first row, the last after its last row (rows and planes clamped into the input)
        const int iy_lo = max(oy0 - PY, 0), iy_hi = min(oy0 - PY + ROWS_IN - 1, Y - 1);
        const int iz_lo = max(oz * SZ - PZ, 0), iz_hi = min(oz * SZ - PZ + KZ - 1, Z - 1);
        const size_t lo = (size_t)n * Cin * plane + ((size_t)iz_lo * Y + iy_lo) * X + ox0;
        const size_t hi = ((size_t)n * Cin + Cin - 1) * plane + ((size_t)iz_hi * Y + iy_hi) * X + ox0 + VX + 1;
        // only input channel 0 can reach before the buffer, and only the last channels past it (the last
        // one unless planes are tiny): those take the lane-by-lane loads, the others whole vectors
        const int tail = channels_past_end(hi, total, plane, Cin);
        const int c0 = lo < 1, c1 = max(Cin - tail, c0), u0 = max(ci0, c0), u1 = min(ci1, c1);
        __global float *yn = y + (size_t)n * Cout * OS + ((size_t)oz * OY + oy0) * OX + ox0;
        floatV acc[DRB][COB];
#pragma unroll
        for (int j = 0; j < COB; j++) {
          const floatV bj = (floatV)(has_bias ? b[min(co0 + j, Cout - 1)] : 0.0f);
#pragma unroll
          for (int q = 0; q < DRB; q++) {
            const int live = co0 + j < Cout && oy0 + q < OY;
            acc[q][j] = ci0 == 0 || !live ? bj : load_lanes(yn + (size_t)(co0 + j) * OS + q * OX, nx);
          }
        }
#if WDIRECT == 2
        const size_t wstride = (size_t)Cout * KV;
        __global const float *wb = wp + (size_t)co0 * KV;
#elif WDIRECT
        const size_t wstride = (size_t)Cin * KV;
        __global const float *wb = wp + (size_t)co0 * wstride;
#else
        const size_t wstride = 0;
        __global const float *wb = wp + (size_t)cb * Cin * KV * COB;
#endif
        if (u0 < u1) rows_accumulate(acc, xn, wb, zr, u0, u1, Z, Y, X, oz, oy0, ox0, wstride, 0);
        if (ci0 < c0) rows_accumulate(acc, xn, wb, zr, 0, 1, Z, Y, X, oz, oy0, ox0, wstride, 1);
        if (ci1 > c1) rows_accumulate(acc, xn, wb, zr, max(ci0, c1), ci1, Z, Y, X, oz, oy0, ox0, wstride, 1);
#pragma unroll
        for (int q = 0; q < DRB; q++) {
          if (oy0 + q >= OY) continue;
#pragma unroll
          for (int j = 0; j < COB; j++)
            if (co0 + j < Cout && co0 + j >= cb * COB)
              store_lanes(yn + (size_t)(co0 + j) * OS + q * OX, acc[q][j], nx);
        }
      }
  }
}
#endif

// ---- narrow rows: vectors over output channels ----
// For rows narrower than 16 (the deep, small-spatial layers) x-vectors leave lanes idle; this
// variant puts 16 output channels in the lanes instead (packed weights with COB = 16: one vector
// load per tap) and keeps PB output positions of one row in PB accumulators, each input value a
// scalar broadcast. Build option PB (positions per work-item, <= 16).
// global: (ceil(OX / PB) * ceil(Cout / 16), OZ * OY, N).
#ifndef PB
#define PB 8
#endif
#ifndef RB
#define RB 1
#endif
#ifndef PHASE_TAPS // conv_cvec: taps per axis from the phase argument, not KZ / KY / KX
#define PHASE_TAPS 0
#endif
#if PHASE_TAPS // tap counts known only at run time: asking to unroll those loops only draws warnings
#define UNROLL_TAPS
#else
#define UNROLL_TAPS _Pragma("unroll")
#endif
#ifndef CVEC_ORDER
#define CVEC_ORDER 0
#endif
// The (x block, row block, sample, channel block) of a work-item of a (x blocks x channel blocks, row
// blocks, samples) range, read with the channel block as the slowest index of the whole range
// (CVEC_ORDER): the work-items of one channel block then run one after another. nxb: x blocks.
inline int4 cvec_slow_order(const int nxb) {
  size_t lin = get_global_id(0) + get_global_size(0) * (get_global_id(1) + get_global_size(1) * get_global_id(2));
  const int xb = lin % nxb;
  lin /= nxb;
  const int rowblk = lin % get_global_size(1);
  lin /= get_global_size(1);
  return (int4)(xb, rowblk, lin % get_global_size(2), lin / get_global_size(2));
}
#ifndef OSZ // conv_cvec's output strides (2: a phase of a strided backward data)
#define OSZ 1
#endif
#ifndef OSY
#define OSY 1
#endif
#ifndef OSX
#define OSX 1
#endif
#define XSPAN ((PB - 1) * SX + KX) // input values one row of PB outputs reads

// The channel-vector kernels' 16 biases of channels c0 .. c0 + 15 (the last channel repeated past C),
// or zeros.
inline float16 cvec_bias(__global const float *b, const int has_bias, const int c0, const int C) {
  float t[16];
  for (int j = 0; j < 16; j++) t[j] = has_bias ? b[min(c0 + j, C - 1)] : 0.0f;
  return vload16(0, t);
}

// The results of a channel-vector kernel for np <= PB positions `step` floats apart, staged in t (16
// channels per position, position p at t + 16 p), into their first nj channel planes CS floats apart:
// channel by channel, so that a plane's consecutive positions are consecutive stores. (Position by
// position, PoCL vectorised the channel loop into scatters with 64-bit index multiplies: 40% of a
// transposed conv's time.)
inline void cvec_store_rows(__global float *out, const float *t, const int nj, const int np, const int step,
                            const size_t CS) {
#pragma clang loop vectorize(disable)
  for (int j = 0; j < nj; j++) {
    __global float *o = out + (size_t)j * CS;
    if (np == PB && step == 1) {
#pragma unroll
      for (int p = 0; p < PB; p++) o[p] = t[p * 16 + j];
    } else {
      for (int p = 0; p < np; p++) o[p * step] = t[p * 16 + j];
    }
  }
}
// The input zero-padded once per call (pad_input), so conv_cvec reads every tap without a bounds test:
// with tests, PoCL's code spent more instructions on compare-and-branch per loaded value than on the
// FMAs. Padded extents: Zp = Z + 2 PZ, Yp, Xp >= every position a row block reads.
// global: (Zp, N * C): a work-item writes one padded (Yp, Xp) slice, row by row
__kernel void pad_input(__global float *restrict xp, __global const float *restrict x, const int Z, const int Y,
                        const int X, const int Zp, const int Yp, const int Xp) {
  const int zp = get_global_id(0), nc = get_global_id(1), z = zp - PZ;
  __global float *dst = xp + ((size_t)nc * Zp + zp) * Yp * Xp;
  if (z < 0 || z >= Z) {
    for (int i = 0; i < Yp * Xp; i++) dst[i] = 0.0f;
    return;
  }
  __global const float *src = x + ((size_t)nc * Z + z) * Y * X;
  for (int yp = 0; yp < Yp; yp++, dst += Xp) {
    const int y = yp - PY;
    if (y < 0 || y >= Y) {
      for (int i = 0; i < Xp; i++) dst[i] = 0.0f;
      continue;
    }
    for (int i = 0; i < PX; i++) dst[i] = 0.0f;
    for (int i = 0; i < X; i++) dst[PX + i] = src[(size_t)y * X + i];
    for (int i = PX + X; i < Xp; i++) dst[i] = 0.0f;
  }
}

// x: the padded input (Zp, Yp, Xp) from pad_input. A work-item computes RB rows x PB positions of one
// plane: RB * PB independent accumulators keep the FMA pipes busy (4-cycle latency, two pipes).
// global: (ceil(OX / PB) * ceil(Cout / 16), OZ * ceil(OY / RB), N)
__kernel void conv_cvec(__global const float *restrict x, __global const float *restrict wp,
                        __global const float *restrict b, const int has_bias, __global float *restrict y,
                        const int Cin, const int Cout, const int Zp, const int Yp, const int Xp, const int OZ,
                        const int OY, const int OX, const int FZ, const int FY, const int FX, const int phase,
                        const int wofs) {
  const int ncb = (Cout + 15) / 16, nrb = (OY + RB - 1) / RB;
#if CVEC_ORDER
  // channel blocks slowest: the work-items of one channel block run one after another and read its
  // weights from cache (deep layers, whose weights outgrow the L2 cache while their inputs fit)
  const int4 id = cvec_slow_order((OX + PB - 1) / PB);
  const int rowblk = id.y, n = id.z, cb = id.w, ox0 = id.x * PB, co0 = cb * 16;
#else
  const int g0 = get_global_id(0), rowblk = get_global_id(1), n = get_global_id(2);
  const int ox0 = (g0 / ncb) * PB, cb = g0 % ncb, co0 = cb * 16;
#endif
  const int oz = rowblk / nrb, oy0 = (rowblk % nrb) * RB;
#if PHASE_TAPS
  // a phase of a strided backward data: its taps per axis in bits 3-8 of `phase`, so that one program
  // build serves every phase of a geometry (a build per phase cost ~7 s each on PoCL)
  const int kz = (phase >> 3) & 3, ky = (phase >> 5) & 3, kx = (phase >> 7) & 3, kv = kz * ky * kx;
#else
  const int kz = KZ, ky = KY, kx = KX, kv = KV;
#endif
  const float16 bias = cvec_bias(b, has_bias, co0, Cout);
  float16 acc[RB][PB];
#pragma unroll
  for (int q = 0; q < RB; q++)
#pragma unroll
    for (int p = 0; p < PB; p++) acc[q][p] = bias;
  const size_t plane = (size_t)Zp * Yp * Xp;
  __global const float *xn = x + (size_t)n * Cin * plane + ((size_t)oz * SZ * Yp + (size_t)oy0 * SY) * Xp + ox0 * SX;
  __global const float *wb = wp + wofs + (size_t)cb * Cin * kv * 16;
  for (int ci = 0; ci < Cin; ci++) {
    __global const float *xc = xn + (size_t)ci * plane;
    __global const float *wc = wb + (size_t)ci * kv * 16;
    UNROLL_TAPS
    for (int a = 0; a < kz; a++)
      UNROLL_TAPS
      for (int bb = 0; bb < ky; bb++)
        UNROLL_TAPS
        for (int c = 0; c < kx; c++) {
          const float16 wv = vload16(0, wc + ((a * ky + bb) * kx + c) * 16);
#pragma unroll
          for (int q = 0; q < RB; q++) {
            __global const float *xr = xc + ((size_t)a * Yp + q * SY + bb) * Xp + c;
#pragma unroll
            for (int p = 0; p < PB; p++) acc[q][p] = fma((float16)(xr[p * SX]), wv, acc[q][p]);
          }
        }
  }
  // output (n, co, oz * OSZ + phz, oy * OSY + phy, ox * OSX + phx) of y (N, Cout, FZ, FY, FX): one phase
  // of a strided backward data (run_dgrad_phases; its packed weights from wp + wofs); OS* = 1, F* = O*,
  // phase 0 and wofs 0 for a plain convolution
  const size_t FS = (size_t)FZ * FY * FX;
  const int phz = (phase >> 2) & 1, phy = (phase >> 1) & 1, phx = phase & 1;
  const int nj = min(16, Cout - co0);
#pragma unroll
  for (int q = 0; q < RB; q++) {
    if (oy0 + q >= OY) break;
    __global float *yr = y + ((size_t)n * Cout + co0) * FS +
                         ((size_t)(oz * OSZ + phz) * FY + (oy0 + q) * OSY + phy) * FX + ox0 * OSX + phx;
    float t[PB * 16];
#pragma unroll
    for (int p = 0; p < PB; p++) vstore16(acc[q][p], p, t);
    cvec_store_rows(yr, t, nj, min(PB, OX - ox0), OSX, FS);
  }
}

// The weights of every phase of a strided backward data (run_dgrad_phases), packed in one pass over w as
// pack_weights packs them for conv_cvec (16 channels), phase after phase (z, then y, then x phase; each
// block 16 * ceil(Cout / 16) * Cin * its taps floats). Along an axis of stride 2 (3 taps) the even phase
// has 1 tap (forward tap 1), the odd one 2 (forward taps 2, 0); along an axis of stride 1, all k taps
// flipped. w (Cin, Cout, kz, ky, kx): Cin = the forward's output channels (this pass's input), Cout its
// input channels. global: (Cin, ceil(Cout / 16))
inline int phase_taps(const int s, const int k, const int ph) { return s == 2 ? 1 + ph : k; }
inline int phase_tap(const int s, const int k, const int ph, const int u) { // forward tap of sub-tap u
  return s == 2 ? (ph ? 2 - 2 * u : 1) : k - 1 - u;
}
__kernel void pack_phases(__global float *restrict wp, __global const float *restrict w, const int Cin,
                          const int Cout, const int kz, const int ky, const int kx, const int sz, const int sy,
                          const int sx) {
  const int ci = get_global_id(0), cb = get_global_id(1), ncb = get_global_size(1), kv = kz * ky * kx;
  __global const float *src = w + ((size_t)ci * Cout + cb * 16) * kv;
  const int nj = min(16, Cout - cb * 16);
  size_t ofs = 0;
  for (int pz = 0; pz < sz; pz++)
    for (int py = 0; py < sy; py++)
      for (int px = 0; px < sx; px++) {
        const int tz = phase_taps(sz, kz, pz), ty = phase_taps(sy, ky, py), tx = phase_taps(sx, kx, px);
        __global float *dst = wp + ofs + ((size_t)cb * Cin + ci) * tz * ty * tx * 16;
        for (int a = 0; a < tz; a++)
          for (int bb = 0; bb < ty; bb++)
            for (int c = 0; c < tx; c++) {
              const int t = (phase_tap(sz, kz, pz, a) * ky + phase_tap(sy, ky, py, bb)) * kx +
                            phase_tap(sx, kx, px, c);
              float v[16]; // the 16 channels of one tap: one contiguous store
              for (int j = 0; j < 16; j++) v[j] = j < nj ? src[(size_t)j * kv + t] : 0.0f;
              vstore16(vload16(0, v), (a * ty + bb) * tx + c, dst);
            }
        ofs += (size_t)ncb * 16 * Cin * tz * ty * tx;
      }
}

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
