/* nnU-Net v2's default training augmentation on host float32 arrays, one sample at a time or a
 * batch over threads, as nnunetv2/training/nnUNetTrainer/nnUNetTrainer.py: get_training_transforms (in
 * this order): spatial (rotation + scaling, one
 * interpolation pass: linear for the image, label-wise linear + argmax for the seg), Gaussian
 * noise, Gaussian blur, multiplicative brightness, contrast, simulated low resolution, inverted
 * gamma, gamma, mirroring, optional image masking, seg -1 -> 0. Deep-supervision targets come from
 * lu_aug_downsample_seg. Every draw comes from the sample's lu_rng, so a seed reproduces a batch.
 * Layout: image (C, Z, Y, X) f32, seg (Cs, Z, Y, X) i16; 2-D configurations use Z = 1. */
#ifndef LU_AUGMENT_H
#define LU_AUGMENT_H

#include <stdint.h>

#include "core/rng.h"
#include "core/status.h"

typedef struct lu_aug_params {
  int dim;                 /* 2 or 3: spatial dims of the configuration (2 requires Z = 1) */
  int dummy2d;             /* 3-D data augmented slice-wise in (Y, X), as nnUNetTrainer's
                              configure_rotation_dummyDA_mirroring_and_inital_patch_size decides */
  double p_rotation, rot_lo, rot_hi;        /* radians, each axis independently */
  double p_scaling, scale_lo, scale_hi;
  double p_noise, noise_lo, noise_hi;       /* sigma range */
  double p_blur, blur_p_channel, blur_lo, blur_hi;
  double p_brightness, brightness_lo, brightness_hi;
  double p_contrast, contrast_lo, contrast_hi;
  double p_lowres, lowres_p_channel, lowres_lo, lowres_hi;
  double p_gamma_inv, p_gamma, gamma_lo, gamma_hi;
  int mirror[3];           /* axis Z, Y, X may be flipped (each with probability p_mirror) */
  double p_mirror;
  uint32_t mask_channels;  /* bit c: set image channel c to 0 where seg < 0 (use_mask_for_norm) */
} lu_aug_params;

/* nnU-Net's defaults for dim (2/3) and dummy2d, rotation range rot (radians, symmetric), mirroring on
 * all spatial axes of the configuration. */
void lu_aug_defaults(lu_aug_params *p, int dim, int dummy2d, double rot);

/* What one sample drew (for logs and specs). */
typedef struct lu_aug_record {
  int rotated, scaled;
  double angle[3], scale;
  int noise, blur, brightness, contrast, lowres, gamma_inv, gamma;
  int flipped[3];
} lu_aug_record;

/* One sample: img (C, in) and seg (Cs, in) -> oimg (C, out), oseg (Cs, out). in[0] == out[0] unless
 * dim == 3 and not dummy2d. seg may be NULL (Cs = 0). rec may be NULL. */
lu_status lu_aug_sample(const lu_aug_params *p, lu_rng *rng, int C, int Cs, const int64_t in[3], const float *img,
                        const int16_t *seg, const int64_t out[3], float *oimg, int16_t *oseg, lu_aug_record *rec);

/* A batch of B samples of equal shapes, contiguous (B, C, in...) -> (B, C, out...); sample b uses
 * lu_rng_child(rng, b), so results do not depend on the thread count. recs may be NULL. */
lu_status lu_aug_batch(const lu_aug_params *p, const lu_rng *rng, int B, int C, int Cs, const int64_t in[3],
                       const float *img, const int16_t *seg, const int64_t out[3], float *oimg, int16_t *oseg,
                       int threads, lu_aug_record *recs);

/* Nearest-exact downsampling of a seg (Cs, in) to round(in * scale) per axis (half to even), as
 * DownsampleSegForDSTransform. oshape receives the output shape; *out is malloc'd (caller frees). */
lu_status lu_aug_downsample_seg(int Cs, const int64_t in[3], const int16_t *seg, const double scale[3],
                                int64_t oshape[3], int16_t **out);

/* Building blocks, exposed for specs. */
void lu_aug_gamma(float *x, int64_t n, double gamma, int invert, int retain_stats);
void lu_aug_mirror(void *x, int elem_size, int C, const int64_t shape[3], const int flip[3]);
int lu_aug_blur_kernel(double sigma, float *k, int kmax); /* returns the kernel size (odd) */
void lu_aug_blur_axis(float *x, const int64_t shape[3], int axis, const float *k, int ksize, float *tmp);
/* Spatial transform with a given matrix (row-major 3x3 over (Z,Y,X) for 3-D, or 2x2 over (Y,X)
 * applied per slice when planar != 0). */
void lu_aug_spatial(int C, int Cs, const int64_t in[3], const float *img, const int16_t *seg, const int64_t out[3],
                    const double *A, int planar, float *oimg, int16_t *oseg);

#endif
