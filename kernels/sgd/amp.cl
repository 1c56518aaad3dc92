// The tail of a training step without a host round trip (torch.amp.GradScaler.unscale_/step/update around
// torch.nn.utils.clip_grad_norm_ and torch.optim.SGD, as nnUNetTrainer.train_step runs them):
//   amp_partials  per work-group: sum of squares of the unscaled gradient, and whether any element is inf/NaN
//   amp_finish    one work-group: norm, found_inf, the update's gradient factor (1/scale times the clip
//                 coefficient), then the scaler's growth/backoff; everything lands in the state words
//   sgd_nesterov_amp  SGD reading the factor and found_inf from the state (a skipped step touches nothing)
// State words (float or int, as in csrc/ops/amp.h): the host reads them back without blocking the queue.
#ifndef WG
#define WG 64
#endif
#ifndef CONTIG
#define CONTIG 0
#endif

#define A_SCALE 0
#define A_TRACKER 1
#define A_ENABLED 2
#define A_INTERVAL 3
#define A_GROWTH 4
#define A_BACKOFF 5
#define A_COEF 6
#define A_FOUND_INF 7
#define A_NORM 8
#define A_SKIPPED 9
#define A_NONFINITE 10
#define A_STEPS 11

// The work-group's compensated sums and non-finite flags, folded into sh[0] - shc[0] and bad[0].
void group_reduce(__local float *sh, __local float *shc, __local int *bad, const size_t lid, const float acc,
                  const float comp, const int nf) {
  sh[lid] = acc;
  shc[lid] = comp;
  bad[lid] = nf;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (size_t s = WG / 2; s > 0; s >>= 1) {
    if (lid < s) {
      sh[lid] = (sh[lid] - shc[lid]) + (sh[lid + s] - shc[lid + s]);
      shc[lid] = 0.0f;
      bad[lid] |= bad[lid + s];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void amp_partials(__global const float *g, const ulong n, __global const float *state, __global float *partials) {
  __local float sh[WG], shc[WG];
  __local int bad[WG];
  const size_t lid = get_local_id(0), gid = get_global_id(0), stride = get_global_size(0);
  // 1/scale is a power of two: g * inv is exact, as torch's unscale_ multiply
  const float inv = 1.0f / state[A_SCALE];
  float acc = 0.0f, comp = 0.0f;
  int nf = 0;
#if CONTIG
  // CPUs run a group's items one after the other: each item owns a contiguous chunk
  const size_t chunk = (n + stride - 1) / stride, i0 = gid * chunk, i1 = min(n, i0 + chunk);
  for (size_t i = i0; i < i1; i++) {
#else
  for (size_t i = gid; i < n; i += stride) {
#endif
    const float v = g[i];
    nf |= !isfinite(v);
    const float u = v * inv;
    const float y = u * u - comp, t = acc + y;
    comp = (t - acc) - y;
    acc = t;
  }
  group_reduce(sh, shc, bad, lid, acc, comp, nf);
  if (lid == 0) {
    partials[2 * get_group_id(0)] = sh[0] - shc[0];
    partials[2 * get_group_id(0) + 1] = bad[0] ? 1.0f : 0.0f;
  }
}

// One work-group of WG items over the ng partial pairs. clip <= 0: no clipping.
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void amp_finish(__global const float *partials, const uint ng, __global float *state, const float clip) {
  __local float sh[WG], shc[WG];
  __local int bad[WG];
  const size_t lid = get_local_id(0);
  float acc = 0.0f, comp = 0.0f;
  int nf = 0;
  for (uint i = lid; i < ng; i += WG) {
    const float y = partials[2 * i] - comp, t = acc + y;
    comp = (t - acc) - y;
    acc = t;
    nf |= partials[2 * i + 1] != 0.0f;
  }
  group_reduce(sh, shc, bad, lid, acc, comp, nf);
  if (lid != 0) return;
  __global int *w = (__global int *)state;
  const float scale = state[A_SCALE];
  const float norm = sqrt(sh[0] - shc[0]);
  // clip_grad_norm_: g *= min(1, clip / (norm + 1e-6)); 1/scale times that is exact (a power of two)
  float c = clip > 0.0f ? clip / (norm + 1e-6f) : 1.0f;
  if (!(c < 1.0f) && !isnan(c)) c = 1.0f;
  const int enabled = w[A_ENABLED];
  const int found = enabled && bad[0];
  state[A_COEF] = c * (1.0f / scale);
  state[A_NORM] = norm;
  w[A_FOUND_INF] = found;
  w[A_NONFINITE] = bad[0];
  w[A_STEPS] += 1;
  if (!enabled) return;
  // GradScaler.update (_amp_update_scale_): back off and restart the count on inf/NaN, else grow
  // after growth_interval clean steps in a row (only to a finite scale)
  if (found) {
    state[A_SCALE] = scale * state[A_BACKOFF];
    w[A_TRACKER] = 0;
    w[A_SKIPPED] += 1;
  } else {
    const int ok = w[A_TRACKER] + 1;
    if (ok == w[A_INTERVAL]) {
      const float ns = scale * state[A_GROWTH];
      if (isfinite(ns)) state[A_SCALE] = ns;
      w[A_TRACKER] = 0;
    } else {
      w[A_TRACKER] = ok;
    }
  }
}

// torch.optim.SGD(nesterov=True) on the unscaled, clipped gradient grad * state[A_COEF]; a step with
// found_inf leaves parameters and momentum as they are (GradScaler.step skips optimizer.step).
__kernel void sgd_nesterov_amp(__global float *p, __global const float *grad, __global float *buf,
                               __global const float *state, const float lr, const float mu, const float wd,
                               const ulong n) {
  const size_t i = get_global_id(0);
  if (i >= n || ((__global const int *)state)[A_FOUND_INF]) return;
  const float pv = p[i];
  const float g = grad[i] * state[A_COEF] + wd * pv;
  const float b = mu * buf[i] + g;
  buf[i] = b;
  p[i] = pv - lr * (g + mu * b);
}
