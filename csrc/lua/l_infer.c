/* require("lunet.core").infer: sliding-window inference and export helpers (csrc/infer/).
 *   steps(size, patch, step) -> {start, ...}                      compute_steps_for_sliding_window, one axis
 *   gaussian({py, px} | {pz, py, px} [, sigma_scale=1/8, value_scaling=10]) -> f32 (pz|1, py, px)
 *   extract(data, pad_before, start, patch, flip[, batch, slot]) -> (1, C, pz, py, px)   flip: bit 0 Z, 1 Y, 2 X
 *     (with batch: into window slot (0-based) of batch (B, C, ...), returned)
 *   window_add(win, logits, patch, flip, first[, slot])   win += unflip(logits[slot]) (first: win = ...)
 *   accumulate(acc, wsum|nil, win, gauss|nil, start, patch, divisor, half, threads)
 *     (window_add and accumulate run on the device when win / acc are device tensors)
 *   finalize(acc, wsum, pad_before, shape, half[, k]) -> (K, Z, Y, X), or (1, Z, Y, X) of class k (0-based)
 *   shift_rows_(acc | wsum, n)        streaming ring: rows n.. move to 0.., the last n rows are zeroed
 *   add_(a, b, half); scale_(a, s, half); round_half_(t)   in place, f32, optionally rounded to float16
 *   channel(t (K, ...), k (0-based)) -> (1, ...) f32 copy of channel k
 *   argmax_update(cls, k, maxv, seg[, off]);  region_update(cls, label, seg[, off])  (off: voxel offset in seg)
 *   softmax(t, sigmoid, threads)
 *   uncrop(t, full{3}, bbox{{a,b}x3}, fill0) -> t;  transpose(t, perm{3} (0-based)) -> t
 *   onehot_append(data, seg, {labels}) -> data with one channel per label appended
 *   round_half(x) -> x rounded to the nearest float16 */
#include <stdlib.h>
#include <string.h>

#include "infer/export.h"
#include "infer/sliding.h"
#include "lua/l_common.h"

static int l_steps(lua_State *L) {
  int64_t size = luaL_checkinteger(L, 1), patch = luaL_checkinteger(L, 2);
  double step = luaL_checknumber(L, 3);
  int n = 0;
  int64_t first[1];
  LU_LCHECK(L, lu_sw_steps(size, patch, step, first, 0, &n), "infer.steps");
  int64_t *s = malloc(sizeof(int64_t) * (size_t)n);
  if (!s) return luaL_error(L, "infer.steps: no memory");
  lu_sw_steps(size, patch, step, s, n, &n);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushinteger(L, (lua_Integer)s[i]);
    lua_rawseti(L, -2, i + 1);
  }
  free(s);
  return 1;
}

static int l_gaussian(lua_State *L) {
  int64_t p[LU_MAX_DIMS];
  int nd = lu_lua_check_shape(L, 1, p);
  double ss = luaL_optnumber(L, 2, 1.0 / 8.0), vs = luaL_optnumber(L, 3, 10.0);
  lu_tensor *t;
  LU_LCHECK(L, lu_sw_gaussian(nd, p, ss, vs, &t), "infer.gaussian");
  lu_lua_push_tensor(L, t);
  return 1;
}

static int l_extract(lua_State *L) {
  lu_tensor *d = lu_lua_check_tensor(L, 1);
  int64_t pb[3], st[3], pa[3];
  lu_lua_check_ints(L, 2, pb, 3, 3, "extract: pad_before");
  lu_lua_check_ints(L, 3, st, 3, 3, "extract: start");
  lu_lua_check_ints(L, 4, pa, 3, 3, "extract: patch");
  int flip = (int)luaL_optinteger(L, 5, 0);
  if (!lua_isnoneornil(L, 6)) {
    lu_tensor *b = lu_lua_check_tensor(L, 6);
    LU_LCHECK(L, lu_sw_extract_into(d, pb, st, pa, flip, b, luaL_checkinteger(L, 7)), "infer.extract");
    lua_pushvalue(L, 6);
    return 1;
  }
  lu_tensor *t;
  LU_LCHECK(L, lu_sw_extract(d, pb, st, pa, flip, &t), "infer.extract");
  lu_lua_push_tensor(L, t);
  return 1;
}

/* The tensor at idx where the destination lives: as is for a device destination (the device
 * kernels), else a host copy of a device tensor (*tmp owns it). */
