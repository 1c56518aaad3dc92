/* NIfTI-1/NIfTI-2 (.nii, .nii.gz) with SimpleITK's (ITK 5.4 NiftiImageIO's) semantics.
 *
 * The header is parsed and validated by nifticlib (nifti_image_read with read_data = 0, which
 * handles NIfTI-1 and NIfTI-2 and both byte orders); the voxel data is read here with zlib
 * directly into the tensor (large buffer, no intermediate copy), so every failure (truncated or
 * corrupt gzip, data beyond the end of the file) is reported with the file name and the reason.
 *
 * Geometry: ITK picks the sform or the qform as follows (re-stated from ITK's behaviour):
 *   - both codes 0: origin 0, identity direction;
 *   - the sform is preferred when it agrees with the qform element-wise, or when it is an
 *     invertible affine whose normalised 3x3 is orthonormal (1e-4) and (the qform code is 0, or
 *     the sform code is SCANNER_ANAT, or the two transforms are very similar: same rotation,
 *     scales and offsets within 1e-4); otherwise the qform when its code is set; otherwise error.
 *   - RAS -> LPS: origin = (-m03, -m13, m23); direction column j = normalise(-m0j, -m1j, m2j).
 *   - spacing = pixdim (absolute) and origin scaled by the xyz unit (metre 1e3, micron 1e-3, else 1).
 * ITK compares "very similar" through SVDs; for an orthonormal-after-scaling sform the check
 * here (normalised columns and column norms) is the same test without the SVD. */
#include "img/image.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <nifti2_io.h>

#include "core/atomic_file.h"
#include "core/env.h"

#define LU_GZ_BUF (1u << 20)
#define LU_IO_CHUNK ((size_t)1 << 28)

static int nifti_to_dtype(int dt, lu_dtype *out) {
  switch (dt) {
  case NIFTI_TYPE_UINT8: *out = LU_U8; return 1;
  case NIFTI_TYPE_INT8: *out = LU_I8; return 1;
  case NIFTI_TYPE_INT16: *out = LU_I16; return 1;
  case NIFTI_TYPE_UINT16: *out = LU_U16; return 1;
  case NIFTI_TYPE_INT32: *out = LU_I32; return 1;
  case NIFTI_TYPE_UINT32: *out = LU_U32; return 1;
  case NIFTI_TYPE_INT64: *out = LU_I64; return 1;
  case NIFTI_TYPE_FLOAT32: *out = LU_F32; return 1;
  case NIFTI_TYPE_FLOAT64: *out = LU_F64; return 1;
  default: return 0;
  }
}

static int dtype_to_nifti(lu_dtype dt, int *code, int *bitpix) {
  switch (dt) {
  case LU_U8: *code = NIFTI_TYPE_UINT8; *bitpix = 8; return 1;
  case LU_I8: *code = NIFTI_TYPE_INT8; *bitpix = 8; return 1;
  case LU_I16: *code = NIFTI_TYPE_INT16; *bitpix = 16; return 1;
  case LU_U16: *code = NIFTI_TYPE_UINT16; *bitpix = 16; return 1;
  case LU_I32: *code = NIFTI_TYPE_INT32; *bitpix = 32; return 1;
  case LU_U32: *code = NIFTI_TYPE_UINT32; *bitpix = 32; return 1;
  case LU_I64: *code = NIFTI_TYPE_INT64; *bitpix = 64; return 1;
  case LU_F32: *code = NIFTI_TYPE_FLOAT32; *bitpix = 32; return 1;
  case LU_F64: *code = NIFTI_TYPE_FLOAT64; *bitpix = 64; return 1;
  default: return 0;
  }
}

/* Reads the header through zlib (plain files pass through) and checks what nifticlib trusts
 * (sizeof_hdr, dim[0..7]) before it sees the file, so a broken file is reported precisely and
 * nifticlib never runs on absurd dims (it overflows its stack on some NIfTI-2 dim[0] values).
 * Returns the header size (348 or 540). */
