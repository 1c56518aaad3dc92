/* lunet.core.tune: the per-device kernel tunables (cl/tunables.h) by name.
 *
 *   get(name [, device])          -> value: a number, a value name ("gpu", "gemm") or "auto"
 *   set(name, value|nil [, device])  sets the run-time value (nil: back to file / defaults)
 *   name may be "name@key": the value for one key (lu_tune_keyed; the implicit GEMM's tile per shape)
 *   class([device])               -> "cpu" | "gpu": the class kernels are chosen for
 *   list([device])                -> { {name=, value=, source=, doc=, values=}, ... }
 *   reset([device])                  clears every run-time value
 *   path([device]) -> the tunables file; reload([device]) re-reads it; save([device]) writes the
 *   run-time values over the file's into it (what `lunet tune --kernels` keeps).
 * device: an index (lunet.devices()) or nil for the default device. */
#include "cl/tunables.h"
#include "lua/l_common.h"

static lu_tune_id check_name(lua_State *L, int idx, char *keybuf, const char **key) {
  lu_tune_id id;
  LU_LCHECK(L, lu_tune_find_keyed(luaL_checkstring(L, idx), &id, keybuf, LU_TUNE_KEY_MAX, key), "tune");
  return id;
}

static void push_value(lua_State *L, lu_tune_id id, int v) {
  if (v != LU_TUNE_AUTO && !lu_tune_values(id)) {
    lua_pushinteger(L, v);
    return;
  }
  char buf[64];
  lu_tune_format(id, v, buf, sizeof buf);
  lua_pushstring(L, buf);
}

static int l_get(lua_State *L) {
  char keybuf[LU_TUNE_KEY_MAX];
  const char *key;
  lu_tune_id id = check_name(L, 1, keybuf, &key);
  lu_device *dev = lu_lua_opt_device(L, 2);
  push_value(L, id, key ? lu_tune_keyed(dev, id, key) : lu_tune(dev, id));
  return 1;
}

static int l_set(lua_State *L) {
  char keybuf[LU_TUNE_KEY_MAX];
  const char *key;
  lu_tune_id id = check_name(L, 1, keybuf, &key);
  lu_device *dev = lu_lua_opt_device(L, 3);
  int v = 0, unset = lua_isnoneornil(L, 2);
  if (lua_isinteger(L, 2)) v = (int)lua_tointeger(L, 2);
  else if (lua_type(L, 2) == LUA_TSTRING) LU_LCHECK(L, lu_tune_parse(id, lua_tostring(L, 2), &v), "tune.set");
  else if (!unset) return luaL_argerror(L, 2, "an integer, a value name, 'auto' or nil");
  LU_LCHECK(L, key ? lu_tune_set_keyed(dev, id, key, v, unset) : lu_tune_set(dev, id, v, unset), "tune.set");
  return 0;
}

static int l_class(lua_State *L) {
  lua_pushstring(L, lu_tune_class(lu_lua_opt_device(L, 1)) == LU_CLASS_CPU ? "cpu" : "gpu");
  return 1;
}

/* One entry of list(): {name=, value=, source=, doc=, values=}, the name already on the stack. */
static void push_entry(lua_State *L, lu_tune_id id, int value, lu_tune_layer from) {
  lua_createtable(L, 0, 5);
  lua_insert(L, -2);
  lua_setfield(L, -2, "name");
  push_value(L, id, value); lua_setfield(L, -2, "value");
  lua_pushstring(L, lu_tune_layer_name(from)); lua_setfield(L, -2, "source");
  lua_pushstring(L, lu_tune_doc(id)); lua_setfield(L, -2, "doc");
  if (lu_tune_values(id)) { lua_pushstring(L, lu_tune_values(id)); lua_setfield(L, -2, "values"); }
}

static int l_list(lua_State *L) {
  lu_device *dev = lu_lua_opt_device(L, 1);
  lua_createtable(L, LU_TUNE_COUNT, 0);
  for (int i = 0; i < LU_TUNE_COUNT; i++) {
    lu_tune_id id = (lu_tune_id)i;
    lua_pushstring(L, lu_tune_name(id));
    push_entry(L, id, lu_tune(dev, id), lu_tune_source(dev, id));
    lua_rawseti(L, -2, i + 1);
  }
  /* then the keyed values in effect, named "name@key" */
  lu_tune_id id;
  const char *key;
  int v;
  lu_tune_layer from;
  for (int i = 0; lu_tune_keyed_entry(dev, i, &id, &key, &v, &from); i++) {
    lua_pushfstring(L, "%s@%s", lu_tune_name(id), key);
    push_entry(L, id, v, from);
    lua_rawseti(L, -2, LU_TUNE_COUNT + i + 1);
  }
  return 1;
}

static int l_reset(lua_State *L) {
  lu_tune_reset(lu_lua_opt_device(L, 1));
  return 0;
}

static int l_path(lua_State *L) {
  char buf[4096];
  lu_tune_path(lu_lua_opt_device(L, 1), buf, sizeof buf);
  lua_pushstring(L, buf);
  return 1;
}

static int l_reload(lua_State *L) {
  LU_LCHECK(L, lu_tune_reload(lu_lua_opt_device(L, 1)), "tune.reload");
  return 0;
}

static int l_save(lua_State *L) {
  lu_device *dev = lu_lua_opt_device(L, 1);
  LU_LCHECK(L, lu_tune_save(dev), "tune.save");
  return l_path(L);
}

int lu_open_tune(lua_State *L) {
  static const luaL_Reg fns[] = {{"get", l_get},     {"set", l_set},   {"class", l_class},
                                 {"list", l_list},   {"reset", l_reset}, {"path", l_path},
                                 {"reload", l_reload}, {"save", l_save}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
