/* TIFF through libtiff: 2-D and multi-page 3-D (pages -> Z), samples per pixel -> channels,
 * 8/16/32-bit integers and 32/64-bit floats, striped or tiled, classic or BigTIFF.
 * libtiff's messages go to a per-open handler (TIFFOpenOptions) that keeps the first error, so
 * nothing is printed and every failure names the file and libtiff's reason. */
#include "img/image.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tiffio.h>

#include "core/atomic_file.h"

typedef struct tiff_msgs {
  char err[512];
} tiff_msgs;

static int on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
  tiff_msgs *m = user;
  if (m && !m->err[0]) {
    int n = snprintf(m->err, sizeof m->err, "%s: ", module ? module : "libtiff");
    if (n < 0 || (size_t)n >= sizeof m->err) n = 0;
    vsnprintf(m->err + n, sizeof m->err - (size_t)n, fmt, ap);
  }
  return 1; /* handled: do not call the global handler */
}

static int on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) { return 1; }

static TIFF *open_tiff(const char *path, int fd, const char *mode, tiff_msgs *m) {
  TIFFOpenOptions *o = TIFFOpenOptionsAlloc();
  if (!o) return NULL;
  TIFFOpenOptionsSetErrorHandlerExtR(o, on_error, m);
  TIFFOpenOptionsSetWarningHandlerExtR(o, on_warning, m);
  /* a single allocation above this is refused by libtiff (guards absurd strip/tile sizes) */
  TIFFOpenOptionsSetMaxSingleMemAlloc(o, (tmsize_t)1 << 31);
  TIFF *tif = fd >= 0 ? TIFFFdOpenExt(fd, path, mode, o) : TIFFOpenExt(path, mode, o);
  TIFFOpenOptionsFree(o);
  return tif;
}

static int tiff_dtype(int bps, int fmt, lu_dtype *dt) {
  if (fmt == SAMPLEFORMAT_UINT || fmt == 0) {
    if (bps == 8) *dt = LU_U8;
    else if (bps == 16) *dt = LU_U16;
    else if (bps == 32) *dt = LU_U32;
    else return 0;
  } else if (fmt == SAMPLEFORMAT_INT) {
    if (bps == 8) *dt = LU_I8;
    else if (bps == 16) *dt = LU_I16;
    else if (bps == 32) *dt = LU_I32;
    else return 0;
  } else if (fmt == SAMPLEFORMAT_IEEEFP) {
    if (bps == 32) *dt = LU_F32;
    else if (bps == 64) *dt = LU_F64;
    else return 0;
  } else {
    return 0;
  }
  return 1;
}

typedef struct page_info {
  uint32_t w, h;
  uint16_t spp, bps, fmt, planar, compression;
} page_info;

static lu_status get_page(const char *path, TIFF *tif, int page, page_info *p, tiff_msgs *m) {
  memset(p, 0, sizeof *p);
  if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &p->w) || !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &p->h))
    return lu_fail(LU_EFORMAT, "%s: page %d has no image width/length", path, page);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &p->spp);
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &p->bps);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &p->fmt);
  TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &p->planar);
  TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &p->compression);
  if (!TIFFIsCODECConfigured(p->compression)) {
    const TIFFCodec *c = TIFFFindCODEC(p->compression);
    return lu_fail(LU_EUNSUPPORTED, "%s: unsupported TIFF compression %u (%s) on page %d", path, p->compression,
                   c ? c->name : "unknown", page);
  }
  if (p->spp < 1) return lu_fail(LU_EFORMAT, "%s: page %d has %u samples per pixel", path, page, p->spp);
  uint16_t photometric = 0;
  if (TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photometric) && photometric == PHOTOMETRIC_PALETTE)
    return lu_fail(LU_EUNSUPPORTED, "%s: palette TIFF is not supported", path);
  if (photometric == PHOTOMETRIC_YCBCR && p->compression == COMPRESSION_JPEG)
    return lu_fail(LU_EUNSUPPORTED, "%s: lossy JPEG/YCbCr TIFF is not supported", path);
  lu_dtype dt;
  if (!tiff_dtype(p->bps, p->fmt, &dt))
    return lu_fail(LU_EUNSUPPORTED, "%s: unsupported TIFF sample type (%u bits, sample format %u) on page %d", path,
                   p->bps, p->fmt, page);
  return LU_OK;
}

