// nnunetv2's DC_and_CE_loss (labels, softmax) and DC_and_BCE_loss (regions, sigmoid) of
// nnunetv2/training/loss/compound_losses.py, fused with the gradient of the logits. Three passes
// over (N, C, S):
//   1. probs_*: p = softmax/sigmoid(z) into P (the dlogits buffer), CE/BCE partial sums per group.
//   2. dice_stats: per (n, c, chunk) partial sums of I = sum p y m, P = sum p m, G = sum y m.
//   (loss_finish on the device, or the host in double: Dice per group, loss, per-(n, c) gradient coefficients)
//   3. grad_*: P <- dloss/dz in place.
// Options: -DWG=<work-group size> -DVW=<1|8 voxels per work-item; S % VW == 0> -DTGT=<int|uchar|float>
// -DHALF=1 (float16 logits, common/storage.cl's ACT; probabilities and the gradient stay float32)
// (ignore handling and label/region mode are runtime arguments, so few programs get built). VW 8 (CPU devices) uses float8 so PoCL emits vector exp/log.
#ifndef WG
#define WG 256
#endif
#ifndef TGT
#define TGT int
#endif
#include "common/vw.cl"
#include "common/storage.cl"
// the logits (ACT storage) read as vf
#if VW == 1
#define LOADZ(p, i) LDA(p, i)
#else
#define LOADZ(p, i) LDA8(0, (p) + (i))
#endif

