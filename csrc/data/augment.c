#include "data/augment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/threads.h"

#define AUG_PI 3.14159265358979323846

void lu_aug_defaults(lu_aug_params *p, int dim, int dummy2d, double rot) {
  memset(p, 0, sizeof *p);
  p->dim = dim;
  p->dummy2d = dummy2d;
  p->p_rotation = 0.2; p->rot_lo = -rot; p->rot_hi = rot;
  p->p_scaling = 0.2; p->scale_lo = 0.7; p->scale_hi = 1.4;
  p->p_noise = 0.1; p->noise_lo = 0.0; p->noise_hi = 0.1;
  p->p_blur = 0.2; p->blur_p_channel = 0.5; p->blur_lo = 0.5; p->blur_hi = 1.0;
  p->p_brightness = 0.15; p->brightness_lo = 0.75; p->brightness_hi = 1.25;
  p->p_contrast = 0.15; p->contrast_lo = 0.75; p->contrast_hi = 1.25;
  p->p_lowres = 0.25; p->lowres_p_channel = 0.5; p->lowres_lo = 0.5; p->lowres_hi = 1.0;
  p->p_gamma_inv = 0.1; p->p_gamma = 0.3; p->gamma_lo = 0.7; p->gamma_hi = 1.5;
  p->mirror[0] = dim == 3; p->mirror[1] = 1; p->mirror[2] = 1;
  p->p_mirror = 0.5;
}

/* batchgeneratorsv2 BGContrast: below 1 or above 1 with equal odds. */
static double bg_contrast(lu_rng *r, double lo, double hi) {
  if (lu_rng_double(r) < 0.5 && lo < 1.0) return lu_rng_uniform(r, lo, 1.0);
  return lu_rng_uniform(r, lo > 1.0 ? lo : 1.0, hi);
}

/* float -> nearest float16 -> float (normal range; the seg argmax compares float16 values). */
static float to_half(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  u += 0xFFFu + ((u >> 13) & 1u);
  u &= ~0x1FFFu;
  memcpy(&f, &u, 4);
  return f;
}

/* ---------------------------------------------------------------- spatial */

