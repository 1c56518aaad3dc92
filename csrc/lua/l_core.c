/* luaopen_lunet_core: devices, the Tensor userdata, and the generated list of submodules. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cl/blas.h"
#include "cl/device.h"
#include "cl/pool.h"
#include "cl/profile.h"
#include "cl/program.h"
#include "lua/l_common.h"

#define LU_MODULE(name) int lu_open_##name(lua_State *L);
#include "lu_modules.h"
#undef LU_MODULE

static int l_devices(lua_State *L) {
  int n;
  LU_LCHECK(L, lu_devices_count(&n), "devices");
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    const lu_device *d;
    LU_LCHECK(L, lu_device_info(i, &d), "devices");
    lua_createtable(L, 0, 12);
    lua_pushinteger(L, i); lua_setfield(L, -2, "index");
    lua_pushinteger(L, d->platform_index); lua_setfield(L, -2, "platform_index");
    lua_pushinteger(L, d->platform_device); lua_setfield(L, -2, "platform_device");
    lua_pushstring(L, d->name); lua_setfield(L, -2, "name");
    lua_pushstring(L, d->vendor); lua_setfield(L, -2, "vendor");
    lua_pushstring(L, d->platform_name); lua_setfield(L, -2, "platform");
    lua_pushstring(L, d->driver); lua_setfield(L, -2, "driver");
    lua_pushstring(L, d->version); lua_setfield(L, -2, "version");
    lua_pushstring(L, d->is_gpu ? "gpu" : d->is_cpu ? "cpu" : "other"); lua_setfield(L, -2, "type");
    lua_pushinteger(L, (lua_Integer)d->global_mem); lua_setfield(L, -2, "global_mem");
    lua_pushinteger(L, (lua_Integer)d->local_mem); lua_setfield(L, -2, "local_mem");
    lua_pushinteger(L, (lua_Integer)d->max_alloc); lua_setfield(L, -2, "max_alloc");
    lua_pushinteger(L, d->compute_units); lua_setfield(L, -2, "compute_units");
    lua_pushboolean(L, d->has_fp16); lua_setfield(L, -2, "fp16");
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int l_default_device(lua_State *L) {
  lu_device *d = lu_lua_opt_device(L, 1);
  lua_pushinteger(L, d->index);
  return 1;
}

/* now(): monotonic wall-clock seconds, for timing and progress bars. */
static int l_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
  return 1;
}

static int l_finish(lua_State *L) {
  LU_LCHECK(L, lu_device_finish(lu_lua_opt_device(L, 1)), "finish");
  return 0;
}

/* kernel_source(file) -> the source of kernels/<file> with its includes expanded, as it is built */
static int l_kernel_source(lua_State *L) {
  char *src = NULL;
  LU_LCHECK(L, lu_kernel_source(luaL_checkstring(L, 1), &src), "kernel_source");
  lua_pushstring(L, src);
  free(src);
  return 1;
}

static int l_cache_stats(lua_State *L) {
  lu_progcache_stats s = lu_progcache_get_stats();
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, s.compiles); lua_setfield(L, -2, "compiles");
  lua_pushinteger(L, s.disk_hits); lua_setfield(L, -2, "disk_hits");
  lua_pushinteger(L, s.memory_hits); lua_setfield(L, -2, "memory_hits");
  return 1;
}

/* profile([reset]) -> { {name=, count=, seconds=}, ... } per kernel (LUNET_PROFILE=1), then optionally cleared */
static int l_profile(lua_State *L) {
  int reset = lua_toboolean(L, 1); /* before the result table takes index 1 when called without arguments */
  int n;
  const lu_profile_entry *e = lu_profile_entries(&n);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, e[i].name); lua_setfield(L, -2, "name");
    lua_pushinteger(L, e[i].count); lua_setfield(L, -2, "count");
    lua_pushnumber(L, e[i].seconds); lua_setfield(L, -2, "seconds");
    lua_rawseti(L, -2, i + 1);
  }
  if (reset) lu_profile_reset();
  return 1;
}

