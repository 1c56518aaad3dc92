// Sliding-window accumulation on the device (the host versions are in csrc/infer/sliding.c; these
// follow them operation for operation, so both give the same float16-emulated sums).
// Build option ACC16: 1 = accumulator and weight map stored as IEEE half (vload_half /
// vstore_half_rte, core OpenCL), 0 = float32 (rounded through half when `half` is set).
#pragma OPENCL FP_CONTRACT OFF
#ifndef ACC16
#define ACC16 1
#endif

#if ACC16
#define ACC_T half
inline float acc_ld(__global const half *p, size_t i) { return vload_half(i, p); }
inline void acc_st(__global half *p, size_t i, float v, int half_round) { vstore_half_rte(v, i, p); }
#else
#define ACC_T float
inline float acc_ld(__global const float *p, size_t i) { return p[i]; }
inline void acc_st(__global float *p, size_t i, float v, int half_round) {
  if (half_round) { // round through half: store to private 16-bit storage and load back
    ushort h;
    vstore_half_rte(v, 0, (__private half *)&h);
    v = vload_half(0, (__private const half *)&h);
  }
  p[i] = v;
}
#endif

// win (K, p0, p1, p2) f32 (+)= one window of the model output lg (B, K, p0, p1, p2) f32, the one starting
// off floats in (a batch of mirrorings), mirrored along the axes in flip (bit 0: z, 1: y, 2: x).
// global: (K * p0 * p1 * p2)
__kernel void window_add(__global float *restrict win, __global const float *restrict lg, const long off, const int p0,
                         const int p1, const int p2, const int flip, const int first) {
  const size_t i = get_global_id(0);
  const int x = i % p2, y = (i / p2) % p1, z = (i / ((size_t)p2 * p1)) % p0;
  const size_t k = i / ((size_t)p2 * p1 * p0);
  const int lz = (flip & 1) ? p0 - 1 - z : z, ly = (flip & 2) ? p1 - 1 - y : y, lx = (flip & 4) ? p2 - 1 - x : x;
  const float v = lg[off + ((k * p0 + lz) * p1 + ly) * p2 + lx];
  win[i] = first ? v : win[i] + v;
}

// acc (K, P0, P1, P2) at window start s (+)= win * inv_divisor * gauss; wsum likewise (+)= gauss
// (done by the k == 0 work-items). inv_divisor is 1 / (number of mirrorings), a power of two, so
// the product equals the host's division. global: (K * p0 * p1 * p2)
__kernel void accumulate(__global ACC_T *restrict acc, __global ACC_T *restrict wsum, const int has_wsum,
                         __global const float *restrict win, __global const float *restrict g, const int has_g,
                         const int P0, const int P1, const int P2, const int p0, const int p1, const int p2,
                         const int s0, const int s1, const int s2, const float inv_divisor, const int half_round) {
  const size_t i = get_global_id(0);
  const int x = i % p2, y = (i / p2) % p1, z = (i / ((size_t)p2 * p1)) % p0;
  const size_t k = i / ((size_t)p2 * p1 * p0);
  const size_t pi = ((size_t)z * p1 + y) * p2 + x;
  const size_t row = ((size_t)(s0 + z) * P1 + s1 + y) * P2 + s2 + x;
  float v = win[i];
  if (inv_divisor != 1.0f) v = v * inv_divisor;
  if (has_g) v = v * g[pi];
  const size_t a = k * (size_t)P0 * P1 * P2 + row;
  acc_st(acc, a, acc_ld(acc, a) + v, half_round);
  if (has_wsum && k == 0) acc_st(wsum, row, acc_ld(wsum, row) + (has_g ? g[pi] : 1.0f), half_round);
}
