/* lunet.core.conv: convolutions and transposed convolutions on device tensors, plus a naive
 * double-precision host reference (ref_*) that specs compare against.
 *
 *   fwd(x, w, b|nil, y, opts)            -> y       opts: {k=, stride=, pad=} (numbers or per-axis tables)
 *   bwd_data(dy, w, dx, opts)            -> dx
 *   bwd_weight(x, dy, dw, db|nil, opts)  -> dw      opts.accumulate: add into dw/db
 *   T_fwd / T_bwd_data / T_bwd_weight: transposed conv, kernel == stride (opts.stride or w's kernel)
 *   out_shape(x_shape, cout, opts), T_out_shape(x_shape, cout, opts), flops(x_shape, cout, opts[, transposed])
 *   ref_fwd(x, w, b|nil, opts[, transposed]) -> f64 host y; ref_bwd_data(dy, w, x_shape, opts[, transposed]);
 *   ref_bwd_weight(x, dy, opts[, transposed]) -> f64 host dw, db
 * Without k in opts the kernel is taken from w's shape; the default padding is (k - 1) / 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/l_common.h"
#include "ops/conv.h"

static void opt_axes(lua_State *L, int idx, const char *key, int nsp, int *out, int dflt, int *given) {
  *given = 0;
  for (int i = 0; i < 3; i++) out[i] = dflt;
  if (!lua_istable(L, idx)) return;
  lua_getfield(L, idx, key);
  if (lua_isinteger(L, -1)) {
    for (int i = 0; i < nsp; i++) out[i] = (int)lua_tointeger(L, -1);
    *given = 1;
  } else if (lua_istable(L, -1)) {
    if ((int)lua_rawlen(L, -1) != nsp) luaL_error(L, "conv: opts.%s needs %d entries", key, nsp);
    for (int i = 0; i < nsp; i++) {
      lua_rawgeti(L, -1, i + 1);
      out[i] = (int)luaL_checkinteger(L, -1);
      lua_pop(L, 1);
    }
    *given = 1;
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "conv: opts.%s must be an integer or a table of %d integers", key, nsp);
  }
  lua_pop(L, 1);
}

/* Descriptor from opts; nsp from the tensor ndim; kernel from the weight's shape when not given. */
static lu_conv_desc make_desc(lua_State *L, int opts, int ndim, const int64_t *wshape, int transposed) {
  lu_conv_desc d;
  memset(&d, 0, sizeof d);
  d.nsp = ndim - 2;
  if (d.nsp != 2 && d.nsp != 3) luaL_error(L, "conv: tensors need 4 or 5 dims (N, C, [Z,] Y, X), got %d", ndim);
  int given;
  int k[3], s[3], p[3];
  opt_axes(L, opts, "k", d.nsp, k, 1, &given);
  if (!given && wshape)
    for (int i = 0; i < d.nsp; i++) k[i] = (int)wshape[2 + i];
  opt_axes(L, opts, "stride", d.nsp, s, 1, &given);
  if (transposed && !given)
    for (int i = 0; i < d.nsp; i++) s[i] = k[i];
  if (transposed) {
    LU_LCHECK(L, lu_convT_desc_init(&d, d.nsp, s), "conv");
    return d;
  }
  LU_LCHECK(L, lu_conv_desc_init(&d, d.nsp, k, s), "conv");
  opt_axes(L, opts, "pad", d.nsp, p, 0, &given);
  if (given) {
    for (int i = 0; i < d.nsp; i++) d.pad[i] = p[i];
    LU_LCHECK(L, lu_conv_desc_check(&d), "conv");
  }
  return d;
}

static int opt_accumulate(lua_State *L, int idx) {
  if (!lua_istable(L, idx)) return 0;
  lua_getfield(L, idx, "accumulate");
  int a = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return a;
}

static lu_tensor *opt_tensor(lua_State *L, int idx) { return lua_isnoneornil(L, idx) ? NULL : lu_lua_check_tensor(L, idx); }

static int l_fwd(lua_State *L) {
  lu_tensor *x = lu_lua_check_tensor(L, 1), *w = lu_lua_check_tensor(L, 2), *b = opt_tensor(L, 3),
            *y = lu_lua_check_tensor(L, 4);
  lu_conv_desc d = make_desc(L, 5, x->ndim, w->shape, 0);
  LU_LCHECK(L, lu_conv_fwd(&d, x, w, b, y), "conv.fwd");
  lua_settop(L, 4);
  return 1;
}

