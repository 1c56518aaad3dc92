/* Export of predicted logits to the original geometry, as nnunetv2/inference/export_prediction.py:
 * convert_predicted_logits_to_segmentation_with_correct_shape, on host arrays, one class volume at a time
 * where possible: the caller resamples class k (lu_resample), folds it into a running segmentation
 * (lu_ex_argmax_update / lu_ex_region_update), then un-crops and un-transposes. lu_ex_probs_to_seg applies
 * the same label rules to a whole (C, ...) tensor of probabilities (ensembling, validation). */
#ifndef LU_INFER_EXPORT_H
#define LU_INFER_EXPORT_H

#include <stdint.h>

#include "tensor.h"

/* Running argmax over classes (ties: lowest index, as numpy/torch argmax). cls: F32 or F16 volume of n
 * voxels (any shape); maxv: F32 scratch of n voxels; seg: U8 or U16 whose voxels [off, off + n) are
 * updated (off > 0: a slab of rows of a larger volume). k == 0 initialises. */
lu_status lu_ex_argmax_update(const lu_tensor *cls, int k, lu_tensor *maxv, lu_tensor *seg, int64_t off);

/* Region rule: seg[off + i] = label where sigmoid(cls[i]) > 0.5 (i.e. cls > 0). */
lu_status lu_ex_region_update(const lu_tensor *cls, int label, lu_tensor *seg, int64_t off);

/* probs (C, ...) -> segmentation (...) of dtype U8 (largest label < 256) or U16, as nnunetv2's
 * LabelManager.convert_probabilities_to_segmentation (nnunetv2/utilities/label_handling/label_handling.py):
 * argmax over C (ties: lowest index); with regions (order != NULL, n_order == C): zeros, then for i in
 * channel order seg[probs[i] > 0.5] = order[i]. probs: f16, f32 or f64 (compared in float32). */
lu_status lu_ex_probs_to_seg(const lu_tensor *probs, const int32_t *order, int n_order, lu_tensor **out);

/* In-place softmax (regions: sigmoid) over axis 0 of a (K, ...) F32 tensor. */
lu_status lu_ex_softmax(lu_tensor *t, int sigmoid, int threads);

/* A zero (or `fill0` in channel 0) tensor of shape (C, full) with `in` (C, bbox extents) inserted at the
 * bbox; in has 3 (seg) or 4 (C, Z, Y, X) dims. Any dtype. */
lu_status lu_ex_uncrop(const lu_tensor *in, const int64_t full[3], const int64_t bbox[3][2], double fill0,
                       lu_tensor **out);

/* Spatial transpose: out spatial axis i = in spatial axis perm[i]; a leading channel axis (4-D input) stays
 * first. Any dtype. */
lu_status lu_ex_transpose(const lu_tensor *in, const int perm[3], lu_tensor **out);

/* Cascade input: (C + n, Z, Y, X) F32 = data with one channel per label l (seg == l ? 1 : 0) appended.
 * seg: (1, Z, Y, X) or (Z, Y, X) integer tensor. */
lu_status lu_ex_onehot_append(const lu_tensor *data, const lu_tensor *seg, const int32_t *labels, int n,
                              lu_tensor **out);

#endif