/* host_waits([reset]) -> { launches = kernel launches and BLAS calls since the last reset,
 *   waits = { {what=, launches_before=}, ... } } (the first LU_WAIT_LOG blocking host waits), then optionally
 *   cleared. A training step that never waits for the host shows every wait after its last launch. */
static int l_host_waits(lua_State *L) {
  int reset = lua_toboolean(L, 1);
  int n;
  const lu_host_wait *w;
  long launches = lu_host_waits(&n, &w);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, launches); lua_setfield(L, -2, "launches");
  lua_pushinteger(L, n); lua_setfield(L, -2, "count");
  int kept = n < LU_WAIT_LOG ? n : LU_WAIT_LOG;
  lua_createtable(L, kept, 0);
  for (int i = 0; i < kept; i++) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, w[i].what); lua_setfield(L, -2, "what");
    lua_pushinteger(L, w[i].launches_before); lua_setfield(L, -2, "launches_before");
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "waits");
  if (reset) lu_host_waits_reset();
  return 1;
}

/* host_memory([reset]) -> {live=, peak=} bytes of host tensors; reset: the peak restarts from live */
static int l_host_memory(lua_State *L) {
  if (lua_toboolean(L, 1)) lu_host_mem_reset_peak();
  int64_t live, peak;
  lu_host_mem(&live, &peak);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, (lua_Integer)live); lua_setfield(L, -2, "live");
  lua_pushinteger(L, (lua_Integer)peak); lua_setfield(L, -2, "peak");
  return 1;
}

static int l_pool_stats(lua_State *L) {
  lu_pool_stats s = lu_pool_get_stats(lu_lua_opt_device(L, 1));
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, (lua_Integer)s.in_use); lua_setfield(L, -2, "in_use");
  lua_pushinteger(L, (lua_Integer)s.cached); lua_setfield(L, -2, "cached");
  lua_pushinteger(L, (lua_Integer)s.peak); lua_setfield(L, -2, "peak");
  lua_pushinteger(L, s.allocs); lua_setfield(L, -2, "allocs");
  lua_pushinteger(L, s.reuses); lua_setfield(L, -2, "reuses");
  return 1;
}

static int l_blas_tuning(lua_State *L) {
  lu_device *d = lu_lua_opt_device(L, 1);
  char path[1024];
  lu_blas_tuning_path(d, path, sizeof path);
  lua_pushstring(L, lu_blas_tuning_source(d));
  lua_pushstring(L, path);
  return 2;
}

static lu_dtype opt_dtype(lua_State *L, int idx, const char *field, lu_dtype def) {
  lu_dtype dt = def;
  if (lua_istable(L, idx)) {
    lua_getfield(L, idx, field);
    if (!lua_isnil(L, -1)) LU_LCHECK(L, lu_dtype_parse(luaL_checkstring(L, -1), &dt), "tensor");
    lua_pop(L, 1);
  } else if (lua_type(L, idx) == LUA_TSTRING) {
    LU_LCHECK(L, lu_dtype_parse(lua_tostring(L, idx), &dt), "tensor");
  }
  return dt;
}

/* Device from opts.device: nil/false = host (returns NULL), true = default, integer = index. */
static lu_device *opt_device(lua_State *L, int idx) {
  if (!lua_istable(L, idx)) return NULL;
  lua_getfield(L, idx, "device");
  lu_device *dev = NULL;
  if (lua_toboolean(L, -1)) {
    if (lua_isboolean(L, -1)) LU_LCHECK(L, lu_device_default(&dev), "tensor");
    else LU_LCHECK(L, lu_device_get((int)luaL_checkinteger(L, -1), &dev), "tensor");
  }
  lua_pop(L, 1);
  return dev;
}

/* Infers the shape of a nested table (rectangular). */
static int nested_shape(lua_State *L, int idx, int64_t *shape) {
  int nd = 0;
  lua_pushvalue(L, idx);
  while (lua_istable(L, -1)) {
    if (nd == LU_MAX_DIMS) luaL_error(L, "tensor: more than %d nesting levels", LU_MAX_DIMS);
    shape[nd++] = (int64_t)lua_rawlen(L, -1);
    if (lua_rawlen(L, -1) == 0) break;
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
  }
  lua_pop(L, 1);
  return nd;
}

