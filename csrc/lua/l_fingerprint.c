/* require("lunet.core").fingerprint: the dataset fingerprint in C (csrc/data/fingerprint.h).
 *   fingerprint.dataset(cases, nchannels, {threads=2, samples_per_case=N, seed=1234, progress=true})
 *     cases = { {images = {path, ...}, label = path, id = "case_001"}, ... }
 *     labels = {0, 1, 2} (optional): the allowed label values; every image voxel must be finite and every label
 *       value an integer (in labels when given), else the call fails naming the case, the file and the value
 *   -> { cases = { {shape_before_crop={z,y,x}, shape_after_crop={z,y,x}, spacing={z,y,x}, bbox={{s,e},..},
 *                   relative_size=r, num_foreground=n}, ... },
 *        channels = { {mean=, median=, std=, min=, max=, percentile_99_5=, percentile_00_5=, n=}, ... } } */
#include <stdlib.h>
#include <string.h>

#include "data/fingerprint.h"
#include "lua/l_common.h"

typedef struct fp_bufs {
  lu_fp_case_in *in;
  const char **paths;
  lu_fp_case *out;
  lu_fp_stats *stats;
} fp_bufs;

static int fp_bufs_gc(lua_State *L) {
  fp_bufs *b = lua_touserdata(L, 1);
  free(b->in); free(b->paths); free(b->out); free(b->stats);
  memset(b, 0, sizeof *b);
  return 0;
}

static int l_dataset(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer nch = luaL_checkinteger(L, 2);
  int has_opt = lua_istable(L, 3);
  lu_fp_options opt = {2, 10000, 1234, 1, NULL, -1};
  if (has_opt) {
    opt.threads = (int)lu_lua_field_int(L, 3, "threads", 2);
    opt.samples_per_case = (int64_t)lu_lua_field_int(L, 3, "samples_per_case", 10000);
    opt.seed = (uint64_t)lu_lua_field_int(L, 3, "seed", 1234);
    opt.progress = lu_lua_field_bool(L, 3, "progress", 1);
    lua_getfield(L, 3, "labels");
    if (!lua_isnil(L, -1)) {
      int64_t *labels = lua_newuserdatauv(L, 4096 * sizeof *labels, 0);
      lua_insert(L, -2); /* keeps the buffer on the stack, below the list, for the whole call */
      opt.nlabels = lu_lua_check_ints(L, lua_gettop(L), labels, 0, 4096, "labels");
      opt.labels = labels;
    }
    lua_pop(L, 1);
  }
  lua_Integer n = luaL_len(L, 1);
  if (n < 1) return luaL_argerror(L, 1, "no cases");
  if (nch < 1 || nch > 4096) return luaL_argerror(L, 2, "channel count out of range");
  /* buffers owned by a userdata so a Lua error frees them */
  fp_bufs *b = lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, fp_bufs_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  int keep = lua_gettop(L);
  int64_t npaths = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_getfield(L, -1, "images");
    luaL_checktype(L, -1, LUA_TTABLE);
    npaths += luaL_len(L, -1);
    lua_pop(L, 2);
  }
  b->in = calloc((size_t)n, sizeof *b->in);
  b->paths = calloc((size_t)(npaths > 0 ? npaths : 1), sizeof *b->paths);
  b->out = calloc((size_t)n, sizeof *b->out);
  b->stats = calloc((size_t)nch, sizeof *b->stats);
  if (!b->in || !b->paths || !b->out || !b->stats) return luaL_error(L, "fingerprint: out of memory");
  /* strings stay alive: they are referenced from the cases table (argument 1) for the whole call */
  int64_t p = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    lua_getfield(L, -1, "images");
    lua_Integer ni = luaL_len(L, -1);
    if (ni < 1) return luaL_error(L, "fingerprint: case %d has no images", (int)i);
    b->in[i - 1].images = b->paths + p;
    b->in[i - 1].nimages = (int)ni;
    for (lua_Integer k = 1; k <= ni; k++) {
      lua_rawgeti(L, -1, k);
      b->paths[p++] = luaL_checkstring(L, -1);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "label");
    b->in[i - 1].label = luaL_checkstring(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, -1, "id"); /* a string kept alive by the cases table */
    b->in[i - 1].id = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 2);
  }
  if (lu_fingerprint_dataset(b->in, (int)n, (int)nch, &opt, b->out, b->stats) != LU_OK)
    return luaL_error(L, "fingerprint: %s", lu_errmsg());
  lua_createtable(L, 0, 2);
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 0; i < n; i++) {
    const lu_fp_case *c = &b->out[i];
    lua_createtable(L, 0, 6);
    lu_lua_push_ints(L, c->shape_before, 3); lua_setfield(L, -2, "shape_before_crop");
    lu_lua_push_ints(L, c->shape_after, 3); lua_setfield(L, -2, "shape_after_crop");
    lu_lua_push_numbers(L, c->spacing, 3); lua_setfield(L, -2, "spacing");
    lu_lua_push_bbox(L, c->bbox); lua_setfield(L, -2, "bbox");
    lua_pushnumber(L, c->relative_size); lua_setfield(L, -2, "relative_size");
    lua_pushinteger(L, (lua_Integer)c->num_foreground); lua_setfield(L, -2, "num_foreground");
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "cases");
  lua_createtable(L, (int)nch, 0);
  for (lua_Integer c = 0; c < nch; c++) {
    const lu_fp_stats *s = &b->stats[c];
    lua_createtable(L, 0, 8);
    lua_pushnumber(L, s->mean); lua_setfield(L, -2, "mean");
    lua_pushnumber(L, s->median); lua_setfield(L, -2, "median");
    lua_pushnumber(L, s->std); lua_setfield(L, -2, "std");
    lua_pushnumber(L, s->min); lua_setfield(L, -2, "min");
    lua_pushnumber(L, s->max); lua_setfield(L, -2, "max");
    lua_pushnumber(L, s->percentile_99_5); lua_setfield(L, -2, "percentile_99_5");
    lua_pushnumber(L, s->percentile_00_5); lua_setfield(L, -2, "percentile_00_5");
    lua_pushinteger(L, (lua_Integer)s->n); lua_setfield(L, -2, "n");
    lua_rawseti(L, -2, c + 1);
  }
  lua_setfield(L, -2, "channels");
  (void)keep;
  return 1;
}

int lu_open_fingerprint(lua_State *L) {
  static const luaL_Reg fns[] = {{"dataset", l_dataset}, {NULL, NULL}};
  lua_newtable(L);
  luaL_setfuncs(L, fns, 0);
  return 1;
}
