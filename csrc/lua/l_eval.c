/* lunet.core.eval: confusion counts for metrics, connected components, keep-largest filters, probability
 * averaging and probabilities to segmentation. */
#include <stdlib.h>
#include <string.h>

#include "eval/cc.h"
#include "eval/ensemble.h"
#include "eval/metrics.h"
#include "infer/export.h"
#include "lua/l_common.h"

/* Reads an array of labels or of arrays of labels (regions) at idx into sets. */
static void check_label_sets(lua_State *L, int idx, lu_label_sets *sets, int32_t **offsets, int32_t **labels) {
  luaL_checktype(L, idx, LUA_TTABLE);
  int n = (int)luaL_len(L, idx);
  if (n < 1) luaL_argerror(L, idx, "no labels or regions");
  int total = 0;
  for (int i = 1; i <= n; i++) {
    lua_geti(L, idx, i);
    total += lua_istable(L, -1) ? (int)luaL_len(L, -1) : 1;
    lua_pop(L, 1);
  }
  *offsets = lua_newuserdatauv(L, sizeof(int32_t) * (size_t)(n + 1), 0);
  *labels = lua_newuserdatauv(L, sizeof(int32_t) * (size_t)(total ? total : 1), 0);
  int k = 0;
  for (int i = 1; i <= n; i++) {
    (*offsets)[i - 1] = k;
    lua_geti(L, idx, i);
    if (lua_istable(L, -1)) {
      int m = (int)luaL_len(L, -1);
      for (int j = 1; j <= m; j++) {
        lua_geti(L, -1, j);
        if (!lua_isinteger(L, -1)) luaL_error(L, "label set %d: entry %d is not an integer", i, j);
        (*labels)[k++] = (int32_t)lua_tointeger(L, -1);
        lua_pop(L, 1);
      }
    } else {
      if (!lua_isinteger(L, -1)) luaL_error(L, "label %d is not an integer", i);
      (*labels)[k++] = (int32_t)lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
  }
  (*offsets)[n] = k;
  sets->n_items = n;
  sets->offsets = *offsets;
  sets->labels = *labels;
}

/* confusion(ref, pred, labels_or_regions, {ignore_label=, threads=}) -> { {TP=,FP=,FN=,TN=}, ... } */
static int l_confusion(lua_State *L) {
  lu_tensor *ref = lu_lua_check_tensor(L, 1), *pred = lu_lua_check_tensor(L, 2);
  lu_label_sets sets;
  int32_t *offsets, *labels;
  check_label_sets(L, 3, &sets, &offsets, &labels);
  int has_ignore = 0, ignore = 0;
  if (lua_istable(L, 4)) {
    lua_getfield(L, 4, "ignore_label");
    if (!lua_isnil(L, -1)) { has_ignore = 1; ignore = (int)luaL_checkinteger(L, -1); }
    lua_pop(L, 1);
  }
  int threads = (int)lu_lua_field_int(L, 4, "threads", 1);
  int64_t *counts = lua_newuserdatauv(L, sizeof(int64_t) * 4 * (size_t)sets.n_items, 0);
  LU_LCHECK(L, lu_eval_confusion(ref, pred, &sets, has_ignore, ignore, threads, counts), "eval.confusion");
  static const char *const keys[4] = {"TP", "FP", "FN", "TN"};
  lua_createtable(L, sets.n_items, 0);
  for (int i = 0; i < sets.n_items; i++) {
    lua_createtable(L, 0, 4);
    for (int k = 0; k < 4; k++) {
      lua_pushinteger(L, counts[4 * i + k]);
      lua_setfield(L, -2, keys[k]);
    }
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static void dims3(lua_State *L, const lu_tensor *t, int64_t *nz, int64_t *ny, int64_t *nx) {
  int nd = t->ndim;
  if (nd < 2) luaL_error(L, "eval: image needs at least 2 dimensions");
  for (int d = 0; d < nd - 3; d++)
    if (t->shape[d] != 1) luaL_error(L, "eval: image has more than one channel");
  *nx = t->shape[nd - 1];
  *ny = t->shape[nd - 2];
  *nz = nd >= 3 ? t->shape[nd - 3] : 1;
}

/* cc_label(mask, {connectivity=26, threads=1}) -> labels (i32, same shape), n, sizes {s1, ..., sn} */
static int l_cc_label(lua_State *L) {
  lu_tensor *m = lu_lua_check_tensor(L, 1);
  if (!m->host) luaL_argerror(L, 1, "host tensor expected");
  int conn = (int)lu_lua_field_int(L, 2, "connectivity", 26), threads = (int)lu_lua_field_int(L, 2, "threads", 1);
  int64_t nz, ny, nx;
  dims3(L, m, &nz, &ny, &nx);
  int64_t n = lu_tensor_numel(m);
  uint8_t *mask = NULL;
  uint8_t *owned = NULL;
  if (m->dtype == LU_U8) mask = m->host;
  else {
    owned = malloc((size_t)(n ? n : 1));
    if (!owned) return luaL_error(L, "eval.cc_label: no memory");
    for (int64_t i = 0; i < n; i++) owned[i] = lu_host_get(m, i) != 0;
    mask = owned;
  }
  lu_tensor *lab = NULL;
  lu_status st = lu_tensor_new_host(&lab, LU_I32, m->ndim, m->shape);
  int32_t ncomp = 0;
  int64_t *sizes = NULL;
  if (st == LU_OK) st = lu_cc_label(mask, nz, ny, nx, conn, threads, lab->host, &ncomp, &sizes);
  free(owned);
  if (st != LU_OK) {
    lu_tensor_free(lab);
    LU_LCHECK(L, st, "eval.cc_label");
  }
  lu_lua_push_tensor(L, lab);
  lua_pushinteger(L, ncomp);
  lua_createtable(L, ncomp, 0);
  for (int32_t i = 1; i <= ncomp; i++) {
    lua_pushinteger(L, sizes[i]);
    lua_rawseti(L, -2, i);
  }
  free(sizes);
  return 3;
}

/* keep_largest(seg, labels_or_regions, {background=0, connectivity=26, threads=1}) -> new tensor:
 * nnU-Net's remove_all_but_largest_component_from_segmentation (mask = union of the sets). */
static int l_keep_largest(lua_State *L) {
  lu_tensor *seg = lu_lua_check_tensor(L, 1);
  if (!seg->host) luaL_argerror(L, 1, "host tensor expected");
  lu_label_sets sets;
  int32_t *offsets, *labels;
  if (lua_isinteger(L, 2)) {
    lua_createtable(L, 1, 0);
    lua_pushvalue(L, 2);
    lua_rawseti(L, -2, 1);
    lua_replace(L, 2);
  }
  check_label_sets(L, 2, &sets, &offsets, &labels);
  double bg = 0;
  if (lua_istable(L, 3)) {
    lua_getfield(L, 3, "background");
    if (!lua_isnil(L, -1)) bg = luaL_checknumber(L, -1);
    lua_pop(L, 1);
  }
  int conn = (int)lu_lua_field_int(L, 3, "connectivity", 26), threads = (int)lu_lua_field_int(L, 3, "threads", 1);
  lu_tensor *out = NULL;
  LU_LCHECK(L, lu_tensor_new_host(&out, seg->dtype, seg->ndim, seg->shape), "eval.keep_largest");
  memcpy(out->host, seg->host, (size_t)lu_tensor_numel(seg) * lu_dtype_size(seg->dtype));
  lu_status st = lu_cc_keep_largest_seg(out, labels, sets.offsets[sets.n_items], bg, conn, threads);
  if (st != LU_OK) {
    lu_tensor_free(out);
    LU_LCHECK(L, st, "eval.keep_largest");
  }
  lu_lua_push_tensor(L, out);
  return 1;
}

/* average({t1, t2, ...}) -> f32 tensor (nnU-Net's average_probabilities) */
static int l_average(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int n = (int)luaL_len(L, 1);
  const lu_tensor **ts = lua_newuserdatauv(L, sizeof(lu_tensor *) * (size_t)(n ? n : 1), 0);
  for (int i = 0; i < n; i++) {
    lua_geti(L, 1, i + 1);
    ts[i] = lu_lua_check_tensor(L, -1);
    lua_pop(L, 1);
  }
  lu_tensor *out = NULL;
  LU_LCHECK(L, lu_eval_average(n, ts, &out), "eval.average");
  lu_lua_push_tensor(L, out);
  return 1;
}

/* probs_to_seg(probs (C,...), [regions_class_order]) -> u8/u16 segmentation (...) */
static int l_probs_to_seg(lua_State *L) {
  lu_tensor *p = lu_lua_check_tensor(L, 1);
  int32_t *order = NULL;
  int n = 0;
  if (lua_istable(L, 2)) {
    n = (int)luaL_len(L, 2);
    order = lua_newuserdatauv(L, sizeof(int32_t) * (size_t)(n ? n : 1), 0);
    for (int i = 0; i < n; i++) {
      lua_geti(L, 2, i + 1);
      order[i] = (int32_t)luaL_checkinteger(L, -1);
      lua_pop(L, 1);
    }
  }
  lu_tensor *out = NULL;
  LU_LCHECK(L, lu_ex_probs_to_seg(p, order, n, &out), "eval.probs_to_seg");
  lu_lua_push_tensor(L, out);
  return 1;
}

int lu_open_eval(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"confusion", l_confusion},
    {"cc_label", l_cc_label},
    {"keep_largest", l_keep_largest},
    {"average", l_average},
    {"probs_to_seg", l_probs_to_seg},
    {NULL, NULL},
  };
  lua_newtable(L);
  lu_lua_setfuncs(L, fns);
  return 1;
}
