#include "lua/l_common.h"

#include <string.h>

#include "cl/device.h"

int lu_lua_raise(lua_State *L, lu_status st, const char *what) {
  return luaL_error(L, "%s: %s", what, lu_errmsg());
  (void)st;
}

typedef struct { lu_tensor *t; } lu_tensor_box;

void lu_lua_push_tensor(lua_State *L, lu_tensor *t) {
  lu_tensor_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->t = t;
  luaL_setmetatable(L, LU_TENSOR_MT);
}

lu_tensor *lu_lua_test_tensor(lua_State *L, int idx) {
  lu_tensor_box *b = luaL_testudata(L, idx, LU_TENSOR_MT);
  return b ? b->t : NULL;
}

lu_tensor *lu_lua_check_tensor(lua_State *L, int idx) {
  lu_tensor_box *b = luaL_checkudata(L, idx, LU_TENSOR_MT);
  if (!b->t) luaL_argerror(L, idx, "tensor was freed");
  return b->t;
}

int lu_lua_check_shape(lua_State *L, int idx, int64_t *shape) {
  luaL_checktype(L, idx, LUA_TTABLE);
  int n = (int)lua_rawlen(L, idx);
  if (n > LU_MAX_DIMS) luaL_argerror(L, idx, "at most 5 dimensions");
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, idx, i + 1);
    int isnum;
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    if (!isnum || v < 0) luaL_argerror(L, idx, "shape entries must be non-negative integers");
    shape[i] = v;
    lua_pop(L, 1);
  }
  return n;
}

void lu_lua_push_shape(lua_State *L, int ndim, const int64_t *shape) { lu_lua_push_ints(L, shape, ndim); }

/* Pushes t[key] of the table at idx and returns its type; LUA_TNIL (nothing pushed) when the table is absent. */
static int get_field(lua_State *L, int idx, const char *key) {
  if (lua_isnoneornil(L, idx)) return LUA_TNIL;
  int ty = lua_getfield(L, idx, key);
  if (ty == LUA_TNIL) lua_pop(L, 1);
  return ty;
}

static int field_error(lua_State *L, const char *key, const char *expected) {
  return luaL_error(L, "field '%s': expected %s, got %s", key, expected, luaL_typename(L, -1));
}

lua_Integer lu_lua_field_int(lua_State *L, int idx, const char *key, lua_Integer dflt) {
  if (get_field(L, idx, key) == LUA_TNIL) return dflt;
  int ok;
  lua_Integer v = lua_tointegerx(L, -1, &ok);
  if (!ok) field_error(L, key, "an integer");
  lua_pop(L, 1);
  return v;
}

/* Pops the field on top of the stack as a number. */
static lua_Number pop_number(lua_State *L, const char *key) {
  int ok;
  lua_Number v = lua_tonumberx(L, -1, &ok);
  if (!ok) field_error(L, key, "a number");
  lua_pop(L, 1);
  return v;
}

lua_Number lu_lua_field_number(lua_State *L, int idx, const char *key, lua_Number dflt) {
  return get_field(L, idx, key) == LUA_TNIL ? dflt : pop_number(L, key);
}

int lu_lua_field_bool(lua_State *L, int idx, const char *key, int dflt) {
  int ty = get_field(L, idx, key);
  if (ty == LUA_TNIL) return dflt;
  int v = ty == LUA_TNUMBER ? lua_tonumber(L, -1) != 0 : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

const char *lu_lua_field_string(lua_State *L, int idx, const char *key, const char *dflt) {
  if (get_field(L, idx, key) == LUA_TNIL) return dflt;
  if (lua_type(L, -1) != LUA_TSTRING) field_error(L, key, "a string");
  const char *v = lua_tostring(L, -1);
  lua_pop(L, 1);
  return v;
}

lua_Number lu_lua_check_field_number(lua_State *L, int idx, const char *key) {
  if (get_field(L, idx, key) == LUA_TNIL) luaL_error(L, "missing field '%s'", key);
  return pop_number(L, key);
}

/* The array at idx as min..max integers (ints != NULL) or numbers (nums != NULL); returns the count. */
static int check_list(lua_State *L, int idx, int64_t *ints, double *nums, int min, int max, const char *what) {
  const char *kind = ints ? "integers" : "numbers";
  idx = lua_absindex(L, idx);
  if (!lua_istable(L, idx)) luaL_error(L, "%s: expected a list of %s, got %s", what, kind, luaL_typename(L, idx));
  int n = (int)luaL_len(L, idx);
  if (n < min || n > max) {
    if (min == max) luaL_error(L, "%s: expected %d %s, got %d", what, min, kind, n);
    luaL_error(L, "%s: expected %d..%d %s, got %d", what, min, max, kind, n);
  }
  for (int i = 0; i < n; i++) {
    lua_geti(L, idx, i + 1);
    int ok;
    if (ints) ints[i] = (int64_t)lua_tointegerx(L, -1, &ok);
    else nums[i] = lua_tonumberx(L, -1, &ok);
    if (!ok) luaL_error(L, "%s: entry %d is not %s", what, i + 1, ints ? "an integer" : "a number");
    lua_pop(L, 1);
  }
  return n;
}

int lu_lua_check_ints(lua_State *L, int idx, int64_t *out, int min, int max, const char *what) {
  return check_list(L, idx, out, NULL, min, max, what);
}

int lu_lua_check_numbers(lua_State *L, int idx, double *out, int min, int max, const char *what) {
  return check_list(L, idx, NULL, out, min, max, what);
}

void lu_lua_push_ints(lua_State *L, const int64_t *v, int n) {
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushinteger(L, (lua_Integer)v[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

void lu_lua_push_numbers(lua_State *L, const double *v, int n) {
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushnumber(L, v[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

lu_device *lu_lua_opt_device(lua_State *L, int idx) {
  lu_device *dev;
  if (lua_isnoneornil(L, idx)) {
    LU_LCHECK(L, lu_device_default(&dev), "device");
  } else {
    LU_LCHECK(L, lu_device_get((int)luaL_checkinteger(L, idx), &dev), "device");
  }
  return dev;
}

void lu_lua_push_bbox(lua_State *L, const int64_t b[3][2]) {
  lua_createtable(L, 3, 0);
  for (int d = 0; d < 3; d++) {
    lu_lua_push_ints(L, b[d], 2);
    lua_rawseti(L, -2, d + 1);
  }
}

void lu_lua_setfuncs(lua_State *L, const luaL_Reg *fns) { luaL_setfuncs(L, fns, 0); }