static void fill_nested(lua_State *L, int idx, lu_tensor *t, int depth, int64_t *pos) {
  if (depth >= LU_MAX_DIMS) return;
  int64_t n = (int64_t)lua_rawlen(L, idx);
  if (n != t->shape[depth]) luaL_error(L, "tensor: ragged nested table (axis %d has %d and %d entries)", depth, (int)t->shape[depth], (int)n);
  for (int64_t i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    if (depth + 1 < t->ndim) {
      if (!lua_istable(L, -1)) luaL_error(L, "tensor: ragged nested table at depth %d", depth + 1);
      fill_nested(L, lua_gettop(L), t, depth + 1, pos);
    } else {
      int isnum;
      lua_Number v = lua_tonumberx(L, -1, &isnum);
      if (!isnum) luaL_error(L, "tensor: element %d is not a number", (int)(*pos + 1));
      lu_host_set(t, (*pos)++, v);
    }
    lua_pop(L, 1);
  }
}

/* The host tensor on top of the stack (a Tensor userdata, so a Lua error never leaks it) stays there, or is
 * replaced by its copy on dev (the host copy freed at once). */
static void host_or_move(lua_State *L, lu_device *dev) {
  if (!dev) return;
  lu_tensor **b = luaL_checkudata(L, -1, LU_TENSOR_MT), *d;
  LU_LCHECK(L, lu_tensor_to_device(*b, dev, &d), "tensor");
  lu_tensor_free(*b);
  *b = NULL;
  lua_pop(L, 1);
  lu_lua_push_tensor(L, d);
}

/* tensor(data, {shape=, dtype=, device=}): data is a nested table, or a flat table with shape. */
static int l_tensor(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lu_dtype dt = opt_dtype(L, 2, "dtype", LU_F32);
  lu_device *dev = opt_device(L, 2);
  int64_t shape[LU_MAX_DIMS];
  int nd = -1;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "shape");
    if (!lua_isnil(L, -1)) nd = lu_lua_check_shape(L, lua_gettop(L), shape);
    lua_pop(L, 1);
  }
  lu_tensor *h;
  if (nd >= 0) { /* flat data */
    int64_t n = lu_shape_numel(nd, shape);
    if ((int64_t)lua_rawlen(L, 1) != n)
      return luaL_error(L, "tensor: %d values for a shape of %d elements", (int)lua_rawlen(L, 1), (int)n);
    LU_LCHECK(L, lu_tensor_new_host(&h, dt, nd, shape), "tensor");
    lu_lua_push_tensor(L, h);
    for (int64_t i = 0; i < n; i++) {
      lua_rawgeti(L, 1, i + 1);
      int isnum;
      lua_Number v = lua_tonumberx(L, -1, &isnum);
      if (!isnum) return luaL_error(L, "tensor: element %d is not a number", (int)(i + 1));
      lu_host_set(h, i, v);
      lua_pop(L, 1);
    }
  } else {
    nd = nested_shape(L, 1, shape);
    LU_LCHECK(L, lu_tensor_new_host(&h, dt, nd, shape), "tensor");
    lu_lua_push_tensor(L, h); /* owned by Lua from here: a ragged table's error does not leak it */
    int64_t pos = 0;
    if (lu_tensor_numel(h) > 0) fill_nested(L, 1, h, 0, &pos);
  }
  host_or_move(L, dev);
  return 1;
}

/* zeros(shape, dtype?, device?) */
static int l_zeros(lua_State *L) {
  int64_t shape[LU_MAX_DIMS];
  int nd = lu_lua_check_shape(L, 1, shape);
  lu_dtype dt = LU_F32;
  if (!lua_isnoneornil(L, 2)) LU_LCHECK(L, lu_dtype_parse(luaL_checkstring(L, 2), &dt), "zeros");
  lu_device *dev = NULL; /* before the host tensor: a device error must not leak it */
  if (lua_toboolean(L, 3)) {
    if (lua_isboolean(L, 3)) LU_LCHECK(L, lu_device_default(&dev), "zeros");
    else LU_LCHECK(L, lu_device_get((int)luaL_checkinteger(L, 3), &dev), "zeros");
  }
  lu_tensor *h;
  LU_LCHECK(L, lu_tensor_new_host(&h, dt, nd, shape), "zeros");
  lu_lua_push_tensor(L, h);
  host_or_move(L, dev);
  return 1;
}

