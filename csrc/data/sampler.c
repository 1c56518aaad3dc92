#include "data/sampler.h"

#include <math.h>
#include <string.h>

static double round_half_even(double v) {
  double r = floor(v + 0.5);
  if (r - v == 0.5 && fmod(r, 2.0) != 0.0) r -= 1.0;
  return r;
}

int lu_sampler_force_fg(int batch_size, double oversample, int j) {
  return !((double)j < round_half_even((double)batch_size * (1.0 - oversample)));
}

void lu_sampler_initial_patch(int ndim, const int64_t *patch, double rot, double scale_min, int64_t *out) {
  double cap = 90.0 / 360.0 * 2.0 * 3.14159265358979323846;
  rot = fabs(rot);
  if (rot > cap) rot = cap;
  double best[3], c = cos(rot), s = sin(rot);
  for (int d = 0; d < ndim; d++) best[d] = (double)patch[d];
  if (ndim == 3) {
    double p0 = (double)patch[0], p1 = (double)patch[1], p2 = (double)patch[2];
    /* row vector times R_x, R_y, R_z (batchgenerators rotate_coords_3d), one axis at a time */
    double rx[3] = {p0, p1 * c + p2 * s, -p1 * s + p2 * c};
    double ry[3] = {p0 * c - p2 * s, p1, p0 * s + p2 * c};
    double rz[3] = {p0 * c + p1 * s, -p0 * s + p1 * c, p2};
    for (int d = 0; d < 3; d++) {
      if (fabs(rx[d]) > best[d]) best[d] = fabs(rx[d]);
      if (fabs(ry[d]) > best[d]) best[d] = fabs(ry[d]);
      if (fabs(rz[d]) > best[d]) best[d] = fabs(rz[d]);
    }
  } else {
    double p0 = (double)patch[0], p1 = (double)patch[1];
    double r2[2] = {p0 * c + p1 * s, -p0 * s + p1 * c};
    for (int d = 0; d < 2; d++) if (fabs(r2[d]) > best[d]) best[d] = fabs(r2[d]);
  }
  for (int d = 0; d < ndim; d++) out[d] = (int64_t)(best[d] / scale_min);
}

static int64_t floordiv2(int64_t a) { return a >= 0 ? a / 2 : -((-a + 1) / 2); }

lu_status lu_sampler_bbox(const int64_t shape[3], const int64_t patch[3], const int64_t final_patch[3], int force_fg,
                          const lu_class_locs *classes, int nclasses, int annotated, int has_ignore, lu_rng *rng,
                          int64_t lo[3], int64_t hi[3], int *selected) {
  int64_t lb[3], ub[3];
  for (int d = 0; d < 3; d++) {
    if (shape[d] < 1 || patch[d] < 1 || final_patch[d] < 1 || final_patch[d] > patch[d])
      return lu_fail(LU_EARG, "sampler: axis %d: case size %lld, sampled patch %lld, final patch %lld (need final <= sampled)",
                     d, (long long)shape[d], (long long)patch[d], (long long)final_patch[d]);
    int64_t need = patch[d] - final_patch[d];
    if (need + shape[d] < patch[d]) need = patch[d] - shape[d];
    lb[d] = floordiv2(-need);
    ub[d] = shape[d] + need / 2 + need % 2 - patch[d];
  }
  int sel = -1;
  if (force_fg || has_ignore) {
    if (!force_fg) {
      if (annotated >= 0 && annotated < nclasses && classes[annotated].n > 0) sel = annotated;
    } else {
      int elig[256], ne = 0, has_annot = 0;
      for (int c = 0; c < nclasses && ne < 256; c++)
        if (classes[c].n > 0) { elig[ne++] = c; if (c == annotated) has_annot = 1; }
      if (has_annot && ne > 1) {
        int k = 0;
        for (int t = 0; t < ne; t++) if (elig[t] != annotated) elig[k++] = elig[t];
        ne = k;
      }
      if (ne > 0) sel = elig[lu_rng_int(rng, 0, ne - 1)];
    }
  }
  if (sel >= 0) {
    const lu_class_locs *cl = &classes[sel];
    if (cl->stride < 3) return lu_fail(LU_EARG, "sampler: class %d locations have %d columns, need >= 3", sel, cl->stride);
    int64_t v = lu_rng_int(rng, 0, cl->n - 1);
    const int64_t *row = cl->coords + v * cl->stride + (cl->stride - 3);
    for (int d = 0; d < 3; d++) {
      int64_t s = row[d] - patch[d] / 2;
      lo[d] = s > lb[d] ? s : lb[d];
    }
  } else {
    for (int d = 0; d < 3; d++) lo[d] = lu_rng_int(rng, lb[d], ub[d] >= lb[d] ? ub[d] : lb[d]);
  }
  for (int d = 0; d < 3; d++) hi[d] = lo[d] + patch[d];
  if (selected) *selected = sel;
  return LU_OK;
}

void lu_sampler_crop(const void *srcv, int es, int C, const int64_t sh[3], const int64_t lo[3], const int64_t hi[3],
                     const void *pad, void *dstv) {
  const char *src = (const char *)srcv;
  char *dst = (char *)dstv;
  int64_t os[3] = {hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]};
  int64_t vin = sh[0] * sh[1] * sh[2];
  /* x range that lies inside the image, shared by all rows */
  int64_t x0 = lo[2] < 0 ? 0 : lo[2], x1 = hi[2] > sh[2] ? sh[2] : hi[2];
  for (int c = 0; c < C; c++)
    for (int64_t k = 0; k < os[0]; k++)
      for (int64_t j = 0; j < os[1]; j++) {
        char *row = dst + (((int64_t)c * os[0] + k) * os[1] + j) * os[2] * es;
        int64_t z = lo[0] + k, y = lo[1] + j;
        int inside = z >= 0 && z < sh[0] && y >= 0 && y < sh[1] && x1 > x0;
        int64_t i = 0;
        if (inside) {
          for (; i < x0 - lo[2]; i++) memcpy(row + i * es, pad, es);
          memcpy(row + i * es, src + ((c * vin) + (z * sh[1] + y) * sh[2] + x0) * es, (size_t)((x1 - x0) * es));
          i += x1 - x0;
        }
        for (; i < os[2]; i++) memcpy(row + i * es, pad, es);
      }
}