void lu_aug_spatial(int C, int Cs, const int64_t in[3], const float *img, const int16_t *seg, const int64_t out[3],
                    const double *A, int planar, float *oimg, int16_t *oseg) {
  double M[9];
  if (planar) {
    M[0] = 1; M[1] = 0; M[2] = 0;
    M[3] = 0; M[4] = A[0]; M[5] = A[1];
    M[6] = 0; M[7] = A[2]; M[8] = A[3];
  } else {
    memcpy(M, A, sizeof M);
  }
  const int64_t nz = in[0], ny = in[1], nx = in[2];
  const int64_t inv = nz * ny * nx, outv = out[0] * out[1] * out[2];
  const double cz = (nz - 1) / 2.0, cy = (ny - 1) / 2.0, cx = (nx - 1) / 2.0;
  int64_t o = 0;
  for (int64_t k = 0; k < out[0]; k++) {
    double qz = k - (out[0] - 1) / 2.0;
    for (int64_t j = 0; j < out[1]; j++) {
      double qy = j - (out[1] - 1) / 2.0;
      for (int64_t i = 0; i < out[2]; i++, o++) {
        double qx = i - (out[2] - 1) / 2.0;
        double s[3] = {M[0] * qz + M[1] * qy + M[2] * qx + cz, M[3] * qz + M[4] * qy + M[5] * qx + cy,
                       M[6] * qz + M[7] * qy + M[8] * qx + cx};
        if (planar) s[0] = (double)k; /* exact: the slice axis is not resampled */
        int64_t i0[3];
        double w1[3];
        for (int d = 0; d < 3; d++) {
          double f = floor(s[d]);
          i0[d] = (int64_t)f;
          w1[d] = s[d] - f;
        }
        /* up to 8 neighbours with weights */
        int64_t idx[8];
        float wt[8];
        int nn = 0;
        for (int a = 0; a < 2; a++) {
          int64_t zz = i0[0] + a;
          double wa = a ? w1[0] : 1.0 - w1[0];
          if (wa == 0.0 || zz < 0 || zz >= nz) continue;
          for (int b = 0; b < 2; b++) {
            int64_t yy = i0[1] + b;
            double wb = b ? w1[1] : 1.0 - w1[1];
            if (wb == 0.0 || yy < 0 || yy >= ny) continue;
            for (int c = 0; c < 2; c++) {
              int64_t xx = i0[2] + c;
              double wc = c ? w1[2] : 1.0 - w1[2];
              if (wc == 0.0 || xx < 0 || xx >= nx) continue;
              idx[nn] = (zz * ny + yy) * nx + xx;
              wt[nn] = (float)(wa * wb * wc);
              nn++;
            }
          }
        }
        for (int ch = 0; ch < C; ch++) {
          const float *src = img + (int64_t)ch * inv;
          float v = 0.f;
          for (int t = 0; t < nn; t++) v += wt[t] * src[idx[t]];
          oimg[(int64_t)ch * outv + o] = v;
        }
        int inside = s[0] >= 0 && s[0] <= nz - 1 && s[1] >= 0 && s[1] <= ny - 1 && s[2] >= 0 && s[2] <= nx - 1;
        for (int ch = 0; ch < Cs; ch++) {
          int16_t lab = -1;
          if (inside && nn > 0) {
            const int16_t *src = seg + (int64_t)ch * inv;
            int16_t labs[8];
            float val[8];
            int nl = 0;
            for (int t = 0; t < nn; t++) {
              int16_t l = src[idx[t]];
              int f = 0;
              for (; f < nl; f++) if (labs[f] == l) break;
              if (f == nl) { labs[nl] = l; val[nl] = 0.f; nl++; }
              val[f] += wt[t] * 1000.f;
            }
            float best = -1.f;
            for (int f = 0; f < nl; f++) {
              float h = to_half(val[f]);
              if (h > best || (h == best && labs[f] < lab)) { best = h; lab = labs[f]; }
            }
          }
          oseg[(int64_t)ch * outv + o] = lab;
        }
      }
    }
  }
}

/* Integer centre crop (no rotation or scaling drawn): start floor(n/2) - F//2, pad image 0, seg -1. */
static void center_crop(int C, int Cs, const int64_t in[3], const float *img, const int16_t *seg, const int64_t out[3],
                        float *oimg, int16_t *oseg) {
  int64_t st[3];
  for (int d = 0; d < 3; d++) st[d] = in[d] / 2 - out[d] / 2;
  const int64_t inv = in[0] * in[1] * in[2], outv = out[0] * out[1] * out[2];
  int64_t o = 0;
  for (int64_t k = 0; k < out[0]; k++)
    for (int64_t j = 0; j < out[1]; j++)
      for (int64_t i = 0; i < out[2]; i++, o++) {
        int64_t z = st[0] + k, y = st[1] + j, x = st[2] + i;
        int ok = z >= 0 && z < in[0] && y >= 0 && y < in[1] && x >= 0 && x < in[2];
        int64_t s = ok ? (z * in[1] + y) * in[2] + x : 0;
        for (int c = 0; c < C; c++) oimg[c * outv + o] = ok ? img[c * inv + s] : 0.f;
        for (int c = 0; c < Cs; c++) oseg[c * outv + o] = ok ? seg[c * inv + s] : (int16_t)-1;
      }
}

/* ---------------------------------------------------------------- intensity */

static double round_half_even(double v) {
  double r = floor(v + 0.5);
  if (r - v == 0.5 && fmod(r, 2.0) != 0.0) r -= 1.0;
  return r;
}