/* from_bytes(string, shape, dtype) -> host tensor */
static int l_from_bytes(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  int64_t shape[LU_MAX_DIMS];
  int nd = lu_lua_check_shape(L, 2, shape);
  lu_dtype dt;
  LU_LCHECK(L, lu_dtype_parse(luaL_optstring(L, 3, "f32"), &dt), "from_bytes");
  lu_tensor *h;
  LU_LCHECK(L, lu_tensor_new_host(&h, dt, nd, shape), "from_bytes");
  if (h->bytes != len) {
    size_t want = h->bytes;
    lu_tensor_free(h);
    return luaL_error(L, "from_bytes: %d bytes given, shape and dtype need %d", (int)len, (int)want);
  }
  memcpy(h->host, s, len);
  lu_lua_push_tensor(L, h);
  return 1;
}

/* ---- Tensor methods ---- */

static lu_tensor *host_view(lua_State *L, lu_tensor *t, lu_tensor **tmp) {
  *tmp = NULL;
  if (t->host) return t;
  LU_LCHECK(L, lu_tensor_to_host(t, tmp), "tensor download");
  return *tmp;
}

static void push_value(lua_State *L, const lu_tensor *t, int64_t i) {
  double v = lu_host_get(t, i);
  if (t->dtype == LU_F32 || t->dtype == LU_F64 || t->dtype == LU_F16) lua_pushnumber(L, v);
  else lua_pushinteger(L, (lua_Integer)v);
}

static int m_flat(lua_State *L) {
  lu_tensor *tmp, *t = host_view(L, lu_lua_check_tensor(L, 1), &tmp);
  int64_t n = lu_tensor_numel(t);
  lua_createtable(L, (int)n, 0);
  for (int64_t i = 0; i < n; i++) {
    push_value(L, t, i);
    lua_rawseti(L, -2, i + 1);
  }
  lu_tensor_free(tmp);
  return 1;
}

static void push_nested(lua_State *L, const lu_tensor *t, int depth, int64_t *pos) {
  if (depth >= LU_MAX_DIMS) return;
  lua_createtable(L, (int)t->shape[depth], 0);
  for (int64_t i = 0; i < t->shape[depth]; i++) {
    if (depth + 1 < t->ndim) push_nested(L, t, depth + 1, pos);
    else push_value(L, t, (*pos)++);
    lua_rawseti(L, -2, i + 1);
  }
}

static int m_to_table(lua_State *L) {
  lu_tensor *tmp, *t = host_view(L, lu_lua_check_tensor(L, 1), &tmp);
  int64_t pos = 0;
  if (t->ndim == 0) push_value(L, t, 0);
  else push_nested(L, t, 0, &pos);
  lu_tensor_free(tmp);
  return 1;
}

static int m_bytes(lua_State *L) {
  lu_tensor *tmp, *t = host_view(L, lu_lua_check_tensor(L, 1), &tmp);
  lua_pushlstring(L, (const char *)t->host, t->bytes);
  lu_tensor_free(tmp);
  return 1;
}

static int m_to_device(lua_State *L) {
  lu_tensor *t = lu_lua_check_tensor(L, 1), *d;
  lu_device *dev = lu_lua_opt_device(L, 2);
  LU_LCHECK(L, lu_tensor_to_device(t, dev, &d), "to_device");
  lu_lua_push_tensor(L, d);
  return 1;
}

static int m_to_host(lua_State *L) {
  lu_tensor *t = lu_lua_check_tensor(L, 1), *h;
  LU_LCHECK(L, lu_tensor_to_host(t, &h), "to_host");
  lu_lua_push_tensor(L, h);
  return 1;
}