static int64_t rd_int(const unsigned char *b, int size, int swap) {
  unsigned char t[8];
  for (int i = 0; i < size; i++) t[i] = swap ? b[size - 1 - i] : b[i];
  if (size == 2) { int16_t v; memcpy(&v, t, 2); return v; }
  if (size == 4) { int32_t v; memcpy(&v, t, 4); return v; }
  int64_t v;
  memcpy(&v, t, 8);
  return v;
}

static const char *gz_msg(gzFile gz, int *err);

/* A float (size 4) or double (size 8) header field. */
static double rd_real(const unsigned char *b, int size, int swap) {
  unsigned char t[8];
  for (int i = 0; i < size; i++) t[i] = swap ? b[size - 1 - i] : b[i];
  if (size == 4) { float v; memcpy(&v, t, 4); return v; }
  double v;
  memcpy(&v, t, 8);
  return v;
}

/* Also returns pixdim[1..3] as the header holds them (nifticlib repairs 0, NaN and Inf). */
static lu_status precheck_header(const char *path, int *hdr_size, double pixdim[3]) {
  gzFile gz = gzopen(path, "rb");
  if (!gz) return lu_fail(LU_EIO, "%s: cannot open: %s", path, errno ? strerror(errno) : "zlib failure");
  unsigned char b[540];
  int n = gzread(gz, b, sizeof b);
  int err = 0;
  const char *msg = gz_msg(gz, &err);
  char msgbuf[256];
  snprintf(msgbuf, sizeof msgbuf, "%s", msg ? msg : "");
  gzclose(gz);
  if (n < 0 || (err != Z_OK && err != Z_BUF_ERROR))
    return lu_fail(LU_EFORMAT, "%s: corrupt gzip stream in the header: %s", path, msgbuf);
  if (n < 4) return lu_fail(LU_EFORMAT, "%s: truncated: file ends inside the NIfTI header (%d bytes)", path, n);
  int swap;
  int32_t le = (int32_t)rd_int(b, 4, 0), be = (int32_t)rd_int(b, 4, 1);
  if (le == 348 || le == 540) { *hdr_size = le; swap = 0; }
  else if (be == 348 || be == 540) { *hdr_size = be; swap = 1; }
  else return lu_fail(LU_EFORMAT, "%s: not a NIfTI file (sizeof_hdr is %d, expected 348 or 540)", path, le);
  if (n < *hdr_size)
    return lu_fail(LU_EFORMAT, "%s: truncated: file ends inside the %d-byte NIfTI header (%d bytes)", path, *hdr_size, n);
  int dtc = (int)(*hdr_size == 348 ? rd_int(b + 70, 2, swap) : rd_int(b + 12, 2, swap));
  lu_dtype dt;
  if (!nifti_to_dtype(dtc, &dt))
    return lu_fail(LU_EUNSUPPORTED, "%s: unsupported NIfTI datatype %d (%s)", path, dtc, nifti_datatype_string(dtc));
  int64_t dim[8];
  for (int i = 0; i < 8; i++)
    dim[i] = *hdr_size == 348 ? rd_int(b + 40 + 2 * i, 2, swap) : rd_int(b + 16 + 8 * i, 8, swap);
  for (int i = 0; i < 3; i++)
    pixdim[i] = *hdr_size == 348 ? rd_real(b + 80 + 4 * i, 4, swap) : rd_real(b + 112 + 8 * i, 8, swap);
  if (dim[0] < 1 || dim[0] > 7)
    return lu_fail(LU_EFORMAT, "%s: bad header: dim[0] = %lld (number of dimensions must be 1..7)", path, (long long)dim[0]);
  for (int i = 1; i <= dim[0]; i++)
    if (dim[i] < 1 || dim[i] > ((int64_t)1 << 40))
      return lu_fail(LU_EFORMAT, "%s: bad header: dim[%d] = %lld", path, i, (long long)dim[i]);
  return LU_OK;
}

