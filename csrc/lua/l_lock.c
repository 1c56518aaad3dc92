/* lunet.core.lock: advisory folder locks (core/lock.h).
 *   lock.acquire(dir, what [, file]) -> handle   fails at once, with a message naming the holder's pid, when
 *                                        the folder is locked; `what` names the folder ("fold folder"); `file`
 *                                        another lock file name than .lunet.lock (a share of the folder)
 *   handle:release()                     idempotent; also __close (local h <close> = ...) and __gc
 *   handle:path()                        the lock file, nil once released */
#include <string.h>

#include "core/lock.h"
#include "lua/l_common.h"

#define LOCK_MT "lunet.Lock"

typedef struct { lu_lock *lk; } lock_box;

static int l_acquire(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  const char *what = luaL_optstring(L, 2, "folder");
  const char *file = luaL_optstring(L, 3, LU_LOCK_FILE);
  if (!*file || strchr(file, '/')) return luaL_error(L, "lock.acquire: lock file name '%s' is not a plain name", file);
  lock_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->lk = NULL;
  luaL_setmetatable(L, LOCK_MT);
  if (lu_lock_acquire_named(dir, file, what, &b->lk) != LU_OK) {
    /* the message is the user's answer as it is: no binding prefix */
    lua_pushstring(L, lu_errmsg());
    return lua_error(L);
  }
  return 1;
}

static int m_release(lua_State *L) {
  lock_box *b = luaL_checkudata(L, 1, LOCK_MT);
  lu_lock_release(b->lk);
  b->lk = NULL;
  return 0;
}

static int m_path(lua_State *L) {
  lock_box *b = luaL_checkudata(L, 1, LOCK_MT);
  if (b->lk) lua_pushstring(L, lu_lock_path(b->lk));
  else lua_pushnil(L);
  return 1;
}

int lu_open_lock(lua_State *L) {
  static const luaL_Reg methods[] = {{"release", m_release}, {"path", m_path}, {NULL, NULL}};
  if (luaL_newmetatable(L, LOCK_MT)) {
    lua_newtable(L);
    lu_lua_setfuncs(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, m_release);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, m_release);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"acquire", l_acquire}, {NULL, NULL}};
  lua_newtable(L);
  lu_lua_setfuncs(L, fns);
  return 1;
}
