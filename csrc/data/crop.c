/* Crop to the nonzero bounding box (see crop.h). */
#include "data/crop.h"

#include <stdlib.h>
#include <string.h>

lu_status lu_nonzero_mask(const float *data, int64_t channels, const int64_t d[3], uint8_t *mask) {
  int64_t n = d[0] * d[1] * d[2];
  memset(mask, 0, (size_t)n);
  for (int64_t c = 0; c < channels; c++) {
    const float *p = data + c * n;
    for (int64_t i = 0; i < n; i++) mask[i] |= p[i] != 0.0f;
  }
  /* fill holes: flood the background from the border (6-connectivity); unreached background is a hole.
   * mark: 0 foreground, 1 background not reached, 2 reached. */
  uint8_t *mark = malloc((size_t)n);
  int64_t cap = 1024, top = 0;
  int64_t *stack = malloc(sizeof(int64_t) * (size_t)cap);
  if (!mark || !stack) {
    free(mark);
    free(stack);
    return lu_fail(LU_ENOMEM, "nonzero mask: no memory for %lld voxels", (long long)n);
  }
  for (int64_t i = 0; i < n; i++) mark[i] = mask[i] ? 0 : 1;
  const int64_t sz = d[1] * d[2], sy = d[2];
#define PUSH(idx)                                                                                 \
  do {                                                                                            \
    if (mark[idx] == 1) {                                                                         \
      mark[idx] = 2;                                                                              \
      if (top == cap) {                                                                           \
        int64_t *ns = realloc(stack, sizeof(int64_t) * (size_t)(cap * 2));                        \
        if (!ns) {                                                                                \
          free(stack);                                                                            \
          free(mark);                                                                             \
          return lu_fail(LU_ENOMEM, "nonzero mask: no memory for the fill stack");                \
        }                                                                                         \
        stack = ns;                                                                               \
        cap *= 2;                                                                                 \
      }                                                                                           \
      stack[top++] = (idx);                                                                       \
    }                                                                                             \
  } while (0)
  for (int64_t z = 0; z < d[0]; z++)
    for (int64_t y = 0; y < d[1]; y++)
      for (int64_t x = 0; x < d[2]; x++) {
        if (z == 0 || z == d[0] - 1 || y == 0 || y == d[1] - 1 || x == 0 || x == d[2] - 1) {
          int64_t i = z * sz + y * sy + x;
          PUSH(i);
        } else if (x == 1 && d[2] > 2) {
          x = d[2] - 2; /* skip the interior of the row */
        }
      }
  while (top > 0) {
    int64_t i = stack[--top];
    int64_t z = i / sz, y = (i / sy) % d[1], x = i % d[2];
    if (z > 0) PUSH(i - sz);
    if (z < d[0] - 1) PUSH(i + sz);
    if (y > 0) PUSH(i - sy);
    if (y < d[1] - 1) PUSH(i + sy);
    if (x > 0) PUSH(i - 1);
    if (x < d[2] - 1) PUSH(i + 1);
  }
#undef PUSH
  for (int64_t i = 0; i < n; i++) mask[i] = mark[i] != 2;
  free(mark);
  free(stack);
  return LU_OK;
}

void lu_mask_bbox(const uint8_t *mask, const int64_t d[3], int64_t bbox[3][2]) {
  int64_t lo[3] = {d[0], d[1], d[2]}, hi[3] = {-1, -1, -1};
  for (int64_t z = 0; z < d[0]; z++)
    for (int64_t y = 0; y < d[1]; y++) {
      const uint8_t *row = mask + (z * d[1] + y) * d[2];
      int64_t x0 = -1, x1 = -1;
      for (int64_t x = 0; x < d[2]; x++)
        if (row[x]) {
          if (x0 < 0) x0 = x;
          x1 = x;
        }
      if (x0 < 0) continue;
      if (z < lo[0]) lo[0] = z;
      if (z > hi[0]) hi[0] = z;
      if (y < lo[1]) lo[1] = y;
      if (y > hi[1]) hi[1] = y;
      if (x0 < lo[2]) lo[2] = x0;
      if (x1 > hi[2]) hi[2] = x1;
    }
  for (int a = 0; a < 3; a++) {
    if (hi[0] < 0) {
      bbox[a][0] = 0;
      bbox[a][1] = d[a];
    } else {
      bbox[a][0] = lo[a];
      bbox[a][1] = hi[a] + 1;
    }
  }
}

