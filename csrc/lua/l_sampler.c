/* lunet.core.sampler: nnU-Net's patch sampling (csrc/data/sampler.h).
 *   force_fg(batch_size, oversample, j) -> bool          (j 0-based)
 *   initial_patch(patch{2|3}, rot_radians [, scale_min=0.85]) -> {..}
 *   bbox(shape{3}, patch{3}, final{3}, force_fg, classes, rng [, annotated_key_index, has_ignore])
 *        -> lo{3}, hi{3} (hi exclusive), selected class index (1-based) or nil
 *      classes: array of I64/I32 tensors (N, 4) or (N, 3) (or nil / empty entries), as class_locations
 *   crop(tensor (C,Z,Y,X), lo{3}, hi{3}, pad) -> new tensor of the same dtype, padded outside
 *   stack({tensors of equal shape}, dtype) -> tensor (B, ...) converted to dtype */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "data/sampler.h"
#include "lua/l_common.h"
#include "lua/l_rng.h"

static int l_force_fg(lua_State *L) {
  lua_pushboolean(L, lu_sampler_force_fg((int)luaL_checkinteger(L, 1), luaL_checknumber(L, 2), (int)luaL_checkinteger(L, 3)));
  return 1;
}

static int l_initial_patch(lua_State *L) {
  int64_t p[3], o[3];
  int n = lu_lua_check_ints(L, 1, p, 2, 3, "sampler: patch");
  lu_sampler_initial_patch(n, p, luaL_checknumber(L, 2), luaL_optnumber(L, 3, 0.85), o);
  lu_lua_push_ints(L, o, n);
  return 1;
}

static int l_bbox(lua_State *L) {
  int64_t shape[3], patch[3], fin[3], lo[3], hi[3];
  lu_lua_check_ints(L, 1, shape, 3, 3, "sampler: shape");
  lu_lua_check_ints(L, 2, patch, 3, 3, "sampler: patch");
  lu_lua_check_ints(L, 3, fin, 3, 3, "sampler: final patch");
  int force = lua_toboolean(L, 4);
  lu_rng *rng = lu_lua_check_rng(L, 6);
  int annotated = (int)luaL_optinteger(L, 7, 0) - 1;
  int has_ignore = lua_toboolean(L, 8);
  int nc = 0;
  lu_class_locs cls[256];
  int64_t *owned[256];
  int nowned = 0;
  if (!lua_isnoneornil(L, 5)) {
    luaL_checktype(L, 5, LUA_TTABLE);
    nc = (int)luaL_len(L, 5);
    if (nc > 256) return luaL_error(L, "sampler.bbox: at most 256 classes, got %d", nc);
    for (int c = 0; c < nc; c++) {
      lua_geti(L, 5, c + 1);
      lu_tensor *t = lu_lua_test_tensor(L, -1);
      cls[c] = (lu_class_locs){NULL, 0, 4};
      if (t) {
        if (!t->host || (t->ndim != 2 && !(t->ndim == 1 && t->shape[0] == 0)))
          return luaL_error(L, "sampler.bbox: class %d locations must be a host (N, 4) tensor", c + 1);
        int64_t n = t->ndim == 2 ? t->shape[0] : 0;
        int stride = t->ndim == 2 ? (int)t->shape[1] : 4;
        if (t->dtype == LU_I64) {
          cls[c] = (lu_class_locs){(const int64_t *)t->host, n, stride};
        } else {
          int64_t *cp = (int64_t *)malloc(sizeof(int64_t) * (size_t)(n * stride + 1));
          if (!cp) return luaL_error(L, "sampler.bbox: out of memory");
          for (int64_t i = 0; i < n * stride; i++) cp[i] = (int64_t)lu_host_get(t, i);
          owned[nowned++] = cp;
          cls[c] = (lu_class_locs){cp, n, stride};
        }
      } else if (!lua_isnil(L, -1) && !(lua_istable(L, -1) && luaL_len(L, -1) == 0)) {
        return luaL_error(L, "sampler.bbox: class %d locations must be a tensor (N, 4) or empty", c + 1);
      }
      lua_pop(L, 1);
    }
  }
  int sel = -1;
  lu_status st = lu_sampler_bbox(shape, patch, fin, force, cls, nc, annotated, has_ignore, rng, lo, hi, &sel);
  for (int i = 0; i < nowned; i++) free(owned[i]);
  LU_LCHECK(L, st, "sampler.bbox");
  lu_lua_push_ints(L, lo, 3);
  lu_lua_push_ints(L, hi, 3);
  if (sel >= 0) lua_pushinteger(L, sel + 1); else lua_pushnil(L);
  return 3;
}