static int l_bwd_data(lua_State *L) {
  lu_tensor *dy = lu_lua_check_tensor(L, 1), *w = lu_lua_check_tensor(L, 2), *dx = lu_lua_check_tensor(L, 3);
  lu_conv_desc d = make_desc(L, 4, dx->ndim, w->shape, 0);
  LU_LCHECK(L, lu_conv_bwd_data(&d, dy, w, dx), "conv.bwd_data");
  lua_settop(L, 3);
  return 1;
}

static int l_bwd_weight(lua_State *L) {
  lu_tensor *x = lu_lua_check_tensor(L, 1), *dy = lu_lua_check_tensor(L, 2), *dw = lu_lua_check_tensor(L, 3),
            *db = opt_tensor(L, 4);
  lu_conv_desc d = make_desc(L, 5, x->ndim, dw->shape, 0);
  LU_LCHECK(L, lu_conv_bwd_weight(&d, x, dy, dw, db, opt_accumulate(L, 5)), "conv.bwd_weight");
  lua_settop(L, 3);
  return 1;
}

static int l_T_fwd(lua_State *L) {
  lu_tensor *x = lu_lua_check_tensor(L, 1), *w = lu_lua_check_tensor(L, 2), *b = opt_tensor(L, 3),
            *y = lu_lua_check_tensor(L, 4);
  lu_conv_desc d = make_desc(L, 5, x->ndim, w->shape, 1);
  LU_LCHECK(L, lu_convT_fwd(&d, x, w, b, y), "conv.T_fwd");
  lua_settop(L, 4);
  return 1;
}

static int l_T_bwd_data(lua_State *L) {
  lu_tensor *dy = lu_lua_check_tensor(L, 1), *w = lu_lua_check_tensor(L, 2), *dx = lu_lua_check_tensor(L, 3);
  lu_conv_desc d = make_desc(L, 4, dx->ndim, w->shape, 1);
  LU_LCHECK(L, lu_convT_bwd_data(&d, dy, w, dx), "conv.T_bwd_data");
  lua_settop(L, 3);
  return 1;
}

static int l_T_bwd_weight(lua_State *L) {
  lu_tensor *x = lu_lua_check_tensor(L, 1), *dy = lu_lua_check_tensor(L, 2), *dw = lu_lua_check_tensor(L, 3),
            *db = opt_tensor(L, 4);
  lu_conv_desc d = make_desc(L, 5, x->ndim, dw->shape, 1);
  LU_LCHECK(L, lu_convT_bwd_weight(&d, x, dy, dw, db, opt_accumulate(L, 5)), "conv.T_bwd_weight");
  lua_settop(L, 3);
  return 1;
}

static int out_shape(lua_State *L, int transposed) {
  int64_t xs[LU_MAX_DIMS], ys[LU_MAX_DIMS];
  int nd = lu_lua_check_shape(L, 1, xs);
  int64_t cout = luaL_checkinteger(L, 2);
  lu_conv_desc d = make_desc(L, 3, nd, NULL, transposed);
  if (transposed) LU_LCHECK(L, lu_convT_out_shape(&d, xs, cout, ys), "conv.T_out_shape");
  else LU_LCHECK(L, lu_conv_out_shape(&d, xs, cout, ys), "conv.out_shape");
  lu_lua_push_shape(L, nd, ys);
  return 1;
}
static int l_out_shape(lua_State *L) { return out_shape(L, 0); }
static int l_T_out_shape(lua_State *L) { return out_shape(L, 1); }

static int l_flops(lua_State *L) {
  int64_t xs[LU_MAX_DIMS];
  int nd = lu_lua_check_shape(L, 1, xs);
  int64_t cout = luaL_checkinteger(L, 2);
  int tr = lua_toboolean(L, 4);
  lu_conv_desc d = make_desc(L, 3, nd, NULL, tr);
  lua_pushnumber(L, tr ? lu_convT_flops(&d, xs, cout) : lu_conv_flops(&d, xs, cout));
  return 1;
}

/* ---- naive double-precision host reference ----
 * One enumeration serves all three: for every (n, co, ci, output voxel o, tap t) with input voxel
 * i = o * s - p + t (conv) or output o = i * s - p + t (transposed) in range, the forward adds
 * w * x, backward data adds w * dy, backward weight adds x * dy. */

typedef struct ref_geom {
  int N, Cin, Cout, nsp, tr;
  int64_t in[3], out[3];
  int k[3], s[3], p[3];
} ref_geom;

static double hget(const lu_tensor *t, int64_t i) { return lu_host_get(t, i); }

