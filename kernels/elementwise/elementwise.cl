// Elementwise kernels. One work-item per element; n is passed so the global size may be rounded up to a
// multiple of the work-group size. Storage is ACT (common/storage.cl): float, or float16 under -DHALF=1
// (mixed-precision activations and their gradients), computed in float either way.
#include "common/storage.cl"

__kernel void fill_f32(__global ACT *y, const float v, const ulong n) {
  size_t i = get_global_id(0);
  if (i < n) STA(v, y, i);
}

__kernel void scale_f32(__global ACT *y, const float a, const ulong n) {
  size_t i = get_global_id(0);
  if (i < n) STA(LDA(y, i) * a, y, i);
}

// y = a * x + y
__kernel void axpy_f32(__global ACT *y, __global const ACT *x, const float a, const ulong n) {
  size_t i = get_global_id(0);
  if (i < n) STA(fma(a, LDA(x, i), LDA(y, i)), y, i);
}

// z = x + y, z = x * y (z may alias x or y)
__kernel void add_f32(__global ACT *z, __global const ACT *x, __global const ACT *y, const ulong n) {
  size_t i = get_global_id(0);
  if (i < n) STA(LDA(x, i) + LDA(y, i), z, i);
}

__kernel void mul_f32(__global ACT *z, __global const ACT *x, __global const ACT *y, const ulong n) {
  size_t i = get_global_id(0);
  if (i < n) STA(LDA(x, i) * LDA(y, i), z, i);
}

// Storage conversions between float16 and float32 (these two build without -DHALF).
__kernel void cast_f16_f32(__global float *y, __global const half *x, const ulong n) {
  size_t i = get_global_id(0);
  if (i < n) y[i] = vload_half(i, x);
}

__kernel void cast_f32_f16(__global half *y, __global const float *x, const ulong n) {
  size_t i = get_global_id(0);
  if (i < n) vstore_half_rte(x[i], i, y);
}
