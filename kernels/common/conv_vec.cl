// The prelude of the direct convolution kernels (conv/pack.cl, fwd.cl, convT.cl, dgrad.cl, wgrad.cl),
// written for CPUs (PoCL) with explicit vectors: a work-item computes VX consecutive output voxels
// along x (one floatVX) for COB output channels, keeping COB vector accumulators in registers; each
// input vector is loaded once per tap and reused for COB FMAs, and each weight is a scalar broadcast.
// The channel-vector ("cvec") kernels put 16 channels in the lanes instead and PB positions in
// accumulators. The same kernels run the backward passes with flipped, transposed weights (see conv.c).
// Build options: KZ KY KX SZ SY SX PZ PY PX (geometry), VX (4, 8 or 16), COB (tunable), PB, CVEC_ORDER.
#include "common/conv_geometry.cl"
#ifndef VX
#define VX 16
#endif
#ifndef COB
#define COB 8
#endif

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

#if defined(__x86_64__)
// a compiler-only barrier: LLVM would otherwise hoist every load of a block to the top, where 12 live
// input vectors next to the 16 accumulators spilled the accumulators once per input channel
#define SCHED_BARRIER() __asm__ volatile("" ::: "memory")
#else
#define SCHED_BARRIER()
#endif

// ---- channel-vector kernels (conv_cvec, convT_cvec, dgrad_cvec) ----
#ifndef PB
#define PB 8
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