static lu_tensor *host_f32(lua_State *L, int idx, lu_tensor **tmp) {
  lu_tensor *t = lu_lua_check_tensor(L, idx);
  *tmp = NULL;
  if (t->host) return t;
  LU_LCHECK(L, lu_tensor_to_host(t, tmp), "conv.ref");
  return *tmp;
}

/* mode 0: fwd (acc into y), 1: bwd data (acc into dx), 2: bwd weight (acc into dw) */
static void ref_loop(const ref_geom *g, int mode, const lu_tensor *x, const lu_tensor *w, const lu_tensor *dy,
                     double *out) {
  int64_t IS = g->in[0] * g->in[1] * g->in[2], OS = g->out[0] * g->out[1] * g->out[2];
  int kv = g->k[0] * g->k[1] * g->k[2];
  /* "small" side = the side that is strided over: conv's output, convT's input */
  const int64_t *sm = g->tr ? g->in : g->out, *lg = g->tr ? g->out : g->in;
  for (int n = 0; n < g->N; n++)
    for (int co = 0; co < g->Cout; co++)
      for (int ci = 0; ci < g->Cin; ci++)
        for (int64_t a = 0; a < sm[0]; a++)
          for (int64_t b = 0; b < sm[1]; b++)
            for (int64_t c = 0; c < sm[2]; c++)
              for (int tz = 0; tz < g->k[0]; tz++)
                for (int ty = 0; ty < g->k[1]; ty++)
                  for (int tx = 0; tx < g->k[2]; tx++) {
                    int64_t lz = a * g->s[0] - g->p[0] + tz, ly = b * g->s[1] - g->p[1] + ty,
                            lx = c * g->s[2] - g->p[2] + tx;
                    if (lz < 0 || ly < 0 || lx < 0 || lz >= lg[0] || ly >= lg[1] || lx >= lg[2]) continue;
                    int64_t si = (a * sm[1] + b) * sm[2] + c, li = (lz * lg[1] + ly) * lg[2] + lx;
                    int64_t ii = g->tr ? si : li, oi = g->tr ? li : si; /* input / output voxel */
                    int64_t xi = ((int64_t)n * g->Cin + ci) * IS + ii, yi = ((int64_t)n * g->Cout + co) * OS + oi;
                    int64_t tap = (tz * g->k[1] + ty) * g->k[2] + tx;
                    int64_t wi = g->tr ? ((int64_t)ci * g->Cout + co) * kv + tap : ((int64_t)co * g->Cin + ci) * kv + tap;
                    if (mode == 0) out[yi] += hget(w, wi) * hget(x, xi);
                    else if (mode == 1) out[xi] += hget(w, wi) * hget(dy, yi);
                    else out[wi] += hget(x, xi) * hget(dy, yi);
                  }
}

static ref_geom ref_geom_make(lua_State *L, const lu_conv_desc *d, int tr, const int64_t *xs, int64_t cin,
                              int64_t cout) {
  ref_geom g;
  memset(&g, 0, sizeof g);
  int64_t ys[5];
  if (tr) LU_LCHECK(L, lu_convT_out_shape(d, xs, cout, ys), "conv.ref");
  else LU_LCHECK(L, lu_conv_out_shape(d, xs, cout, ys), "conv.ref");
  g.N = (int)xs[0]; g.Cin = (int)cin; g.Cout = (int)cout; g.nsp = d->nsp; g.tr = tr;
  int o = 3 - d->nsp;
  for (int i = 0; i < 3; i++) {
    int a = i - o;
    g.in[i] = a >= 0 ? xs[2 + a] : 1;
    g.out[i] = a >= 0 ? ys[2 + a] : 1;
    g.k[i] = a >= 0 ? d->k[a] : 1;
    g.s[i] = a >= 0 ? d->stride[a] : 1;
    g.p[i] = a >= 0 ? d->pad[a] : 0;
  }
  return g;
}

static lu_tensor *new_f64(lua_State *L, int nd, const int64_t *shape) {
  lu_tensor *t;
  LU_LCHECK(L, lu_tensor_new_host(&t, LU_F64, nd, shape), "conv.ref");
  return t;
}

