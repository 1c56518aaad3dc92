/* lunet.core.augment: nnU-Net v2 training augmentation on host tensors (csrc/data/augment.h).
 *   batch(params, rng, img (B,C,Z,Y,X) f32, seg (B,Cs,Z,Y,X) i16 or nil, out{3} [, threads=2])
 *        -> img (B,C,out) f32, seg (B,Cs,out) i16 or nil, records (per sample: rotated, angle{3}, ...)
 *   downsample_seg(seg (B|C.., Z,Y,X) i16, scale{3}) -> i16 tensor, nearest-exact to round(shape*scale)
 *   gamma(tensor f32, gamma, invert, retain_stats) -> new tensor     (building blocks for specs)
 *   mirror(tensor (C,Z,Y,X), {fz, fy, fx}) -> new tensor
 *   spatial(img (C,Z,Y,X) f32, seg (Cs,Z,Y,X) i16 or nil, out{3}, matrix{9 or 4}) -> img, seg
 *   blur_kernel(sigma) -> {weights}
 * params: table with the lu_aug_params field names (dim, dummy2d, p_rotation, rot_lo, ...; mirror =
 * {z, y, x} booleans; mask_channels = {1-based channel indices}); missing fields take nnU-Net's
 * defaults for params.dim / params.dummy2d / params.rotation (half-range in radians). */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "data/augment.h"
#include "lua/l_common.h"
#include "lua/l_rng.h"

