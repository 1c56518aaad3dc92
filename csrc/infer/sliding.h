/* Sliding-window inference as nnunetv2/inference/predict_from_raw_data.py:
 * nnUNetPredictor.predict_sliding_window_return_logits (window placement and Gaussian weights from
 * nnunetv2/inference/sliding_window_prediction.py), on host arrays.
 *
 * Volumes are (C, Z, Y, X) float32; a 2-D configuration is handled as a 3-D one whose patch is
 * (1, py, px) and whose z steps are every slice. The padded volume of nnU-Net (constant 0 so that each
 * axis is >= the patch, pad_before = diff // 2) is never materialised: patches read zeros outside the
 * data, and the accumulators have the padded shape. Mirror masks: bit 0 flips Z, bit 1 Y, bit 2 X. */
#ifndef LU_INFER_SLIDING_H
#define LU_INFER_SLIDING_H

#include <stdint.h>

#include "tensor.h"

/* compute_steps_for_sliding_window for one axis: n = ceil((size - patch) / (patch * step)) + 1 starts,
 * round-half-even(actual * i) with actual = (size - patch) / (n - 1); [0] when n == 1.
 * size >= patch >= 1, 0 < step <= 1. Writes at most cap starts; *n is the full count. */
lu_status lu_sw_steps(int64_t size, int64_t patch, double step, int64_t *starts, int cap, int *n);

/* compute_gaussian(patch, sigma_scale, value_scaling_factor) cast to float16 (values stored as the
 * float32 equal to the half), exact zeros replaced by the smallest non-zero value. nd = 2 or 3 axes;
 * the output is F32 of shape (1, py, px) for nd = 2 and (pz, py, px) for nd = 3. */
lu_status lu_sw_gaussian(int nd, const int64_t *patch, double sigma_scale, double value_scaling, lu_tensor **out);

/* Round a float to the nearest float16 value (round to nearest even, overflow to inf), as float. */
float lu_round_to_half(float v);

/* Patch (1, C, pz, py, px) of data (C, Z, Y, X) F32 starting at `start` in padded coordinates
 * (padded = data shifted by pad_before), zeros outside the data, flipped along the axes in `flip`. */
lu_status lu_sw_extract(const lu_tensor *data, const int64_t pad_before[3], const int64_t start[3],
                        const int64_t patch[3], int flip, lu_tensor **out);
/* The same patch into window `slot` of dst, a host F32 batch of windows (B, C, patch) (2-D: (B, C, py, px)),
 * so that several mirrorings of a window go through the network in one forward. */
lu_status lu_sw_extract_into(const lu_tensor *data, const int64_t pad_before[3], const int64_t start[3],
                             const int64_t patch[3], int flip, lu_tensor *dst, int64_t slot);

/* Test-time mirroring of one window: win (1, K, pz, py, px) F32 += unflip(logits[slot]) (first: win = ...).
 * logits: F32 or F16 host tensor laid out (B, K, pz, py, px) (a 2-D network's (B, K, py, px) is accepted),
 * slot < B the window's place in a batched forward. */
lu_status lu_sw_window_add(lu_tensor *win, const lu_tensor *logits, const int64_t patch[3], int flip, int first,
                           int64_t slot);

/* acc (K, PZ, PY, PX) F32 += (win / divisor) * gauss over the window at `start` (padded coordinates), as
 * nnU-Net: the mirrored sum divided by the number of evaluations, times the importance map. win: as logits
 * above. gauss: (pz, py, px) F32 or NULL (weight 1). wsum (PZ, PY, PX) F32 or NULL: when given, the window's
 * weights (gauss or 1) are added to it. acc and wsum are F32 or F16 (nnU-Net's float16 accumulators); half:
 * also round F32 ones to float16 after each addition. threads: over classes. */
lu_status lu_sw_accumulate(lu_tensor *acc, lu_tensor *wsum, const lu_tensor *win, const lu_tensor *gauss,
                           const int64_t start[3], const int64_t patch[3], float divisor, int half, int threads);

/* (K, Z, Y, X) = acc / wsum over the region [pad_before, pad_before + shape) of the accumulator, of acc's
 * dtype (half: F32 results rounded to float16); only >= 0: just that class, (1, Z, Y, X). Fails on inf/nan. */
lu_status lu_sw_finalize(const lu_tensor *acc, const lu_tensor *wsum, const int64_t pad_before[3],
                         const int64_t shape[3], int half, int only, lu_tensor **out);

/* Streaming accumulators: moves rows [n, Z) of a host (Z, Y, X) or (K, Z, Y, X) F32/F16 tensor to [0, Z - n)
 * (per class) and zeroes the last n rows. */
lu_status lu_sw_shift_rows(lu_tensor *t, int64_t n);

/* Element-wise a += b, a *= s (F32/F16 host tensors of equal size), F32 results rounded to float16 if half. */
lu_status lu_sw_add(lu_tensor *a, const lu_tensor *b, int half);
lu_status lu_sw_scale(lu_tensor *a, float s, int half);
/* Rounds every element of an F32 host tensor to the nearest float16 value, in place. */
lu_status lu_sw_round_half(lu_tensor *a);

#endif