static int m_clone(lua_State *L) {
  lu_tensor *t = lu_lua_check_tensor(L, 1), *c;
  if (t->host) LU_LCHECK(L, lu_tensor_to_host(t, &c), "clone");
  else LU_LCHECK(L, lu_tensor_to_device(t, t->dev, &c), "clone");
  lu_lua_push_tensor(L, c);
  return 1;
}

static int m_astype(lua_State *L) {
  lu_tensor *t = lu_lua_check_tensor(L, 1), *c;
  lu_dtype dt;
  LU_LCHECK(L, lu_dtype_parse(luaL_checkstring(L, 2), &dt), "astype");
  if (!t->host) return luaL_error(L, "astype: only host tensors (call :to_host() first)");
  LU_LCHECK(L, lu_tensor_convert_host(t, dt, &c), "astype");
  lu_lua_push_tensor(L, c);
  return 1;
}

/* reshape(shape): a new tensor object sharing nothing: host data is copied, device data too. */
static int m_reshape(lua_State *L) {
  lu_tensor *t = lu_lua_check_tensor(L, 1), *c;
  int64_t shape[LU_MAX_DIMS];
  int nd = lu_lua_check_shape(L, 2, shape);
  if (lu_shape_numel(nd, shape) != lu_tensor_numel(t)) return luaL_error(L, "reshape: element count changes");
  if (t->host) LU_LCHECK(L, lu_tensor_to_host(t, &c), "reshape");
  else LU_LCHECK(L, lu_tensor_to_device(t, t->dev, &c), "reshape");
  lu_status st = lu_tensor_reshape(c, nd, shape);
  if (st != LU_OK) { lu_tensor_free(c); lu_lua_raise(L, st, "reshape"); }
  lu_lua_push_tensor(L, c);
  return 1;
}

static int m_numel(lua_State *L) {
  lua_pushinteger(L, lu_tensor_numel(lu_lua_check_tensor(L, 1)));
  return 1;
}

/* get(i) / set(i, v): 1-based flat index on host tensors. */
static int m_get(lua_State *L) {
  lu_tensor *t = lu_lua_check_tensor(L, 1);
  lua_Integer i = luaL_checkinteger(L, 2);
  if (!t->host) return luaL_error(L, "get: device tensor (call :to_host() first)");
  luaL_argcheck(L, i >= 1 && i <= lu_tensor_numel(t), 2, "index out of range");
  push_value(L, t, i - 1);
  return 1;
}

static int m_set(lua_State *L) {
  lu_tensor *t = lu_lua_check_tensor(L, 1);
  lua_Integer i = luaL_checkinteger(L, 2);
  if (!t->host) return luaL_error(L, "set: device tensor (call :to_host() first)");
  luaL_argcheck(L, i >= 1 && i <= lu_tensor_numel(t), 2, "index out of range");
  lu_host_set(t, i - 1, luaL_checknumber(L, 3));
  return 0;
}

static int m_free(lua_State *L) {
  lu_tensor **b = luaL_checkudata(L, 1, LU_TENSOR_MT);
  lu_tensor_free(*b);
  *b = NULL;
  return 0;
}

static int m_tostring(lua_State *L) {
  lu_tensor **b = luaL_checkudata(L, 1, LU_TENSOR_MT);
  if (!*b) { lua_pushstring(L, "lunet.Tensor(freed)"); return 1; }
  char s[128];
  lu_tensor *t = *b;
  lua_pushfstring(L, "lunet.Tensor(%s, %s, %s)", lu_dtype_name(t->dtype), lu_shape_str(t->ndim, t->shape, s, sizeof s),
                  t->host ? "host" : t->dev->name);
  return 1;
}

static const luaL_Reg tensor_methods[] = {
  {"flat", m_flat}, {"to_table", m_to_table}, {"bytes", m_bytes}, {"to_device", m_to_device},
  {"to_host", m_to_host}, {"clone", m_clone}, {"astype", m_astype}, {"reshape", m_reshape},
  {"numel", m_numel}, {"get", m_get}, {"set", m_set}, {"free", m_free}, {NULL, NULL}};

