/* Foreground location sampling as nnunetv2/preprocessing/preprocessors/default_preprocessor.py:
 * DefaultPreprocessor._sample_foreground_locations: per
 * class (a list of labels: one label, a region, or the "annotated" tuple of the ignore label), the
 * voxels whose label is in the class, ordered by the class's labels in the order given and in C order
 * within a label; n = their number; target = max(min(10000, n), ceil(0.01 n)); the drawn voxels are
 * the first `target` of numpy RandomState(seed).permutation(n) (one generator per case, shared by the
 * classes in order; a class with no voxel draws nothing). Coordinates are (0, z, y, x). */
#ifndef LU_CLASSLOC_H
#define LU_CLASSLOC_H

#include <stdint.h>

#include "core/status.h"

typedef struct lu_class_locs {
  int64_t n;        /* number of sampled voxels */
  int32_t *coords;  /* n x 4: (0, z, y, x), malloc'd (NULL when n == 0) */
} lu_class_locs;

/* seg: d[0]*d[1]*d[2] labels. classes: nclasses lists; class k has class_len[k] labels at
 * class_labels[class_off[k] ...]. out: nclasses entries (free each coords with free()). */
lu_status lu_class_locations(const int16_t *seg, const int64_t d[3], const int32_t *class_labels,
                             const int32_t *class_off, const int32_t *class_len, int nclasses, uint32_t seed,
                             lu_class_locs *out);

#endif
