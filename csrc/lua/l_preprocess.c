/* require("lunet.core").preprocess: nnU-Net preprocessing in C (csrc/data/{crop,normalize,resample,classloc,
 * preprocess}.h).
 *   run_case({img_tensor, ...}, seg_or_nil, spacing{z,y,x}, cfg, threads)
 *     cfg = { transpose={0,1,2}, target_spacing={...} (2 or 3 entries), schemes={"ZScoreNormalization", ...},
 *             use_mask={bool, ...}, props={ {mean=, std=, percentile_00_5=, percentile_99_5=}, ... },
 *             data_opts={order=3, order_z=0, force_separate_z=nil|bool}, seg_opts={...},
 *             classes={ {1}, {2}, {-1,0,1,2} }, seed=1234 }
 *     -> data (f32), seg (i8/i16), info = { shape_before_cropping, bbox_used_for_cropping,
 *        shape_after_cropping_and_before_resampling, new_shape, spacing (transposed), target_spacing,
 *        class_locations = { i32 tensor (N, 4) per class, in cfg.classes order } }
 *   resample(t, new_shape, cur_spacing, new_spacing, {is_seg=, order=, order_z=, force_separate_z=}, threads)
 *   resample_rows(t (C, rows, Y, X), in0, in_full, new_shape, out0, nout, cur_sp, new_sp, opts, threads)
 *     -> rows [out0, out0 + nout) of resample's result from input rows [in0, in0 + rows) (0-based; streaming)
 *   resample_rows_needed(in_shape, out_shape, cur_sp, new_sp, opts, out0, nout) -> lo, hi (inclusive input rows)
 *     | nil, message (cubic resampling across axis 0, or clipped to the whole volume, does not stream)
 *   crop(data, seg_or_nil) -> data, seg(i16), bbox
 *   normalize(t (C,Z,Y,X) f32 in place, channel (1-based), scheme, use_mask, seg_or_nil, props)
 *   class_locations(seg (1,Z,Y,X) tensor, classes, seed) -> { i32 tensor (N,4), ... }
 *   compute_new_shape(shape, old_sp, new_sp) -> shape
 *   sep_z(cur_sp, new_sp, force_or_nil) -> do_separate (bool), axis (0-based or nil)
 *   pool(cfg, workers, threads_per_case, chunk, level) -> Pool (parallel over cases, each written to a case store)
 *     Pool:submit(tag, {img, ...}, seg_or_nil, spacing, store_path)  (copies the inputs; never blocks)
 *     Pool:collect(wait) -> nil | tag, true, info | tag, false, message;  Pool:pending();  Pool:close() */
#include <stdlib.h>
#include <string.h>

#include "data/crop.h"
#include "data/preprocess.h"
#include "lua/l_common.h"

static void read_opts(lua_State *L, int idx, lu_resample_opts *o, int is_seg) {
  lu_resample_opts_default(o, is_seg);
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_getfield(L, idx, "is_seg");
  if (!lua_isnil(L, -1)) o->is_seg = lua_toboolean(L, -1);
  lua_pop(L, 1);
  o->order = (int)lu_lua_field_number(L, idx, "order", o->is_seg ? 1 : 3);
  o->order_z = (int)lu_lua_field_number(L, idx, "order_z", 0);
  o->aniso_threshold = lu_lua_field_number(L, idx, "separate_z_anisotropy_threshold", 3.0);
  lua_getfield(L, idx, "force_separate_z");
  o->force_separate_z = lua_isnil(L, -1) ? -1 : lua_toboolean(L, -1);
  lua_pop(L, 1);
}

