/* Export helpers (see export.h). */
#include "infer/export.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/threads.h"

static inline float getf(const lu_tensor *t, int64_t i) {
  return t->dtype == LU_F32 ? ((const float *)t->host)[i] : lu_half_to_float(((const uint16_t *)t->host)[i]);
}

static lu_status check_float(const lu_tensor *t, const char *what) {
  if (!t || !t->host || (t->dtype != LU_F32 && t->dtype != LU_F16))
    return lu_fail(LU_EARG, "%s: expected a host f32/f16 tensor", what);
  return LU_OK;
}

static lu_status check_seg(const lu_tensor *seg, int64_t off, int64_t n, const char *what) {
  if (!seg || !seg->host || (seg->dtype != LU_U8 && seg->dtype != LU_U16))
    return lu_fail(LU_EARG, "%s: segmentation must be a host u8/u16 tensor", what);
  if (off < 0 || off + n > lu_tensor_numel(seg))
    return lu_fail(LU_EARG, "%s: segmentation has %lld voxels, class volume %lld at offset %lld", what,
                   (long long)lu_tensor_numel(seg), (long long)n, (long long)off);
  return LU_OK;
}

/* The two label rules, written once for the streaming export (one class volume at a time) and for whole
 * (C, ...) tensors (lu_ex_probs_to_seg). cls values [c0, c0 + n) are class k's voxels; seg voxels
 * [off, off + n) receive the labels. Arguments are checked by the callers. */

/* Argmax with ties to the lowest class: class k replaces the running maximum only where strictly larger. */
static void argmax_fold(const lu_tensor *cls, int64_t c0, int64_t n, int k, float *m, lu_tensor *seg, int64_t off) {
  if (seg->dtype == LU_U8) {
    uint8_t *s = (uint8_t *)seg->host + off;
    for (int64_t i = 0; i < n; i++) {
      float v = getf(cls, c0 + i);
      if (k == 0 || v > m[i]) { m[i] = v; s[i] = (uint8_t)k; }
    }
  } else {
    uint16_t *s = (uint16_t *)seg->host + off;
    for (int64_t i = 0; i < n; i++) {
      float v = getf(cls, c0 + i);
      if (k == 0 || v > m[i]) { m[i] = v; s[i] = (uint16_t)k; }
    }
  }
}

/* Regions: seg = label where the probability is > 0.5, later regions overwriting earlier ones. logits:
 * cls holds logits, thresholded as sigmoid(v) > 0.5 in float32 (as nnunetv2 applies the sigmoid first). */
static void region_fold(const lu_tensor *cls, int64_t c0, int64_t n, int label, int logits, lu_tensor *seg,
                        int64_t off) {
  for (int64_t i = 0; i < n; i++) {
    float v = getf(cls, c0 + i);
    float p = logits ? 1.0f / (1.0f + expf(-v)) : v;
    if (p > 0.5f) {
      if (seg->dtype == LU_U8) ((uint8_t *)seg->host)[off + i] = (uint8_t)label;
      else ((uint16_t *)seg->host)[off + i] = (uint16_t)label;
    }
  }
}

lu_status lu_ex_argmax_update(const lu_tensor *cls, int k, lu_tensor *maxv, lu_tensor *seg, int64_t off) {
  LU_TRY(check_float(cls, "argmax"));
  int64_t n = lu_tensor_numel(cls);
  LU_TRY(check_seg(seg, off, n, "argmax"));
  if (!maxv || !maxv->host || maxv->dtype != LU_F32 || lu_tensor_numel(maxv) != n)
    return lu_fail(LU_EARG, "argmax: running maximum must be f32 with %lld voxels", (long long)n);
  if (k < 0 || (seg->dtype == LU_U8 && k > 255) || k > 65535)
    return lu_fail(LU_EARG, "argmax: class index %d does not fit the segmentation dtype", k);
  argmax_fold(cls, 0, n, k, maxv->host, seg, off);
  return LU_OK;
}

lu_status lu_ex_region_update(const lu_tensor *cls, int label, lu_tensor *seg, int64_t off) {
  LU_TRY(check_float(cls, "regions"));
  int64_t n = lu_tensor_numel(cls);
  LU_TRY(check_seg(seg, off, n, "regions"));
  if (label < 0 || (seg->dtype == LU_U8 && label > 255) || label > 65535)
    return lu_fail(LU_EARG, "regions: label %d does not fit the segmentation dtype", label);
  region_fold(cls, 0, n, label, 1, seg, off);
  return LU_OK;
}

