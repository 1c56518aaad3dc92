/* Dataset fingerprint: crop to nonzero, shapes, spacings, foreground intensity samples (see fingerprint.h). */
#include "data/fingerprint.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mt19937.h"
#include "core/threads.h"
#include "data/values.h"
#include "img/image.h"
#include "tensor.h"

#define LU_COMMA ,

/* Foreground samples are nnU-Net's own draws: per case one RandomState(seed) (MT19937), then per channel
 * RandomState.choice(foreground, k, replace=True), which is randint(0, n_fg) k times: one masked-rejection draw
 * each (lu_mt_interval). The candidates are the foreground voxels in C order of the cropped array. Every case
 * restarts the generator, and channel c continues the stream after channel c - 1's k draws. */
static lu_status read_f32(const char *path, lu_image *img, float **data, int64_t *c, int64_t sz[3]) {
  lu_image_init(img);
  LU_TRY(lu_image_read(path, img));
  lu_tensor *t = img->data;
  if (!t || t->ndim != 4) {
    lu_image_clear(img);
    return lu_fail(LU_EFORMAT, "%s: expected a (C, Z, Y, X) image", path);
  }
  if (t->dtype != LU_F32) {
    lu_tensor *f = NULL;
    lu_status st = lu_tensor_convert_host(t, LU_F32, &f);
    if (st != LU_OK) { lu_image_clear(img); return lu_fail_context(st, "%s", path); }
    lu_tensor_free(t);
    img->data = f;
    t = f;
  }
  *data = (float *)t->host;
  *c = t->shape[0];
  for (int d = 0; d < 3; d++) sz[d] = t->shape[d + 1];
  return LU_OK;
}

/* "<case>: <file>", what the value checks name */
static const char *what(const lu_fp_case_in *in, const char *path, char *buf, size_t n) {
  if (in->id) snprintf(buf, n, "%s: %s", in->id, path);
  else snprintf(buf, n, "%s", path);
  return buf;
}

