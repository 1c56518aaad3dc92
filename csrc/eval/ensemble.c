#include "eval/ensemble.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


/* dst[i] (+)= (float)src[i] */
static lu_status accumulate(float *dst, const lu_tensor *t, int64_t n, int first) {
  switch (t->dtype) {
  case LU_F32: {
    const float *s = t->host;
    if (first) memcpy(dst, s, (size_t)n * sizeof(float));
    else for (int64_t i = 0; i < n; i++) dst[i] += s[i];
    break;
  }
  case LU_F16: {
    const uint16_t *s = t->host;
    if (first) for (int64_t i = 0; i < n; i++) dst[i] = lu_half_to_float(s[i]);
    else for (int64_t i = 0; i < n; i++) dst[i] += lu_half_to_float(s[i]);
    break;
  }
  case LU_F64: {
    const double *s = t->host;
    if (first) for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i];
    else for (int64_t i = 0; i < n; i++) dst[i] += (float)s[i];
    break;
  }
  default: return lu_fail(LU_EUNSUPPORTED, "ensemble: probabilities of dtype %s (expected f16/f32/f64)", lu_dtype_name(t->dtype));
  }
  return LU_OK;
}

lu_status lu_eval_average(int n, const lu_tensor *const *probs, lu_tensor **out) {
  char a[64], b[64];
  if (n < 1) return lu_fail(LU_EARG, "ensemble: nothing to average");
  for (int i = 0; i < n; i++) {
    if (!probs[i]->host) return lu_fail(LU_EARG, "ensemble: probabilities %d are not on the host", i + 1);
    if (probs[i]->ndim != probs[0]->ndim || memcmp(probs[i]->shape, probs[0]->shape, sizeof(int64_t) * (size_t)probs[0]->ndim))
      return lu_fail(LU_EARG, "ensemble: probabilities of shape %s and %s differ",
                     lu_shape_str(probs[0]->ndim, probs[0]->shape, a, sizeof a), lu_shape_str(probs[i]->ndim, probs[i]->shape, b, sizeof b));
  }
  lu_tensor *t = NULL;
  LU_TRY(lu_tensor_new_host(&t, LU_F32, probs[0]->ndim, probs[0]->shape));
  int64_t m = lu_tensor_numel(t);
  float *d = t->host;
  for (int i = 0; i < n; i++) {
    lu_status st = accumulate(d, probs[i], m, i == 0);
    if (st != LU_OK) { lu_tensor_free(t); return st; }
  }
  const float k = (float)n;
  if (n > 1) for (int64_t i = 0; i < m; i++) d[i] /= k;
  *out = t;
  return LU_OK;
}

lu_status lu_eval_probs_to_seg(const lu_tensor *probs, const int32_t *order, int n_order, lu_tensor **out) {
  if (!probs->host || probs->ndim < 2) return lu_fail(LU_EARG, "probs_to_seg: expected a host tensor (C, ...)");
  int64_t c = probs->shape[0];
  int64_t m = lu_shape_numel(probs->ndim - 1, probs->shape + 1);
  if (order && n_order != c) return lu_fail(LU_EARG, "probs_to_seg: %d regions in regions_class_order but %lld channels", n_order, (long long)c);
  int maxv = (int)c - 1;
  if (order) { maxv = 0; for (int i = 0; i < n_order; i++) if (order[i] > maxv) maxv = order[i]; }
  lu_dtype dt = maxv < 256 ? LU_U8 : LU_U16;
  lu_tensor *f = NULL;
  if (probs->dtype == LU_F32) f = (lu_tensor *)probs;
  else LU_TRY(lu_eval_average(1, &probs, &f));
  lu_tensor *t = NULL;
  lu_status st = lu_tensor_new_host(&t, dt, probs->ndim - 1, probs->shape + 1);
  if (st != LU_OK) { if (f != probs) lu_tensor_free(f); return st; }
  const float *p = f->host;
  for (int64_t i = 0; i < m; i++) {
    int v = 0;
    if (order) {
      for (int64_t k = 0; k < c; k++) if (p[k * m + i] > 0.5f) v = order[k];
    } else {
      float best = p[i];
      for (int64_t k = 1; k < c; k++) if (p[k * m + i] > best) { best = p[k * m + i]; v = (int)k; }
    }
    if (dt == LU_U8) ((uint8_t *)t->host)[i] = (uint8_t)v;
    else ((uint16_t *)t->host)[i] = (uint16_t)v;
  }
  if (f != probs) lu_tensor_free(f);
  *out = t;
  return LU_OK;
}
