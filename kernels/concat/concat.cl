// Channel-slice copy: dst[n, dc0 + c, s] (=|+=) src[n, sc0 + c, s] for c < nc, s < S.
// Global size: (round_up(S), nc, N); contiguous along s so wide loads/vectorisation apply.
// -DHALF=1: copy_channels moves 16-bit activations (common/storage.cl; a copy is exact, a sum rounds once).
#include "common/storage.cl"

__kernel void copy_channels(__global ACT *dst, const ulong dC, const ulong dc0, __global const ACT *src,
                            const ulong sC, const ulong sc0, const ulong S, const int accumulate) {
  size_t s = get_global_id(0), c = get_global_id(1), n = get_global_id(2);
  if (s >= S) return;
  size_t di = (n * dC + dc0 + c) * S + s, si = (n * sC + sc0 + c) * S + s;
  float v = LDA(src, si);
  STA(accumulate ? LDA(dst, di) + v : v, dst, di);
}

// float4 variant for S % 4 == 0 (S4 = S / 4, offsets in float4 units).
__kernel void copy_channels4(__global float4 *dst, const ulong dC, const ulong dc0, __global const float4 *src,
                             const ulong sC, const ulong sc0, const ulong S4, const int accumulate) {
  size_t s = get_global_id(0), c = get_global_id(1), n = get_global_id(2);
  if (s >= S4) return;
  size_t di = (n * dC + dc0 + c) * S4 + s, si = (n * sC + sc0 + c) * S4 + s;
  float4 v = src[si];
  dst[di] = accumulate ? dst[di] + v : v;
}
