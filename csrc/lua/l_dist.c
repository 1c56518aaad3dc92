/* lunet.core.dist: data-parallel training's collectives (csrc/dist/dist.h). Without MPI in the build, or in a
 * process no MPI launcher started, the world is one rank and every collective returns its input.
 *   init() -> size                  (idempotent; the other functions call it)
 *   compiled() -> bool, launched() -> bool
 *   rank(), size(), local_rank(), local_size(), host(), thread_ok() (MPI calls allowed from a worker thread)
 *   allreduce_mean(tensor)          host f32 tensor, in place: mean over ranks
 *   allreduce(numbers{...} [, "sum"|"max"|"min"]) -> new list   (doubles)
 *   allreduce_grads(net) -> seconds the gradient buffer of a lunet.core.net, averaged over ranks in place. With
 *                                   buckets attached (set_buckets), completes the bucketed reduction the backward
 *                                   started (dist/gradsync.h; idempotent) and returns its exposed seconds (from
 *                                   the backward's end to the averaged gradient on the device); else device ->
 *                                   host, MPI_Allreduce, host -> device, and the seconds of the allreduce
 *   set_buckets(net, bytes) -> n    gradient buckets of `bytes` (rounded down to floats; 0: none, one allreduce
 *                                   after the backward) from the next backward on; n buckets (0 in a one-rank
 *                                   world, where nothing is attached)
 *   bucket_stats(net) -> n, early, window   buckets attached, how many the last backward read before its last
 *                                   one, and the seconds the last reduction ran beside the backward
 *   bcast_flat(net, which [, root=0])   parameters (0) or momentum (2) of root copied to every rank
 *   barrier(), abort(code, msg)     abort ends every rank of the job (MPI_Abort) */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dist/dist.h"
#include "dist/gradsync.h"
#include "lua/l_common.h"
#include "lua/l_net.h"

static void need_init(lua_State *L) { LU_LCHECK(L, lu_dist_init(), "dist.init"); }

static int l_init(lua_State *L) {
  need_init(L);
  lua_pushinteger(L, lu_dist_size());
  return 1;
}
static int l_compiled(lua_State *L) { lua_pushboolean(L, lu_dist_compiled()); return 1; }
static int l_launched(lua_State *L) { lua_pushboolean(L, lu_dist_launched()); return 1; }
static int l_rank(lua_State *L) { need_init(L); lua_pushinteger(L, lu_dist_rank()); return 1; }
static int l_size(lua_State *L) { need_init(L); lua_pushinteger(L, lu_dist_size()); return 1; }
static int l_local_rank(lua_State *L) { need_init(L); lua_pushinteger(L, lu_dist_local_rank()); return 1; }
static int l_local_size(lua_State *L) { need_init(L); lua_pushinteger(L, lu_dist_local_size()); return 1; }
static int l_host(lua_State *L) { need_init(L); lua_pushstring(L, lu_dist_host()); return 1; }
static int l_thread_ok(lua_State *L) { need_init(L); lua_pushboolean(L, lu_dist_thread_ok()); return 1; }

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int l_allreduce_mean(lua_State *L) {
  need_init(L);
  lu_tensor *t = lu_lua_check_tensor(L, 1);
  if (!t->host || t->dtype != LU_F32) luaL_error(L, "dist.allreduce_mean: needs a host f32 tensor");
  double t0 = now();
  LU_LCHECK(L, lu_dist_allreduce_mean_f32(t->host, (size_t)lu_tensor_numel(t)), "dist.allreduce_mean");
  lua_pushnumber(L, now() - t0);
  return 1;
}