static lu_tensor *host_of(lua_State *L, int idx, const lu_tensor *dest, lu_tensor **tmp) {
  lu_tensor *t = lu_lua_check_tensor(L, idx);
  *tmp = NULL;
  if (t->host || dest->buf) return t;
  LU_LCHECK(L, lu_tensor_to_host(t, tmp), "infer: model output to host");
  return *tmp;
}

static int l_window_add(lua_State *L) {
  lu_tensor *win = lu_lua_check_tensor(L, 1), *tmp;
  lu_tensor *lg = host_of(L, 2, win, &tmp);
  int64_t pa[3];
  lu_lua_check_ints(L, 3, pa, 3, 3, "window_add: patch");
  lu_status s = lu_sw_window_add(win, lg, pa, (int)luaL_optinteger(L, 4, 0), lua_toboolean(L, 5),
                                 luaL_optinteger(L, 6, 0));
  if (tmp) lu_tensor_free(tmp);
  LU_LCHECK(L, s, "infer.window_add");
  return 0;
}

static int l_accumulate(lua_State *L) {
  lu_tensor *acc = lu_lua_check_tensor(L, 1);
  lu_tensor *w = lua_isnoneornil(L, 2) ? NULL : lu_lua_check_tensor(L, 2);
  lu_tensor *tmp;
  lu_tensor *lg = host_of(L, 3, acc, &tmp);
  lu_tensor *g = lua_isnoneornil(L, 4) ? NULL : lu_lua_check_tensor(L, 4);
  int64_t st[3], pa[3];
  lu_lua_check_ints(L, 5, st, 3, 3, "accumulate: start");
  lu_lua_check_ints(L, 6, pa, 3, 3, "accumulate: patch");
  float divisor = (float)luaL_optnumber(L, 7, 1.0);
  int half = lua_toboolean(L, 8);
  int threads = (int)luaL_optinteger(L, 9, 1);
  lu_status s = lu_sw_accumulate(acc, w, lg, g, st, pa, divisor, half, threads);
  if (tmp) lu_tensor_free(tmp);
  LU_LCHECK(L, s, "infer.accumulate");
  return 0;
}

static int l_finalize(lua_State *L) {
  lu_tensor *acc = lu_lua_check_tensor(L, 1), *w = lu_lua_check_tensor(L, 2);
  int64_t pb[3], sh[3];
  lu_lua_check_ints(L, 3, pb, 3, 3, "finalize: pad_before");
  lu_lua_check_ints(L, 4, sh, 3, 3, "finalize: shape");
  lu_tensor *t;
  LU_LCHECK(L, lu_sw_finalize(acc, w, pb, sh, lua_toboolean(L, 5), (int)luaL_optinteger(L, 6, -1), &t),
            "infer.finalize");
  lu_lua_push_tensor(L, t);
  return 1;
}

static int l_shift_rows(lua_State *L) {
  LU_LCHECK(L, lu_sw_shift_rows(lu_lua_check_tensor(L, 1), (int64_t)luaL_checkinteger(L, 2)), "infer.shift_rows_");
  return 0;
}

static int l_add(lua_State *L) {
  LU_LCHECK(L, lu_sw_add(lu_lua_check_tensor(L, 1), lu_lua_check_tensor(L, 2), lua_toboolean(L, 3)), "infer.add_");
  return 0;
}

static int l_scale(lua_State *L) {
  LU_LCHECK(L, lu_sw_scale(lu_lua_check_tensor(L, 1), (float)luaL_checknumber(L, 2), lua_toboolean(L, 3)),
            "infer.scale_");
  return 0;
}

static int l_round_half_t(lua_State *L) {
  LU_LCHECK(L, lu_sw_round_half(lu_lua_check_tensor(L, 1)), "infer.round_half_");
  return 0;
}

static int l_channel(lua_State *L) {
  lu_tensor *t = lu_lua_check_tensor(L, 1);
  lua_Integer k = luaL_checkinteger(L, 2);
  if (!t->host || t->ndim < 2) return luaL_error(L, "infer.channel: expected a host tensor (K, ...)");
  if (k < 0 || k >= t->shape[0]) return luaL_error(L, "infer.channel: channel %d of %d", (int)k, (int)t->shape[0]);
  int64_t shp[LU_MAX_DIMS];
  memcpy(shp, t->shape, sizeof(int64_t) * (size_t)t->ndim);
  shp[0] = 1;
  lu_tensor *o;
  LU_LCHECK(L, lu_tensor_new_host(&o, LU_F32, t->ndim, shp), "infer.channel");
  int64_t n = lu_tensor_numel(o);
  if (t->dtype == LU_F32) memcpy(o->host, (const char *)t->host + (size_t)k * o->bytes, o->bytes);
  else
    for (int64_t i = 0; i < n; i++) ((float *)o->host)[i] = (float)lu_host_get(t, k * n + i);
  lu_lua_push_tensor(L, o);
  return 1;
}

