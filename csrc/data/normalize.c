/* nnU-Net v2 normalisation schemes (see normalize.h). Means and standard deviations are accumulated in
 * double (numpy uses float32 pairwise sums: the results agree to ~1e-7 relative). */
#include "data/normalize.h"

#include <math.h>
#include <string.h>

static const char *const names[] = {"ZScoreNormalization", "CTNormalization", "RescaleTo01Normalization",
                                    "RGBTo01Normalization", "NoNormalization"};

lu_status lu_norm_parse(const char *name, lu_norm_scheme *out) {
  for (int i = 0; i < 5; i++)
    if (strcmp(name, names[i]) == 0) {
      *out = (lu_norm_scheme)i;
      return LU_OK;
    }
  return lu_fail(LU_EARG, "normalization scheme '%s' is not one of ZScoreNormalization, CTNormalization, "
                          "RescaleTo01Normalization, RGBTo01Normalization, NoNormalization", name);
}

const char *lu_norm_name(lu_norm_scheme s) { return (unsigned)s < 5 ? names[s] : "?"; }

#define EPS 1e-8

lu_status lu_normalize(float *x, int64_t n, lu_norm_scheme scheme, int use_mask, const int16_t *seg,
                       const lu_norm_props *p) {
  switch (scheme) {
  case LU_NORM_NONE: return LU_OK;
  case LU_NORM_CT: {
    if (!p) return lu_fail(LU_EARG, "CTNormalization needs the foreground intensity properties");
    /* float32 arithmetic as numpy (python scalars are cast to the array's float32) */
    float lo = (float)p->percentile_00_5, hi = (float)p->percentile_99_5, mean = (float)p->mean;
    float sd = (float)(p->std > EPS ? p->std : EPS);
    for (int64_t i = 0; i < n; i++) {
      float v = x[i] < lo ? lo : (x[i] > hi ? hi : x[i]);
      x[i] = (v - mean) / sd;
    }
    return LU_OK;
  }
  case LU_NORM_ZSCORE: {
    if (use_mask && !seg) return lu_fail(LU_EARG, "ZScoreNormalization with use_mask_for_norm needs the mask (seg)");
    double s = 0.0, s2 = 0.0;
    int64_t cnt = 0;
    for (int64_t i = 0; i < n; i++)
      if (!use_mask || seg[i] >= 0) {
        s += x[i];
        cnt++;
      }
    if (cnt == 0) return LU_OK; /* numpy would give NaN; nothing to normalise */
    double mean = s / (double)cnt;
    for (int64_t i = 0; i < n; i++)
      if (!use_mask || seg[i] >= 0) {
        double dv = x[i] - mean;
        s2 += dv * dv;
      }
    double sd = sqrt(s2 / (double)cnt);
    float fm = (float)mean, fs = (float)(sd > EPS ? sd : EPS);
    for (int64_t i = 0; i < n; i++)
      if (!use_mask || seg[i] >= 0) x[i] = (x[i] - fm) / fs;
    return LU_OK;
  }
  case LU_NORM_RESCALE01: {
    if (n == 0) return LU_OK;
    float mn = x[0];
    for (int64_t i = 1; i < n; i++) mn = x[i] < mn ? x[i] : mn;
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
      x[i] -= mn;
      mx = x[i] > mx ? x[i] : mx;
    }
    float d = mx > (float)EPS ? mx : (float)EPS;
    for (int64_t i = 0; i < n; i++) x[i] /= d;
    return LU_OK;
  }
  case LU_NORM_RGB01: {
    for (int64_t i = 0; i < n; i++)
      if (!(x[i] >= 0.0f && x[i] <= 255.0f))
        return lu_fail(LU_EARG, "RGBTo01Normalization: value %g at voxel %lld is outside [0, 255]; RGB images "
                                "must be 8-bit", (double)x[i], (long long)i);
    for (int64_t i = 0; i < n; i++) x[i] /= 255.0f;
    return LU_OK;
  }
  }
  return lu_fail(LU_EARG, "normalize: unknown scheme %d", (int)scheme);
}