/* Reads `bytes` of voxel data at `offset` of `iname` (gzip or plain) into a new malloc'd *out,
 * after checking that the file can hold that much (so absurd dims never allocate). */
static lu_status read_voxels(const char *path, const char *iname, int64_t offset, size_t bytes, void **out) {
  int is_gz = nifti_is_gzfile(iname);
  struct stat st;
  if (stat(iname, &st) != 0) return lu_fail(LU_EIO, "%s: cannot stat image data file %s: %s", path, iname, strerror(errno));
  if (offset < 0) return lu_fail(LU_EFORMAT, "%s: negative vox_offset %lld", path, (long long)offset);
  if (!is_gz) {
    if ((uint64_t)st.st_size < (uint64_t)offset + bytes)
      return lu_fail(LU_EFORMAT,
                     "%s: truncated or wrong header: dims need %zu bytes of voxel data at vox_offset %lld, "
                     "but the file has %lld bytes", path, bytes, (long long)offset, (long long)st.st_size);
  } else {
    /* deflate expands at most ~1032:1; refuse allocations a valid file could never fill. */
    uint64_t cap = (uint64_t)st.st_size * 1100u + (1u << 20);
    if ((uint64_t)offset + bytes > cap)
      return lu_fail(LU_EFORMAT,
                     "%s: absurd dimensions or vox_offset: %zu bytes of voxel data at offset %lld cannot "
                     "come from a %lld-byte gzip file", path, bytes, (long long)offset, (long long)st.st_size);
  }
  unsigned char *dst = malloc(bytes ? bytes : 1);
  if (!dst) return lu_fail(LU_ENOMEM, "%s: cannot allocate %zu bytes for the voxels", path, bytes);
  gzFile gz = gzopen(iname, "rb");
  if (!gz) {
    free(dst);
    return lu_fail(LU_EIO, "%s: cannot open: %s", path, strerror(errno));
  }
  gzbuffer(gz, LU_GZ_BUF);
  lu_status rc = LU_OK;
  int err = 0;
  if (gzseek(gz, (z_off_t)offset, SEEK_SET) != (z_off_t)offset) {
    const char *m = gz_msg(gz, &err);
    rc = (err != Z_OK && err != Z_BUF_ERROR)
             ? lu_fail(LU_EFORMAT, "%s: corrupt gzip stream before vox_offset %lld: %s", path, (long long)offset, m)
             : lu_fail(LU_EFORMAT, "%s: truncated: file ends before vox_offset %lld", path, (long long)offset);
    gzclose(gz);
    free(dst);
    return rc;
  }
  size_t done = 0;
  unsigned char *p = dst;
  *out = NULL;
  while (done < bytes) {
    size_t want = bytes - done < LU_IO_CHUNK ? bytes - done : LU_IO_CHUNK;
    int got = gzread(gz, p + done, (unsigned)want);
    if (got < 0 || (size_t)got < want) {
      const char *m = gz_msg(gz, &err);
      if (got > 0) done += (size_t)got;
      if (err != Z_OK && err != Z_BUF_ERROR)
        rc = lu_fail(LU_EFORMAT, "%s: corrupt %s stream after %zu of %zu voxel bytes: %s", path,
                     is_gz ? "gzip" : "data", done, bytes, m);
      else
        rc = lu_fail(LU_EFORMAT, "%s: truncated: voxel data ends after %zu of %zu bytes (vox_offset %lld)", path,
                     done, bytes, (long long)offset);
      gzclose(gz);
      free(dst);
      return rc;
    }
    done += (size_t)got;
  }
  if (is_gz) { /* reach the gzip trailer so a bad CRC or length is noticed */
    unsigned char extra[64];
    while (gzread(gz, extra, sizeof extra) > 0) {}
    const char *m = gz_msg(gz, &err);
    if (err != Z_OK && err != Z_BUF_ERROR)
      rc = lu_fail(LU_EFORMAT, "%s: corrupt gzip stream after the voxel data: %s", path, m);
    else if (err == Z_BUF_ERROR)
      rc = lu_fail(LU_EFORMAT, "%s: truncated gzip stream (the gzip trailer is missing)", path);
  }
  gzclose(gz);
  if (rc != LU_OK) free(dst);
  else *out = dst;
  return rc;
}