static int m_index(lua_State *L) {
  lu_tensor **b = luaL_checkudata(L, 1, LU_TENSOR_MT);
  const char *k = luaL_checkstring(L, 2);
  lu_tensor *t = *b;
  if (t && strcmp(k, "shape") == 0) { lu_lua_push_shape(L, t->ndim, t->shape); return 1; }
  if (t && strcmp(k, "dtype") == 0) { lua_pushstring(L, lu_dtype_name(t->dtype)); return 1; }
  if (t && strcmp(k, "ndim") == 0) { lua_pushinteger(L, t->ndim); return 1; }
  if (t && strcmp(k, "device") == 0) { if (t->dev) lua_pushinteger(L, t->dev->index); else lua_pushnil(L); return 1; }
  if (t && strcmp(k, "on_device") == 0) { lua_pushboolean(L, t->dev != NULL); return 1; }
  luaL_getmetatable(L, LU_TENSOR_MT);
  lua_getfield(L, -1, "methods");
  lua_getfield(L, -1, k);
  return 1;
}

/* shutdown(): finishes all device work and releases OpenCL (queues, programs, contexts); afterwards device work
 * fails with a message. The module's close does the same (see luaopen_lunet_core), as does exit. Idempotent. */
static int l_shutdown(lua_State *L) {
  (void)L;
  lu_cl_shutdown();
  return 0;
}

/* os.exit, wrapped: a script that exits without closing its state (os.exit(code)) skips every __gc, and the
 * atexit handler runs only after the handlers registered later than it, among them the compiler's statics that
 * a training step still running on core.async's worker needs. So the teardown runs here first. */
static int l_exit(lua_State *L) {
  lu_cl_shutdown();
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 0);
  return 0;
}

static int l_is_shut_down(lua_State *L) {
  lua_pushboolean(L, lu_cl_is_shut_down());
  return 1;
}

static const luaL_Reg core_fns[] = {
  {"shutdown", l_shutdown}, {"is_shut_down", l_is_shut_down},
  {"devices", l_devices}, {"now", l_now}, {"default_device", l_default_device}, {"finish", l_finish},
  {"cache_stats", l_cache_stats}, {"kernel_source", l_kernel_source}, {"pool_stats", l_pool_stats}, {"host_memory", l_host_memory}, {"profile", l_profile}, {"host_waits", l_host_waits}, {"blas_tuning", l_blas_tuning},
  {"tensor", l_tensor}, {"zeros", l_zeros}, {"from_bytes", l_from_bytes}, {NULL, NULL}};

#define LU_SENTINEL "lunet.core.sentinel"

int luaopen_lunet_core(lua_State *L) {
  /* One sentinel per state, kept in the registry: it is finalised when the state closes (lua_close, os.exit(c, true)),
   * after the tensors and networks made after it, and then shuts OpenCL down before the C libraries are unloaded.
   * Loading the module again (busted insulates package.loaded per file) keeps the first sentinel. */
  if (lua_getfield(L, LUA_REGISTRYINDEX, LU_SENTINEL) == LUA_TNIL) {
    lua_newuserdatauv(L, 1, 0);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_shutdown);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, LU_SENTINEL);
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, LU_TENSOR_MT)) {
    lua_pushcfunction(L, m_free); lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, m_tostring); lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, m_index); lua_setfield(L, -2, "__index");
    luaL_newlib(L, tensor_methods);
    lua_setfield(L, -2, "methods");
  }
  lua_pop(L, 1);
  if (lua_getglobal(L, "os") == LUA_TTABLE) {
    if (lua_getfield(L, -1, "exit") == LUA_TFUNCTION && lua_tocfunction(L, -1) != l_exit) {
      lua_pushcclosure(L, l_exit, 1);
      lua_setfield(L, -2, "exit");
    } else {
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  luaL_newlib(L, core_fns);
  luaL_getmetatable(L, LU_TENSOR_MT);
  lua_getfield(L, -1, "methods");
  lua_setfield(L, -3, "Tensor");
  lua_pop(L, 1);
#define LU_MODULE(name) lu_open_##name(L); lua_setfield(L, -2, #name);
#include "lu_modules.h"
#undef LU_MODULE
  return 1;
}
