// Direct convolution, data preparation: weights packed per block of output channels (pack_weights,
// and pack_phases for the phases of a strided backward data) and the input zero-padded (pad_input).
#include "common/conv_vec.cl"

// Weights packed per block of COB output channels: wp[((cb * Cin + ci) * KV + t) * COB + j] is weight
// (co = cb * COB + j, ci, tap t), zero for co >= Cout. The COB weights of one tap are then adjacent, so
// the kernel addresses them from one pointer with constant offsets (one strided pointer per output
// channel ran out of general registers and spilled). flip = 1 packs the flipped, transposed weights
// of the stride-1 backward-data pass: w is then (Cin', Cout', KV) with Cin' = this conv's output count.
// flip = 2: a transposed convolution's weights (Cin, Cout, KV), not flipped.
// A work-item packs one (input channel, channel block): COB source runs of KV weights each (contiguous
// in w) into KV * COB contiguous floats (one float per work-item runs at 7 GB/s on PoCL).
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