lu_status lu_ex_probs_to_seg(const lu_tensor *probs, const int32_t *order, int n_order, lu_tensor **out) {
  if (!probs->host || probs->ndim < 2) return lu_fail(LU_EARG, "probs_to_seg: expected a host tensor (C, ...)");
  if (probs->dtype != LU_F32 && probs->dtype != LU_F16 && probs->dtype != LU_F64)
    return lu_fail(LU_EUNSUPPORTED, "probs_to_seg: probabilities of dtype %s (expected f16/f32/f64)",
                   lu_dtype_name(probs->dtype));
  int64_t c = probs->shape[0];
  int64_t m = lu_shape_numel(probs->ndim - 1, probs->shape + 1);
  if (order && n_order != c)
    return lu_fail(LU_EARG, "probs_to_seg: %d regions in regions_class_order but %lld channels", n_order, (long long)c);
  int maxl = (int)c - 1;
  if (order) { maxl = 0; for (int i = 0; i < n_order; i++) if (order[i] > maxl) maxl = order[i]; }
  lu_tensor *f = (lu_tensor *)probs, *seg = NULL;
  float *run = NULL;
  /* f64 is compared in float32, as the ensemble's float32 average is */
  lu_status st = probs->dtype == LU_F64 ? lu_tensor_convert_host(probs, LU_F32, &f) : LU_OK;
  if (st == LU_OK) st = lu_tensor_new_host(&seg, maxl < 256 ? LU_U8 : LU_U16, probs->ndim - 1, probs->shape + 1);
  if (st == LU_OK && !order) {
    run = malloc((size_t)(m ? m : 1) * sizeof(float));
    if (!run) st = lu_fail(LU_ENOMEM, "probs_to_seg: running maximum of %lld voxels", (long long)m);
  }
  for (int64_t k = 0; st == LU_OK && k < c; k++) {
    if (order) region_fold(f, k * m, m, order[k], 0, seg, 0);
    else argmax_fold(f, k * m, m, (int)k, run, seg, 0);
  }
  free(run);
  if (f != probs) lu_tensor_free(f);
  if (st != LU_OK) {
    lu_tensor_free(seg);
    return st;
  }
  *out = seg;
  return LU_OK;
}

typedef struct sm_ctx {
  float *p;
  int64_t K, n;
  int sigmoid;
} sm_ctx;

static void sm_worker(void *vc, int64_t lo, int64_t hi) {
  sm_ctx *c = vc;
  for (int64_t i = lo; i < hi; i++) {
    if (c->sigmoid) {
      for (int64_t k = 0; k < c->K; k++) {
        float *v = c->p + k * c->n + i;
        *v = 1.0f / (1.0f + expf(-*v));
      }
      continue;
    }
    float mx = -INFINITY;
    for (int64_t k = 0; k < c->K; k++) mx = fmaxf(mx, c->p[k * c->n + i]);
    float s = 0.0f;
    for (int64_t k = 0; k < c->K; k++) {
      float e = expf(c->p[k * c->n + i] - mx);
      c->p[k * c->n + i] = e;
      s += e;
    }
    for (int64_t k = 0; k < c->K; k++) c->p[k * c->n + i] /= s;
  }
}

lu_status lu_ex_softmax(lu_tensor *t, int sigmoid, int threads) {
  if (!t || !t->host || t->dtype != LU_F32 || t->ndim < 2)
    return lu_fail(LU_EARG, "softmax: expected a host f32 tensor (K, ...)");
  sm_ctx c = {t->host, t->shape[0], lu_tensor_numel(t) / t->shape[0], sigmoid};
  return lu_parallel_for(threads, c.n, sm_worker, &c);
}

