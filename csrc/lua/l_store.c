/* require("lunet.core").store: the chunked zstd case store (csrc/data/store.h).
 *   write(path, data_f32, seg_i8_or_i16_or_nil, chunk{z,y,x}, level, threads)
 *   open(path) -> Store;  valid(path) -> bool
 *   Store:read_patch(lo{z,y,x}, hi{z,y,x}) -> data (C, ...) f32 padded 0, seg (S, ...) padded -1 (or nil)
 *   Store:info() -> {shape={z,y,x}, channels=C, seg_channels=S, chunk={...}, seg_dtype="i8"}
 *   Store:close() */
#include <string.h>

#include "data/store.h"
#include "lua/l_common.h"

#define STORE_MT "lunet.Store"

static lu_store **check_store(lua_State *L, int idx) {
  lu_store **s = luaL_checkudata(L, idx, STORE_MT);
  if (!*s) luaL_argerror(L, idx, "store is closed");
  return s;
}

static int l_write(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lu_tensor *d = lu_lua_check_tensor(L, 2);
  lu_tensor *s = lua_isnoneornil(L, 3) ? NULL : lu_lua_check_tensor(L, 3);
  int64_t chunk[3] = {64, 64, 64};
  if (!lua_isnoneornil(L, 4)) lu_lua_check_ints(L, 4, chunk, 3, 3, "chunk");
  int level = (int)luaL_optinteger(L, 5, 1);
  int threads = (int)luaL_optinteger(L, 6, 1);
  LU_LCHECK(L, lu_store_write(path, d, s, chunk, level, threads), "store.write");
  return 0;
}

static int l_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lu_store **ud = lua_newuserdatauv(L, sizeof(lu_store *), 0);
  *ud = NULL;
  luaL_setmetatable(L, STORE_MT);
  LU_LCHECK(L, lu_store_open(path, ud), "store.open");
  return 1;
}

static int l_valid(lua_State *L) {
  lua_pushboolean(L, lu_store_valid(luaL_checkstring(L, 1)));
  return 1;
}

static int l_read_patch(lua_State *L) {
  lu_store **s = check_store(L, 1);
  int64_t lo[3], hi[3];
  lu_lua_check_ints(L, 2, lo, 3, 3, "box start");
  lu_lua_check_ints(L, 3, hi, 3, 3, "box end");
  int64_t cs;
  lu_store_info(*s, NULL, NULL, &cs, NULL, NULL);
  lu_tensor *d = NULL, *g = NULL;
  LU_LCHECK(L, lu_store_read_patch(*s, lo, hi, &d, cs ? &g : NULL), "store.read_patch");
  lu_lua_push_tensor(L, d);
  if (g) lu_lua_push_tensor(L, g);
  else lua_pushnil(L);
  return 2;
}

static int l_info(lua_State *L) {
  lu_store **s = check_store(L, 1);
  int64_t shape[3], chunk[3], cd, cs;
  lu_dtype sd;
  lu_store_info(*s, shape, &cd, &cs, chunk, &sd);
  lua_createtable(L, 0, 5);
  lu_lua_push_shape(L, 3, shape);
  lua_setfield(L, -2, "shape");
  lu_lua_push_shape(L, 3, chunk);
  lua_setfield(L, -2, "chunk");
  lua_pushinteger(L, cd);
  lua_setfield(L, -2, "channels");
  lua_pushinteger(L, cs);
  lua_setfield(L, -2, "seg_channels");
  lua_pushstring(L, lu_dtype_name(sd));
  lua_setfield(L, -2, "seg_dtype");
  return 1;
}

static int l_close(lua_State *L) {
  lu_store **s = luaL_checkudata(L, 1, STORE_MT);
  lu_store_close(*s);
  *s = NULL;
  return 0;
}

int lu_open_store(lua_State *L) {
  if (luaL_newmetatable(L, STORE_MT)) {
    static const luaL_Reg m[] = {{"read_patch", l_read_patch}, {"info", l_info}, {"close", l_close}, {NULL, NULL}};
    lua_newtable(L);
    lu_lua_setfuncs(L, m);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"write", l_write}, {"open", l_open}, {"valid", l_valid}, {NULL, NULL}};
  lua_newtable(L);
  lu_lua_setfuncs(L, fns);
  return 1;
}
