/* The device-resident tail of a training step, as nnUNetTrainer.train_step runs it under AMP:
 * torch.amp.GradScaler (dynamic loss scale: start 2^16, x growth_factor after growth_interval steps in a
 * row without inf/NaN gradients, x backoff_factor and the step skipped on one), clip_grad_norm_ on the
 * unscaled gradient, then SGD with Nesterov momentum. The scale, the found-inf flag, the norm and the
 * update's gradient factor live in a small device state buffer (lu_amp_* words), so nothing waits on the
 * host between backward and update; the host reads the state back later, without blocking the queue.
 * With the scaler disabled (fp32 training, as nnU-Net on a CPU) the scale stays 1 and no step is skipped:
 * the same kernels give clip + SGD. */
#ifndef LU_AMP_H
#define LU_AMP_H

#include "ops/ops.h"

/* 32-bit words of the state buffer (kernels/sgd/amp.cl uses the same indices). */
enum {
  LU_AMP_SCALE = 0,    /* float: the loss scale (1 when disabled) */
  LU_AMP_TRACKER,      /* int: clean steps since the last growth or backoff (GradScaler._growth_tracker) */
  LU_AMP_ENABLED,      /* int */
  LU_AMP_INTERVAL,     /* int: growth_interval */
  LU_AMP_GROWTH,       /* float: growth_factor */
  LU_AMP_BACKOFF,      /* float: backoff_factor */
  LU_AMP_COEF,         /* float: last step's gradient factor, clip coefficient / scale */
  LU_AMP_FOUND_INF,    /* int: last step was skipped */
  LU_AMP_NORM,         /* float: last step's gradient norm (unscaled, before clipping) */
  LU_AMP_SKIPPED,      /* int: steps skipped so far */
  LU_AMP_NONFINITE,    /* int: last step's gradient had inf/NaN (also when disabled) */
  LU_AMP_STEPS,        /* int: updates run so far */
  LU_AMP_WORDS = 16
};

typedef struct lu_amp_cfg {
  int enabled;
  double scale, growth_factor, backoff_factor;
  int growth_interval, growth_tracker;
} lu_amp_cfg;

/* torch.amp.GradScaler's defaults: enabled, 2^16, 2, 0.5, 2000, tracker 0. */
void lu_amp_cfg_default(lu_amp_cfg *c);

/* What the state says, decoded from its words. */
typedef struct lu_amp_stats {
  lu_amp_cfg cfg;
  double coef, grad_norm;
  int found_inf, nonfinite;
  long skipped, steps;
} lu_amp_stats;
void lu_amp_decode(const uint32_t words[LU_AMP_WORDS], lu_amp_stats *s);

/* New state buffer (LU_AMP_WORDS words, device I32) holding cfg, counters zero. */
lu_status lu_amp_state_new(lu_device *dev, const lu_amp_cfg *cfg, lu_tensor **out);
/* Overwrites the scaler's configuration and tracker (resume); counters and last-step words are kept. */
lu_status lu_amp_state_set(lu_tensor *state, const lu_amp_cfg *cfg);

/* Gradient norm of grad / scale, inf/NaN check, clip coefficient (clip <= 0: none), then the scaler's update,
 * all into state on the device. */
lu_status lu_amp_unscale_clip(const lu_tensor *grad, lu_tensor *state, float clip);
/* SGD (nesterov, as lu_sgd_nesterov) on grad times state's factor; nothing when state says found_inf. */
lu_status lu_sgd_nesterov_amp(lu_tensor *param, const lu_tensor *grad, lu_tensor *momentum, const lu_tensor *state,
                              float lr, float mu, float wd);

#endif