/* gzerror's message without the "<path>: " prefix zlib puts in front. */
static const char *gz_msg(gzFile gz, int *err) {
  const char *m = gzerror(gz, err);
  if (!m) return "";
  const char *c = strstr(m, ": ");
  return c ? c + 2 : m;
}

static void normalise3(double v[3]) {
  double s = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
  if (s == 0) return;
  for (int i = 0; i < 3; i++) v[i] /= s;
}

/* Is the sform an invertible affine whose column-normalised 3x3 is orthonormal? */
static int sform_orthonormal(const nifti_dmat44 *s) {
  double bottom = fabs(s->m[3][3] - 1.0) + fabs(s->m[3][0]) + fabs(s->m[3][1]) + fabs(s->m[3][2]);
  if (bottom > 1.1920929e-07) return 0;
  double r[3][3];
  for (int j = 0; j < 3; j++) {
    double c[3] = {s->m[0][j], s->m[1][j], s->m[2][j]};
    if (c[0] == 0 && c[1] == 0 && c[2] == 0) return 0;
    normalise3(c);
    for (int i = 0; i < 3; i++) r[i][j] = c[i];
  }
  for (int i = 0; i < 3; i++)
    for (int k = 0; k < 3; k++) {
      double d = 0;
      for (int j = 0; j < 3; j++) d += r[i][j] * r[k][j];
      if (fabs(d - (i == k)) > 1e-4) return 0;
    }
  return 1;
}

static int forms_similar(const nifti_dmat44 *s, const nifti_dmat44 *q) {
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++)
      if (fabs(s->m[i][j] - q->m[i][j]) > 1e-5) return 0;
  double t = 0, b = 0;
  for (int i = 0; i < 4; i++) t += fabs(s->m[i][3] - q->m[i][3]);
  for (int j = 0; j < 4; j++) b += fabs(s->m[3][j] - q->m[3][j]);
  return t <= 1e-7 && b <= 1e-7;
}

static int forms_very_similar(const nifti_dmat44 *s, const nifti_dmat44 *q) {
  for (int j = 0; j < 3; j++) {
    double cs[3] = {s->m[0][j], s->m[1][j], s->m[2][j]}, cq[3] = {q->m[0][j], q->m[1][j], q->m[2][j]};
    double ns = sqrt(cs[0] * cs[0] + cs[1] * cs[1] + cs[2] * cs[2]);
    double nq = sqrt(cq[0] * cq[0] + cq[1] * cq[1] + cq[2] * cq[2]);
    if (fabs(ns - nq) > 1e-4) return 0;
    normalise3(cs);
    normalise3(cq);
    for (int i = 0; i < 3; i++)
      if (fabs(cs[i] - cq[i]) > 1e-4) return 0;
  }
  for (int i = 0; i < 3; i++)
    if (fabs(s->m[i][3] - q->m[i][3]) > 1e-4) return 0;
  for (int j = 0; j < 4; j++)
    if (fabs(s->m[3][j] - q->m[3][j]) > 1e-4) return 0;
  return 1;
}

