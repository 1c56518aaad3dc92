/* Loss scaler, clipping and SGD on the device (see amp.h). */
#include <math.h>
#include <string.h>

#include "cl/pool.h"
#include "cl/program.h"
#include "cl/tunables.h"
#include "ops/amp.h"

#define AMP_WG 64

void lu_amp_cfg_default(lu_amp_cfg *c) {
  c->enabled = 1;
  c->scale = 65536.0;
  c->growth_factor = 2.0;
  c->backoff_factor = 0.5;
  c->growth_interval = 2000;
  c->growth_tracker = 0;
}

static uint32_t fbits(double v) {
  float f = (float)v;
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static double bitsf(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

void lu_amp_decode(const uint32_t w[LU_AMP_WORDS], lu_amp_stats *s) {
  s->cfg.enabled = (int32_t)w[LU_AMP_ENABLED] != 0;
  s->cfg.scale = bitsf(w[LU_AMP_SCALE]);
  s->cfg.growth_factor = bitsf(w[LU_AMP_GROWTH]);
  s->cfg.backoff_factor = bitsf(w[LU_AMP_BACKOFF]);
  s->cfg.growth_interval = (int32_t)w[LU_AMP_INTERVAL];
  s->cfg.growth_tracker = (int32_t)w[LU_AMP_TRACKER];
  s->coef = bitsf(w[LU_AMP_COEF]);
  s->grad_norm = bitsf(w[LU_AMP_NORM]);
  s->found_inf = (int32_t)w[LU_AMP_FOUND_INF] != 0;
  s->nonfinite = (int32_t)w[LU_AMP_NONFINITE] != 0;
  s->skipped = (int32_t)w[LU_AMP_SKIPPED];
  s->steps = (int32_t)w[LU_AMP_STEPS];
}

static lu_status check_cfg(const lu_amp_cfg *c) {
  if (!c->enabled) return LU_OK;
  if (!(c->scale > 0) || !isfinite(c->scale) || !(c->growth_factor > 1) || !(c->backoff_factor > 0) ||
      !(c->backoff_factor < 1) || c->growth_interval < 1 || c->growth_tracker < 0)
    return lu_fail(LU_EARG,
                   "grad scaler: scale %g, growth_factor %g, backoff_factor %g, growth_interval %d, growth tracker %d "
                   "(need scale > 0, growth > 1, 0 < backoff < 1, interval >= 1, tracker >= 0)",
                   c->scale, c->growth_factor, c->backoff_factor, c->growth_interval, c->growth_tracker);
  return LU_OK;
}

static void put_cfg(uint32_t w[LU_AMP_WORDS], const lu_amp_cfg *c) {
  /* disabled: scale 1, so the same kernels unscale by nothing */
  w[LU_AMP_ENABLED] = c->enabled ? 1u : 0u;
  w[LU_AMP_SCALE] = fbits(c->enabled ? c->scale : 1.0);
  w[LU_AMP_GROWTH] = fbits(c->enabled ? c->growth_factor : 2.0);
  w[LU_AMP_BACKOFF] = fbits(c->enabled ? c->backoff_factor : 0.5);
  w[LU_AMP_INTERVAL] = (uint32_t)(c->enabled ? c->growth_interval : 2000);
  w[LU_AMP_TRACKER] = (uint32_t)(c->enabled ? c->growth_tracker : 0);
}

lu_status lu_amp_state_new(lu_device *dev, const lu_amp_cfg *cfg, lu_tensor **out) {
  LU_TRY(check_cfg(cfg));
  uint32_t w[LU_AMP_WORDS] = {0};
  put_cfg(w, cfg);
  w[LU_AMP_COEF] = fbits(1.0);
  int64_t n = LU_AMP_WORDS;
  lu_tensor *t;
  LU_TRY(lu_tensor_new_device(&t, dev, LU_I32, 1, &n));
  lu_status st = lu_tensor_write(t, w);
  if (st != LU_OK) {
    lu_tensor_free(t);
    return st;
  }
  *out = t;
  return LU_OK;
}

lu_status lu_amp_state_set(lu_tensor *state, const lu_amp_cfg *cfg) {
  LU_TRY(lu_check_device_tensor(state, LU_I32, "grad scaler", "state"));
  LU_TRY(check_cfg(cfg));
  uint32_t w[LU_AMP_WORDS];
  LU_TRY(lu_tensor_read(state, w));
  put_cfg(w, cfg);
  return lu_tensor_write(state, w);
}

lu_status lu_amp_unscale_clip(const lu_tensor *grad, lu_tensor *state, float clip) {
  LU_TRY(lu_check_device_tensor(grad, LU_F32, "unscale_clip", "grad"));
  LU_TRY(lu_check_device_tensor(state, LU_I32, "unscale_clip", "state"));
  if (lu_tensor_numel(state) != LU_AMP_WORDS || state->dev != grad->dev)
    return lu_fail(LU_EARG, "unscale_clip: state must be %d words on the gradient's device", LU_AMP_WORDS);
  lu_device *dev = grad->dev;
  cl_ulong n = (cl_ulong)lu_tensor_numel(grad);
  /* enough groups to fill the device; the finishing group walks them all */
  size_t groups = dev->compute_units ? dev->compute_units * 8 : 64;
  size_t max_groups = (size_t)((n + AMP_WG - 1) / AMP_WG);
  if (groups > max_groups) groups = max_groups;
  if (groups > 1024) groups = 1024;
  if (groups < 1) groups = 1;
  const char *opts = lu_tune_cpu(dev) ? "-DWG=64 -DCONTIG=1" : "-DWG=64";
  cl_kernel k1, k2;
  LU_TRY(lu_kernel_get(dev, "sgd/amp.cl", "amp_partials", opts, &k1));
  LU_TRY(lu_kernel_get(dev, "sgd/amp.cl", "amp_finish", opts, &k2));
  size_t pbytes = groups * 2 * sizeof(float);
  cl_mem part;
  LU_TRY(lu_buffer_alloc(dev, pbytes, &part));
  cl_mem mg = grad->buf, ms = state->buf;
  cl_uint ng = (cl_uint)groups;
  cl_float fc = clip;
  lu_status st = LU_OK;
  cl_int e = LU_ARG(k1, 0, mg) | LU_ARG(k1, 1, n) | LU_ARG(k1, 2, ms) | LU_ARG(k1, 3, part);
  e |= LU_ARG(k2, 0, part) | LU_ARG(k2, 1, ng) | LU_ARG(k2, 2, ms) | LU_ARG(k2, 3, fc);
  if (e != CL_SUCCESS) st = lu_fail(LU_ECL, "%s (unscale_clip args)", lu_cl_errname(e));
  size_t g1 = groups * AMP_WG, l = AMP_WG;
  if (st == LU_OK) st = lu_launch(dev, k1, 1, &g1, &l, "amp_partials");
  if (st == LU_OK) st = lu_launch(dev, k2, 1, &l, &l, "amp_finish");
  /* back to the pool: later users are ordered after these kernels by the in-order queue */
  lu_buffer_release(dev, part, pbytes);
  return st;
}

lu_status lu_sgd_nesterov_amp(lu_tensor *param, const lu_tensor *grad, lu_tensor *momentum, const lu_tensor *state,
                              float lr, float mu, float wd) {
  LU_TRY(lu_check_device_tensor(param, LU_F32, "sgd", "param"));
  LU_TRY(lu_check_device_tensor(grad, LU_F32, "sgd", "grad"));
  LU_TRY(lu_check_device_tensor(momentum, LU_F32, "sgd", "momentum"));
  LU_TRY(lu_check_device_tensor(state, LU_I32, "sgd", "state"));
  int64_t n = lu_tensor_numel(param);
  if (lu_tensor_numel(grad) != n || lu_tensor_numel(momentum) != n || grad->dev != param->dev ||
      momentum->dev != param->dev || state->dev != param->dev || lu_tensor_numel(state) != LU_AMP_WORDS) {
    char a[96], b[96], c[96];
    return lu_fail(LU_EARG, "sgd: param %s, grad %s and momentum %s must have the same size on one device (with a "
                   "%d-word scaler state)", lu_shape_str(param->ndim, param->shape, a, sizeof a),
                   lu_shape_str(grad->ndim, grad->shape, b, sizeof b),
                   lu_shape_str(momentum->ndim, momentum->shape, c, sizeof c), LU_AMP_WORDS);
  }
  if (n == 0) return LU_OK;
  cl_kernel k;
  LU_TRY(lu_kernel_get(param->dev, "sgd/amp.cl", "sgd_nesterov_amp", NULL, &k));
  cl_mem mp = param->buf, mg = grad->buf, mb = momentum->buf, ms = state->buf;
  cl_ulong nn = (cl_ulong)n;
  LU_CL_CHECK(LU_ARG(k, 0, mp) | LU_ARG(k, 1, mg) | LU_ARG(k, 2, mb) | LU_ARG(k, 3, ms) | LU_ARG(k, 4, lr) |
                  LU_ARG(k, 5, mu) | LU_ARG(k, 6, wd) | LU_ARG(k, 7, nn),
              "sgd args");
  size_t g = lu_global_1d((size_t)n, 256), l = 256;
  return lu_launch(param->dev, k, 1, &g, n < 256 ? NULL : &l, "sgd");
}
