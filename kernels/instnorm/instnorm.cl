// Instance normalisation (InstanceNorm with affine, biased variance) over rows of S = prod(spatial)
// contiguous floats, one row per (n, c). GPU path: work-groups over (chunk, row), work-items striding
// by WG so consecutive items touch consecutive addresses (coalesced), local-memory tree reductions.
// CPU path (*_rows): one work-item per row with explicit float8 vectors (PoCL does not vectorise
// the barrier kernels well: they run ~45x slower).
// Statistics use sums shifted by the row's first element (robust when |mean| >> std).
// -DHALF=1: x, y, dy and dx are 16-bit storage (common/storage.cl); statistics, weights and sums stay float.
#include "common/storage.cl"
#ifndef WG
#define WG 256
#endif

// -DACT_BWD=1: the backward takes the gradient of the LeakyReLU that followed the norm (ya = its output,
// slope) and applies LeakyReLU's backward as it reads dy, so no separate pass writes that gradient
// (lrelu_bwd's rule: ya > 0 ? dy : dy * slope, computed in float). Without it ya and slope are unused.
#ifndef ACT_BWD
#define ACT_BWD 0
#endif
// ya as 8 scalar loads under HALF: PoCL 3.1 crashed on a second vload_half8 per iteration from rows that
// are not 16-byte aligned (S % 8 != 0, more than one row)
#if HALF
#define ya8(i, p) ((float8)(vload_half(8 * (i), p), vload_half(8 * (i) + 1, p), vload_half(8 * (i) + 2, p), \
                            vload_half(8 * (i) + 3, p), vload_half(8 * (i) + 4, p), vload_half(8 * (i) + 5, p), \
                            vload_half(8 * (i) + 6, p), vload_half(8 * (i) + 7, p)))
#else
#define ya8(i, p) LDA8(i, p)
#endif
static inline float lrelu_g(float g, float ya, float slope) { return ya > 0.0f ? g : g * slope; }
static inline float8 lrelu_g8(float8 g, float8 ya, float slope) { return select(g * slope, g, ya > 0.0f); }
#if ACT_BWD
#define LDG(gp, ap, i) lrelu_g(LDA(gp, i), LDA(ap, i), slope)
#define LDG8(i, gp, ap) lrelu_g8(LDA8(i, gp), ya8((i), (ap)), slope)
#else
#define LDG(gp, ap, i) LDA(gp, i)
#define LDG8(i, gp, ap) LDA8(i, gp)
#endif

