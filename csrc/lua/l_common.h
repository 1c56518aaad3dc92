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
/* Pushes a Lua array of integers (lu_lua_push_ints). */
void lu_lua_push_shape(lua_State *L, int ndim, const int64_t *shape);

/* Fields of an options table, in the manner of lauxlib's luaL_opt*: dflt when the table at idx is
 * absent (none or nil) or t[key] is nil, else the value, or a Lua error naming the key when it has
 * another type. lu_lua_field_int takes integral floats (2.0), as luaL_checkinteger does. */
lua_Integer lu_lua_field_int(lua_State *L, int idx, const char *key, lua_Integer dflt);
lua_Number lu_lua_field_number(lua_State *L, int idx, const char *key, lua_Number dflt);
/* Booleans as they are and numbers as != 0 (configs read from JSON may say 0/1). */
int lu_lua_field_bool(lua_State *L, int idx, const char *key, int dflt);
/* The string stays valid while the table holds it. */
const char *lu_lua_field_string(lua_State *L, int idx, const char *key, const char *dflt);
/* A required number field of the table at idx ("missing field" error when nil). */
lua_Number lu_lua_check_field_number(lua_State *L, int idx, const char *key);

/* The array at idx as min..max integers (numbers) into out; returns the count. Errors start with `what`. */
int lu_lua_check_ints(lua_State *L, int idx, int64_t *out, int min, int max, const char *what);
int lu_lua_check_numbers(lua_State *L, int idx, double *out, int min, int max, const char *what);
/* Pushes a Lua array of n integers (numbers). */
void lu_lua_push_ints(lua_State *L, const int64_t *v, int n);
void lu_lua_push_numbers(lua_State *L, const double *v, int n);
/* Pushes a bounding box {{lo, hi}, {lo, hi}, {lo, hi}}. */
void lu_lua_push_bbox(lua_State *L, const int64_t b[3][2]);
/* Device from an optional argument (device index or nil for the default). */
lu_device *lu_lua_opt_device(lua_State *L, int idx);

/* Registers functions into the table on top of the stack. */
void lu_lua_setfuncs(lua_State *L, const luaL_Reg *fns);

#endif