/* samples of channel c go to samples + c * sample_stride */
static lu_status fp_case(const lu_fp_case_in *in, int64_t samples_per_case, uint64_t seed, int nchannels_max,
                         const int64_t *labels, int nlabels, lu_fp_case *out, float *samples, int64_t sample_stride,
                         double *fg_min, double *fg_max) {
  char wbuf[1200];
  if (!in || in->nimages < 1 || !in->label) return lu_fail(LU_EARG, "fingerprint: a case needs images and a label");
  memset(out, 0, sizeof *out);
  lu_status st = LU_OK;
  int nimg = in->nimages;
  lu_image *imgs = calloc((size_t)nimg, sizeof *imgs);
  float **chan = calloc((size_t)nchannels_max > 0 ? (size_t)nchannels_max : 1, sizeof *chan);
  int64_t *fg = NULL;
  lu_image lab;
  lu_image_init(&lab);
  int nread = 0;
  if (!imgs || !chan) { st = lu_fail(LU_ENOMEM, "fingerprint: out of memory"); goto done; }
  int64_t sz[3] = {0, 0, 0};
  int nc = 0;
  for (int i = 0; i < nimg; i++) {
    float *d = NULL;
    int64_t c = 0, s[3] = {0, 0, 0};
    st = read_f32(in->images[i], &imgs[i], &d, &c, s);
    if (st != LU_OK) goto done;
    nread++;
    /* here, before any statistic: one Inf voxel would make the dataset's mean and std (and so every normalised
     * voxel of every case) non-finite */
    st = lu_check_image_values(imgs[i].data, what(in, in->images[i], wbuf, sizeof wbuf));
    if (st != LU_OK) goto done;
    if (i == 0) {
      memcpy(sz, s, sizeof sz);
      double sp[3] = {imgs[0].spacing[2], imgs[0].spacing[1], imgs[0].spacing[0]};
      if (imgs[0].sdim == 2) { sp[0] = 999.0; sp[1] = imgs[0].spacing[1]; sp[2] = imgs[0].spacing[0]; }
      memcpy(out->spacing, sp, sizeof sp);
    } else if (s[0] != sz[0] || s[1] != sz[1] || s[2] != sz[2]) {
      st = lu_fail(LU_EFORMAT, "%s: shape %lldx%lldx%lld differs from %s (%lldx%lldx%lld)", in->images[i],
                   (long long)s[0], (long long)s[1], (long long)s[2], in->images[0], (long long)sz[0],
                   (long long)sz[1], (long long)sz[2]);
      goto done;
    }
    int64_t nvox = s[0] * s[1] * s[2];
    for (int64_t k = 0; k < c; k++) {
      if (nc >= nchannels_max) {
        st = lu_fail(LU_EFORMAT, "%s: case has more than the dataset's %d channels", in->images[i], nchannels_max);
        goto done;
      }
      chan[nc++] = d + k * nvox;
    }
  }
  out->nchannels = nc;
  float *seg = NULL;
  int64_t lc = 0, ls[3] = {0, 0, 0};
  st = read_f32(in->label, &lab, &seg, &lc, ls);
  if (st != LU_OK) goto done;
  st = lu_check_label_values(lab.data, labels, nlabels, what(in, in->label, wbuf, sizeof wbuf), NULL);
  if (st != LU_OK) goto done;
  if (lc != 1 || ls[0] != sz[0] || ls[1] != sz[1] || ls[2] != sz[2]) {
    st = lu_fail(LU_EFORMAT, "%s: label shape %lldx%lldx%lldx%lld does not match the image (1x%lldx%lldx%lld)",
                 in->label, (long long)lc, (long long)ls[0], (long long)ls[1], (long long)ls[2], (long long)sz[0],
                 (long long)sz[1], (long long)sz[2]);
    goto done;
  }
  /* bbox of the nonzero mask (hole filling does not change a bounding box) */
  int64_t lo[3] = {sz[0], sz[1], sz[2]}, hi[3] = {-1, -1, -1};
  int64_t Y = sz[1], X = sz[2];
  for (int64_t z = 0; z < sz[0]; z++)
    for (int64_t y = 0; y < Y; y++)
      for (int64_t x = 0; x < X; x++) {
        int64_t i = (z * Y + y) * X + x;
        int nz = 0;
        for (int c = 0; c < nc && !nz; c++) nz = chan[c][i] != 0.0f;
        if (!nz) continue;
        if (z < lo[0]) lo[0] = z;
        if (z > hi[0]) hi[0] = z;
        if (y < lo[1]) lo[1] = y;
        if (y > hi[1]) hi[1] = y;
        if (x < lo[2]) lo[2] = x;
        if (x > hi[2]) hi[2] = x;
      }
  for (int d = 0; d < 3; d++) {
    out->shape_before[d] = sz[d];
    if (hi[0] < 0) { out->bbox[d][0] = 0; out->bbox[d][1] = sz[d]; }  /* empty mask: whole image */
    else { out->bbox[d][0] = lo[d]; out->bbox[d][1] = hi[d] + 1; }
    out->shape_after[d] = out->bbox[d][1] - out->bbox[d][0];
  }
  out->relative_size = (double)(out->shape_after[0] * out->shape_after[1] * out->shape_after[2]) /
                       (double)(sz[0] * sz[1] * sz[2]);
  /* foreground voxels (label > 0) inside the bbox, C order of the cropped array */
  int64_t cap = out->shape_after[0] * out->shape_after[1] * out->shape_after[2];
  fg = malloc((size_t)(cap > 0 ? cap : 1) * sizeof *fg);
  if (!fg) { st = lu_fail(LU_ENOMEM, "%s: out of memory for the foreground index", in->label); goto done; }
  int64_t nfg = 0;
  for (int64_t z = out->bbox[0][0]; z < out->bbox[0][1]; z++)
    for (int64_t y = out->bbox[1][0]; y < out->bbox[1][1]; y++)
      for (int64_t x = out->bbox[2][0]; x < out->bbox[2][1]; x++) {
        int64_t i = (z * Y + y) * X + x;
        if (seg[i] > 0.0f) fg[nfg++] = i;
      }
  out->num_foreground = nfg;
  lu_mt19937 rs;
  lu_mt_seed(&rs, (uint32_t)seed);
  for (int c = 0; c < nc; c++) {
    if (nfg > 0 && fg_min && fg_max) {
      double mn = INFINITY, mx = -INFINITY;
      for (int64_t k = 0; k < nfg; k++) {
        double v = chan[c][fg[k]];
        if (v < mn) mn = v;
        if (v > mx) mx = v;
      }
      fg_min[c] = mn;
      fg_max[c] = mx;
    }
    if (nfg > 0 && samples) {
      float *dst = samples + c * sample_stride;
      const float *src = chan[c];
      for (int64_t k = 0; k < samples_per_case; k++)
        dst[k] = src[fg[lu_mt_interval(&rs, (uint64_t)(nfg - 1))]];
    }
  }
done:
  free(fg);
  lu_image_clear(&lab);
  for (int i = 0; i < nread; i++) lu_image_clear(&imgs[i]);
  free(imgs);
  free(chan);
  return st;
}

