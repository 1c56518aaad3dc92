/* nnU-Net v2 resampling on host arrays: see resample.h for the exact semantics matched. */
#include "data/resample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/threads.h"

#define SPLINE_PAD 12 /* scipy's _prepad_for_spline_filter for mode 'nearest' */
#define PASS_BLOCK 64 /* lines processed together along a strided axis */

/* ---------------------------------------------------------------- shapes, decisions */

void lu_resample_opts_default(lu_resample_opts *o, int is_seg) {
  o->is_seg = is_seg;
  o->order = is_seg ? 1 : 3;
  o->order_z = 0;
  o->force_separate_z = -1;
  o->aniso_threshold = 3.0;
}

void lu_compute_new_shape(const int64_t old_shape[3], const double old_sp[3], const double new_sp[3],
                          int64_t new_shape[3]) {
  for (int i = 0; i < 3; i++) new_shape[i] = (int64_t)nearbyint(old_sp[i] / new_sp[i] * (double)old_shape[i]);
}

static int lowres_axes(const double sp[3], int *axis) {
  double mx = sp[0];
  for (int i = 1; i < 3; i++) mx = sp[i] > mx ? sp[i] : mx;
  int n = 0;
  for (int i = 0; i < 3; i++)
    if (mx / sp[i] == 1.0) {
      if (n == 0) *axis = i;
      n++;
    }
  return n;
}

static int aniso(const double sp[3], double thr) {
  double mx = sp[0], mn = sp[0];
  for (int i = 1; i < 3; i++) {
    mx = sp[i] > mx ? sp[i] : mx;
    mn = sp[i] < mn ? sp[i] : mn;
  }
  return mx / mn > thr;
}

void lu_resample_sep_z_axis(int force, const double cur[3], const double nsp[3], double thr, int *do_sep,
                            int *axis) {
  int n = 0;
  *do_sep = 0;
  *axis = -1;
  if (force >= 0) {
    *do_sep = force;
    if (force) n = lowres_axes(cur, axis);
  } else if (aniso(cur, thr)) {
    *do_sep = 1;
    n = lowres_axes(cur, axis);
  } else if (aniso(nsp, thr)) {
    *do_sep = 1;
    n = lowres_axes(nsp, axis);
  }
  if (*do_sep && n != 1) {
    *do_sep = 0;
    *axis = -1;
  }
}

/* ---------------------------------------------------------------- 1-D pieces */

/* scipy's B-spline poles (sqrt(3) - 2 etc.) */
static int spline_poles(int order, double *p) {
  switch (order) {
  case 2: p[0] = sqrt(8.0) - 3.0; return 1;
  case 3: p[0] = sqrt(3.0) - 2.0; return 1;
  case 4:
    p[0] = sqrt(664.0 - sqrt(438976.0)) + sqrt(304.0) - 19.0;
    p[1] = sqrt(664.0 + sqrt(438976.0)) - sqrt(304.0) - 19.0;
    return 2;
  case 5:
    p[0] = sqrt(67.5 - sqrt(4436.25)) + sqrt(26.25) - 6.5;
    p[1] = sqrt(67.5 + sqrt(4436.25)) - sqrt(26.25) - 6.5;
    return 2;
  default: return 0;
  }
}

/* In-place interpolating B-spline prefilter of a line, mirror-symmetric boundary (Unser 1991). */
static void spline_prefilter(double *c, int64_t n, int order) {
  double poles[2];
  int np = spline_poles(order, poles);
  if (n < 2 || np == 0) return;
  double gain = 1.0;
  for (int k = 0; k < np; k++) gain *= (1.0 - poles[k]) * (1.0 - 1.0 / poles[k]);
  for (int64_t i = 0; i < n; i++) c[i] *= gain;
  for (int k = 0; k < np; k++) {
    double z = poles[k];
    /* causal init (mirror): c0 = sum_{i} z^i (c_i + z^{n-1} c_{n-1-i}) / (1 - z^{2(n-1)}) */
    double zn1 = pow(z, (double)(n - 1)), zi = z;
    double c0 = c[0] + zn1 * c[n - 1];
    for (int64_t i = 1; i < n - 1; i++) {
      c0 += zi * (c[i] + zn1 * c[n - 1 - i]);
      zi *= z;
    }
    c[0] = c0 / (1.0 - zn1 * zn1);
    for (int64_t i = 1; i < n; i++) c[i] += z * c[i - 1];
    c[n - 1] = (z * c[n - 2] + c[n - 1]) * z / (z * z - 1.0);
    for (int64_t i = n - 2; i >= 0; i--) c[i] = z * (c[i + 1] - c[i]);
  }
}

/* B-spline weights at x (x relative to the window start chosen as scipy does). */
static void spline_weights(double x, int order, double *w) {
  x -= floor((order & 1) ? x : x + 0.5);
  double y = x, z = 1.0 - x, t;
  switch (order) {
  case 1: w[0] = 1.0 - x; break;
  case 2:
    w[1] = 0.75 - x * x;
    y = 0.5 - x;
    w[0] = 0.5 * y * y;
    break;
  case 3:
    w[1] = (y * y * (y - 2.0) * 3.0 + 4.0) / 6.0;
    w[2] = (z * z * (z - 2.0) * 3.0 + 4.0) / 6.0;
    w[0] = z * z * z / 6.0;
    break;
  case 4:
    t = x * x;
    w[2] = t * (t * 0.25 - 0.625) + 115.0 / 192.0;
    y = 1.0 + x;
    w[1] = y * (y * (y * (5.0 - y) / 6.0 - 1.25) + 5.0 / 24.0) + 55.0 / 96.0;
    w[3] = z * (z * (z * (5.0 - z) / 6.0 - 1.25) + 5.0 / 24.0) + 55.0 / 96.0;
    y = 0.5 - x;
    t = y * y;
    w[0] = t * t / 24.0;
    break;
  case 5:
    t = y * y;
    w[2] = t * (t * (0.25 - y / 12.0) - 0.5) + 0.55;
    t = z * z;
    w[3] = t * (t * (0.25 - z / 12.0) - 0.5) + 0.55;
    y += 1.0;
    w[1] = y * (y * (y * (y * (y / 24.0 - 0.375) + 1.25) - 1.75) + 0.625) + 0.425;
    z += 1.0;
    w[4] = z * (z * (z * (z * (z / 24.0 - 0.375) + 1.25) - 1.75) + 0.625) + 0.425;
    y = 1.0 - x;
    t = y * y;
    w[0] = y * t * t / 120.0;
    break;
  default: break;
  }
  w[order] = 1.0;
  for (int i = 0; i < order; i++) w[order] -= w[i];
}

