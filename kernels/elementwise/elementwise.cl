// Elementwise float32 kernels. One work-item per element; n is passed so the global size may be
// rounded up to a multiple of the work-group size.

__kernel void fill_f32(__global float *y, const float v, const ulong n) {
  size_t i = get_global_id(0);
  if (i < n) y[i] = v;
}

__kernel void scale_f32(__global float *y, const float a, const ulong n) {
  size_t i = get_global_id(0);
  if (i < n) y[i] *= a;
}

// y = a * x + y
__kernel void axpy_f32(__global float *y, __global const float *x, const float a, const ulong n) {
  size_t i = get_global_id(0);
  if (i < n) y[i] = fma(a, x[i], y[i]);
}

// z = x + y, z = x * y (z may alias x or y)
__kernel void add_f32(__global float *z, __global const float *x, __global const float *y, const ulong n) {
  size_t i = get_global_id(0);
  if (i < n) z[i] = x[i] + y[i];
}

__kernel void mul_f32(__global float *z, __global const float *x, __global const float *y, const ulong n) {
  size_t i = get_global_id(0);
  if (i < n) z[i] = x[i] * y[i];
}
