/* lunet.core.net: U-Nets from plans (nn/unet.h) and checkpoints (nn/checkpoint.h).
 *   net.new(cfg [, device]) -> Net     cfg: {kind="plain"|"resenc", nsp, in_channels, num_classes,
 *       features={}, kernels={{}}, strides={{}}, n_enc={}, n_dec={}, conv_bias, norm_eps, leaky_slope,
 *       init_neg_slope, device=false (description only)}
 *   Net methods: params(), num_weights(), arch(), init(seed), device() -> index,
 *   forward(x, train, ds, keep_on_device) -> {host tensors, or device copies when keep_on_device},
 *   train_step(x, target, opts) -> loss, grad_norm; loss(x, target, opts); get(name) -> host tensor;
 *   set(name, tensor); flat(which) -> bytes; set_flat(which, bytes); flat_floats(); flat_bytes() -> device
 *   bytes of the flat buffers made so far (grads and momentum only once training); activation_bytes();
 *   live_peak_bytes() (training plans: the most planned bytes alive at one step);
 *   save(path, json); load(path [, with_momentum=true])
 *   net.read_header(path) -> json, arch */
#include <stdlib.h>
#include <string.h>

#include "cl/device.h"
#include "lua/l_common.h"
#include "nn/checkpoint.h"
#include "nn/unet.h"
#include "dist/dist.h"
#include "lua/l_net.h"

#define NET_MT LU_NET_MT

lu_unet *lu_lua_check_net(lua_State *L, int i) {
  lu_unet **u = luaL_checkudata(L, i, NET_MT);
  if (!*u) luaL_argerror(L, i, "network already freed");
  return *u;
}

