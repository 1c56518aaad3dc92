/* Medical and natural image files as a host tensor plus geometry.
 *
 * Geometry follows ITK/SimpleITK: spacing and origin in (x, y, z) order as GetSpacing/GetOrigin,
 * direction row-major 3x3 as GetDirection (column j is the physical direction of index axis j),
 * LPS physical space (NIfTI's RAS is converted on read and back on write, as ITK does).
 * Data is shaped (C, Z, Y, X): nnU-Net's array-axis order (SimpleITK's GetArrayFromImage order)
 * with channels first; 2-D images are (C, 1, Y, X). The file's native dtype is kept, except
 * that NIfTI scl_slope/scl_inter (when not 0/1) are applied into float32 as SimpleITK does. */
#ifndef LU_IMAGE_H
#define LU_IMAGE_H

#include "tensor.h"

typedef struct lu_image {
  lu_tensor *data;
  double spacing[3];
  double origin[3];
  double direction[9];
  /* Spatial dimension of the file as SimpleITK reports it (2 or 3); nnU-Net treats 2-D files
   * differently (spacing 999 on the first axis). Extension to the agreed struct. */
  int sdim;
  /* Spacing as the file's header holds it, before the reader's repairs (NIfTI: pixdim 0, NaN or Inf
   * read as 1, negative as its absolute value, as ITK does), so that `lunet verify` can name a broken
   * header. Same order and units as spacing; equal to spacing for formats without such repairs. */
  double header_spacing[3];
} lu_image;

/* Identity geometry, unit spacing, no data, sdim 3. */
void lu_image_init(lu_image *img);
/* Frees the data tensor (if any) and resets to lu_image_init. */
void lu_image_clear(lu_image *img);

/* Reader/writer chosen from the file ending (.nii, .nii.gz, .tif, .tiff, .png). */
lu_status lu_image_read(const char *path, lu_image *out);
lu_status lu_image_write(const char *path, const lu_image *img);

lu_status lu_nifti_read(const char *path, lu_image *out);
/* NIfTI-1 (.nii, or gzip for .nii.gz) with qform and sform both set (code SCANNER_ANAT) from the
 * geometry, as ITK writes them, so ITK/SimpleITK/nibabel read back the same geometry. */
lu_status lu_nifti_write(const char *path, const lu_image *img);

/* TIFF: pages -> Z, samples per pixel -> C; 8/16/32-bit ints, 32/64-bit float; striped or tiled;
 * BigTIFF. Geometry is not stored in TIFF files: the reader leaves unit spacing (the Lua layer
 * reads the nnU-Net sidecar json). The writer writes one zlib-compressed page per Z slice;
 * channels > 1 are written as interleaved samples. */
lu_status lu_tiff_read(const char *path, lu_image *out);
lu_status lu_tiff_write(const char *path, const lu_image *img);

/* PNG: grey, grey+alpha, RGB, RGBA at 1..16 bits -> (C, 1, Y, X) u8 or u16 (palette expanded to
 * RGB). The writer takes a (1, 1, Y, X) or (C, 1, Y, X) u8/u16 tensor, C in 1..4. */
lu_status lu_png_read(const char *path, lu_image *out);
lu_status lu_png_write(const char *path, const lu_image *img);

/* Helpers shared by the readers. */
int lu_path_has_suffix(const char *path, const char *suffix); /* case-insensitive */
/* Overflow-checked product of n non-negative sizes times elem; LU_EFORMAT naming path on overflow
 * or on a size above LU_IMAGE_MAX_BYTES. */
lu_status lu_image_check_size(const char *path, int n, const int64_t *dims, size_t elem, size_t *bytes);
/* Refuses `bytes` of decoded data from a file that could not hold them at `max_ratio` (the
 * format's best compression ratio), so a tiny file with absurd dimensions never allocates. */
lu_status lu_image_check_file_cap(const char *path, size_t bytes, unsigned max_ratio);
#define LU_IMAGE_MAX_BYTES ((size_t)1 << 40)

#endif