lu_status lu_crop_to_nonzero(const lu_tensor *data, const lu_tensor *seg, lu_tensor **data_out,
                             lu_tensor **seg_out, int64_t bbox[3][2]) {
  if (!data || !data->host || data->ndim != 4 || data->dtype != LU_F32)
    return lu_fail(LU_EARG, "crop_to_nonzero: data must be a host f32 tensor (C, Z, Y, X)");
  int64_t C = data->shape[0], d[3] = {data->shape[1], data->shape[2], data->shape[3]};
  if (seg && (!seg->host || seg->ndim != 4 || seg->shape[1] != d[0] || seg->shape[2] != d[1] ||
              seg->shape[3] != d[2]))
    return lu_fail(LU_EARG, "crop_to_nonzero: segmentation shape does not match the image");
  int64_t n = d[0] * d[1] * d[2];
  uint8_t *mask = malloc((size_t)(n ? n : 1));
  if (!mask) return lu_fail(LU_ENOMEM, "crop_to_nonzero: no memory for the mask");
  lu_status st = lu_nonzero_mask(data->host, C, d, mask);
  if (st != LU_OK) {
    free(mask);
    return st;
  }
  lu_mask_bbox(mask, d, bbox);
  int64_t cd[3] = {bbox[0][1] - bbox[0][0], bbox[1][1] - bbox[1][0], bbox[2][1] - bbox[2][0]};
  int64_t dshape[4] = {C, cd[0], cd[1], cd[2]};
  int64_t sc = seg ? seg->shape[0] : 1;
  int64_t sshape[4] = {sc, cd[0], cd[1], cd[2]};
  lu_tensor *dt = NULL, *stt = NULL;
  st = lu_tensor_new_host(&dt, LU_F32, 4, dshape);
  if (st == LU_OK) st = lu_tensor_new_host(&stt, LU_I16, 4, sshape);
  if (st != LU_OK) {
    lu_tensor_free(dt);
    free(mask);
    return st;
  }
  const float *src = data->host;
  float *dst = dt->host;
  int16_t *so = stt->host;
  for (int64_t c = 0; c < C; c++)
    for (int64_t z = 0; z < cd[0]; z++)
      for (int64_t y = 0; y < cd[1]; y++)
        memcpy(dst + ((c * cd[0] + z) * cd[1] + y) * cd[2],
               src + c * n + ((z + bbox[0][0]) * d[1] + y + bbox[1][0]) * d[2] + bbox[2][0],
               sizeof(float) * (size_t)cd[2]);
  for (int64_t c = 0; c < sc; c++)
    for (int64_t z = 0; z < cd[0]; z++)
      for (int64_t y = 0; y < cd[1]; y++)
        for (int64_t x = 0; x < cd[2]; x++) {
          int64_t si = ((z + bbox[0][0]) * d[1] + y + bbox[1][0]) * d[2] + x + bbox[2][0];
          int16_t v = 0;
          if (seg) {
            switch (seg->dtype) {
            case LU_I8: v = ((const int8_t *)seg->host)[c * n + si]; break;
            case LU_U8: v = ((const uint8_t *)seg->host)[c * n + si]; break;
            case LU_I16: v = ((const int16_t *)seg->host)[c * n + si]; break;
            case LU_U16: v = (int16_t)((const uint16_t *)seg->host)[c * n + si]; break;
            case LU_I32: v = (int16_t)((const int32_t *)seg->host)[c * n + si]; break;
            default: v = (int16_t)lu_host_get(seg, c * n + si); break;
            }
          }
          if (v == 0 && !mask[si]) v = -1;
          so[((c * cd[0] + z) * cd[1] + y) * cd[2] + x] = v;
        }
  free(mask);
  *data_out = dt;
  *seg_out = stt;
  return LU_OK;
}