lu_status lu_fingerprint_case(const lu_fp_case_in *in, int64_t samples_per_case, uint64_t seed, int nchannels_max,
                              lu_fp_case *out, float *samples, double *fg_min, double *fg_max) {
  return fp_case(in, samples_per_case, seed, nchannels_max, NULL, -1, out, samples, samples_per_case, fg_min, fg_max);
}

lu_status lu_fingerprint_case_checked(const lu_fp_case_in *in, int64_t samples_per_case, uint64_t seed,
                                      int nchannels_max, const int64_t *labels, int nlabels, lu_fp_case *out,
                                      float *samples, double *fg_min, double *fg_max) {
  return fp_case(in, samples_per_case, seed, nchannels_max, labels, nlabels, out, samples, samples_per_case, fg_min,
                 fg_max);
}

/* numpy's pairwise summation (numpy/_core/src/umath/loops_utils.h.src, @TYPE@_pairwise_sum), which np.sum,
 * np.mean and np.std apply to a contiguous 1-D array as a whole, in the array's dtype: blocks of < 8 summed in
 * turn, blocks of <= 128 by 8 interleaved accumulators, larger ranges split at a multiple of 8 below the middle.
 * T is the accumulator type, X(i) the i-th term. */
#define LU_PAIRWISE(name, T, ARGS, X)                                                                   \
  static T name(const float *a, int64_t n ARGS) {                                                      \
    if (n < 8) {                                                                                        \
      T res = (T)-0.0;                                                                                  \
      for (int64_t i = 0; i < n; i++) res += X(i);                                                     \
      return res;                                                                                       \
    }                                                                                                   \
    if (n <= 128) {                                                                                     \
      T r[8];                                                                                           \
      int64_t i;                                                                                        \
      for (int j = 0; j < 8; j++) r[j] = X(j);                                                         \
      for (i = 8; i < n - (n % 8); i += 8)                                                              \
        for (int j = 0; j < 8; j++) r[j] += X(i + j);                                                  \
      T res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));                       \
      for (; i < n; i++) res += X(i);                                                                  \
      return res;                                                                                       \
    }                                                                                                   \
    int64_t n2 = n / 2;                                                                                 \
    n2 -= n2 % 8;                                                                                       \
    return name(a, n2 PASS) + name(a + n2, n - n2 PASS);                                               \
  }

static inline float sq_f32(float v, float m) { float d = v - m; return d * d; }
static inline double sq_f64(double v, double m) { double d = v - m; return d * d; }
#define PASS
#define X_F32(i) a[i]
#define X_F64(i) ((double)a[i])
LU_PAIRWISE(sum_f32, float, , X_F32)
LU_PAIRWISE(sum_f64, double, , X_F64)
#undef PASS
#define PASS , m
#define X_SQ32(i) sq_f32(a[i], m)
#define X_SQ64(i) sq_f64((double)a[i], m)
LU_PAIRWISE(sumsq_f32, float, LU_COMMA float m, X_SQ32)
LU_PAIRWISE(sumsq_f64, double, LU_COMMA double m, X_SQ64)
#undef PASS

/* Value of rank r (0-based) of v[0..n): quickselect with a three-way partition (CT data repeats values a lot);
 * afterwards v[0..r) <= v[r] <= v[r+1..n). */