/* Mirror an index into [0, len) as scipy's edge offsets do. */
static int64_t mirror_idx(int64_t idx, int64_t len) {
  if (len <= 1) return 0;
  int64_t s2 = 2 * len - 2;
  if (idx < 0) {
    idx = s2 * (-idx / s2) + idx;
    idx = idx <= 1 - len ? idx + s2 : -idx;
  } else if (idx >= len) {
    idx -= s2 * (idx / s2);
    if (idx >= len) idx = s2 - idx;
  }
  return idx;
}

/* Source coordinate of output k (grid mode) in a line padded by `pad` on each side, clamped to the padded
 * line (mode 'nearest'). */
static double src_coord(int64_t k, double zoom, int64_t n, int pad) {
  double cc = ((double)k + 0.5) * zoom - 0.5 + (double)pad;
  double hi = (double)(n + 2 * pad - 1);
  return cc < 0 ? 0 : (cc > hi ? hi : cc);
}

/* Sampling plan for one axis: for output k, taps idx[k*(order+1) + j] with weights w[...]. Indices are
 * into the (padded, for order > 1) line. */
typedef struct axis_plan {
  int order, ntap;
  int64_t n, m, padded;
  int64_t *idx;
  double *w;
} axis_plan;

static lu_status plan_axis(axis_plan *p, int64_t n, int64_t m, int order) {
  p->order = order;
  p->ntap = order + 1;
  p->n = n;
  p->m = m;
  p->padded = order > 1 ? n + 2 * SPLINE_PAD : n;
  p->idx = malloc(sizeof(int64_t) * (size_t)(m * p->ntap));
  p->w = malloc(sizeof(double) * (size_t)(m * p->ntap));
  if (!p->idx || !p->w) {
    free(p->idx);
    free(p->w);
    return lu_fail(LU_ENOMEM, "resample: no memory for an axis plan of %lld taps", (long long)(m * p->ntap));
  }
  double zoom = (double)n / (double)m;
  for (int64_t k = 0; k < m; k++) {
    int64_t *ix = p->idx + k * p->ntap;
    double *w = p->w + k * p->ntap;
    double cc = src_coord(k, zoom, n, order > 1 ? SPLINE_PAD : 0);
    if (order == 0) {
      ix[0] = (int64_t)floor(cc + 0.5);
      if (ix[0] > n - 1) ix[0] = n - 1;
      w[0] = 1.0;
      continue;
    }
    int64_t start = (order & 1) ? (int64_t)floor(cc) - order / 2 : (int64_t)floor(cc + 0.5) - order / 2;
    spline_weights(cc, order, w);
    for (int j = 0; j <= order; j++) ix[j] = mirror_idx(start + j, p->padded);
  }
  return LU_OK;
}

static void free_plan(axis_plan *p) {
  free(p->idx);
  free(p->w);
}

/* One pass along axis `ax` of a rank-3 view (outer, n, inner) -> (outer, m, inner). */
typedef struct pass_ctx {
  const float *in;
  float *out;
  int64_t outer, inner;
  const axis_plan *p;
  int failed;
} pass_ctx;

/* Prefilter of B interleaved lines (element j of line b at c[j * B + b]): the same arithmetic as
 * spline_prefilter per line, with the lines innermost so strided axes are processed in cache-friendly blocks. */
static void spline_prefilter_block(double *c, int64_t n, int B, int order) {
  if (B == 1) {
    spline_prefilter(c, n, order);
    return;
  }
  double poles[2];
  int np = spline_poles(order, poles);
  if (n < 2 || np == 0) return;
  double gain = 1.0;
  for (int k = 0; k < np; k++) gain *= (1.0 - poles[k]) * (1.0 - 1.0 / poles[k]);
  for (int64_t i = 0; i < n * B; i++) c[i] *= gain;
  double c0[PASS_BLOCK];
  for (int k = 0; k < np; k++) {
    double z = poles[k];
    double zn1 = pow(z, (double)(n - 1)), zi = z;
    for (int b = 0; b < B; b++) c0[b] = c[b] + zn1 * c[(n - 1) * B + b];
    for (int64_t i = 1; i < n - 1; i++) {
      for (int b = 0; b < B; b++) c0[b] += zi * (c[i * B + b] + zn1 * c[(n - 1 - i) * B + b]);
      zi *= z;
    }
    for (int b = 0; b < B; b++) c[b] = c0[b] / (1.0 - zn1 * zn1);
    for (int64_t i = 1; i < n; i++)
      for (int b = 0; b < B; b++) c[i * B + b] += z * c[(i - 1) * B + b];
    for (int b = 0; b < B; b++) c[(n - 1) * B + b] = (z * c[(n - 2) * B + b] + c[(n - 1) * B + b]) * z / (z * z - 1.0);
    for (int64_t i = n - 2; i >= 0; i--)
      for (int b = 0; b < B; b++) c[i * B + b] = z * (c[(i + 1) * B + b] - c[i * B + b]);
  }
}

