/* Sliding-window inference helpers (see sliding.h). */
#include "infer/sliding.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cl/program.h"
#include "core/threads.h"

/* ------------------------------------------------------------------------------------------------ steps */

static int64_t round_half_even(double v) {
  double f = floor(v);
  double d = v - f;
  if (d > 0.5) return (int64_t)f + 1;
  if (d < 0.5) return (int64_t)f;
  int64_t i = (int64_t)f;
  return (i % 2 == 0) ? i : i + 1;
}

lu_status lu_sw_steps(int64_t size, int64_t patch, double step, int64_t *starts, int cap, int *n) {
  if (patch < 1 || size < patch)
    return lu_fail(LU_EARG, "sliding window: image size %lld must be >= patch size %lld >= 1", (long long)size,
                   (long long)patch);
  if (!(step > 0.0 && step <= 1.0)) return lu_fail(LU_EARG, "sliding window: step size %g must be in (0, 1]", step);
  double target = (double)patch * step;
  int64_t ns = (int64_t)ceil((double)(size - patch) / target) + 1;
  if (ns > (1 << 24)) return lu_fail(LU_EARG, "sliding window: %lld steps along one axis", (long long)ns);
  *n = (int)ns;
  double actual = ns > 1 ? (double)(size - patch) / (double)(ns - 1) : 0.0;
  for (int64_t i = 0; i < ns && i < cap; i++) starts[i] = ns > 1 ? round_half_even(actual * (double)i) : 0;
  return LU_OK;
}

/* ------------------------------------------------------------------------------------------------ gaussian */

float lu_round_to_half(float v) {
  uint32_t x;
  memcpy(&x, &v, 4);
  uint32_t sign = x & 0x80000000u, ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return v;
  float a = fabsf(v);
  float r;
  if (a >= 65520.0f) {
    r = INFINITY;
  } else if (a < 6.103515625e-05f) { /* half subnormals: multiples of 2^-24 */
    const float q = 5.9604644775390625e-08f;
    r = nearbyintf(a / q) * q;
  } else {
    uint32_t lsb = (ax >> 13) & 1u;
    uint32_t b = (ax + 0xfffu + lsb) & ~0x1fffu;
    memcpy(&r, &b, 4);
  }
  return sign ? -r : r;
}

/* scipy.ndimage._gaussian_kernel1d(sigma, 0, radius) with radius = int(4 * sigma + 0.5) */
static double *kernel1d(double sigma, int *radius) {
  int rad = (int)(4.0 * sigma + 0.5);
  double *w = malloc(sizeof(double) * (size_t)(2 * rad + 1));
  if (!w) return NULL;
  double s2 = sigma * sigma, sum = 0.0;
  for (int i = -rad; i <= rad; i++) {
    w[i + rad] = exp(-0.5 / s2 * (double)i * (double)i);
    sum += w[i + rad];
  }
  for (int i = 0; i < 2 * rad + 1; i++) w[i] /= sum;
  *radius = rad;
  return w;
}