static int l_argmax_update(lua_State *L) {
  LU_LCHECK(L, lu_ex_argmax_update(lu_lua_check_tensor(L, 1), (int)luaL_checkinteger(L, 2), lu_lua_check_tensor(L, 3),
                                   lu_lua_check_tensor(L, 4), (int64_t)luaL_optinteger(L, 5, 0)),
            "infer.argmax_update");
  return 0;
}

static int l_region_update(lua_State *L) {
  LU_LCHECK(L, lu_ex_region_update(lu_lua_check_tensor(L, 1), (int)luaL_checkinteger(L, 2), lu_lua_check_tensor(L, 3),
                                   (int64_t)luaL_optinteger(L, 4, 0)),
            "infer.region_update");
  return 0;
}

static int l_softmax(lua_State *L) {
  LU_LCHECK(L, lu_ex_softmax(lu_lua_check_tensor(L, 1), lua_toboolean(L, 2), (int)luaL_optinteger(L, 3, 1)),
            "infer.softmax");
  return 0;
}

static int l_uncrop(lua_State *L) {
  lu_tensor *t = lu_lua_check_tensor(L, 1);
  int64_t full[3], bb[3][2];
  lu_lua_check_ints(L, 2, full, 3, 3, "uncrop: shape");
  luaL_checktype(L, 3, LUA_TTABLE);
  for (int a = 0; a < 3; a++) {
    lua_rawgeti(L, 3, a + 1);
    if (!lua_istable(L, -1)) return luaL_error(L, "uncrop: bbox entry %d is not a pair", a + 1);
    for (int j = 0; j < 2; j++) {
      lua_rawgeti(L, -1, j + 1);
      bb[a][j] = (int64_t)luaL_checkinteger(L, -1);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lu_tensor *o;
  LU_LCHECK(L, lu_ex_uncrop(t, full, (const int64_t(*)[2])bb, luaL_optnumber(L, 4, 0.0), &o), "infer.uncrop");
  lu_lua_push_tensor(L, o);
  return 1;
}

static int l_transpose(lua_State *L) {
  lu_tensor *t = lu_lua_check_tensor(L, 1);
  int64_t p[3];
  lu_lua_check_ints(L, 2, p, 3, 3, "transpose: perm");
  int perm[3] = {(int)p[0], (int)p[1], (int)p[2]};
  lu_tensor *o;
  LU_LCHECK(L, lu_ex_transpose(t, perm, &o), "infer.transpose");
  lu_lua_push_tensor(L, o);
  return 1;
}

static int l_onehot_append(lua_State *L) {
  lu_tensor *d = lu_lua_check_tensor(L, 1), *s = lu_lua_check_tensor(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  int n = (int)lua_rawlen(L, 3);
  int32_t labels[1024];
  if (n > 1024) return luaL_error(L, "onehot_append: at most 1024 labels");
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, 3, i + 1);
    labels[i] = (int32_t)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
  }
  lu_tensor *o;
  LU_LCHECK(L, lu_ex_onehot_append(d, s, labels, n, &o), "infer.onehot_append");
  lu_lua_push_tensor(L, o);
  return 1;
}

static int l_round_half(lua_State *L) {
  lua_pushnumber(L, (lua_Number)lu_round_to_half((float)luaL_checknumber(L, 1)));
  return 1;
}

int lu_open_infer(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"steps", l_steps},         {"gaussian", l_gaussian},   {"extract", l_extract},
      {"accumulate", l_accumulate}, {"finalize", l_finalize}, {"channel", l_channel},
      {"argmax_update", l_argmax_update}, {"region_update", l_region_update}, {"softmax", l_softmax},
      {"uncrop", l_uncrop},       {"transpose", l_transpose}, {"onehot_append", l_onehot_append},
      {"round_half", l_round_half}, {"round_half_", l_round_half_t}, {"window_add", l_window_add},
      {"add_", l_add},            {"scale_", l_scale},        {"shift_rows_", l_shift_rows}, {NULL, NULL}};
  lua_newtable(L);
  lu_lua_setfuncs(L, fns);
  return 1;
}