/* Copies interleaved samples (n pixels of spp samples, elem bytes) into planar channels. */
static void deinterleave(unsigned char *dst, size_t plane, const unsigned char *src, size_t n, int spp, size_t elem) {
  if (spp == 1) {
    memcpy(dst, src, n * elem);
    return;
  }
  for (size_t i = 0; i < n; i++)
    for (int c = 0; c < spp; c++) memcpy(dst + (size_t)c * plane * elem + i * elem, src + (i * (size_t)spp + (size_t)c) * elem, elem);
}

/* Reads sample plane `sample` (planar-separate) or all `spp` interleaved samples (contiguous) of
 * the current page. base points at (c=0, z=page); channel c is at base + c * plane_elems * elem. */
static lu_status read_page(const char *path, TIFF *tif, int page, const page_info *pi, int sample, int spp,
                           unsigned char *base, size_t plane_elems, size_t elem, tiff_msgs *m) {
  page_info pp = *pi;
  pp.spp = (uint16_t)spp;
  const page_info *p = &pp;
  size_t w = p->w, h = p->h;
  if (TIFFIsTiled(tif)) {
    uint32_t tw = 0, th = 0;
    TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
    TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
    tmsize_t ts = TIFFTileSize(tif);
    if (tw == 0 || th == 0 || ts <= 0 || (size_t)ts < (size_t)tw * th * p->spp * elem)
      return lu_fail(LU_EFORMAT, "%s: bad tile layout on page %d%s%s", path, page, m->err[0] ? ": " : "", m->err);
    /* a tile no codec could fill from this file is a broken header, not an allocation to try */
    LU_TRY(lu_image_check_file_cap(path, (size_t)ts, 4096));
    unsigned char *buf = malloc((size_t)ts);
    if (!buf) return lu_fail(LU_ENOMEM, "%s: cannot allocate a %lld-byte tile", path, (long long)ts);
    for (uint32_t y0 = 0; y0 < h; y0 += th)
      for (uint32_t x0 = 0; x0 < w; x0 += tw) {
        ttile_t tile = TIFFComputeTile(tif, x0, y0, 0, (tsample_t)sample);
        if (TIFFReadEncodedTile(tif, tile, buf, ts) < 0) {
          free(buf);
          return lu_fail(LU_EFORMAT, "%s: cannot read tile %u of page %d: %s", path, (unsigned)tile, page,
                         m->err[0] ? m->err : "libtiff error");
        }
        size_t rows = (y0 + th > h) ? h - y0 : th, cols = (x0 + tw > w) ? w - x0 : tw;
        for (size_t r = 0; r < rows; r++)
          deinterleave(base + ((y0 + r) * w + x0) * elem, plane_elems, buf + r * tw * p->spp * elem, cols, p->spp, elem);
      }
    free(buf);
  } else {
    uint32_t rps = 0;
    TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rps);
    if (rps == 0 || rps > h) rps = (uint32_t)h;
    tmsize_t ss = TIFFStripSize(tif);
    size_t rowbytes = w * p->spp * elem;
    if (ss <= 0 || (size_t)ss < rowbytes * (rps < h ? rps : h))
      return lu_fail(LU_EFORMAT, "%s: bad strip layout on page %d%s%s", path, page, m->err[0] ? ": " : "", m->err);
    unsigned char *buf = malloc((size_t)ss);
    if (!buf) return lu_fail(LU_ENOMEM, "%s: cannot allocate a %lld-byte strip", path, (long long)ss);
    for (uint32_t y0 = 0; y0 < h; y0 += rps) {
      tstrip_t s = TIFFComputeStrip(tif, y0, (tsample_t)sample);
      size_t rows = (y0 + rps > h) ? h - y0 : rps;
      tmsize_t got = TIFFReadEncodedStrip(tif, s, buf, (tmsize_t)(rows * rowbytes));
      if (got < (tmsize_t)(rows * rowbytes)) {
        free(buf);
        return lu_fail(LU_EFORMAT, "%s: cannot read strip %u of page %d: %s", path, (unsigned)s, page,
                       m->err[0] ? m->err : "short strip");
      }
      deinterleave(base + (size_t)y0 * w * elem, plane_elems, buf, rows * w, p->spp, elem);
    }
    free(buf);
  }
  return LU_OK;
}