/* Work unit u = (outer index o, block of up to PASS_BLOCK consecutive inner positions). */
static void pass_worker(void *vctx, int64_t lo, int64_t hi) {
  pass_ctx *c = vctx;
  const axis_plan *p = c->p;
  int64_t n = p->n, m = p->m, inner = c->inner;
  int64_t nblk = (inner + PASS_BLOCK - 1) / PASS_BLOCK;
  double *buf = malloc(sizeof(double) * (size_t)p->padded * PASS_BLOCK);
  double *acc = malloc(sizeof(double) * PASS_BLOCK);
  if (!buf || !acc) {
    free(buf);
    free(acc);
    c->failed = 1;
    return;
  }
  for (int64_t u = lo; u < hi; u++) {
    int64_t o = u / nblk, i0 = (u % nblk) * PASS_BLOCK;
    int B = (int)(inner - i0 < PASS_BLOCK ? inner - i0 : PASS_BLOCK);
    const float *src = c->in + o * n * inner + i0;
    float *dst = c->out + o * m * inner + i0;
    if (p->order > 1) {
      for (int64_t j = 0; j < p->padded; j++) {
        int64_t sj = j - SPLINE_PAD;
        sj = sj < 0 ? 0 : (sj > n - 1 ? n - 1 : sj);
        for (int b = 0; b < B; b++) buf[j * B + b] = src[sj * inner + b];
      }
      spline_prefilter_block(buf, p->padded, B, p->order);
    } else {
      for (int64_t j = 0; j < n; j++)
        for (int b = 0; b < B; b++) buf[j * B + b] = src[j * inner + b];
    }
    for (int64_t k = 0; k < m; k++) {
      const int64_t *ix = p->idx + k * p->ntap;
      const double *w = p->w + k * p->ntap;
      for (int b = 0; b < B; b++) acc[b] = 0.0;
      for (int j = 0; j < p->ntap; j++) {
        const double *row = buf + ix[j] * B;
        double wj = w[j];
        for (int b = 0; b < B; b++) acc[b] += row[b] * wj;
      }
      for (int b = 0; b < B; b++) dst[k * inner + b] = (float)acc[b];
    }
  }
  free(buf);
  free(acc);
}

/* A window along axis 0 for streaming: the input holds rows [in0, in0 + din[0]) of a full axis of in_full rows,
 * and the output is rows [out0, out0 + dout[0]) of the full result of out_full rows. */
typedef struct row_win {
  int64_t in0, in_full, out0, out_full;
} row_win;

/* Order used along axis 0 of a windowed pass: none (identity) when the full axis keeps its size. */
static int win_order(const row_win *w, int order) { return w->in_full == w->out_full ? 0 : order; }

/* The rows of the full plan that the window's outputs use, re-indexed into the input slab. Fails when the
 * axis needs a spline prefilter (order > 1 couples every row) or when the slab misses a tap. */
static lu_status plan_window(axis_plan *p, const row_win *w, int64_t nin, int64_t nout, int order) {
  int ord = win_order(w, order);
  if (ord > 1)
    return lu_fail(LU_EARG, "resample rows: order %d along axis 0 couples all rows (only orders 0 and 1 stream)", ord);
  axis_plan full;
  LU_TRY(plan_axis(&full, w->in_full, w->out_full, ord));
  if (w->out0 < 0 || w->out0 + nout > w->out_full) {
    free_plan(&full);
    return lu_fail(LU_EARG, "resample rows: output rows [%lld, %lld) outside 0..%lld", (long long)w->out0,
                   (long long)(w->out0 + nout), (long long)w->out_full);
  }
  lu_status st = plan_axis(p, nin, nout, ord); /* allocation and sizes; the taps are replaced below */
  if (st != LU_OK) {
    free_plan(&full);
    return st;
  }
  for (int64_t k = 0; k < nout && st == LU_OK; k++)
    for (int j = 0; j < p->ntap; j++) {
      int64_t ix = full.idx[(w->out0 + k) * full.ntap + j] - w->in0;
      if (ix < 0 || ix >= nin)
        st = lu_fail(LU_EARG, "resample rows: input rows [%lld, %lld) miss row %lld needed by output row %lld",
                     (long long)w->in0, (long long)(w->in0 + nin), (long long)(ix + w->in0), (long long)(w->out0 + k));
      p->idx[k * p->ntap + j] = ix;
      p->w[k * p->ntap + j] = full.w[(w->out0 + k) * full.ntap + j];
    }
  free_plan(&full);
  if (st != LU_OK) free_plan(p);
  return st;
}

/* lu_resize_image, optionally on a window along axis 0 (w). The axes are visited in the order of the full
 * problem and every output value is computed from the same taps in the same order, so a windowed result
 * equals the matching rows of the full one bit for bit. Clipping uses the slab's range, which for orders
 * <= 1 (the only ones a window allows along axis 0) never binds: interpolation stays within its taps. */
