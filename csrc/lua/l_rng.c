/* lunet.core.rng: Philox4x32-10 generators (userdata "lunet.Rng") and numpy-compatible MT19937.
 *   rng.new(seed [, stream])            -> Rng
 *   Rng:u32() Rng:float() Rng:double() Rng:normal() Rng:int(lo, hi) Rng:uniform(lo, hi)
 *   Rng:child(index) -> Rng             independent stream (one per batch sample)
 *   Rng:state() -> {7 ints}; Rng:set_state(t); Rng:clone()
 *   rng.philox(ctr{4}, key{2} [, rounds]) -> {4 ints}
 *   rng.mt19937(seed) -> Mt: Mt:next32() Mt:double() Mt:interval(max) Mt:permutation(n) (0-based)
 *   rng.mt_permutation(seed, n) -> 0-based permutation as numpy RandomState(seed).permutation(n) */
#include "lua/l_rng.h"

#include <lauxlib.h>
#include <stdlib.h>

#include "core/mt19937.h"
#include "lua/l_common.h"

#define LU_MT_MT "lunet.Mt19937"

lu_rng *lu_lua_check_rng(lua_State *L, int idx) { return (lu_rng *)luaL_checkudata(L, idx, LU_RNG_MT); }

void lu_lua_push_rng(lua_State *L, const lu_rng *r) {
  lu_rng *u = (lu_rng *)lua_newuserdatauv(L, sizeof *u, 0);
  *u = *r;
  luaL_setmetatable(L, LU_RNG_MT);
}

static uint32_t check_u32(lua_State *L, int idx) {
  lua_Integer v = luaL_checkinteger(L, idx);
  luaL_argcheck(L, v >= 0 && v <= 0xffffffffLL, idx, "expected an integer in [0, 2^32)");
  return (uint32_t)v;
}

static void read_words(lua_State *L, int idx, uint32_t *w, int n, const char *what) {
  luaL_checktype(L, idx, LUA_TTABLE);
  if ((int)luaL_len(L, idx) != n) luaL_error(L, "%s: expected %d integers, got %d", what, n, (int)luaL_len(L, idx));
  for (int i = 0; i < n; i++) {
    lua_geti(L, idx, i + 1);
    int ok;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    if (!ok || v < 0 || v > 0xffffffffLL) luaL_error(L, "%s: entry %d is not an integer in [0, 2^32)", what, i + 1);
    w[i] = (uint32_t)v;
    lua_pop(L, 1);
  }
}