/* Reads cfg[k] as an int array of length n (or n x nsp when nsp > 0). */
static void int_list(lua_State *L, int t, const char *k, int n, int nsp, int *out) {
  lua_getfield(L, t, k);
  if (!lua_istable(L, -1)) luaL_error(L, "net.new: cfg.%s must be a list", k);
  if ((int)luaL_len(L, -1) < n) luaL_error(L, "net.new: cfg.%s has %d entries, need %d", k, (int)luaL_len(L, -1), n);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, -1, i + 1);
    if (nsp > 0) {
      if (!lua_istable(L, -1) || (int)luaL_len(L, -1) != nsp)
        luaL_error(L, "net.new: cfg.%s[%d] must list %d values", k, i + 1, nsp);
      for (int a = 0; a < nsp; a++) {
        lua_rawgeti(L, -1, a + 1);
        out[i * 3 + a] = (int)luaL_checkinteger(L, -1);
        lua_pop(L, 1);
      }
    } else {
      out[i] = (int)luaL_checkinteger(L, -1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static int l_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lu_unet_cfg c;
  memset(&c, 0, sizeof c);
  const char *kind = lu_lua_field_string(L, 1, "kind", "plain");
  if (strcmp(kind, "plain") == 0) c.kind = LU_UNET_PLAIN;
  else if (strcmp(kind, "resenc") == 0) c.kind = LU_UNET_RESENC;
  else luaL_error(L, "net.new: kind '%s' (plain or resenc)", kind);
  c.nsp = (int)lu_lua_check_field_number(L, 1, "nsp");
  c.in_channels = (int)lu_lua_check_field_number(L, 1, "in_channels");
  c.num_classes = (int)lu_lua_check_field_number(L, 1, "num_classes");
  c.n_stages = (int)lu_lua_check_field_number(L, 1, "n_stages");
  if (c.n_stages < 1 || c.n_stages > LU_UNET_MAX_STAGES) luaL_error(L, "net.new: n_stages %d", c.n_stages);
  if (c.nsp != 2 && c.nsp != 3) luaL_error(L, "net.new: nsp %d (2 or 3)", c.nsp);
  int_list(L, 1, "features", c.n_stages, 0, c.features);
  int_list(L, 1, "kernels", c.n_stages, c.nsp, &c.kernel[0][0]);
  int_list(L, 1, "strides", c.n_stages, c.nsp, &c.stride[0][0]);
  int_list(L, 1, "n_enc", c.n_stages, 0, c.n_enc);
  if (c.n_stages > 1) int_list(L, 1, "n_dec", c.n_stages - 1, 0, c.n_dec);
  c.conv_bias = lu_lua_field_bool(L, 1, "conv_bias", 1);
  c.norm_eps = lu_lua_check_field_number(L, 1, "norm_eps");
  c.leaky_slope = lu_lua_check_field_number(L, 1, "leaky_slope");
  c.init_neg_slope = lu_lua_check_field_number(L, 1, "init_neg_slope");
  c.deep_supervision = lu_lua_field_bool(L, 1, "deep_supervision", 1);
  lu_device *dev = NULL;
  lua_getfield(L, 1, "device");
  int want_dev = !(lua_isboolean(L, -1) && !lua_toboolean(L, -1));
  int devi = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : -1;
  lua_pop(L, 1);
  if (want_dev) {
    if (devi >= 0) LU_LCHECK(L, lu_device_get(devi, &dev), "net.new");
    else LU_LCHECK(L, lu_device_default(&dev), "net.new");
  }
  lu_unet **u = lua_newuserdatauv(L, sizeof *u, 0);
  *u = NULL;
  luaL_setmetatable(L, NET_MT);
  LU_LCHECK(L, lu_unet_new(&c, dev, u), "net.new");
  return 1;
}

static int m_gc(lua_State *L) {
  lu_unet **u = luaL_checkudata(L, 1, NET_MT);
  lu_unet_free(*u);
  *u = NULL;
  return 0;
}

static int m_params(lua_State *L) {
  lu_unet *n = lu_lua_check_net(L, 1);
  lua_createtable(L, lu_unet_num_params(n), 0);
  for (int i = 0; i < lu_unet_num_params(n); i++) {
    const lu_param *p = lu_unet_param(n, i);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, p->name);
    lua_setfield(L, -2, "name");
    lu_lua_push_shape(L, p->ndim, p->shape);
    lua_setfield(L, -2, "shape");
    lua_pushinteger(L, (lua_Integer)p->numel);
    lua_setfield(L, -2, "numel");
    lua_pushinteger(L, (lua_Integer)p->offset); /* floats into net:flat(which), 0-based */
    lua_setfield(L, -2, "offset");
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int m_num_weights(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lu_unet_num_weights(lu_lua_check_net(L, 1)));
  return 1;
}
static int m_arch(lua_State *L) {
  lua_pushstring(L, lu_unet_arch_string(lu_lua_check_net(L, 1)));
  return 1;
}
static int m_live_peak_bytes(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lu_unet_live_peak_bytes(lu_lua_check_net(L, 1)));
  return 1;
}

static int m_activation_bytes(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lu_unet_activation_bytes(lu_lua_check_net(L, 1)));
  return 1;
}
static int m_flat_floats(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lu_unet_flat_floats(lu_lua_check_net(L, 1)));
  return 1;
}
static int m_flat_bytes(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lu_unet_flat_bytes(lu_lua_check_net(L, 1)));
  return 1;
}
static int m_device(lua_State *L) {
  lua_pushinteger(L, lu_unet_device(lu_lua_check_net(L, 1))->index);
  return 1;
}
static int m_init(lua_State *L) {
  LU_LCHECK(L, lu_unet_init(lu_lua_check_net(L, 1), (uint64_t)luaL_checkinteger(L, 2)), "net:init");
  return 0;
}

/* A device copy of a host tensor (or the tensor itself when already on the device); *tmp owns it. */
static const lu_tensor *on_device(lua_State *L, lu_unet *n, int idx, lu_tensor **tmp) {
  lu_tensor *t = lu_lua_check_tensor(L, idx);
  *tmp = NULL;
  if (t->buf) return t;
  LU_LCHECK(L, lu_tensor_to_device(t, lu_unet_device(n), tmp), "net: input to device");
  return *tmp;
}