static lu_status geometry(const char *path, const nifti_image *nim, const double raw_pixdim[3], lu_image *out) {
  double scale = 1.0;
  switch (XYZT_TO_SPACE(nim->xyz_units)) {
  case NIFTI_UNITS_METER: scale = 1e3; break;
  case NIFTI_UNITS_MICRON: scale = 1e-3; break;
  default: break;
  }
  double pd[3] = {nim->dx, nim->dy, nim->dz};
  for (int i = 0; i < 3; i++) {
    out->spacing[i] = (pd[i] == 0 || !isfinite(pd[i]) ? 1.0 : fabs(pd[i])) * scale;
    out->header_spacing[i] = raw_pixdim[i] * scale;
  }
  if (out->sdim == 2) out->spacing[2] = out->header_spacing[2] = 1.0;
  if (nim->qform_code == NIFTI_XFORM_UNKNOWN && nim->sform_code == NIFTI_XFORM_UNKNOWN) return LU_OK;

  int prefer_s = forms_similar(&nim->sto_xyz, &nim->qto_xyz);
  if (!prefer_s || nim->sform_code != NIFTI_XFORM_UNKNOWN) {
    if (sform_orthonormal(&nim->sto_xyz)) {
      if (nim->qform_code == NIFTI_XFORM_UNKNOWN && nim->sform_code != NIFTI_XFORM_UNKNOWN) prefer_s = 1;
      else if (nim->sform_code == NIFTI_XFORM_SCANNER_ANAT) prefer_s = 1;
      else if (nim->qform_code != NIFTI_XFORM_UNKNOWN && nim->sform_code != NIFTI_XFORM_UNKNOWN)
        prefer_s = forms_very_similar(&nim->sto_xyz, &nim->qto_xyz);
    }
  }
  const nifti_dmat44 *m;
  if (prefer_s) m = &nim->sto_xyz;
  else if (nim->qform_code != NIFTI_XFORM_UNKNOWN) m = &nim->qto_xyz;
  else return lu_fail(LU_EFORMAT, "%s: the sform is not a rotation with scaling and there is no qform: no orthonormal "
                      "direction can be derived (ITK refuses this file too)", path);

  int nd = out->sdim;
  /* ITK scales the origin by the unit factor as well as the spacing */
  out->origin[0] = -m->m[0][3] * scale;
  out->origin[1] = -m->m[1][3] * scale;
  out->origin[2] = nd > 2 ? m->m[2][3] * scale : 0.0;
  for (int j = 0; j < nd; j++) {
    double c[3] = {-m->m[0][j], -m->m[1][j], nd > 2 ? m->m[2][j] : 0.0};
    normalise3(c);
    for (int i = 0; i < 3; i++) out->direction[i * 3 + j] = c[i];
  }
  if (nd == 2) {
    for (int i = 0; i < 3; i++) out->direction[i * 3 + 2] = out->direction[2 * 3 + i] = (i == 2);
  }
  return LU_OK;
}

static void byteswap(void *data, size_t n, size_t size) {
  unsigned char *p = data;
  for (size_t i = 0; i < n; i++, p += size)
    for (size_t a = 0, b = size - 1; a < b; a++, b--) {
      unsigned char t = p[a];
      p[a] = p[b];
      p[b] = t;
    }
}

/* value * slope + inter into float32 (float64 stays float64), as ITK's rescale does. */
static lu_status rescale(const char *path, lu_tensor **t, double slope, double inter) {
  lu_tensor *src = *t;
  lu_dtype dt = src->dtype == LU_F64 ? LU_F64 : LU_F32;
  int64_t n = lu_tensor_numel(src);
  lu_tensor *dst = NULL;
  if (dt == src->dtype) dst = src;
  else {
    lu_status st = lu_tensor_new_host(&dst, dt, src->ndim, src->shape);
    if (st != LU_OK) return lu_fail_context(st, "%s: applying scl_slope", path);
  }
#define LU_RESCALE(T)                                                                                     \
  do {                                                                                                    \
    const T *s = (const T *)src->host;                                                                    \
    if (dt == LU_F32) { float *d = dst->host; for (int64_t i = 0; i < n; i++) d[i] = (float)((double)s[i] * slope + inter); } \
    else { double *d = dst->host; for (int64_t i = 0; i < n; i++) d[i] = (double)s[i] * slope + inter; }   \
  } while (0)
  switch (src->dtype) {
  case LU_U8: LU_RESCALE(uint8_t); break;
  case LU_I8: LU_RESCALE(int8_t); break;
  case LU_I16: LU_RESCALE(int16_t); break;
  case LU_U16: LU_RESCALE(uint16_t); break;
  case LU_I32: LU_RESCALE(int32_t); break;
  case LU_U32: LU_RESCALE(uint32_t); break;
  case LU_I64: LU_RESCALE(int64_t); break;
  case LU_F32: LU_RESCALE(float); break;
  case LU_F64: LU_RESCALE(double); break;
  default: break;
  }
#undef LU_RESCALE
  if (dst != src) {
    lu_tensor_free(src);
    *t = dst;
  }
  return LU_OK;
}

