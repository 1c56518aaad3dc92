/* Value checks of images and label maps (see values.h). */
#include "data/values.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Calls BODY with v (a double) for every element of a host tensor, whatever its dtype. */
#define LU_FOR_VALUES(t, BODY)                                                                           \
  do {                                                                                                  \
    int64_t n_ = lu_tensor_numel(t);                                                                    \
    switch ((t)->dtype) {                                                                               \
      case LU_F32: { const float *p_ = (t)->host; for (int64_t i = 0; i < n_; i++) { double v = p_[i]; BODY; } } break; \
      case LU_F64: { const double *p_ = (t)->host; for (int64_t i = 0; i < n_; i++) { double v = p_[i]; BODY; } } break; \
      case LU_U8: { const uint8_t *p_ = (t)->host; for (int64_t i = 0; i < n_; i++) { double v = p_[i]; BODY; } } break; \
      case LU_I8: { const int8_t *p_ = (t)->host; for (int64_t i = 0; i < n_; i++) { double v = p_[i]; BODY; } } break; \
      case LU_I16: { const int16_t *p_ = (t)->host; for (int64_t i = 0; i < n_; i++) { double v = p_[i]; BODY; } } break; \
      case LU_U16: { const uint16_t *p_ = (t)->host; for (int64_t i = 0; i < n_; i++) { double v = p_[i]; BODY; } } break; \
      case LU_I32: { const int32_t *p_ = (t)->host; for (int64_t i = 0; i < n_; i++) { double v = p_[i]; BODY; } } break; \
      case LU_U32: { const uint32_t *p_ = (t)->host; for (int64_t i = 0; i < n_; i++) { double v = p_[i]; BODY; } } break; \
      case LU_I64: { const int64_t *p_ = (t)->host; for (int64_t i = 0; i < n_; i++) { double v = (double)p_[i]; BODY; } } break; \
      default: break; /* f16 is refused before */                                                      \
    }                                                                                                   \
  } while (0)

static lu_status check_host(const lu_tensor *t, const char *what) {
  if (!t || !t->host) return lu_fail(LU_EARG, "%s: value check needs a host tensor", what);
  return LU_OK;
}

static void note(lu_value_find *f, lu_value_problem p, int64_t i, double v) {
  if (f->problem != p) { f->problem = p; f->first = i; f->value = v; f->count = 0; }
  f->count++;
}

lu_status lu_values_finite(const lu_tensor *t, lu_value_find *out) {
  memset(out, 0, sizeof *out);
  LU_TRY(check_host(t, "value check"));
  if (t->dtype == LU_F16) return lu_fail(LU_EUNSUPPORTED, "value check: dtype f16 not supported");
  if (t->dtype != LU_F32 && t->dtype != LU_F64) return LU_OK; /* integers are always finite */
  LU_FOR_VALUES(t, if (!isfinite(v)) note(out, LU_VALUES_NONFINITE, i, v));
  return LU_OK;
}

lu_status lu_values_labels(const lu_tensor *t, const int64_t *allowed, int nallowed, lu_value_find *out) {
  memset(out, 0, sizeof *out);
  LU_TRY(check_host(t, "value check"));
  /* the allowed labels as a bitmap over [lo, hi] (nnU-Net's labels are consecutive, so it stays small) */
  int64_t lo = 0, hi = -1;
  for (int k = 0; k < nallowed; k++) {
    if (k == 0 || allowed[k] < lo) lo = allowed[k];
    if (k == 0 || allowed[k] > hi) hi = allowed[k];
  }
  if (nallowed > 0 && hi - lo > (1 << 24)) return lu_fail(LU_EARG, "value check: allowed labels span over 2^24");
  unsigned char *ok = calloc((size_t)(hi - lo + 1 > 0 ? hi - lo + 1 : 1), 1);
  if (!ok) return lu_fail(LU_ENOMEM, "value check: out of memory");
  for (int k = 0; k < nallowed; k++) ok[allowed[k] - lo] = 1;
  /* one record per kind, so the most basic kind is reported even when it comes later in the file */
  lu_value_find nonint = {0}, bad = {0};
#define LU_LABEL_BODY                                                                             \
  if (!isfinite(v)) note(out, LU_VALUES_NONFINITE, i, v);                                        \
  else if (v != floor(v)) note(&nonint, LU_VALUES_NONINTEGER, i, v);                             \
  else if (nallowed >= 0 && (v < (double)lo || v > (double)hi || !ok[(int64_t)v - lo]))          \
    note(&bad, LU_VALUES_NOT_ALLOWED, i, v);
  if (t->dtype == LU_F16) { free(ok); return lu_fail(LU_EUNSUPPORTED, "value check: dtype f16 not supported"); }
  LU_FOR_VALUES(t, LU_LABEL_BODY);
#undef LU_LABEL_BODY
  free(ok);
  if (out->problem == LU_VALUES_OK) *out = nonint.problem ? nonint : bad;
  return LU_OK;
}

