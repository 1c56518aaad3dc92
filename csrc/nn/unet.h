/* U-Nets built from an nnU-Net v2 plan configuration (nnunetv2/utilities/get_network_from_plans.py): PlainConvUNet and
 * ResidualEncoderUNet of dynamic-network-architectures, with the same stage layout, parameter
 * names (PyTorch state_dict names, without the `all_modules` and `decoder.encoder` duplicates) and
 * parameter order (named_parameters() order), so weights move between the two by name.
 *
 * Parameters, their gradients and the optimiser's momentum live each in ONE flat device buffer;
 * every parameter is an aligned sub-buffer of it, so the gradient norm, clipping and the SGD update
 * are single passes over the whole model. The gradient and momentum buffers are made (zero-filled) on
 * first training use (zero_grad, backward, train_grad/update, writing them), never by inference. Activations are allocated once per input shape
 * (lu_unet_plan) and reused, Torch7 nn style; buffers whose contents are dead (inference activations
 * after their last reader, activation gradients after their producer's backward) are shared. */
#ifndef LU_UNET_H
#define LU_UNET_H

#include <stddef.h>
#include <stdint.h>

#include "cl/device.h"
#include "core/rng.h"
#include "ops/amp.h"
#include "ops/nn.h"
#include "tensor.h"

#define LU_UNET_MAX_STAGES 12

typedef enum { LU_UNET_PLAIN = 0, LU_UNET_RESENC = 1 } lu_unet_kind;

typedef struct lu_unet_cfg {
  lu_unet_kind kind;
  int nsp;                                  /* 2 or 3 spatial dims */
  int in_channels, num_classes;
  int n_stages;
  int features[LU_UNET_MAX_STAGES];
  int kernel[LU_UNET_MAX_STAGES][3];        /* array-axis order (z, y, x) or (y, x) */
  int stride[LU_UNET_MAX_STAGES][3];
  int n_enc[LU_UNET_MAX_STAGES];            /* convs (plain) or residual blocks (resenc) per stage */
  int n_dec[LU_UNET_MAX_STAGES];            /* n_stages - 1 entries, decoder stage j = 0 deepest */
  int conv_bias;
  double norm_eps;                          /* InstanceNorm eps (1e-5) */
  double leaky_slope;                       /* LeakyReLU negative slope (1e-2) */
  double init_neg_slope;                    /* Kaiming a (1e-2) */
  int deep_supervision;
} lu_unet_cfg;

typedef enum { LU_INIT_KAIMING = 0, LU_INIT_ZERO, LU_INIT_ONE } lu_init_kind;

typedef struct lu_param {
  char name[112];
  int ndim;
  int64_t shape[LU_MAX_DIMS];
  size_t offset;   /* in floats, into the flat buffers (aligned) */
  size_t numel;
  lu_init_kind init;
  double fan_in;
  lu_tensor t, g, m; /* views: value, gradient, momentum (sub-buffers; not owned by the pool) */
} lu_param;

typedef struct lu_unet lu_unet;

/* Checks the configuration (stage count, channels, kernel/stride ranges). */
lu_status lu_unet_cfg_check(const lu_unet_cfg *c);
/* Builds the network description and its parameter list. dev may be NULL: then only the
 * description exists (parameter names, shapes, counts), for planning and specs. */
lu_status lu_unet_new(const lu_unet_cfg *c, lu_device *dev, lu_unet **out);
void lu_unet_free(lu_unet *n);

const lu_unet_cfg *lu_unet_config(const lu_unet *n);
int lu_unet_num_params(const lu_unet *n);            /* parameter tensors */
const lu_param *lu_unet_param(const lu_unet *n, int i);
int lu_unet_find_param(const lu_unet *n, const char *name); /* index or -1 */
size_t lu_unet_num_weights(const lu_unet *n);         /* scalars, as sum(p.numel()) */
size_t lu_unet_flat_floats(const lu_unet *n);         /* flat buffer length incl. alignment padding */
/* A short text fingerprint of the architecture (kind, dims, channels, stages, kernels, strides,
 * blocks), stored in checkpoints so a file is refused by a network of another plan. */
const char *lu_unet_arch_string(const lu_unet *n);