static float select_rank(float *v, int64_t n, int64_t r) {
  int64_t lo = 0, hi = n - 1;
  while (lo < hi) {
    float a = v[lo], b = v[lo + (hi - lo) / 2], c = v[hi];
    float p = (a < b) ? ((b < c) ? b : (a < c ? c : a)) : ((a < c) ? a : (b < c ? c : b));
    int64_t lt = lo, i = lo, gt = hi;
    while (i <= gt) {
      float x = v[i];
      if (x < p) { v[i] = v[lt]; v[lt] = x; lt++; i++; }
      else if (x > p) { v[i] = v[gt]; v[gt] = x; gt--; }
      else i++;
    }
    if (r < lt) hi = lt - 1;
    else if (r > gt) lo = gt + 1;
    else return p;
  }
  return v[r];
}

/* np.percentile(v, q) with the default 'linear' method: virtual index (n - 1) * q / 100 in float64, then
 * numpy's _lerp, whose b - a is taken in the array's dtype (float32 unless promoted) and the rest in float64. */
static double pct(float *v, int64_t n, double q, int f64) {
  double vi = (double)(n - 1) * (q / 100.0);
  int64_t lo = (int64_t)floor(vi);
  if (lo > n - 1) lo = n - 1;
  int64_t hi = lo + 1 < n ? lo + 1 : n - 1;
  double g = vi - (double)lo;
  double a = select_rank(v, n, lo), b = a;
  if (hi != lo) {
    float m = v[hi];  /* the smallest value right of rank lo is rank lo + 1 */
    for (int64_t i = hi + 1; i < n; i++) if (v[i] < m) m = v[i];
    b = m;
  }
  double diff = f64 ? b - a : (double)((float)b - (float)a);
  double r = a + diff * g;
  return g >= 0.5 ? b - diff * (1 - g) : r;
}

void lu_fp_compute_stats_dtype(float *v, int64_t n, int f64, lu_fp_stats *o) {
  o->n = n;
  if (n <= 0) {
    o->mean = o->median = o->std = o->min = o->max = o->percentile_99_5 = o->percentile_00_5 = NAN;
    return;
  }
  /* mean and std first: they depend on the order of the samples, the selection below reorders them */
  if (f64) {
    double m = sum_f64(v, n) / (double)n;
    o->mean = m;
    o->std = sqrt(sumsq_f64(v, n, m) / (double)n);
  } else {
    /* float32 throughout, as np.mean / np.std of a float32 array (quotients rounded once to float32) */
    float m = (float)((double)sum_f32(v, n) / (double)n);
    float var = (float)((double)sumsq_f32(v, n, m) / (double)n);
    o->mean = m;
    o->std = sqrtf(var);
  }
  float mn = v[0], mx = v[0];
  for (int64_t i = 1; i < n; i++) {
    if (v[i] < mn) mn = v[i];
    if (v[i] > mx) mx = v[i];
  }
  o->min = mn;
  o->max = mx;
  /* each selection leaves the ranks below it on its left, so the next (higher) rank stays findable */
  o->percentile_00_5 = pct(v, n, 0.5, f64);
  o->median = pct(v, n, 50.0, f64);
  o->percentile_99_5 = pct(v, n, 99.5, f64);
}

void lu_fp_compute_stats(float *v, int64_t n, lu_fp_stats *out) { lu_fp_compute_stats_dtype(v, n, 0, out); }

typedef struct fp_job {
  const lu_fp_case_in *cases;
  int ncases, nchannels;
  const lu_fp_options *opt;
  lu_fp_case *out;
  float *samples;      /* [channel][case][k] */
  double *mins, *maxs; /* [case][channel] */
  pthread_mutex_t mu; /* guards next, done, st, msg and the progress line */
  int next, done;
  lu_status st;
  char msg[1024];
} fp_job;

static void progress(int done, int total) {
  int w = 40, f = total > 0 ? done * w / total : w;
  fprintf(stderr, "\rfingerprint [");
  for (int i = 0; i < w; i++) fputc(i < f ? '#' : '.', stderr);
  fprintf(stderr, "] %d/%d", done, total);
  if (done == total) fputc('\n', stderr);
  fflush(stderr);
}

/* Every thread pulls the next case from the shared counter (cases differ much in size, so a fixed
 * split would leave threads idle); lo/hi only say which thread this is. */
