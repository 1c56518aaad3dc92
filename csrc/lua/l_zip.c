/* lunet.core.zip: zip.open(path) -> archive with :names() :read(name) :extract(name, dest) :size(name)
 * :close(); zip.write(path, {{name=, file=}|{name=, data=}, ...}, {deflate=bool}) (atomic). */
#include <stdlib.h>
#include <string.h>

#include "fmt/zip.h"
#include "lua/l_common.h"

#define ZIP_MT "lunet.zip"

typedef struct { lu_zip *z; } zbox;

static lu_zip *check_zip(lua_State *L) {
  zbox *b = luaL_checkudata(L, 1, ZIP_MT);
  if (!b->z) luaL_error(L, "zip: the archive is closed");
  return b->z;
}

static int entry(lua_State *L, lu_zip *z) {
  const char *name = luaL_checkstring(L, 2);
  int i = lu_zip_find(z, name);
  if (i < 0) luaL_error(L, "%s: no entry %s in the archive", z->path, name);
  return i;
}

static int l_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  zbox *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->z = NULL;
  luaL_setmetatable(L, ZIP_MT);
  LU_LCHECK(L, lu_zip_open(path, &b->z), "zip.open");
  return 1;
}

static int m_names(lua_State *L) {
  lu_zip *z = check_zip(L);
  lua_createtable(L, z->n, 0);
  for (int i = 0; i < z->n; i++) {
    lua_pushstring(L, z->e[i].name);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int m_read(lua_State *L) {
  lu_zip *z = check_zip(L);
  int i = entry(L, z);
  void *data;
  size_t n;
  LU_LCHECK(L, lu_zip_read(z, i, 0, &data, &n), "zip.read");
  lua_pushlstring(L, data, n);
  free(data);
  return 1;
}

static int m_extract(lua_State *L) {
  lu_zip *z = check_zip(L);
  int i = entry(L, z);
  LU_LCHECK(L, lu_zip_extract(z, i, luaL_checkstring(L, 3)), "zip.extract");
  return 0;
}

static int m_size(lua_State *L) {
  lu_zip *z = check_zip(L);
  lua_pushinteger(L, (lua_Integer)z->e[entry(L, z)].usize);
  return 1;
}

static int m_close(lua_State *L) {
  zbox *b = luaL_checkudata(L, 1, ZIP_MT);
  lu_zip_close(b->z);
  b->z = NULL;
  return 0;
}

/* write(path, entries, {deflate=}) */
static int l_write(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int level = lu_lua_field_bool(L, 3, "deflate", 0) ? 6 : 0;
  lua_Integer n = luaL_len(L, 2);
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_geti(L, 2, i) != LUA_TTABLE) luaL_error(L, "zip.write: %s: entry %d is not a table", path, (int)i);
    lua_getfield(L, -1, "name");
    lua_getfield(L, -2, "file");
    lua_getfield(L, -3, "data");
    if (!lua_isstring(L, -3) || (lua_isnil(L, -2) == lua_isnil(L, -1)))
      luaL_error(L, "zip.write: %s: entry %d needs a name and one of file= or data=", path, (int)i);
    lua_pop(L, 4);
  }
  lu_zip_writer *w;
  LU_LCHECK(L, lu_zip_writer_open(path, &w), "zip.write");
  lu_status st = LU_OK;
  for (lua_Integer i = 1; i <= n && st == LU_OK; i++) {
    lua_geti(L, 2, i);
    lua_getfield(L, -1, "name");
    lua_getfield(L, -2, "file");
    lua_getfield(L, -3, "data");
    const char *name = lua_tostring(L, -3);
    if (!lua_isnil(L, -2)) st = lu_zip_writer_add_file(w, name, lua_tostring(L, -2), level, level ? 0 : 64);
    else {
      size_t len;
      const char *d = lua_tolstring(L, -1, &len);
      if (!d) st = lu_fail(LU_EARG, "%s: entry %s: data is not a string", path, name);
      else st = lu_zip_writer_add(w, name, d, len, level, level ? 0 : 64);
    }
    lua_pop(L, 4);
  }
  if (st != LU_OK) {
    lu_zip_writer_abort(w);
    lu_lua_raise(L, st, "zip.write");
  }
  LU_LCHECK(L, lu_zip_writer_finish(w), "zip.write");
  return 0;
}

int lu_open_zip(lua_State *L) {
  static const luaL_Reg meth[] = {
    {"names", m_names}, {"read", m_read}, {"extract", m_extract}, {"size", m_size}, {"close", m_close}, {NULL, NULL},
  };
  if (luaL_newmetatable(L, ZIP_MT)) {
    lua_newtable(L);
    luaL_setfuncs(L, meth, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, m_close);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"open", l_open}, {"write", l_write}, {NULL, NULL}};
  lua_newtable(L);
  lu_lua_setfuncs(L, fns);
  return 1;
}
