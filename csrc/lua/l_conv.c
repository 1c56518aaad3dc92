/* lunet.core.conv: convolutions and transposed convolutions on device tensors. (The float64 reference
 * the specs compare against is in lunet.testing; the strategy each pass takes is chosen by the device's
 * tunables, lunet.core.tune.)
 *
 *   fwd(x, w, b|nil, y, opts)            -> y       opts: {k=, stride=, pad=} (numbers or per-axis tables)
 *   bwd_data(dy, w, dx, opts)            -> dx
 *   bwd_weight(x, dy, dw, db|nil, opts)  -> dw      opts.accumulate: add into dw/db
 *   T_fwd / T_bwd_data / T_bwd_weight: transposed conv, kernel == stride (opts.stride or w's kernel)
 *   out_shape(x_shape, cout, opts), T_out_shape(x_shape, cout, opts), flops(x_shape, cout, opts[, transposed])
 * Without k in opts the kernel is taken from w's shape; the default padding is (k - 1) / 2. */
#include <string.h>

#include "cl/tunables.h"
#include "lua/l_common.h"
#include "ops/conv.h"

static void opt_axes(lua_State *L, int idx, const char *key, int nsp, int *out, int dflt, int *given) {
  *given = 0;
  for (int i = 0; i < 3; i++) out[i] = dflt;
  if (!lua_istable(L, idx)) return;
  lua_getfield(L, idx, key);
  if (lua_isinteger(L, -1)) {
    for (int i = 0; i < nsp; i++) out[i] = (int)lua_tointeger(L, -1);
    *given = 1;
  } else if (lua_istable(L, -1)) {
    if ((int)lua_rawlen(L, -1) != nsp) luaL_error(L, "conv: opts.%s needs %d entries", key, nsp);
    for (int i = 0; i < nsp; i++) {
      lua_rawgeti(L, -1, i + 1);
      out[i] = (int)luaL_checkinteger(L, -1);
      lua_pop(L, 1);
    }
    *given = 1;
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "conv: opts.%s must be an integer or a table of %d integers", key, nsp);
  }
  lua_pop(L, 1);
}

/* Descriptor from opts; nsp from the tensor ndim; kernel from the weight's shape when not given. */
static lu_conv_desc make_desc(lua_State *L, int opts, int ndim, const int64_t *wshape, int transposed) {
  lu_conv_desc d;
  memset(&d, 0, sizeof d);
  d.nsp = ndim - 2;
  if (d.nsp != 2 && d.nsp != 3) luaL_error(L, "conv: tensors need 4 or 5 dims (N, C, [Z,] Y, X), got %d", ndim);
  int given;
  int k[3], s[3], p[3];
  opt_axes(L, opts, "k", d.nsp, k, 1, &given);
  if (!given && wshape)
    for (int i = 0; i < d.nsp; i++) k[i] = (int)wshape[2 + i];
  opt_axes(L, opts, "stride", d.nsp, s, 1, &given);
  if (transposed && !given)
    for (int i = 0; i < d.nsp; i++) s[i] = k[i];
  if (transposed) {
    LU_LCHECK(L, lu_convT_desc_init(&d, d.nsp, s), "conv");
    return d;
  }
  LU_LCHECK(L, lu_conv_desc_init(&d, d.nsp, k, s), "conv");
  opt_axes(L, opts, "pad", d.nsp, p, 0, &given);
  if (given) {
    for (int i = 0; i < d.nsp; i++) d.pad[i] = p[i];
    LU_LCHECK(L, lu_conv_desc_check(&d), "conv");
  }
  return d;
}

static int opt_accumulate(lua_State *L, int idx) {
  if (!lua_istable(L, idx)) return 0;
  lua_getfield(L, idx, "accumulate");
  int a = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return a;
}

static lu_tensor *opt_tensor(lua_State *L, int idx) { return lua_isnoneornil(L, idx) ? NULL : lu_lua_check_tensor(L, idx); }

/* The three passes, for convolutions (transposed = 0) and transposed ones (1). */
static int fwd(lua_State *L, int transposed) {
  lu_tensor *x = lu_lua_check_tensor(L, 1), *w = lu_lua_check_tensor(L, 2), *b = opt_tensor(L, 3),
            *y = lu_lua_check_tensor(L, 4);
  lu_conv_desc d = make_desc(L, 5, x->ndim, w->shape, transposed);
  if (transposed) LU_LCHECK(L, lu_convT_fwd(&d, x, w, b, y), "conv.T_fwd");
  else LU_LCHECK(L, lu_conv_fwd(&d, x, w, b, y), "conv.fwd");
  lua_settop(L, 4);
  return 1;
}

static int bwd_data(lua_State *L, int transposed) {
  lu_tensor *dy = lu_lua_check_tensor(L, 1), *w = lu_lua_check_tensor(L, 2), *dx = lu_lua_check_tensor(L, 3);
  lu_conv_desc d = make_desc(L, 4, dx->ndim, w->shape, transposed);
  if (transposed) LU_LCHECK(L, lu_convT_bwd_data(&d, dy, w, dx), "conv.T_bwd_data");
  else LU_LCHECK(L, lu_conv_bwd_data(&d, dy, w, dx), "conv.bwd_data");
  lua_settop(L, 3);
  return 1;
}