static void fp_worker(void *arg, int64_t lo, int64_t hi) {
  (void)lo;
  (void)hi;
  fp_job *j = arg;
  int64_t k = j->opt->samples_per_case;
  for (;;) {
    pthread_mutex_lock(&j->mu);
    int i = j->st == LU_OK ? j->next++ : j->ncases;
    pthread_mutex_unlock(&j->mu);
    if (i >= j->ncases) break;
    /* each case draws straight into its slot of every channel's run */
    lu_status st = fp_case(&j->cases[i], k, j->opt->seed, j->nchannels, j->opt->labels, j->opt->nlabels, &j->out[i],
                           j->samples + (int64_t)i * k, (int64_t)j->ncases * k, j->mins + (int64_t)i * j->nchannels,
                           j->maxs + (int64_t)i * j->nchannels);
    if (st == LU_OK && j->out[i].nchannels != j->nchannels)
      st = lu_fail(LU_EFORMAT, "%s: case has %d channels, the dataset %d", j->cases[i].images[0], j->out[i].nchannels,
                   j->nchannels);
    pthread_mutex_lock(&j->mu);
    if (st != LU_OK && j->st == LU_OK) {
      j->st = st;
      snprintf(j->msg, sizeof j->msg, "%s", lu_errmsg());
    }
    j->done++;
    if (j->opt->progress && j->st == LU_OK) progress(j->done, j->ncases);
    pthread_mutex_unlock(&j->mu);
  }
}

lu_status lu_fingerprint_dataset(const lu_fp_case_in *cases, int ncases, int nchannels, const lu_fp_options *opt,
                                 lu_fp_case *out_cases, lu_fp_stats *stats) {
  if (ncases < 1 || nchannels < 1 || !opt || opt->samples_per_case < 0)
    return lu_fail(LU_EARG, "fingerprint: need >= 1 case, >= 1 channel, samples_per_case >= 0");
  int64_t k = opt->samples_per_case;
  fp_job j;
  memset(&j, 0, sizeof j);
  j.cases = cases;
  j.ncases = ncases;
  j.nchannels = nchannels;
  j.opt = opt;
  j.out = out_cases;
  j.samples = malloc((size_t)((int64_t)nchannels * ncases * k > 0 ? (int64_t)nchannels * ncases * k : 1) *
                     sizeof(float));
  j.mins = malloc((size_t)ncases * (size_t)nchannels * sizeof(double));
  j.maxs = malloc((size_t)ncases * (size_t)nchannels * sizeof(double));
  if (!j.samples || !j.mins || !j.maxs) {
    free(j.samples); free(j.mins); free(j.maxs);
    return lu_fail(LU_ENOMEM, "fingerprint: out of memory for %lld samples", (long long)nchannels * ncases * k);
  }
  pthread_mutex_init(&j.mu, NULL);
  int nt = opt->threads < 1 ? 1 : opt->threads;
  if (nt > ncases) nt = ncases;
  if (opt->progress) progress(0, ncases);
  lu_status st = lu_parallel_for(nt, nt, fp_worker, &j);
  if (st == LU_OK) st = j.st;
  if (st == LU_OK) {
    for (int c = 0; c < nchannels; c++) {
      /* concatenate the samples of cases with foreground, in case order, as nnU-Net's np.concatenate */
      float *base = j.samples + (int64_t)c * ncases * k;
      int64_t n = 0;
      for (int i = 0; i < ncases; i++) {
        if (out_cases[i].num_foreground <= 0) continue;
        if (n != (int64_t)i * k) memmove(base + n, base + (int64_t)i * k, (size_t)k * sizeof(float));
        n += k;
      }
      /* a case without foreground contributes nnU-Net's empty list [], a float64 array: the concatenation is
       * float64 then, and so is every statistic */
      lu_fp_compute_stats_dtype(base, n, n < (int64_t)ncases * k, &stats[c]);
    }
  } else if (j.st != LU_OK) {
    lu_fail(st, "%s", j.msg); /* the worker's message was left on its own thread */
  }
  pthread_mutex_destroy(&j.mu);
  free(j.samples); free(j.mins); free(j.maxs);
  return st;
}