lu_status lu_sw_gaussian(int nd, const int64_t *patch, double sigma_scale, double value_scaling, lu_tensor **out) {
  if (nd != 2 && nd != 3) return lu_fail(LU_EARG, "gaussian: %d axes (expected 2 or 3)", nd);
  int64_t p3[3] = {1, 1, 1};
  for (int a = 0; a < nd; a++) {
    if (patch[a] < 1 || patch[a] > 4096) return lu_fail(LU_EARG, "gaussian: patch size %lld", (long long)patch[a]);
    p3[3 - nd + a] = patch[a];
  }
  /* 1-D profiles per axis: value at index i is w[i - c + radius] within the radius, else 0 */
  double *prof[3] = {NULL, NULL, NULL};
  lu_status st = LU_OK;
  for (int a = 0; a < 3 && st == LU_OK; a++) {
    prof[a] = calloc((size_t)p3[a], sizeof(double));
    if (!prof[a]) { st = lu_fail(LU_ENOMEM, "gaussian: no memory"); break; }
    if (a < 3 - nd) { prof[a][0] = 1.0; continue; }
    int rad;
    double *w = kernel1d((double)p3[a] * sigma_scale, &rad);
    if (!w) { st = lu_fail(LU_ENOMEM, "gaussian: no memory"); break; }
    int64_t c = p3[a] / 2;
    for (int64_t i = 0; i < p3[a]; i++) {
      int64_t d = i - c;
      if (d >= -rad && d <= rad) prof[a][i] = w[d + rad];
    }
    free(w);
  }
  lu_tensor *t = NULL;
  if (st == LU_OK) st = lu_tensor_new_host(&t, LU_F32, 3, p3);
  if (st == LU_OK) {
    float *g = t->host;
    int64_t cz = p3[0] / 2, cy = p3[1] / 2, cx = p3[2] / 2;
    /* scipy filters axis by axis: value = ((1 * w0) * w1) * w2, exact products of one non-zero tap */
    double mx = (prof[0][cz] * prof[1][cy]) * prof[2][cx];
    double div = mx / value_scaling;
    float minnz = INFINITY;
    for (int64_t z = 0; z < p3[0]; z++)
      for (int64_t y = 0; y < p3[1]; y++)
        for (int64_t x = 0; x < p3[2]; x++) {
          double v = (prof[0][z] * prof[1][y]) * prof[2][x] / div;
          float h = lu_round_to_half((float)v);
          g[(z * p3[1] + y) * p3[2] + x] = h;
          if (h != 0.0f && h < minnz) minnz = h;
        }
    int64_t n = p3[0] * p3[1] * p3[2];
    for (int64_t i = 0; i < n; i++)
      if (g[i] == 0.0f) g[i] = minnz;
    *out = t;
  }
  for (int a = 0; a < 3; a++) free(prof[a]);
  return st;
}

/* ------------------------------------------------------------------------------------------------ windows */

static lu_status check_vol(const lu_tensor *t, const char *what) {
  if (!t || !t->host) return lu_fail(LU_EARG, "%s: expected a host tensor", what);
  if (t->dtype != LU_F32) return lu_fail(LU_EARG, "%s: expected f32, got %s", what, lu_dtype_name(t->dtype));
  if (t->ndim != 4) return lu_fail(LU_EARG, "%s: expected (C, Z, Y, X), got %d dims", what, t->ndim);
  return LU_OK;
}

lu_status lu_sw_extract(const lu_tensor *data, const int64_t pad_before[3], const int64_t start[3],
                        const int64_t patch[3], int flip, lu_tensor **out) {
  LU_TRY(check_vol(data, "sliding extract: data"));
  for (int a = 0; a < 3; a++)
    if (patch[a] < 1) return lu_fail(LU_EARG, "sliding extract: patch size %lld", (long long)patch[a]);
  int64_t shp[5] = {1, data->shape[0], patch[0], patch[1], patch[2]};
  lu_tensor *t;
  LU_TRY(lu_tensor_new_host(&t, LU_F32, 5, shp));
  lu_status s = lu_sw_extract_into(data, pad_before, start, patch, flip, t, 0);
  if (s != LU_OK) {
    lu_tensor_free(t);
    return s;
  }
  *out = t;
  return LU_OK;
}