static inline void reduce2(__local float *a, __local float *b, size_t lid) {
  for (size_t s = WG / 2; s > 0; s >>= 1) {
    if (lid < s) { a[lid] += a[lid + s]; b[lid] += b[lid + s]; }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
}

// Mask of the label-mode target: 0 where the voxel holds the ignore label.
static inline vf label_mask(vf t, int ignore_label, int has_ignore) {
  return has_ignore ? select(VB(1.0f), VB(0.0f), t == VB((float)ignore_label)) : VB(1.0f);
}

// Mask of the region-mode target: its last channel (index C) is the ignore mask.
static inline vf region_mask(__global const TGT *tp, size_t C, size_t S, int has_ignore) {
  return has_ignore ? select(VB(0.0f), VB(1.0f), LOADT(tp, C * S) < VB(0.5f)) : VB(1.0f);
}

// global: (round_up(S / VW, WG), N); partial[(n * G0 + g) * 2 + {0, 1}] = (sum of -log p_t, count).
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void probs_softmax(__global const ACT *z, __global const TGT *tgt, __global float *P, __global float *partial,
                   const ulong C, const ulong S, const int ignore_label, const int has_ignore) {
  __local float sa[WG], sb[WG];
  size_t s = get_global_id(0) * VW, n = get_global_id(1), lid = get_local_id(0);
  float ce = 0.0f, cnt = 0.0f;
  if (s < S) {
    __global const ACT *zp = z + n * C * S + s;
    __global float *pp = P + n * C * S + s;
    vf t = LOADT(tgt, n * S + s);
    vf m = VB(-INFINITY), zt = VB(0.0f), valid = VB(0.0f);
    for (size_t c = 0; c < C; c++) {
      vf v = LOADZ(zp, c * S), hit = ONE_IF(t == VB((float)c));
      m = fmax(m, v);
      zt = fma(hit, v, zt);
      valid += hit;
    }
    vf sum = VB(0.0f);
    for (size_t c = 0; c < C; c++) sum += exp(LOADZ(zp, c * S) - m);
    vf inv = VB(1.0f) / sum;
    for (size_t c = 0; c < C; c++) STOREF(exp(LOADZ(zp, c * S) - m) * inv, pp, c * S);
    vf mask = label_mask(t, ignore_label, has_ignore);
    ce = HSUM((m + log(sum) - zt) * valid * mask);
    cnt = HSUM(mask);
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
void probs_sigmoid(__global const ACT *z, __global const TGT *tgt, __global float *P, __global float *partial,
                   const ulong C, const ulong S, const ulong TC, const int has_ignore) {
  __local float sa[WG], sb[WG];
  size_t s = get_global_id(0) * VW, n = get_global_id(1), lid = get_local_id(0);
  float bce = 0.0f, cnt = 0.0f;
  if (s < S) {
    __global const ACT *zp = z + n * C * S + s;
    __global float *pp = P + n * C * S + s;
    __global const TGT *tp = tgt + n * TC * S + s;
    vf m = region_mask(tp, C, S, has_ignore), acc = VB(0.0f);
    for (size_t c = 0; c < C; c++) {
      vf v = LOADZ(zp, c * S), y = LOADT(tp, c * S);
      STOREF(VB(1.0f) / (VB(1.0f) + exp(-v)), pp, c * S);
      acc += fmax(v, VB(0.0f)) - v * y + log1p(exp(-fabs(v)));
    }
    bce = HSUM(acc * m);
    cnt = HSUM(m);
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

// global: (CH * WG, C, N) with CH chunks per row, each `per` voxels (a multiple of VW);
// partial[((n C + c) CH + chunk) 3 + {I, P, G}].
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void dice_stats(__global const float *P, __global const TGT *tgt, __global float *partial, const ulong C,
                const ulong S, const ulong TC, const int ignore_label, const ulong per, const int has_ignore,
                const int regions) {
  __local float sa[WG], sb[WG], sc[WG];
  size_t lid = get_local_id(0), chunk = get_group_id(0), CH = get_num_groups(0);
  size_t c = get_global_id(1), n = get_global_id(2);
  size_t s0 = chunk * per, s1 = min((size_t)S, s0 + (size_t)per);
  __global const float *pp = P + (n * C + c) * S;
  vf I = VB(0.0f), Ps = VB(0.0f), G = VB(0.0f);
  for (size_t s = s0 + lid * VW; s < s1; s += WG * VW) {
    vf y, m;
    if (regions) {
      __global const TGT *tp = tgt + n * TC * S + s;
      y = LOADT(tp, c * S);
      m = region_mask(tp, C, S, has_ignore);
    } else {
      vf t = LOADT(tgt, n * S + s);
      y = ONE_IF(t == VB((float)c));
      m = label_mask(t, ignore_label, has_ignore);
    }
    vf p = LOADF(pp, s) * m;
    I = fma(p, y, I);
    Ps += p;
    G = fma(y, m, G);
  }
  sa[lid] = HSUM(I); sb[lid] = HSUM(Ps); sc[lid] = HSUM(G);
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

// GSCALE: the gradient times gs[0] (the loss scaler's scale, a power of two: exact), an extra last argument
#ifndef GSCALE
#define GSCALE 0
#endif
#if GSCALE
#define GS_ARG , __global const float *gs
#define GS_MUL(v) ((v) * VB(gs[0]))
#else
#define GS_ARG
#define GS_MUL(v) (v)
#endif

// Label mode gradient, in place on P (holding softmax probabilities). coef[(n C + c) 2 + {A, B}]:
// dLdice/dp_c = m (A y_c + B); ce_k = coef[cek] = scale w_ce / (non-ignored count). global: (round_up(S / VW), N).
__kernel void grad_softmax(__global float *P, __global const TGT *tgt, __global const float *coef, const ulong cek,
                           const ulong C, const ulong S, const int ignore_label, const int has_ignore GS_ARG) {
  size_t s = get_global_id(0) * VW, n = get_global_id(1);
  if (s >= S) return;
  const float ce_k = coef[cek];
  vf t = LOADT(tgt, n * S + s);
  vf m = label_mask(t, ignore_label, has_ignore);
  __global float *pp = P + n * C * S + s;
  __global const float *cf = coef + n * C * 2;
  vf acc = VB(0.0f);
  for (size_t c = 0; c < C; c++) {
    vf y = ONE_IF(t == VB((float)c));
    acc = fma(LOADF(pp, c * S), m * fma(VB(cf[2 * c]), y, VB(cf[2 * c + 1])), acc);
  }
  for (size_t c = 0; c < C; c++) {
    vf y = ONE_IF(t == VB((float)c));
    vf p = LOADF(pp, c * S);
    vf g = m * fma(VB(cf[2 * c]), y, VB(cf[2 * c + 1]));
    STOREF(GS_MUL(ce_k * m * (p - y) + p * (g - acc)), pp, c * S);
  }
}

// Region mode gradient, VW elements of one (n, c) row per item. global: (round_up(S / VW), C, N).
__kernel void grad_sigmoid(__global float *P, __global const TGT *tgt, __global const float *coef, const ulong cek,
                           const ulong C, const ulong S, const ulong TC, const int has_ignore GS_ARG) {
  size_t s = get_global_id(0) * VW, c = get_global_id(1), n = get_global_id(2);
  if (s >= S) return;
  const float ce_k = coef[cek];
  __global const TGT *tp = tgt + n * TC * S + s;
  vf m = region_mask(tp, C, S, has_ignore);
  vf y = LOADT(tp, c * S);
  __global float *pp = P + (n * C + c) * S + s;
  vf p = LOADF(pp, 0);
  vf g = m * fma(VB(coef[(n * C + c) * 2]), y, VB(coef[(n * C + c) * 2 + 1]));
  STOREF(GS_MUL(ce_k * m * (p - y) + p * (VB(1.0f) - p) * g), pp, 0);
}

// The finish of passes 1-2 on the device (one work-group), so a training step never waits for the host:
// the CE/BCE mean, the Dice per group, the gradient coefficients coef[(n C + c) 2 + {A, B}] (0 for a
// background left out of Dice), ce_k in coef[2 N C], and acc[0] += scale * loss. The same formulas as the
// host's finish in csrc/ops/loss.c; sums in double where the device has it.
#ifdef cl_khr_fp64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
typedef double real;
#else
typedef float real;
#endif

static real wg_sum(__local real *a, real v, size_t lid) {
  a[lid] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (size_t st = WG / 2; st > 0; st >>= 1) {
    if (lid < st) a[lid] += a[lid + st];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  real r = a[0];
  barrier(CLK_LOCAL_MEM_FENCE); // a is reused by the next sum
  return r;
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void loss_finish(__global const float *part1, const ulong n1, __global const float *part2, const ulong N,
                 const ulong C, const ulong CH, const int regions, const int has_ignore, const int do_bg,
                 const int batch_dice, const ulong NCS, const float scale, const float w_ce, const float w_dice,
                 const float smooth, __global float *coef, __global float *acc) {
  __local real la[WG];
  size_t lid = get_local_id(0);
  real ce_part = 0, cnt_part = 0;
  for (size_t i = lid; i < n1; i += WG) { ce_part += part1[2 * i]; cnt_part += part1[2 * i + 1]; }
  real ce_sum = wg_sum(la, ce_part, lid), cnt = wg_sum(la, cnt_part, lid);
  real den = regions ? (has_ignore ? fmax(cnt, (real)1e-8) : (real)NCS) : cnt;
  real ce = den > 0 ? ce_sum / den : 0;
  real ce_k = den > 0 ? (real)scale * (real)w_ce / den : 0;
  size_t c0 = do_bg ? 0 : 1, ncls = C - c0, ngroups = batch_dice ? ncls : N * ncls;
  real kw = ngroups > 0 ? (real)scale * (real)w_dice / (real)ngroups : 0;
  if (c0) for (size_t n = lid; n < N; n += WG) { coef[n * C * 2] = 0.0f; coef[n * C * 2 + 1] = 0.0f; }
  real dsum = 0;
  for (size_t g = lid; g < ngroups; g += WG) {
    size_t ci = c0 + (batch_dice ? g : g % ncls);
    size_t n0 = batch_dice ? 0 : g / ncls, n1g = batch_dice ? N : n0 + 1;
    real si = 0, sp = 0, sg = 0;
    for (size_t n = n0; n < n1g; n++) {
      real a = 0, b = 0, c = 0;
      for (size_t h = 0; h < CH; h++) {
        size_t o = ((n * C + ci) * CH + h) * 3;
        a += part2[o]; b += part2[o + 1]; c += part2[o + 2];
      }
      si += a; sp += b; sg += c;
    }
    real d = sg + sp + (real)smooth;
    int clipped = d < (real)1e-8;
    if (clipped) d = (real)1e-8;
    real dc = (2 * si + (real)smooth) / d;
    dsum += dc;
    float A = (float)(-kw * 2 / d), B = clipped ? 0.0f : (float)(kw * dc / d);
    for (size_t n = n0; n < n1g; n++) { coef[(n * C + ci) * 2] = A; coef[(n * C + ci) * 2 + 1] = B; }
  }
  real dice_sum = wg_sum(la, dsum, lid);
  if (lid == 0) {
    real dice = ngroups > 0 ? -dice_sum / (real)ngroups : 0;
    coef[N * C * 2] = (float)ce_k;
    acc[0] += (float)((real)scale * ((real)w_ce * ce + (real)w_dice * dice));
  }
}
