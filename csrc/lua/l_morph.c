/* lunet.core.morph: the cascade's binary morphology hot loops (csrc/data/morphology.h).
 *   op(flat {0/1 numbers}, {Z, Y, X}, op 1..4, runs {{dz, dy, a, b}, ...}) -> flat {0/1}
 *   clear_label(flat m, labels {ints}, pick) -> m with m[i] = 0 where labels[i] == pick (in place) */
#include <lauxlib.h>
#include <stdlib.h>

#include "data/morphology.h"
#include "lua/l_common.h"

static int l_op(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  int op = (int)luaL_checkinteger(L, 3);
  luaL_checktype(L, 4, LUA_TTABLE);
  int sp[3];
  for (int d = 0; d < 3; d++) { lua_geti(L, 2, d + 1); sp[d] = (int)luaL_checkinteger(L, -1); lua_pop(L, 1); }
  if (sp[0] <= 0 || sp[1] <= 0 || sp[2] <= 0) return luaL_error(L, "morph.op: bad shape");
  size_t n = (size_t)sp[0] * sp[1] * sp[2];
  if ((size_t)luaL_len(L, 1) != n) return luaL_error(L, "morph.op: mask has %d values, shape wants %d",
                                                    (int)luaL_len(L, 1), (int)n);
  int nruns = (int)luaL_len(L, 4);
  int *runs = malloc(((size_t)nruns * 4 + 1) * sizeof *runs);
  uint8_t *m = malloc(n), *o = malloc(n);
  if (!runs || !m || !o) { free(runs); free(m); free(o); return luaL_error(L, "morph.op: out of memory"); }
  for (int k = 0; k < nruns; k++) {
    lua_geti(L, 4, k + 1);
    for (int j = 0; j < 4; j++) { lua_geti(L, -1, j + 1); runs[4 * k + j] = (int)lua_tointeger(L, -1); lua_pop(L, 1); }
    lua_pop(L, 1);
  }
  for (size_t i = 0; i < n; i++) { lua_geti(L, 1, (lua_Integer)i + 1); m[i] = lua_tonumber(L, -1) != 0; lua_pop(L, 1); }
  lu_status st = lu_morph_binary_op(m, o, sp[0], sp[1], sp[2], op, runs, nruns);
  free(runs); free(m);
  if (st != LU_OK) { free(o); return lu_lua_raise(L, st, "morph.op"); }
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) { lua_pushinteger(L, o[i]); lua_rawseti(L, -2, (lua_Integer)i + 1); }
  free(o);
  return 1;
}

static int l_clear_label(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer pick = luaL_checkinteger(L, 3);
  lua_Integer n = luaL_len(L, 2);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, 2, i);
    int hit = lua_tointeger(L, -1) == pick;
    lua_pop(L, 1);
    if (hit) { lua_pushinteger(L, 0); lua_seti(L, 1, i); }
  }
  return 0;
}

int lu_open_morph(lua_State *L) {
  static const luaL_Reg fns[] = {{"op", l_op}, {"clear_label", l_clear_label}, {NULL, NULL}};
  lua_newtable(L);
  luaL_setfuncs(L, fns, 0);
  return 1;
}
