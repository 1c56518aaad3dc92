// Softmax / log-softmax over channels for (N, C, S) tensors: one work-item per (n, s) voxel, looping
// over C with stride S (consecutive items read consecutive addresses). y may alias x.
// global: (round_up(S), N)

__kernel void softmax_fwd(__global float *y, __global const float *x, const ulong C, const ulong S, const int log_out) {
  size_t s = get_global_id(0), n = get_global_id(1);
  if (s >= S) return;
  __global const float *xp = x + n * C * S + s;
  __global float *yp = y + n * C * S + s;
  float m = -INFINITY;
  for (size_t c = 0; c < C; c++) m = fmax(m, xp[c * S]);
  float sum = 0.0f;
  for (size_t c = 0; c < C; c++) sum += exp(xp[c * S] - m);
  if (log_out) {
    float ls = m + log(sum);
    for (size_t c = 0; c < C; c++) yp[c * S] = xp[c * S] - ls;
  } else {
    float inv = 1.0f / sum;
    for (size_t c = 0; c < C; c++) yp[c * S] = exp(xp[c * S] - m) * inv;
  }
}

// softmax: dx = y * (dy - sum_c y dy); log-softmax: dx = dy - exp(y) * sum_c dy. dx may alias dy.
__kernel void softmax_bwd(__global float *dx, __global const float *y, __global const float *dy, const ulong C,
                          const ulong S, const int log_out) {
  size_t s = get_global_id(0), n = get_global_id(1);
  if (s >= S) return;
  size_t o = n * C * S + s;
  float acc = 0.0f;
  if (log_out) {
    for (size_t c = 0; c < C; c++) acc += dy[o + c * S];
    for (size_t c = 0; c < C; c++) dx[o + c * S] = dy[o + c * S] - exp(y[o + c * S]) * acc;
  } else {
    for (size_t c = 0; c < C; c++) acc = fma(y[o + c * S], dy[o + c * S], acc);
    for (size_t c = 0; c < C; c++) dx[o + c * S] = y[o + c * S] * (dy[o + c * S] - acc);
  }
}