static lu_status resize_image_win(const float *in, const int64_t *din, int rank, float *out, const int64_t *dout,
                                  int order, int clip, int threads, const row_win *w) {
  if (rank < 1 || rank > 3) return lu_fail(LU_EARG, "resize: rank %d not in 1..3", rank);
  if (order < 0 || order > 5) return lu_fail(LU_EARG, "resize: spline order %d not in 0..5", order);
  int64_t nin = 1, nout = 1;
  for (int a = 0; a < rank; a++) {
    if (din[a] < 1 || dout[a] < 1) return lu_fail(LU_EARG, "resize: empty axis %d (%lld -> %lld)", a,
                                                  (long long)din[a], (long long)dout[a]);
    nin *= din[a];
    nout *= dout[a];
  }
  float mn = in[0], mx = in[0];
  if (clip && order > 0)
    for (int64_t i = 1; i < nin; i++) {
      mn = in[i] < mn ? in[i] : mn;
      mx = in[i] > mx ? in[i] : mx;
    }
  /* sizes of the full problem: they decide the pass order and the taps */
  int64_t fin[3], fout[3];
  for (int a = 0; a < rank; a++) {
    fin[a] = din[a];
    fout[a] = dout[a];
  }
  if (w) {
    fin[0] = w->in_full;
    fout[0] = w->out_full;
  }
  /* axes in order of increasing zoom so the intermediates stay small */
  int axes[3], na = 0;
  for (int a = 0; a < rank; a++)
    if (fin[a] != fout[a] || (a == 0 && w && (din[0] != dout[0] || w->in0 != w->out0))) axes[na++] = a;
  for (int i = 0; i < na; i++)
    for (int j = i + 1; j < na; j++)
      if ((double)fout[axes[j]] / fin[axes[j]] < (double)fout[axes[i]] / fin[axes[i]]) {
        int t = axes[i];
        axes[i] = axes[j];
        axes[j] = t;
      }
  if (na == 0) {
    memcpy(out, in, sizeof(float) * (size_t)nin);
    return LU_OK;
  }
  int64_t cur[3];
  for (int a = 0; a < rank; a++) cur[a] = din[a];
  const float *src = in;
  float *tmp = NULL;
  lu_status st = LU_OK;
  for (int s = 0; s < na && st == LU_OK; s++) {
    int a = axes[s];
    int64_t outer = 1, inner = 1;
    for (int b = 0; b < a; b++) outer *= cur[b];
    for (int b = a + 1; b < rank; b++) inner *= cur[b];
    float *dst = s == na - 1 ? out : malloc(sizeof(float) * (size_t)(outer * dout[a] * inner));
    if (!dst) {
      st = lu_fail(LU_ENOMEM, "resize: no memory for an intermediate of %lld voxels",
                   (long long)(outer * dout[a] * inner));
      break;
    }
    axis_plan p;
    st = (a == 0 && w) ? plan_window(&p, w, cur[0], dout[0], order) : plan_axis(&p, cur[a], dout[a], order);
    if (st == LU_OK) {
      pass_ctx c = {src, dst, outer, inner, &p, 0};
      st = lu_parallel_for(threads, outer * ((inner + PASS_BLOCK - 1) / PASS_BLOCK), pass_worker, &c);
      if (st == LU_OK && c.failed) st = lu_fail(LU_ENOMEM, "resize: no memory for a line buffer");
      free_plan(&p);
    }
    free(tmp);
    tmp = dst == out ? NULL : dst;
    if (st != LU_OK && tmp) {
      free(tmp);
      tmp = NULL;
    }
    src = dst;
    cur[a] = dout[a];
  }
  free(tmp);
  if (st != LU_OK) return st;
  if (clip && order > 0)
    for (int64_t i = 0; i < nout; i++) out[i] = out[i] < mn ? mn : (out[i] > mx ? mx : out[i]);
  return LU_OK;
}

lu_status lu_resize_image(const float *in, const int64_t *din, int rank, float *out, const int64_t *dout,
                          int order, int clip, int threads) {
  return resize_image_win(in, din, rank, out, dout, order, clip, threads, NULL);
}

/* ---------------------------------------------------------------- segmentations */

typedef struct seg_ctx {
  const int16_t *in;
  int16_t *out;
  int rank;
  int64_t din[3], dout[3];
  const axis_plan *p[3]; /* order-1 plans (2 taps) and nearest plans per axis */
  const axis_plan *nn[3];
} seg_ctx;

/* Order 1, per voxel: scores per label summed in scipy's tap order, clipped to [0, 1]; lowest label with
 * the top score wins unless the nearest-neighbour label shares it. Axes of a rank-2 call are (y, x). */
static void seg_linear_worker(void *vctx, int64_t lo, int64_t hi) {
  seg_ctx *c = vctx;
  int r = c->rank;
  int64_t d0 = r == 3 ? c->dout[0] : 1, d1 = c->dout[r - 2], d2 = c->dout[r - 1];
  int64_t s1 = c->din[r - 1], s0 = c->din[r - 2] * s1;
  const axis_plan *pz = r == 3 ? c->p[0] : NULL, *py = c->p[r - 2], *px = c->p[r - 1];
  const axis_plan *nz = r == 3 ? c->nn[0] : NULL, *ny = c->nn[r - 2], *nx = c->nn[r - 1];
  (void)d0;
  for (int64_t v = lo; v < hi; v++) {
    int64_t k = v / (d1 * d2), j = (v / d2) % d1, i = v % d2;
    int16_t lab[8];
    double w[8];
    int nt = 0;
    int na = r == 3 ? 2 : 1;
    for (int a = 0; a < na; a++) {
      int64_t zo = r == 3 ? pz->idx[k * 2 + a] * s0 : 0;
      double wz = r == 3 ? pz->w[k * 2 + a] : 1.0;
      for (int b = 0; b < 2; b++) {
        int64_t yo = py->idx[j * 2 + b] * s1;
        double wy = 1.0 * wz * py->w[j * 2 + b];
        for (int cc = 0; cc < 2; cc++) {
          lab[nt] = c->in[zo + yo + px->idx[i * 2 + cc]];
          w[nt] = wy * px->w[i * 2 + cc];
          nt++;
        }
      }
    }
    int uniform = 1;
    for (int t = 1; t < nt; t++) uniform &= lab[t] == lab[0];
    if (uniform) { /* one label around the sample point: it wins (its score is the weight sum, ~1) */
      c->out[v] = lab[0];
      continue;
    }
    int16_t nnlab = c->in[(r == 3 ? nz->idx[k] * s0 : 0) + ny->idx[j] * s1 + nx->idx[i]];
    /* distinct labels in ascending order */
    int16_t labs[8];
    int nl = 0;
    for (int t = 0; t < nt; t++) {
      int seen = 0;
      for (int q = 0; q < nl; q++) seen |= labs[q] == lab[t];
      if (!seen) labs[nl++] = lab[t];
    }
    for (int a = 1; a < nl; a++)
      for (int b = a; b > 0 && labs[b] < labs[b - 1]; b--) {
        int16_t tt = labs[b];
        labs[b] = labs[b - 1];
        labs[b - 1] = tt;
      }
    double best = -1.0, nnscore = 0.0;
    int16_t win = labs[0];
    for (int q = 0; q < nl; q++) {
      double s = 0.0;
      for (int t = 0; t < nt; t++)
        if (lab[t] == labs[q]) s += w[t];
      s = s < 0.0 ? 0.0 : (s > 1.0 ? 1.0 : s);
      if (s > best) {
        best = s;
        win = labs[q];
      }
      if (labs[q] == nnlab) nnscore = s;
    }
    c->out[v] = (nnscore == best && nnscore > 0.0) ? nnlab : win;
  }
}