int lu_aug_blur_kernel(double sigma, float *k, int kmax) {
  double n = sigma * 6.0 + 0.5;
  int r = (int)round_half_even(n);
  int size = (r % 2 == 1) ? r : (n - r >= 0 ? r + 1 : r - 1);
  if (size < 1) size = 1;
  if (size > kmax) size = kmax | 1;
  double half = (size - 1) * 0.5, sum = 0;
  double tmp[256];
  for (int i = 0; i < size && i < 256; i++) {
    double x = -half + i;
    tmp[i] = exp(-0.5 * (x / sigma) * (x / sigma));
    sum += tmp[i];
  }
  for (int i = 0; i < size; i++) k[i] = (float)(tmp[i] / sum);
  return size;
}

static int64_t reflect(int64_t i, int64_t n) {
  if (n == 1) return 0;
  int64_t period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

void lu_aug_blur_axis(float *x, const int64_t shape[3], int axis, const float *k, int ksize, float *tmp) {
  int64_t n = shape[axis], stride = 1;
  for (int d = axis + 1; d < 3; d++) stride *= shape[d];
  int64_t outer = 1;
  for (int d = 0; d < axis; d++) outer *= shape[d];
  int h = ksize / 2;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t s = 0; s < stride; s++) {
      float *line = x + o * n * stride + s;
      for (int64_t i = 0; i < n; i++) tmp[i] = line[i * stride];
      for (int64_t i = 0; i < n; i++) {
        float acc = 0.f;
        for (int t = 0; t < ksize; t++) acc += k[t] * tmp[reflect(i + t - h, n)];
        line[i * stride] = acc;
      }
    }
}

void lu_aug_gamma(float *x, int64_t n, double gamma, int invert, int retain_stats) {
  if (n <= 0) return;
  if (invert) for (int64_t i = 0; i < n; i++) x[i] = -x[i];
  double mean = 0, sd = 0;
  if (retain_stats) {
    for (int64_t i = 0; i < n; i++) mean += x[i];
    mean /= (double)n;
    for (int64_t i = 0; i < n; i++) sd += (x[i] - mean) * (x[i] - mean);
    sd = n > 1 ? sqrt(sd / (double)(n - 1)) : 0.0;
  }
  float mn = x[0], mx = x[0];
  for (int64_t i = 1; i < n; i++) { if (x[i] < mn) mn = x[i]; if (x[i] > mx) mx = x[i]; }
  double r = (double)mx - mn, denom = r > 1e-7 ? r : 1e-7;
  for (int64_t i = 0; i < n; i++) x[i] = (float)(pow(((double)x[i] - mn) / denom, gamma) * r + mn);
  if (retain_stats) {
    double m2 = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) m2 += x[i];
    m2 /= (double)n;
    for (int64_t i = 0; i < n; i++) s2 += (x[i] - m2) * (x[i] - m2);
    s2 = n > 1 ? sqrt(s2 / (double)(n - 1)) : 0.0;
    double f = sd / (s2 > 1e-7 ? s2 : 1e-7);
    for (int64_t i = 0; i < n; i++) x[i] = (float)((x[i] - m2) * f + mean);
  }
  if (invert) for (int64_t i = 0; i < n; i++) x[i] = -x[i];
}

void lu_aug_mirror(void *xv, int es, int C, const int64_t sh[3], const int flip[3]) {
  if (!flip[0] && !flip[1] && !flip[2]) return;
  char *x = (char *)xv;
  const int64_t vol = sh[0] * sh[1] * sh[2];
  char t[16];
  for (int c = 0; c < C; c++) {
    char *v = x + (int64_t)c * vol * es;
    for (int64_t k = 0; k < sh[0]; k++)
      for (int64_t j = 0; j < sh[1]; j++)
        for (int64_t i = 0; i < sh[2]; i++) {
          int64_t k2 = flip[0] ? sh[0] - 1 - k : k, j2 = flip[1] ? sh[1] - 1 - j : j, i2 = flip[2] ? sh[2] - 1 - i : i;
          int64_t a = (k * sh[1] + j) * sh[2] + i, b = (k2 * sh[1] + j2) * sh[2] + i2;
          if (b <= a) continue; /* swap each pair once */
          memcpy(t, v + a * es, es);
          memcpy(v + a * es, v + b * es, es);
          memcpy(v + b * es, t, es);
        }
  }
}