/* Classes table at idx -> arrays in a userdata scratch block left on the stack. Returns count. */
static int read_classes(lua_State *L, int idx, int32_t **labels, int32_t **off, int32_t **len) {
  if (lua_isnoneornil(L, idx)) {
    lua_newuserdatauv(L, 1, 0);
    *labels = *off = *len = NULL;
    return 0;
  }
  luaL_checktype(L, idx, LUA_TTABLE);
  int n = (int)lua_rawlen(L, idx), total = 0;
  for (int k = 0; k < n; k++) {
    lua_rawgeti(L, idx, k + 1);
    total += lua_type(L, -1) == LUA_TTABLE ? (int)lua_rawlen(L, -1) : 1;
    lua_pop(L, 1);
  }
  int32_t *blk = lua_newuserdatauv(L, sizeof(int32_t) * (size_t)(2 * n + total + 1), 0);
  *off = blk;
  *len = blk + n;
  *labels = blk + 2 * n;
  int p = 0;
  for (int k = 0; k < n; k++) {
    lua_rawgeti(L, idx, k + 1);
    (*off)[k] = p;
    if (lua_type(L, -1) == LUA_TTABLE) {
      int m = (int)lua_rawlen(L, -1);
      for (int j = 0; j < m; j++) {
        lua_rawgeti(L, -1, j + 1);
        (*labels)[p++] = (int32_t)luaL_checkinteger(L, -1);
        lua_pop(L, 1);
      }
      (*len)[k] = m;
    } else {
      (*labels)[p++] = (int32_t)luaL_checkinteger(L, -1);
      (*len)[k] = 1;
    }
    lua_pop(L, 1);
  }
  return n;
}

static void push_locs(lua_State *L, const lu_class_locs *locs, int n) {
  lua_createtable(L, n, 0);
  for (int k = 0; k < n; k++) {
    int64_t shp[2] = {locs[k].n, 4};
    lu_tensor *t = NULL;
    LU_LCHECK(L, lu_tensor_new_host(&t, LU_I32, 2, shp), "class_locations");
    if (locs[k].n) memcpy(t->host, locs[k].coords, sizeof(int32_t) * 4 * (size_t)locs[k].n);
    lu_lua_push_tensor(L, t);
    lua_rawseti(L, -2, k + 1);
  }
}

/* Holds a pp result so a Lua error while pushing does not leak it. */
static int res_gc(lua_State *L) {
  lu_pp_result *r = lua_touserdata(L, 1);
  lu_pp_result_free(r);
  return 0;
}

/* Reads the cfg table at idx into *cfg; pushes one scratch userdata (class arrays) that must stay alive while
 * cfg is used. */
