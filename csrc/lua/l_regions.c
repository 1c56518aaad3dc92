/* lunet.core.regions: region-based training helpers (csrc/data/regions.h).
 *   convert(seg (B,Cs,spatial...), regions [, {ignore_label=, dtype="i32", channel=1}]) -> masks (B,R[+1],spatial...)
 *       regions: list of labels or label lists, e.g. {{1, 2}, 2} (dataset_json's foreground regions in order);
 *       ignore_label appends one channel (label == ignore) as nnU-Net's trainer does.
 *   confusion(logits (N,R,spatial...) f32, target (N,R[+1],spatial...) [, has_ignore]) -> {{TP=,FP=,FN=}, ...}
 *       per region, prediction sigmoid > 0.5 (float32), mask = 1 - target's last channel when has_ignore. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "data/regions.h"
#include "lua/l_common.h"

/* Reads the regions list at idx (+ the ignore label) into malloc'd arrays. */
static void read_regions(lua_State *L, int idx, int has_ign, lua_Integer ign, lu_regions *rg, int32_t **labels,
                         int **offsets) {
  luaL_checktype(L, idx, LUA_TTABLE);
  int n = (int)luaL_len(L, idx);
  if (n < 1) luaL_argerror(L, idx, "at least one region is needed");
  int total = has_ign ? 1 : 0;
  for (int r = 1; r <= n; r++) {
    int t = lua_geti(L, idx, r);
    if (t == LUA_TTABLE) {
      int k = (int)luaL_len(L, -1);
      if (k < 1) luaL_error(L, "regions.convert: region %d is empty", r);
      for (int i = 1; i <= k; i++) {
        lua_geti(L, -1, i);
        if (!lua_isinteger(L, -1)) luaL_error(L, "regions.convert: region %d entry %d is not an integer", r, i);
        lua_pop(L, 1);
      }
      total += k;
    } else if (lua_isinteger(L, -1)) total += 1;
    else luaL_error(L, "regions.convert: region %d must be an integer label or a list of labels", r);
    lua_pop(L, 1);
  }
  int R = n + (has_ign ? 1 : 0);
  /* everything is validated above: nothing below raises while the arrays are held (caller frees) */
  *labels = malloc(sizeof(int32_t) * (size_t)total);
  *offsets = malloc(sizeof(int) * (size_t)(R + 1));
  if (!*labels || !*offsets) {
    free(*labels);
    free(*offsets);
    luaL_error(L, "regions.convert: out of memory");
  }
  int p = 0;
  (*offsets)[0] = 0;
  for (int r = 1; r <= n; r++) {
    lua_geti(L, idx, r);
    if (lua_istable(L, -1)) {
      int k = (int)luaL_len(L, -1);
      for (int i = 1; i <= k; i++) {
        lua_geti(L, -1, i);
        lua_Integer v = lua_tointeger(L, -1);
        lua_pop(L, 1);
        (*labels)[p++] = (int32_t)v;
      }
    } else {
      (*labels)[p++] = (int32_t)lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    (*offsets)[r] = p;
  }
  if (has_ign) {
    (*labels)[p++] = (int32_t)ign;
    (*offsets)[R] = p;
  }
  rg->n = R;
  rg->labels = *labels;
  rg->offsets = *offsets;
}

static int l_convert(lua_State *L) {
  lu_tensor *seg = lu_lua_check_tensor(L, 1);
  int has_ign = 0, channel = 0;
  lua_Integer ign = 0;
  lu_dtype dt = LU_I32;
  if (lua_istable(L, 3)) {
    lua_getfield(L, 3, "ignore_label");
    if (!lua_isnil(L, -1)) {
      has_ign = 1;
      ign = luaL_checkinteger(L, -1);
    }
    lua_pop(L, 1);
    lua_getfield(L, 3, "dtype");
    if (!lua_isnil(L, -1)) {
      const char *name = luaL_checkstring(L, -1);
      if (lu_dtype_parse(name, &dt) != LU_OK) luaL_error(L, "regions.convert: unknown dtype '%s'", name);
    }
    lua_pop(L, 1);
    lua_getfield(L, 3, "channel");
    if (!lua_isnil(L, -1)) channel = (int)luaL_checkinteger(L, -1) - 1;
    lua_pop(L, 1);
  }
  lu_regions rg;
  int32_t *labels;
  int *offsets;
  read_regions(L, 2, has_ign, ign, &rg, &labels, &offsets);
  lu_tensor *out;
  lu_status st = lu_regions_convert(seg, channel, &rg, dt, &out);
  free(labels);
  free(offsets);
  LU_LCHECK(L, st, "regions.convert");
  lu_lua_push_tensor(L, out);
  return 1;
}

static int l_confusion(lua_State *L) {
  lu_tensor *z = lu_lua_check_tensor(L, 1);
  lu_tensor *t = lu_lua_check_tensor(L, 2);
  int has_ign = lua_toboolean(L, 3);
  if (z->ndim < 3) luaL_argerror(L, 1, "logits must be (N, R, spatial...)");
  int64_t R = z->shape[1];
  int64_t *c = calloc((size_t)(3 * R), sizeof(int64_t));
  if (!c) return luaL_error(L, "regions.confusion: out of memory");
  lu_status st = lu_regions_confusion(z, t, has_ign, c, c + R, c + 2 * R);
  if (st != LU_OK) {
    free(c);
    LU_LCHECK(L, st, "regions.confusion");
  }
  lua_createtable(L, (int)R, 0);
  for (int64_t r = 0; r < R; r++) {
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, c[r]);
    lua_setfield(L, -2, "TP");
    lua_pushinteger(L, c[R + r]);
    lua_setfield(L, -2, "FP");
    lua_pushinteger(L, c[2 * R + r]);
    lua_setfield(L, -2, "FN");
    lua_rawseti(L, -2, (lua_Integer)r + 1);
  }
  free(c);
  return 1;
}

int lu_open_regions(lua_State *L) {
  static const luaL_Reg fns[] = {{"convert", l_convert}, {"confusion", l_confusion}, {NULL, NULL}};
  lua_newtable(L);
  lu_lua_setfuncs(L, fns);
  return 1;
}