static void seg_nearest_worker(void *vctx, int64_t lo, int64_t hi) {
  seg_ctx *c = vctx;
  int r = c->rank;
  int64_t d1 = c->dout[r - 2], d2 = c->dout[r - 1];
  int64_t s1 = c->din[r - 1], s0 = c->din[r - 2] * s1;
  for (int64_t v = lo; v < hi; v++) {
    int64_t k = v / (d1 * d2), j = (v / d2) % d1, i = v % d2;
    c->out[v] = c->in[(r == 3 ? c->nn[0]->idx[k] * s0 : 0) + c->nn[r - 2]->idx[j] * s1 + c->nn[r - 1]->idx[i]];
  }
}

/* Orders >= 2: the per-label indicator method with whole-array image resizes. */
static lu_status seg_generic(const int16_t *in, const int64_t *din, int rank, int16_t *out, const int64_t *dout,
                             int order, int threads) {
  int64_t nin = 1, nout = 1;
  for (int a = 0; a < rank; a++) {
    nin *= din[a];
    nout *= dout[a];
  }
  unsigned char *seen = calloc(65536, 1);
  float *ind = malloc(sizeof(float) * (size_t)nin), *sc = malloc(sizeof(float) * (size_t)nout);
  float *best = malloc(sizeof(float) * (size_t)nout);
  int16_t *nn = malloc(sizeof(int16_t) * (size_t)nout);
  lu_status st = LU_OK;
  if (!seen || !ind || !sc || !best || !nn) {
    st = lu_fail(LU_ENOMEM, "resize_seg: no memory");
    goto done;
  }
  for (int64_t i = 0; i < nin; i++) seen[(uint16_t)in[i]] = 1;
  st = lu_resize_seg(in, din, rank, nn, dout, 0, threads);
  if (st != LU_OK) goto done;
  int first = 1;
  unsigned char *top = calloc((size_t)nout, 1);
  if (!top) {
    st = lu_fail(LU_ENOMEM, "resize_seg: no memory");
    goto done;
  }
  for (int l = -32768; l < 32768; l++) {
    if (!seen[(uint16_t)(int16_t)l]) continue;
    for (int64_t i = 0; i < nin; i++) ind[i] = in[i] == l ? 1.0f : 0.0f;
    st = lu_resize_image(ind, din, rank, sc, dout, order, 1, threads);
    if (st != LU_OK) break;
    for (int64_t v = 0; v < nout; v++) {
      int isnn = nn[v] == l;
      if (first) {
        best[v] = sc[v];
        out[v] = (int16_t)l;
        top[v] = isnn && sc[v] > 0;
      } else {
        if (isnn && sc[v] == best[v] && sc[v] > 0) top[v] = 1;
        if (sc[v] > best[v]) {
          best[v] = sc[v];
          out[v] = (int16_t)l;
          top[v] = (unsigned char)isnn;
        }
      }
    }
    first = 0;
  }
  for (int64_t v = 0; v < nout && st == LU_OK; v++)
    if (top[v]) out[v] = nn[v];
  free(top);
done:
  free(seen);
  free(ind);
  free(sc);
  free(best);
  free(nn);
  return st;
}

lu_status lu_resize_seg(const int16_t *in, const int64_t *din, int rank, int16_t *out, const int64_t *dout,
                        int order, int threads) {
  if (rank < 2 || rank > 3) return lu_fail(LU_EARG, "resize_seg: rank %d not in 2..3", rank);
  int64_t nin = 1, nout = 1;
  for (int a = 0; a < rank; a++) {
    if (din[a] < 1 || dout[a] < 1) return lu_fail(LU_EARG, "resize_seg: empty axis %d", a);
    nin *= din[a];
    nout *= dout[a];
  }
  int same = 1;
  for (int a = 0; a < rank; a++) same &= din[a] == dout[a];
  if (same) {
    memcpy(out, in, sizeof(int16_t) * (size_t)nin);
    return LU_OK;
  }
  if (order > 1) return seg_generic(in, din, rank, out, dout, order, threads);
  axis_plan lin[3], nn[3];
  int nlin = 0, nnn = 0;
  lu_status st = LU_OK;
  seg_ctx c = {in, out, rank, {0}, {0}, {0}, {0}};
  for (int a = 0; a < rank; a++) {
    c.din[a] = din[a];
    c.dout[a] = dout[a];
  }
  for (int a = 0; a < rank && st == LU_OK; a++) {
    st = plan_axis(&nn[a], din[a], dout[a], 0);
    if (st != LU_OK) break;
    nnn++;
    c.nn[a] = &nn[a];
    if (order == 1) {
      st = plan_axis(&lin[a], din[a], dout[a], 1);
      if (st != LU_OK) break;
      /* scipy reads tap 1 from the mirrored index; with weight 0 there any in-range index is the same */
      nlin++;
      c.p[a] = &lin[a];
    }
  }
  if (st == LU_OK) st = lu_parallel_for(threads, nout, order == 1 ? seg_linear_worker : seg_nearest_worker, &c);
  for (int a = 0; a < nnn; a++) free_plan(&nn[a]);
  for (int a = 0; a < nlin; a++) free_plan(&lin[a]);
  return st;
}