static void push_words(lua_State *L, const uint32_t *w, int n) {
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushinteger(L, (lua_Integer)w[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

static int l_new(lua_State *L) {
  lu_rng r;
  lu_rng_init(&r, (uint64_t)luaL_checkinteger(L, 1), (uint64_t)luaL_optinteger(L, 2, 0));
  lu_lua_push_rng(L, &r);
  return 1;
}

static int l_u32(lua_State *L) { lua_pushinteger(L, lu_rng_u32(lu_lua_check_rng(L, 1))); return 1; }
static int l_float(lua_State *L) { lua_pushnumber(L, lu_rng_float(lu_lua_check_rng(L, 1))); return 1; }
static int l_double(lua_State *L) { lua_pushnumber(L, lu_rng_double(lu_lua_check_rng(L, 1))); return 1; }
static int l_normal(lua_State *L) { lua_pushnumber(L, lu_rng_normal(lu_lua_check_rng(L, 1))); return 1; }
static int l_uniform(lua_State *L) {
  lu_rng *r = lu_lua_check_rng(L, 1);
  lua_pushnumber(L, lu_rng_uniform(r, luaL_checknumber(L, 2), luaL_checknumber(L, 3)));
  return 1;
}
static int l_int(lua_State *L) {
  lu_rng *r = lu_lua_check_rng(L, 1);
  lua_Integer lo = luaL_checkinteger(L, 2), hi = luaL_checkinteger(L, 3);
  luaL_argcheck(L, lo <= hi, 3, "hi must be >= lo");
  lua_pushinteger(L, lu_rng_int(r, lo, hi));
  return 1;
}
static int l_child(lua_State *L) {
  lu_rng c;
  lu_rng_child(lu_lua_check_rng(L, 1), (uint64_t)luaL_checkinteger(L, 2), &c);
  lu_lua_push_rng(L, &c);
  return 1;
}
static int l_clone(lua_State *L) { lu_lua_push_rng(L, lu_lua_check_rng(L, 1)); return 1; }
static int l_state(lua_State *L) {
  uint32_t s[LU_RNG_STATE_WORDS];
  lu_rng_save(lu_lua_check_rng(L, 1), s);
  push_words(L, s, LU_RNG_STATE_WORDS);
  return 1;
}
static int l_set_state(lua_State *L) {
  lu_rng *r = lu_lua_check_rng(L, 1);
  uint32_t s[LU_RNG_STATE_WORDS];
  read_words(L, 2, s, LU_RNG_STATE_WORDS, "rng state");
  LU_LCHECK(L, lu_rng_restore(r, s), "rng:set_state");
  lua_settop(L, 1);
  return 1;
}
static int l_tostring(lua_State *L) {
  lu_rng *r = lu_lua_check_rng(L, 1);
  lua_pushfstring(L, "lunet.Rng(key=%08x%08x, block=%d)", (int)r->key[1], (int)r->key[0], (int)r->ctr[0]);
  return 1;
}

static int l_philox(lua_State *L) {
  uint32_t ctr[4], key[2], out[4];
  read_words(L, 1, ctr, 4, "philox counter");
  read_words(L, 2, key, 2, "philox key");
  lua_Integer rounds = luaL_optinteger(L, 3, 10);
  luaL_argcheck(L, rounds >= 1 && rounds <= 16, 3, "rounds must be 1..16");
  lu_philox4x32(ctr, key, (int)rounds, out);
  push_words(L, out, 4);
  return 1;
}

static lu_mt19937 *check_mt(lua_State *L, int idx) { return (lu_mt19937 *)luaL_checkudata(L, idx, LU_MT_MT); }

static int l_mt_new(lua_State *L) {
  uint32_t seed = check_u32(L, 1);
  lu_mt19937 *m = (lu_mt19937 *)lua_newuserdatauv(L, sizeof *m, 0);
  lu_mt_seed(m, seed);
  luaL_setmetatable(L, LU_MT_MT);
  return 1;
}
static int l_mt_next32(lua_State *L) { lua_pushinteger(L, lu_mt_next32(check_mt(L, 1))); return 1; }
static int l_mt_double(lua_State *L) { lua_pushnumber(L, lu_mt_double(check_mt(L, 1))); return 1; }
static int l_mt_interval(lua_State *L) {
  lu_mt19937 *m = check_mt(L, 1);
  lua_Integer mx = luaL_checkinteger(L, 2);
  luaL_argcheck(L, mx >= 0, 2, "max must be >= 0");
  lua_pushinteger(L, (lua_Integer)lu_mt_interval(m, (uint64_t)mx));
  return 1;
}

static int push_permutation(lua_State *L, lu_mt19937 *m, lua_Integer n) {
  luaL_argcheck(L, n >= 0 && n <= (1 << 28), 2, "n must be in [0, 2^28]");
  int64_t *a = (int64_t *)malloc(sizeof *a * (size_t)(n > 0 ? n : 1));
  if (!a) return luaL_error(L, "mt19937 permutation: out of memory for %d entries", (int)n);
  lu_mt_permutation(m, a, n);
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 0; i < n; i++) {
    lua_pushinteger(L, a[i]);
    lua_rawseti(L, -2, i + 1);
  }
  free(a);
  return 1;
}
static int l_mt_permutation(lua_State *L) { return push_permutation(L, check_mt(L, 1), luaL_checkinteger(L, 2)); }
static int l_mt_perm_seed(lua_State *L) {
  lu_mt19937 m;
  lu_mt_seed(&m, check_u32(L, 1));
  return push_permutation(L, &m, luaL_checkinteger(L, 2));
}

int lu_open_rng(lua_State *L) {
  static const luaL_Reg rng_methods[] = {
    {"u32", l_u32}, {"float", l_float}, {"double", l_double}, {"normal", l_normal}, {"uniform", l_uniform},
    {"int", l_int}, {"child", l_child}, {"clone", l_clone}, {"state", l_state}, {"set_state", l_set_state},
    {NULL, NULL}};
  static const luaL_Reg mt_methods[] = {
    {"next32", l_mt_next32}, {"double", l_mt_double}, {"interval", l_mt_interval},
    {"permutation", l_mt_permutation}, {NULL, NULL}};
  if (luaL_newmetatable(L, LU_RNG_MT)) {
    lua_newtable(L);
    luaL_setfuncs(L, rng_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, LU_MT_MT)) {
    lua_newtable(L);
    luaL_setfuncs(L, mt_methods, 0);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {
    {"new", l_new}, {"philox", l_philox}, {"mt19937", l_mt_new}, {"mt_permutation", l_mt_perm_seed},
    {NULL, NULL}};
  lua_newtable(L);
  luaL_setfuncs(L, fns, 0);
  return 1;
}
