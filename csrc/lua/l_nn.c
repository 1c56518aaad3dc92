/* lunet.core.nn: network ops (instance norm, activations, concat, softmax, losses, deep supervision,
 * SGD) for specs, benchmarks and experiments. Outputs are passed in (and returned), so callers
 * control allocation; optional tensors may be nil. */
#include "lua/l_common.h"
#include "ops/nn.h"

static lu_tensor *opt_tensor(lua_State *L, int i) { return lua_isnoneornil(L, i) ? NULL : lu_lua_check_tensor(L, i); }

/* instnorm_fwd(y, mean, invstd, x, weight, bias [, eps [, slope]]): slope given -> fused LeakyReLU */
static int l_instnorm_fwd(lua_State *L) {
  lu_tensor *y = lu_lua_check_tensor(L, 1), *m = lu_lua_check_tensor(L, 2), *is = lu_lua_check_tensor(L, 3);
  lu_tensor *x = lu_lua_check_tensor(L, 4), *w = lu_lua_check_tensor(L, 5), *b = lu_lua_check_tensor(L, 6);
  float eps = (float)luaL_optnumber(L, 7, 1e-5);
  if (lua_isnoneornil(L, 8)) LU_LCHECK(L, lu_instnorm_fwd(x, w, b, eps, y, m, is), "nn.instnorm_fwd");
  else LU_LCHECK(L, lu_instnorm_lrelu_fwd(x, w, b, eps, (float)luaL_checknumber(L, 8), y, m, is), "nn.instnorm_fwd");
  lua_settop(L, 1);
  return 1;
}
/* instnorm_bwd(x, weight, mean, invstd, dy, dx|nil, dweight|nil, dbias|nil [, accumulate]) */
static int l_instnorm_bwd(lua_State *L) {
  LU_LCHECK(L,
            lu_instnorm_bwd(lu_lua_check_tensor(L, 1), lu_lua_check_tensor(L, 2), lu_lua_check_tensor(L, 3),
                            lu_lua_check_tensor(L, 4), lu_lua_check_tensor(L, 5), opt_tensor(L, 6), opt_tensor(L, 7),
                            opt_tensor(L, 8), lua_toboolean(L, 9)),
            "nn.instnorm_bwd");
  return 0;
}
/* instnorm_lrelu_bwd(x, weight, mean, invstd, y, slope, dy, dx|nil, dweight|nil, dbias|nil [, accumulate]) */
static int l_instnorm_lrelu_bwd(lua_State *L) {
  LU_LCHECK(L,
            lu_instnorm_lrelu_bwd(lu_lua_check_tensor(L, 1), lu_lua_check_tensor(L, 2), lu_lua_check_tensor(L, 3),
                                  lu_lua_check_tensor(L, 4), lu_lua_check_tensor(L, 5), (float)luaL_checknumber(L, 6),
                                  lu_lua_check_tensor(L, 7), opt_tensor(L, 8), opt_tensor(L, 9), opt_tensor(L, 10),
                                  lua_toboolean(L, 11)),
            "nn.instnorm_lrelu_bwd");
  return 0;
}
/* lrelu_fwd(y, x [, slope=0.01]); lrelu_bwd(dx, y, dy [, slope=0.01]) */
static int l_lrelu_fwd(lua_State *L) {
  LU_LCHECK(L, lu_lrelu_fwd(lu_lua_check_tensor(L, 1), lu_lua_check_tensor(L, 2), (float)luaL_optnumber(L, 3, 0.01)),
            "nn.lrelu_fwd");
  lua_settop(L, 1);
  return 1;
}
static int l_lrelu_bwd(lua_State *L) {
  LU_LCHECK(L,
            lu_lrelu_bwd(lu_lua_check_tensor(L, 1), lu_lua_check_tensor(L, 2), lu_lua_check_tensor(L, 3),
                         (float)luaL_optnumber(L, 4, 0.01)),
            "nn.lrelu_bwd");
  lua_settop(L, 1);
  return 1;
}
/* copy_channels(dst, dst_c0, src, src_c0, nc [, accumulate]) with 0-based channel offsets */
static int l_copy_channels(lua_State *L) {
  LU_LCHECK(L,
            lu_copy_channels(lu_lua_check_tensor(L, 1), luaL_checkinteger(L, 2), lu_lua_check_tensor(L, 3),
                             luaL_checkinteger(L, 4), luaL_checkinteger(L, 5), lua_toboolean(L, 6)),
            "nn.copy_channels");
  lua_settop(L, 1);
  return 1;
}
static int l_concat(lua_State *L) {
  LU_LCHECK(L, lu_concat_channels(lu_lua_check_tensor(L, 1), lu_lua_check_tensor(L, 2), lu_lua_check_tensor(L, 3)),
            "nn.concat");
  lua_settop(L, 1);
  return 1;
}
/* split(in, da|nil, db|nil [, accumulate]) */
static int l_split(lua_State *L) {
  LU_LCHECK(L, lu_split_channels(lu_lua_check_tensor(L, 1), opt_tensor(L, 2), opt_tensor(L, 3), lua_toboolean(L, 4)),
            "nn.split");
  return 0;
}
#define L2(name, fn)                                                                          \
  static int name(lua_State *L) {                                                             \
    LU_LCHECK(L, fn(lu_lua_check_tensor(L, 1), lu_lua_check_tensor(L, 2)), "nn." #fn);        \
    lua_settop(L, 1);                                                                         \
    return 1;                                                                                 \
  }
#define L3(name, fn)                                                                                               \
  static int name(lua_State *L) {                                                                                  \
    LU_LCHECK(L, fn(lu_lua_check_tensor(L, 1), lu_lua_check_tensor(L, 2), lu_lua_check_tensor(L, 3)), "nn." #fn); \
    lua_settop(L, 1);                                                                                              \
    return 1;                                                                                                      \
  }
L2(l_softmax, lu_softmax_fwd)
L2(l_log_softmax, lu_log_softmax_fwd)
L2(l_sigmoid, lu_sigmoid_fwd)
L3(l_softmax_bwd, lu_softmax_bwd)
L3(l_log_softmax_bwd, lu_log_softmax_bwd)

/* dc_ce_loss(logits, target, {regions=, batch_dice=, do_bg=, ignore_label=, smooth=, weight_ce=,
 * weight_dice=, scale=, device_finish=}, dlogits|nil) -> loss, {ce=, dice=, loss=, n_valid=}. do_bg defaults
 * to regions (nnU-Net). device_finish: the Dice/CE finish runs on the device (a training step's path); only the
 * loss comes back. */
static int l_dc_ce_loss(lua_State *L) {
  lu_tensor *z = lu_lua_check_tensor(L, 1), *t = lu_lua_check_tensor(L, 2);
  lu_loss_opts o;
  lu_loss_opts_default(&o);
  if (lua_istable(L, 3)) {
    o.regions = lu_lua_field_bool(L, 3, "regions", o.regions);
    o.batch_dice = lu_lua_field_bool(L, 3, "batch_dice", o.batch_dice);
    o.do_bg = lu_lua_field_bool(L, 3, "do_bg", o.regions);
    o.has_ignore = lu_lua_field_bool(L, 3, "has_ignore", o.has_ignore);
    lua_getfield(L, 3, "ignore_label");
    if (!lua_isnil(L, -1)) { o.has_ignore = 1; o.ignore_label = (int)luaL_checkinteger(L, -1); }
    lua_pop(L, 1);
    o.smooth = (float)lu_lua_field_number(L, 3, "smooth", o.smooth);
    o.weight_ce = (float)lu_lua_field_number(L, 3, "weight_ce", o.weight_ce);
    o.weight_dice = (float)lu_lua_field_number(L, 3, "weight_dice", o.weight_dice);
    o.scale = (float)lu_lua_field_number(L, 3, "scale", o.scale);
  }
  lu_tensor *dz = opt_tensor(L, 4);
  double loss;
  lu_loss_terms terms;
  if (lua_istable(L, 3) && lu_lua_field_bool(L, 3, "device_finish", 0)) {
    /* the training step's path: finish on the device into an accumulator, read once; no terms */
    if (!z->dev) return luaL_error(L, "nn.dc_ce_loss: device_finish needs device tensors");
    lu_tensor *acc = NULL;
    int64_t one = 1;
    float v = 0.0f;
    lu_status st = lu_tensor_new_device(&acc, z->dev, LU_F32, 1, &one);
    if (st == LU_OK) st = lu_tensor_write(acc, &v);
    if (st == LU_OK) {
      o.device_acc = acc->buf;
      st = lu_dc_ce_loss(z, t, &o, NULL, dz);
    }
    if (st == LU_OK) st = lu_tensor_read(acc, &v);
    lu_tensor_free(acc);
    LU_LCHECK(L, st, "nn.dc_ce_loss");
    lua_pushnumber(L, v);
    return 1;
  }
  LU_LCHECK(L, lu_dc_ce_loss_terms(z, t, &o, &loss, dz, &terms), "nn.dc_ce_loss");
  lua_pushnumber(L, loss);
  lua_createtable(L, 0, 4);
  lua_pushnumber(L, terms.ce); lua_setfield(L, -2, "ce");
  lua_pushnumber(L, terms.dice); lua_setfield(L, -2, "dice");
  lua_pushnumber(L, terms.loss); lua_setfield(L, -2, "loss");
  lua_pushnumber(L, terms.n_valid); lua_setfield(L, -2, "n_valid");
  return 2;
}

static int l_ds_downsample(lua_State *L) {
  LU_LCHECK(L, lu_ds_downsample(lu_lua_check_tensor(L, 1), lu_lua_check_tensor(L, 2)), "nn.ds_downsample");
  lua_settop(L, 1);
  return 1;
}
/* ds_shape(shape, {scale per spatial axis}) -> shape */
static int l_ds_shape(lua_State *L) {
  int64_t in[LU_MAX_DIMS], out[LU_MAX_DIMS];
  int nd = lu_lua_check_shape(L, 1, in);
  luaL_checktype(L, 2, LUA_TTABLE);
  double sc[LU_MAX_DIMS] = {1, 1, 1, 1, 1};
  for (int i = 0; i + 2 < nd; i++) {
    lua_geti(L, 2, i + 1);
    sc[i] = luaL_checknumber(L, -1);
    lua_pop(L, 1);
  }
  lu_ds_shape(nd, in, sc, out);
  lu_lua_push_shape(L, nd, out);
  return 1;
}
static int l_ds_weights(lua_State *L) {
  int n = (int)luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 1 && n <= 32, 1, "between 1 and 32 outputs");
  double w[32];
  lu_ds_weights(n, w);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) { lua_pushnumber(L, w[i]); lua_rawseti(L, -2, i + 1); }
  return 1;
}
/* sgd_nesterov(param, grad, momentum, lr, mu, wd) */
static int l_sgd(lua_State *L) {
  LU_LCHECK(L,
            lu_sgd_nesterov(lu_lua_check_tensor(L, 1), lu_lua_check_tensor(L, 2), lu_lua_check_tensor(L, 3),
                            (float)luaL_checknumber(L, 4), (float)luaL_checknumber(L, 5), (float)luaL_checknumber(L, 6)),
            "nn.sgd_nesterov");
  lua_settop(L, 1);
  return 1;
}

int lu_open_nn(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"instnorm_fwd", l_instnorm_fwd}, {"instnorm_bwd", l_instnorm_bwd}, {"instnorm_lrelu_bwd", l_instnorm_lrelu_bwd},
    {"lrelu_fwd", l_lrelu_fwd},
    {"lrelu_bwd", l_lrelu_bwd}, {"copy_channels", l_copy_channels}, {"concat", l_concat}, {"split", l_split},
    {"softmax", l_softmax}, {"log_softmax", l_log_softmax}, {"softmax_bwd", l_softmax_bwd},
    {"log_softmax_bwd", l_log_softmax_bwd}, {"sigmoid", l_sigmoid}, {"dc_ce_loss", l_dc_ce_loss},
    {"ds_downsample", l_ds_downsample}, {"ds_shape", l_ds_shape}, {"ds_weights", l_ds_weights},
    {"sgd_nesterov", l_sgd}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