/* Linear resize of one axis, align_corners False (PyTorch's source index rule). */
static void resize_axis_linear(const float *src, const int64_t ish[3], int axis, int64_t nout, float *dst) {
  int64_t n = ish[axis], stride = 1, outer = 1;
  for (int d = axis + 1; d < 3; d++) stride *= ish[d];
  for (int d = 0; d < axis; d++) outer *= ish[d];
  float sc = (float)n / (float)nout;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < nout; i++) {
      float s = ((float)i + 0.5f) * sc - 0.5f;
      if (s < 0) s = 0;
      int64_t i0 = (int64_t)s;
      if (i0 > n - 1) i0 = n - 1;
      int64_t i1 = i0 < n - 1 ? i0 + 1 : i0;
      float l1 = s - (float)i0, l0 = 1.f - l1;
      const float *a = src + (o * n + i0) * stride, *b = src + (o * n + i1) * stride;
      float *d = dst + (o * nout + i) * stride;
      for (int64_t t = 0; t < stride; t++) d[t] = l0 * a[t] + l1 * b[t];
    }
}

static int64_t nearest_exact(int64_t i, int64_t nin, int64_t nout) {
  float sc = (float)nin / (float)nout;
  int64_t s = (int64_t)floorf(((float)i + 0.5f) * sc);
  return s < nin - 1 ? s : nin - 1;
}

/* Nearest-exact down to round(shape * z) on the chosen axes, then linear back up. */
static lu_status lowres_channel(float *x, const int64_t sh[3], const int axes[3], double z) {
  int64_t ds[3];
  for (int d = 0; d < 3; d++) {
    ds[d] = axes[d] ? (int64_t)round_half_even((double)sh[d] * z) : sh[d];
    if (ds[d] < 1) ds[d] = 1;
  }
  int64_t nd = ds[0] * ds[1] * ds[2], n = sh[0] * sh[1] * sh[2];
  float *a = (float *)malloc(sizeof(float) * (size_t)(nd > n ? nd : n) * 2);
  if (!a) return lu_fail(LU_ENOMEM, "augment: simulated low resolution: no memory for %lld voxels", (long long)n);
  float *b = a + (nd > n ? nd : n);
  for (int64_t k = 0; k < ds[0]; k++)
    for (int64_t j = 0; j < ds[1]; j++)
      for (int64_t i = 0; i < ds[2]; i++) {
        int64_t sk = nearest_exact(k, sh[0], ds[0]), sj = nearest_exact(j, sh[1], ds[1]), si = nearest_exact(i, sh[2], ds[2]);
        a[(k * ds[1] + j) * ds[2] + i] = x[(sk * sh[1] + sj) * sh[2] + si];
      }
  int64_t cur[3] = {ds[0], ds[1], ds[2]};
  float *src = a, *dst = b;
  for (int d = 0; d < 3; d++) {
    if (cur[d] == sh[d]) continue;
    resize_axis_linear(src, cur, d, sh[d], dst);
    cur[d] = sh[d];
    float *t = src; src = dst; dst = t;
  }
  memcpy(x, src, sizeof(float) * (size_t)n);
  free(a);
  return LU_OK;
}

/* ---------------------------------------------------------------- one sample */

static void mat3_mul(const double *a, const double *b, double *o) {
  double t[9];
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) t[i * 3 + j] = a[i * 3] * b[j] + a[i * 3 + 1] * b[3 + j] + a[i * 3 + 2] * b[6 + j];
  memcpy(o, t, sizeof t);
}