static int m_forward(lua_State *L) {
  lu_unet *n = lu_lua_check_net(L, 1);
  lu_tensor *tmp;
  const lu_tensor *x = on_device(L, n, 2, &tmp);
  int train = lua_toboolean(L, 3), ds = lua_toboolean(L, 4), keep = lua_toboolean(L, 5);
  lu_tensor *outs[LU_UNET_MAX_STAGES];
  int no = 0;
  lu_status st = lu_unet_forward(n, x, train, ds, outs, &no);
  lu_tensor_free(tmp);
  LU_LCHECK(L, st, "net:forward");
  lua_createtable(L, no, 0);
  for (int i = 0; i < no; i++) {
    lu_tensor *h; /* a copy: the net reuses its output buffers on the next forward */
    LU_LCHECK(L, keep ? lu_tensor_to_device(outs[i], outs[i]->dev, &h) : lu_tensor_to_host(outs[i], &h),
              "net:forward");
    lu_lua_push_tensor(L, h);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static lu_status dist_sum(double *b, size_t n) { return lu_dist_allreduce_f64(b, n, LU_DIST_SUM); }

void lu_lua_train_opts(lua_State *L, int t, lu_train_opts *o) {
  luaL_checktype(L, t, LUA_TTABLE);
  memset(o, 0, sizeof *o);
  lu_loss_opts_default(&o->loss);
  o->lr = lu_lua_check_field_number(L, t, "lr");
  o->momentum = lu_lua_check_field_number(L, t, "momentum");
  o->weight_decay = lu_lua_check_field_number(L, t, "weight_decay");
  o->grad_clip = lu_lua_check_field_number(L, t, "grad_clip");
  lua_getfield(L, t, "ds_weights");
  if (lua_istable(L, -1)) {
    o->n_ds = (int)luaL_len(L, -1);
    if (o->n_ds > LU_UNET_MAX_STAGES) luaL_error(L, "net: %d ds_weights", o->n_ds);
    for (int i = 0; i < o->n_ds; i++) {
      lua_rawgeti(L, -1, i + 1);
      o->ds_weights[i] = luaL_checknumber(L, -1);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  o->loss.regions = lu_lua_field_bool(L, t, "regions", 0);
  o->loss.batch_dice = lu_lua_field_bool(L, t, "batch_dice", 0);
  o->loss.do_bg = lu_lua_field_bool(L, t, "do_bg", o->loss.do_bg);
  o->loss.has_ignore = lu_lua_field_bool(L, t, "has_ignore", 0);
  o->loss.ignore_label = (int)lu_lua_field_number(L, t, "ignore_label", 0);
  o->loss.smooth = (float)lu_lua_field_number(L, t, "smooth", o->loss.smooth);
  o->loss.weight_ce = (float)lu_lua_field_number(L, t, "weight_ce", o->loss.weight_ce);
  o->loss.weight_dice = (float)lu_lua_field_number(L, t, "weight_dice", o->loss.weight_dice);
  /* dist_batch_dice: the batch Dice's sums reduced over the ranks of a data-parallel run (lunet.dist) */
  if (lu_lua_field_bool(L, t, "dist_batch_dice", 0) && lu_dist_size() > 1) {
    o->loss.reduce_sums = dist_sum;
    o->loss.reduce_ranks = lu_dist_size();
  }
}

static int m_train_step(lua_State *L) {
  lu_unet *n = lu_lua_check_net(L, 1);
  lu_train_opts o;
  lu_lua_train_opts(L, 4, &o);
  lu_tensor *tx, *tt;
  const lu_tensor *x = on_device(L, n, 2, &tx);
  const lu_tensor *t = on_device(L, n, 3, &tt);
  lu_train_result r;
  lu_status st = lu_unet_train_step(n, x, t, &o, &r);
  lu_tensor_free(tx);
  lu_tensor_free(tt);
  LU_LCHECK(L, st, "net:train_step");
  lua_pushnumber(L, r.loss);
  lua_pushnumber(L, r.grad_norm);
  return 2;
}

/* net:stage(x, target) -> slot: the batch's upload queued on the transfer queue (lu_unet_stage). */
static int m_stage(lua_State *L) {
  lu_unet *n = lu_lua_check_net(L, 1);
  lu_tensor *x = lu_lua_check_tensor(L, 2), *t = lu_lua_check_tensor(L, 3);
  int slot;
  LU_LCHECK(L, lu_unet_stage(n, x, t, &slot), "net:stage");
  lua_pushinteger(L, slot);
  return 1;
}

/* net:train_step_staged(slot, opts) -> loss, grad_norm: net:train_step on a staged batch. */
static int m_train_step_staged(lua_State *L) {
  lu_unet *n = lu_lua_check_net(L, 1);
  int slot = (int)luaL_checkinteger(L, 2);
  lu_train_opts o;
  lu_lua_train_opts(L, 3, &o);
  lu_train_result r;
  LU_LCHECK(L, lu_unet_train_step_staged(n, slot, &o, &r), "net:train_step_staged");
  lua_pushnumber(L, r.loss);
  lua_pushnumber(L, r.grad_norm);
  return 2;
}

/* (net, x, target, opts) -> loss through fn: net:loss and net:train_grad take the same arguments. */
typedef lu_status (*loss_fn)(lu_unet *, const lu_tensor *, const lu_tensor *, const lu_train_opts *, double *);
static int push_loss_of(lua_State *L, loss_fn fn, const char *what) {
  lu_unet *n = lu_lua_check_net(L, 1);
  lu_train_opts o;
  lu_lua_train_opts(L, 4, &o);
  lu_tensor *tx, *tt;
  const lu_tensor *x = on_device(L, n, 2, &tx);
  const lu_tensor *t = on_device(L, n, 3, &tt);
  double l;
  lu_status st = fn(n, x, t, &o, &l);
  lu_tensor_free(tx);
  lu_tensor_free(tt);
  LU_LCHECK(L, st, what);
  lua_pushnumber(L, l);
  return 1;
}

/* net:train_grad(x, target, opts) -> loss: forward, loss and backward into the gradient buffer. */
static int m_train_grad(lua_State *L) { return push_loss_of(L, lu_unet_train_grad, "net:train_grad"); }

/* net:train_update(opts) -> grad_norm: clipping and the SGD update from the gradient buffer. */
static int m_train_update(lua_State *L) {
  lu_unet *n = lu_lua_check_net(L, 1);
  lu_train_opts o;
  lu_lua_train_opts(L, 2, &o);
  double g;
  LU_LCHECK(L, lu_unet_train_update(n, &o, &g), "net:train_update");
  lua_pushnumber(L, g);
  return 1;
}

/* net:set_half_activations(on): a training step's activations and their gradients as float16 (mixed
 * precision's storage; inference stays float32). net:half_activations() -> boolean. */
static int m_set_half(lua_State *L) {
  lu_unet *n = lu_lua_check_net(L, 1);
  LU_LCHECK(L, lu_unet_set_half_activations(n, lua_toboolean(L, 2)), "net:set_half_activations");
  return 0;
}

/* net:freeze_weights(on): inference forwards keep each convolution's packed weights until the weights are
 * next written (lu_unet_freeze_weights). net:weights_frozen() -> boolean. */
static int m_freeze(lua_State *L) {
  lu_unet *n = lu_lua_check_net(L, 1);
  LU_LCHECK(L, lu_unet_freeze_weights(n, lua_isnone(L, 2) || lua_toboolean(L, 2)), "net:freeze_weights");
  return 0;
}

static int m_frozen(lua_State *L) {
  lua_pushboolean(L, lu_unet_weights_frozen(lu_lua_check_net(L, 1)));
  return 1;
}

/* net:set_half_inference(on): inference forwards store float16 activations (input and logits float32).
 * net:half_inference() -> boolean. */
static int m_set_half_infer(lua_State *L) {
  lu_unet *n = lu_lua_check_net(L, 1);
  LU_LCHECK(L, lu_unet_set_half_inference(n, lua_toboolean(L, 2)), "net:set_half_inference");
  return 0;
}

static int m_half_infer(lua_State *L) {
  lua_pushboolean(L, lu_unet_half_inference(lu_lua_check_net(L, 1)));
  return 1;
}

static int m_half(lua_State *L) {
  lua_pushboolean(L, lu_unet_half_activations(lu_lua_check_net(L, 1)));
  return 1;
}

/* net:set_scaler{enabled=, scale=, growth_factor=, backoff_factor=, growth_interval=, growth_tracker=}: the
 * loss scaler (torch.amp.GradScaler); missing fields take GradScaler's defaults, enabled defaults to true. */
static int m_set_scaler(lua_State *L) {
  lu_unet *n = lu_lua_check_net(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lu_amp_cfg c;
  lu_amp_cfg_default(&c);
  c.enabled = lu_lua_field_bool(L, 2, "enabled", 1);
  c.scale = lu_lua_field_number(L, 2, "scale", c.scale);
  c.growth_factor = lu_lua_field_number(L, 2, "growth_factor", c.growth_factor);
  c.backoff_factor = lu_lua_field_number(L, 2, "backoff_factor", c.backoff_factor);
  c.growth_interval = (int)lu_lua_field_int(L, 2, "growth_interval", c.growth_interval);
  c.growth_tracker = (int)lu_lua_field_int(L, 2, "growth_tracker", c.growth_tracker);
  LU_LCHECK(L, lu_unet_set_scaler(n, &c), "net:set_scaler");
  return 0;
}

/* net:scaler() -> {enabled, scale, growth_factor, backoff_factor, growth_interval, growth_tracker, grad_norm,
 * found_inf, nonfinite, coef, skipped, steps}: as of the last update (waits for its readback only). */
static int m_scaler(lua_State *L) {
  lu_unet *n = lu_lua_check_net(L, 1);
  lu_amp_stats s;
  LU_LCHECK(L, lu_unet_scaler_stats(n, &s), "net:scaler");
  lua_createtable(L, 0, 12);
  lua_pushboolean(L, s.cfg.enabled);
  lua_setfield(L, -2, "enabled");
  lua_pushnumber(L, s.cfg.scale);
  lua_setfield(L, -2, "scale");
  lua_pushnumber(L, s.cfg.growth_factor);
  lua_setfield(L, -2, "growth_factor");
  lua_pushnumber(L, s.cfg.backoff_factor);
  lua_setfield(L, -2, "backoff_factor");
  lua_pushinteger(L, s.cfg.growth_interval);
  lua_setfield(L, -2, "growth_interval");
  lua_pushinteger(L, s.cfg.growth_tracker);
  lua_setfield(L, -2, "growth_tracker");
  lua_pushnumber(L, s.grad_norm);
  lua_setfield(L, -2, "grad_norm");
  lua_pushboolean(L, s.found_inf);
  lua_setfield(L, -2, "found_inf");
  lua_pushboolean(L, s.nonfinite);
  lua_setfield(L, -2, "nonfinite");
  lua_pushnumber(L, s.coef);
  lua_setfield(L, -2, "coef");
  lua_pushinteger(L, s.skipped);
  lua_setfield(L, -2, "skipped");
  lua_pushinteger(L, s.steps);
  lua_setfield(L, -2, "steps");
  return 1;
}

static int m_loss(lua_State *L) { return push_loss_of(L, lu_unet_loss, "net:loss"); }

static int param_index(lua_State *L, lu_unet *n, int idx) {
  if (lua_isinteger(L, idx)) return (int)lua_tointeger(L, idx) - 1;
  const char *name = luaL_checkstring(L, idx);
  int i = lu_unet_find_param(n, name);
  if (i < 0) luaL_error(L, "net: no parameter named '%s'", name);
  return i;
}

static int m_get(lua_State *L) {
  lu_unet *n = lu_lua_check_net(L, 1);
  int i = param_index(L, n, 2);
  const lu_param *p = lu_unet_param(n, i);
  if (!p) luaL_error(L, "net:get: parameter %d of %d", i + 1, lu_unet_num_params(n));
  lu_tensor *h;
  LU_LCHECK(L, lu_tensor_new_host(&h, LU_F32, p->ndim, p->shape), "net:get");
  lu_lua_push_tensor(L, h);
  LU_LCHECK(L, lu_unet_read_param(n, i, h->host), "net:get");
  return 1;
}

static int m_set(lua_State *L) {
  lu_unet *n = lu_lua_check_net(L, 1);
  int i = param_index(L, n, 2);
  const lu_param *p = lu_unet_param(n, i);
  lu_tensor *t = lu_lua_check_tensor(L, 3);
  if (!p) luaL_error(L, "net:set: parameter %d of %d", i + 1, lu_unet_num_params(n));
  if (!t->host || t->dtype != LU_F32 || (size_t)lu_tensor_numel(t) != p->numel)
    luaL_error(L, "net:set: %s needs a host f32 tensor of %d elements", p->name, (int)p->numel);
  LU_LCHECK(L, lu_unet_write_param(n, i, t->host), "net:set");
  return 0;
}

static int m_flat(lua_State *L) {
  lu_unet *n = lu_lua_check_net(L, 1);
  int w = (int)luaL_checkinteger(L, 2);
  size_t nf = lu_unet_flat_floats(n);
  luaL_Buffer b;
  float *p = (float *)luaL_buffinitsize(L, &b, nf * sizeof(float));
  LU_LCHECK(L, lu_unet_read_flat(n, w, p), "net:flat");
  luaL_pushresultsize(&b, nf * sizeof(float));
  return 1;
}

static int m_set_flat(lua_State *L) {
  lu_unet *n = lu_lua_check_net(L, 1);
  int w = (int)luaL_checkinteger(L, 2);
  size_t len;
  const char *s = luaL_checklstring(L, 3, &len);
  if (len != lu_unet_flat_floats(n) * sizeof(float)) luaL_error(L, "net:set_flat: %d bytes, need %d", (int)len,
                                                                 (int)(lu_unet_flat_floats(n) * sizeof(float)));
  LU_LCHECK(L, lu_unet_write_flat(n, w, (const float *)s), "net:set_flat");
  return 0;
}

static int m_save(lua_State *L) {
  lu_unet *n = lu_lua_check_net(L, 1);
  const char *path = luaL_checkstring(L, 2);
  size_t jl;
  const char *json = luaL_checklstring(L, 3, &jl);
  LU_LCHECK(L, lu_ckpt_save(n, path, json, jl), "net:save");
  return 0;
}

static int m_load(lua_State *L) {
  int with_momentum = lua_isnoneornil(L, 3) ? 1 : lua_toboolean(L, 3);
  LU_LCHECK(L, lu_ckpt_load(lu_lua_check_net(L, 1), luaL_checkstring(L, 2), with_momentum), "net:load");
  return 0;
}

static int l_read_header(lua_State *L) {
  char *json, *arch;
  LU_LCHECK(L, lu_ckpt_read_header(luaL_checkstring(L, 1), &json, &arch), "net.read_header");
  lua_pushstring(L, json);
  lua_pushstring(L, arch);
  free(json);
  free(arch);
  return 2;
}

static const luaL_Reg methods[] = {
  {"params", m_params}, {"num_weights", m_num_weights}, {"arch", m_arch}, {"init", m_init},
  {"forward", m_forward}, {"device", m_device}, {"train_step", m_train_step},
  {"train_grad", m_train_grad}, {"train_update", m_train_update},
  {"set_half_activations", m_set_half}, {"half_activations", m_half},
  {"set_half_inference", m_set_half_infer}, {"half_inference", m_half_infer}, {"set_scaler", m_set_scaler},
  {"freeze_weights", m_freeze}, {"weights_frozen", m_frozen},
  {"scaler", m_scaler}, {"loss", m_loss}, {"get", m_get}, {"set", m_set},
  {"stage", m_stage}, {"train_step_staged", m_train_step_staged},
  {"flat", m_flat}, {"set_flat", m_set_flat}, {"activation_bytes", m_activation_bytes},
  {"live_peak_bytes", m_live_peak_bytes}, {"save", m_save},
  {"flat_floats", m_flat_floats}, {"flat_bytes", m_flat_bytes},
  {"load", m_load}, {"free", m_gc}, {NULL, NULL}};

int lu_open_net(lua_State *L) {
  if (luaL_newmetatable(L, NET_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, m_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"new", l_new}, {"read_header", l_read_header}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