/* ---------------------------------------------------------------- whole-case resampling */

static lu_status seg_to_i16(const lu_tensor *t, int16_t **out) {
  int64_t n = lu_tensor_numel(t);
  int16_t *s = malloc(sizeof(int16_t) * (size_t)(n ? n : 1));
  if (!s) return lu_fail(LU_ENOMEM, "resample: no memory for a segmentation copy");
  for (int64_t i = 0; i < n; i++) {
    switch (t->dtype) {
    case LU_I8: s[i] = ((const int8_t *)t->host)[i]; break;
    case LU_I16: s[i] = ((const int16_t *)t->host)[i]; break;
    case LU_U8: s[i] = ((const uint8_t *)t->host)[i]; break;
    case LU_I32: s[i] = (int16_t)((const int32_t *)t->host)[i]; break;
    default: s[i] = (int16_t)lu_host_get(t, i); break;
    }
  }
  *out = s;
  return LU_OK;
}

static void i16_store(lu_tensor *t, int64_t off, const int16_t *s, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    switch (t->dtype) {
    case LU_I8: ((int8_t *)t->host)[off + i] = (int8_t)s[i]; break;
    case LU_I16: ((int16_t *)t->host)[off + i] = s[i]; break;
    case LU_U8: ((uint8_t *)t->host)[off + i] = (uint8_t)s[i]; break;
    case LU_I32: ((int32_t *)t->host)[off + i] = s[i]; break;
    default: lu_host_set(t, off + i, s[i]); break;
    }
  }
}

/* Copies slice `s` across axis `ax` of a (Z,Y,X) float/int16 volume into a dense 2-D buffer, or back. */
#define SLICE_COPY(T)                                                                                        \
  static void slice_get_##T(const T *vol, const int64_t d[3], int ax, int64_t s, T *sl) {                   \
    int64_t n = 0;                                                                                           \
    for (int64_t z = (ax == 0 ? s : 0); z < (ax == 0 ? s + 1 : d[0]); z++)                                   \
      for (int64_t y = (ax == 1 ? s : 0); y < (ax == 1 ? s + 1 : d[1]); y++)                                 \
        for (int64_t x = (ax == 2 ? s : 0); x < (ax == 2 ? s + 1 : d[2]); x++)                               \
          sl[n++] = vol[(z * d[1] + y) * d[2] + x];                                                          \
  }                                                                                                          \
  static void slice_put_##T(T *vol, const int64_t d[3], int ax, int64_t s, const T *sl) {                   \
    int64_t n = 0;                                                                                           \
    for (int64_t z = (ax == 0 ? s : 0); z < (ax == 0 ? s + 1 : d[0]); z++)                                   \
      for (int64_t y = (ax == 1 ? s : 0); y < (ax == 1 ? s + 1 : d[1]); y++)                                 \
        for (int64_t x = (ax == 2 ? s : 0); x < (ax == 2 ? s + 1 : d[2]); x++)                               \
          vol[(z * d[1] + y) * d[2] + x] = sl[n++];                                                          \
  }
SLICE_COPY(float)
SLICE_COPY(int16_t)

/* Resamples one (Z,Y,X) channel; w: optionally only a window of rows along axis 0 (see row_win). */
static lu_status resample_channel_f(const float *in, const int64_t din[3], float *out, const int64_t dout[3],
                                   int sep, int axis, int order, int order_z, int threads, const row_win *w) {
  if (!sep) return resize_image_win(in, din, 3, out, dout, order, 1, threads, w);
  int64_t mid[3] = {dout[0], dout[1], dout[2]};
  mid[axis] = din[axis];
  int64_t pin[2], pout[2];
  for (int a = 0, k = 0; a < 3; a++)
    if (a != axis) {
      pin[k] = din[a];
      pout[k++] = dout[a];
    }
  /* the window applies to the slices when axis 0 lies in them, else to the pass across the slices */
  const row_win *w_slices = axis != 0 ? w : NULL;
  int need_z = w && axis == 0 ? (din[0] != dout[0] || w->in_full != w->out_full || w->in0 != w->out0)
                              : din[axis] != dout[axis];
  float *here = need_z ? malloc(sizeof(float) * (size_t)(mid[0] * mid[1] * mid[2])) : out;
  float *sl_in = malloc(sizeof(float) * (size_t)(pin[0] * pin[1]));
  float *sl_out = malloc(sizeof(float) * (size_t)(pout[0] * pout[1]));
  lu_status st = LU_OK;
  if (!here || !sl_in || !sl_out) st = lu_fail(LU_ENOMEM, "resample: no memory for separate-z buffers");
  for (int64_t s = 0; s < din[axis] && st == LU_OK; s++) {
    slice_get_float(in, din, axis, s, sl_in);
    st = resize_image_win(sl_in, pin, 2, sl_out, pout, order, 1, threads, w_slices);
    if (st == LU_OK) slice_put_float(here, mid, axis, s, sl_out);
  }
  if (st == LU_OK && need_z) {
    /* map_coordinates along `axis` only, order_z, mode nearest: identity coordinates elsewhere */
    axis_plan p;
    st = (w && axis == 0) ? plan_window(&p, w, din[0], dout[0], order_z) : plan_axis(&p, din[axis], dout[axis], order_z);
    if (st == LU_OK) {
      int64_t outer = 1, inner = 1;
      for (int b = 0; b < axis; b++) outer *= mid[b];
      for (int b = axis + 1; b < 3; b++) inner *= mid[b];
      pass_ctx c = {here, out, outer, inner, &p, 0};
      st = lu_parallel_for(threads, outer * ((inner + PASS_BLOCK - 1) / PASS_BLOCK), pass_worker, &c);
      if (st == LU_OK && c.failed) st = lu_fail(LU_ENOMEM, "resample: no memory for a line buffer");
      free_plan(&p);
    }
  }
  if (need_z) free(here);
  free(sl_in);
  free(sl_out);
  return st;
}

