/* Crop to the nonzero region as nnunetv2/preprocessing/cropping/cropping.py: crop_to_nonzero (used by the
 * preprocessor and the fingerprint extractor): the mask is "any channel
 * != 0" with holes filled (scipy binary_fill_holes: background not 6-connected to the array border; an
 * axis of size 1 makes every voxel a border voxel, so 2-D images get no filling), the box is the mask's
 * bounding box [start, end) per axis, and the segmentation gets -1 where it is 0 outside the mask. */
#ifndef LU_CROP_H
#define LU_CROP_H

#include <stdint.h>

#include "tensor.h"

/* data: C channels of d[0]*d[1]*d[2] float32 voxels. mask: d[0]*d[1]*d[2] bytes, 1 inside. */
lu_status lu_nonzero_mask(const float *data, int64_t channels, const int64_t d[3], uint8_t *mask);
/* Bounding box of mask; an empty mask gives the whole array. */
void lu_mask_bbox(const uint8_t *mask, const int64_t d[3], int64_t bbox[3][2]);

/* data: F32 (C, Z, Y, X). seg: (1, Z, Y, X) integer tensor or NULL. Outputs: the cropped data (F32) and
 * the cropped seg as I16 (-1 outside the mask where it was 0; without seg: 0 inside, -1 outside). */
lu_status lu_crop_to_nonzero(const lu_tensor *data, const lu_tensor *seg, lu_tensor **data_out,
                             lu_tensor **seg_out, int64_t bbox[3][2]);

#endif