static inline void reduce2(__local float *a, __local float *b, size_t lid) {
  for (size_t s = WG / 2; s > 0; s >>= 1) {
    if (lid < s) { a[lid] += a[lid + s]; b[lid] += b[lid + s]; }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
}

// GPU path: each (n, c) row is split into CH chunks of `per` elements, one work-group per
// (chunk, row), so rows x chunks fill the device even when N * C is small (2 x 32 rows of 64^3).
// Pass 1 writes per-chunk sums; pass 2 combines the CH partials of its row and transforms its chunk.
// part layout per row: [k (the row's first element, the shift), (s1, s2) x CH].

// global: (CH * WG, rows)
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void instnorm_stats(__global const ACT *x, __global float *part, const ulong S, const ulong per) {
  __local float sa[WG], sb[WG];
  size_t row = get_group_id(1), ch = get_group_id(0), CH = get_num_groups(0), lid = get_local_id(0);
  __global const ACT *xr = x + row * S;
  float k = LDA(xr, 0);
  size_t s0 = ch * per, s1 = min((size_t)S, s0 + (size_t)per);
  float a1 = 0.0f, a2 = 0.0f;
  for (size_t i = s0 + lid; i < s1; i += WG) {
    float d = LDA(xr, i) - k;
    a1 += d;
    a2 = fma(d, d, a2);
  }
  sa[lid] = a1; sb[lid] = a2;
  barrier(CLK_LOCAL_MEM_FENCE);
  reduce2(sa, sb, lid);
  __global float *pr = part + row * (2 * CH + 1);
  if (lid == 0) {
    if (ch == 0) pr[0] = k;
    pr[1 + 2 * ch] = sa[0];
    pr[2 + 2 * ch] = sb[0];
  }
}

// y may alias x (the shift comes from part, not from x). act: 0 none, 1 leaky relu with slope.
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void instnorm_apply(__global const ACT *x, __global const float *w, __global const float *b, const float eps,
                    const int act, const float slope, __global ACT *y, __global float *mean_out,
                    __global float *invstd_out, __global const float *part, const ulong S, const ulong C,
                    const ulong per) {
  __local float sa[WG], sb[WG];
  size_t row = get_group_id(1), ch = get_group_id(0), CH = get_num_groups(0), lid = get_local_id(0);
  __global const float *pr = part + row * (2 * CH + 1);
  float a1 = 0.0f, a2 = 0.0f;
  for (size_t j = lid; j < CH; j += WG) { a1 += pr[1 + 2 * j]; a2 += pr[2 + 2 * j]; }
  sa[lid] = a1; sb[lid] = a2;
  barrier(CLK_LOCAL_MEM_FENCE);
  reduce2(sa, sb, lid);
  float k = pr[0];
  float inv_n = 1.0f / (float)S;
  float m1 = sa[0] * inv_n;
  float var = fmax(sb[0] * inv_n - m1 * m1, 0.0f);
  float invstd = 1.0f / sqrt(var + eps);
  if (ch == 0 && lid == 0) { mean_out[row] = k + m1; invstd_out[row] = invstd; }
  size_t c = row % C;
  float sc = w[c] * invstd, bc = b[c];
  __global const ACT *xr = x + row * S;
  __global ACT *yr = y + row * S;
  size_t s0 = ch * per, s1 = min((size_t)S, s0 + (size_t)per);
  // (x - k) is exact for x near k (Sterbenz); subtracting the small m1 afterwards avoids the
  // cancellation of x * sc + (b - mean * sc) when |mean| >> std.
  for (size_t i = s0 + lid; i < s1; i += WG) {
    float v = fma((LDA(xr, i) - k) - m1, sc, bc);
    STA((act && !(v > 0.0f)) ? v * slope : v, yr, i);
  }
}

// Backward pass 1: per-chunk sums of dy and dy * xhat. part layout per row: (s1, s2) x CH.
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void instnorm_bwd_stats(__global const ACT *x, __global const float *mean, __global const float *invstd,
                        __global const ACT *dy, __global float *part, const ulong S, const ulong per,
                        __global const ACT *ya, const float slope) {
  __local float sa[WG], sb[WG];
  size_t row = get_group_id(1), ch = get_group_id(0), CH = get_num_groups(0), lid = get_local_id(0);
  __global const ACT *xr = x + row * S;
  __global const ACT *gr = dy + row * S, *ar = ya + row * S;
  float mu = mean[row], is = invstd[row];
  size_t s0 = ch * per, s1 = min((size_t)S, s0 + (size_t)per);
  float a1 = 0.0f, a2 = 0.0f;
  for (size_t i = s0 + lid; i < s1; i += WG) {
    float g = LDG(gr, ar, i);
    a1 += g;
    a2 = fma(g, (LDA(xr, i) - mu) * is, a2);
  }
  sa[lid] = a1; sb[lid] = a2;
  barrier(CLK_LOCAL_MEM_FENCE);
  reduce2(sa, sb, lid);
  if (lid == 0) { part[(row * CH + ch) * 2] = sa[0]; part[(row * CH + ch) * 2 + 1] = sb[0]; }
}

// Backward pass 2: row sums into wb[row * 2 + {0, 1}] (chunk 0), then, when want_dx,
// dx = w * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)) on this chunk. dx may alias dy.
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void instnorm_bwd_apply(__global const ACT *x, __global const float *w, __global const float *mean,
                        __global const float *invstd, __global const ACT *dy, __global ACT *dx,
                        const int want_dx, __global float *wb, __global const float *part, const ulong S,
                        const ulong C, const ulong per, __global const ACT *ya, const float slope) {
  __local float sa[WG], sb[WG];
  size_t row = get_group_id(1), ch = get_group_id(0), CH = get_num_groups(0), lid = get_local_id(0);
  float a1 = 0.0f, a2 = 0.0f;
  for (size_t j = lid; j < CH; j += WG) { a1 += part[(row * CH + j) * 2]; a2 += part[(row * CH + j) * 2 + 1]; }
  sa[lid] = a1; sb[lid] = a2;
  barrier(CLK_LOCAL_MEM_FENCE);
  reduce2(sa, sb, lid);
  float sum_dy = sa[0], sum_dyx = sb[0];
  if (ch == 0 && lid == 0) { wb[row * 2] = sum_dy; wb[row * 2 + 1] = sum_dyx; }
  if (!want_dx) return;
  float mu = mean[row], is = invstd[row];
  float inv_n = 1.0f / (float)S;
  float a = w[row % C] * is, mdy = sum_dy * inv_n, mdx = sum_dyx * inv_n;
  __global const ACT *xr = x + row * S;
  __global const ACT *gr = dy + row * S, *ar = ya + row * S;
  __global ACT *dr = dx + row * S;
  size_t s0 = ch * per, s1 = min((size_t)S, s0 + (size_t)per);
  for (size_t i = s0 + lid; i < s1; i += WG) {
    float xh = (LDA(xr, i) - mu) * is;
    STA(a * (LDG(gr, ar, i) - mdy - xh * mdx), dr, i);
  }
}

// dweight[c] (+)= sum_n wb[(n C + c) 2 + 1], dbias[c] (+)= sum_n wb[(n C + c) 2]; one item per c.
__kernel void instnorm_wb(__global const float *wb, __global float *dw, __global float *db, const int want_w,
                          const int want_b, const int accumulate, const ulong N, const ulong C) {
  size_t c = get_global_id(0);
  if (c >= C) return;
  float gw = 0.0f, gb = 0.0f;
  for (size_t n = 0; n < N; n++) { gb += wb[(n * C + c) * 2]; gw += wb[(n * C + c) * 2 + 1]; }
  if (want_w) dw[c] = accumulate ? dw[c] + gw : gw;
  if (want_b) db[c] = accumulate ? db[c] + gb : gb;
}

// ---- CPU variants (PoCL): one work-item per row, explicit float8 vectors, no barriers. ----
// Sums are accumulated in blocks of 64 vectors before joining the running total, so a row of
// millions of elements keeps ~1e-6 relative accuracy.
#define IN_BLK 64

static inline float hsum8(float8 v) {
  float4 a = v.lo + v.hi;
  float2 b = a.lo + a.hi;
  return b.x + b.y;
}

__kernel void instnorm_fwd_rows(__global const ACT *x, __global const float *w, __global const float *b,
                                const float eps, const int act, const float slope, __global ACT *y,
                                __global float *mean_out, __global float *invstd_out, const ulong S, const ulong C,
                                const ulong rows) {
  size_t row = get_global_id(0);
  if (row >= rows) return;
  __global const ACT *xr = x + row * S;
  __global ACT *yr = y + row * S;
  float k = LDA(xr, 0);
  size_t S8 = S / 8;
  float8 t1 = 0.0f, t2 = 0.0f;
  for (size_t i0 = 0; i0 < S8; i0 += IN_BLK) {
    size_t i1 = min(S8, i0 + IN_BLK);
    float8 a1 = 0.0f, a2 = 0.0f;
    for (size_t i = i0; i < i1; i++) {
      float8 d = LDA8(i, xr) - k;
      a1 += d;
      a2 = fma(d, d, a2);
    }
    t1 += a1; t2 += a2;
  }
  float s1 = hsum8(t1), s2 = hsum8(t2);
  for (size_t i = S8 * 8; i < S; i++) { float d = LDA(xr, i) - k; s1 += d; s2 = fma(d, d, s2); }
  float inv_n = 1.0f / (float)S;
  float m1 = s1 * inv_n;
  float var = fmax(s2 * inv_n - m1 * m1, 0.0f);
  float invstd = 1.0f / sqrt(var + eps);
  mean_out[row] = k + m1;
  invstd_out[row] = invstd;
  size_t c = row % C;
  float sc = w[c] * invstd, bc = b[c], km = k + 0.0f;
  for (size_t i = 0; i < S8; i++) {
    float8 v = fma((LDA8(i, xr) - km) - m1, sc, bc);
    if (act) v = select(v * slope, v, v > 0.0f);
    STA8(v, i, yr);
  }
  for (size_t i = S8 * 8; i < S; i++) {
    float v = fma((LDA(xr, i) - k) - m1, sc, bc);
    STA((act && !(v > 0.0f)) ? v * slope : v, yr, i);
  }
}

__kernel void instnorm_bwd_rows(__global const ACT *x, __global const float *w, __global const float *mean,
                                __global const float *invstd, __global const ACT *dy, __global ACT *dx,
                                const int want_dx, __global float *wb, const ulong S, const ulong C,
                                const ulong rows, __global const ACT *ya, const float slope) {
  size_t row = get_global_id(0);
  if (row >= rows) return;
  __global const ACT *xr = x + row * S;
  __global const ACT *gr = dy + row * S, *ar = ya + row * S;
  float mu = mean[row], is = invstd[row];
  size_t S8 = S / 8;
  float8 t1 = 0.0f, t2 = 0.0f;
  for (size_t i0 = 0; i0 < S8; i0 += IN_BLK) {
    size_t i1 = min(S8, i0 + IN_BLK);
    float8 a1 = 0.0f, a2 = 0.0f;
    for (size_t i = i0; i < i1; i++) {
      float8 g = LDG8(i, gr, ar);
      a1 += g;
      a2 = fma(g, (LDA8(i, xr) - mu) * is, a2);
    }
    t1 += a1; t2 += a2;
  }
  float s1 = hsum8(t1), s2 = hsum8(t2);
  for (size_t i = S8 * 8; i < S; i++) { float g = LDG(gr, ar, i); s1 += g; s2 = fma(g, (LDA(xr, i) - mu) * is, s2); }
  wb[row * 2] = s1;
  wb[row * 2 + 1] = s2;
  if (!want_dx) return;
  float inv_n = 1.0f / (float)S;
  float a = w[row % C] * is, mdy = s1 * inv_n, mdx = s2 * inv_n;
  __global ACT *dr = dx + row * S;
  for (size_t i = 0; i < S8; i++) {
    float8 xh = (LDA8(i, xr) - mu) * is;
    STA8(a * (LDG8(i, gr, ar) - mdy - xh * mdx), i, dr);
  }
  for (size_t i = S8 * 8; i < S; i++) STA(a * (LDG(gr, ar, i) - mdy - (LDA(xr, i) - mu) * is * mdx), dr, i);
}