static int bwd_weight(lua_State *L, int transposed) {
  lu_tensor *x = lu_lua_check_tensor(L, 1), *dy = lu_lua_check_tensor(L, 2), *dw = lu_lua_check_tensor(L, 3),
            *db = opt_tensor(L, 4);
  lu_conv_desc d = make_desc(L, 5, x->ndim, dw->shape, transposed);
  int acc = opt_accumulate(L, 5);
  if (transposed) LU_LCHECK(L, lu_convT_bwd_weight(&d, x, dy, dw, db, acc), "conv.T_bwd_weight");
  else LU_LCHECK(L, lu_conv_bwd_weight(&d, x, dy, dw, db, acc), "conv.bwd_weight");
  lua_settop(L, 3);
  return 1;
}

/* fwd_cat(x1, x2, w, b|nil, y [, opts]) -> y; bwd_data_cat(dy, w, dx1, dx2 [, opts]);
 * bwd_weight_cat(x1, x2, dy, dw, db|nil [, opts]): a convolution of the channel concatenation [x1, x2], read
 * in place where the implicit GEMM runs (lu_conv_fwd_cat); cat_in_place(dtype [, device]) says where. */
static int l_fwd_cat(lua_State *L) {
  lu_tensor *x1 = lu_lua_check_tensor(L, 1), *x2 = lu_lua_check_tensor(L, 2), *w = lu_lua_check_tensor(L, 3),
            *b = opt_tensor(L, 4), *y = lu_lua_check_tensor(L, 5);
  lu_conv_desc d = make_desc(L, 6, x1->ndim, w->shape, 0);
  LU_LCHECK(L, lu_conv_fwd_cat(&d, x1, x2, w, b, y), "conv.fwd_cat");
  lua_settop(L, 5);
  return 1;
}

static int l_bwd_data_cat(lua_State *L) {
  lu_tensor *dy = lu_lua_check_tensor(L, 1), *w = lu_lua_check_tensor(L, 2), *dx1 = lu_lua_check_tensor(L, 3),
            *dx2 = lu_lua_check_tensor(L, 4);
  lu_conv_desc d = make_desc(L, 5, dx1->ndim, w->shape, 0);
  LU_LCHECK(L, lu_conv_bwd_data_cat(&d, dy, w, dx1, dx2), "conv.bwd_data_cat");
  return 0;
}

static int l_bwd_weight_cat(lua_State *L) {
  lu_tensor *x1 = lu_lua_check_tensor(L, 1), *x2 = lu_lua_check_tensor(L, 2), *dy = lu_lua_check_tensor(L, 3),
            *dw = lu_lua_check_tensor(L, 4), *db = opt_tensor(L, 5);
  lu_conv_desc d = make_desc(L, 6, x1->ndim, dw->shape, 0);
  LU_LCHECK(L, lu_conv_bwd_weight_cat(&d, x1, x2, dy, dw, db, opt_accumulate(L, 6)), "conv.bwd_weight_cat");
  return 0;
}

static int l_cat_in_place(lua_State *L) {
  lu_dtype dt;
  LU_LCHECK(L, lu_dtype_parse(luaL_checkstring(L, 1), &dt), "conv.cat_in_place");
  lua_pushboolean(L, lu_conv_cat_in_place(lu_lua_opt_device(L, 2), dt));
  return 1;
}

static int l_fwd(lua_State *L) { return fwd(L, 0); }
static int l_bwd_data(lua_State *L) { return bwd_data(L, 0); }
static int l_bwd_weight(lua_State *L) { return bwd_weight(L, 0); }
static int l_T_fwd(lua_State *L) { return fwd(L, 1); }
static int l_T_bwd_data(lua_State *L) { return bwd_data(L, 1); }
static int l_T_bwd_weight(lua_State *L) { return bwd_weight(L, 1); }

static int out_shape(lua_State *L, int transposed) {
  int64_t xs[LU_MAX_DIMS], ys[LU_MAX_DIMS];
  int nd = lu_lua_check_shape(L, 1, xs);
  int64_t cout = luaL_checkinteger(L, 2);
  lu_conv_desc d = make_desc(L, 3, nd, NULL, transposed);
  if (transposed) LU_LCHECK(L, lu_convT_out_shape(&d, xs, cout, ys), "conv.T_out_shape");
  else LU_LCHECK(L, lu_conv_out_shape(&d, xs, cout, ys), "conv.out_shape");
  lu_lua_push_shape(L, nd, ys);
  return 1;
}
static int l_out_shape(lua_State *L) { return out_shape(L, 0); }
static int l_T_out_shape(lua_State *L) { return out_shape(L, 1); }