lu_status lu_nifti_read(const char *path, lu_image *out) {
  lu_image_init(out);
  struct stat st;
  if (stat(path, &st) != 0) return lu_fail(LU_EIO, "%s: cannot open: %s", path, strerror(errno));
  if (!S_ISREG(st.st_mode)) return lu_fail(LU_EIO, "%s: not a regular file", path);
  int hdr_size = 0;
  double raw_pixdim[3];
  LU_TRY(precheck_header(path, &hdr_size, raw_pixdim));

  nifti_set_debug_level(0); /* nifticlib prints to stderr; its failures are reported below instead */
  nifti_image *nim = nifti_image_read(path, 0);
  if (!nim) return lu_fail(LU_EFORMAT, "%s: invalid NIfTI header (rejected by nifticlib: bad dims, datatype or "
                           "extensions)", path);
  lu_status rc = LU_OK;
  lu_tensor *t = NULL;
  lu_dtype dt;
  if (!nifti_to_dtype(nim->datatype, &dt)) {
    rc = lu_fail(LU_EUNSUPPORTED, "%s: unsupported NIfTI datatype %d (%s)", path, nim->datatype,
                 nifti_datatype_string(nim->datatype));
    goto done;
  }
  if (nim->ndim < 1 || nim->ndim > 7) {
    rc = lu_fail(LU_EFORMAT, "%s: bad number of dimensions %lld", path, (long long)nim->ndim);
    goto done;
  }
  int64_t d[8];
  for (int i = 1; i <= 7; i++) d[i] = i <= nim->ndim ? nim->dim[i] : 1;
  for (int i = 1; i <= 7; i++)
    if (d[i] < 1) {
      rc = lu_fail(LU_EFORMAT, "%s: bad dimension dim[%d] = %lld", path, i, (long long)d[i]);
      goto done;
    }
  for (int i = 5; i <= 7; i++)
    if (d[i] != 1) {
      rc = lu_fail(LU_EUNSUPPORTED, "%s: %lld-D NIfTI (dim[%d] = %lld) is not supported: only 2-D, 3-D and 4-D",
                   path, (long long)nim->ndim, i, (long long)d[i]);
      goto done;
    }
  int64_t shape[4] = {d[4], d[3], d[2], d[1]};
  size_t bytes;
  if ((rc = lu_image_check_size(path, 4, shape, lu_dtype_size(dt), &bytes)) != LU_OK) goto done;
  if ((int)lu_dtype_size(dt) != nim->nbyper) {
    rc = lu_fail(LU_EFORMAT, "%s: datatype %d has %d bytes per voxel in the header", path, nim->datatype, nim->nbyper);
    goto done;
  }
  if ((nim->nifti_type == NIFTI_FTYPE_NIFTI1_1 || nim->nifti_type == NIFTI_FTYPE_NIFTI2_1) &&
      nim->iname_offset < hdr_size) {
    rc = lu_fail(LU_EFORMAT, "%s: wrong vox_offset %lld: voxel data would overlap the %d-byte header", path,
                 (long long)nim->iname_offset, hdr_size);
    goto done;
  }
  void *buf = NULL;
  if ((rc = read_voxels(path, nim->iname ? nim->iname : path, nim->iname_offset, bytes, &buf)) != LU_OK) goto done;
  if (nim->byteorder != nifti_short_order() && lu_dtype_size(dt) > 1) byteswap(buf, bytes / lu_dtype_size(dt), lu_dtype_size(dt));
  if ((rc = lu_tensor_wrap_host(&t, dt, 4, shape, buf)) != LU_OK) {
    free(buf);
    goto done;
  }
  {
    double slope = nim->scl_slope, inter = nim->scl_inter;
    const double eps = 2.220446049250313e-16;
    if (isfinite(slope) && isfinite(inter) && fabs(slope) > eps && (fabs(slope - 1.0) > eps || fabs(inter) > eps))
      if ((rc = rescale(path, &t, slope, inter)) != LU_OK) goto done;
  }
  out->sdim = (nim->ndim <= 2) ? 2 : 3;
  if ((rc = geometry(path, nim, raw_pixdim, out)) != LU_OK) goto done;
  out->data = t;
  t = NULL;
done:
  if (t) lu_tensor_free(t);
  nifti_image_free(nim);
  return rc;
}

