/* require("lunet.core").values: value checks of images and label maps (csrc/data/values.h).
 *   values.check_image(t, what)                 raises "<what> holds a non-finite voxel (inf) at ..."
 *   values.check_labels(t, allowed, what[, desc]) raises "<what> holds label 7, not in dataset.json's labels ..."
 *   values.finite(t) / values.labels(t, allowed) -> nil (clean) or {problem = "nonfinite" | "noninteger" |
 *     "not_allowed", index = flat 0-based index of the first, value = v, count = n}
 * allowed: a list of integers, or nil for any integer. */
#include <stdlib.h>

#include "data/values.h"
#include "lua/l_common.h"

#define MAX_LABELS 4096

static int read_allowed(lua_State *L, int idx, int64_t *out) {
  if (lua_isnoneornil(L, idx)) return -1;
  return lu_lua_check_ints(L, idx, out, 0, MAX_LABELS, "allowed labels");
}

static int push_find(lua_State *L, const lu_value_find *f) {
  static const char *names[] = {"ok", "nonfinite", "noninteger", "not_allowed"};
  if (f->problem == LU_VALUES_OK) { lua_pushnil(L); return 1; }
  lua_createtable(L, 0, 4);
  lua_pushstring(L, names[f->problem]); lua_setfield(L, -2, "problem");
  lua_pushinteger(L, (lua_Integer)f->first); lua_setfield(L, -2, "index");
  lua_pushnumber(L, f->value); lua_setfield(L, -2, "value");
  lua_pushinteger(L, (lua_Integer)f->count); lua_setfield(L, -2, "count");
  return 1;
}

static int l_finite(lua_State *L) {
  lu_value_find f;
  LU_LCHECK(L, lu_values_finite(lu_lua_check_tensor(L, 1), &f), "values.finite");
  return push_find(L, &f);
}

static int l_labels(lua_State *L) {
  lu_tensor *t = lu_lua_check_tensor(L, 1);
  lua_settop(L, 2); /* the buffer goes above the arguments */
  int64_t *allowed = lua_newuserdatauv(L, MAX_LABELS * sizeof *allowed, 0); /* collected with the call */
  int n = read_allowed(L, 2, allowed);
  lu_value_find f;
  LU_LCHECK(L, lu_values_labels(t, allowed, n, &f), "values.labels");
  return push_find(L, &f);
}

static int l_check_image(lua_State *L) {
  lu_tensor *t = lu_lua_check_tensor(L, 1);
  const char *what = luaL_checkstring(L, 2);
  if (lu_check_image_values(t, what) != LU_OK) return luaL_error(L, "%s", lu_errmsg());
  return 0;
}

static int l_check_labels(lua_State *L) {
  lu_tensor *t = lu_lua_check_tensor(L, 1);
  const char *what = luaL_checkstring(L, 3);
  const char *desc = luaL_optstring(L, 4, NULL);
  lua_settop(L, 4);
  int64_t *allowed = lua_newuserdatauv(L, MAX_LABELS * sizeof *allowed, 0); /* collected with the call */
  int n = read_allowed(L, 2, allowed);
  if (lu_check_label_values(t, allowed, n, what, desc) != LU_OK) return luaL_error(L, "%s", lu_errmsg());
  return 0;
}

int lu_open_values(lua_State *L) {
  static const luaL_Reg fns[] = {{"finite", l_finite}, {"labels", l_labels}, {"check_image", l_check_image},
                                 {"check_labels", l_check_labels}, {NULL, NULL}};
  lua_newtable(L);
  luaL_setfuncs(L, fns, 0);
  return 1;
}