static int l_flops(lua_State *L) {
  int64_t xs[LU_MAX_DIMS];
  int nd = lu_lua_check_shape(L, 1, xs);
  int64_t cout = luaL_checkinteger(L, 2);
  int tr = lua_toboolean(L, 4);
  lu_conv_desc d = make_desc(L, 3, nd, NULL, tr);
  lua_pushnumber(L, tr ? lu_convT_flops(&d, xs, cout) : lu_conv_flops(&d, xs, cout));
  return 1;
}

/* mma_available([device]) -> {f16 = bool, tf32 = bool, ldmatrix = bool}: whether the implicit GEMM's
 * inline-PTX mma.sync (and ldmatrix for its f16 fragments) ran correctly on the device (probed once: NVIDIA,
 * compute capability >= 8) */
static int l_mma_available(lua_State *L) {
  lu_device *dev = lu_lua_opt_device(L, 1);
  lua_createtable(L, 0, 3);
  lua_pushboolean(L, lu_conv_ldmatrix_available(dev));
  lua_setfield(L, -2, "ldmatrix");
  lua_pushboolean(L, lu_conv_mma_available(dev, 1));
  lua_setfield(L, -2, "f16");
  lua_pushboolean(L, lu_conv_mma_available(dev, 0));
  lua_setfield(L, -2, "tf32");
  return 1;
}

/* igemm_record(on): starts (forgetting the last) or stops recording the implicit GEMM's shapes; stopping
 * returns them: { {key=, pass=, tile=<tile it ran with>, rule=<tile the rule picks>, ldmatrix=<whether its
 * kernel takes the "l" tiles>}, ... } (lunet.tuner) */
static int l_igemm_record(lua_State *L) {
  int on = lua_toboolean(L, 1);
  LU_LCHECK(L, lu_conv_igemm_record(on), "conv.igemm_record");
  if (on) return 0;
  lua_newtable(L);
  const char *key;
  int pass, tile, rule, ldmatrix;
  for (int i = 0; lu_conv_igemm_recorded(i, &key, &pass, &tile, &rule, &ldmatrix); i++) {
    char name[64];
    lua_createtable(L, 0, 5);
    lua_pushstring(L, key); lua_setfield(L, -2, "key");
    lua_pushinteger(L, pass); lua_setfield(L, -2, "pass");
    lu_tune_format(LU_TUNE_CONV_IGEMM_TILE, tile, name, sizeof name);
    lua_pushstring(L, name); lua_setfield(L, -2, "tile");
    lu_tune_format(LU_TUNE_CONV_IGEMM_TILE, rule, name, sizeof name);
    lua_pushstring(L, name); lua_setfield(L, -2, "rule");
    lua_pushboolean(L, ldmatrix); lua_setfield(L, -2, "ldmatrix");
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* igemm_tiles() -> { "64x64", ... }: conv.igemm_tile's values */
static int l_igemm_tiles(lua_State *L) {
  lua_newtable(L);
  for (int i = 0; i < lu_conv_igemm_tiles(); i++) {
    char name[64];
    lu_tune_format(LU_TUNE_CONV_IGEMM_TILE, i, name, sizeof name);
    lua_pushstring(L, name);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* igemm_time(i, tile, repeats [, device]) -> seconds, or nil and the reason where the tile does not fit or
 * fails: the i-th recorded GEMM (1-based) on scratch buffers with that tile (a name or an index) */
static int l_igemm_time(lua_State *L) {
  int i = (int)luaL_checkinteger(L, 1) - 1, tile = 0;
  if (lua_type(L, 2) == LUA_TSTRING)
    LU_LCHECK(L, lu_tune_parse(LU_TUNE_CONV_IGEMM_TILE, lua_tostring(L, 2), &tile), "conv.igemm_time");
  else tile = (int)luaL_checkinteger(L, 2);
  int repeats = (int)luaL_optinteger(L, 3, 3);
  lu_device *dev = lu_lua_opt_device(L, 4);
  double sec = 0;
  lu_status st = lu_conv_igemm_time(dev, i, tile, repeats, &sec);
  if (st != LU_OK) {
    lua_pushnil(L);
    lua_pushstring(L, lu_errmsg());
    lu_clear_error();
    return 2;
  }
  lua_pushnumber(L, sec);
  return 1;
}

int lu_open_conv(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"fwd", l_fwd}, {"bwd_data", l_bwd_data}, {"bwd_weight", l_bwd_weight},
    {"T_fwd", l_T_fwd}, {"T_bwd_data", l_T_bwd_data}, {"T_bwd_weight", l_T_bwd_weight},
    {"out_shape", l_out_shape}, {"T_out_shape", l_T_out_shape}, {"flops", l_flops},
    {"mma_available", l_mma_available}, {"igemm_record", l_igemm_record}, {"igemm_tiles", l_igemm_tiles},
    {"igemm_time", l_igemm_time}, {"fwd_cat", l_fwd_cat}, {"bwd_data_cat", l_bwd_data_cat},
    {"bwd_weight_cat", l_bwd_weight_cat}, {"cat_in_place", l_cat_in_place}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