static lu_status resample_channel_s(const int16_t *in, const int64_t din[3], int16_t *out, const int64_t dout[3],
                                   int sep, int axis, int order, int order_z, int threads) {
  if (!sep) {
    if (din[0] == 1 && dout[0] == 1) return lu_resize_seg(in, din + 1, 2, out, dout + 1, order, threads);
    return lu_resize_seg(in, din, 3, out, dout, order, threads);
  }
  int64_t mid[3] = {dout[0], dout[1], dout[2]};
  mid[axis] = din[axis];
  int64_t pin[2], pout[2];
  for (int a = 0, k = 0; a < 3; a++)
    if (a != axis) {
      pin[k] = din[a];
      pout[k++] = dout[a];
    }
  int need_z = din[axis] != dout[axis];
  int64_t nmid = mid[0] * mid[1] * mid[2];
  int16_t *here = need_z ? malloc(sizeof(int16_t) * (size_t)nmid) : out;
  int16_t *sl_in = malloc(sizeof(int16_t) * (size_t)(pin[0] * pin[1]));
  int16_t *sl_out = malloc(sizeof(int16_t) * (size_t)(pout[0] * pout[1]));
  lu_status st = LU_OK;
  if (!here || !sl_in || !sl_out) st = lu_fail(LU_ENOMEM, "resample: no memory for separate-z buffers");
  for (int64_t s = 0; s < din[axis] && st == LU_OK; s++) {
    slice_get_int16_t(in, din, axis, s, sl_in);
    st = lu_resize_seg(sl_in, pin, 2, sl_out, pout, order, threads);
    if (st == LU_OK) slice_put_int16_t(here, mid, axis, s, sl_out);
  }
  if (st == LU_OK && need_z) {
    axis_plan p;
    st = plan_axis(&p, din[axis], dout[axis], order_z);
    if (st == LU_OK) {
      int64_t outer = 1, inner = 1;
      for (int b = 0; b < axis; b++) outer *= mid[b];
      for (int b = axis + 1; b < 3; b++) inner *= mid[b];
      int64_t n = din[axis], m = dout[axis];
      if (order_z == 0) {
        for (int64_t o = 0; o < outer; o++)
          for (int64_t k = 0; k < m; k++)
            memcpy(out + (o * m + k) * inner, here + (o * n + p.idx[k]) * inner, sizeof(int16_t) * (size_t)inner);
      } else {
        /* per label ascending: round(linear indicator) > 0.5 assigns the label (nnU-Net's order_z > 0 path) */
        memset(out, 0, sizeof(int16_t) * (size_t)(outer * m * inner));
        unsigned char *seen = calloc(65536, 1);
        if (!seen) st = lu_fail(LU_ENOMEM, "resample: no memory");
        for (int64_t i = 0; seen && i < nmid; i++) seen[(uint16_t)here[i]] = 1;
        for (int l = -32768; seen && l < 32768; l++) {
          if (!seen[(uint16_t)(int16_t)l]) continue;
          for (int64_t o = 0; o < outer; o++)
            for (int64_t k = 0; k < m; k++)
              for (int64_t i = 0; i < inner; i++) {
                double t = 0.0;
                for (int j = 0; j < p.ntap; j++)
                  t += (here[(o * n + p.idx[k * p.ntap + j]) * inner + i] == l ? 1.0 : 0.0) * p.w[k * p.ntap + j];
                if (nearbyint(t) > 0.5) out[(o * m + k) * inner + i] = (int16_t)l;
              }
        }
        free(seen);
      }
      free_plan(&p);
    }
  }
  if (need_z) free(here);
  free(sl_in);
  free(sl_out);
  return st;
}

lu_status lu_resample(const lu_tensor *in, const int64_t new_shape[3], const double cur_sp[3],
                      const double new_sp[3], const lu_resample_opts *o, int threads, lu_tensor **out) {
  if (!in || !in->host || in->ndim != 4)
    return lu_fail(LU_EARG, "resample: expected a host tensor (C, Z, Y, X), got %d dims", in ? in->ndim : -1);
  if (!o->is_seg && in->dtype != LU_F32)
    return lu_fail(LU_EARG, "resample: image data must be f32, got %s", lu_dtype_name(in->dtype));
  for (int a = 0; a < 3; a++)
    if (new_shape[a] < 1) return lu_fail(LU_EARG, "resample: new shape axis %d is %lld", a, (long long)new_shape[a]);
  int64_t C = in->shape[0], din[3] = {in->shape[1], in->shape[2], in->shape[3]};
  int64_t oshape[4] = {C, new_shape[0], new_shape[1], new_shape[2]};
  lu_tensor *t = NULL;
  LU_TRY(lu_tensor_new_host(&t, in->dtype, 4, oshape));
  int64_t nin = din[0] * din[1] * din[2], nout = new_shape[0] * new_shape[1] * new_shape[2];
  if (din[0] == new_shape[0] && din[1] == new_shape[1] && din[2] == new_shape[2]) {
    memcpy(t->host, in->host, in->bytes);
    *out = t;
    return LU_OK;
  }
  int sep, axis;
  lu_resample_sep_z_axis(o->force_separate_z, cur_sp, new_sp, o->aniso_threshold, &sep, &axis);
  lu_status st = LU_OK;
  if (!o->is_seg) {
    for (int64_t c = 0; c < C && st == LU_OK; c++)
      st = resample_channel_f((const float *)in->host + c * nin, din, (float *)t->host + c * nout, new_shape, sep,
                              axis, o->order, o->order_z, threads, NULL);
  } else {
    int16_t *s = NULL, *so = malloc(sizeof(int16_t) * (size_t)nout);
    st = so ? seg_to_i16(in, &s) : lu_fail(LU_ENOMEM, "resample: no memory for a segmentation");
    for (int64_t c = 0; c < C && st == LU_OK; c++) {
      st = resample_channel_s(s + c * nin, din, so, new_shape, sep, axis, o->order, o->order_z, threads);
      if (st == LU_OK) i16_store(t, c * nout, so, nout);
    }
    free(s);
    free(so);
  }
  if (st != LU_OK) {
    lu_tensor_free(t);
    return st;
  }
  *out = t;
  return LU_OK;
}

