/* require("lunet.core").fileid: file identity for provenance records (core/fileid.h).
 *   fileid.hash(string) -> "xxh64:<16 hex digits>"         XXH64 of the bytes
 *   fileid.hash_file(path) -> "xxh64:<16 hex digits>"      XXH64 of the file's bytes
 *   fileid.stat(path) -> size, mtime_ns                    or nil, message when it cannot be read
 *   fileid.copy_mtime(src, dst)                            dst's times set to src's
 * Hashes are strings (a 64-bit value does not fit JSON's doubles). */
#include <inttypes.h>
#include <stdio.h>

#include "core/fileid.h"
#include "lua/l_common.h"

static void push_hash(lua_State *L, uint64_t h) {
  char s[32];
  snprintf(s, sizeof s, "xxh64:%016" PRIx64, h);
  lua_pushstring(L, s);
}

static int l_hash(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  push_hash(L, lu_xxh64(s, n));
  return 1;
}

static int l_hash_file(lua_State *L) {
  uint64_t h = 0;
  LU_LCHECK(L, lu_xxh64_file(luaL_checkstring(L, 1), &h), "fileid.hash_file");
  push_hash(L, h);
  return 1;
}

static int l_stat(lua_State *L) {
  int64_t size = 0, mt = 0;
  if (lu_file_stat(luaL_checkstring(L, 1), &size, &mt) != LU_OK) {
    lua_pushnil(L);
    lua_pushstring(L, lu_errmsg());
    lu_clear_error();
    return 2;
  }
  lua_pushinteger(L, size);
  lua_pushinteger(L, mt);
  return 2;
}

static int l_copy_mtime(lua_State *L) {
  LU_LCHECK(L, lu_file_copy_mtime(luaL_checkstring(L, 1), luaL_checkstring(L, 2)), "fileid.copy_mtime");
  return 0;
}

int lu_open_fileid(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"hash", l_hash}, {"hash_file", l_hash_file}, {"stat", l_stat}, {"copy_mtime", l_copy_mtime}, {NULL, NULL}};
  lua_newtable(L);
  lu_lua_setfuncs(L, fns);
  return 1;
}
