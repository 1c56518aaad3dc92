// nnU-Net's DC_and_CE_loss (labels, softmax) and DC_and_BCE_loss (regions, sigmoid), fused with the
// gradient of the logits. Three passes over (N, C, S):
//   1. probs_*: p = softmax/sigmoid(z) into P (the dlogits buffer), CE/BCE partial sums per group.
//   2. dice_stats: per (n, c, chunk) partial sums of I = sum p y m, P = sum p m, G = sum y m.
//   (host: Dice per group in double, loss, per-(n, c) gradient coefficients)
//   3. grad_*: P <- dloss/dz in place.
// TGT is the target element type (-DTGT=int or float). Options: -DWG=.. -DHAS_IGNORE -DREGIONS.
#ifndef WG
#define WG 256
#endif
#ifndef TGT
#define TGT int
#endif

static inline void reduce2(__local float *a, __local float *b, size_t lid) {
  for (size_t s = WG / 2; s > 0; s >>= 1) {
    if (lid < s) { a[lid] += a[lid + s]; b[lid] += b[lid + s]; }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
}

// Label of a target voxel and its mask (1 unless it is the ignore label).
static inline int label_at(__global const TGT *t, size_t i) { return (int)t[i]; }

// global: (round_up(S, WG), N); partial[(n * G0 + g) * 2 + {0, 1}] = (sum of -log p_t, count).
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void probs_softmax(__global const float *z, __global const TGT *tgt, __global float *P, __global float *partial,
                   const ulong C, const ulong S, const int ignore_label) {
  __local float sa[WG], sb[WG];
  size_t s = get_global_id(0), n = get_global_id(1), lid = get_local_id(0);
  float ce = 0.0f, cnt = 0.0f;
  if (s < S) {
    __global const float *zp = z + n * C * S + s;
    __global float *pp = P + n * C * S + s;
    float m = -INFINITY;
    for (size_t c = 0; c < C; c++) m = fmax(m, zp[c * S]);
    float sum = 0.0f;
    for (size_t c = 0; c < C; c++) sum += exp(zp[c * S] - m);
    float inv = 1.0f / sum;
    for (size_t c = 0; c < C; c++) pp[c * S] = exp(zp[c * S] - m) * inv;
    int t = label_at(tgt, n * S + s);
#ifdef HAS_IGNORE
    if (t != ignore_label)
#endif
    {
      if (t >= 0 && (size_t)t < C) ce = (m + log(sum)) - zp[(size_t)t * S];
      cnt = 1.0f;
    }
  }
  sa[lid] = ce; sb[lid] = cnt;
  barrier(CLK_LOCAL_MEM_FENCE);
  reduce2(sa, sb, lid);
  if (lid == 0) {
    size_t g = get_group_id(0), G0 = get_num_groups(0);
    partial[(n * G0 + g) * 2] = sa[0];
    partial[(n * G0 + g) * 2 + 1] = sb[0];
  }
}

// Regions: C = number of region channels of z; the target has C (+1 ignore) channels (TC).
// partial = (sum over voxels and regions of bce * m, sum over voxels of m).
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void probs_sigmoid(__global const float *z, __global const TGT *tgt, __global float *P, __global float *partial,
                   const ulong C, const ulong S, const ulong TC) {
  __local float sa[WG], sb[WG];
  size_t s = get_global_id(0), n = get_global_id(1), lid = get_local_id(0);
  float bce = 0.0f, cnt = 0.0f;
  if (s < S) {
    __global const float *zp = z + n * C * S + s;
    __global float *pp = P + n * C * S + s;
    __global const TGT *tp = tgt + n * TC * S + s;
    float m = 1.0f;
#ifdef HAS_IGNORE
    m = (float)tp[C * S] < 0.5f ? 1.0f : 0.0f;
#endif
    for (size_t c = 0; c < C; c++) {
      float v = zp[c * S], y = (float)tp[c * S];
      pp[c * S] = 1.0f / (1.0f + exp(-v));
      bce += fmax(v, 0.0f) - v * y + log1p(exp(-fabs(v)));
    }
    bce *= m;
    cnt = m;
  }
  sa[lid] = bce; sb[lid] = cnt;
  barrier(CLK_LOCAL_MEM_FENCE);
  reduce2(sa, sb, lid);
  if (lid == 0) {
    size_t g = get_group_id(0), G0 = get_num_groups(0);
    partial[(n * G0 + g) * 2] = sa[0];
    partial[(n * G0 + g) * 2 + 1] = sb[0];
  }
}

static inline void target_ym(__global const TGT *tgt, size_t n, size_t c, size_t s, size_t C, size_t S, size_t TC,
                             int ignore_label, float *y, float *m) {
#ifdef REGIONS
  __global const TGT *tp = tgt + n * TC * S + s;
  *y = (float)tp[c * S];
  *m = 1.0f;
#ifdef HAS_IGNORE
  *m = (float)tp[C * S] < 0.5f ? 1.0f : 0.0f;
#endif
#else
  int t = (int)tgt[n * S + s];
  *m = 1.0f;
#ifdef HAS_IGNORE
  if (t == ignore_label) *m = 0.0f;
#endif
  *y = (t == (int)c) ? 1.0f : 0.0f;
#endif
}

// global: (CH * WG, C, N) with CH chunks per row; partial[((n C + c) CH + chunk) 3 + {I, P, G}].
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void dice_stats(__global const float *P, __global const TGT *tgt, __global float *partial, const ulong C,
                const ulong S, const ulong TC, const int ignore_label) {
  __local float sa[WG], sb[WG], sc[WG];
  size_t lid = get_local_id(0), chunk = get_group_id(0), CH = get_num_groups(0);
  size_t c = get_global_id(1), n = get_global_id(2);
  size_t per = (S + CH - 1) / CH, s0 = chunk * per, s1 = min(S, s0 + per);
  __global const float *pp = P + (n * C + c) * S;
  float I = 0.0f, Ps = 0.0f, G = 0.0f;
  for (size_t s = s0 + lid; s < s1; s += WG) {
    float y, m;
    target_ym(tgt, n, c, s, C, S, TC, ignore_label, &y, &m);
    float p = pp[s] * m;
    I = fma(p, y, I);
    Ps += p;
    G = fma(y, m, G);
  }
  sa[lid] = I; sb[lid] = Ps; sc[lid] = G;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (size_t st = WG / 2; st > 0; st >>= 1) {
    if (lid < st) { sa[lid] += sa[lid + st]; sb[lid] += sb[lid + st]; sc[lid] += sc[lid + st]; }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (lid == 0) {
    size_t o = ((n * C + c) * CH + chunk) * 3;
    partial[o] = sa[0]; partial[o + 1] = sb[0]; partial[o + 2] = sc[0];
  }
}

// Label mode gradient, in place on P (holding softmax probabilities). coef[(n C + c) 2 + {A, B}]:
// dLdice/dp_c = m (A y_c + B); ce_k = scale w_ce / (non-ignored count). global: (round_up(S), N).
__kernel void grad_softmax(__global float *P, __global const TGT *tgt, __global const float *coef, const float ce_k,
                           const ulong C, const ulong S, const int ignore_label) {
  size_t s = get_global_id(0), n = get_global_id(1);
  if (s >= S) return;
  int t = (int)tgt[n * S + s];
  float m = 1.0f;
#ifdef HAS_IGNORE
  if (t == ignore_label) m = 0.0f;
#endif
  __global float *pp = P + n * C * S + s;
  __global const float *cf = coef + n * C * 2;
  float acc = 0.0f;
  for (size_t c = 0; c < C; c++) {
    float y = (t == (int)c) ? 1.0f : 0.0f;
    acc = fma(pp[c * S], m * fma(cf[2 * c], y, cf[2 * c + 1]), acc);
  }
  for (size_t c = 0; c < C; c++) {
    float y = (t == (int)c) ? 1.0f : 0.0f;
    float p = pp[c * S];
    float g = m * fma(cf[2 * c], y, cf[2 * c + 1]);
    pp[c * S] = ce_k * m * (p - y) + p * (g - acc);
  }
}

// Region mode gradient, one item per (n, c, s) element. global: (round_up(S), C, N).
__kernel void grad_sigmoid(__global float *P, __global const TGT *tgt, __global const float *coef, const float ce_k,
                           const ulong C, const ulong S, const ulong TC) {
  size_t s = get_global_id(0), c = get_global_id(1), n = get_global_id(2);
  if (s >= S) return;
  __global const TGT *tp = tgt + n * TC * S + s;
  float m = 1.0f;
#ifdef HAS_IGNORE
  m = (float)tp[C * S] < 0.5f ? 1.0f : 0.0f;
#endif
  float y = (float)tp[c * S];
  size_t i = (n * C + c) * S + s;
  float p = P[i];
  float g = m * fma(coef[(n * C + c) * 2], y, coef[(n * C + c) * 2 + 1]);
  P[i] = ce_k * m * (p - y) + p * (1.0f - p) * g;
}
