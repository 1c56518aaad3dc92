/* Probability averaging, as nnunetv2/ensembling/ensemble.py: average_probabilities. The averaged
 * probabilities become a segmentation through infer/export.h's lu_ex_probs_to_seg. */
#ifndef LU_EVAL_ENSEMBLE_H
#define LU_EVAL_ENSEMBLE_H

#include "tensor.h"

/* out = mean of n host tensors (f16/f32/f64, same shape), computed in float32 as nnU-Net does
 * (avg = float32(p1); avg += p2; ...; avg /= n). */
lu_status lu_eval_average(int n, const lu_tensor *const *probs, lu_tensor **out);

#endif
