/* Label maps -> region masks and region pseudo-Dice counts (see regions.h). */
#include "data/regions.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int int_dtype(lu_dtype dt) {
  return dt == LU_I16 || dt == LU_I32 || dt == LU_U8 || dt == LU_I8 || dt == LU_U16 || dt == LU_F32;
}

/* value i of a host array of one of int_dtype's types, as an integer (float targets hold integers) */
static inline int64_t get_int(const void *p, lu_dtype dt, int64_t i) {
  switch (dt) {
    case LU_I16: return ((const int16_t *)p)[i];
    case LU_I32: return ((const int32_t *)p)[i];
    case LU_U8: return ((const uint8_t *)p)[i];
    case LU_I8: return ((const int8_t *)p)[i];
    case LU_U16: return ((const uint16_t *)p)[i];
    case LU_F32: return (int64_t)((const float *)p)[i];
    default: return 0;
  }
}

lu_status lu_regions_convert(const lu_tensor *seg, int channel, const lu_regions *rg, lu_dtype dtype,
                             lu_tensor **out) {
  const char *op = "regions.convert";
  *out = NULL;
  if (!seg || !seg->host) return lu_fail(LU_EARG, "%s: seg must be a host tensor", op);
  if (!int_dtype(seg->dtype))
    return lu_fail(LU_EARG, "%s: seg has dtype %s (int16, int32, uint8, int8, uint16 or float32 expected)", op,
                   lu_dtype_name(seg->dtype));
  char s[96];
  if (seg->ndim < 3 || seg->ndim > LU_MAX_DIMS)
    return lu_fail(LU_EARG, "%s: seg %s must be (B, C, spatial...) with 1 to 3 spatial axes", op,
                   lu_shape_str(seg->ndim, seg->shape, s, sizeof s));
  if (channel < 0 || channel >= seg->shape[1])
    return lu_fail(LU_EARG, "%s: seg channel %d out of range for seg %s", op, channel,
                   lu_shape_str(seg->ndim, seg->shape, s, sizeof s));
  if (!rg || rg->n < 1 || !rg->offsets || rg->offsets[0] != 0)
    return lu_fail(LU_EARG, "%s: at least one region is needed", op);
  for (int r = 0; r < rg->n; r++)
    if (rg->offsets[r + 1] <= rg->offsets[r]) return lu_fail(LU_EARG, "%s: region %d has no labels", op, r + 1);
  if (dtype != LU_U8 && dtype != LU_I16 && dtype != LU_I32 && dtype != LU_F32)
    return lu_fail(LU_EARG, "%s: output dtype %s not supported (u8, i16, i32, f32)", op, lu_dtype_name(dtype));

  const int64_t B = seg->shape[0], Cs = seg->shape[1];
  const int64_t S = lu_shape_numel(seg->ndim - 2, seg->shape + 2);
  const int R = rg->n;
  int64_t os[LU_MAX_DIMS];
  memcpy(os, seg->shape, sizeof os);
  os[1] = R;
  LU_TRY(lu_tensor_new_host(out, dtype, seg->ndim, os));
  /* membership table over the label range present in the regions: lut[(v - lo) * R + r] */
  int64_t lo = rg->labels[0], hi = rg->labels[0];
  for (int i = 0; i < rg->offsets[R]; i++) {
    if (rg->labels[i] < lo) lo = rg->labels[i];
    if (rg->labels[i] > hi) hi = rg->labels[i];
  }
  const int64_t span = hi - lo + 1;
  if (span > (1 << 20)) {
    lu_tensor_free(*out);
    *out = NULL;
    return lu_fail(LU_EARG, "%s: region labels span %lld values (at most 2^20)", op, (long long)span);
  }
  unsigned char *lut = calloc((size_t)(span * R), 1);
  if (!lut) {
    lu_tensor_free(*out);
    *out = NULL;
    return lu_fail(LU_ENOMEM, "%s: lookup table of %lld bytes", op, (long long)(span * R));
  }
  for (int r = 0; r < R; r++)
    for (int i = rg->offsets[r]; i < rg->offsets[r + 1]; i++) lut[(rg->labels[i] - lo) * R + r] = 1;

  for (int64_t b = 0; b < B; b++) {
    const int64_t in0 = (b * Cs + channel) * S;
    for (int r = 0; r < R; r++) {
      const int64_t o0 = (b * R + r) * S;
      for (int64_t v = 0; v < S; v++) {
        int64_t x = get_int(seg->host, seg->dtype, in0 + v);
        unsigned char m = (x >= lo && x <= hi) ? lut[(x - lo) * R + r] : 0;
        switch (dtype) {
          case LU_U8: ((uint8_t *)(*out)->host)[o0 + v] = m; break;
          case LU_I16: ((int16_t *)(*out)->host)[o0 + v] = m; break;
          case LU_I32: ((int32_t *)(*out)->host)[o0 + v] = m; break;
          default: ((float *)(*out)->host)[o0 + v] = m; break;
        }
      }
    }
  }
  free(lut);
  return LU_OK;
}

lu_status lu_regions_confusion(const lu_tensor *logits, const lu_tensor *target, int has_ignore, int64_t *tp,
                               int64_t *fp, int64_t *fn) {
  const char *op = "regions.confusion";
  if (!logits || !logits->host || logits->dtype != LU_F32)
    return lu_fail(LU_EARG, "%s: logits must be a host float32 tensor", op);
  if (!target || !target->host || !int_dtype(target->dtype))
    return lu_fail(LU_EARG, "%s: target must be a host integer (or float32 0/1) tensor", op);
  char a[96], b[96];
  lu_shape_str(logits->ndim, logits->shape, a, sizeof a);
  lu_shape_str(target->ndim, target->shape, b, sizeof b);
  if (logits->ndim < 3) return lu_fail(LU_EARG, "%s: logits %s must be (N, R, spatial...)", op, a);
  const int64_t N = logits->shape[0], R = logits->shape[1];
  const int64_t S = lu_shape_numel(logits->ndim - 2, logits->shape + 2);
  const int64_t TC = R + (has_ignore ? 1 : 0);
  if (target->ndim < 2 || target->shape[0] != N || target->shape[1] != TC ||
      lu_shape_numel(target->ndim - 2, target->shape + 2) != S)
    return lu_fail(LU_EARG, "%s: target %s does not fit logits %s (expected %lld channels%s)", op, b, a,
                   (long long)TC, has_ignore ? ": regions plus the ignore mask" : "");
  for (int64_t r = 0; r < R; r++) tp[r] = fp[r] = fn[r] = 0;
  const float *z = logits->host;
  for (int64_t n = 0; n < N; n++) {
    for (int64_t r = 0; r < R; r++) {
      int64_t t0 = 0, f0 = 0, f1 = 0;
      const float *zr = z + (n * R + r) * S;
      const int64_t g0 = (n * TC + r) * S, m0 = (n * TC + R) * S;
      for (int64_t v = 0; v < S; v++) {
        if (has_ignore && get_int(target->host, target->dtype, m0 + v) != 0) continue;
        /* torch: sigmoid in float32, then > 0.5 (a tiny positive logit rounds to 0.5: not foreground) */
        float p = 1.0f / (1.0f + expf(-zr[v]));
        int pr = p > 0.5f;
        int gt = get_int(target->host, target->dtype, g0 + v) != 0;
        t0 += pr && gt;
        f0 += pr && !gt;
        f1 += !pr && gt;
      }
      tp[r] += t0, fp[r] += f0, fn[r] += f1;
    }
  }
  return LU_OK;
}
