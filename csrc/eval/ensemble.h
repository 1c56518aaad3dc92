/* Probability averaging and conversion to a segmentation, as nnU-Net's ensembling and
 * LabelManager.convert_probabilities_to_segmentation. */
#ifndef LU_EVAL_ENSEMBLE_H
#define LU_EVAL_ENSEMBLE_H

#include "tensor.h"

/* out = mean of n host tensors (f16/f32/f64, same shape), computed in float32 as nnU-Net does
 * (avg = float32(p1); avg += p2; ...; avg /= n). */
lu_status lu_eval_average(int n, const lu_tensor *const *probs, lu_tensor **out);

/* probs (C, ...) -> segmentation (...) of dtype U8 (C <= 256) or U16: argmax over C (ties: lowest
 * index). With regions (order != NULL, n_order == C): zeros, then for i in order of channels
 * seg[probs[i] > 0.5] = order[i]. */
lu_status lu_eval_probs_to_seg(const lu_tensor *probs, const int32_t *order, int n_order, lu_tensor **out);

#endif
