// Direct convolution, forward: conv_direct (VX lanes along x, any geometry), conv_rows (stride-1, 3-tap
// rows, DRB rows per work-item) and conv_cvec (16 output channels in the lanes, for narrow rows; also
// runs the phases of a strided backward data).
#include "common/conv_vec.cl"

// x (N, Cin, Z, Y, X), wp packed by pack_weights (pack.cl), b (Cout) or unused, y (N, Cout, OZ, OY, OX).
// A work-item computes VX consecutive outputs along x for COB output channels (COB vector accumulators;
// each input vector is loaded once per tap and feeds COB FMAs with broadcast weights). The output-channel
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
// issues two loads and two FMAs per cycle, so with its tap loads it is load-bound (~77% of the FMA
// peak). Here a work-item computes DRB output rows of VX lanes for COB channels: each broadcast feeds
// DRB FMAs, and the DRB + 2 input rows of a block are loaded once for its 3 kernel rows. Input rows
// outside the plane read a row of zeros (`zrow`) through a pointer choice instead of a branch, and lanes
// outside a row are cleared by per-tap lane masks, so the channel loop is straight code.
#ifndef DRB
#define DRB 2
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
    // zeros, not stepped); recomputed per channel, their index products and pointer choices are
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
