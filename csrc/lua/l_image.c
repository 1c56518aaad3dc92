/* lunet.core.image: image files as host tensors plus ITK-convention geometry.
 *   image.read(path) -> {data = Tensor (C, Z, Y, X), spacing = {x, y, z}, origin = {x, y, z},
 *                        direction = {9, row-major}, sdim = 2 | 3}
 *   image.write(path, tensor, geom)   geom: {spacing=, origin=, direction=, sdim=} (all optional)
 *   image.seg_cast(tensor) -> new tensor as u8 when max < 255, else u16 (nnU-Net's write_seg rule)
 * The format is chosen by the file ending (.nii, .nii.gz, .tif, .tiff, .png). */
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <string.h>

#include "img/image.h"
#include "lua/l_common.h"

/* geometry[key], when present, as exactly n numbers */
static void opt_doubles(lua_State *L, int tbl, const char *key, double *v, int n) {
  if (lua_getfield(L, tbl, key) != LUA_TNIL) {
    char what[64];
    snprintf(what, sizeof what, "image.write: geometry field '%s'", key);
    lu_lua_check_numbers(L, -1, v, n, n, what);
  }
  lua_pop(L, 1);
}

static int l_read(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lu_image img;
  LU_LCHECK(L, lu_image_read(path, &img), "image.read");
  lua_createtable(L, 0, 5);
  lu_lua_push_tensor(L, img.data); /* takes ownership */
  img.data = NULL;
  lua_setfield(L, -2, "data");
  lu_lua_push_numbers(L, img.spacing, 3);
  lua_setfield(L, -2, "spacing");
  lu_lua_push_numbers(L, img.header_spacing, 3);
  lua_setfield(L, -2, "header_spacing");
  lu_lua_push_numbers(L, img.origin, 3);
  lua_setfield(L, -2, "origin");
  lu_lua_push_numbers(L, img.direction, 9);
  lua_setfield(L, -2, "direction");
  lua_pushinteger(L, img.sdim);
  lua_setfield(L, -2, "sdim");
  return 1;
}

static int l_write(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lu_tensor *t = lu_lua_check_tensor(L, 2);
  lu_image img;
  lu_image_init(&img);
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    opt_doubles(L, 3, "spacing", img.spacing, 3);
    opt_doubles(L, 3, "origin", img.origin, 3);
    opt_doubles(L, 3, "direction", img.direction, 9);
    if (lua_getfield(L, 3, "sdim") != LUA_TNIL) img.sdim = (int)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
  }
  lu_tensor *host = NULL;
  if (!t->host) {
    LU_LCHECK(L, lu_tensor_to_host(t, &host), "image.write");
    img.data = host;
  } else {
    img.data = t;
  }
  lu_status st = lu_image_write(path, &img);
  if (host) lu_tensor_free(host);
  LU_LCHECK(L, st, "image.write");
  return 0;
}

static int l_seg_cast(lua_State *L) {
  lu_tensor *t = lu_lua_check_tensor(L, 1);
  if (!t->host) return luaL_error(L, "image.seg_cast: only host tensors (call :to_host() first)");
  int64_t n = lu_tensor_numel(t);
  double mx = -1.0 / 0.0;
  for (int64_t i = 0; i < n; i++) {
    double v = lu_host_get(t, i);
    if (v > mx) mx = v;
  }
  lu_tensor *out = NULL;
  LU_LCHECK(L, lu_tensor_convert_host(t, mx < 255 ? LU_U8 : LU_U16, &out), "image.seg_cast");
  lu_lua_push_tensor(L, out);
  return 1;
}

int lu_open_image(lua_State *L) {
  static const luaL_Reg fns[] = {{"read", l_read}, {"write", l_write}, {"seg_cast", l_seg_cast}, {NULL, NULL}};
  lua_newtable(L);
  lu_lua_setfuncs(L, fns);
  return 1;
}
