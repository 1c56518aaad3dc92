// (Leaky) ReLU forward and backward, one work-item per element (PoCL vectorises across work-items).
// The backward takes the forward OUTPUT: y > 0 <=> x > 0 for slope >= 0, so in-place use is safe.

__kernel void lrelu_fwd(__global float *y, __global const float *x, const float slope, const ulong n) {
  size_t i = get_global_id(0);
  if (i < n) {
    float v = x[i];
    y[i] = v > 0.0f ? v : v * slope;
  }
}

__kernel void lrelu_bwd(__global float *dx, __global const float *y, __global const float *dy, const float slope,
                        const ulong n) {
  size_t i = get_global_id(0);
  if (i < n) {
    float g = dy[i];
    dx[i] = y[i] > 0.0f ? g : g * slope;
  }
}

__kernel void sigmoid_fwd(__global float *y, __global const float *x, const ulong n) {
  size_t i = get_global_id(0);
  if (i < n) y[i] = 1.0f / (1.0f + exp(-x[i]));
}
