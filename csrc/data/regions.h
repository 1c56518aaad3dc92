/* Region-based training (nnunetv2 documentation/region_based_training.md; nnunetv2/utilities/label_handling/
 * label_handling.py: LabelManager; nnUNetTrainer.validation_step): label maps -> region masks as
 * batchgeneratorsv2's ConvertSegmentationToRegionsTransform, and the validation step's hard TP/FP/FN
 * per region (sigmoid(logit) > 0.5, ignore mask = last target channel). Host tensors only.
 * Shapes: seg (B, Cs, spatial...) with 1..3 spatial axes; masks (B, R, spatial...). */
#ifndef LU_REGIONS_H
#define LU_REGIONS_H

#include <stdint.h>

#include "core/status.h"
#include "tensor.h"

/* Regions as a flat label list: region r holds labels[offsets[r] .. offsets[r+1]-1]. nnU-Net appends the
 * ignore label as one more (single-label) region when the dataset has one, so the last channel is the
 * ignore mask. */
typedef struct lu_regions {
  int n;                 /* number of regions (output channels) */
  const int32_t *labels;
  const int *offsets;    /* n + 1 entries, offsets[0] = 0 */
} lu_regions;

/* out[b, r, v] = (seg[b, channel, v] is one of region r's labels) as 0/1 in out's dtype (U8, I16, I32 or
 * F32). seg: host I16, I32, U8, I8, U16 or F32 (integers), >= 3 axes. *out is a new host tensor. */
lu_status lu_regions_convert(const lu_tensor *seg, int channel, const lu_regions *regions, lu_dtype dtype,
                             lu_tensor **out);

/* Hard TP/FP/FN per region channel of a validation batch (nnUNetTrainer.validation_step for regions):
 * pred = sigmoid(logits) > 0.5 computed in float32, target = the first R channels of target (0/1, any
 * host dtype of lu_regions_convert's seg list), mask = 1 - target[:, R] when has_ignore (target then has
 * R + 1 channels). logits (N, R, spatial...) host F32. tp/fp/fn receive R counts each. */
lu_status lu_regions_confusion(const lu_tensor *logits, const lu_tensor *target, int has_ignore, int64_t *tp,
                               int64_t *fp, int64_t *fn);

#endif
