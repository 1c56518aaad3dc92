/* Shared helpers for the Lua bindings. Each csrc/lua/l_NAME.c defines `int lu_open_NAME(lua_State *L)`
 * that pushes a table of functions; it appears as require("lunet.core").NAME. Bindings are thin:
 * check arguments, call the core, push results, raise Lua errors with the core's message. */
#ifndef LU_L_COMMON_H
#define LU_L_COMMON_H

#include <lauxlib.h>
#include <lua.h>

#include "tensor.h"

#define LU_TENSOR_MT "lunet.Tensor"

/* Raises a Lua error "<what>: <status name>: <message>" (never returns). */
int lu_lua_raise(lua_State *L, lu_status st, const char *what);
#define LU_LCHECK(L, expr, what) do { lu_status st_ = (expr); if (st_ != LU_OK) lu_lua_raise((L), st_, (what)); } while (0)

/* Pushes a tensor userdata that owns t (freed by __gc). */
void lu_lua_push_tensor(lua_State *L, lu_tensor *t);
/* The tensor at idx, or raises an argument error (also if already freed). */
lu_tensor *lu_lua_check_tensor(lua_State *L, int idx);
lu_tensor *lu_lua_test_tensor(lua_State *L, int idx); /* NULL when not a tensor */
/* Reads a shape from a Lua array of integers at idx. */
int lu_lua_check_shape(lua_State *L, int idx, int64_t *shape);
/* Pushes a Lua array of integers. */
void lu_lua_push_shape(lua_State *L, int ndim, const int64_t *shape);
/* Device from an optional argument (device index or nil for the default). */
lu_device *lu_lua_opt_device(lua_State *L, int idx);

/* Registers functions into the table on top of the stack. */
void lu_lua_setfuncs(lua_State *L, const luaL_Reg *fns);

#endif
