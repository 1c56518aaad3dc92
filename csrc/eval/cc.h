/* Connected-component labelling of binary masks in (Z, Y, X), run-length based union-find.
 * Connectivity 26 (full, scipy/skimage default used by nnU-Net's acvl_utils), 18 or 6; a 2-D image
 * is Z = 1, where 26 means 8-connectivity. Labels are numbered 1..n in raster order of each
 * component's first voxel, exactly as scipy.ndimage.label and skimage.measure.label number them. */
#ifndef LU_EVAL_CC_H
#define LU_EVAL_CC_H

#include <stdint.h>

#include "tensor.h"

/* labels: NULL or nz*ny*nx int32 receiving 0 (background) or the component label.
 * *sizes_out (optional): malloc'd array of n+1 voxel counts, index = label (index 0 unused, 0). */
lu_status lu_cc_label(const uint8_t *mask, int64_t nz, int64_t ny, int64_t nx, int connectivity, int threads,
                      int32_t *labels, int32_t *n_out, int64_t **sizes_out);

/* Keeps every component whose size equals the largest size (nnU-Net keeps all tied maxima); voxels
 * of the other components are set to 2 in mask (kept ones stay 1). *n_removed counts those voxels. */
lu_status lu_cc_mark_all_but_largest(uint8_t *mask, int64_t nz, int64_t ny, int64_t nx, int connectivity,
                                     int threads, int64_t *n_removed);

/* nnU-Net's remove_all_but_largest_component_from_segmentation on a host label image, in place:
 * mask = voxels whose value is in labels[0..n_labels), keep its largest component(s), set the
 * other mask voxels to background. seg: (Z,Y,X) or (1,Z,Y,X) or (Y,X), any numeric dtype. */
lu_status lu_cc_keep_largest_seg(lu_tensor *seg, const int32_t *labels, int n_labels, double background,
                                 int connectivity, int threads);

#endif
