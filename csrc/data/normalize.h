/* Per-channel intensity normalisation as nnU-Net v2's default schemes
 * (nnunetv2/preprocessing/normalization/default_normalization_schemes.py), in place on
 * float32, eps 1e-8 (float32 target). */
#ifndef LU_NORMALIZE_H
#define LU_NORMALIZE_H

#include <stdint.h>

#include "core/status.h"

typedef enum lu_norm_scheme {
  LU_NORM_ZSCORE = 0, /* ZScoreNormalization */
  LU_NORM_CT,         /* CTNormalization */
  LU_NORM_RESCALE01,  /* RescaleTo01Normalization */
  LU_NORM_RGB01,      /* RGBTo01Normalization */
  LU_NORM_NONE        /* NoNormalization */
} lu_norm_scheme;

/* Dataset foreground intensity statistics of one channel (fingerprint), used by CT. */
typedef struct lu_norm_props {
  double mean, std, percentile_00_5, percentile_99_5;
} lu_norm_props;

/* "CTNormalization", "ZScoreNormalization", ... (the class names in plans.json). */
lu_status lu_norm_parse(const char *name, lu_norm_scheme *out);
const char *lu_norm_name(lu_norm_scheme s);

/* x: n voxels of one channel. seg (n voxels, -1 outside the nonzero mask) is needed for ZScore with
 * use_mask (mask = seg >= 0). props is needed for CT. */
lu_status lu_normalize(float *x, int64_t n, lu_norm_scheme scheme, int use_mask, const int16_t *seg,
                       const lu_norm_props *props);

#endif
