/* lunet.core.proc: child processes for work that overlaps the main loop (prediction exports the
 * previous case in a child while the parent predicts the next one, as nnU-Net's export workers do).
 *   proc.fork()      -> pid (parent) | 0 (child)   the caller must have finished its device work:
 *                       the child may only run host code (OpenCL state is not valid in a child)
 *   proc.wait(pid)   -> true | false, code        waits for that child; false when it failed
 *   proc.exit(code)                                _exit: no Lua finalizers, no stdio flush (the
 *                                                  parent's buffers belong to the parent) */
#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lua/l_common.h"

static int l_fork(lua_State *L) {
  fflush(NULL); /* nothing buffered before the fork is written twice */
  pid_t pid = fork();
  if (pid < 0) return luaL_error(L, "proc.fork: %s", strerror(errno));
  lua_pushinteger(L, (lua_Integer)pid);
  return 1;
}

static int l_wait(lua_State *L) {
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  int status = 0;
  pid_t r;
  do r = waitpid(pid, &status, 0);
  while (r < 0 && errno == EINTR);
  if (r < 0) return luaL_error(L, "proc.wait(%d): %s", (int)pid, strerror(errno));
  if (WIFEXITED(status)) {
    lua_pushboolean(L, WEXITSTATUS(status) == 0);
    lua_pushinteger(L, WEXITSTATUS(status));
  } else {
    lua_pushboolean(L, 0);
    lua_pushinteger(L, WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1);
  }
  return 2;
}

static int l_exit(lua_State *L) {
  int code = (int)luaL_optinteger(L, 1, 0);
  fflush(stderr);
  _exit(code);
  return 0;
}

int lu_open_proc(lua_State *L) {
  static const luaL_Reg fns[] = {{"fork", l_fork}, {"wait", l_wait}, {"exit", l_exit}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
