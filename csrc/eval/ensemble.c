/* Probability averaging (see ensemble.h). */
#include "eval/ensemble.h"

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
