/* Network ops on the device (float32, layout N, C, spatial... with spatial = Z*Y*X flattened; 2-D
 * images are (N, C, 1, Y, X) or (N, C, Y, X): only N = shape[0], C = shape[1] and the product of the
 * remaining axes matter). Forward and backward of: instance norm, (leaky) ReLU, channel concat/split,
 * softmax/log-softmax/sigmoid, nnU-Net's DC_and_CE / DC_and_BCE losses fused with the gradient of
 * the logits, deep-supervision target downsampling, and SGD with Nesterov momentum.
 *
 * Conventions: outputs are overwritten (never accumulated) unless an `accumulate` flag says so;
 * outputs may alias inputs only where noted. All tensors live on the same device. Errors name the
 * op, the argument and the shapes. See docs/ops.md ("Normalisation, activations, losses"). */
#ifndef LU_NN_H
#define LU_NN_H

#include "ops/ops.h"

/* ---- instance normalisation (nnU-Net: InstanceNorm, eps 1e-5, affine, biased variance) ----
 * x, y: (N, C, ...). weight, bias: C elements (any shape). mean, invstd: N*C elements (any shape),
 * written for the backward pass (invstd = 1/sqrt(var + eps), var biased). y may alias x. */
lu_status lu_instnorm_fwd(const lu_tensor *x, const lu_tensor *weight, const lu_tensor *bias, float eps, lu_tensor *y,
                          lu_tensor *mean, lu_tensor *invstd);
/* Same, followed by LeakyReLU(slope) in the same pass (slope 0: ReLU). The backward of the pair is
 * lu_instnorm_lrelu_bwd (or lu_lrelu_bwd from y, then lu_instnorm_bwd from x). */
lu_status lu_instnorm_lrelu_fwd(const lu_tensor *x, const lu_tensor *weight, const lu_tensor *bias, float eps,
                                float slope, lu_tensor *y, lu_tensor *mean, lu_tensor *invstd);
/* Gradients from dy: dx (may alias dy; may be NULL), dweight and dbias (C elements; may be NULL):
 * overwritten, or added to when accumulate != 0. x, mean, invstd as passed to / produced by fwd. */
lu_status lu_instnorm_bwd(const lu_tensor *x, const lu_tensor *weight, const lu_tensor *mean, const lu_tensor *invstd,
                          const lu_tensor *dy, lu_tensor *dx, lu_tensor *dweight, lu_tensor *dbias, int accumulate);
/* The backward of lu_instnorm_lrelu_fwd in one pass over dy: dy is the gradient of the LeakyReLU's output y
 * (as the forward wrote it; may alias dx), and LeakyReLU's backward (y > 0 ? dy : slope dy) is applied as dy
 * is read, instead of a separate lu_lrelu_bwd pass writing it back. Same results in float32 storage. */
lu_status lu_instnorm_lrelu_bwd(const lu_tensor *x, const lu_tensor *weight, const lu_tensor *mean,
                                const lu_tensor *invstd, const lu_tensor *y, float slope, const lu_tensor *dy,
                                lu_tensor *dx, lu_tensor *dweight, lu_tensor *dbias, int accumulate);

/* ---- activations ----
 * y = x > 0 ? x : slope * x (slope 0.01 in nnU-Net; 0 gives ReLU). y may alias x (in place). */
lu_status lu_lrelu_fwd(lu_tensor *y, const lu_tensor *x, float slope);
/* dx = dy * (y > 0 ? 1 : slope), from the forward OUTPUT y (valid for in-place use since slope >= 0
 * keeps the sign). dx may alias dy. */
lu_status lu_lrelu_bwd(lu_tensor *dx, const lu_tensor *y, const lu_tensor *dy, float slope);

/* ---- channel concat / split (skip connections) ----
 * Copies channels [src_c0, src_c0 + nc) of src (N, Cs, S) into channels [dst_c0, dst_c0 + nc) of
 * dst (N, Cd, S); same N and S. accumulate != 0 adds instead of overwriting. */
lu_status lu_copy_channels(lu_tensor *dst, int64_t dst_c0, const lu_tensor *src, int64_t src_c0, int64_t nc,
                           int accumulate);
/* out (N, Ca + Cb, S) = [a, b] along channels (nnU-Net: [upsampled, skip]). */
lu_status lu_concat_channels(lu_tensor *out, const lu_tensor *a, const lu_tensor *b);
/* The backward of concat: da = in[:, :Ca], db = in[:, Ca:]; either may be NULL; accumulate as above
 * (use it to add the skip gradient into the encoder's gradient). */
lu_status lu_split_channels(const lu_tensor *in, lu_tensor *da, lu_tensor *db, int accumulate);

/* ---- softmax family over channels (axis 1) ----  y may alias x. */
lu_status lu_softmax_fwd(lu_tensor *y, const lu_tensor *x);
lu_status lu_log_softmax_fwd(lu_tensor *y, const lu_tensor *x);
/* dx = y * (dy - sum_c y dy), from the softmax output y. dx may alias dy. */
lu_status lu_softmax_bwd(lu_tensor *dx, const lu_tensor *y, const lu_tensor *dy);
/* dx = dy - exp(y) * sum_c dy, from the log-softmax output y. dx may alias dy. */
lu_status lu_log_softmax_bwd(lu_tensor *dx, const lu_tensor *y, const lu_tensor *dy);
/* Elementwise sigmoid; y may alias x. */
lu_status lu_sigmoid_fwd(lu_tensor *y, const lu_tensor *x);

