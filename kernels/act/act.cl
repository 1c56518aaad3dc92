// (Leaky) ReLU forward and backward, one work-item per element (PoCL vectorises across work-items).
// The backward takes the forward OUTPUT: y > 0 <=> x > 0 for slope >= 0, so in-place use is safe.
// -DHALF=1: the scalar kernels read and write 16-bit activations (common/storage.cl).
#include "common/storage.cl"

__kernel void lrelu_fwd(__global ACT *y, __global const ACT *x, const float slope, const ulong n) {
  size_t i = get_global_id(0);
  if (i < n) {
    float v = LDA(x, i);
    STA(v > 0.0f ? v : v * slope, y, i);
  }
}

__kernel void lrelu_bwd(__global ACT *dx, __global const ACT *y, __global const ACT *dy, const float slope,
                        const ulong n) {
  size_t i = get_global_id(0);
  if (i < n) {
    float g = LDA(dy, i);
    STA(LDA(y, i) > 0.0f ? g : g * slope, dx, i);
  }
}

__kernel void sigmoid_fwd(__global float *y, __global const float *x, const ulong n) {
  size_t i = get_global_id(0);
  if (i < n) y[i] = 1.0f / (1.0f + exp(-x[i]));
}

// float4 variants (n % 4 == 0): one 16-byte load/store per array per work-item, as GPUs like.
__kernel void lrelu_fwd4(__global float4 *y, __global const float4 *x, const float slope, const ulong n4) {
  size_t i = get_global_id(0);
  if (i < n4) {
    float4 v = x[i];
    y[i] = select(v * slope, v, v > 0.0f);
  }
}

__kernel void lrelu_bwd4(__global float4 *dx, __global const float4 *y, __global const float4 *dy, const float slope,
                         const ulong n4) {
  size_t i = get_global_id(0);
  if (i < n4) {
    float4 g = dy[i];
    dx[i] = select(g * slope, g, y[i] > 0.0f);
  }
}
