/* One case through nnU-Net v2's preprocessing (nnunetv2/preprocessing/preprocessors/default_preprocessor.py:
 * DefaultPreprocessor.run_case_npy): transpose -> crop to nonzero ->
 * normalise per channel -> resample data and seg -> foreground locations; seg becomes int8 when its
 * maximum is <= 127, else int16. Memory: about 3 float32 copies of the case at the peak. */
#ifndef LU_PREPROCESS_H
#define LU_PREPROCESS_H

#include <stdint.h>

#include "data/classloc.h"
#include "data/normalize.h"
#include "data/resample.h"
#include "tensor.h"

#define LU_PP_MAX_CHANNELS 64

typedef struct lu_pp_config {
  int transpose[3];                 /* transpose_forward */
  int ntarget;                      /* 3, or 2 for 2d configurations (the first axis keeps its spacing) */
  double target_spacing[3];         /* configuration spacing (already in transposed order) */
  int nch;
  lu_norm_scheme scheme[LU_PP_MAX_CHANNELS];
  int use_mask[LU_PP_MAX_CHANNELS];
  lu_norm_props props[LU_PP_MAX_CHANNELS];
  lu_resample_opts data_opts, seg_opts;
  /* classes for foreground sampling (ignored without seg) */
  int nclasses;
  const int32_t *class_labels, *class_off, *class_len;
  uint32_t seed;                    /* 1234 */
} lu_pp_config;

typedef struct lu_pp_result {
  lu_tensor *data;                  /* F32 (C, Z', Y', X') */
  lu_tensor *seg;                   /* I8 or I16 (1, Z', Y', X') */
  int64_t shape_before_cropping[3];
  int64_t bbox[3][2];
  int64_t shape_after_cropping[3];
  int64_t new_shape[3];
  double spacing_transposed[3];     /* original spacing in transposed order */
  double target_spacing[3];         /* the full 3-axis target used */
  int nclasses;
  lu_class_locs *locs;              /* nclasses entries (NULL without seg) */
} lu_pp_result;

/* images: n tensors (C_i, Z, Y, X) of any numeric dtype, concatenated along channels; seg: (1, Z, Y, X) integer
 * tensor or NULL (inference); spacing: the reader's spacing (array order, before transposition). */
lu_status lu_preprocess_case(const lu_tensor *const *images, int nimages, const lu_tensor *seg,
                             const double spacing[3], const lu_pp_config *cfg, int threads, lu_pp_result *res);
/* Same, taking ownership of an F32 (C, Z, Y, X) data tensor (freed by the call). */
lu_status lu_preprocess_owned(lu_tensor *data, const lu_tensor *seg, const double spacing[3],
                              const lu_pp_config *cfg, int threads, lu_pp_result *res);
void lu_pp_result_free(lu_pp_result *r);

/* Parallel over cases: `workers` threads each preprocess one case (with threads_per_case threads inside) and write
 * its case store. submit copies the images (concatenated as f32) and seg and queues the case; the caller keeps
 * at most `workers` cases in flight (lu_pp_pool_pending, collect with wait) so memory stays at about
 * workers x (3 copies of a case) plus the case being read by the caller.
 * collect returns a finished case (1) with its status, message and properties (data/seg already written and freed;
 * free res with lu_pp_result_free), or 0 when none is finished (wait = 1 blocks while cases are in flight). */
typedef struct lu_pp_pool lu_pp_pool;
lu_status lu_pp_pool_new(lu_pp_pool **out, const lu_pp_config *cfg, int workers, int threads_per_case,
                         const int64_t chunk[3], int level);
lu_status lu_pp_pool_submit(lu_pp_pool *p, int64_t tag, const lu_tensor *const *images, int nimages,
                            const lu_tensor *seg, const double spacing[3], const char *store_path);
int lu_pp_pool_collect(lu_pp_pool *p, int wait, int64_t *tag, lu_status *st, char *err, size_t nerr,
                       lu_pp_result *res);
int lu_pp_pool_pending(lu_pp_pool *p);
void lu_pp_pool_free(lu_pp_pool *p);

#endif