lu_status lu_tiff_read(const char *path, lu_image *out) {
  lu_image_init(out);
  if (access(path, R_OK) != 0) return lu_fail(LU_EIO, "%s: cannot open: %s", path, strerror(errno));
  tiff_msgs m = {{0}};
  TIFF *tif = open_tiff(path, -1, "r", &m);
  if (!tif) return lu_fail(LU_EFORMAT, "%s: not a readable TIFF: %s", path, m.err[0] ? m.err : "libtiff error");
  lu_status rc = LU_OK;
  lu_tensor *t = NULL;
  page_info p0;
  if ((rc = get_page(path, tif, 0, &p0, &m)) != LU_OK) goto done;
  /* Count pages (bounded: a directory loop is reported by libtiff as an error). */
  int64_t npages = 0;
  do {
    npages++;
    if (npages > 1000000) {
      rc = lu_fail(LU_EFORMAT, "%s: more than a million pages", path);
      goto done;
    }
  } while (TIFFReadDirectory(tif));
  if (m.err[0]) {
    rc = lu_fail(LU_EFORMAT, "%s: bad page directory: %s", path, m.err);
    goto done;
  }
  lu_dtype dt = LU_U8;
  tiff_dtype(p0.bps, p0.fmt, &dt);
  /* Planar-separate samples of a single page are slices, as tifffile.imread returns them (S, Y, X). */
  int separate = p0.planar == PLANARCONFIG_SEPARATE && p0.spp > 1;
  if (separate && npages > 1) {
    rc = lu_fail(LU_EUNSUPPORTED, "%s: multi-page planar-separate TIFF (%lld pages of %u samples) is not supported", path,
                 (long long)npages, p0.spp);
    goto done;
  }
  int64_t shape[4] = {separate ? 1 : p0.spp, separate ? p0.spp : npages, p0.h, p0.w};
  size_t bytes;
  if ((rc = lu_image_check_size(path, 4, shape, lu_dtype_size(dt), &bytes)) != LU_OK) goto done;
  /* LZW, the best-compressing TIFF codec here, stays under ~2730:1 */
  if ((rc = lu_image_check_file_cap(path, bytes, 4096)) != LU_OK) goto done;
  if ((rc = lu_tensor_new_host(&t, dt, 4, shape)) != LU_OK) {
    lu_fail_context(rc, "%s", path);
    goto done;
  }
  size_t elem = lu_dtype_size(dt), plane = (size_t)npages * p0.h * p0.w;
  for (int64_t z = 0; z < npages; z++) {
    if (!TIFFSetDirectory(tif, (tdir_t)z)) {
      rc = lu_fail(LU_EFORMAT, "%s: cannot go to page %lld: %s", path, (long long)z, m.err[0] ? m.err : "libtiff error");
      goto done;
    }
    page_info p;
    if ((rc = get_page(path, tif, (int)z, &p, &m)) != LU_OK) goto done;
    if (p.w != p0.w || p.h != p0.h || p.spp != p0.spp || p.bps != p0.bps || p.fmt != p0.fmt) {
      rc = lu_fail(LU_EFORMAT, "%s: page %lld (%ux%u, %u samples, %u bits) differs from page 0 (%ux%u, %u samples, "
                   "%u bits)", path, (long long)z, p.w, p.h, p.spp, p.bps, p0.w, p0.h, p0.spp, p0.bps);
      goto done;
    }
    if (p.planar != p0.planar) {
      rc = lu_fail(LU_EFORMAT, "%s: page %lld has a different planar configuration from page 0", path, (long long)z);
      goto done;
    }
    unsigned char *base = (unsigned char *)t->host + (size_t)z * p0.h * p0.w * elem;
    if (separate) {
      for (int smp = 0; smp < p0.spp && rc == LU_OK; smp++)
        rc = read_page(path, tif, (int)z, &p, smp, 1, base + (size_t)smp * p0.h * p0.w * elem, plane, elem, &m);
      if (rc != LU_OK) goto done;
    } else if ((rc = read_page(path, tif, (int)z, &p, 0, p.spp, base, plane, elem, &m)) != LU_OK) {
      goto done;
    }
  }
  out->data = t;
  t = NULL;
  out->sdim = (npages > 1 || separate) ? 3 : 2;
done:
  if (t) lu_tensor_free(t);
  TIFFClose(tif);
  return rc;
}

