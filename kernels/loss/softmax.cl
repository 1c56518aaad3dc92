// Softmax / log-softmax over channels for (N, C, S) tensors: one work-item per VW voxels of one
// sample, looping over C with stride S (consecutive items read consecutive addresses). y may alias x.
// -DVW=8 (CPU devices, S % 8 == 0) uses float8 so PoCL emits vector exp/log. global: (S / VW, N)
#include "common/vw.cl"

__kernel void softmax_fwd(__global float *y, __global const float *x, const ulong C, const ulong S, const int log_out) {
  size_t s = get_global_id(0) * VW, n = get_global_id(1);
  if (s >= S) return;
  __global const float *xp = x + n * C * S + s;
  __global float *yp = y + n * C * S + s;
  vf m = VB(-INFINITY);
  for (size_t c = 0; c < C; c++) m = fmax(m, LOADF(xp, c * S));
  vf sum = VB(0.0f);
  for (size_t c = 0; c < C; c++) sum += exp(LOADF(xp, c * S) - m);
  if (log_out) {
    vf ls = m + log(sum);
    for (size_t c = 0; c < C; c++) STOREF(LOADF(xp, c * S) - ls, yp, c * S);
  } else {
    vf inv = VB(1.0f) / sum;
    for (size_t c = 0; c < C; c++) STOREF(exp(LOADF(xp, c * S) - m) * inv, yp, c * S);
  }
}

// softmax: dx = y * (dy - sum_c y dy); log-softmax: dx = dy - exp(y) * sum_c dy. dx may alias dy.
__kernel void softmax_bwd(__global float *dx, __global const float *y, __global const float *dy, const ulong C,
                          const ulong S, const int log_out) {
  size_t s = get_global_id(0) * VW, n = get_global_id(1);
  if (s >= S) return;
  size_t o = n * C * S + s;
  vf acc = VB(0.0f);
  if (log_out) {
    for (size_t c = 0; c < C; c++) acc += LOADF(dy, o + c * S);
    for (size_t c = 0; c < C; c++) STOREF(LOADF(dy, o + c * S) - exp(LOADF(y, o + c * S)) * acc, dx, o + c * S);
  } else {
    for (size_t c = 0; c < C; c++) acc = fma(LOADF(y, o + c * S), LOADF(dy, o + c * S), acc);
    for (size_t c = 0; c < C; c++) STOREF(LOADF(y, o + c * S) * (LOADF(dy, o + c * S) - acc), dx, o + c * S);
  }
}
