/* lunet.core.npz: read/write .npz (numpy zip archives) and .npy files. */
#include <stdlib.h>
#include <string.h>

#include "img/npz.h"
#include "lua/l_common.h"

/* read(path) -> { name = Tensor, ... } */
static int l_read(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int n = 0;
  char **names = NULL;
  lu_tensor **ts = NULL;
  LU_LCHECK(L, lu_npz_read(path, &n, &names, &ts), "npz.read");
  lua_createtable(L, 0, n);
  for (int i = 0; i < n; i++) {
    lu_lua_push_tensor(L, ts[i]); /* takes ownership */
    ts[i] = NULL;
    lua_setfield(L, -2, names[i]);
  }
  lu_npz_free_list(n, names, ts);
  return 1;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* write(path, { name = Tensor, ... }, {level = 1}) ; level 0 = stored, 1..9 = deflate */
static int l_write(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int level = 1;
  if (lua_istable(L, 3)) {
    lua_getfield(L, 3, "level");
    if (!lua_isnil(L, -1)) level = (int)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
  }
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) { n++; lua_pop(L, 1); }
  const char **names = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n ? n : 1), 0);
  const lu_tensor **ts = lua_newuserdatauv(L, sizeof(lu_tensor *) * (size_t)(n ? n : 1), 0);
  int k = 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    if (lua_type(L, -2) != LUA_TSTRING) return luaL_error(L, "npz.write: array names must be strings");
    names[k++] = lua_tostring(L, -2);
    lua_pop(L, 1);
  }
  qsort(names, (size_t)n, sizeof(char *), cmp_str);
  for (int i = 0; i < n; i++) {
    lua_getfield(L, 2, names[i]);
    ts[i] = lu_lua_check_tensor(L, -1);
    lua_pop(L, 1); /* still referenced by the argument table */
  }
  LU_LCHECK(L, lu_npz_write(path, n, names, ts, level), "npz.write");
  return 0;
}

static int l_read_npy(lua_State *L) {
  lu_tensor *t = NULL;
  LU_LCHECK(L, lu_npy_read(luaL_checkstring(L, 1), &t), "npz.read_npy");
  lu_lua_push_tensor(L, t);
  return 1;
}

static int l_write_npy(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  LU_LCHECK(L, lu_npy_write(path, lu_lua_check_tensor(L, 2)), "npz.write_npy");
  return 0;
}

int lu_open_npz(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"read", l_read},
    {"write", l_write},
    {"read_npy", l_read_npy},
    {"write_npy", l_write_npy},
    {NULL, NULL},
  };
  lua_newtable(L);
  lu_lua_setfuncs(L, fns);
  return 1;
}