/* "(z, y, x) = (1, 2, 3)" (plus the channel when there are several) of a flat index into (C, Z, Y, X). */
static void where(const lu_tensor *t, int64_t i, char *buf, size_t n) {
  if (t->ndim != 4) { snprintf(buf, n, "flat index %lld", (long long)i); return; }
  int64_t Z = t->shape[1], Y = t->shape[2], X = t->shape[3];
  int64_t x = i % X, y = i / X % Y, z = i / X / Y % Z, c = i / X / Y / Z;
  if (t->shape[0] > 1)
    snprintf(buf, n, "(z, y, x) = (%lld, %lld, %lld) of channel %lld", (long long)z, (long long)y, (long long)x,
             (long long)c);
  else
    snprintf(buf, n, "(z, y, x) = (%lld, %lld, %lld)", (long long)z, (long long)y, (long long)x);
}

static const char *fmt_value(double v, char *buf, size_t n) {
  if (isnan(v)) snprintf(buf, n, "nan");
  else if (isinf(v)) snprintf(buf, n, v > 0 ? "inf" : "-inf");
  else snprintf(buf, n, "%.9g", v);
  return buf;
}

lu_status lu_check_image_values(const lu_tensor *t, const char *what) {
  lu_value_find f;
  LU_TRY(lu_values_finite(t, &f));
  if (f.problem == LU_VALUES_OK) return LU_OK;
  char at[128], val[64];
  where(t, f.first, at, sizeof at);
  return lu_fail(LU_EFORMAT, "%s holds a non-finite voxel (%s) at %s (%lld non-finite voxel%s in this file)",
                 what, fmt_value(f.value, val, sizeof val), at, (long long)f.count, f.count == 1 ? "" : "s");
}

lu_status lu_check_label_values(const lu_tensor *t, const int64_t *allowed, int nallowed, const char *what,
                                const char *labels_desc) {
  lu_value_find f;
  LU_TRY(lu_values_labels(t, allowed, nallowed, &f));
  if (f.problem == LU_VALUES_OK) return LU_OK;
  char at[128], val[64], set[512];
  where(t, f.first, at, sizeof at);
  fmt_value(f.value, val, sizeof val);
  const char *s = f.count == 1 ? "" : "s";
  if (f.problem == LU_VALUES_NONFINITE)
    return lu_fail(LU_EFORMAT, "%s holds a non-finite label (%s) at %s (%lld such voxel%s in this file)", what, val,
                   at, (long long)f.count, s);
  if (f.problem == LU_VALUES_NONINTEGER)
    return lu_fail(LU_EFORMAT, "%s holds a non-integer label %s at %s (%lld such voxel%s in this file; labels "
                   "must be whole numbers)", what, val, at, (long long)f.count, s);
  size_t o = 0;
  if (labels_desc) { snprintf(set, sizeof set, "%s", labels_desc); o = sizeof set; }
  else set[o++] = '{';
  for (int k = 0; k < nallowed && o + 32 < sizeof set; k++)
    o += (size_t)snprintf(set + o, sizeof set - o, "%s%lld", k ? ", " : "", (long long)allowed[k]);
  if (!labels_desc) snprintf(set + o, sizeof set - o, "}");
  return lu_fail(LU_EFORMAT, "%s holds label %s, not in dataset.json's labels %s, at %s (%lld voxel%s in this file "
                 "outside that list)", what, val, set, at, (long long)f.count, s);
}
