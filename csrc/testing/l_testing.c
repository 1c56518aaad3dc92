/* lunet.testing: test-only references, loaded by specs and never by Lunet itself.
 *
 *   conv_ref(pass, geom, x, w, dy) -> bytes
 *     pass: "fwd" | "bwd_data" | "bwd_weight"; geom: {n=, cin=, cout=, transposed=, input={z, y, x},
 *     k={...}, stride={...}, pad={...}} over three spatial axes (2-D: z = 1, k = stride = 1, pad = 0);
 *     x, w, dy: float64 arrays as byte strings (nil where the pass does not read one). Returns the
 *     pass's float64 result (y, dx or dw, without bias) as a byte string.
 *   conv_out(geom) -> {z, y, x}: the output extents the reference uses. */
#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>

#include "testing/ref_conv.h"

static int field_int(lua_State *L, int idx, const char *key) {
  lua_getfield(L, idx, key);
  int isnum;
  lua_Integer v = lua_tointegerx(L, -1, &isnum);
  if (!isnum) luaL_error(L, "conv_ref: geom.%s must be an integer", key);
  lua_pop(L, 1);
  return (int)v;
}

static void field_axes(lua_State *L, int idx, const char *key, int64_t *out) {
  lua_getfield(L, idx, key);
  if (!lua_istable(L, -1) || lua_rawlen(L, -1) != 3) luaL_error(L, "conv_ref: geom.%s must hold 3 integers", key);
  for (int i = 0; i < 3; i++) {
    lua_rawgeti(L, -1, i + 1);
    out[i] = (int64_t)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static lu_ref_geom check_geom(lua_State *L, int idx) {
  luaL_checktype(L, idx, LUA_TTABLE);
  lu_ref_geom g;
  memset(&g, 0, sizeof g);
  g.N = field_int(L, idx, "n");
  g.Cin = field_int(L, idx, "cin");
  g.Cout = field_int(L, idx, "cout");
  lua_getfield(L, idx, "transposed");
  g.tr = lua_toboolean(L, -1);
  lua_pop(L, 1);
  int64_t k[3], s[3], p[3];
  field_axes(L, idx, "input", g.in);
  field_axes(L, idx, "k", k);
  field_axes(L, idx, "stride", s);
  field_axes(L, idx, "pad", p);
  for (int i = 0; i < 3; i++) {
    g.k[i] = (int)k[i];
    g.s[i] = (int)s[i];
    g.p[i] = (int)p[i];
    if (g.k[i] < 1 || g.s[i] < 1 || g.p[i] < 0) luaL_error(L, "conv_ref: axis %d has k %d, stride %d, pad %d", i, g.k[i], g.s[i], g.p[i]);
  }
  if (!lu_ref_out_extent(&g)) luaL_error(L, "conv_ref: an input axis is smaller than its kernel");
  return g;
}

/* The float64 array at idx, which must hold n values (NULL where nil and not needed). */
static double *check_array(lua_State *L, int idx, int64_t n, int needed, const char *name) {
  if (!needed) return NULL;
  size_t len;
  const char *s = luaL_checklstring(L, idx, &len);
  if (len != (size_t)n * sizeof(double))
    luaL_error(L, "conv_ref: %s holds %d bytes, the geometry needs %d float64 values", name, (int)len, (int)n);
  double *a = malloc(len ? len : 1);
  if (!a) luaL_error(L, "conv_ref: out of memory");
  memcpy(a, s, len);
  return a;
}

static int l_conv_ref(lua_State *L) {
  static const char *const passes[] = {"fwd", "bwd_data", "bwd_weight", NULL};
  lu_ref_pass pass = (lu_ref_pass)luaL_checkoption(L, 1, NULL, passes);
  lu_ref_geom g = check_geom(L, 2);
  int64_t IS = g.in[0] * g.in[1] * g.in[2], OS = g.out[0] * g.out[1] * g.out[2];
  int64_t nx = (int64_t)g.N * g.Cin * IS, ny = (int64_t)g.N * g.Cout * OS,
          nw = (int64_t)g.Cin * g.Cout * g.k[0] * g.k[1] * g.k[2];
  double *x = check_array(L, 3, nx, pass != LU_REF_BWD_DATA, "x");
  double *w = check_array(L, 4, nw, pass != LU_REF_BWD_WEIGHT, "w");
  double *dy = check_array(L, 5, ny, pass != LU_REF_FWD, "dy");
  int64_t nout = pass == LU_REF_FWD ? ny : pass == LU_REF_BWD_DATA ? nx : nw;
  double *acc = calloc((size_t)(nout ? nout : 1), sizeof(double));
  if (acc) lu_ref_conv(&g, pass, x, w, dy, acc);
  free(x);
  free(w);
  free(dy);
  if (!acc) return luaL_error(L, "conv_ref: out of memory");
  lua_pushlstring(L, (const char *)acc, (size_t)nout * sizeof(double));
  free(acc);
  return 1;
}

static int l_conv_out(lua_State *L) {
  lu_ref_geom g = check_geom(L, 1);
  lua_createtable(L, 3, 0);
  for (int i = 0; i < 3; i++) {
    lua_pushinteger(L, g.out[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

int luaopen_lunet_testing(lua_State *L);
int luaopen_lunet_testing(lua_State *L) {
  static const luaL_Reg fns[] = {{"conv_ref", l_conv_ref}, {"conv_out", l_conv_out}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
