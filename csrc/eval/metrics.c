/* Confusion counts through a joint histogram: one pass over (ref, pred) voxel pairs counts H[r][p]
 * for value bins r, p; then every label set's TP/FP/FN/TN is a sum over the histogram. One pass
 * serves any number of labels and regions. */
#include "eval/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/threads.h"

#define BINS_OF(T)                                                                              \
  do {                                                                                          \
    const T *src = (const T *)t->host;                                                          \
    for (int64_t i = begin; i < end; i++) {                                                     \
      double v = (double)src[i];                                                                \
      out[i - begin] = (v >= 0 && v < top && v == floor(v)) ? (uint16_t)v : (uint16_t)(nbins - 1); \
    }                                                                                           \
  } while (0)

lu_status lu_eval_value_bins(const lu_tensor *t, int64_t begin, int64_t end, int nbins, uint16_t *out) {
  if (!t->host) return lu_fail(LU_ESTATE, "eval: tensor is not on the host");
  if (nbins < 2 || nbins > 65535) return lu_fail(LU_EARG, "eval: %d value bins out of range", nbins);
  const double top = (double)(nbins - 1);
  switch (t->dtype) {
  case LU_U8: {
    const uint8_t *src = (const uint8_t *)t->host;
    for (int64_t i = begin; i < end; i++) out[i - begin] = src[i] < top ? src[i] : (uint16_t)(nbins - 1);
    break;
  }
  case LU_I8: BINS_OF(int8_t); break;
  case LU_I16: BINS_OF(int16_t); break;
  case LU_U16: BINS_OF(uint16_t); break;
  case LU_I32: BINS_OF(int32_t); break;
  case LU_U32: BINS_OF(uint32_t); break;
  case LU_I64: BINS_OF(int64_t); break;
  case LU_F32: BINS_OF(float); break;
  case LU_F64: BINS_OF(double); break;
  default: return lu_fail(LU_EUNSUPPORTED, "eval: dtype %s not supported for label images", lu_dtype_name(t->dtype));
  }
  return LU_OK;
}

typedef struct {
  const lu_tensor *ref, *pred;
  int64_t begin, end;
  int nbins;
  int64_t *hist; /* nbins * nbins */
  lu_status st;
} hist_job;

#define HIST_CHUNK 65536

static void hist_worker(hist_job *j) {
  uint16_t *br = malloc(HIST_CHUNK * sizeof(uint16_t)), *bp = malloc(HIST_CHUNK * sizeof(uint16_t));
  if (!br || !bp) {
    free(br);
    free(bp);
    j->st = lu_fail(LU_ENOMEM, "eval: no memory for histogram buffers");
    return;
  }
  const int nb = j->nbins;
  for (int64_t s = j->begin; s < j->end; s += HIST_CHUNK) {
    int64_t e = s + HIST_CHUNK < j->end ? s + HIST_CHUNK : j->end;
    if ((j->st = lu_eval_value_bins(j->ref, s, e, nb, br)) != LU_OK) break;
    if ((j->st = lu_eval_value_bins(j->pred, s, e, nb, bp)) != LU_OK) break;
    for (int64_t i = 0; i < e - s; i++) j->hist[(int64_t)br[i] * nb + bp[i]]++;
  }
  free(br);
  free(bp);
}

/* lu_parallel_for over job indices (one job per thread). */
static void hist_range(void *ctx, int64_t lo, int64_t hi) {
  for (int64_t t = lo; t < hi; t++) hist_worker((hist_job *)ctx + t);
}

lu_status lu_eval_confusion(const lu_tensor *ref, const lu_tensor *pred, const lu_label_sets *sets,
                            int has_ignore, int32_t ignore_label, int threads, int64_t *counts) {
  char b1[64], b2[64];
  if (!ref || !pred || !ref->host || !pred->host) return lu_fail(LU_EARG, "eval: reference and prediction must be host tensors");
  int64_t n = lu_tensor_numel(ref);
  if (n != lu_tensor_numel(pred))
    return lu_fail(LU_EARG, "eval: reference shape %s and prediction shape %s differ",
                   lu_shape_str(ref->ndim, ref->shape, b1, sizeof b1), lu_shape_str(pred->ndim, pred->shape, b2, sizeof b2));
  if (sets->n_items < 1) return lu_fail(LU_EARG, "eval: no labels or regions to evaluate");
  int maxl = has_ignore ? ignore_label : 0;
  if (has_ignore && (ignore_label < 0 || ignore_label > LU_EVAL_MAX_LABEL))
    return lu_fail(LU_EARG, "eval: ignore label %d out of range 0..%d", ignore_label, LU_EVAL_MAX_LABEL);
  for (int i = 0; i < sets->n_items; i++)
    for (int32_t k = sets->offsets[i]; k < sets->offsets[i + 1]; k++) {
      int32_t l = sets->labels[k];
      if (l < 0 || l > LU_EVAL_MAX_LABEL) return lu_fail(LU_EARG, "eval: label %d out of range 0..%d", l, LU_EVAL_MAX_LABEL);
      if (l > maxl) maxl = l;
    }
  int nb = maxl + 2; /* values 0..maxl, then "any other value" */
  if (threads < 1) threads = 1;
  if (threads > LU_MAX_THREADS) threads = LU_MAX_THREADS;
  if (n < (int64_t)threads * HIST_CHUNK) threads = (int)(n / HIST_CHUNK) + 1;
  if (threads > LU_MAX_THREADS) threads = LU_MAX_THREADS;
  int64_t *hist = calloc((size_t)threads * nb * nb, sizeof(int64_t));
  hist_job *jobs = calloc((size_t)threads, sizeof(hist_job));
  uint8_t *in_set = calloc((size_t)nb, 1);
  lu_status st = LU_OK;
  if (!hist || !jobs || !in_set) {
    st = lu_fail(LU_ENOMEM, "eval: no memory for %d histograms of %d bins", threads, nb);
    goto done;
  }
  for (int t = 0; t < threads; t++)
    jobs[t] = (hist_job){ref, pred, n * t / threads, n * (t + 1) / threads, nb, hist + (int64_t)t * nb * nb, LU_OK};
  st = lu_parallel_for(threads, threads, hist_range, jobs);
  if (st != LU_OK) goto done;
  for (int t = 0; t < threads; t++)
    if (jobs[t].st != LU_OK) { st = jobs[t].st; goto done; }
  for (int t = 1; t < threads; t++)
    for (int64_t k = 0; k < (int64_t)nb * nb; k++) hist[k] += hist[(int64_t)t * nb * nb + k];

  for (int i = 0; i < sets->n_items; i++) {
    memset(in_set, 0, (size_t)nb);
    for (int32_t k = sets->offsets[i]; k < sets->offsets[i + 1]; k++) in_set[sets->labels[k]] = 1;
    int64_t tp = 0, fp = 0, fn = 0, tn = 0;
    for (int r = 0; r < nb; r++) {
      if (has_ignore && r == ignore_label) continue;
      const int64_t *row = hist + (int64_t)r * nb;
      for (int p = 0; p < nb; p++) {
        int64_t c = row[p];
        if (!c) continue;
        if (in_set[r]) { if (in_set[p]) tp += c; else fn += c; }
        else { if (in_set[p]) fp += c; else tn += c; }
      }
    }
    counts[4 * i + 0] = tp;
    counts[4 * i + 1] = fp;
    counts[4 * i + 2] = fn;
    counts[4 * i + 3] = tn;
  }
done:
  free(hist);
  free(jobs);
  free(in_set);
  return st;
}