/* ---- losses (nnU-Net v2 nnUNetTrainer._build_loss) ----
 * Label mode (regions == 0): DC_and_CE_loss with MemoryEfficientSoftDiceLoss on softmax(logits):
 *   loss = w_ce * CE + w_dice * (-mean soft Dice over classes c >= (do_bg ? 0 : 1) [and samples]),
 *   target (N, 1, S) label map (int32 or float32 holding integers). With an ignore label, CE is
 *   PyTorch's ignore_index mean over non-ignored voxels (0 when none is left) and Dice multiplies
 *   the mask (target != ignore) into I, P and G.
 * Region mode (regions != 0): DC_and_BCE_loss with sigmoid: loss = w_ce * BCEWithLogits (mean) +
 *   w_dice * (-mean soft Dice, all channels), target (N, R, S) 0/1 region masks, or (N, R + 1, S)
 *   with the ignore mask as last channel when has_ignore (BCE = sum(bce * mask) / max(sum(mask over
 *   voxels), 1e-8) as nnU-Net).
 * Soft Dice per group: dc = (2 I + smooth) / max(G + P + smooth, 1e-8), groups = (sample, class),
 * or class only when batch_dice. */
typedef struct lu_loss_opts {
  int regions;       /* 0: softmax + CE (labels); 1: sigmoid + BCE (regions) */
  int batch_dice;    /* sum I, P, G over the batch before the Dice quotient */
  int do_bg;         /* include channel 0 in Dice: nnU-Net uses 0 for labels, 1 for regions */
  int has_ignore;    /* an ignore label exists */
  int ignore_label;  /* label mode: the label value to ignore */
  float smooth;      /* 1e-5 */
  float weight_ce;   /* 1 */
  float weight_dice; /* 1 */
  float scale;       /* multiplies the loss AND the gradient (deep-supervision weight); 1 */
  /* Data-parallel batch Dice (nnU-Net's DDP all-gathers tp/fp/fn): when set and batch_dice, the per-class
   * sums I, P, G of this process's batch (3 doubles per Dice class) are summed in place over all processes
   * before the Dice quotient, and the Dice gradient is multiplied by reduce_ranks, so the mean of the
   * processes' gradients is the gradient of the global batch's Dice. NULL: local sums. */
  lu_status (*reduce_sums)(double *sums, size_t n);
  int reduce_ranks;
  /* cl_mem whose first float multiplies the gradient only, read on the device (the loss scaler's scale,
   * ops/amp.h, so the host never waits for it); NULL: 1 */
  void *grad_scale;
  /* cl_mem of one float: when set (and reduce_sums is not), the Dice/CE finish runs on the device
   * (kernel loss_finish) and adds scale * loss to it, so a training step never waits for the host; the
   * caller reads it when it wants the value, and loss_value / terms are not filled. NULL: the host
   * finishes in double after one blocking read, as every standalone loss call does. */
  void *device_acc;
} lu_loss_opts;

/* nnU-Net's defaults for label mode (regions 0, do_bg 0, smooth 1e-5, weights 1, scale 1). */
void lu_loss_opts_default(lu_loss_opts *o);

/* The loss terms of one call (unscaled, i.e. before opts->scale). */
typedef struct lu_loss_terms {
  double ce;         /* CE or BCE term */
  double dice;       /* -mean soft Dice (negative) */
  double loss;       /* w_ce * ce + w_dice * dice */
  double n_valid;    /* voxels counted by CE (label mode) or the BCE mask denominator */
} lu_loss_terms;

/* Fused loss + gradient of the logits, called once per deep-supervision scale.
 * logits (N, C, S) float32; target as above; *loss_value = scale * loss (may be NULL);
 * dlogits (same shape as logits, may be NULL for a loss-only evaluation) is OVERWRITTEN with
 * scale * dloss/dlogits. dlogits must not alias logits. */
lu_status lu_dc_ce_loss(const lu_tensor *logits, const lu_tensor *target, const lu_loss_opts *opts, double *loss_value,
                        lu_tensor *dlogits);
/* Same, also reporting the separate terms (terms may be NULL). */
lu_status lu_dc_ce_loss_terms(const lu_tensor *logits, const lu_tensor *target, const lu_loss_opts *opts,
                              double *loss_value, lu_tensor *dlogits, lu_loss_terms *terms);

/* ---- deep supervision ----
 * Nearest-exact downsampling of a target (N, C, Z, Y, X) (int32, float32, u8 or i16) into out
 * (N, C, Z', Y', X') of the same dtype, out's shape chosen by the caller (nnU-Net: round(shape*scale)):
 * src = min(floor((dst + 0.5) * (float)in/out), in - 1) per axis, as torch 'nearest-exact' used by
 * DownsampleSegForDSTransform. 4-D (N, C, Y, X) tensors are accepted too. */
lu_status lu_ds_downsample(lu_tensor *out, const lu_tensor *seg);
/* nnU-Net's output shape for a scale per spatial axis: round half to even of shape * scale. */
void lu_ds_shape(int ndim, const int64_t *in_shape, const double *scale_per_spatial_axis, int64_t *out_shape);
/* Deep-supervision loss weights for n outputs (nnU-Net: 1/2^i, last 0, normalised; n == 1 -> 1). */
void lu_ds_weights(int n, double *w);

/* ---- optimiser ----
 * torch.optim.SGD(nesterov=True, dampening 0) for one parameter tensor, in one kernel:
 *   g = grad + wd * param; buf = mu * buf + g; param -= lr * (g + mu * buf).
 * The momentum buffer must start zero-filled (torch's first step buf = g equals mu*0 + g). */
lu_status lu_sgd_nesterov(lu_tensor *param, const lu_tensor *grad, lu_tensor *momentum, float lr, float mu, float wd);

#endif