lu_status lu_tiff_write(const char *path, const lu_image *img) {
  const lu_tensor *t = img->data;
  int64_t c = 1, z = 1, y, x;
  if (t->ndim == 4) { c = t->shape[0]; z = t->shape[1]; y = t->shape[2]; x = t->shape[3]; }
  else if (t->ndim == 3) { z = t->shape[0]; y = t->shape[1]; x = t->shape[2]; }
  else if (t->ndim == 2) { y = t->shape[0]; x = t->shape[1]; }
  else return lu_fail(LU_EARG, "%s: expected a (C, Z, Y, X), (Z, Y, X) or (Y, X) tensor, got %d dims", path, t->ndim);
  if (c < 1 || c > 1024 || x < 1 || y < 1 || z < 1 || x > UINT32_MAX || y > UINT32_MAX || z > 65535)
    return lu_fail(LU_EARG, "%s: shape cannot be stored in TIFF", path);
  uint16_t bps, fmt;
  switch (t->dtype) {
  case LU_U8: bps = 8; fmt = SAMPLEFORMAT_UINT; break;
  case LU_I8: bps = 8; fmt = SAMPLEFORMAT_INT; break;
  case LU_U16: bps = 16; fmt = SAMPLEFORMAT_UINT; break;
  case LU_I16: bps = 16; fmt = SAMPLEFORMAT_INT; break;
  case LU_U32: bps = 32; fmt = SAMPLEFORMAT_UINT; break;
  case LU_I32: bps = 32; fmt = SAMPLEFORMAT_INT; break;
  case LU_F32: bps = 32; fmt = SAMPLEFORMAT_IEEEFP; break;
  case LU_F64: bps = 64; fmt = SAMPLEFORMAT_IEEEFP; break;
  default: return lu_fail(LU_EUNSUPPORTED, "%s: dtype %s cannot be written to TIFF", path, lu_dtype_name(t->dtype));
  }
  size_t elem = lu_dtype_size(t->dtype);
  size_t total = (size_t)lu_tensor_numel(t) * elem;
  char tmp[LU_ATOMIC_TMP_MAX];
  int fd;
  LU_TRY(lu_atomic_open(path, tmp, sizeof tmp, &fd));
  tiff_msgs m = {{0}};
  TIFF *tif = open_tiff(path, fd, total > ((size_t)3 << 30) ? "w8" : "w", &m);
  if (!tif) {
    close(fd);
    lu_atomic_abort(tmp);
    return lu_fail(LU_EIO, "%s: cannot create TIFF: %s", path, m.err[0] ? m.err : "libtiff error");
  }
  lu_status rc = LU_OK;
  size_t plane = (size_t)(z * y * x), rowbytes = (size_t)x * (size_t)c * elem;
  unsigned char *row = malloc(rowbytes);
  if (!row) rc = lu_fail(LU_ENOMEM, "%s: out of memory", path);
  for (int64_t k = 0; rc == LU_OK && k < z; k++) {
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (uint32_t)x);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, (uint32_t)y);
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)c);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, bps);
    TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, fmt);
    TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, (c == 3 && bps <= 16) ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
    int base = (c == 3 && bps <= 16) ? 3 : 1;
    if (c > base) {
      uint16_t extra[1024];
      for (int i = 0; i < c - base; i++) extra[i] = EXTRASAMPLE_UNSPECIFIED;
      TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, (uint16_t)(c - base), extra);
    }
    TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
    TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, TIFFDefaultStripSize(tif, 0));
    if (z > 1) {
      TIFFSetField(tif, TIFFTAG_SUBFILETYPE, FILETYPE_PAGE);
      TIFFSetField(tif, TIFFTAG_PAGENUMBER, (uint16_t)k, (uint16_t)z);
    }
    for (int64_t r = 0; rc == LU_OK && r < y; r++) {
      const unsigned char *src = (const unsigned char *)t->host + ((size_t)k * (size_t)y * (size_t)x + (size_t)r * (size_t)x) * elem;
      if (c == 1) memcpy(row, src, rowbytes);
      else
        for (int64_t i = 0; i < x; i++)
          for (int64_t ch = 0; ch < c; ch++) memcpy(row + ((size_t)i * (size_t)c + (size_t)ch) * elem, src + ((size_t)ch * plane + (size_t)i) * elem, elem);
      if (TIFFWriteScanline(tif, row, (uint32_t)r, 0) < 0)
        rc = lu_fail(LU_EIO, "%s: writing row %lld of page %lld failed: %s", path, (long long)r, (long long)k,
                     m.err[0] ? m.err : "libtiff error");
    }
    if (rc == LU_OK && !TIFFWriteDirectory(tif))
      rc = lu_fail(LU_EIO, "%s: writing page %lld failed: %s", path, (long long)k, m.err[0] ? m.err : "libtiff error");
  }
  free(row);
  TIFFClose(tif); /* closes fd */
  if (rc == LU_OK && m.err[0]) rc = lu_fail(LU_EIO, "%s: %s", path, m.err);
  if (rc != LU_OK) {
    lu_atomic_abort(tmp);
    return rc;
  }
  return lu_atomic_commit(tmp, path);
}
