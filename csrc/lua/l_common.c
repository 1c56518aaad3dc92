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

void lu_lua_push_shape(lua_State *L, int ndim, const int64_t *shape) {
  lua_createtable(L, ndim, 0);
  for (int i = 0; i < ndim; i++) {
    lua_pushinteger(L, shape[i]);
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

void lu_lua_setfuncs(lua_State *L, const luaL_Reg *fns) { luaL_setfuncs(L, fns, 0); }
