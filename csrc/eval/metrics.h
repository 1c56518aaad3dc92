/* Segmentation metrics as nnU-Net's compute_metrics: per label or region (a set of labels), the
 * confusion counts TP, FP, FN, TN of mask_ref = (ref in set) against mask_pred = (pred in set),
 * voxels whose reference equals the ignore label excluded. Dice/IoU are derived in Lua (NaN when
 * TP+FP+FN == 0, as nnU-Net). Label values are compared as numbers: a non-integral or negative voxel
 * value belongs to no label. */
#ifndef LU_EVAL_METRICS_H
#define LU_EVAL_METRICS_H

#include <stdint.h>

#include "tensor.h"

/* Largest label value accepted in a label set or as the ignore label. */
#define LU_EVAL_MAX_LABEL 4095

/* A list of n_items label sets: item i is labels[offsets[i] .. offsets[i+1]). */
typedef struct lu_label_sets {
  int n_items;
  const int32_t *offsets; /* n_items + 1 entries */
  const int32_t *labels;
} lu_label_sets;

/* counts: n_items * 4 int64 (TP, FP, FN, TN per item). ref and pred: host tensors, same element
 * count, any numeric dtype. has_ignore: 0/1. threads >= 1 splits the voxels. */
lu_status lu_eval_confusion(const lu_tensor *ref, const lu_tensor *pred, const lu_label_sets *sets,
                            int has_ignore, int32_t ignore_label, int threads, int64_t *counts);

/* Maps every voxel of t to a bin in [0, nbins-1): its integral value when 0 <= v < nbins-1, else
 * nbins-1 ("no label"). Used by the metrics and by the connected-component filters. */
lu_status lu_eval_value_bins(const lu_tensor *t, int64_t begin, int64_t end, int nbins, uint16_t *out);

#endif
