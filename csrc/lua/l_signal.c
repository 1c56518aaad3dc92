/* lunet.core.signal: lets Lua notice SIGINT/SIGTERM between training steps.
 *   signal.install()  -> true      handlers for SIGINT and SIGTERM that only record the signal;
 *                                  SA_RESETHAND: a second signal of the same kind terminates at once
 *   signal.pending()  -> signo|nil the first signal received since install/clear, if any
 *   signal.clear()                 forget it (handlers stay reset to the default until install())
 *   signal.raise(signo)            send a signal to this process (specs)
 * The flag is the one piece of process state: a signal handler can only reach a static object. */
#include <signal.h>

#include "lua/l_common.h"

static volatile sig_atomic_t lu_signal_got = 0;

static void on_signal(int signo) {
  if (!lu_signal_got) lu_signal_got = signo;
}

static int l_install(lua_State *L) {
  struct sigaction sa;
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND | SA_RESTART;
  if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
    return luaL_error(L, "signal.install: sigaction failed");
  lua_pushboolean(L, 1);
  return 1;
}

static int l_pending(lua_State *L) {
  int s = lu_signal_got;
  if (s) lua_pushinteger(L, s);
  else lua_pushnil(L);
  return 1;
}

static int l_clear(lua_State *L) {
  (void)L;
  lu_signal_got = 0;
  return 0;
}

static int l_raise(lua_State *L) {
  int s = (int)luaL_checkinteger(L, 1);
  if (raise(s) != 0) return luaL_error(L, "signal.raise: cannot raise signal %d", s);
  return 0;
}

int lu_open_signal(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"install", l_install}, {"pending", l_pending}, {"clear", l_clear}, {"raise", l_raise}, {NULL, NULL}};
  luaL_newlib(L, fns);
  lua_pushinteger(L, SIGINT);
  lua_setfield(L, -2, "SIGINT");
  lua_pushinteger(L, SIGTERM);
  lua_setfield(L, -2, "SIGTERM");
  return 1;
}