static void read_params(lua_State *L, int idx, lu_aug_params *p) {
  luaL_checktype(L, idx, LUA_TTABLE);
  double dim = lu_lua_field_number(L, idx, "dim", 3), rot = lu_lua_field_number(L, idx, "rotation", 0.5235987755982988);
  lu_aug_defaults(p, (int)dim, lu_lua_field_bool(L, idx, "dummy2d", 0), rot);
#define F(name) p->name = lu_lua_field_number(L, idx, #name, p->name)
  F(p_rotation); F(rot_lo); F(rot_hi); F(p_scaling); F(scale_lo); F(scale_hi);
  F(p_noise); F(noise_lo); F(noise_hi); F(p_blur); F(blur_p_channel); F(blur_lo); F(blur_hi);
  F(p_brightness); F(brightness_lo); F(brightness_hi); F(p_contrast); F(contrast_lo); F(contrast_hi);
  F(p_lowres); F(lowres_p_channel); F(lowres_lo); F(lowres_hi); F(p_gamma_inv); F(p_gamma); F(gamma_lo); F(gamma_hi);
  F(p_mirror);
#undef F
  lua_getfield(L, idx, "mirror");
  if (lua_istable(L, -1)) {
    for (int d = 0; d < 3; d++) { lua_geti(L, -1, d + 1); p->mirror[d] = lua_toboolean(L, -1); lua_pop(L, 1); }
  }
  lua_pop(L, 1);
  lua_getfield(L, idx, "mask_channels");
  if (lua_istable(L, -1)) {
    int n = (int)luaL_len(L, -1);
    for (int i = 1; i <= n; i++) {
      lua_geti(L, -1, i);
      lua_Integer c = lua_tointeger(L, -1);
      if (c >= 1 && c <= 32) p->mask_channels |= 1u << (c - 1);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

static lu_tensor *check_host(lua_State *L, int idx, lu_dtype dt, int ndim, const char *what) {
  lu_tensor *t = lu_lua_check_tensor(L, idx);
  if (!t->host || t->dtype != dt || t->ndim != ndim)
    luaL_error(L, "augment: %s must be a host %s tensor with %d axes (got %s, %d axes)", what, lu_dtype_name(dt), ndim,
               lu_dtype_name(t->dtype), t->ndim);
  return t;
}

static void push_record(lua_State *L, const lu_aug_record *r) {
  lua_createtable(L, 0, 12);
  lua_pushboolean(L, r->rotated); lua_setfield(L, -2, "rotated");
  lua_pushboolean(L, r->scaled); lua_setfield(L, -2, "scaled");
  lu_lua_push_numbers(L, r->angle, 3);
  lua_setfield(L, -2, "angle");
  lua_pushnumber(L, r->scale); lua_setfield(L, -2, "scale");
  lua_pushboolean(L, r->noise); lua_setfield(L, -2, "noise");
  lua_pushboolean(L, r->blur); lua_setfield(L, -2, "blur");
  lua_pushboolean(L, r->brightness); lua_setfield(L, -2, "brightness");
  lua_pushboolean(L, r->contrast); lua_setfield(L, -2, "contrast");
  lua_pushboolean(L, r->lowres); lua_setfield(L, -2, "lowres");
  lua_pushboolean(L, r->gamma_inv); lua_setfield(L, -2, "gamma_inv");
  lua_pushboolean(L, r->gamma); lua_setfield(L, -2, "gamma");
  lua_createtable(L, 3, 0);
  for (int d = 0; d < 3; d++) { lua_pushboolean(L, r->flipped[d]); lua_rawseti(L, -2, d + 1); }
  lua_setfield(L, -2, "flipped");
}

static int l_batch(lua_State *L) {
  lu_aug_params p;
  read_params(L, 1, &p);
  lu_rng *rng = lu_lua_check_rng(L, 2);
  lu_tensor *img = check_host(L, 3, LU_F32, 5, "image batch");
  lu_tensor *seg = lua_isnoneornil(L, 4) ? NULL : check_host(L, 4, LU_I16, 5, "seg batch");
  int64_t out[3];
  lu_lua_check_ints(L, 5, out, 3, 3, "augment: output patch");
  int threads = (int)luaL_optinteger(L, 6, 2);
  int B = (int)img->shape[0], C = (int)img->shape[1], Cs = seg ? (int)seg->shape[1] : 0;
  if (seg && (seg->shape[0] != B || seg->shape[2] != img->shape[2] || seg->shape[3] != img->shape[3] || seg->shape[4] != img->shape[4]))
    return luaL_error(L, "augment.batch: seg and image batches differ in batch size or spatial shape");
  int64_t os[5] = {B, C, out[0], out[1], out[2]}, ss[5] = {B, Cs, out[0], out[1], out[2]};
  lu_tensor *oi = NULL, *oseg = NULL;
  LU_LCHECK(L, lu_tensor_new_host(&oi, LU_F32, 5, os), "augment.batch");
  lu_lua_push_tensor(L, oi);
  if (seg) {
    LU_LCHECK(L, lu_tensor_new_host(&oseg, LU_I16, 5, ss), "augment.batch");
    lu_lua_push_tensor(L, oseg);
  } else {
    lua_pushnil(L);
  }
  lu_aug_record *recs = (lu_aug_record *)calloc((size_t)B, sizeof *recs);
  if (!recs) return luaL_error(L, "augment.batch: out of memory");
  lu_status st = lu_aug_batch(&p, rng, B, C, Cs, &img->shape[2], (const float *)img->host,
                              seg ? (const int16_t *)seg->host : NULL, out, (float *)oi->host,
                              oseg ? (int16_t *)oseg->host : NULL, threads, recs);
  if (st != LU_OK) { free(recs); LU_LCHECK(L, st, "augment.batch"); }
  lua_createtable(L, B, 0);
  for (int b = 0; b < B; b++) { push_record(L, &recs[b]); lua_rawseti(L, -2, b + 1); }
  free(recs);
  return 3;
}

static int l_downsample_seg(lua_State *L) {
  lu_tensor *t = lu_lua_check_tensor(L, 1);
  if (!t->host || t->dtype != LU_I16 || t->ndim < 4)
    return luaL_error(L, "augment.downsample_seg: expected a host i16 tensor (..., Z, Y, X)");
  luaL_checktype(L, 2, LUA_TTABLE);
  double sc[3];
  for (int d = 0; d < 3; d++) { lua_geti(L, 2, d + 1); sc[d] = luaL_checknumber(L, -1); lua_pop(L, 1); }
  int64_t lead = 1;
  for (int d = 0; d < t->ndim - 3; d++) lead *= t->shape[d];
  int64_t os[3];
  int16_t *o;
  LU_LCHECK(L, lu_aug_downsample_seg((int)lead, &t->shape[t->ndim - 3], (const int16_t *)t->host, sc, os, &o),
            "augment.downsample_seg");
  int64_t shape[LU_MAX_DIMS];
  for (int d = 0; d < t->ndim - 3; d++) shape[d] = t->shape[d];
  for (int d = 0; d < 3; d++) shape[t->ndim - 3 + d] = os[d];
  lu_tensor *ot;
  lu_status st = lu_tensor_wrap_host(&ot, LU_I16, t->ndim, shape, o);
  if (st != LU_OK) { free(o); LU_LCHECK(L, st, "augment.downsample_seg"); }
  lu_lua_push_tensor(L, ot);
  return 1;
}

static lu_tensor *copy_tensor(lua_State *L, const lu_tensor *t) {
  lu_tensor *o;
  LU_LCHECK(L, lu_tensor_new_host(&o, t->dtype, t->ndim, t->shape), "augment");
  memcpy(o->host, t->host, t->bytes);
  return o;
}

static int l_gamma(lua_State *L) {
  lu_tensor *t = lu_lua_check_tensor(L, 1);
  if (!t->host || t->dtype != LU_F32) return luaL_error(L, "augment.gamma: expected a host f32 tensor");
  lu_tensor *o = copy_tensor(L, t);
  lu_aug_gamma((float *)o->host, lu_tensor_numel(o), luaL_checknumber(L, 2), lua_toboolean(L, 3), lua_toboolean(L, 4));
  lu_lua_push_tensor(L, o);
  return 1;
}

static int l_mirror(lua_State *L) {
  lu_tensor *t = lu_lua_check_tensor(L, 1);
  if (!t->host || t->ndim != 4) return luaL_error(L, "augment.mirror: expected a host (C, Z, Y, X) tensor");
  luaL_checktype(L, 2, LUA_TTABLE);
  int f[3];
  for (int d = 0; d < 3; d++) { lua_geti(L, 2, d + 1); f[d] = lua_toboolean(L, -1); lua_pop(L, 1); }
  lu_tensor *o = copy_tensor(L, t);
  lu_aug_mirror(o->host, (int)lu_dtype_size(o->dtype), (int)o->shape[0], &o->shape[1], f);
  lu_lua_push_tensor(L, o);
  return 1;
}

static int l_spatial(lua_State *L) {
  lu_tensor *img = check_host(L, 1, LU_F32, 4, "image");
  lu_tensor *seg = lua_isnoneornil(L, 2) ? NULL : check_host(L, 2, LU_I16, 4, "seg");
  int64_t out[3];
  lu_lua_check_ints(L, 3, out, 3, 3, "augment: output shape");
  luaL_checktype(L, 4, LUA_TTABLE);
  int nm = (int)luaL_len(L, 4);
  if (nm != 9 && nm != 4) return luaL_error(L, "augment.spatial: matrix must have 9 (3-D) or 4 (planar) entries");
  double A[9];
  for (int i = 0; i < nm; i++) { lua_geti(L, 4, i + 1); A[i] = luaL_checknumber(L, -1); lua_pop(L, 1); }
  if (nm == 4 && img->shape[1] != out[0]) return luaL_error(L, "augment.spatial: planar transform keeps axis Z");
  int64_t os[4] = {img->shape[0], out[0], out[1], out[2]};
  lu_tensor *oi, *oseg = NULL;
  LU_LCHECK(L, lu_tensor_new_host(&oi, LU_F32, 4, os), "augment.spatial");
  lu_lua_push_tensor(L, oi);
  if (seg) {
    int64_t ss[4] = {seg->shape[0], out[0], out[1], out[2]};
    LU_LCHECK(L, lu_tensor_new_host(&oseg, LU_I16, 4, ss), "augment.spatial");
    lu_lua_push_tensor(L, oseg);
  } else {
    lua_pushnil(L);
  }
  lu_aug_spatial((int)img->shape[0], seg ? (int)seg->shape[0] : 0, &img->shape[1], (const float *)img->host,
                 seg ? (const int16_t *)seg->host : NULL, out, A, nm == 4, (float *)oi->host,
                 oseg ? (int16_t *)oseg->host : NULL);
  return 2;
}

static int l_blur_kernel(lua_State *L) {
  float k[255];
  int n = lu_aug_blur_kernel(luaL_checknumber(L, 1), k, 255);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) { lua_pushnumber(L, k[i]); lua_rawseti(L, -2, i + 1); }
  return 1;
}

int lu_open_augment(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"batch", l_batch}, {"downsample_seg", l_downsample_seg}, {"gamma", l_gamma}, {"mirror", l_mirror},
    {"spatial", l_spatial}, {"blur_kernel", l_blur_kernel}, {NULL, NULL}};
  lua_newtable(L);
  luaL_setfuncs(L, fns, 0);
  return 1;
}
