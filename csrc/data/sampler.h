/* nnU-Net's patch sampling (nnunetv2/training/dataloading/data_loader.py: nnUNetDataLoader, its
 * get_do_oversample and get_bbox; nnunetv2/training/data_augmentation/compute_initial_patch_size.py:
 * get_patch_size): which batch positions are forced foreground, the
 * enlarged initial patch for rotation/scaling, and the bounding box of a patch in a case, random or
 * centred on a stored foreground voxel. All axes are (Z, Y, X); 2-D configurations use patch Z = 1. */
#ifndef LU_SAMPLER_H
#define LU_SAMPLER_H

#include <stdint.h>

#include "core/rng.h"
#include "core/status.h"

/* nnUNetDataLoader._oversample_last_XX_percent: j >= round(B * (1 - p)) (half to even). */
int lu_sampler_force_fg(int batch_size, double oversample, int j);

/* get_patch_size: patch of ndim (2 or 3) axes, rotation half-range rot (radians, capped at 90 deg),
 * per-axis max of |patch rotated about each axis separately| / scale_min, truncated. */
void lu_sampler_initial_patch(int ndim, const int64_t *patch, double rot, double scale_min, int64_t *out);

/* Stored foreground voxels of one class or region: n rows of `stride` int64 values whose last three
 * are (z, y, x) (nnU-Net stores (channel, z, y, x): stride 4). */
typedef struct lu_class_locs {
  const int64_t *coords;
  int64_t n;
  int stride;
} lu_class_locs;

/* get_bbox: shape = case shape, patch = sampled (possibly enlarged) patch, final = network patch.
 * force_fg picks one class uniformly among those with locations (annotated excluded when others
 * exist), then one voxel uniformly; annotated (index into classes, or -1) is used when !force_fg and
 * has_ignore. Falls back to a uniform box. lo/hi receive [lo, hi) per axis; *selected the class index
 * used or -1. */
lu_status lu_sampler_bbox(const int64_t shape[3], const int64_t patch[3], const int64_t final_patch[3], int force_fg,
                          const lu_class_locs *classes, int nclasses, int annotated, int has_ignore, lu_rng *rng,
                          int64_t lo[3], int64_t hi[3], int *selected);

/* Crop src (C, Z, Y, X; elements of elem_size bytes) to [lo, hi) with pad (elem_size bytes, e.g. a
 * float 0 or an int16 -1) outside the image; dst holds C * prod(hi - lo) elements. */
void lu_sampler_crop(const void *src, int elem_size, int C, const int64_t shape[3], const int64_t lo[3],
                     const int64_t hi[3], const void *pad, void *dst);

#endif