static lu_status check_shapes(const lu_aug_params *p, int C, int Cs, const int64_t in[3], const int64_t out[3]) {
  if (p->dim != 2 && p->dim != 3) return lu_fail(LU_EARG, "augment: dim must be 2 or 3, got %d", p->dim);
  if (C < 1 || Cs < 0) return lu_fail(LU_EARG, "augment: %d image channels, %d seg channels", C, Cs);
  for (int d = 0; d < 3; d++)
    if (in[d] < 1 || out[d] < 1) return lu_fail(LU_EARG, "augment: empty shape on axis %d (in %lld, out %lld)", d, (long long)in[d], (long long)out[d]);
  int planar = p->dim == 2 || p->dummy2d;
  if (planar && in[0] != out[0])
    return lu_fail(LU_EARG, "augment: %s keeps axis 0 (in %lld, out %lld must be equal)",
                   p->dim == 2 ? "a 2-D configuration" : "dummy 2-D", (long long)in[0], (long long)out[0]);
  return LU_OK;
}

lu_status lu_aug_sample(const lu_aug_params *p, lu_rng *r, int C, int Cs, const int64_t in[3], const float *img,
                        const int16_t *seg, const int64_t out[3], float *oimg, int16_t *oseg, lu_aug_record *rec) {
  LU_TRY(check_shapes(p, C, Cs, in, out));
  lu_aug_record tmp_rec;
  if (!rec) rec = &tmp_rec;
  memset(rec, 0, sizeof *rec);
  int planar = p->dim == 2 || p->dummy2d;
  const int64_t n = out[0] * out[1] * out[2];

  /* 1. spatial: draw order as SpatialTransform (rotation?, scaling?, elastic?, angles, sync, scale) */
  rec->rotated = lu_rng_double(r) < p->p_rotation;
  rec->scaled = lu_rng_double(r) < p->p_scaling;
  (void)lu_rng_double(r); /* elastic deformation: off */
  rec->scale = 1.0;
  if (rec->rotated) for (int d = 0; d < 3; d++) rec->angle[d] = lu_rng_uniform(r, p->rot_lo, p->rot_hi);
  if (rec->scaled) { (void)lu_rng_double(r); rec->scale = lu_rng_uniform(r, p->scale_lo, p->scale_hi); }
  if (rec->rotated || rec->scaled) {
    double A[9];
    if (planar) {
      double a = rec->angle[2], c = cos(a), s = sin(a);
      A[0] = c * rec->scale; A[1] = -s * rec->scale; A[2] = s * rec->scale; A[3] = c * rec->scale;
    } else {
      double cx = cos(rec->angle[0]), sx = sin(rec->angle[0]), cy = cos(rec->angle[1]), sy = sin(rec->angle[1]);
      double cz = cos(rec->angle[2]), sz = sin(rec->angle[2]);
      double Rx[9] = {1, 0, 0, 0, cx, -sx, 0, sx, cx};
      double Ry[9] = {cy, 0, sy, 0, 1, 0, -sy, 0, cy};
      double Rz[9] = {cz, -sz, 0, sz, cz, 0, 0, 0, 1};
      double S[9] = {rec->scale, 0, 0, 0, rec->scale, 0, 0, 0, rec->scale};
      mat3_mul(Rz, Ry, A);
      mat3_mul(A, Rx, A);
      mat3_mul(A, S, A);
    }
    lu_aug_spatial(C, Cs, in, img, seg, out, A, planar, oimg, oseg);
  } else {
    center_crop(C, Cs, in, img, seg, out, oimg, oseg);
  }

  /* axes the intensity transforms treat as spatial: a 2-D configuration has no axis 0 */
  int sp[3] = {p->dim == 3, 1, 1};

  /* 4. Gaussian noise, one sigma for all channels */
  if (lu_rng_double(r) < p->p_noise) {
    rec->noise = 1;
    double sigma = lu_rng_uniform(r, p->noise_lo, p->noise_hi);
    for (int64_t i = 0; i < (int64_t)C * n; i++) oimg[i] += (float)(sigma * lu_rng_normal(r));
  }
  /* 5. Gaussian blur, per channel with p_per_channel, sigma per axis */
  if (lu_rng_double(r) < p->p_blur) {
    rec->blur = 1;
    int64_t mx = out[0] > out[1] ? out[0] : out[1];
    if (out[2] > mx) mx = out[2];
    float *tmp = (float *)malloc(sizeof(float) * (size_t)mx);
    if (!tmp) return lu_fail(LU_ENOMEM, "augment: blur: no memory");
    for (int c = 0; c < C; c++) {
      if (!(lu_rng_double(r) < p->blur_p_channel)) continue;
      for (int d = 0; d < 3; d++) {
        if (!sp[d]) continue;
        float k[255];
        int ks = lu_aug_blur_kernel(lu_rng_uniform(r, p->blur_lo, p->blur_hi), k, 255);
        lu_aug_blur_axis(oimg + c * n, out, d, k, ks, tmp);
      }
    }
    free(tmp);
  }
  /* 6. multiplicative brightness */
  if (lu_rng_double(r) < p->p_brightness) {
    rec->brightness = 1;
    for (int c = 0; c < C; c++) {
      float m = (float)bg_contrast(r, p->brightness_lo, p->brightness_hi);
      for (int64_t i = 0; i < n; i++) oimg[c * n + i] *= m;
    }
  }
  /* 7. contrast, range preserved */
  if (lu_rng_double(r) < p->p_contrast) {
    rec->contrast = 1;
    for (int c = 0; c < C; c++) {
      double f = bg_contrast(r, p->contrast_lo, p->contrast_hi), mean = 0;
      float *x = oimg + c * n, mn = x[0], mx = x[0];
      for (int64_t i = 0; i < n; i++) { mean += x[i]; if (x[i] < mn) mn = x[i]; if (x[i] > mx) mx = x[i]; }
      mean /= (double)n;
      for (int64_t i = 0; i < n; i++) {
        float v = (float)((x[i] - mean) * f + mean);
        x[i] = v < mn ? mn : (v > mx ? mx : v);
      }
    }
  }
  /* 8. simulated low resolution */
  if (lu_rng_double(r) < p->p_lowres) {
    rec->lowres = 1;
    int axes[3] = {sp[0] && !p->dummy2d, 1, 1};
    for (int c = 0; c < C; c++) {
      if (!(lu_rng_double(r) < p->lowres_p_channel)) continue;
      LU_TRY(lowres_channel(oimg + c * n, out, axes, lu_rng_uniform(r, p->lowres_lo, p->lowres_hi)));
    }
  }
  /* 9., 10. gamma with inversion, then without */
  if (lu_rng_double(r) < p->p_gamma_inv) {
    rec->gamma_inv = 1;
    for (int c = 0; c < C; c++) lu_aug_gamma(oimg + c * n, n, bg_contrast(r, p->gamma_lo, p->gamma_hi), 1, 1);
  }
  if (lu_rng_double(r) < p->p_gamma) {
    rec->gamma = 1;
    for (int c = 0; c < C; c++) lu_aug_gamma(oimg + c * n, n, bg_contrast(r, p->gamma_lo, p->gamma_hi), 0, 1);
  }
  /* 11. mirroring */
  for (int d = 0; d < 3; d++) rec->flipped[d] = p->mirror[d] && sp[d] && lu_rng_double(r) < p->p_mirror;
  lu_aug_mirror(oimg, sizeof(float), C, out, rec->flipped);
  if (Cs > 0) lu_aug_mirror(oseg, sizeof(int16_t), Cs, out, rec->flipped);
  /* 12. mask image outside the seg's valid region, 13. seg -1 -> 0 */
  if (Cs > 0) {
    for (int c = 0; c < C && c < 32; c++)
      if (p->mask_channels & (1u << c))
        for (int64_t i = 0; i < n; i++) if (oseg[i] < 0) oimg[c * n + i] = 0.f;
    for (int64_t i = 0; i < (int64_t)Cs * n; i++) if (oseg[i] == -1) oseg[i] = 0;
  }
  return LU_OK;
}

