/* Resampling as nnunetv2/preprocessing/resampling/default_resampling.py: resample_data_or_seg_to_shape, on
 * host arrays.
 *
 * Images: skimage.transform.resize(order, mode='edge', anti_aliasing=False) semantics, i.e. scipy
 * ndimage.zoom(grid_mode=True, mode='nearest'): source coordinate (k + 0.5) * in/out - 0.5, clamped to
 * the array; for order > 1 the array is edge-padded by 12 voxels and B-spline prefiltered (mirror
 * boundary init on the padded line); the result is clipped to the input's [min, max].
 * Computed separably (one 1-D pass per axis whose size changes, double precision along each line,
 * float32 between passes): equal to scipy's tensor-product sum up to rounding (~1e-6 relative).
 * Segmentations (batchgenerators 0.25 resize_segmentation): each label's indicator is interpolated
 * with `order` (clipped to [0, 1]); the winner is the lowest label with the highest score, except that
 * the nearest-neighbour label wins where it shares the top score (seg_tiebreak='nearest'). For order 1
 * this is computed per voxel with scipy's exact summation order, so ties are decided identically.
 * Separate-z (anisotropic): every slice across the low-resolution axis is resized in 2-D with `order`,
 * then that axis is resampled with nearest neighbour (order_z 0: floor(c + 0.5) of the clamped
 * coordinate) or linear (order_z 1). */
#ifndef LU_RESAMPLE_H
#define LU_RESAMPLE_H

#include <stdint.h>

#include "tensor.h"

typedef struct lu_resample_opts {
  int is_seg;
  int order;             /* in-plane / 3-D order: 0, 1 or 3 (2..5 for images) */
  int order_z;           /* order across the low-resolution axis with separate z: 0 or 1 */
  int force_separate_z;  /* -1: decide from spacing (None), 0: never, 1: always */
  double aniso_threshold;/* 3 in nnU-Net */
} lu_resample_opts;

void lu_resample_opts_default(lu_resample_opts *o, int is_seg);

/* int(round(old_sp / new_sp * n)) per axis, round half to even as Python. */
void lu_compute_new_shape(const int64_t old_shape[3], const double old_sp[3], const double new_sp[3],
                          int64_t new_shape[3]);
/* determine_do_sep_z_and_axis: *axis is -1 when not separate. */
void lu_resample_sep_z_axis(int force_separate_z, const double cur_sp[3], const double new_sp[3],
                            double threshold, int *do_sep, int *axis);

/* in: (C, Z, Y, X) host tensor, F32 (images) or I8/I16/I32 (segmentations, is_seg). *out: new tensor
 * of the same dtype, shape (C, new_shape). If the shape does not change the result is a copy. */
lu_status lu_resample(const lu_tensor *in, const int64_t new_shape[3], const double cur_sp[3],
                      const double new_sp[3], const lu_resample_opts *opts, int threads, lu_tensor **out);

/* Streaming along axis 0 (export of large predictions, slab by slab): rows [out0, out0 + nout) of what
 * lu_resample (image options) returns for a full input of in_full rows along axis 0, computed from the input
 * rows [in0, in0 + in->shape[1]) only (in: (C, rows, Y, X) F32 with the full Y and X). Equal bit for bit to
 * those rows of the full result. Only orders 0 and 1 along axis 0 stream (a spline prefilter couples every
 * row, and so does cubic resizing's clip to the whole volume's range unless z is separate across axis 0):
 * LU_EARG otherwise, and when the input rows miss one that the outputs read. */
lu_status lu_resample_rows(const lu_tensor *in, int64_t in0, int64_t in_full, const int64_t new_shape[3], int64_t out0,
                           int64_t nout, const double cur_sp[3], const double new_sp[3], const lu_resample_opts *opts,
                           int threads, lu_tensor **out);
/* The input rows [*lo, *hi] (inclusive) that output rows [out0, out0 + nout) read, for full (Z, Y, X) shapes
 * in_shape -> out_shape; LU_EARG (with the reason) when the resampling does not stream. */
lu_status lu_resample_rows_needed(const int64_t in_shape[3], const int64_t out_shape[3], const double cur_sp[3],
                                  const double new_sp[3], const lu_resample_opts *opts, int64_t out0, int64_t nout,
                                  int64_t *lo, int64_t *hi);

/* Building blocks, exposed for specs. rank 1..3, row-major dims. */
lu_status lu_resize_image(const float *in, const int64_t *din, int rank, float *out, const int64_t *dout,
                          int order, int clip, int threads);
lu_status lu_resize_seg(const int16_t *in, const int64_t *din, int rank, int16_t *out, const int64_t *dout,
                        int order, int threads);

#endif