/* ----------------------------------------------------------------------------------------------- */

static lu_status write_all(const char *path, gzFile gz, FILE *f, const void *data, size_t bytes) {
  const unsigned char *p = data;
  size_t done = 0;
  while (done < bytes) {
    size_t n = bytes - done < LU_IO_CHUNK ? bytes - done : LU_IO_CHUNK;
    if (gz) {
      int w = gzwrite(gz, p + done, (unsigned)n);
      if (w <= 0) {
        int err;
        return lu_fail(LU_EIO, "%s: write failed: %s", path, gzerror(gz, &err));
      }
      done += (size_t)w;
    } else {
      size_t w = fwrite(p + done, 1, n, f);
      if (w != n) return lu_fail(LU_EIO, "%s: write failed: %s", path, strerror(errno));
      done += w;
    }
  }
  return LU_OK;
}

lu_status lu_nifti_write(const char *path, const lu_image *img) {
  const lu_tensor *t = img->data;
  if (!t || !t->host) return lu_fail(LU_EARG, "%s: no host data to write", path);
  int code, bitpix;
  if (!dtype_to_nifti(t->dtype, &code, &bitpix))
    return lu_fail(LU_EUNSUPPORTED, "%s: dtype %s cannot be written to NIfTI", path, lu_dtype_name(t->dtype));
  int64_t c = 1, z = 1, y = 1, x = 1;
  switch (t->ndim) {
  case 4: c = t->shape[0]; z = t->shape[1]; y = t->shape[2]; x = t->shape[3]; break;
  case 3: z = t->shape[0]; y = t->shape[1]; x = t->shape[2]; break;
  case 2: y = t->shape[0]; x = t->shape[1]; break;
  default: return lu_fail(LU_EARG, "%s: expected a (C, Z, Y, X), (Z, Y, X) or (Y, X) tensor, got %d dims", path, t->ndim);
  }
  if (c > 32767 || z > 32767 || y > 32767 || x > 32767)
    return lu_fail(LU_EARG, "%s: a dimension exceeds NIfTI-1's limit of 32767", path);
  int sdim = (img->sdim == 2 && z == 1) ? 2 : 3;

  _Static_assert(sizeof(nifti_1_header) == 348, "nifti_1_header must be 348 bytes");
  nifti_1_header h;
  memset(&h, 0, sizeof h);
  h.sizeof_hdr = 348;
  h.dim[0] = (short)(c > 1 ? 4 : sdim);
  h.dim[1] = (short)x;
  h.dim[2] = (short)y;
  h.dim[3] = (short)z;
  h.dim[4] = (short)c;
  for (int i = 5; i < 8; i++) h.dim[i] = 1;
  h.datatype = (short)code;
  h.bitpix = (short)bitpix;
  h.vox_offset = 352;
  h.scl_slope = 1.0f;
  h.scl_inter = 0.0f;
  h.xyzt_units = NIFTI_UNITS_MM | NIFTI_UNITS_SEC;
  h.qform_code = NIFTI_XFORM_SCANNER_ANAT;
  h.sform_code = NIFTI_XFORM_SCANNER_ANAT;
  memcpy(h.magic, "n+1", 4);
  for (int i = 0; i < 8; i++) h.pixdim[i] = 1.0f;
  for (int i = 0; i < sdim; i++) {
    if (!(img->spacing[i] > 0) || !isfinite(img->spacing[i]))
      return lu_fail(LU_EARG, "%s: spacing[%d] = %g must be positive", path, i, img->spacing[i]);
    h.pixdim[i + 1] = (float)img->spacing[i];
  }

  /* LPS -> RAS: negate the first two rows of the direction and the first two origin values. */
  double r[3][3];
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) r[i][j] = img->direction[i * 3 + j] * (i < 2 ? -1.0 : 1.0);
  if (sdim == 2)
    for (int i = 0; i < 3; i++) r[i][2] = r[2][i] = (i == 2) ? 1.0 : 0.0;
  double off[3] = {-img->origin[0], -img->origin[1], sdim == 2 ? 0.0 : img->origin[2]};
  nifti_dmat44 q = nifti_make_orthog_dmat44(r[0][0], r[0][1], r[0][2], r[1][0], r[1][1], r[1][2], r[2][0], r[2][1],
                                            r[2][2]);
  for (int i = 0; i < 3; i++) q.m[i][3] = off[i];
  double qb, qc, qd, qx, qy, qz, qfac;
  nifti_dmat44_to_quatern(q, &qb, &qc, &qd, &qx, &qy, &qz, NULL, NULL, NULL, &qfac);
  h.quatern_b = (float)qb;
  h.quatern_c = (float)qc;
  h.quatern_d = (float)qd;
  h.qoffset_x = (float)off[0];
  h.qoffset_y = (float)off[1];
  h.qoffset_z = (float)off[2];
  h.pixdim[0] = (float)qfac;
  for (int j = 0; j < 3; j++) {
    double sp = j < sdim ? img->spacing[j] : 1.0;
    h.srow_x[j] = (float)(r[0][j] * sp);
    h.srow_y[j] = (float)(r[1][j] * sp);
    h.srow_z[j] = (float)(r[2][j] * sp);
  }
  h.srow_x[3] = (float)off[0];
  h.srow_y[3] = (float)off[1];
  h.srow_z[3] = (float)off[2];

  char tmp[LU_ATOMIC_TMP_MAX];
  int fd;
  LU_TRY(lu_atomic_open(path, tmp, sizeof tmp, &fd));
  int gzip = lu_path_has_suffix(path, ".gz");
  gzFile gz = NULL;
  FILE *f = NULL;
  if (gzip) {
    const char *lvl = lu_env("LUNET_GZIP_LEVEL");
    char mode[8];
    snprintf(mode, sizeof mode, "wb%c", lvl && lvl[0] >= '0' && lvl[0] <= '9' ? lvl[0] : '1');
    gz = gzdopen(fd, mode);
    if (gz) gzbuffer(gz, LU_GZ_BUF);
  } else {
    f = fdopen(fd, "wb");
  }
  if (!gz && !f) {
    close(fd);
    lu_atomic_abort(tmp);
    return lu_fail(LU_EIO, "%s: cannot open temporary file for writing", path);
  }
  unsigned char ext[4] = {0, 0, 0, 0};
  lu_status rc = write_all(path, gz, f, &h, sizeof h);
  if (rc == LU_OK) rc = write_all(path, gz, f, ext, 4);
  if (rc == LU_OK) rc = write_all(path, gz, f, t->host, (size_t)lu_tensor_numel(t) * lu_dtype_size(t->dtype));
  if (gz) {
    int zr = gzclose(gz);
    if (rc == LU_OK && zr != Z_OK) rc = lu_fail(LU_EIO, "%s: closing gzip stream failed (%d)", path, zr);
  } else {
    if (fclose(f) != 0 && rc == LU_OK) rc = lu_fail(LU_EIO, "%s: close failed: %s", path, strerror(errno));
  }
  if (rc != LU_OK) {
    lu_atomic_abort(tmp);
    return rc;
  }
  return lu_atomic_commit(tmp, path);
}