/* Kaiming normal (a = init_neg_slope, fan_in) for every conv/transposed conv weight, biases 0,
 * norm weight 1 / bias 0, ResEnc conv2 norms zero; from a Philox stream with this seed. Also
 * clears gradients and momentum. */
lu_status lu_unet_init(lu_unet *n, uint64_t seed);
/* Host copies of the flat buffers (floats, lu_unet_flat_floats long). which: 0 params, 1 grads,
 * 2 momentum. Reading a gradient or momentum buffer not made yet gives zeros and makes nothing; writing
 * one makes it. */
lu_status lu_unet_read_flat(lu_unet *n, int which, float *dst);
lu_status lu_unet_write_flat(lu_unet *n, int which, const float *src);
/* One parameter from/to host floats (numel long). */
lu_status lu_unet_read_param(lu_unet *n, int i, float *dst);
lu_status lu_unet_write_param(lu_unet *n, int i, const float *src);

/* Forward of a batch x (N, Cin, spatial...) on the device. train = 1 keeps activations for
 * backward; 0 (inference) reuses buffers as soon as they are consumed. With deep supervision on,
 * outputs[0..n_outputs-1] are full resolution to coarsest; otherwise one output. Output tensors
 * are owned by the network and valid until the next forward. */
lu_status lu_unet_forward(lu_unet *n, const lu_tensor *x, int train, int deep_supervision, lu_tensor **outputs,
                          int *n_outputs);
/* Backward after a training forward: dout[i] are gradients w.r.t. outputs (NULL = zero). Adds the
 * parameter gradients into the gradient buffer (call lu_unet_zero_grad first). Once per training forward
 * (as torch's backward frees the graph): it reuses the memory of the activations it has gone past. */
lu_status lu_unet_backward(lu_unet *n, lu_tensor *const *dout, int n_dout);
lu_status lu_unet_zero_grad(lu_unet *n);
/* A callback told during lu_unet_backward when parameter gradients are final, so a caller can move finished
 * regions of the gradient buffer while the backward still runs (data-parallel training's bucketed allreduce,
 * dist/gradsync.h). Called with LU_UNET_GRAD_BEGIN first, then with a parameter index once the kernels that
 * write that gradient are enqueued (the queue is in order: work enqueued after the call sees the final value;
 * the device may not have run it yet), then LU_UNET_GRAD_END (every gradient is final then, also those the pass
 * left at zero). Its error fails the backward. Without a hook the backward is unchanged. */
#define LU_UNET_GRAD_BEGIN (-2)
#define LU_UNET_GRAD_END (-1)
typedef lu_status (*lu_unet_grad_hook)(void *ud, int param);
/* Installs hook (NULL removes it). The network owns ud: free_ud(ud) runs when the hook is replaced or the network
 * is freed. */
void lu_unet_set_grad_hook(lu_unet *n, lu_unet_grad_hook hook, void *ud, void (*free_ud)(void *));
/* ud of the installed hook when it is `hook`, else NULL. */
void *lu_unet_grad_hook_data(const lu_unet *n, lu_unet_grad_hook hook);
/* Bytes of activation/workspace memory planned for the current shape. */
size_t lu_unet_activation_bytes(const lu_unet *n);
/* Training plans: the most bytes of planned activations and gradients alive at one step (the least any
 * placement of them needs); 0 for other plans. */
size_t lu_unet_live_peak_bytes(const lu_unet *n);

/* One training step (nnunetv2/training/nnUNetTrainer/nnUNetTrainer.py: train_step, with the loss of
 * nnunetv2/training/loss/compound_losses.py: DC_and_CE_loss): zero grads, forward with deep supervision, loss per output
 * against the target downsampled (nearest-exact) to that output's shape, weighted by ds_weights
 * (outputs with weight 0 are skipped), backward, global L2 gradient norm clipped to grad_clip
 * (torch clip_grad_norm_: g *= clip / (norm + 1e-6) when that is < 1), then SGD with Nesterov
 * momentum. All constants come from the caller (the rules' trainer table). target: (N, 1, spatial)
 * label map (f32 or i32) at the input's resolution, or (N, R[+1], spatial) region masks. */