lu_status lu_sw_extract_into(const lu_tensor *data, const int64_t pad_before[3], const int64_t start[3],
                             const int64_t patch[3], int flip, lu_tensor *dst_t, int64_t slot) {
  LU_TRY(check_vol(data, "sliding extract: data"));
  for (int a = 0; a < 3; a++)
    if (patch[a] < 1) return lu_fail(LU_EARG, "sliding extract: patch size %lld", (long long)patch[a]);
  int64_t C = data->shape[0], Z = data->shape[1], Y = data->shape[2], X = data->shape[3];
  int64_t one = C * patch[0] * patch[1] * patch[2];
  if (!dst_t || !dst_t->host || dst_t->dtype != LU_F32 || dst_t->ndim < 1 || slot < 0 || slot >= dst_t->shape[0] ||
      lu_tensor_numel(dst_t) != dst_t->shape[0] * one)
    return lu_fail(LU_EARG, "sliding extract: the batch must be a host f32 tensor of (B, %lld, patch), slot %lld < B",
                   (long long)C, (long long)slot);
  const float *src = data->host;
  float *dst = (float *)dst_t->host + slot * one;
  int64_t oz = start[0] - pad_before[0], oy = start[1] - pad_before[1], ox = start[2] - pad_before[2];
  for (int64_t c = 0; c < C; c++)
    for (int64_t z = 0; z < patch[0]; z++) {
      int64_t sz = oz + ((flip & 1) ? patch[0] - 1 - z : z);
      if (sz < 0 || sz >= Z) continue;
      for (int64_t y = 0; y < patch[1]; y++) {
        int64_t sy = oy + ((flip & 2) ? patch[1] - 1 - y : y);
        if (sy < 0 || sy >= Y) continue;
        const float *row = src + ((c * Z + sz) * Y + sy) * X;
        float *o = dst + ((c * patch[0] + z) * patch[1] + y) * patch[2];
        if (flip & 4) {
          for (int64_t x = 0; x < patch[2]; x++) {
            int64_t sx = ox + patch[2] - 1 - x;
            if (sx >= 0 && sx < X) o[x] = row[sx];
          }
        } else {
          for (int64_t x = 0; x < patch[2]; x++) {
            int64_t sx = ox + x;
            if (sx >= 0 && sx < X) o[x] = row[sx];
          }
        }
      }
    }
  return LU_OK;
}



