/* Value checks of images and label maps (bad values would otherwise pass silently into training: one Inf voxel
 * makes every normalised voxel Inf, and a label outside dataset.json's list trains as a phantom class).
 * One pass over the voxels, any host dtype; the first offending voxel, its value and the count are reported. */
#ifndef LU_VALUES_H
#define LU_VALUES_H

#include <stdint.h>

#include "core/status.h"
#include "tensor.h"

typedef enum lu_value_problem {
  LU_VALUES_OK = 0,
  LU_VALUES_NONFINITE,   /* NaN or +-Inf */
  LU_VALUES_NONINTEGER,  /* a label map value with a fraction (0.5) */
  LU_VALUES_NOT_ALLOWED  /* an integer label not in the allowed list */
} lu_value_problem;

typedef struct lu_value_find {
  lu_value_problem problem;
  int64_t first;         /* flat index of the first offending voxel */
  double value;          /* its value */
  int64_t count;         /* offending voxels of that kind */
} lu_value_find;

/* Non-finite voxels of a host tensor (integer dtypes have none). */
lu_status lu_values_finite(const lu_tensor *t, lu_value_find *out);
/* Label map check: non-finite, then non-integer, then not in allowed[0..nallowed) (the first kind found is
 * reported). nallowed < 0: any integer is allowed. */
lu_status lu_values_labels(const lu_tensor *t, const int64_t *allowed, int nallowed, lu_value_find *out);

/* Same checks, failing (LU_EFORMAT) with "<what> holds a non-finite voxel (inf) at (z, y, x) = (..); ..." or
 * "<what> holds label 7, not in dataset.json's labels {0, 1, 2}; ..." for a (C, Z, Y, X) tensor. labels_desc
 * (nullable) replaces the "{0, 1, 2}" built from allowed (when allowed holds values dataset.json does not list). */
lu_status lu_check_image_values(const lu_tensor *t, const char *what);
lu_status lu_check_label_values(const lu_tensor *t, const int64_t *allowed, int nallowed, const char *what,
                                const char *labels_desc);

#endif
