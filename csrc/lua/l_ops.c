/* lunet.core.ops: the first device ops (fill, scale, axpy, add, mul, copy, reductions, gemm). */
#include "lua/l_common.h"
#include "ops/ops.h"

static int l_fill(lua_State *L) {
  LU_LCHECK(L, lu_fill(lu_lua_check_tensor(L, 1), (float)luaL_checknumber(L, 2)), "ops.fill");
  lua_settop(L, 1);
  return 1;
}
static int l_scale(lua_State *L) {
  LU_LCHECK(L, lu_scale(lu_lua_check_tensor(L, 1), (float)luaL_checknumber(L, 2)), "ops.scale");
  lua_settop(L, 1);
  return 1;
}
/* axpy(y, a, x): y += a x */
static int l_axpy(lua_State *L) {
  LU_LCHECK(L, lu_axpy(lu_lua_check_tensor(L, 1), (float)luaL_checknumber(L, 2), lu_lua_check_tensor(L, 3)), "ops.axpy");
  lua_settop(L, 1);
  return 1;
}
static int l_add(lua_State *L) {
  LU_LCHECK(L, lu_add(lu_lua_check_tensor(L, 1), lu_lua_check_tensor(L, 2), lu_lua_check_tensor(L, 3)), "ops.add");
  lua_settop(L, 1);
  return 1;
}
static int l_mul(lua_State *L) {
  LU_LCHECK(L, lu_mul(lu_lua_check_tensor(L, 1), lu_lua_check_tensor(L, 2), lu_lua_check_tensor(L, 3)), "ops.mul");
  lua_settop(L, 1);
  return 1;
}
static int l_copy(lua_State *L) {
  LU_LCHECK(L, lu_copy(lu_lua_check_tensor(L, 1), lu_lua_check_tensor(L, 2)), "ops.copy");
  lua_settop(L, 1);
  return 1;
}
static int reduce(lua_State *L, lu_reduce_op op, const char *what) {
  lu_tensor *x = lu_lua_check_tensor(L, 1);
  double v;
  LU_LCHECK(L, lu_reduce(x, op, &v), what);
  lua_pushnumber(L, v);
  return 1;
}
static int l_sum(lua_State *L) { return reduce(L, LU_REDUCE_SUM, "ops.sum"); }
static int l_sumsq(lua_State *L) { return reduce(L, LU_REDUCE_SUMSQ, "ops.sumsq"); }
static int l_max(lua_State *L) { return reduce(L, LU_REDUCE_MAX, "ops.max"); }
static int l_mean(lua_State *L) {
  lu_tensor *x = lu_lua_check_tensor(L, 1);
  double v;
  LU_LCHECK(L, lu_reduce(x, LU_REDUCE_SUM, &v), "ops.mean");
  int64_t n = lu_tensor_numel(x);
  lua_pushnumber(L, n ? v / (double)n : 0.0 / 0.0);
  return 1;
}
/* gemm(C, A, B, {trans_a=, trans_b=, alpha=, beta=}) */
static int l_gemm(lua_State *L) {
  lu_tensor *c = lu_lua_check_tensor(L, 1), *a = lu_lua_check_tensor(L, 2), *b = lu_lua_check_tensor(L, 3);
  int ta = 0, tb = 0;
  float alpha = 1.0f, beta = 0.0f;
  if (lua_istable(L, 4)) {
    lua_getfield(L, 4, "trans_a"); ta = lua_toboolean(L, -1); lua_pop(L, 1);
    lua_getfield(L, 4, "trans_b"); tb = lua_toboolean(L, -1); lua_pop(L, 1);
    lua_getfield(L, 4, "alpha"); if (!lua_isnil(L, -1)) alpha = (float)luaL_checknumber(L, -1); lua_pop(L, 1);
    lua_getfield(L, 4, "beta"); if (!lua_isnil(L, -1)) beta = (float)luaL_checknumber(L, -1); lua_pop(L, 1);
  }
  LU_LCHECK(L, lu_gemm(c, a, b, ta, tb, alpha, beta), "ops.gemm");
  lua_settop(L, 1);
  return 1;
}

int lu_open_ops(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"fill", l_fill}, {"scale", l_scale}, {"axpy", l_axpy}, {"add", l_add}, {"mul", l_mul}, {"copy", l_copy},
    {"sum", l_sum}, {"sumsq", l_sumsq}, {"max", l_max}, {"mean", l_mean}, {"gemm", l_gemm}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