static void parse_cfg(lua_State *L, int idx, lu_pp_config *cfg) {
  luaL_checktype(L, idx, LUA_TTABLE);
  memset(cfg, 0, sizeof *cfg);
  lua_getfield(L, idx, "transpose");
  if (lua_isnil(L, -1)) {
    cfg->transpose[0] = 0; cfg->transpose[1] = 1; cfg->transpose[2] = 2;
  } else {
    double tv[3];
    lu_lua_check_numbers(L, -1, tv, 3, 3, "cfg.transpose");
    for (int a = 0; a < 3; a++) cfg->transpose[a] = (int)tv[a];
    int seen = 0;
    for (int a = 0; a < 3; a++) {
      if (cfg->transpose[a] < 0 || cfg->transpose[a] > 2) luaL_error(L, "cfg.transpose: axes must be 0, 1, 2");
      seen |= 1 << cfg->transpose[a];
    }
    if (seen != 7) luaL_error(L, "cfg.transpose: not a permutation of 0, 1, 2");
  }
  lua_pop(L, 1);
  lua_getfield(L, idx, "target_spacing");
  cfg->ntarget = lu_lua_check_numbers(L, -1, cfg->target_spacing, 2, 3, "cfg.target_spacing");
  lua_pop(L, 1);
  lua_getfield(L, idx, "schemes");
  luaL_checktype(L, -1, LUA_TTABLE);
  cfg->nch = (int)lua_rawlen(L, -1);
  if (cfg->nch < 1 || cfg->nch > LU_PP_MAX_CHANNELS) luaL_error(L, "cfg.schemes: expected 1..64 schemes");
  for (int c = 0; c < cfg->nch; c++) {
    lua_rawgeti(L, -1, c + 1);
    LU_LCHECK(L, lu_norm_parse(luaL_checkstring(L, -1), &cfg->scheme[c]), "cfg.schemes");
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_getfield(L, idx, "use_mask");
  for (int c = 0; c < cfg->nch; c++) {
    if (lua_istable(L, -1)) {
      lua_rawgeti(L, -1, c + 1);
      cfg->use_mask[c] = lua_toboolean(L, -1);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  lua_getfield(L, idx, "props");
  for (int c = 0; c < cfg->nch; c++) {
    if (!lua_istable(L, -1)) break;
    lua_rawgeti(L, -1, c + 1);
    if (lua_istable(L, -1)) {
      int i = lua_gettop(L);
      cfg->props[c].mean = lu_lua_field_number(L, i, "mean", 0);
      cfg->props[c].std = lu_lua_field_number(L, i, "std", 1);
      cfg->props[c].percentile_00_5 = lu_lua_field_number(L, i, "percentile_00_5", -1e30);
      cfg->props[c].percentile_99_5 = lu_lua_field_number(L, i, "percentile_99_5", 1e30);
    } else if (cfg->scheme[c] == LU_NORM_CT) {
      luaL_error(L, "cfg.props[%d]: CTNormalization needs the channel's intensity properties", c + 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_getfield(L, idx, "data_opts");
  read_opts(L, lua_gettop(L), &cfg->data_opts, 0);
  lua_pop(L, 1);
  lua_getfield(L, idx, "seg_opts");
  read_opts(L, lua_gettop(L), &cfg->seg_opts, 1);
  lua_pop(L, 1);
  cfg->data_opts.is_seg = 0;
  cfg->seg_opts.is_seg = 1;
  cfg->seed = (uint32_t)lu_lua_field_number(L, idx, "seed", 1234);
  lua_getfield(L, idx, "classes");
  int32_t *labels, *off, *len;
  cfg->nclasses = read_classes(L, lua_gettop(L), &labels, &off, &len);
  cfg->class_labels = labels;
  cfg->class_off = off;
  cfg->class_len = len;
}

static void push_info(lua_State *L, lu_pp_result *res, int has_seg) {
  lua_createtable(L, 0, 8);
  lu_lua_push_ints(L, res->shape_before_cropping, 3);
  lua_setfield(L, -2, "shape_before_cropping");
  lu_lua_push_bbox(L, res->bbox);
  lua_setfield(L, -2, "bbox_used_for_cropping");
  lu_lua_push_ints(L, res->shape_after_cropping, 3);
  lua_setfield(L, -2, "shape_after_cropping_and_before_resampling");
  lu_lua_push_ints(L, res->new_shape, 3);
  lua_setfield(L, -2, "new_shape");
  lu_lua_push_numbers(L, res->spacing_transposed, 3);
  lua_setfield(L, -2, "spacing_transposed");
  lu_lua_push_numbers(L, res->target_spacing, 3);
  lua_setfield(L, -2, "target_spacing");
  if (has_seg && res->locs) {
    push_locs(L, res->locs, res->nclasses);
    lua_setfield(L, -2, "class_locations");
  }
}

/* The list of image tensors at idx (1..LU_PP_MAX_CHANNELS of them) into imgs; returns the count. The
 * tensors stay referenced by the table, so the pointers live as long as it does. */
static int check_images(lua_State *L, int idx, const lu_tensor **imgs) {
  luaL_checktype(L, idx, LUA_TTABLE);
  int nimg = (int)lua_rawlen(L, idx);
  if (nimg < 1 || nimg > LU_PP_MAX_CHANNELS) luaL_argerror(L, idx, "expected 1..64 image tensors");
  for (int i = 0; i < nimg; i++) {
    lua_rawgeti(L, idx, i + 1);
    imgs[i] = lu_lua_check_tensor(L, -1);
    lua_pop(L, 1);
  }
  return nimg;
}

static int l_run_case(lua_State *L) {
  const lu_tensor *imgs[LU_PP_MAX_CHANNELS];
  int nimg = check_images(L, 1, imgs);
  const lu_tensor *seg = lua_isnoneornil(L, 2) ? NULL : lu_lua_check_tensor(L, 2);
  double spacing[3];
  lua_pushvalue(L, 3);
  lu_lua_check_numbers(L, -1, spacing, 3, 3, "spacing");
  lua_pop(L, 1);
  luaL_checktype(L, 4, LUA_TTABLE);
  int threads = (int)luaL_optinteger(L, 5, 1);
  lu_pp_config cfg;
  parse_cfg(L, 4, &cfg);
  /* scratch block stays on the stack until return */
  lu_pp_result *res = lua_newuserdatauv(L, sizeof(lu_pp_result), 0);
  memset(res, 0, sizeof *res);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, res_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  LU_LCHECK(L, lu_preprocess_case(imgs, nimg, seg, spacing, &cfg, threads, res), "preprocess.run_case");
  lu_tensor *d = res->data, *s = res->seg;
  res->data = res->seg = NULL;
  lu_lua_push_tensor(L, d);
  lu_lua_push_tensor(L, s);
  push_info(L, res, seg != NULL);
  return 3;
}

/* resample_rows(t (C, rows, Y, X), in0, in_full, new_shape, out0, nout, cur_sp, new_sp, opts, threads) */
static int l_resample_rows(lua_State *L) {
  lu_tensor *t = lu_lua_check_tensor(L, 1);
  int64_t in0 = luaL_checkinteger(L, 2), in_full = luaL_checkinteger(L, 3);
  int64_t ns[LU_MAX_DIMS];
  if (lu_lua_check_shape(L, 4, ns) != 3) return luaL_argerror(L, 4, "expected 3 sizes");
  int64_t out0 = luaL_checkinteger(L, 5), nout = luaL_checkinteger(L, 6);
  double cur[3], nsp[3];
  lu_lua_check_numbers(L, 7, cur, 3, 3, "resample_rows: current spacing");
  lu_lua_check_numbers(L, 8, nsp, 3, 3, "resample_rows: new spacing");
  lu_resample_opts o;
  read_opts(L, 9, &o, 0);
  lu_tensor *out = NULL;
  LU_LCHECK(L, lu_resample_rows(t, in0, in_full, ns, out0, nout, cur, nsp, &o, (int)luaL_optinteger(L, 10, 1), &out),
            "preprocess.resample_rows");
  lu_lua_push_tensor(L, out);
  return 1;
}

/* resample_rows_needed(in_shape, out_shape, cur_sp, new_sp, opts, out0, nout) -> lo, hi | nil, message */
static int l_resample_rows_needed(lua_State *L) {
  int64_t ins[LU_MAX_DIMS], outs[LU_MAX_DIMS];
  if (lu_lua_check_shape(L, 1, ins) != 3) return luaL_argerror(L, 1, "expected 3 sizes");
  if (lu_lua_check_shape(L, 2, outs) != 3) return luaL_argerror(L, 2, "expected 3 sizes");
  double cur[3], nsp[3];
  lu_lua_check_numbers(L, 3, cur, 3, 3, "resample_rows_needed: current spacing");
  lu_lua_check_numbers(L, 4, nsp, 3, 3, "resample_rows_needed: new spacing");
  lu_resample_opts o;
  read_opts(L, 5, &o, 0);
  int64_t lo, hi;
  if (lu_resample_rows_needed(ins, outs, cur, nsp, &o, luaL_checkinteger(L, 6), luaL_checkinteger(L, 7), &lo,
                              &hi) != LU_OK) {
    lua_pushnil(L);
    lua_pushstring(L, lu_errmsg());
    return 2;
  }
  lua_pushinteger(L, (lua_Integer)lo);
  lua_pushinteger(L, (lua_Integer)hi);
  return 2;
}

static int l_resample(lua_State *L) {
  lu_tensor *t = lu_lua_check_tensor(L, 1);
  int64_t ns[LU_MAX_DIMS];
  if (lu_lua_check_shape(L, 2, ns) != 3) return luaL_argerror(L, 2, "expected 3 sizes");
  double cur[3], nsp[3];
  lu_lua_check_numbers(L, 3, cur, 3, 3, "resample: current spacing");
  lu_lua_check_numbers(L, 4, nsp, 3, 3, "resample: new spacing");
  lu_resample_opts o;
  read_opts(L, 5, &o, t->dtype != LU_F32);
  int threads = (int)luaL_optinteger(L, 6, 1);
  lu_tensor *out = NULL;
  LU_LCHECK(L, lu_resample(t, ns, cur, nsp, &o, threads, &out), "preprocess.resample");
  lu_lua_push_tensor(L, out);
  return 1;
}

static int l_crop(lua_State *L) {
  lu_tensor *d = lu_lua_check_tensor(L, 1);
  lu_tensor *s = lua_isnoneornil(L, 2) ? NULL : lu_lua_check_tensor(L, 2);
  lu_tensor *dout = NULL, *sout = NULL;
  int64_t bbox[3][2];
  LU_LCHECK(L, lu_crop_to_nonzero(d, s, &dout, &sout, bbox), "preprocess.crop");
  lu_lua_push_tensor(L, dout);
  lu_lua_push_tensor(L, sout);
  lu_lua_push_bbox(L, bbox);
  return 3;
}

static int l_normalize(lua_State *L) {
  lu_tensor *t = lu_lua_check_tensor(L, 1);
  lua_Integer c = luaL_checkinteger(L, 2);
  lu_norm_scheme sch;
  LU_LCHECK(L, lu_norm_parse(luaL_checkstring(L, 3), &sch), "preprocess.normalize");
  int use_mask = lua_toboolean(L, 4);
  lu_tensor *s = lua_isnoneornil(L, 5) ? NULL : lu_lua_check_tensor(L, 5);
  lu_norm_props p = {0, 1, -1e30, 1e30};
  if (lua_istable(L, 6)) {
    p.mean = lu_lua_field_number(L, 6, "mean", 0);
    p.std = lu_lua_field_number(L, 6, "std", 1);
    p.percentile_00_5 = lu_lua_field_number(L, 6, "percentile_00_5", -1e30);
    p.percentile_99_5 = lu_lua_field_number(L, 6, "percentile_99_5", 1e30);
  }
  if (t->dtype != LU_F32 || t->ndim != 4 || !t->host) return luaL_argerror(L, 1, "expected a host f32 (C,Z,Y,X) tensor");
  int64_t n = t->shape[1] * t->shape[2] * t->shape[3];
  if (c < 1 || c > t->shape[0]) return luaL_argerror(L, 2, "channel out of range");
  if (s && (s->dtype != LU_I16 || lu_tensor_numel(s) != n)) return luaL_argerror(L, 5, "expected an i16 seg of the image's size");
  LU_LCHECK(L, lu_normalize((float *)t->host + (c - 1) * n, n, sch, use_mask, s ? s->host : NULL, &p),
            "preprocess.normalize");
  return 0;
}

static int l_class_locations(lua_State *L) {
  lu_tensor *s = lu_lua_check_tensor(L, 1);
  if (s->dtype != LU_I16 && s->dtype != LU_I8) return luaL_argerror(L, 1, "expected an i8/i16 seg");
  int32_t *labels, *off, *len;
  int n = read_classes(L, 2, &labels, &off, &len);
  uint32_t seed = (uint32_t)luaL_optinteger(L, 3, 1234);
  int64_t d[3] = {s->shape[s->ndim - 3], s->shape[s->ndim - 2], s->shape[s->ndim - 1]};
  int64_t m = lu_tensor_numel(s);
  int16_t *sv = lua_newuserdatauv(L, sizeof(int16_t) * (size_t)(m ? m : 1), 0);
  for (int64_t i = 0; i < m; i++) sv[i] = s->dtype == LU_I8 ? ((int8_t *)s->host)[i] : ((int16_t *)s->host)[i];
  lu_pp_result *res = lua_newuserdatauv(L, sizeof(lu_pp_result), 0);
  memset(res, 0, sizeof *res);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, res_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  res->nclasses = n;
  res->locs = calloc((size_t)(n ? n : 1), sizeof(lu_class_locs));
  if (!res->locs) return luaL_error(L, "class_locations: no memory");
  LU_LCHECK(L, lu_class_locations(sv, d, labels, off, len, n, seed, res->locs), "preprocess.class_locations");
  push_locs(L, res->locs, n);
  return 1;
}

static int l_compute_new_shape(lua_State *L) {
  int64_t s[LU_MAX_DIMS], ns[3];
  if (lu_lua_check_shape(L, 1, s) != 3) return luaL_argerror(L, 1, "expected 3 sizes");
  double a[3], b[3];
  lu_lua_check_numbers(L, 2, a, 3, 3, "old spacing");
  lu_lua_check_numbers(L, 3, b, 3, 3, "new spacing");
  lu_compute_new_shape(s, a, b, ns);
  lu_lua_push_ints(L, ns, 3);
  return 1;
}

static int l_sep_z(lua_State *L) {
  double a[3], b[3];
  lu_lua_check_numbers(L, 1, a, 3, 3, "current spacing");
  lu_lua_check_numbers(L, 2, b, 3, 3, "new spacing");
  int force = lua_isnoneornil(L, 3) ? -1 : lua_toboolean(L, 3);
  int sep, axis;
  lu_resample_sep_z_axis(force, a, b, luaL_optnumber(L, 4, 3.0), &sep, &axis);
  lua_pushboolean(L, sep);
  if (axis >= 0) lua_pushinteger(L, axis);
  else lua_pushnil(L);
  return 2;
}


/* ---------------------------------------------------------------- case pool (parallel over cases) */

#define POOL_MT "lunet.PreprocessPool"

static lu_pp_pool **check_pool(lua_State *L, int idx) {
  lu_pp_pool **p = luaL_checkudata(L, idx, POOL_MT);
  if (!*p) luaL_argerror(L, idx, "pool is closed");
  return p;
}

/* pool(cfg, workers, threads_per_case, chunk{z,y,x}, level) */
static int l_pool(lua_State *L) {
  lu_pp_config cfg;
  parse_cfg(L, 1, &cfg);
  int workers = (int)luaL_optinteger(L, 2, 1);
  int tpc = (int)luaL_optinteger(L, 3, 1);
  int64_t chunk[3] = {64, 64, 64};
  if (lua_istable(L, 4)) {
    double v[3];
    lu_lua_check_numbers(L, 4, v, 3, 3, "chunk");
    for (int a = 0; a < 3; a++) chunk[a] = (int64_t)v[a];
  }
  int level = (int)luaL_optinteger(L, 5, 1);
  lu_pp_pool **ud = lua_newuserdatauv(L, sizeof(lu_pp_pool *), 0);
  *ud = NULL;
  luaL_setmetatable(L, POOL_MT);
  LU_LCHECK(L, lu_pp_pool_new(ud, &cfg, workers, tpc, chunk, level), "preprocess.pool");
  return 1;
}

/* pool:submit(tag, {images...}, seg_or_nil, spacing, store_path) */
static int l_pool_submit(lua_State *L) {
  lu_pp_pool **p = check_pool(L, 1);
  lua_Integer tag = luaL_checkinteger(L, 2);
  const lu_tensor *imgs[LU_PP_MAX_CHANNELS];
  int nimg = check_images(L, 3, imgs);
  const lu_tensor *seg = lua_isnoneornil(L, 4) ? NULL : lu_lua_check_tensor(L, 4);
  double spacing[3];
  lu_lua_check_numbers(L, 5, spacing, 3, 3, "spacing");
  const char *path = luaL_checkstring(L, 6);
  LU_LCHECK(L, lu_pp_pool_submit(*p, tag, imgs, nimg, seg, spacing, path), "preprocess.pool:submit");
  return 0;
}

/* pool:collect(wait) -> nil | tag, ok, err_or_info */
static int l_pool_collect(lua_State *L) {
  lu_pp_pool **p = check_pool(L, 1);
  int wait = lua_toboolean(L, 2);
  lu_pp_result *res = lua_newuserdatauv(L, sizeof(lu_pp_result), 0);
  memset(res, 0, sizeof *res);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, res_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  int64_t tag;
  lu_status st;
  char err[512];
  if (!lu_pp_pool_collect(*p, wait, &tag, &st, err, sizeof err, res)) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushinteger(L, (lua_Integer)tag);
  if (st != LU_OK) {
    lua_pushboolean(L, 0);
    lua_pushfstring(L, "%s: %s", lu_status_name(st), err);
    return 3;
  }
  lua_pushboolean(L, 1);
  push_info(L, res, res->locs != NULL);
  return 3;
}

static int l_pool_pending(lua_State *L) {
  lua_pushinteger(L, lu_pp_pool_pending(*check_pool(L, 1)));
  return 1;
}

static int l_pool_close(lua_State *L) {
  lu_pp_pool **p = luaL_checkudata(L, 1, POOL_MT);
  lu_pp_pool_free(*p);
  *p = NULL;
  return 0;
}

int lu_open_preprocess(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"run_case", l_run_case},           {"resample", l_resample},
      {"resample_rows", l_resample_rows}, {"resample_rows_needed", l_resample_rows_needed},
      {"crop", l_crop},                   {"normalize", l_normalize},
      {"class_locations", l_class_locations}, {"compute_new_shape", l_compute_new_shape},
      {"sep_z", l_sep_z},                 {"pool", l_pool},
      {NULL, NULL}};
  if (luaL_newmetatable(L, POOL_MT)) {
    static const luaL_Reg m[] = {{"submit", l_pool_submit}, {"collect", l_pool_collect},
                                 {"pending", l_pool_pending}, {"close", l_pool_close}, {NULL, NULL}};
    lua_newtable(L);
    lu_lua_setfuncs(L, m);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_pool_close);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  lu_lua_setfuncs(L, fns);
  return 1;
}
