/* PNG through libpng, as nnU-Net's NaturalImage2DIO sees it: grey -> (1, 1, Y, X), grey+alpha,
 * RGB, RGBA -> (2/3/4, 1, Y, X); 8-bit (1-bit grey as 0/1, 2/4-bit scaled) -> u8, 16-bit -> u16;
 * palette images expand to RGB(A). libpng errors longjmp to a handler that keeps the message. */
#include "img/image.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <png.h>

#include "core/atomic_file.h"

typedef struct png_msgs {
  char err[256];
} png_msgs;

static void on_error(png_structp png, png_const_charp msg) {
  png_msgs *m = png_get_error_ptr(png);
  if (m) snprintf(m->err, sizeof m->err, "%s", msg);
  png_longjmp(png, 1);
}
static void on_warning(png_structp png, png_const_charp msg) {}

lu_status lu_png_read(const char *path, lu_image *out) {
  lu_image_init(out);
  out->sdim = 2;
  out->spacing[2] = 999.0; /* nnU-Net's natural images: spacing (999, 1, 1) in array order */
  FILE *f = fopen(path, "rb");
  if (!f) return lu_fail(LU_EIO, "%s: cannot open: %s", path, strerror(errno));
  unsigned char sig[8];
  if (fread(sig, 1, 8, f) != 8 || png_sig_cmp(sig, 0, 8)) {
    fclose(f);
    return lu_fail(LU_EFORMAT, "%s: not a PNG file (bad signature)", path);
  }
  png_msgs m = {{0}};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &m, on_error, on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!info) {
    if (png) png_destroy_read_struct(&png, NULL, NULL);
    fclose(f);
    return lu_fail(LU_ENOMEM, "%s: cannot create libpng reader", path);
  }
  lu_tensor *volatile t = NULL;
  unsigned char *volatile row = NULL;
  png_bytep *volatile rows = NULL;
  if (setjmp(png_jmpbuf(png))) {
    if (t) lu_tensor_free(t);
    free(row);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return lu_fail(LU_EFORMAT, "%s: corrupt PNG: %s", path, m.err[0] ? m.err : "libpng error");
  }
  png_set_user_limits(png, 1u << 20, 1u << 20);
  png_init_io(png, f);
  png_set_sig_bytes(png, 8);
  png_read_info(png, info);
  png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  int depth = png_get_bit_depth(png, info), ct = png_get_color_type(png, info);
  if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  /* As Pillow (skimage's loader): 1-bit grey stays 0/1, 2- and 4-bit grey scale to 0..255. */
  if (ct == PNG_COLOR_TYPE_GRAY && depth == 1) png_set_packing(png);
  else if (ct == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  if (depth == 16) png_set_swap(png); /* PNG is big-endian; we want host order (little-endian here) */
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  int ch = png_get_channels(png, info);
  int bd = png_get_bit_depth(png, info);
  size_t elem = bd == 16 ? 2 : 1;
  int64_t shape[4] = {ch, 1, h, w};
  size_t bytes;
  lu_status rc = lu_image_check_size(path, 4, shape, elem, &bytes);
  if (rc == LU_OK) rc = lu_image_check_file_cap(path, bytes, 1100); /* deflate: at most ~1032:1 */
  if (rc == LU_OK) rc = lu_tensor_new_host((lu_tensor **)&t, bd == 16 ? LU_U16 : LU_U8, 4, shape);
  size_t rowbytes = png_get_rowbytes(png, info);
  if (rc == LU_OK && rowbytes != (size_t)w * (size_t)ch * elem)
    rc = lu_fail(LU_EFORMAT, "%s: unexpected PNG row size", path);
  if (rc == LU_OK) {
    /* Interlaced images need the whole image in memory at once; read it as one block. */
    unsigned char *img = malloc(rowbytes * h);
    rows = malloc(sizeof(png_bytep) * h);
    row = img;
    if (!img || !rows) {
      rc = lu_fail(LU_ENOMEM, "%s: out of memory", path);
    } else {
      for (png_uint_32 r = 0; r < h; r++) rows[r] = img + (size_t)r * rowbytes;
      png_read_image(png, rows);
      png_read_end(png, NULL);
      size_t plane = (size_t)w * h;
      unsigned char *dst = t->host;
      for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < ch; c++) memcpy(dst + ((size_t)c * plane + i) * elem, img + (i * (size_t)ch + (size_t)c) * elem, elem);
    }
  }
  free(row);
  free(rows);
  png_destroy_read_struct(&png, &info, NULL);
  fclose(f);
  if (rc != LU_OK) {
    if (t) lu_tensor_free(t);
    return rc;
  }
  out->data = t;
  return LU_OK;
}

lu_status lu_png_write(const char *path, const lu_image *img) {
  const lu_tensor *t = img->data;
  int64_t c0 = 1, y, x;
  if (t->ndim == 4 && t->shape[1] == 1) { c0 = t->shape[0]; y = t->shape[2]; x = t->shape[3]; }
  else if (t->ndim == 3 && t->shape[0] == 1) { y = t->shape[1]; x = t->shape[2]; }
  else if (t->ndim == 2) { y = t->shape[0]; x = t->shape[1]; }
  else return lu_fail(LU_EARG, "%s: PNG needs a 2-D image ((C, 1, Y, X), (1, Y, X) or (Y, X))", path);
  const int c = (int)(c0 > 0 && c0 <= 4 ? c0 : 0);
  if (t->dtype != LU_U8 && t->dtype != LU_U16)
    return lu_fail(LU_EUNSUPPORTED, "%s: PNG stores u8 or u16, not %s", path, lu_dtype_name(t->dtype));
  if (c < 1 || x < 1 || y < 1 || x > 0x7fffffff || y > 0x7fffffff)
    return lu_fail(LU_EARG, "%s: PNG needs 1 to 4 channels and a non-empty image", path);
  static const int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGBA};
  size_t elem = lu_dtype_size(t->dtype), plane = (size_t)(x * y), rowbytes = (size_t)x * (size_t)c * elem;
  char tmp[LU_ATOMIC_TMP_MAX];
  FILE *f;
  LU_TRY(lu_atomic_fopen(path, tmp, sizeof tmp, &f));
  png_msgs m = {{0}};
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &m, on_error, on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  unsigned char *volatile row = malloc(rowbytes);
  if (!info || !row) {
    if (png) png_destroy_write_struct(&png, info ? &info : NULL);
    free(row);
    fclose(f);
    lu_atomic_abort(tmp);
    return lu_fail(LU_ENOMEM, "%s: cannot create libpng writer", path);
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    free(row);
    fclose(f);
    lu_atomic_abort(tmp);
    return lu_fail(LU_EIO, "%s: writing PNG failed: %s", path, m.err[0] ? m.err : "libpng error");
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, (png_uint_32)x, (png_uint_32)y, (int)elem * 8, types[c], PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  if (elem == 2) png_set_swap(png);
  const unsigned char *src = t->host;
  for (int64_t r = 0; r < y; r++) {
    for (int64_t i = 0; i < x; i++)
      for (int ch = 0; ch < c; ch++)
        memcpy(row + ((size_t)i * (size_t)c + (size_t)ch) * elem, src + ((size_t)ch * plane + (size_t)r * (size_t)x + (size_t)i) * elem, elem);
    png_write_row(png, row);
  }
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  free(row);
  return lu_atomic_fclose(f, tmp, path, LU_OK);
}