/* ---------------------------------------------------------------- batch over threads */

typedef struct {
  const lu_aug_params *p;
  const lu_rng *rng;
  int B, C, Cs, tid, nthreads;
  const int64_t *in, *out;
  const float *img;
  const int16_t *seg;
  float *oimg;
  int16_t *oseg;
  lu_aug_record *recs;
  lu_status st;
  char msg[256];
} aug_job;

static void aug_worker(aug_job *j) {
  int64_t inv = j->in[0] * j->in[1] * j->in[2], outv = j->out[0] * j->out[1] * j->out[2];
  for (int b = j->tid; b < j->B; b += j->nthreads) {
    lu_rng r;
    lu_rng_child(j->rng, (uint64_t)b, &r);
    lu_status st = lu_aug_sample(j->p, &r, j->C, j->Cs, j->in, j->img + (int64_t)b * j->C * inv,
                                 j->seg ? j->seg + (int64_t)b * j->Cs * inv : NULL, j->out,
                                 j->oimg + (int64_t)b * j->C * outv, j->oseg ? j->oseg + (int64_t)b * j->Cs * outv : NULL,
                                 j->recs ? &j->recs[b] : NULL);
    if (st != LU_OK) {
      j->st = st;
      strncpy(j->msg, lu_errmsg(), sizeof j->msg - 1);
      return;
    }
  }
}