/* ref_fwd(x, w, b|nil, opts, transposed) */
static int l_ref_fwd(lua_State *L) {
  lu_tensor *tx, *tw, *tb = NULL;
  lu_tensor *x = host_f32(L, 1, &tx), *w = host_f32(L, 2, &tw), *b = lua_isnoneornil(L, 3) ? NULL : host_f32(L, 3, &tb);
  int tr = lua_toboolean(L, 5);
  lu_conv_desc d = make_desc(L, 4, x->ndim, w->shape, tr);
  int64_t cout = tr ? w->shape[1] : w->shape[0], cin = tr ? w->shape[0] : w->shape[1];
  ref_geom g = ref_geom_make(L, &d, tr, x->shape, cin, cout);
  int64_t ys[5];
  if (tr) lu_convT_out_shape(&d, x->shape, cout, ys);
  else lu_conv_out_shape(&d, x->shape, cout, ys);
  lu_tensor *y = new_f64(L, x->ndim, ys);
  double *yd = y->host;
  int64_t OS = g.out[0] * g.out[1] * g.out[2];
  for (int n = 0; n < g.N; n++)
    for (int co = 0; co < g.Cout; co++)
      for (int64_t i = 0; i < OS; i++) yd[((int64_t)n * g.Cout + co) * OS + i] = b ? hget(b, co) : 0.0;
  ref_loop(&g, 0, x, w, NULL, yd);
  lu_tensor_free(tx); lu_tensor_free(tw); lu_tensor_free(tb);
  lu_lua_push_tensor(L, y);
  return 1;
}

/* ref_bwd_data(dy, w, x_shape, opts, transposed) */
static int l_ref_bwd_data(lua_State *L) {
  lu_tensor *tdy, *tw;
  lu_tensor *dy = host_f32(L, 1, &tdy), *w = host_f32(L, 2, &tw);
  int64_t xs[LU_MAX_DIMS];
  int nd = lu_lua_check_shape(L, 3, xs);
  int tr = lua_toboolean(L, 5);
  lu_conv_desc d = make_desc(L, 4, nd, w->shape, tr);
  int64_t cout = tr ? w->shape[1] : w->shape[0], cin = tr ? w->shape[0] : w->shape[1];
  ref_geom g = ref_geom_make(L, &d, tr, xs, cin, cout);
  lu_tensor *dx = new_f64(L, nd, xs);
  ref_loop(&g, 1, NULL, w, dy, dx->host);
  lu_tensor_free(tdy); lu_tensor_free(tw);
  lu_lua_push_tensor(L, dx);
  return 1;
}

/* ref_bwd_weight(x, dy, w_shape, opts, transposed) -> dw, db */
static int l_ref_bwd_weight(lua_State *L) {
  lu_tensor *tx, *tdy;
  lu_tensor *x = host_f32(L, 1, &tx), *dy = host_f32(L, 2, &tdy);
  int64_t ws[LU_MAX_DIMS];
  int nd = lu_lua_check_shape(L, 3, ws);
  int tr = lua_toboolean(L, 5);
  lu_conv_desc d = make_desc(L, 4, nd, ws, tr);
  int64_t cout = tr ? ws[1] : ws[0], cin = tr ? ws[0] : ws[1];
  ref_geom g = ref_geom_make(L, &d, tr, x->shape, cin, cout);
  lu_tensor *dw = new_f64(L, nd, ws);
  ref_loop(&g, 2, x, NULL, dy, dw->host);
  lu_tensor *db = new_f64(L, 1, &cout);
  double *dbd = db->host;
  int64_t OS = g.out[0] * g.out[1] * g.out[2];
  for (int n = 0; n < g.N; n++)
    for (int co = 0; co < g.Cout; co++)
      for (int64_t i = 0; i < OS; i++) dbd[co] += hget(dy, ((int64_t)n * g.Cout + co) * OS + i);
  lu_tensor_free(tx); lu_tensor_free(tdy);
  lu_lua_push_tensor(L, dw);
  lu_lua_push_tensor(L, db);
  return 2;
}

/* set_workspace_kb(kb): sets (0 or nil: unsets) $LUNET_CONV_WORKSPACE_KB for this process (specs force small tiles). */
static int l_set_workspace_kb(lua_State *L) {
  char buf[32];
  lua_Integer kb = luaL_optinteger(L, 1, 0);
  snprintf(buf, sizeof buf, "%lld", (long long)kb);
  if (kb <= 0) unsetenv("LUNET_CONV_WORKSPACE_KB");
  else setenv("LUNET_CONV_WORKSPACE_KB", buf, 1);
  return 0;
}

/* set_algo("gemm" | "direct" | nil): sets $LUNET_CONV_ALGO for this process (specs test both paths). */
static int l_set_algo(lua_State *L) {
  const char *a = luaL_optstring(L, 1, NULL);
  if (a && strcmp(a, "gemm") && strcmp(a, "direct")) return luaL_error(L, "conv.set_algo: 'gemm', 'direct' or nil");
  if (a) setenv("LUNET_CONV_ALGO", a, 1);
  else unsetenv("LUNET_CONV_ALGO");
  return 0;
}

