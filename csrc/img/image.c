/* Image dispatch by file ending, atomic file writes, shared size checks. */
#include "img/image.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

void lu_image_init(lu_image *img) {
  memset(img, 0, sizeof *img);
  for (int i = 0; i < 3; i++) {
    img->spacing[i] = img->header_spacing[i] = 1.0;
    img->direction[i * 4] = 1.0;
  }
  img->sdim = 3;
}

void lu_image_clear(lu_image *img) {
  if (img->data) lu_tensor_free(img->data);
  lu_image_init(img);
}

int lu_path_has_suffix(const char *path, const char *suffix) {
  size_t n = strlen(path), m = strlen(suffix);
  return n >= m && strcasecmp(path + n - m, suffix) == 0;
}

lu_status lu_image_check_size(const char *path, int n, const int64_t *dims, size_t elem, size_t *bytes) {
  size_t total = elem;
  for (int i = 0; i < n; i++) {
    if (dims[i] < 0) return lu_fail(LU_EFORMAT, "%s: negative dimension %lld", path, (long long)dims[i]);
    if (dims[i] != 0 && total > LU_IMAGE_MAX_BYTES / (size_t)dims[i])
      return lu_fail(LU_EFORMAT, "%s: absurd dimensions (the image would exceed %llu bytes)", path,
                     (unsigned long long)LU_IMAGE_MAX_BYTES);
    total *= (size_t)dims[i];
  }
  *bytes = total;
  return LU_OK;
}

lu_status lu_image_check_file_cap(const char *path, size_t bytes, unsigned max_ratio) {
  struct stat st;
  if (stat(path, &st) != 0) return lu_fail(LU_EIO, "%s: cannot stat: %s", path, strerror(errno));
  uint64_t cap = (uint64_t)st.st_size * max_ratio + (1u << 20);
  if ((uint64_t)bytes > cap)
    return lu_fail(LU_EFORMAT, "%s: absurd dimensions: the header declares %zu bytes of pixels, more than a %lld-byte "
                   "file can hold", path, bytes, (long long)st.st_size);
  return LU_OK;
}

lu_status lu_image_read(const char *path, lu_image *out) {
  lu_image_init(out);
  if (lu_path_has_suffix(path, ".nii") || lu_path_has_suffix(path, ".nii.gz")) return lu_nifti_read(path, out);
  if (lu_path_has_suffix(path, ".tif") || lu_path_has_suffix(path, ".tiff")) return lu_tiff_read(path, out);
  if (lu_path_has_suffix(path, ".png")) return lu_png_read(path, out);
  return lu_fail(LU_EUNSUPPORTED, "%s: unsupported image file ending (expected .nii, .nii.gz, .tif, .tiff, .png)", path);
}

lu_status lu_image_write(const char *path, const lu_image *img) {
  if (!img->data || !img->data->host)
    return lu_fail(LU_EARG, "%s: image to write has no host data", path);
  if (lu_path_has_suffix(path, ".nii") || lu_path_has_suffix(path, ".nii.gz")) return lu_nifti_write(path, img);
  if (lu_path_has_suffix(path, ".tif") || lu_path_has_suffix(path, ".tiff")) return lu_tiff_write(path, img);
  if (lu_path_has_suffix(path, ".png")) return lu_png_write(path, img);
  return lu_fail(LU_EUNSUPPORTED, "%s: unsupported image file ending (expected .nii, .nii.gz, .tif, .tiff, .png)", path);
}