static int l_crop(lua_State *L) {
  lu_tensor *t = lu_lua_check_tensor(L, 1);
  if (!t->host || t->ndim != 4) return luaL_error(L, "sampler.crop: expected a host (C, Z, Y, X) tensor");
  int64_t lo[3], hi[3];
  lu_lua_check_ints(L, 2, lo, 3, 3, "sampler: lo");
  lu_lua_check_ints(L, 3, hi, 3, 3, "sampler: hi");
  double padv = luaL_optnumber(L, 4, 0);
  for (int d = 0; d < 3; d++) if (hi[d] <= lo[d]) return luaL_error(L, "sampler.crop: empty box on axis %d", d + 1);
  int64_t os[4] = {t->shape[0], hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]};
  lu_tensor *o;
  LU_LCHECK(L, lu_tensor_new_host(&o, t->dtype, 4, os), "sampler.crop");
  /* the pad value in the tensor's dtype: write it into a 1-element scratch tensor */
  int64_t one = 1;
  lu_tensor *pt;
  lu_status st = lu_tensor_new_host(&pt, t->dtype, 1, &one);
  if (st != LU_OK) { lu_tensor_free(o); LU_LCHECK(L, st, "sampler.crop"); }
  lu_host_set(pt, 0, padv);
  lu_sampler_crop(t->host, (int)lu_dtype_size(t->dtype), (int)t->shape[0], &t->shape[1], lo, hi, pt->host, o->host);
  lu_tensor_free(pt);
  lu_lua_push_tensor(L, o);
  return 1;
}

static int l_stack(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int n = (int)luaL_len(L, 1);
  if (n < 1) return luaL_error(L, "sampler.stack: empty list");
  lu_dtype dt;
  LU_LCHECK(L, lu_dtype_parse(luaL_checkstring(L, 2), &dt), "sampler.stack");
  lua_geti(L, 1, 1);
  lu_tensor *t0 = lu_lua_check_tensor(L, -1);
  lua_pop(L, 1);
  if (t0->ndim >= LU_MAX_DIMS) return luaL_error(L, "sampler.stack: tensors already have %d axes", t0->ndim);
  int64_t shape[LU_MAX_DIMS];
  shape[0] = n;
  for (int d = 0; d < t0->ndim; d++) shape[d + 1] = t0->shape[d];
  lu_tensor *o;
  LU_LCHECK(L, lu_tensor_new_host(&o, dt, t0->ndim + 1, shape), "sampler.stack");
  lu_lua_push_tensor(L, o);
  int64_t per = lu_tensor_numel(t0);
  size_t es = lu_dtype_size(dt);
  for (int i = 0; i < n; i++) {
    lua_geti(L, 1, i + 1);
    lu_tensor *t = lu_lua_check_tensor(L, -1);
    lua_pop(L, 1);
    if (!t->host || lu_tensor_numel(t) != per || t->ndim != t0->ndim)
      return luaL_error(L, "sampler.stack: entry %d is not a host tensor of the first entry's shape", i + 1);
    char *dst = (char *)o->host + (size_t)i * (size_t)per * es;
    if (t->dtype == dt) {
      memcpy(dst, t->host, (size_t)per * es);
    } else if (dt == LU_I16 && (t->dtype == LU_I8 || t->dtype == LU_U8 || t->dtype == LU_I32)) {
      int16_t *d16 = (int16_t *)dst;
      for (int64_t k = 0; k < per; k++)
        d16[k] = t->dtype == LU_I8 ? ((const int8_t *)t->host)[k]
               : t->dtype == LU_U8 ? ((const uint8_t *)t->host)[k] : (int16_t)((const int32_t *)t->host)[k];
    } else {
      for (int64_t k = 0; k < per; k++) lu_host_set(o, (int64_t)i * per + k, lu_host_get(t, k));
    }
  }
  return 1;
}

int lu_open_sampler(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"force_fg", l_force_fg}, {"initial_patch", l_initial_patch}, {"bbox", l_bbox}, {"crop", l_crop}, {"stack", l_stack}, {NULL, NULL}};
  lua_newtable(L);
  luaL_setfuncs(L, fns, 0);
  return 1;
}