/* Kernel switches for specs, so that they reach every path: conv.<name>(mode [, count ...]). Argument 1,
 * `on`, sets $var to 1 (wherever the geometry allows), `off` to 0 (never), nil unsets it (the rule
 * decides); each further argument, an optional count, goes into its $counts[i] (nil unsets it). */
typedef struct {
  const char *name, *var, *on, *off, *counts[3];
} kernel_switch;

static const kernel_switch switches[] = {
  /* wgrad_cvec with every tap of a position at once or one tap at a time on this process's CPU devices;
   * chunk: the positions per partial sum */
  {"set_wgrad", "LUNET_CONV_WGRAD_TAPS", "taps", "per_tap", {"LUNET_CONV_WGRAD_CHUNK"}},
  /* stride-1, 3-tap convolutions and their backward data on conv_rows or conv_direct; chunk: conv_rows'
   * input channels per sweep over the channel blocks, group: its row blocks per work-item, in_place 1 / 0:
   * its forward weights read in place or packed */
  {"set_fwd", "LUNET_CONV_ROWS", "rows", "direct", {"LUNET_CONV_CICH", "LUNET_CONV_RGRP", "LUNET_CONV_WDIRECT"}},
  /* strided backward data on dgrad_rows or by phases; slow: the phases' channel blocks as their slowest
   * work-item index (1) or not (0) whatever the weights' size */
  {"set_dgrad", "LUNET_CONV_DGRAD_ROWS", "rows", "phases", {"LUNET_CONV_PHASE_ORDER"}},
  /* transposed conv backward data on convT_dgrad or as a strided conv on the direct kernel */
  {"set_convT_dgrad", "LUNET_CONVT_DGRAD", "lanes", "conv", {NULL}},
  /* 3x3 / 1x3x3 / 3x3x3 stride-1 convolutions over rows a multiple of 16 wide, and their backward data,
   * by Winograd F(2,3) (conv_wino) or on the direct kernels; chunk: conv_wino's input channels per
   * transform, rows: its rows per work-item */
  {"set_wino", "LUNET_CONV_WINO", "wino", "direct", {"LUNET_CONV_WINO_CICH", "LUNET_CONV_WINO_RG"}},
  /* forwards of stride 2 along y and x over rows a multiple of 32 wide on conv_s2rows or the direct
   * kernels; chunk: conv_s2rows' input channels per de-interleave, rows: its output rows per work-item */
  {"set_s2rows", "LUNET_CONV_S2ROWS", "s2rows", "direct", {"LUNET_CONV_S2_CICH", "LUNET_CONV_S2_RG"}},
};

/* conv.<name>(mode [, count ...]) for the kernel_switch in upvalue 1 */
static int l_set_switch(lua_State *L) {
  const kernel_switch *k = lua_touserdata(L, lua_upvalueindex(1));
  const char *m = luaL_optstring(L, 1, NULL);
  if (m && strcmp(m, k->on) && strcmp(m, k->off))
    return luaL_error(L, "conv.%s: '%s', '%s' or nil", k->name, k->on, k->off);
  if (m) setenv(k->var, strcmp(m, k->on) == 0 ? "1" : "0", 1);
  else unsetenv(k->var);
  for (int i = 0; i < 3 && k->counts[i]; i++) {
    if (lua_isnoneornil(L, i + 2)) {
      unsetenv(k->counts[i]);
    } else {
      char buf[32];
      snprintf(buf, sizeof buf, "%lld", (long long)luaL_checkinteger(L, i + 2));
      setenv(k->counts[i], buf, 1);
    }
  }
  return 0;
}

int lu_open_conv(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"fwd", l_fwd}, {"bwd_data", l_bwd_data}, {"bwd_weight", l_bwd_weight},
    {"T_fwd", l_T_fwd}, {"T_bwd_data", l_T_bwd_data}, {"T_bwd_weight", l_T_bwd_weight},
    {"out_shape", l_out_shape}, {"T_out_shape", l_T_out_shape}, {"flops", l_flops},
    {"ref_fwd", l_ref_fwd}, {"ref_bwd_data", l_ref_bwd_data}, {"ref_bwd_weight", l_ref_bwd_weight},
    {"set_workspace_kb", l_set_workspace_kb}, {"set_algo", l_set_algo}, {NULL, NULL}};
  luaL_newlib(L, fns);
  for (size_t i = 0; i < sizeof switches / sizeof switches[0]; i++) {
    lua_pushlightuserdata(L, (void *)&switches[i]);
    lua_pushcclosure(L, l_set_switch, 1);
    lua_setfield(L, -2, switches[i].name);
  }
  return 1;
}
