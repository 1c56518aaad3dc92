// Bias helpers shared by convolution and transposed convolution. The gradients read dy through ACT
// (common/storage.cl): float16 under -DHALF=1 (mixed precision), float otherwise.
#include "common/storage.cl"
#ifndef BIAS_WG
#define BIAS_WG 64
#endif

// y (N, C, S): y = b[c] (or 0 when has_bias == 0). global: (S rounded, N * C).
__kernel void bias_fill(__global float *y, __global const float *b, const int C, const int S, const int has_bias) {
  const int s = get_global_id(0), nc = get_global_id(1);
  if (s >= S) return;
  y[(size_t)nc * S + s] = has_bias ? b[nc % C] : 0.0f;
}

// GPUs: db[c] (+)= sum over n, s of dy[n, c, s] in two stages, so a layer with few channels and large
// planes still fills the device (one work-group per channel streamed whole layers with C groups).
// Stage 1: the channel's N * S values split into CH chunks of `per`, one work-group per (chunk, channel),
// consecutive items on consecutive addresses. part[c * CH + chunk]. global: (CH * BIAS_WG, C)
__kernel __attribute__((reqd_work_group_size(BIAS_WG, 1, 1)))
void bias_grad_partial(__global float *part, __global const ACT *dy, const int N, const int C, const int S,
                       const long per) {
  __local float sh[BIAS_WG];
  const int l = get_local_id(0), c = get_group_id(1), ch = get_group_id(0), CH = get_num_groups(0);
  const long total = (long)N * S, i0 = ch * per, i1 = min(total, i0 + per);
  float acc = 0.0f;
  for (long i = i0 + l; i < i1; i += BIAS_WG) {
    const long n = i / S, s = i - n * S;
    acc += LDA(dy, ((size_t)n * C + c) * S + s);
  }
  sh[l] = acc;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int w = BIAS_WG / 2; w > 0; w >>= 1) {
    if (l < w) sh[l] += sh[l + w];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (l == 0) part[(size_t)c * CH + ch] = sh[0];
}

// Stage 2: db[c] (+)= the CH partials of channel c, in chunk order (deterministic). global: (C)
__kernel void bias_grad_finish(__global float *db, __global const float *part, const int C, const int CH,
                               const int accumulate) {
  const int c = get_global_id(0);
  if (c >= C) return;
  float acc = 0.0f;
  for (int j = 0; j < CH; j++) acc += part[(size_t)c * CH + j];
  db[c] = accumulate ? db[c] + acc : acc;
}

// CPUs: one work-item per channel sums its planes in order (the work-group tree above spent its time in
// barriers and strided loads: ~200 us per call on PoCL). global: (C)
__kernel void bias_grad_serial(__global float *db, __global const ACT *dy, const int N, const int C, const int S,
                               const int accumulate) {
  const int c = get_global_id(0);
  float16 v = (float16)(0.0f); // 16 partial sums: one add chain would wait on its latency
  float acc = 0.0f;
  for (int n = 0; n < N; n++) {
    __global const ACT *p = dy + ((size_t)n * C + c) * S;
    int s = 0;
#if HALF
    for (; s + 16 <= S; s += 16) v += vload_half16(0, p + s);
#else
    for (; s + 16 <= S; s += 16) v += vload16(0, p + s);
#endif
    for (; s < S; s++) acc += LDA(p, s);
  }
  float t[16];
  vstore16(v, 0, t);
  for (int j = 0; j < 16; j++) acc += t[j];
  db[c] = accumulate ? db[c] + acc : acc;
}