typedef struct lu_train_opts {
  double lr, momentum, weight_decay, grad_clip;
  int n_ds;                                /* number of deep-supervision weights (0: no deep supervision) */
  double ds_weights[LU_UNET_MAX_STAGES];
  lu_loss_opts loss;
} lu_train_opts;
typedef struct lu_train_result { double loss, grad_norm; } lu_train_result;
lu_status lu_unet_train_step(lu_unet *n, const lu_tensor *x, const lu_tensor *target, const lu_train_opts *o,
                             lu_train_result *res);
/* Double-buffered batch upload (cl/staging.h): x and target (host tensors) go to the next of two device slots
 * on a transfer queue, overlapping the step now running; the staged step then waits for the transfer on the
 * device. Results are those of lu_unet_train_step on the same batch. */
lu_status lu_unet_stage(lu_unet *n, const lu_tensor *x, const lu_tensor *target, int *slot);
lu_status lu_unet_train_step_staged(lu_unet *n, int slot, const lu_train_opts *o, lu_train_result *res);
/* The two halves of lu_unet_train_step, for data-parallel training (an allreduce of the gradient
 * buffer between them): train_grad is the loss, zeroed gradients and backward; train_update the
 * clipping of the (averaged) gradients and the SGD update. grad then update is bit-identical to
 * the fused step. */
lu_status lu_unet_train_grad(lu_unet *n, const lu_tensor *x, const lu_tensor *target, const lu_train_opts *o,
                             double *loss);
lu_status lu_unet_train_update(lu_unet *n, const lu_train_opts *o, double *grad_norm);
/* Loss only (no gradients, no update), with the same weighting, for validation and specs. */
lu_status lu_unet_loss(lu_unet *n, const lu_tensor *x, const lu_tensor *target, const lu_train_opts *o, double *loss);

/* Mixed-precision loss scaling (torch.amp.GradScaler, ops/amp.h): from now on the loss gradient is
 * multiplied by the device-held scale, and every update unscales, checks for inf/NaN (skipping the step
 * and backing off), clips and grows the scale on the device. cfg->enabled 0 (the default, fp32 training)
 * gives scale 1 and no skipping. Also restores a checkpoint's scale and growth tracker. */
lu_status lu_unet_set_scaler(lu_unet *n, const lu_amp_cfg *cfg);
/* Mixed precision's storage: training steps keep activations and their gradients as float16 (convolutions
 * read them on the implicit GEMM on GPUs, through float32 copies elsewhere: ops/conv/base.h); accumulation,
 * master weights, dlogits and norm statistics stay float32. Inference stays float32. Off by default;
 * changing it replans. */
lu_status lu_unet_set_half_activations(lu_unet *n, int on);
int lu_unet_half_activations(const lu_unet *n);
/* Mixed precision for inference forwards (nnU-Net's predictor autocasts on CUDA): activations stored as
 * float16 (the implicit GEMM on GPUs), the input and the logits float32, accumulation float32. Off by
 * default; changing it replans. */
lu_status lu_unet_set_half_inference(lu_unet *n, int on);
int lu_unet_half_inference(const lu_unet *n);
/* The scaler and the last update's state (norm, found_inf, factor), as of the last update: waits for
 * that update's non-blocking readback, nothing else. Before any update: the configured state. */
lu_status lu_unet_scaler_stats(lu_unet *n, lu_amp_stats *s);

/* Device views of the flat buffers (1-D tensors). which: 0 params, 1 grads, 2 momentum; NULL for a
 * buffer not made yet (lu_unet_ensure_flat makes it). */
lu_tensor *lu_unet_flat(lu_unet *n, int which);
lu_status lu_unet_ensure_flat(lu_unet *n, int which);
/* Device bytes of the flat buffers made so far (parameters, and gradients / momentum once training). */
size_t lu_unet_flat_bytes(const lu_unet *n);
/* Inference forwards keep each convolution's packed weights from one forward to the next (ops/conv.h,
 * lu_conv_wcache) while on; every write to the weights (init, write_flat / write_param of them, a
 * checkpoint load, an optimiser update, handing out flat buffer 0) turns it off and frees the copies.
 * lunet predict turns it on once the checkpoint is loaded. */
lu_status lu_unet_freeze_weights(lu_unet *n, int on);
int lu_unet_weights_frozen(const lu_unet *n);
lu_device *lu_unet_device(lu_unet *n);

#endif