/* lu_parallel_for over thread indices: jobs[t] takes samples t, t + T, ... */
static void aug_range(void *ctx, int64_t lo, int64_t hi) {
  for (int64_t t = lo; t < hi; t++) aug_worker((aug_job *)ctx + t);
}

lu_status lu_aug_batch(const lu_aug_params *p, const lu_rng *rng, int B, int C, int Cs, const int64_t in[3],
                       const float *img, const int16_t *seg, const int64_t out[3], float *oimg, int16_t *oseg,
                       int threads, lu_aug_record *recs) {
  LU_TRY(check_shapes(p, C, Cs, in, out));
  if (B < 1) return lu_fail(LU_EARG, "augment: batch of %d samples", B);
  if (threads < 1) threads = 1;
  if (threads > B) threads = B;
  if (threads > LU_MAX_THREADS) threads = LU_MAX_THREADS;
  aug_job jobs[LU_MAX_THREADS];
  for (int t = 0; t < threads; t++) {
    jobs[t] = (aug_job){p, rng, B, C, Cs, t, threads, in, out, img, Cs ? seg : NULL, oimg, Cs ? oseg : NULL, recs, LU_OK, {0}};
  }
  LU_TRY(lu_parallel_for(threads, threads, aug_range, jobs));
  for (int t = 0; t < threads; t++)
    if (jobs[t].st != LU_OK) return lu_fail(jobs[t].st, "augment: batch: %s", jobs[t].msg);
  return LU_OK;
}

lu_status lu_aug_downsample_seg(int Cs, const int64_t in[3], const int16_t *seg, const double scale[3],
                                int64_t os[3], int16_t **out) {
  for (int d = 0; d < 3; d++) {
    os[d] = (int64_t)round_half_even((double)in[d] * scale[d]);
    if (os[d] < 1) return lu_fail(LU_EARG, "augment: deep-supervision scale %g gives an empty axis %d (size %lld)", scale[d], d, (long long)in[d]);
  }
  int64_t ov = os[0] * os[1] * os[2], iv = in[0] * in[1] * in[2];
  int16_t *o = (int16_t *)malloc(sizeof(int16_t) * (size_t)(ov * (Cs > 0 ? Cs : 1)));
  if (!o) return lu_fail(LU_ENOMEM, "augment: deep-supervision target of %lld voxels", (long long)ov);
  for (int c = 0; c < Cs; c++)
    for (int64_t k = 0; k < os[0]; k++)
      for (int64_t j = 0; j < os[1]; j++)
        for (int64_t i = 0; i < os[2]; i++) {
          int64_t sk = nearest_exact(k, in[0], os[0]), sj = nearest_exact(j, in[1], os[1]), si = nearest_exact(i, in[2], os[2]);
          o[c * ov + (k * os[1] + j) * os[2] + i] = seg[c * iv + (sk * in[1] + sj) * in[2] + si];
        }
  *out = o;
  return LU_OK;
}