static int l_allreduce(lua_State *L) {
  need_init(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  static const char *const ops[] = {"sum", "max", "min", NULL};
  int op = luaL_checkoption(L, 2, "sum", ops);
  lua_Integer n = luaL_len(L, 1);
  double *v = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof(double), 0);
  for (lua_Integer i = 0; i < n; i++) {
    lua_rawgeti(L, 1, i + 1);
    v[i] = luaL_checknumber(L, -1);
    lua_pop(L, 1);
  }
  LU_LCHECK(L, lu_dist_allreduce_f64(v, (size_t)n, (lu_dist_op)op), "dist.allreduce");
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 0; i < n; i++) {
    lua_pushnumber(L, v[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* One host staging buffer for the flat gradients, reused across steps (hundreds of MB for ResEnc). */
static float *g_stage;
static size_t g_stage_n;

static float *stage(lua_State *L, size_t n) {
  if (n > g_stage_n) {
    free(g_stage);
    g_stage = malloc(n * sizeof(float));
    g_stage_n = g_stage ? n : 0;
    if (!g_stage) luaL_error(L, "dist: no memory for %d staging floats", (int)n);
  }
  return g_stage;
}

static int l_allreduce_grads(lua_State *L) {
  need_init(L);
  lu_unet *n = lu_lua_check_net(L, 1);
  if (lu_dist_size() <= 1) {
    lua_pushnumber(L, 0);
    return 1;
  }
  lu_gradsync *g = lu_gradsync_of(n);
  if (g) {
    double dt = 0;
    LU_LCHECK(L, lu_gradsync_finish(g, &dt), "dist.allreduce_grads");
    lua_pushnumber(L, dt);
    return 1;
  }
  size_t nf = lu_unet_flat_floats(n);
  float *h = stage(L, nf);
  LU_LCHECK(L, lu_unet_read_flat(n, 1, h), "dist.allreduce_grads");
  double t0 = now();
  LU_LCHECK(L, lu_dist_allreduce_mean_f32(h, nf), "dist.allreduce_grads");
  double dt = now() - t0;
  LU_LCHECK(L, lu_unet_write_flat(n, 1, h), "dist.allreduce_grads");
  lua_pushnumber(L, dt);
  return 1;
}

static int l_set_buckets(lua_State *L) {
  need_init(L);
  lu_unet *n = lu_lua_check_net(L, 1);
  lua_Integer bytes = luaL_checkinteger(L, 2);
  luaL_argcheck(L, bytes >= 0, 2, "bucket bytes must be >= 0");
  size_t nf = (size_t)bytes / sizeof(float);
  if (bytes > 0 && nf == 0) nf = 1;
  if (lu_dist_size() <= 1) nf = 0; /* one rank: the backward stays hook-less */
  LU_LCHECK(L, lu_gradsync_attach(n, nf), "dist.set_buckets");
  lu_gradsync *g = lu_gradsync_of(n);
  lua_pushinteger(L, g ? lu_gradsync_buckets(g) : 0);
  return 1;
}

static int l_bucket_stats(lua_State *L) {
  lu_gradsync *g = lu_gradsync_of(lu_lua_check_net(L, 1));
  lua_pushinteger(L, g ? lu_gradsync_buckets(g) : 0);
  lua_pushinteger(L, g ? lu_gradsync_early(g) : 0);
  lua_pushnumber(L, g ? lu_gradsync_window(g) : 0);
  return 3;
}

static int l_bcast_flat(lua_State *L) {
  need_init(L);
  lu_unet *n = lu_lua_check_net(L, 1);
  int which = (int)luaL_checkinteger(L, 2);
  int root = (int)luaL_optinteger(L, 3, 0);
  if (which < 0 || which > 2) luaL_error(L, "dist.bcast_flat: which is 0, 1 or 2");
  if (lu_dist_size() <= 1) return 0;
  size_t nf = lu_unet_flat_floats(n);
  float *h = stage(L, nf);
  if (lu_dist_rank() == root) LU_LCHECK(L, lu_unet_read_flat(n, which, h), "dist.bcast_flat");
  LU_LCHECK(L, lu_dist_bcast(h, nf * sizeof(float), root), "dist.bcast_flat");
  if (lu_dist_rank() != root) LU_LCHECK(L, lu_unet_write_flat(n, which, h), "dist.bcast_flat");
  return 0;
}

static int l_barrier(lua_State *L) {
  need_init(L);
  LU_LCHECK(L, lu_dist_barrier(), "dist.barrier");
  return 0;
}

static int l_abort(lua_State *L) {
  int code = (int)luaL_optinteger(L, 1, 1);
  const char *msg = luaL_optstring(L, 2, "aborted");
  lu_dist_abort(code, msg);
  return 0;
}

int lu_open_dist(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"init", l_init}, {"compiled", l_compiled}, {"launched", l_launched}, {"rank", l_rank}, {"size", l_size},
    {"local_rank", l_local_rank}, {"thread_ok", l_thread_ok}, {"local_size", l_local_size}, {"host", l_host},
    {"allreduce_mean", l_allreduce_mean}, {"allreduce", l_allreduce}, {"allreduce_grads", l_allreduce_grads},
    {"set_buckets", l_set_buckets}, {"bucket_stats", l_bucket_stats},
    {"bcast_flat", l_bcast_flat}, {"barrier", l_barrier}, {"abort", l_abort}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