/* element i of an F32 or F16 host array */
static inline float ldv(const void *p, int f16, int64_t i) {
  return f16 ? lu_half_to_float(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}
/* stores v (rounded to float16 when round_half or the array is F16) */
static inline void stv(void *p, int f16, int64_t i, float v, int round_half) {
  if (f16) ((uint16_t *)p)[i] = lu_float_to_half(v);
  else ((float *)p)[i] = round_half ? lu_round_to_half(v) : v;
}

static lu_status check_f32_or_f16(const lu_tensor *t, const char *what) {
  if (!t || !t->host || (t->dtype != LU_F32 && t->dtype != LU_F16))
    return lu_fail(LU_EARG, "%s: expected a host f32 or f16 tensor", what);
  return LU_OK;
}

/* lg: (1, K, patch), or with batched (B, K, patch) */
static lu_status check_logits(const lu_tensor *lg, int64_t K, const int64_t patch[3], int batched, const char *what) {
  int64_t pn = patch[0] * patch[1] * patch[2];
  if (!lg || !lg->host || (lg->dtype != LU_F32 && lg->dtype != LU_F16))
    return lu_fail(LU_EARG, "%s: model output must be a host f32/f16 tensor", what);
  if (lg->ndim < 2 || lg->shape[0] < 1 || (!batched && lg->shape[0] != 1) || (K > 0 && lg->shape[1] != K) ||
      lu_tensor_numel(lg) != lg->shape[0] * lg->shape[1] * pn) {
    char b1[64], b2[64];
    int64_t want[5] = {1, K > 0 ? K : lg->shape[1], patch[0], patch[1], patch[2]};
    return lu_fail(LU_EARG, "%s: model output has shape %s, expected %s", what,
                   lu_shape_str(lg->ndim, lg->shape, b1, sizeof b1), lu_shape_str(5, want, b2, sizeof b2));
  }
  return LU_OK;
}

/* ------------------------------------------------------------------------------------------------ on the device */

#define SLIDING_FILE "infer/sliding.cl"

static int64_t patch_numel(const int64_t patch[3]) { return patch[0] * patch[1] * patch[2]; }

static lu_status window_add_device(lu_tensor *win, const lu_tensor *lg, const int64_t patch[3], int flip, int first,
                                   int64_t slot) {
  if (win->dtype != LU_F32 || lg->dtype != LU_F32 || !lg->buf || lg->dev != win->dev)
    return lu_fail(LU_EARG, "window add: on the device, window and model output must be f32 on one device");
  int64_t n = lu_tensor_numel(win), B = lg->ndim > 0 ? lg->shape[0] : 1;
  if (slot < 0 || slot >= B || lu_tensor_numel(lg) != B * n || n % patch_numel(patch))
    return lu_fail(LU_EARG, "window add: window has %lld elements, model output %lld (window %lld of the batch)",
                   (long long)n, (long long)lu_tensor_numel(lg), (long long)slot);
  if (n == 0) return LU_OK;
  cl_kernel k;
  LU_TRY(lu_kernel_get(win->dev, SLIDING_FILE, "window_add", "", &k));
  cl_mem mw = win->buf, ml = lg->buf;
  int p0 = (int)patch[0], p1 = (int)patch[1], p2 = (int)patch[2];
  cl_long off = (cl_long)(slot * n);
  LU_CL_CHECK(LU_ARG(k, 0, mw) | LU_ARG(k, 1, ml) | LU_ARG(k, 2, off) | LU_ARG(k, 3, p0) | LU_ARG(k, 4, p1) |
                  LU_ARG(k, 5, p2) | LU_ARG(k, 6, flip) | LU_ARG(k, 7, first), "window_add args");
  size_t gl = (size_t)n;
  return lu_launch(win->dev, k, 1, &gl, NULL, "window_add");
}

static lu_status accumulate_device(lu_tensor *acc, lu_tensor *wsum, const lu_tensor *win, const lu_tensor *gauss,
                                   const int64_t start[3], const int64_t patch[3], float divisor, int half) {
  lu_device *dev = acc->dev;
  if (acc->ndim != 4 || (acc->dtype != LU_F32 && acc->dtype != LU_F16))
    return lu_fail(LU_EARG, "sliding accumulate: accumulator must be (K, Z, Y, X) f32 or f16");
  int64_t K = acc->shape[0], P[3] = {acc->shape[1], acc->shape[2], acc->shape[3]}, pn = patch_numel(patch);
  for (int a = 0; a < 3; a++)
    if (patch[a] < 1 || start[a] < 0 || start[a] + patch[a] > P[a])
      return lu_fail(LU_EARG, "sliding accumulate: window [%lld, %lld) outside axis %d of size %lld",
                     (long long)start[a], (long long)(start[a] + patch[a]), a, (long long)P[a]);
  if (!win->buf || win->dev != dev || win->dtype != LU_F32 || lu_tensor_numel(win) != K * pn)
    return lu_fail(LU_EARG, "sliding accumulate: window must be f32 (K, patch) on the accumulator's device");
  if (gauss && (!gauss->buf || gauss->dev != dev || gauss->dtype != LU_F32 || lu_tensor_numel(gauss) != pn))
    return lu_fail(LU_EARG, "sliding accumulate: importance map must be f32 with the patch's size on the device");
  if (wsum && (!wsum->buf || wsum->dev != dev || wsum->dtype != acc->dtype || lu_tensor_numel(wsum) != P[0] * P[1] * P[2]))
    return lu_fail(LU_EARG, "sliding accumulate: weight map must match the accumulator's dtype, device and spatial shape");
  /* the kernel multiplies by 1 / divisor: equal to the host's division only for powers of two
   * (the mirror counts 1, 2, 4, 8) */
  if (!(divisor > 0.0f) || frexpf(divisor, &(int){0}) != 0.5f)
    return lu_fail(LU_EARG, "sliding accumulate: divisor %g must be a power of two on the device", (double)divisor);
  if (K * pn == 0) return LU_OK;
  cl_kernel k;
  LU_TRY(lu_kernel_get(dev, SLIDING_FILE, "accumulate", acc->dtype == LU_F16 ? "-DACC16=1" : "-DACC16=0", &k));
  cl_mem ma = acc->buf, mws = wsum ? wsum->buf : acc->buf, mwin = win->buf, mg = gauss ? gauss->buf : win->buf;
  int has_w = wsum != NULL, has_g = gauss != NULL, hr = half != 0;
  int P0 = (int)P[0], P1 = (int)P[1], P2 = (int)P[2], p0 = (int)patch[0], p1 = (int)patch[1], p2 = (int)patch[2];
  int s0 = (int)start[0], s1 = (int)start[1], s2 = (int)start[2];
  float inv = 1.0f / divisor;
  LU_CL_CHECK(LU_ARG(k, 0, ma) | LU_ARG(k, 1, mws) | LU_ARG(k, 2, has_w) | LU_ARG(k, 3, mwin) | LU_ARG(k, 4, mg) |
                  LU_ARG(k, 5, has_g) | LU_ARG(k, 6, P0) | LU_ARG(k, 7, P1) | LU_ARG(k, 8, P2) | LU_ARG(k, 9, p0) |
                  LU_ARG(k, 10, p1) | LU_ARG(k, 11, p2) | LU_ARG(k, 12, s0) | LU_ARG(k, 13, s1) | LU_ARG(k, 14, s2) |
                  LU_ARG(k, 15, inv) | LU_ARG(k, 16, hr), "accumulate args");
  size_t gl = (size_t)(K * pn);
  return lu_launch(dev, k, 1, &gl, NULL, "sliding accumulate");
}

lu_status lu_sw_window_add(lu_tensor *win, const lu_tensor *logits, const int64_t patch[3], int flip, int first,
                           int64_t slot) {
  if (win && win->buf) return window_add_device(win, logits, patch, flip, first, slot);
  if (!win || !win->host || win->dtype != LU_F32) return lu_fail(LU_EARG, "window add: window must be host f32");
  LU_TRY(check_logits(logits, 0, patch, 1, "window add"));
  int64_t K = logits->shape[1], one = lu_tensor_numel(logits) / logits->shape[0];
  if (slot < 0 || slot >= logits->shape[0] || lu_tensor_numel(win) != one)
    return lu_fail(LU_EARG, "window add: window has %lld elements, model output %lld (window %lld of the batch)",
                   (long long)lu_tensor_numel(win), (long long)lu_tensor_numel(logits), (long long)slot);
  float *w = win->host;
  const float *l32 = logits->dtype == LU_F32 ? (const float *)logits->host + slot * one : NULL;
  const uint16_t *l16 = logits->dtype == LU_F16 ? (const uint16_t *)logits->host + slot * one : NULL;
  const int64_t *p = patch;
  for (int64_t k = 0; k < K; k++)
    for (int64_t z = 0; z < p[0]; z++) {
      int64_t lz = (flip & 1) ? p[0] - 1 - z : z;
      for (int64_t y = 0; y < p[1]; y++) {
        int64_t ly = (flip & 2) ? p[1] - 1 - y : y;
        float *wrow = w + ((k * p[0] + z) * p[1] + y) * p[2];
        int64_t lbase = ((k * p[0] + lz) * p[1] + ly) * p[2];
        for (int64_t x = 0; x < p[2]; x++) {
          int64_t lx = (flip & 4) ? p[2] - 1 - x : x;
          float v = l32 ? l32[lbase + lx] : lu_half_to_float(l16[lbase + lx]);
          wrow[x] = first ? v : wrow[x] + v;
        }
      }
    }
  return LU_OK;
}

typedef struct acc_ctx {
  void *acc;
  int acc16;
  const float *lg32;
  const uint16_t *lg16;
  const float *g;
  int64_t P[3], p[3], s[3];
  float divisor;
  int half;
} acc_ctx;

static void acc_worker(void *vctx, int64_t lo, int64_t hi) {
  acc_ctx *c = vctx;
  const int64_t *P = c->P, *p = c->p, *s = c->s;
  int64_t pn = p[0] * p[1] * p[2], Pn = P[0] * P[1] * P[2];
  for (int64_t k = lo; k < hi; k++) {
    for (int64_t z = 0; z < p[0]; z++)
      for (int64_t y = 0; y < p[1]; y++) {
        int64_t arow = k * Pn + ((s[0] + z) * P[1] + s[1] + y) * P[2] + s[2];
        const float *grow = c->g ? c->g + (z * p[1] + y) * p[2] : NULL;
        int64_t lbase = k * pn + (z * p[1] + y) * p[2];
        for (int64_t x = 0; x < p[2]; x++) {
          float v = c->lg32 ? c->lg32[lbase + x] : lu_half_to_float(c->lg16[lbase + x]);
          if (c->divisor != 1.0f) v /= c->divisor;
          if (grow) v *= grow[x];
          stv(c->acc, c->acc16, arow + x, ldv(c->acc, c->acc16, arow + x) + v, c->half);
        }
      }
  }
}

lu_status lu_sw_accumulate(lu_tensor *acc, lu_tensor *wsum, const lu_tensor *win, const lu_tensor *gauss,
                           const int64_t start[3], const int64_t patch[3], float divisor, int half, int threads) {
  if (acc && acc->buf) return accumulate_device(acc, wsum, win, gauss, start, patch, divisor, half);
  LU_TRY(check_f32_or_f16(acc, "sliding accumulate: accumulator"));
  if (acc->ndim != 4) return lu_fail(LU_EARG, "sliding accumulate: accumulator must be (K, Z, Y, X)");
  int64_t K = acc->shape[0];
  int64_t P[3] = {acc->shape[1], acc->shape[2], acc->shape[3]};
  int64_t pn = patch[0] * patch[1] * patch[2];
  for (int a = 0; a < 3; a++)
    if (patch[a] < 1 || start[a] < 0 || start[a] + patch[a] > P[a])
      return lu_fail(LU_EARG, "sliding accumulate: window [%lld, %lld) outside axis %d of size %lld",
                     (long long)start[a], (long long)(start[a] + patch[a]), a, (long long)P[a]);
  LU_TRY(check_logits(win, K, patch, 0, "sliding accumulate"));
  if (gauss && (gauss->dtype != LU_F32 || lu_tensor_numel(gauss) != pn || !gauss->host))
    return lu_fail(LU_EARG, "sliding accumulate: importance map must be f32 with the patch's size");
  if (wsum && ((wsum->dtype != LU_F32 && wsum->dtype != LU_F16) || !wsum->host ||
               lu_tensor_numel(wsum) != P[0] * P[1] * P[2]))
    return lu_fail(LU_EARG, "sliding accumulate: weight map must be f32/f16 of the accumulator's spatial shape");
  if (!(divisor > 0.0f)) return lu_fail(LU_EARG, "sliding accumulate: divisor %g", (double)divisor);
  acc_ctx c = {.acc = acc->host,
               .acc16 = acc->dtype == LU_F16,
               .lg32 = win->dtype == LU_F32 ? win->host : NULL,
               .lg16 = win->dtype == LU_F16 ? win->host : NULL,
               .g = gauss ? gauss->host : NULL,
               .divisor = divisor,
               .half = half};
  for (int a = 0; a < 3; a++) { c.P[a] = P[a]; c.p[a] = patch[a]; c.s[a] = start[a]; }
  LU_TRY(lu_parallel_for(threads, K, acc_worker, &c));
  if (wsum) {
    int w16 = wsum->dtype == LU_F16;
    const float *g = gauss ? gauss->host : NULL;
    for (int64_t z = 0; z < patch[0]; z++)
      for (int64_t y = 0; y < patch[1]; y++) {
        int64_t row = ((start[0] + z) * P[1] + start[1] + y) * P[2] + start[2];
        for (int64_t x = 0; x < patch[2]; x++) {
          float r = ldv(wsum->host, w16, row + x) + (g ? g[(z * patch[1] + y) * patch[2] + x] : 1.0f);
          stv(wsum->host, w16, row + x, r, half);
        }
      }
  }
  return LU_OK;
}

static lu_status check_f32(const lu_tensor *t, const char *what) {
  if (!t || !t->host || t->dtype != LU_F32) return lu_fail(LU_EARG, "%s: expected a host f32 tensor", what);
  return LU_OK;
}

lu_status lu_sw_add(lu_tensor *a, const lu_tensor *b, int half) {
  LU_TRY(check_f32_or_f16(a, "add"));
  LU_TRY(check_f32_or_f16(b, "add"));
  int64_t n = lu_tensor_numel(a);
  if (lu_tensor_numel(b) != n) return lu_fail(LU_EARG, "add: sizes %lld and %lld differ", (long long)n,
                                              (long long)lu_tensor_numel(b));
  int a16 = a->dtype == LU_F16, b16 = b->dtype == LU_F16;
  for (int64_t i = 0; i < n; i++) stv(a->host, a16, i, ldv(a->host, a16, i) + ldv(b->host, b16, i), half);
  return LU_OK;
}

lu_status lu_sw_scale(lu_tensor *a, float s, int half) {
  LU_TRY(check_f32_or_f16(a, "scale"));
  int64_t n = lu_tensor_numel(a);
  int a16 = a->dtype == LU_F16;
  for (int64_t i = 0; i < n; i++) stv(a->host, a16, i, ldv(a->host, a16, i) * s, half);
  return LU_OK;
}

lu_status lu_sw_round_half(lu_tensor *a) {
  LU_TRY(check_f32(a, "round_half"));
  int64_t n = lu_tensor_numel(a);
  float *x = a->host;
  for (int64_t i = 0; i < n; i++) x[i] = lu_round_to_half(x[i]);
  return LU_OK;
}

lu_status lu_sw_finalize(const lu_tensor *acc, const lu_tensor *wsum, const int64_t pad_before[3],
                         const int64_t shape[3], int half, int only, lu_tensor **out) {
  LU_TRY(check_f32_or_f16(acc, "sliding finalize: accumulator"));
  LU_TRY(check_f32_or_f16(wsum, "sliding finalize: weight map"));
  if (acc->ndim != 4) return lu_fail(LU_EARG, "sliding finalize: accumulator must be (K, Z, Y, X)");
  int64_t K = acc->shape[0], P[3] = {acc->shape[1], acc->shape[2], acc->shape[3]};
  for (int a = 0; a < 3; a++)
    if (pad_before[a] < 0 || pad_before[a] + shape[a] > P[a])
      return lu_fail(LU_EARG, "sliding finalize: region outside the accumulator on axis %d", a);
  if (lu_tensor_numel(wsum) != P[0] * P[1] * P[2])
    return lu_fail(LU_EARG, "sliding finalize: weight map must have the accumulator's spatial shape");
  if (only >= K) return lu_fail(LU_EARG, "sliding finalize: class %d of %lld", only, (long long)K);
  int64_t k0 = only < 0 ? 0 : only, k1 = only < 0 ? K : only + 1;
  int64_t shp[4] = {k1 - k0, shape[0], shape[1], shape[2]};
  lu_tensor *t;
  int a16 = acc->dtype == LU_F16, w16 = wsum->dtype == LU_F16;
  LU_TRY(lu_tensor_new_host(&t, acc->dtype, 4, shp));
  int bad = 0;
  int64_t Pn = P[0] * P[1] * P[2];
  for (int64_t k = k0; k < k1; k++)
    for (int64_t z = 0; z < shape[0]; z++)
      for (int64_t y = 0; y < shape[1]; y++) {
        int64_t src = ((z + pad_before[0]) * P[1] + y + pad_before[1]) * P[2] + pad_before[2];
        int64_t dst = (((k - k0) * shape[0] + z) * shape[1] + y) * shape[2];
        for (int64_t x = 0; x < shape[2]; x++) {
          float v = ldv(acc->host, a16, k * Pn + src + x) / ldv(wsum->host, w16, src + x);
          stv(t->host, a16, dst + x, v, half);
          v = ldv(t->host, a16, dst + x);
          if (isinf(v) || isnan(v)) bad = 1;
        }
      }
  if (bad) {
    lu_tensor_free(t);
    return lu_fail(LU_EARG, "sliding finalize: encountered inf/nan in the predicted logits: the network returned "
                            "non-finite values for finite input (a diverged model: see its training log), or the "
                            "float16 accumulators overflowed (predict with half = false)");
  }
  *out = t;
  return LU_OK;
}

lu_status lu_sw_shift_rows(lu_tensor *t, int64_t n) {
  LU_TRY(check_f32_or_f16(t, "sliding shift"));
  if (t->ndim != 3 && t->ndim != 4) return lu_fail(LU_EARG, "sliding shift: expected (Z, Y, X) or (K, Z, Y, X)");
  int a = t->ndim - 3;
  int64_t K = a ? t->shape[0] : 1, Z = t->shape[a], row = t->shape[a + 1] * t->shape[a + 2];
  if (n < 0 || n > Z) return lu_fail(LU_EARG, "sliding shift: %lld rows of %lld", (long long)n, (long long)Z);
  size_t es = t->dtype == LU_F16 ? 2 : 4;
  char *h = t->host;
  for (int64_t k = 0; k < K; k++) {
    char *base = h + (size_t)(k * Z * row) * es;
    memmove(base, base + (size_t)(n * row) * es, (size_t)((Z - n) * row) * es);
    memset(base + (size_t)((Z - n) * row) * es, 0, (size_t)(n * row) * es);
  }
  return LU_OK;
}