/* Whether rows of axis 0 can be resampled slab by slab, exactly: the separate-z decision, and in *ord the order
 * along axis 0 (-1: the axis keeps its size). A spline prefilter along axis 0 couples all rows, and so does
 * the clip to the input's range that cubic resizing applies to the whole volume (or to a slice holding axis 0);
 * per-slice clipping across axis 0 (separate z along axis 0) stays within a row. */
static lu_status stream_check(int64_t in_full, int64_t out_full, const int64_t din_yx[2], const int64_t dout_yx[2],
                              const double cur_sp[3], const double new_sp[3], const lu_resample_opts *o, int *sep,
                              int *axis, int *ord) {
  lu_resample_sep_z_axis(o->force_separate_z, cur_sp, new_sp, o->aniso_threshold, sep, axis);
  *ord = in_full == out_full ? -1 : ((*sep && *axis == 0) ? o->order_z : o->order);
  if (in_full == out_full && din_yx[0] == dout_yx[0] && din_yx[1] == dout_yx[1]) return LU_OK; /* a copy */
  if (*ord > 1)
    return lu_fail(LU_EARG, "resample rows: order %d along axis 0 couples all rows (only orders 0 and 1 stream)", *ord);
  if (!(*sep && *axis == 0) && o->order > 1)
    return lu_fail(LU_EARG, "resample rows: order %d clips to the range of the whole volume (only orders 0 and 1 "
                            "stream, or separate z across axis 0)", o->order);
  return LU_OK;
}

lu_status lu_resample_rows_needed(const int64_t in_shape[3], const int64_t out_shape[3], const double cur_sp[3],
                                  const double new_sp[3], const lu_resample_opts *o, int64_t out0, int64_t nout,
                                  int64_t *lo, int64_t *hi) {
  int64_t in_full = in_shape[0], out_full = out_shape[0];
  if (o->is_seg) return lu_fail(LU_EARG, "resample rows: images only");
  if (in_full < 1 || out_full < 1 || nout < 1 || out0 < 0 || out0 + nout > out_full)
    return lu_fail(LU_EARG, "resample rows: output rows [%lld, %lld) of %lld from %lld input rows", (long long)out0,
                   (long long)(out0 + nout), (long long)out_full, (long long)in_full);
  int sep, axis, ord;
  LU_TRY(stream_check(in_full, out_full, in_shape + 1, out_shape + 1, cur_sp, new_sp, o, &sep, &axis, &ord));
  row_win w = {0, in_full, out0, out_full};
  axis_plan p;
  /* the plan against the whole input: its taps are the rows needed */
  LU_TRY(plan_window(&p, &w, in_full, nout, ord < 0 ? 0 : ord));
  int64_t l = p.idx[0], h = p.idx[0];
  for (int64_t i = 1; i < nout * p.ntap; i++) {
    l = p.idx[i] < l ? p.idx[i] : l;
    h = p.idx[i] > h ? p.idx[i] : h;
  }
  free_plan(&p);
  *lo = l;
  *hi = h;
  return LU_OK;
}

lu_status lu_resample_rows(const lu_tensor *in, int64_t in0, int64_t in_full, const int64_t new_shape[3], int64_t out0,
                           int64_t nout, const double cur_sp[3], const double new_sp[3], const lu_resample_opts *o,
                           int threads, lu_tensor **out) {
  if (!in || !in->host || in->ndim != 4 || in->dtype != LU_F32)
    return lu_fail(LU_EARG, "resample rows: expected a host f32 tensor (C, rows, Y, X)");
  if (o->is_seg) return lu_fail(LU_EARG, "resample rows: images only");
  int64_t C = in->shape[0], din[3] = {in->shape[1], in->shape[2], in->shape[3]};
  if (in0 < 0 || in0 + din[0] > in_full)
    return lu_fail(LU_EARG, "resample rows: input rows [%lld, %lld) outside 0..%lld", (long long)in0,
                   (long long)(in0 + din[0]), (long long)in_full);
  for (int a = 1; a < 3; a++)
    if (new_shape[a] < 1) return lu_fail(LU_EARG, "resample rows: new shape axis %d is %lld", a, (long long)new_shape[a]);
  int sep, axis, ord;
  LU_TRY(stream_check(in_full, new_shape[0], din + 1, new_shape + 1, cur_sp, new_sp, o, &sep, &axis, &ord));
  int64_t dout[3] = {nout, new_shape[1], new_shape[2]};
  int64_t oshape[4] = {C, nout, new_shape[1], new_shape[2]};
  lu_tensor *t = NULL;
  LU_TRY(lu_tensor_new_host(&t, LU_F32, 4, oshape));
  /* the full problem keeps its shape: lu_resample copies, so do the windowed passes (identity taps) */
  int same = in_full == new_shape[0] && din[1] == new_shape[1] && din[2] == new_shape[2];
  row_win w = {in0, in_full, out0, new_shape[0]};
  int64_t nin = din[0] * din[1] * din[2], no = nout * new_shape[1] * new_shape[2];
  lu_status st = LU_OK;
  for (int64_t c = 0; c < C && st == LU_OK; c++)
    st = resample_channel_f((const float *)in->host + c * nin, din, (float *)t->host + c * no, dout, same ? 0 : sep,
                            axis, same ? 0 : o->order, o->order_z, threads, &w);
  if (st != LU_OK) {
    lu_tensor_free(t);
    return st;
  }
  *out = t;
  return LU_OK;
}