lu_status lu_ex_uncrop(const lu_tensor *in, const int64_t full[3], const int64_t bbox[3][2], double fill0,
                       lu_tensor **out) {
  if (!in || !in->host || (in->ndim != 3 && in->ndim != 4))
    return lu_fail(LU_EARG, "uncrop: expected a host (Z, Y, X) or (C, Z, Y, X) tensor");
  int off = in->ndim - 3;
  int64_t C = off ? in->shape[0] : 1;
  for (int a = 0; a < 3; a++)
    if (bbox[a][0] < 0 || bbox[a][1] > full[a] || bbox[a][1] - bbox[a][0] != in->shape[off + a])
      return lu_fail(LU_EARG, "uncrop: bbox [%lld, %lld) on axis %d does not fit extent %lld into %lld",
                     (long long)bbox[a][0], (long long)bbox[a][1], a, (long long)in->shape[off + a], (long long)full[a]);
  int64_t shp[4] = {C, full[0], full[1], full[2]};
  lu_tensor *t;
  LU_TRY(lu_tensor_new_host(&t, in->dtype, in->ndim, off ? shp : shp + 1));
  size_t es = lu_dtype_size(in->dtype);
  int64_t fn = full[0] * full[1] * full[2];
  if (fill0 != 0.0)
    for (int64_t i = 0; i < fn; i++) lu_host_set(t, i, fill0);
  const int64_t *cs = in->shape + off;
  for (int64_t c = 0; c < C; c++)
    for (int64_t z = 0; z < cs[0]; z++)
      for (int64_t y = 0; y < cs[1]; y++) {
        const char *src = (const char *)in->host + (size_t)(((c * cs[0] + z) * cs[1] + y) * cs[2]) * es;
        char *dst = (char *)t->host +
                    (size_t)(((c * full[0] + z + bbox[0][0]) * full[1] + y + bbox[1][0]) * full[2] + bbox[2][0]) * es;
        memcpy(dst, src, (size_t)cs[2] * es);
      }
  *out = t;
  return LU_OK;
}

lu_status lu_ex_transpose(const lu_tensor *in, const int perm[3], lu_tensor **out) {
  if (!in || !in->host || (in->ndim != 3 && in->ndim != 4))
    return lu_fail(LU_EARG, "transpose: expected a host (Z, Y, X) or (C, Z, Y, X) tensor");
  int seen[3] = {0, 0, 0};
  for (int a = 0; a < 3; a++) {
    if (perm[a] < 0 || perm[a] > 2 || seen[perm[a]]++)
      return lu_fail(LU_EARG, "transpose: (%d, %d, %d) is not a permutation of 0, 1, 2", perm[0], perm[1], perm[2]);
  }
  int off = in->ndim - 3;
  int64_t C = off ? in->shape[0] : 1;
  const int64_t *s = in->shape + off;
  int64_t os[4] = {C, s[perm[0]], s[perm[1]], s[perm[2]]};
  lu_tensor *t;
  LU_TRY(lu_tensor_new_host(&t, in->dtype, in->ndim, off ? os : os + 1));
  size_t es = lu_dtype_size(in->dtype);
  int64_t stride[3] = {s[1] * s[2], s[2], 1};
  int64_t ps[3] = {stride[perm[0]], stride[perm[1]], stride[perm[2]]};
  int64_t n = s[0] * s[1] * s[2];
  for (int64_t c = 0; c < C; c++) {
    const char *src = (const char *)in->host + (size_t)(c * n) * es;
    char *dst = (char *)t->host + (size_t)(c * n) * es;
    int64_t o = 0;
    for (int64_t i = 0; i < os[1]; i++)
      for (int64_t j = 0; j < os[2]; j++) {
        int64_t base = i * ps[0] + j * ps[1];
        if (es == 1) {
          for (int64_t k = 0; k < os[3]; k++) dst[o++] = src[base + k * ps[2]];
        } else {
          for (int64_t k = 0; k < os[3]; k++, o++) memcpy(dst + (size_t)o * es, src + (size_t)(base + k * ps[2]) * es, es);
        }
      }
  }
  *out = t;
  return LU_OK;
}

lu_status lu_ex_onehot_append(const lu_tensor *data, const lu_tensor *seg, const int32_t *labels, int n,
                              lu_tensor **out) {
  if (!data || !data->host || data->dtype != LU_F32 || data->ndim != 4)
    return lu_fail(LU_EARG, "one-hot: data must be a host f32 (C, Z, Y, X) tensor");
  int64_t vn = data->shape[1] * data->shape[2] * data->shape[3];
  if (!seg || !seg->host || lu_tensor_numel(seg) != vn)
    return lu_fail(LU_EARG, "one-hot: previous-stage segmentation has %lld voxels, data %lld",
                   seg ? (long long)lu_tensor_numel(seg) : 0LL, (long long)vn);
  int64_t shp[4] = {data->shape[0] + n, data->shape[1], data->shape[2], data->shape[3]};
  lu_tensor *t;
  LU_TRY(lu_tensor_new_host(&t, LU_F32, 4, shp));
  memcpy(t->host, data->host, (size_t)(data->shape[0] * vn) * sizeof(float));
  float *o = (float *)t->host + data->shape[0] * vn;
  for (int64_t i = 0; i < vn; i++) {
    double v = lu_host_get(seg, i);
    for (int l = 0; l < n; l++)
      if (v == (double)labels[l]) o[(int64_t)l * vn + i] = 1.0f;
  }
  *out = t;
  return LU_OK;
}
